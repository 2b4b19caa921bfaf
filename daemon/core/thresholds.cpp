// Thresholds engine. See thresholds.h.
#include "core/thresholds.h"

#include "core/cgroups.h"
#include "core/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>
#include <numeric>

namespace nettally {
namespace {

constexpr uint64_t kMaxWindowS = 366ull * 86400;
constexpr uint64_t kMaxRateWindowS = 3600;
constexpr uint64_t kMaxIntervalMs = 86400ull * 1000;
constexpr size_t kMaxName = 64;

[[noreturn]] void fail(const std::string& key, const std::string& problem) {
    throw ThresholdError(key + ": " + problem);
}

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

uint64_t figure(const Counts& c, UsageLayer l) {
    switch (l) {
    case UsageLayer::L2:
        return c.l2;
    case UsageLayer::L3:
        return c.l3;
    case UsageLayer::L4:
        return c.l4;
    case UsageLayer::Payload:
        return c.payload;
    }
    return 0;
}

template <typename E>
std::optional<E> parse_enum(std::string_view text, std::initializer_list<E> all) {
    for (E e : all)
        if (to_string(e) == text)
            return e;
    return std::nullopt;
}

template <typename E>
std::string enum_names(std::initializer_list<E> all) {
    std::string out;
    for (E e : all)
        out += (out.empty() ? "" : ", ") + std::string(to_string(e));
    return out;
}

constexpr auto kKinds = {SubjectKind::Interface, SubjectKind::Host, SubjectKind::Cgroup, SubjectKind::FlowAggregate};
constexpr auto kDirs = {UsageDirection::Sent, UsageDirection::Received, UsageDirection::Both};
constexpr auto kLayers = {UsageLayer::L2, UsageLayer::L3, UsageLayer::L4, UsageLayer::Payload};
constexpr auto kPeriods = {ThresholdPeriod::Day, ThresholdPeriod::Month, ThresholdPeriod::Rolling,
                           ThresholdPeriod::Since};
constexpr auto kActions = {ActionKind::Notify, ActionKind::Throttle, ActionKind::Block};
constexpr auto kTriggers = {ActionTrigger::Limit, ActionTrigger::Burst, ActionTrigger::Any};

std::string text_of(const std::string& key, const FieldValue& v) {
    if (const auto* s = std::get_if<std::string>(&v))
        return *s;
    fail(key, "expected a text value");
}

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
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
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
    }
    return "unknown subject kind";
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

nlohmann::json field_json(const FieldValue& v) {
    if (const auto* u = std::get_if<uint64_t>(&v))
        return *u;
    if (const auto* i = std::get_if<int64_t>(&v))
        return *i;
    return std::get<std::string>(v);
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

} // namespace

std::string_view to_string(UsageDirection d) {
    switch (d) {
    case UsageDirection::Sent:
        return "sent";
    case UsageDirection::Received:
        return "received";
    case UsageDirection::Both:
        return "both";
    }
    return "?";
}
std::string_view to_string(UsageLayer l) {
    switch (l) {
    case UsageLayer::L2:
        return "l2";
    case UsageLayer::L3:
        return "l3";
    case UsageLayer::L4:
        return "l4";
    case UsageLayer::Payload:
        return "payload";
    }
    return "?";
}
std::string_view to_string(ThresholdPeriod p) {
    switch (p) {
    case ThresholdPeriod::Day:
        return "day";
    case ThresholdPeriod::Month:
        return "month";
    case ThresholdPeriod::Rolling:
        return "rolling";
    case ThresholdPeriod::Since:
        return "since";
    }
    return "?";
}
std::string_view to_string(ActionTrigger t) {
    switch (t) {
    case ActionTrigger::Limit:
        return "limit";
    case ActionTrigger::Burst:
        return "burst";
    case ActionTrigger::Any:
        return "any";
    }
    return "?";
}
std::string_view to_string(ThresholdEvent::Kind k) {
    using K = ThresholdEvent::Kind;
    switch (k) {
    case K::StepCrossed:
        return "StepCrossed";
    case K::LimitReached:
        return "LimitReached";
    case K::Burst:
        return "Burst";
    case K::RateExceeded:
        return "RateExceeded";
    case K::ActionApplied:
        return "ActionApplied";
    case K::ActionLifted:
        return "ActionLifted";
    case K::ActionFailed:
        return "ActionFailed";
    }
    return "?";
}

AlertRecord alert_record_of(const ThresholdEvent& e, const ThresholdDef* def) {
    using K = ThresholdEvent::Kind;
    AlertRecord a;
    a.time_us = e.time_us;
    a.name = e.name;
    static const std::pair<K, const char*> kEvents[] = {
        {K::StepCrossed, "step_crossed"},     {K::LimitReached, "limit_reached"}, {K::Burst, "burst"},
        {K::RateExceeded, "rate_exceeded"},   {K::ActionApplied, "action_applied"},
        {K::ActionLifted, "action_lifted"},   {K::ActionFailed, "action_failed"}};
    for (const auto& [k, text] : kEvents)
        if (k == e.kind)
            a.event = text;
    if (def) {
        a.subject_kind = std::string(to_string(def->subject.kind));
        a.subject = def->subject.value;
    } else if (const auto colon = e.subject.find(':'); colon != std::string::npos) {
        a.subject_kind = e.subject.substr(0, colon);
        a.subject = e.subject.substr(colon + 1);
    } else {
        a.subject = e.subject;
    }
    const std::string usage_metric =
        def ? std::string(to_string(def->layer)) + "_" + std::string(to_string(def->direction)) : "bytes";
    a.action = !e.action.empty() ? e.action : def ? std::string(to_string(def->action)) : "";
    switch (e.kind) {
    case K::StepCrossed:
        a.metric = usage_metric;
        a.value = e.usage;
        a.limit = def ? e.step_index * def->step : 0;
        a.message = "step " + std::to_string(e.step_index) + " crossed";
        if (e.value2)
            a.message += " (" + std::to_string(e.value2) + " steps skipped)";
        break;
    case K::LimitReached:
        a.metric = usage_metric;
        a.value = e.usage;
        a.limit = e.value;
        a.message = "limit reached";
        break;
    case K::Burst:
        a.metric = "interval_ms";
        a.value = e.value;
        a.limit = e.value2;
        a.message = "steps crossed " + std::to_string(e.value) + " ms apart";
        break;
    case K::RateExceeded:
        a.metric = "bytes_per_s";
        a.value = e.value;
        a.limit = e.value2;
        a.message = "rate above the set rate";
        break;
    case K::ActionApplied:
    case K::ActionLifted:
    case K::ActionFailed:
        a.metric = usage_metric;
        a.value = e.usage;
        a.message = e.reason;
        break;
    }
    return a;
}

std::string subject_text(const Subject& s) { return std::string(to_string(s.kind)) + ":" + s.value; }

std::string format_size(uint64_t bytes) {
    static const std::pair<const char*, uint64_t> kUnits[] = {{"TB", 1000000000000}, {"GB", 1000000000},
                                                              {"MB", 1000000},       {"kB", 1000},
                                                              {"TiB", 1ull << 40},   {"GiB", 1ull << 30},
                                                              {"MiB", 1ull << 20},   {"KiB", 1ull << 10}};
    if (bytes > 0)
        for (const auto& [name, m] : kUnits)
            if (bytes % m == 0)
                return std::to_string(bytes / m) + " " + name;
    return std::to_string(bytes) + " B";
}

// ---- flow filters ---------------------------------------------------------------------------

bool FlowFilter::Prefix::matches(uint8_t fam, const uint32_t a[4]) const {
    if (fam != family)
        return false;
    const auto* x = reinterpret_cast<const uint8_t*>(a);
    const auto* y = reinterpret_cast<const uint8_t*>(addr);
    const unsigned full = len / 8, rest = len % 8;
    if (std::memcmp(x, y, full) != 0)
        return false;
    if (rest == 0)
        return true;
    const uint8_t mask = static_cast<uint8_t>(0xff00 >> rest);
    return (x[full] & mask) == (y[full] & mask);
}

bool FlowFilter::matches(const FlowEntry& f, const std::string& ifname) const {
    const auto& k = f.key;
    if (!iface.empty() && ifname != iface)
        return false;
    if (proto && k.proto != *proto)
        return false;
    if (src && !src->matches(k.family, k.src))
        return false;
    if (dst && !dst->matches(k.family, k.dst))
        return false;
    if (net && !net->matches(k.family, k.src) && !net->matches(k.family, k.dst))
        return false;
    if (sport && k.sport != *sport)
        return false;
    if (dport && k.dport != *dport)
        return false;
    if (port && k.sport != *port && k.dport != *port)
        return false;
    return true;
}

FlowFilter FlowFilter::parse(std::string_view text) {
    FlowFilter f;
    if (text.empty())
        fail("subject", "a flow filter needs at least one term (iface, proto, src, dst, net, sport, dport, port)");
    std::vector<std::string> seen;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find(',', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view term = text.substr(pos, end - pos);
        pos = end + 1;
        const size_t eq = term.find('=');
        if (eq == std::string_view::npos)
            fail("subject", "flow filter term " + quote(term) + " is not key=value");
        const std::string key(term.substr(0, eq));
        const std::string_view val = term.substr(eq + 1);
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            fail("subject", "flow filter key " + quote(key) + " given twice");
        seen.push_back(key);
        auto prefix = [&]() {
            Prefix p;
            const size_t slash = val.find('/');
            const auto ip = canonical_ip(val.substr(0, slash), &p.family, p.addr);
            if (!ip)
                fail("subject", key + "=" + std::string(val) + ": not an address or prefix");
            const unsigned max = p.family == NT_AF_INET ? 32 : 128;
            p.len = static_cast<uint8_t>(max);
            if (slash != std::string_view::npos) {
                auto n = parse_uint(val.substr(slash + 1));
                if (!n || *n > max)
                    fail("subject", key + "=" + std::string(val) + ": prefix length must be 0.." +
                                        std::to_string(max));
                p.len = static_cast<uint8_t>(*n);
            }
            return p;
        };
        auto port16 = [&]() {
            auto n = parse_uint(val);
            if (!n || *n > 65535)
                fail("subject", key + "=" + std::string(val) + ": a port is 0..65535");
            return static_cast<uint16_t>(*n);
        };
        if (key == "iface") {
            if (val.empty() || val.size() > 15)
                fail("subject", "iface=" + std::string(val) + ": not an interface name");
            f.iface = std::string(val);
        } else if (key == "proto") {
            static const std::pair<std::string_view, uint8_t> kNames[] = {
                {"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmpv6", 58}};
            const auto it = std::find_if(std::begin(kNames), std::end(kNames),
                                         [&](const auto& p) { return p.first == val; });
            if (it != std::end(kNames)) {
                f.proto = it->second;
            } else {
                auto n = parse_uint(val);
                if (!n || *n > 255)
                    fail("subject", "proto=" + std::string(val) + ": use tcp, udp, icmp, icmpv6 or 0..255");
                f.proto = static_cast<uint8_t>(*n);
            }
        } else if (key == "src") {
            f.src = prefix();
        } else if (key == "dst") {
            f.dst = prefix();
        } else if (key == "net") {
            f.net = prefix();
        } else if (key == "sport") {
            f.sport = port16();
        } else if (key == "dport") {
            f.dport = port16();
        } else if (key == "port") {
            f.port = port16();
        } else {
            fail("subject", "unknown flow filter key " + quote(key) +
                                " (valid: iface, proto, src, dst, net, sport, dport, port)");
        }
        if (end == text.size())
            break;
    }
    return f;
}

// ---- definitions ----------------------------------------------------------------------------

ThresholdDef parse_threshold(const FieldMap& given, const ThresholdDef* base) {
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
        "name",          "subject_kind", "subject",     "direction",  "layer",  "period",      "window_s", "step",
        "limit",         "min_interval_ms", "rate_bps", "rate_window_s", "action", "action_rate", "action_on"};
    for (const auto& [k, v] : fields)
        if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end())
            fail(k, std::string("unknown key (valid keys: ") + kThresholdKeys + ")");

    ThresholdDef d;
    auto has = [&](const char* k) { return fields.count(k) != 0; };
    auto text = [&](const char* k) { return text_of(k, fields.at(k)); };
    auto choice = [&](const char* k, auto all, auto& out) {
        if (!has(k))
            return;
        const std::string t = text(k);
        auto e = parse_enum(t, all);
        if (!e)
            fail(k, "unknown value " + quote(t) + " (valid: " + enum_names(all) + ")");
        out = *e;
    };

    if (!has("name"))
        fail("name", "required");
    d.name = text("name");
    if (d.name.empty() || d.name.size() > kMaxName ||
        !std::all_of(d.name.begin(), d.name.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.'; }))
        fail("name", "1.." + std::to_string(kMaxName) + " characters of A-Z a-z 0-9 . _ -, got " + quote(d.name));

    if (!has("subject_kind"))
        fail("subject_kind", "required (" + enum_names(kKinds) + ")");
    choice("subject_kind", kKinds, d.subject.kind);
    if (!has("subject"))
        fail("subject", "required");
    d.subject.value = text("subject");
    if (auto why = check_subject(d.subject); !why.empty())
        fail("subject", why);

    choice("direction", kDirs, d.direction);
    choice("layer", kLayers, d.layer);
    choice("period", kPeriods, d.period);
    if (has("window_s")) {
        if (d.period != ThresholdPeriod::Rolling)
            fail("window_s", "only for period rolling");
        d.window_s = seconds_of("window_s", fields.at("window_s"));
    }
    if (d.period == ThresholdPeriod::Rolling) {
        if (!has("window_s"))
            fail("window_s", "required for period rolling");
        if (d.window_s < 1 || d.window_s > kMaxWindowS)
            fail("window_s", "must be 1 s .. 366 days, got " + std::to_string(d.window_s));
    }

    if (!has("step"))
        fail("step", "required (bytes, e.g. 1GB)");
    d.step = size_of("step", fields.at("step"));
    if (d.step == 0)
        fail("step", "must be greater than 0");
    if (has("limit"))
        d.limit = size_of("limit", fields.at("limit")); // 0: no limit
    if (d.limit != 0 && d.step > d.limit)
        fail("step", "step " + format_size(d.step) + " is larger than the limit " + format_size(d.limit));

    if (has("min_interval_ms")) {
        d.min_interval_ms = millis_of("min_interval_ms", fields.at("min_interval_ms"));
        if (d.min_interval_ms > kMaxIntervalMs)
            fail("min_interval_ms", "must be at most 1 day (86400000 ms)");
    }
    if (has("rate_bps"))
        d.rate_bps = size_of("rate_bps", fields.at("rate_bps"));
    if (has("rate_window_s")) {
        d.rate_window_s = seconds_of("rate_window_s", fields.at("rate_window_s"));
        if (d.rate_window_s < 1 || d.rate_window_s > kMaxRateWindowS)
            fail("rate_window_s", "must be 1 .. 3600 s, got " + std::to_string(d.rate_window_s));
    }

    choice("action", kActions, d.action);
    if (has("action_rate")) {
        if (d.action != ActionKind::Throttle)
            fail("action_rate", "only for action throttle");
        d.action_rate = size_of("action_rate", fields.at("action_rate"));
    }
    if (d.action == ActionKind::Throttle && d.action_rate == 0)
        fail("action_rate", "throttle needs a rate in bytes per second greater than 0");
    choice("action_on", kTriggers, d.action_on);
    if (d.action != ActionKind::Notify) {
        if (d.action_on == ActionTrigger::Limit && d.limit == 0)
            fail("action", "acting on the limit needs a limit");
        if (d.action_on == ActionTrigger::Burst && d.min_interval_ms == 0 && d.rate_bps == 0)
            fail("action_on", "burst needs min_interval_ms or rate_bps");
        if (d.action_on == ActionTrigger::Any && d.limit == 0 && d.min_interval_ms == 0 && d.rate_bps == 0)
            fail("action_on", "any needs a limit, min_interval_ms or rate_bps");
    }
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
    case SubjectKind::FlowAggregate:
        break;
    }
    return std::nullopt;
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
               " (not in the tracked subtrees, cgroups.subtrees, at the last walk: a new cgroup is seen within 10 s)";
    }
    case SubjectKind::FlowAggregate: {
        const FlowFilter f = FlowFilter::parse(s.value);
        if (!f.iface.empty() && !c_.interfaces().count(f.iface))
            return "unknown interface " + quote(f.iface) + " in the flow filter (accounted: " + known_ifaces() + ")";
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
    const uint64_t then = counted_at(st.samples, now - static_cast<int64_t>(def.rate_window_s) * 1000000, &from);
    if (now <= from)
        return 0;
    return static_cast<uint64_t>(static_cast<long double>(st.samples.back().second - then) * 1e6L /
                                 static_cast<long double>(now - from));
}

