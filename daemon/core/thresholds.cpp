// Thresholds engine. See thresholds.h.
#include "core/thresholds.h"

#include "core/cgroups.h"
#include "core/enum_names.h"
#include "core/units.h"

#include <algorithm>
#include <utility>

// std::optional as the value or null (nlohmann 3.11 has no std::optional support of its own).
namespace nlohmann {
template <typename T> struct adl_serializer<std::optional<T>> {
    static void to_json(json& j, const std::optional<T>& o) { j = o ? json(*o) : json(nullptr); }
    static void from_json(const json& j, std::optional<T>& o) {
        o = j.is_null() ? std::nullopt : std::optional<T>(j.get<T>());
    }
};
} // namespace nlohmann

namespace nettally {
namespace {

using threshold_errors::fail;
using threshold_errors::quote;

uint64_t figure(const Counts& c, UsageLayer l) {
    // UsageLayer lists CountField's byte figures in the same order, without packets.
    static_assert(static_cast<int>(UsageLayer::Payload) + 1 == static_cast<int>(CountField::Payload));
    return c.get(static_cast<CountField>(static_cast<int>(l) + 1));
}

Counts by_direction(const Counts& sent, const Counts& received, UsageDirection d) {
    switch (d) {
    case UsageDirection::Sent:
        return sent;
    case UsageDirection::Received:
        return received;
    case UsageDirection::Both:
        return sent + received;
    }
    return {};
}

bool flow_in_direction(const FlowEntry& f, UsageDirection d) {
    if (d == UsageDirection::Both)
        return true;
    return (f.key.dir == NT_DIR_EGRESS) == (d == UsageDirection::Sent);
}

// The latest sample at or before t (or the first one).
uint64_t counted_at(const std::deque<std::pair<int64_t, uint64_t>>& s, int64_t t, int64_t* when = nullptr) {
    if (s.empty())
        return 0;
    auto it = std::upper_bound(s.begin(), s.end(), t, [](int64_t v, const auto& p) { return v < p.first; });
    const auto& p = it == s.begin() ? *it : *std::prev(it);
    if (when)
        *when = p.first;
    return p.second;
}

} // namespace

std::pair<std::string, std::string> class_subject(const std::string& value) {
    const auto at = value.find('@');
    if (at == std::string::npos)
        return {value, ""};
    return {value.substr(0, at), value.substr(at + 1)};
}

std::string_view to_string(ThresholdEvent::Kind k) {
    constexpr std::array<std::string_view, 7> kNames{"StepCrossed",  "LimitReached",  "Burst",
                                                     "RateExceeded", "ActionApplied", "ActionLifted",
                                                     "ActionFailed"};
    return enum_name(kNames, k);
}

// ---- usage from the ledgers -----------------------------------------------------------------

std::optional<Counts> LedgerUsage::total(const Subject& s, UsageDirection d) const {
    switch (s.kind) {
    case SubjectKind::Interface: {
        auto it = c_.interfaces().find(s.value);
        if (it == c_.interfaces().end())
            return std::nullopt;
        return by_direction(it->second.dir[NT_DIR_EGRESS].total.total(),
                            it->second.dir[NT_DIR_INGRESS].total.total(), d);
    }
    case SubjectKind::Host: {
        const bool mac = s.value.size() == 17 && parse_mac(s.value).has_value();
        std::optional<Counts> sum;
        for (const auto& [id, h] : c_.hosts()) {
            if (mac ? h.mac != s.value : h.ip != s.value)
                continue;
            sum = sum.value_or(Counts{}) + by_direction(h.sent.total(), h.received.total(), d);
        }
        return sum;
    }
    case SubjectKind::Cgroup: {
        if (!cg_)
            return std::nullopt;
        for (const auto& r : cg_->rows())
            if (r.path == s.value)
                return by_direction(r.total.egress, r.total.ingress, d);
        return std::nullopt;
    }
    case SubjectKind::User: {
        // Every lan interface the user was counted on; nothing yet counts as 0 (so the user's
        // first bytes are usage, not a baseline).
        Counts sum;
        for (const auto& [id, u] : c_.users())
            if (u.user == s.value)
                sum = sum + by_direction(u.sent.total(), u.received.total(), d);
        return sum;
    }
    case SubjectKind::Class: {
        // A class with no traffic yet counts as 0, like a user: its first bytes are usage.
        const auto [name, iface] = class_subject(s.value);
        Counts sum;
        for (const auto& [key, t] : c_.classes()) {
            if (t.name != name || (iface.empty() ? !is_lan(t.interface) : t.interface != iface))
                continue;
            // NAME@IFACE: interface terms (sent = egress); NAME: the lan hosts' view (sent =
            // what arrives from them, lan ingress), as host and user subjects count.
            const bool sent = iface.empty() ? t.dir == NT_DIR_INGRESS : t.dir == NT_DIR_EGRESS;
            sum =
                sum + by_direction(sent ? t.counts.total() : Counts{}, sent ? Counts{} : t.counts.total(), d);
        }
        return sum;
    }
    case SubjectKind::FlowAggregate:
        break;
    }
    return std::nullopt;
}

bool LedgerUsage::is_lan(const std::string& iface) const {
    auto it = c_.interfaces().find(iface);
    return it != c_.interfaces().end() && it->second.info.role == "lan";
}

void LedgerUsage::for_each_flow(const std::function<void(const FlowEntry&, const std::string&)>& fn) const {
    for (const auto& f : c_.flows())
        fn(f, c_.name_of(f.key.ifindex));
}

std::string LedgerUsage::check(const Subject& s, UsageLayer layer) const {
    auto known_ifaces = [&] {
        std::string names;
        for (const auto& [n, st] : c_.interfaces())
            names += (names.empty() ? "" : ", ") + n;
        return names.empty() ? std::string("none") : names;
    };
    switch (s.kind) {
    case SubjectKind::Interface:
        if (!c_.interfaces().count(s.value))
            return "unknown interface " + quote(s.value) + " (accounted: " + known_ifaces() + ")";
        return "";
    case SubjectKind::Host:
        for (const auto& [n, st] : c_.interfaces())
            if (st.info.role == "lan")
                return "";
        return "hosts are counted on lan interfaces and none is configured";
    case SubjectKind::Cgroup: {
        if (!cg_)
            return "cgroup accounting is off (cgroups.enabled: false)";
        if (layer == UsageLayer::L2)
            return "cgroups have no l2 figure";
        // A cgroup without traffic yet has no row: it counts from 0 when its first packet comes.
        if (cg_->present(s.value))
            return "";
        for (const auto& r : cg_->rows())
            if (r.path == s.value)
                return "";
        return "unknown cgroup " + quote(s.value) +
               " (not in the tracked subtrees, cgroups.subtrees, at the last walk: a new cgroup is seen "
               "within 10 s)";
    }
    case SubjectKind::User:
        if (!users_)
            return "subscribers are not configured (subscribers:), so no traffic is counted per user";
        return "";
    case SubjectKind::Class: {
        const auto [name, iface] = class_subject(s.value);
        const auto& active = c_.class_names();
        if (active.empty())
            return "no traffic classes are active (rules: in the config, or nettallyctl rules load)";
        std::string names;
        bool known = false;
        for (const auto& [id, n] : active) {
            names += (names.empty() ? "" : ", ") + n;
            known = known || n == name;
        }
        if (!known)
            return "unknown class " + quote(name) + " (active: " + names + ")";
        if (!iface.empty())
            return c_.interfaces().count(iface)
                       ? ""
                       : "unknown interface " + quote(iface) + " (accounted: " + known_ifaces() + ")";
        for (const auto& [n, st] : c_.interfaces())
            if (st.info.role == "lan")
                return "";
        return "class " + quote(name) +
               " alone counts on lan interfaces and none is configured; name the interface: " + name +
               "@IFACE";
    }
    case SubjectKind::FlowAggregate: {
        const FlowFilter f = FlowFilter::parse(s.value);
        if (!f.iface.empty() && !c_.interfaces().count(f.iface))
            return "unknown interface " + quote(f.iface) +
                   " in the flow filter (accounted: " + known_ifaces() + ")";
        return "";
    }
    }
    return "unknown subject";
}

// ---- the engine -----------------------------------------------------------------------------

uint64_t Threshold::rate_now() const {
    if (st.samples.size() < 2)
        return 0;
    const int64_t now = st.samples.back().first;
    int64_t from = 0;
    const uint64_t then =
        counted_at(st.samples, now - static_cast<int64_t>(def.rate_window_s) * 1000000, &from);
    if (now <= from)
        return 0;
    return static_cast<uint64_t>(static_cast<long double>(st.samples.back().second - then) * 1e6L /
                                 static_cast<long double>(now - from));
}

ThresholdEngine::ThresholdEngine(PeriodSpec spec, ActionEnforcer& enforcer)
    : calendar_(std::move(spec)), enforcer_(enforcer) {}

void ThresholdEngine::set_period_spec(PeriodSpec spec) {
    calendar_ = History(std::move(spec));
}

const Threshold* ThresholdEngine::find(const std::string& name) const {
    auto it = t_.find(name);
    return it == t_.end() ? nullptr : &it->second;
}

std::vector<ThresholdEvent> ThresholdEngine::take_events() {
    return std::exchange(events_, {});
}

void ThresholdEngine::emit(ThresholdEvent::Kind k, const Threshold& t, int64_t now_us, uint64_t index,
                           uint64_t value, uint64_t value2) {
    ThresholdEvent e;
    e.kind = k;
    e.name = t.def.name;
    e.subject = subject_text(t.def.subject);
    e.usage = t.st.usage;
    e.step_index = index;
    e.value = value;
    e.value2 = value2;
    e.time_us = now_us;
    events_.push_back(std::move(e));
}

void ThresholdEngine::check_def(const ThresholdDef& def, const UsageSource& src) const {
    if (auto why = src.check(def.subject, def.layer); !why.empty())
        fail("subject", why);
    if (auto why = enforcer_.check(def.subject, def.action, def.action_rate); !why.empty())
        fail("action", why);
}

std::optional<Counts> ThresholdEngine::source_total(const Threshold& t, const UsageSource& src) const {
    if (t.def.subject.kind != SubjectKind::FlowAggregate)
        return src.total(t.def.subject, t.def.direction);
    Counts sum = t.st.flow_finished;
    const FlowFilter f = FlowFilter::parse(t.def.subject.value);
    src.for_each_flow([&](const FlowEntry& e, const std::string& iface) {
        if (flow_in_direction(e, t.def.direction) && f.matches(e, iface))
            sum += e.counts;
    });
    return sum;
}

void ThresholdEngine::start_period(Threshold& t, const UsageSource& src, int64_t now_us) {
    ThresholdState& s = t.st;
    s = ThresholdState{};
    s.last_total = source_total(t, src);
    s.last_observe_us = now_us;
    s.samples.emplace_back(now_us, 0);
    s.period_start_us = now_us;
    if (t.def.period == ThresholdPeriod::Day || t.def.period == ThresholdPeriod::Month) {
        const auto p = calendar_.period_at(
            t.def.period == ThresholdPeriod::Day ? PeriodKind::Day : PeriodKind::Month, now_us);
        s.period_end_us = p.end_us;
    }
}

void ThresholdEngine::add(const ThresholdDef& def, const UsageSource& src, int64_t now_us) {
    if (t_.count(def.name))
        fail("name", "a threshold named " + quote(def.name) + " exists already");
    if (t_.size() >= kMaxThresholds)
        fail("name", "at most " + std::to_string(kMaxThresholds) + " thresholds");
    check_def(def, src);
    Threshold t;
    t.def = def;
    t.set_at_us = now_us;
    start_period(t, src, now_us);
    t_.emplace(def.name, std::move(t));
}

void ThresholdEngine::modify(const std::string& name, const FieldMap& changes, const UsageSource& src,
                             int64_t now_us) {
    auto it = t_.find(name);
    if (it == t_.end())
        fail("name", "no threshold named " + quote(name));
    Threshold& t = it->second;
    if (t.from_config)
        fail("name", quote(name) + " is defined in the config file: change it there and reload");
    if (auto n = changes.find("name"); n != changes.end() && field_text("name", n->second) != name)
        fail("name", "a threshold cannot be renamed (remove it and add it again)");
    const ThresholdDef next = parse_threshold(changes, &t.def);
    check_def(next, src);
    const ThresholdDef old = t.def;
    const bool same_watch = next.subject == old.subject && next.direction == old.direction &&
                            next.layer == old.layer && next.period == old.period &&
                            next.window_s == old.window_s;
    const bool same_action =
        next.action == old.action && next.action_rate == old.action_rate && next.action_on == old.action_on;
    if (!same_watch || !same_action)
        lift_action(t, "modified", now_us);
    t.def = next;
    if (!same_watch) {
        start_period(t, src, now_us);
        return;
    }
    t.st.step_index = t.st.usage / next.step;
    if (next.limit != old.limit) {
        // A lowered limit already exceeded signals (and acts) at the next poll.
        if (t.st.limit_reached && t.st.action_active)
            lift_action(t, "modified", now_us);
        t.st.limit_reached = false;
    } else if (!same_action && t.st.limit_reached && next.action_on != ActionTrigger::Burst) {
        apply_action(t, "modified", now_us);
    }
}

void ThresholdEngine::remove(const std::string& name) {
    auto it = t_.find(name);
    if (it == t_.end())
        fail("name", "no threshold named " + quote(name));
    if (it->second.from_config)
        fail("name", quote(name) + " is defined in the config file: remove it there and reload");
    lift_action(it->second, "removed", it->second.st.last_observe_us);
    t_.erase(it);
}

void ThresholdEngine::reset(const std::string& name, const UsageSource& src, int64_t now_us) {
    auto it = t_.find(name);
    if (it == t_.end())
        fail("name", "no threshold named " + quote(name));
    Threshold& t = it->second;
    lift_action(t, "reset", now_us);
    const int64_t start = t.st.period_start_us, end = t.st.period_end_us;
    start_period(t, src, now_us);
    if (end != 0 && now_us < end) { // a calendar period keeps its bounds; usage counts from now
        t.st.period_start_us = start;
        t.st.period_end_us = end;
    }
}

void ThresholdEngine::check_config(const std::vector<ThresholdDef>& defs, const UsageSource& src) const {
    std::vector<std::string> names;
    for (const auto& d : defs) {
        if (std::find(names.begin(), names.end(), d.name) != names.end())
            fail("name", "threshold " + quote(d.name) + " is defined twice");
        names.push_back(d.name);
        auto it = t_.find(d.name);
        if (it != t_.end() && !it->second.from_config)
            fail("name",
                 "threshold " + quote(d.name) + " exists already (added at run time; remove it first)");
        try {
            check_def(d, src);
        } catch (const ThresholdError& e) {
            throw ThresholdError("threshold " + quote(d.name) + ": " + e.what());
        }
    }
    size_t runtime = 0;
    for (const auto& [n, t] : t_)
        runtime += t.from_config ? 0 : 1;
    if (runtime + defs.size() > kMaxThresholds)
        fail("name", "at most " + std::to_string(kMaxThresholds) + " thresholds");
}

void ThresholdEngine::set_config(const std::vector<ThresholdDef>& defs, const UsageSource& src,
                                 int64_t now_us) {
    check_config(defs, src);
    for (auto it = t_.begin(); it != t_.end();) {
        Threshold& t = it->second;
        const auto d =
            std::find_if(defs.begin(), defs.end(), [&](const auto& x) { return x.name == it->first; });
        if (t.from_config && (d == defs.end() || !(*d == t.def))) {
            lift_action(t, d == defs.end() ? "removed" : "modified", now_us);
            it = t_.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& d : defs) {
        if (t_.count(d.name))
            continue;
        Threshold t;
        t.def = d;
        t.from_config = true;
        t.set_at_us = now_us;
        start_period(t, src, now_us);
        t_.emplace(d.name, std::move(t));
    }
}

void ThresholdEngine::apply_action(Threshold& t, const char* reason, int64_t now_us) {
    if (t.def.action == ActionKind::Notify || t.st.action_active)
        return;
    try {
        enforcer_.apply(t.def.name, t.def.subject, t.def.action, t.def.action_rate);
        t.st.action_active = true;
        emit(ThresholdEvent::Kind::ActionApplied, t, now_us);
        events_.back().reason = reason;
    } catch (const std::exception& e) {
        emit(ThresholdEvent::Kind::ActionFailed, t, now_us);
        events_.back().reason = std::string(reason) + ": " + e.what();
    }
    events_.back().action = std::string(to_string(t.def.action));
}

void ThresholdEngine::lift_action(Threshold& t, const char* reason, int64_t now_us) {
    if (!t.st.action_active)
        return;
    enforcer_.lift(t.def.name);
    t.st.action_active = false;
    emit(ThresholdEvent::Kind::ActionLifted, t, now_us);
    events_.back().reason = reason;
    events_.back().action = std::string(to_string(t.def.action));
}

void ThresholdEngine::on_flow_finished(const FlowEntry& f, const std::string& iface) {
    for (auto& [n, t] : t_) {
        if (t.def.subject.kind != SubjectKind::FlowAggregate || !flow_in_direction(f, t.def.direction))
            continue;
        if (FlowFilter::parse(t.def.subject.value).matches(f, iface))
            t.st.flow_finished += f.counts;
    }
}

void ThresholdEngine::observe(const UsageSource& src, int64_t now_us) {
    for (auto& [n, t] : t_)
        observe_one(t, src, now_us);
}

// What the subject did since the last poll, at the threshold's layer.
uint64_t ThresholdEngine::take_delta(Threshold& t, const UsageSource& src) const {
    ThresholdState& s = t.st;
    const std::optional<Counts> total = source_total(t, src);
    if (!total)
        return 0;
    const uint64_t now_v = figure(*total, t.def.layer);
    const uint64_t last_v = s.last_total ? figure(*s.last_total, t.def.layer) : 0;
    s.last_total = total;
    return now_v >= last_v ? now_v - last_v : 0; // totals never go back; a lost state resyncs
}

// Calendar rollover: the delta goes into the period the poll falls in.
void ThresholdEngine::roll_over(Threshold& t, int64_t when) {
    ThresholdState& s = t.st;
    lift_action(t, "rollover", when);
    const auto p =
        calendar_.period_at(t.def.period == ThresholdPeriod::Day ? PeriodKind::Day : PeriodKind::Month, when);
    s.period_start_us = p.start_us;
    s.period_end_us = p.end_us;
    s.usage = 0;
    s.step_index = 0;
    s.limit_reached = false;
    s.last_cross_us = 0;
}

// Samples of the cumulative count (rolling usage and the rate alert), then the period's usage.
void ThresholdEngine::count(Threshold& t, uint64_t delta, int64_t when) {
    ThresholdState& s = t.st;
    const ThresholdDef& d = t.def;
    s.counted += delta;
    const int64_t keep_us = static_cast<int64_t>(std::max(d.window_s, d.rate_window_s)) * 1000000;
    const int64_t slot_us = std::max<int64_t>(keep_us / static_cast<int64_t>(kRollingSlots), 1);
    if (s.samples.size() >= 2 && when - s.samples[s.samples.size() - 2].first < slot_us)
        s.samples.back() = {when, s.counted};
    else
        s.samples.emplace_back(when, s.counted);
    while (s.samples.size() > 2 && s.samples[1].first <= when - keep_us)
        s.samples.pop_front();

    if (d.period == ThresholdPeriod::Rolling)
        s.usage = s.counted - counted_at(s.samples, when - static_cast<int64_t>(d.window_s) * 1000000);
    else
        s.usage += delta;
}

// StepCrossed for every step usage went past since prev_usage (at t_prev), and Burst where two
// crossings came too close together.
void ThresholdEngine::signal_steps(Threshold& t, uint64_t prev_usage, int64_t t_prev, int64_t when) {
    ThresholdState& s = t.st;
    const ThresholdDef& d = t.def;
    const uint64_t idx = s.usage / d.step;
    if (idx < s.step_index) // only a rolling window goes down
        s.step_index = idx;
    if (idx <= s.step_index)
        return;
    const uint64_t first =
        std::max<uint64_t>(s.step_index + 1, idx > kMaxStepEvents ? idx - kMaxStepEvents + 1 : 1);
    for (uint64_t k = first; k <= idx; ++k) {
        // Interpolated crossing time of k * step between the previous poll and this one.
        int64_t cross = when;
        const uint64_t target = k * d.step;
        if (s.usage > prev_usage && target > prev_usage && when > t_prev)
            cross = t_prev + static_cast<int64_t>(static_cast<long double>(target - prev_usage) /
                                                  static_cast<long double>(s.usage - prev_usage) *
                                                  static_cast<long double>(when - t_prev));
        emit(ThresholdEvent::Kind::StepCrossed, t, when, k, d.step,
             k == first ? first - s.step_index - 1 : 0);
        if (d.min_interval_ms != 0 && s.last_cross_us != 0 &&
            cross - s.last_cross_us < static_cast<int64_t>(d.min_interval_ms) * 1000) {
            emit(ThresholdEvent::Kind::Burst, t, cross, k,
                 static_cast<uint64_t>(std::max<int64_t>(cross - s.last_cross_us, 0)) / 1000,
                 d.min_interval_ms);
            if (d.action_on != ActionTrigger::Limit)
                apply_action(t, "burst", when);
        }
        s.last_cross_us = cross;
    }
    s.step_index = idx;
}

// LimitReached (and its release when a rolling window falls back), then RateExceeded.
void ThresholdEngine::signal_limit_and_rate(Threshold& t, int64_t when) {
    ThresholdState& s = t.st;
    const ThresholdDef& d = t.def;
    const uint64_t idx = s.usage / d.step;
    if (d.limit != 0) {
        if (!s.limit_reached && s.usage >= d.limit) {
            s.limit_reached = true;
            emit(ThresholdEvent::Kind::LimitReached, t, when, idx, d.limit);
            if (d.action_on != ActionTrigger::Burst)
                apply_action(t, "limit", when);
        } else if (s.limit_reached && s.usage < d.limit) { // a rolling window fell below the limit
            s.limit_reached = false;
            if (d.action_on == ActionTrigger::Limit)
                lift_action(t, "window", when);
        }
    }

    // Rate over the sliding window.
    if (d.rate_bps != 0) {
        const uint64_t rate = t.rate_now();
        if (rate > d.rate_bps && !s.rate_alerted) {
            s.rate_alerted = true;
            emit(ThresholdEvent::Kind::RateExceeded, t, when, idx, rate, d.rate_bps);
            if (d.action_on != ActionTrigger::Limit)
                apply_action(t, "rate", when);
        } else if (rate <= d.rate_bps) {
            s.rate_alerted = false;
        }
    }
}

void ThresholdEngine::observe_one(Threshold& t, const UsageSource& src, int64_t now_us) {
    ThresholdState& s = t.st;
    const uint64_t delta = take_delta(t, src);
    const int64_t t_prev = s.last_observe_us;
    const int64_t when = std::max(now_us, t_prev); // a clock stepped back keeps the latest time
    if (s.period_end_us != 0 && when >= s.period_end_us)
        roll_over(t, when);
    const uint64_t prev_usage = s.usage;
    count(t, delta, when);
    signal_steps(t, prev_usage, t_prev, when);
    signal_limit_and_rate(t, when);
    s.last_observe_us = when;
}

// ---- persistence ----------------------------------------------------------------------------

// The saved form of a threshold's state: an object with a key per member; last_total null until
// the first observe, samples [[time, counted], ...].
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ThresholdState, period_start_us, period_end_us, last_total, usage,
                                   step_index, limit_reached, last_cross_us, rate_alerted, action_active,
                                   flow_finished, last_observe_us, samples, counted)

nlohmann::json ThresholdEngine::to_json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, t] : t_) {
        const nlohmann::json def = fields_to_json(threshold_fields(t.def));
        list.push_back(
            {{"def", def}, {"from_config", t.from_config}, {"set_at_us", t.set_at_us}, {"state", t.st}});
    }
    return {{"version", 1}, {"thresholds", list}};
}

