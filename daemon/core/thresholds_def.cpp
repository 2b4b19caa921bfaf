// Threshold definitions: parse_threshold and its inverse. See thresholds_def.h.
#include "core/thresholds_def.h"

#include "core/classes.h"
#include "core/enum_names.h"
#include "core/flow_filter.h"
#include "core/subscribers.h"
#include "core/units.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <initializer_list>
#include <optional>
#include <vector>

namespace nettally {
namespace {

constexpr uint64_t kMaxWindowS = 366ull * 86400;
constexpr uint64_t kMaxRateWindowS = 3600;
constexpr uint64_t kMaxIntervalMs = 86400ull * 1000;
constexpr size_t kMaxName = 64;

using threshold_errors::fail;
using threshold_errors::quote;

template <typename E> std::string enum_names(std::initializer_list<E> all) {
    std::string out;
    for (E e : all)
        out += (out.empty() ? "" : ", ") + std::string(to_string(e));
    return out;
}

constexpr auto kKinds = {SubjectKind::Interface,     SubjectKind::Host, SubjectKind::Cgroup,
                         SubjectKind::FlowAggregate, SubjectKind::User, SubjectKind::Class};
constexpr auto kDirs = {UsageDirection::Sent, UsageDirection::Received, UsageDirection::Both};
constexpr auto kLayers = {UsageLayer::L2, UsageLayer::L3, UsageLayer::L4, UsageLayer::Payload};
constexpr auto kPeriods = {ThresholdPeriod::Day, ThresholdPeriod::Month, ThresholdPeriod::Rolling,
                           ThresholdPeriod::Since};
constexpr auto kActions = {ActionKind::Notify, ActionKind::Throttle, ActionKind::Block};
constexpr auto kTriggers = {ActionTrigger::Limit, ActionTrigger::Burst, ActionTrigger::Any};

// A number: unsigned as is; a signed one must be positive; a text through `parse`.
uint64_t number_of(const std::string& key, const FieldValue& v, const std::string& what,
                   const std::function<std::optional<uint64_t>(std::string_view)>& parse) {
    if (const auto* u = std::get_if<uint64_t>(&v))
        return *u;
    if (const auto* i = std::get_if<int64_t>(&v)) {
        if (*i < 0)
            fail(key, "must not be negative, got " + std::to_string(*i));
        return static_cast<uint64_t>(*i);
    }
    const std::string& s = std::get<std::string>(v);
    if (!s.empty() && s[0] == '-')
        fail(key, "must not be negative, got " + quote(s));
    const auto r = parse(s);
    if (!r)
        fail(key, "expected " + what + ", got " + quote(s));
    return *r;
}

uint64_t size_of(const std::string& key, const FieldValue& v) {
    return number_of(key, v, "a size in bytes such as 1000000, 1MB, 1MiB or 5GB", parse_size);
}

// Seconds (a bare number) or a duration text ("1h", "90s") that is a whole number of seconds.
uint64_t seconds_of(const std::string& key, const FieldValue& v) {
    return number_of(key, v, "seconds or a duration such as 90s, 1h, 1d", [](std::string_view s) {
        if (auto n = parse_uint(s))
            return n;
        auto d = parse_duration(s);
        if (!d || d->count() % 1000 != 0)
            return std::optional<uint64_t>{};
        return std::optional<uint64_t>(static_cast<uint64_t>(d->count() / 1000));
    });
}

// Milliseconds (a bare number) or a duration text ("800ms", "2s").
uint64_t millis_of(const std::string& key, const FieldValue& v) {
    return number_of(key, v, "milliseconds or a duration such as 800ms, 2s", [](std::string_view s) {
        if (auto n = parse_uint(s))
            return n;
        auto d = parse_duration(s);
        return d ? std::optional<uint64_t>(static_cast<uint64_t>(d->count())) : std::optional<uint64_t>{};
    });
}

std::string check_subject(Subject& s) {
    std::string& v = s.value;
    switch (s.kind) {
    case SubjectKind::Interface:
        if (v.empty() || v.size() > 15 || v.find_first_of("/ \t:") != std::string::npos)
            return "not an interface name: " + quote(v);
        return "";
    case SubjectKind::Host: {
        std::string lower = v;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        if (parse_mac(lower)) {
            v = lower;
            return "";
        }
        if (auto ip = canonical_ip(v)) {
            v = *ip;
            return "";
        }
        return "a host is a MAC (aa:bb:cc:dd:ee:ff) or an IP address, got " + quote(v);
    }
    case SubjectKind::Cgroup:
        if (v.empty())
            return "a cgroup path (/system.slice/foo.service) or unit name is required";
        if (v[0] == '/') {
            while (v.size() > 1 && v.back() == '/')
                v.pop_back();
            if (v.find("//") != std::string::npos || v.find("/../") != std::string::npos ||
                v.ends_with("/..") || v.find("/./") != std::string::npos)
                return "not a clean cgroup path: " + quote(v);
            return "";
        }
        if (v.find('/') != std::string::npos || v.find('.') == std::string::npos)
            return "not a cgroup path or unit name: " + quote(v);
        return "";
    case SubjectKind::FlowAggregate:
        FlowFilter::parse(v); // throws
        return "";
    case SubjectKind::User: {
        std::string why;
        if (!valid_user_name(v, &why))
            return "not a user name: " + quote(v) + " (" + why + ")";
        return "";
    }
    case SubjectKind::Class: {
        const auto at = v.find('@');
        const std::string name = v.substr(0, at);
        if (!valid_class_name(name))
            return "not a class name: " + quote(name) + " (1..63 of a-z, 0-9, '-', '_', '.')";
        if (at != std::string::npos) {
            const std::string iface = v.substr(at + 1);
            if (iface.empty() || iface.size() > 15 || iface.find_first_of("/ \t:@") != std::string::npos)
                return "not an interface name after '@' in " + quote(v) + " (a class is NAME or NAME@IFACE)";
        }
        return "";
    }
    }
    return "unknown subject kind";
}

} // namespace

namespace threshold_errors {

void fail(const std::string& key, const std::string& problem) {
    throw ThresholdError(key + ": " + problem);
}

std::string quote(std::string_view text) {
    return "'" + std::string(text) + "'";
}

} // namespace threshold_errors

std::string field_text(const std::string& key, const FieldValue& v) {
    if (const auto* s = std::get_if<std::string>(&v))
        return *s;
    fail(key, "expected a text value");
}

std::string_view to_string(UsageDirection d) {
    constexpr std::array<std::string_view, 3> kNames{"sent", "received", "both"};
    return enum_name(kNames, d);
}
std::string_view to_string(UsageLayer l) {
    constexpr std::array<std::string_view, 4> kNames{"l2", "l3", "l4", "payload"};
    return enum_name(kNames, l);
}
std::string_view to_string(ThresholdPeriod p) {
    constexpr std::array<std::string_view, 4> kNames{"day", "month", "rolling", "since"};
    return enum_name(kNames, p);
}
std::string_view to_string(ActionTrigger t) {
    constexpr std::array<std::string_view, 3> kNames{"limit", "burst", "any"};
    return enum_name(kNames, t);
}

std::string subject_text(const Subject& s) {
    return std::string(to_string(s.kind)) + ":" + s.value;
}

// ---- definitions ----------------------------------------------------------------------------

namespace {

// The fields parse_threshold reads: base's fields (when modifying) overlaid with the given ones.
FieldMap merged_fields(const FieldMap& given, const ThresholdDef* base) {
    FieldMap fields;
    if (base) {
        fields = threshold_fields(*base);
        // Switching away from rolling/throttle drops the key that only made sense there.
        auto changes_to = [&](const char* key, std::string_view keep) {
            auto it = given.find(key);
            return it != given.end() && std::holds_alternative<std::string>(it->second) &&
                   std::get<std::string>(it->second) != keep;
        };
        if (changes_to("period", "rolling") && !given.count("window_s"))
            fields.erase("window_s");
        if (changes_to("action", "throttle") && !given.count("action_rate"))
            fields.erase("action_rate");
    }
    for (const auto& [k, v] : given)
        fields[k] = v;

    static const std::vector<std::string> kKeys = {
        "name",  "subject_kind",    "subject",  "direction",     "layer",  "period",      "window_s", "step",
        "limit", "min_interval_ms", "rate_bps", "rate_window_s", "action", "action_rate", "action_on"};
    for (const auto& [k, v] : fields)
        if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end())
            fail(k, std::string("unknown key (valid keys: ") + kThresholdKeys + ")");
    return fields;
}

// Typed access to the merged fields, each problem a ThresholdError naming the key.
struct FieldReader {
    const FieldMap& fields;