ThresholdEngine::ThresholdEngine(PeriodSpec spec, ActionEnforcer& enforcer)
    : calendar_(std::move(spec)), enforcer_(enforcer) {}

void ThresholdEngine::set_period_spec(PeriodSpec spec) { calendar_ = History(std::move(spec)); }

const Threshold* ThresholdEngine::find(const std::string& name) const {
    auto it = t_.find(name);
    return it == t_.end() ? nullptr : &it->second;
}

std::vector<ThresholdEvent> ThresholdEngine::take_events() { return std::exchange(events_, {}); }

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
        const auto p = calendar_.period_at(t.def.period == ThresholdPeriod::Day ? PeriodKind::Day : PeriodKind::Month,
                                           now_us);
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
    if (auto n = changes.find("name"); n != changes.end() && text_of("name", n->second) != name)
        fail("name", "a threshold cannot be renamed (remove it and add it again)");
    const ThresholdDef next = parse_threshold(changes, &t.def);
    check_def(next, src);
    const ThresholdDef old = t.def;
    const bool same_watch = next.subject == old.subject && next.direction == old.direction &&
                            next.layer == old.layer && next.period == old.period && next.window_s == old.window_s;
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
            fail("name", "threshold " + quote(d.name) + " exists already (added at run time; remove it first)");
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