void ThresholdEngine::restore(const nlohmann::json& j, int64_t now_us, std::vector<std::string>* problems) {
    if (j.at("version").get<int>() != 1)
        throw std::runtime_error("unsupported thresholds version " +
                                 std::to_string(j.at("version").get<int>()));
    std::map<std::string, Threshold> next = t_;
    for (const auto& e : j.at("thresholds")) {
        Threshold t;
        try {
            t.def = parse_threshold(fields_from_json(e.at("def")));
        } catch (const ThresholdError& err) {
            if (problems)
                problems->push_back(std::string("a saved threshold is no longer valid: ") + err.what());
            continue;
        }
        t.from_config = e.at("from_config").get<bool>();
        t.set_at_us = e.at("set_at_us").get<int64_t>();
        e.at("state").get_to(t.st);

        auto it = next.find(t.def.name);
        if (t.from_config) {
            // Only the state of a config threshold that is still defined the same way.
            if (it != next.end() && it->second.from_config && it->second.def == t.def) {
                it->second.st = std::move(t.st);
                it->second.set_at_us = t.set_at_us;
            }
            continue;
        }
        if (it != next.end()) {
            if (problems)
                problems->push_back("saved threshold '" + t.def.name +
                                    "' clashes with one in the config file; the config's is kept");
            continue;
        }
        next.emplace(t.def.name, std::move(t));
    }
    t_ = std::move(next);
    // The enforcer starts empty: enforce again what was enforced before the restart.
    for (auto& [n, t] : t_) {
        if (!t.st.action_active)
            continue;
        t.st.action_active = false;
        apply_action(t, "restart", now_us);
    }
}

} // namespace nettally
