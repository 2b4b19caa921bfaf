// org.nettally.Accounting1.Thresholds method implementations. See thresholds.h and
// daemon/bus/org.nettally.Accounting1.Thresholds.xml for the contract.
#include "bus/thresholds.h"

#include "bus/access.h"
#include "bus/accounting.h"
#include "bus/names.h"
#include "core/cgroups.h"

#include <spdlog/spdlog.h>

namespace nettally {
namespace {

sdbus::Variant field_variant(const FieldValue& v) {
    if (const auto* u = std::get_if<uint64_t>(&v))
        return sdbus::Variant(*u);
    if (const auto* i = std::get_if<int64_t>(&v))
        return sdbus::Variant(*i);
    return sdbus::Variant(std::get<std::string>(v));
}

// v into out as a Field when v holds a Wire.
template <typename Wire, typename Field> bool take(const sdbus::Variant& v, FieldValue& out) {
    if (!v.containsValueOfType<Wire>())
        return false;
    out = Field{v.get<Wire>()};
    return true;
}

template <typename F> void invalid_argument_on_error(F&& f) {
    try {
        f();
    } catch (const ThresholdError& e) {
        throw sdbus::Error(kErrInvalidArgument, e.what());
    }
}

// The event figure `from` as the signal's next argument (nothing for None).
void append_arg(sdbus::Signal& signal, const ThresholdEvent& e, bus::EventArg from) {
    using A = bus::EventArg;
    switch (from) {
    case A::None:
        return;
    case A::Action:
        signal << e.action;
        return;
    case A::Reason:
        signal << e.reason;
        return;
    case A::Time:
        signal << static_cast<uint64_t>(e.time_us);
        return;
    default:
        signal << (from == A::Usage       ? e.usage
                   : from == A::StepIndex ? e.step_index
                   : from == A::Value     ? e.value
                                          : e.value2);
    }
}

} // namespace

ThresholdsService::ThresholdsService(sdbus::IConnection& conn, ThresholdsHooks hooks)
    : AdaptorInterfaces(conn, kObjectPath), hooks_(std::move(hooks)) {
    registerAdaptor();
}

ThresholdsService::~ThresholdsService() {
    unregisterAdaptor();
}

FieldMap ThresholdsService::fields(const std::map<std::string, sdbus::Variant>& dict) const {
    FieldMap m;
    for (const auto& [key, v] : dict) {
        // Text, or any D-Bus integer type widened to the field's 64 bits.
        FieldValue& out = m[key];
        if (!(take<std::string, std::string>(v, out) || take<uint8_t, uint64_t>(v, out) ||
              take<uint16_t, uint64_t>(v, out) || take<uint32_t, uint64_t>(v, out) ||
              take<uint64_t, uint64_t>(v, out) || take<int16_t, int64_t>(v, out) ||
              take<int32_t, int64_t>(v, out) || take<int64_t, int64_t>(v, out)))
            throw sdbus::Error(kErrInvalidArgument, key + ": expected a string or an integer, got type '" +
                                                        v.peekValueType() + "'");
    }
    // A cgroup given by unit name is watched by its path.
    auto kind = m.find("subject_kind");
    auto subject = m.find("subject");
    if (kind != m.end() && subject != m.end() && kind->second == FieldValue(std::string("cgroup")) &&
        std::holds_alternative<std::string>(subject->second))
        subject->second = cgroup_subject_path(hooks_.cgroups(), std::get<std::string>(subject->second));
    return m;
}

std::vector<std::map<std::string, sdbus::Variant>> ThresholdsService::ListThresholds() {
    std::vector<std::map<std::string, sdbus::Variant>> out;
    for (const auto& [name, t] : hooks_.engine().thresholds()) {
        std::map<std::string, sdbus::Variant> m;
        FieldMap f = threshold_fields(t.def);
        f.try_emplace("window_s", uint64_t{0});
        f.try_emplace("action_rate", uint64_t{0});
        for (const auto& [k, v] : f)
            m[k] = field_variant(v);
        m["source"] = sdbus::Variant(std::string(t.from_config ? "config" : "runtime"));
        m["set_at"] = sdbus::Variant(static_cast<uint64_t>(t.set_at_us));
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<std::map<std::string, sdbus::Variant>> ThresholdsService::GetUsage(const std::string& name) {
    const ThresholdEngine& engine = hooks_.engine();
    if (!name.empty() && !engine.find(name))
        throw sdbus::Error(kErrInvalidArgument, "name: no threshold named '" + name + "'");
    std::vector<std::map<std::string, sdbus::Variant>> out;
    for (const auto& [n, t] : engine.thresholds()) {
        if (!name.empty() && n != name)
            continue;
        const ThresholdState& s = t.st;
        std::map<std::string, sdbus::Variant> m;
        m["name"] = sdbus::Variant(n);
        m["subject"] = sdbus::Variant(subject_text(t.def.subject));
        m["direction"] = sdbus::Variant(std::string(to_string(t.def.direction)));
        m["layer"] = sdbus::Variant(std::string(to_string(t.def.layer)));
        m["period"] = sdbus::Variant(std::string(to_string(t.def.period)));
        m["usage"] = sdbus::Variant(s.usage);
        m["step"] = sdbus::Variant(t.def.step);
        m["step_index"] = sdbus::Variant(s.step_index);
        m["limit"] = sdbus::Variant(t.def.limit);
        m["limit_reached"] = sdbus::Variant(s.limit_reached);
        m["period_start"] = sdbus::Variant(static_cast<uint64_t>(s.period_start_us));
        m["period_end"] = sdbus::Variant(static_cast<uint64_t>(s.period_end_us));
        m["last_crossing"] = sdbus::Variant(static_cast<uint64_t>(s.last_cross_us));
        m["rate_bps_now"] = sdbus::Variant(t.rate_now());
        m["action"] = sdbus::Variant(std::string(to_string(t.def.action)));
        m["action_active"] = sdbus::Variant(s.action_active);
        m["updated_at"] = sdbus::Variant(static_cast<uint64_t>(s.last_observe_us));
        out.push_back(std::move(m));
    }
    return out;
}

void ThresholdsService::AddThreshold(const std::map<std::string, sdbus::Variant>& definition) {
    require_privileged(getObject(), "AddThreshold");
    const FieldMap f = fields(definition);
    invalid_argument_on_error([&] {
        const ThresholdDef def = parse_threshold(f);
        hooks_.engine().add(def, hooks_.usage(), hooks_.now_us());
    });
    spdlog::info("thresholds: added '{}' over D-Bus", std::get<std::string>(f.at("name")));
    hooks_.changed();
}

void ThresholdsService::ModifyThreshold(const std::string& name,
                                        const std::map<std::string, sdbus::Variant>& changes) {
    require_privileged(getObject(), "ModifyThreshold");
    const FieldMap f = fields(changes);
    invalid_argument_on_error([&] { hooks_.engine().modify(name, f, hooks_.usage(), hooks_.now_us()); });
    spdlog::info("thresholds: modified '{}' over D-Bus", name);
    hooks_.changed();
}

void ThresholdsService::RemoveThreshold(const std::string& name) {
    require_privileged(getObject(), "RemoveThreshold");
    invalid_argument_on_error([&] { hooks_.engine().remove(name); });
    spdlog::info("thresholds: removed '{}' over D-Bus", name);
    hooks_.changed();
}

void ThresholdsService::ResetPeriod(const std::string& name) {
    require_privileged(getObject(), "ResetPeriod");
    invalid_argument_on_error([&] { hooks_.engine().reset(name, hooks_.usage(), hooks_.now_us()); });
    spdlog::info("thresholds: period of '{}' reset over D-Bus", name);
    hooks_.changed();
}

void ThresholdsService::emit(const std::vector<ThresholdEvent>& events) {
    static_assert(bus::kThresholdSignals.size() ==
                  static_cast<size_t>(ThresholdEvent::Kind::ActionFailed) + 1);
    for (const auto& e : events) {
        const auto& spec = bus::kThresholdSignals.at(static_cast<size_t>(e.kind));
        try {
            auto signal = getObject().createSignal(bus::kThresholdsInterface, std::string(spec.name));
            signal << e.name << e.subject;
            for (const auto& arg : spec.args)
                append_arg(signal, e, arg.from);
            getObject().emitSignal(signal);
        } catch (const sdbus::Error& err) {
            spdlog::error("thresholds: sending {} failed: {}", to_string(e.kind), err.getMessage());
        }
    }
}

} // namespace nettally