    bool has(const char* k) const { return fields.count(k) != 0; }
    std::string text(const char* k) const { return field_text(k, fields.at(k)); }
    const FieldValue& at(const char* k) const { return fields.at(k); }
    template <typename E> void choice(const char* k, std::initializer_list<E> all, E& out) const {
        if (!has(k))
            return;
        const std::string t = text(k);
        auto e = parse_enum(t, all);
        if (!e)
            fail(k, "unknown value " + quote(t) + " (valid: " + enum_names(all) + ")");
        out = *e;
    }
};

void read_name_and_subject(const FieldReader& r, ThresholdDef& d) {
    if (!r.has("name"))
        fail("name", "required");
    d.name = r.text("name");
    if (d.name.empty() || d.name.size() > kMaxName ||
        !std::all_of(d.name.begin(), d.name.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; }))
        fail("name",
             "1.." + std::to_string(kMaxName) + " characters of A-Z a-z 0-9 . _ -, got " + quote(d.name));

    if (!r.has("subject_kind"))
        fail("subject_kind", "required (" + enum_names(kKinds) + ")");
    r.choice("subject_kind", kKinds, d.subject.kind);
    if (!r.has("subject"))
        fail("subject", "required");
    d.subject.value = r.text("subject");
    if (auto why = check_subject(d.subject); !why.empty())
        fail("subject", why);
}