void ThresholdEngine::set_config(const std::vector<ThresholdDef>& defs, const UsageSource& src, int64_t now_us) {
    check_config(defs, src);
    for (auto it = t_.begin(); it != t_.end();) {
        Threshold& t = it->second;
        const auto d = std::find_if(defs.begin(), defs.end(), [&](const auto& x) { return x.name == it->first; });
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

void ThresholdEngine::observe_one(Threshold& t, const UsageSource& src, int64_t now_us) {
    ThresholdState& s = t.st;
    const ThresholdDef& d = t.def;

    // What the subject did since the last poll.
    const std::optional<Counts> total = source_total(t, src);
    uint64_t delta = 0;
    if (total) {
        const uint64_t now_v = figure(*total, d.layer);
        const uint64_t last_v = s.last_total ? figure(*s.last_total, d.layer) : 0;
        delta = now_v >= last_v ? now_v - last_v : 0; // totals never go back; a lost state resyncs
        s.last_total = total;
    }
    const int64_t t_prev = s.last_observe_us;
    const int64_t when = std::max(now_us, t_prev); // a clock stepped back keeps the latest time

    // Calendar rollover: the delta goes into the period the poll falls in.
    if (s.period_end_us != 0 && when >= s.period_end_us) {
        lift_action(t, "rollover", when);
        const auto p = calendar_.period_at(d.period == ThresholdPeriod::Day ? PeriodKind::Day : PeriodKind::Month,
                                           when);
        s.period_start_us = p.start_us;
        s.period_end_us = p.end_us;
        s.usage = 0;
        s.step_index = 0;
        s.limit_reached = false;
        s.last_cross_us = 0;
    }

    // Samples of the cumulative count: rolling usage and the rate alert.
    s.counted += delta;
    const int64_t keep_us = static_cast<int64_t>(std::max(d.window_s, d.rate_window_s)) * 1000000;
    const int64_t slot_us = std::max<int64_t>(keep_us / static_cast<int64_t>(kRollingSlots), 1);
    if (s.samples.size() >= 2 && when - s.samples[s.samples.size() - 2].first < slot_us)
        s.samples.back() = {when, s.counted};
    else
        s.samples.emplace_back(when, s.counted);
    while (s.samples.size() > 2 && s.samples[1].first <= when - keep_us)
        s.samples.pop_front();

    const uint64_t prev_usage = s.usage;
    if (d.period == ThresholdPeriod::Rolling)
        s.usage = s.counted - counted_at(s.samples, when - static_cast<int64_t>(d.window_s) * 1000000);
    else
        s.usage += delta;

    // Steps.
    const uint64_t idx = s.usage / d.step;
    if (idx < s.step_index) // only a rolling window goes down
        s.step_index = idx;
    if (idx > s.step_index) {
        const uint64_t first = std::max<uint64_t>(s.step_index + 1, idx > kMaxStepEvents ? idx - kMaxStepEvents + 1 : 1);
        for (uint64_t k = first; k <= idx; ++k) {
            // Interpolated crossing time of k * step between the previous poll and this one.
            int64_t cross = when;
            const uint64_t target = k * d.step;
            if (s.usage > prev_usage && target > prev_usage && when > t_prev)
                cross = t_prev + static_cast<int64_t>(static_cast<long double>(target - prev_usage) /
                                                      static_cast<long double>(s.usage - prev_usage) *
                                                      static_cast<long double>(when - t_prev));
            emit(ThresholdEvent::Kind::StepCrossed, t, when, k, d.step, k == first ? first - s.step_index - 1 : 0);
            if (d.min_interval_ms != 0 && s.last_cross_us != 0 &&
                cross - s.last_cross_us < static_cast<int64_t>(d.min_interval_ms) * 1000) {
                emit(ThresholdEvent::Kind::Burst, t, cross, k,
                     static_cast<uint64_t>(std::max<int64_t>(cross - s.last_cross_us, 0)) / 1000, d.min_interval_ms);
                if (d.action_on != ActionTrigger::Limit)
                    apply_action(t, "burst", when);
            }
            s.last_cross_us = cross;
        }
        s.step_index = idx;
    }

    // Limit.
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
    s.last_observe_us = when;
}

// ---- persistence ----------------------------------------------------------------------------

nlohmann::json ThresholdEngine::to_json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, t] : t_) {
        nlohmann::json def = nlohmann::json::object();
        for (const auto& [k, v] : threshold_fields(t.def))
            def[k] = field_json(v);
        const ThresholdState& s = t.st;
        nlohmann::json samples = nlohmann::json::array();
        for (const auto& [at, c] : s.samples)
            samples.push_back({at, c});
        list.push_back({{"def", def},
                        {"from_config", t.from_config},
                        {"set_at_us", t.set_at_us},
                        {"state",
                         {{"period_start_us", s.period_start_us},
                          {"period_end_us", s.period_end_us},
                          {"last_total", s.last_total ? nettally::to_json(*s.last_total) : nlohmann::json(nullptr)},
                          {"usage", s.usage},
                          {"step_index", s.step_index},
                          {"limit_reached", s.limit_reached},
                          {"last_cross_us", s.last_cross_us},
                          {"rate_alerted", s.rate_alerted},
                          {"action_active", s.action_active},
                          {"flow_finished", nettally::to_json(s.flow_finished)},
                          {"last_observe_us", s.last_observe_us},
                          {"counted", s.counted},
                          {"samples", samples}}}});
    }
    return {{"version", 1}, {"thresholds", list}};
}