void read_what_and_when(const FieldReader& r, ThresholdDef& d) {
    r.choice("direction", kDirs, d.direction);
    r.choice("layer", kLayers, d.layer);
    r.choice("period", kPeriods, d.period);
    if (r.has("window_s")) {
        if (d.period != ThresholdPeriod::Rolling)
            fail("window_s", "only for period rolling");
        d.window_s = seconds_of("window_s", r.at("window_s"));
    }
    if (d.period == ThresholdPeriod::Rolling) {
        if (!r.has("window_s"))
            fail("window_s", "required for period rolling");
        if (d.window_s < 1 || d.window_s > kMaxWindowS)
            fail("window_s", "must be 1 s .. 366 days, got " + std::to_string(d.window_s));
    }
}

void read_amounts(const FieldReader& r, ThresholdDef& d) {
    if (!r.has("step"))
        fail("step", "required (bytes, e.g. 1GB)");
    d.step = size_of("step", r.at("step"));
    if (d.step == 0)
        fail("step", "must be greater than 0");
    if (r.has("limit"))
        d.limit = size_of("limit", r.at("limit")); // 0: no limit
    if (d.limit != 0 && d.step > d.limit)
        fail("step", "step " + format_size(d.step) + " is larger than the limit " + format_size(d.limit));

    if (r.has("min_interval_ms")) {
        d.min_interval_ms = millis_of("min_interval_ms", r.at("min_interval_ms"));
        if (d.min_interval_ms > kMaxIntervalMs)
            fail("min_interval_ms", "must be at most 1 day (86400000 ms)");
    }
    if (r.has("rate_bps"))
        d.rate_bps = size_of("rate_bps", r.at("rate_bps"));
    if (r.has("rate_window_s")) {
        d.rate_window_s = seconds_of("rate_window_s", r.at("rate_window_s"));
        if (d.rate_window_s < 1 || d.rate_window_s > kMaxRateWindowS)
            fail("rate_window_s", "must be 1 .. 3600 s, got " + std::to_string(d.rate_window_s));
    }
}