void ThresholdEngine::restore(const nlohmann::json& j, int64_t now_us, std::vector<std::string>* problems) {
    if (j.at("version").get<int>() != 1)
        throw std::runtime_error("unsupported thresholds version " + std::to_string(j.at("version").get<int>()));
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
        const auto& js = e.at("state");
        ThresholdState& s = t.st;
        s.period_start_us = js.at("period_start_us").get<int64_t>();
        s.period_end_us = js.at("period_end_us").get<int64_t>();
        if (!js.at("last_total").is_null())
            s.last_total = counts_from_json(js.at("last_total"));
        s.usage = js.at("usage").get<uint64_t>();
        s.step_index = js.at("step_index").get<uint64_t>();
        s.limit_reached = js.at("limit_reached").get<bool>();
        s.last_cross_us = js.at("last_cross_us").get<int64_t>();
        s.rate_alerted = js.at("rate_alerted").get<bool>();
        s.action_active = js.at("action_active").get<bool>();
        s.flow_finished = counts_from_json(js.at("flow_finished"));
        s.last_observe_us = js.at("last_observe_us").get<int64_t>();
        s.counted = js.at("counted").get<uint64_t>();
        for (const auto& p : js.at("samples"))
            s.samples.emplace_back(p.at(0).get<int64_t>(), p.at(1).get<uint64_t>());

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