void read_action(const FieldReader& r, ThresholdDef& d) {
    r.choice("action", kActions, d.action);
    if (r.has("action_rate")) {
        if (d.action != ActionKind::Throttle)
            fail("action_rate", "only for action throttle");
        d.action_rate = size_of("action_rate", r.at("action_rate"));
    }
    if (d.action == ActionKind::Throttle && d.action_rate == 0)
        fail("action_rate", "throttle needs a rate in bytes per second greater than 0");
    r.choice("action_on", kTriggers, d.action_on);
    if (d.action != ActionKind::Notify) {
        if (d.action_on == ActionTrigger::Limit && d.limit == 0)
            fail("action", "acting on the limit needs a limit");
        if (d.action_on == ActionTrigger::Burst && d.min_interval_ms == 0 && d.rate_bps == 0)
            fail("action_on", "burst needs min_interval_ms or rate_bps");
        if (d.action_on == ActionTrigger::Any && d.limit == 0 && d.min_interval_ms == 0 && d.rate_bps == 0)
            fail("action_on", "any needs a limit, min_interval_ms or rate_bps");
    }
}

} // namespace

ThresholdDef parse_threshold(const FieldMap& given, const ThresholdDef* base) {
    const FieldMap fields = merged_fields(given, base);
    const FieldReader r{fields};
    ThresholdDef d;
    read_name_and_subject(r, d);
    read_what_and_when(r, d);
    read_amounts(r, d);
    read_action(r, d);
    if (d.subject.kind == SubjectKind::Cgroup && d.layer == UsageLayer::L2)
        fail("layer", "cgroups are counted from the IP header on: use l3, l4 or payload");
    return d;
}

FieldMap threshold_fields(const ThresholdDef& d) {
    FieldMap m;
    m["name"] = d.name;
    m["subject_kind"] = std::string(to_string(d.subject.kind));
    m["subject"] = d.subject.value;
    m["direction"] = std::string(to_string(d.direction));
    m["layer"] = std::string(to_string(d.layer));
    m["period"] = std::string(to_string(d.period));
    if (d.period == ThresholdPeriod::Rolling)
        m["window_s"] = d.window_s;
    m["step"] = d.step;
    m["limit"] = d.limit;
    m["min_interval_ms"] = d.min_interval_ms;
    m["rate_bps"] = d.rate_bps;
    m["rate_window_s"] = d.rate_window_s;
    m["action"] = std::string(to_string(d.action));
    if (d.action == ActionKind::Throttle)
        m["action_rate"] = d.action_rate;
    m["action_on"] = std::string(to_string(d.action_on));
    return m;
}

nlohmann::json fields_to_json(const FieldMap& fields) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : fields) {
        if (const auto* u = std::get_if<uint64_t>(&v))
            j[k] = *u;
        else if (const auto* i = std::get_if<int64_t>(&v))
            j[k] = *i;
        else
            j[k] = std::get<std::string>(v);
    }
    return j;
}

FieldMap fields_from_json(const nlohmann::json& j) {
    FieldMap m;
    for (const auto& [k, v] : j.items()) {
        if (v.is_number_unsigned())
            m[k] = v.get<uint64_t>();
        else if (v.is_number_integer())
            m[k] = v.get<int64_t>();
        else
            m[k] = v.get<std::string>();
    }
    return m;
}

} // namespace nettally
