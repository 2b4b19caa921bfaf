// Accounting records, pure half: see records.h.
#include "core/records.h"

#include "core/config.h"
#include "core/enum_names.h"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace nettally {
namespace {

constexpr std::array<std::string_view, kRecordTypeCount> kTypeNames{"interface", "host",  "cgroup",
                                                                    "flow",      "alert", "class"};

std::vector<FieldSpec> counts_fields(bool with_l2) {
    std::vector<FieldSpec> v{{"packets", true}};
    if (with_l2)
        v.push_back({"l2_bytes", true});
    v.push_back({"l3_bytes", true});
    v.push_back({"l4_bytes", true});
    v.push_back({"payload_bytes", true});
    return v;
}

std::vector<FieldSpec> join(std::vector<FieldSpec> a, const std::vector<FieldSpec>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::string num(uint64_t v) {
    return std::to_string(v);
}

const FieldSpec kRulesVersion{"rules_version", true};

void add_counts(std::vector<std::string>& v, const Counts& c, bool with_l2) {
    v.push_back(num(c.packets));
    if (with_l2)
        v.push_back(num(c.l2));
    v.push_back(num(c.l3));
    v.push_back(num(c.l4));
    v.push_back(num(c.payload));
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos)
        return s;
    std::string out = "\"";
    for (char ch : s) {
        if (ch == '"')
            out += '"';
        out += ch;
    }
    return out + "\"";
}

std::string duration_text(std::chrono::milliseconds d) {
    const auto ms = d.count();
    if (ms % 86400000 == 0)
        return std::to_string(ms / 86400000) + "d";
    if (ms % 3600000 == 0)
        return std::to_string(ms / 3600000) + "h";
    if (ms % 60000 == 0)
        return std::to_string(ms / 60000) + "m";
    if (ms % 1000 == 0)
        return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

} // namespace

std::string_view to_string(RecordType t) {
    return kTypeNames[static_cast<size_t>(t)];
}

std::optional<RecordType> parse_record_type(std::string_view s) {
    for (size_t i = 0; i < kRecordTypeCount; i++)
        if (kTypeNames[i] == s)
            return kRecordTypes[i];
    return std::nullopt;
}

std::string_view to_string(RecordFormat f) {
    return f == RecordFormat::Csv ? "csv" : "jsonl";
}
std::string_view extension(RecordFormat f) {
    return to_string(f);
}

std::optional<RecordFormat> parse_record_format(std::string_view s) {
    return parse_enum(s, {RecordFormat::Csv, RecordFormat::Jsonl});
}

const std::vector<FieldSpec>& fields(RecordType t) {
    static const std::vector<FieldSpec> interval{{"start", false}, {"end", false}};
    static const std::vector<FieldSpec> flow{
        {"first_seen", false}, {"last_seen", false}, {"interface", false}, {"direction", false},
        {"family", false},     {"protocol", true},   {"src", false},       {"src_port", true},
        {"dst", false},        {"dst_port", true},   {"tcp_flags", true},  {"user", false},
        {"class", false}};
    static const std::vector<FieldSpec> alert{{"time", false},         {"name", false},    {"event", false},
                                              {"subject_kind", false}, {"subject", false}, {"metric", false},
                                              {"value", true},         {"limit", true},    {"action", false},
                                              {"message", false},      kRulesVersion};
    static const std::vector<FieldSpec> version{kRulesVersion};
    static const std::array<std::vector<FieldSpec>, kRecordTypeCount> all{
        join(join(join(interval, {{"interface", false}, {"role", false}, {"direction", false}}),
                  counts_fields(true)),
             version),
        join(join(join(interval, {{"interface", false},
                                  {"mac", false},
                                  {"ip", false},
                                  {"user", false},
                                  {"direction", false}}),
                  counts_fields(true)),
             version),
        join(join(join(interval, {{"cgroup", false}, {"direction", false}}), counts_fields(false)), version),
        join(join(flow, counts_fields(true)), version),
        alert,
        join(join(join(interval, {{"interface", false},
                                  {"direction", false},
                                  {"class_id", true},
                                  {"class", false},
                                  {"gone", false, true}}),
                  counts_fields(true)),
             version)};
    return all[static_cast<size_t>(t)];
}

std::string rfc3339(int64_t unix_us) {
    int64_t sec = unix_us >= 0 ? unix_us / 1000000 : -((-unix_us + 999999) / 1000000);
    const int64_t ms = (unix_us - sec * 1000000) / 1000;
    const time_t t = static_cast<time_t>(sec);
    tm u{};
    gmtime_r(&t, &u);
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", u.tm_year + 1900, u.tm_mon + 1,
                  u.tm_mday, u.tm_hour, u.tm_min, u.tm_sec, static_cast<int>(ms));
    return buf;
}

std::string compact_utc(int64_t unix_us) {
    const time_t t = static_cast<time_t>(unix_us / 1000000);
    tm u{};
    gmtime_r(&t, &u);
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02dZ", u.tm_year + 1900, u.tm_mon + 1, u.tm_mday,
                  u.tm_hour, u.tm_min, u.tm_sec);
    return buf;
}

std::string header_line(RecordType t, RecordFormat f) {
    if (f != RecordFormat::Csv)
        return "";
    std::string h;
    for (const auto& fs : fields(t)) {
        if (!h.empty())
            h += ',';
        h += fs.name;
    }
    return h + "\n";
}

std::string encode(const Record& r, RecordFormat f) {
    const auto& fs = fields(r.type);
    if (r.values.size() != fs.size())
        throw std::logic_error("record of type " + std::string(to_string(r.type)) + " has " +
                               std::to_string(r.values.size()) + " values, expected " +
                               std::to_string(fs.size()));
    std::string out;
    if (f == RecordFormat::Csv) {
        for (size_t i = 0; i < fs.size(); i++) {
            if (i)
                out += ',';
            out += csv_field(r.values[i]);
        }
        return out + "\n";
    }
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (size_t i = 0; i < fs.size(); i++) {
        if (fs[i].numeric)
            j[fs[i].name] = std::stoull(r.values[i]);
        else if (fs[i].boolean)
            j[fs[i].name] = r.values[i] == "true";
        else
            j[fs[i].name] = r.values[i];
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::optional<std::vector<std::string>> parse_csv_line(std::string_view line) {
    std::vector<std::string> out;
    std::string cur;
    size_t i = 0;
    while (true) {
        cur.clear();
        if (i < line.size() && line[i] == '"') {
            i++;
            while (true) {
                if (i >= line.size())
                    return std::nullopt;
                if (line[i] == '"') {
                    if (i + 1 < line.size() && line[i + 1] == '"') {
                        cur += '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                cur += line[i++];
            }
            if (i < line.size() && line[i] != ',')
                return std::nullopt;
        } else {
            while (i < line.size() && line[i] != ',') {
                if (line[i] == '"')
                    return std::nullopt;
                cur += line[i++];
            }
        }
        out.push_back(cur);
        if (i >= line.size())
            return out;
        i++; // ','
    }
}

Record interface_record(int64_t start_us, int64_t end_us, const std::string& interface,
                        const std::string& role, std::string_view direction, const Counts& c,
                        uint64_t rules_version) {
    Record r{RecordType::Interface,
             {rfc3339(start_us), rfc3339(end_us), interface, role, std::string(direction)}};
    add_counts(r.values, c, true);
    r.values.push_back(num(rules_version));
    return r;
}

Record host_record(int64_t start_us, int64_t end_us, const HostIdentity& host, std::string_view direction,
                   const Counts& c, uint64_t rules_version) {
    Record r{RecordType::Host,
             {rfc3339(start_us), rfc3339(end_us), host.interface, host.mac, host.ip, host.user,
              std::string(direction)}};
    add_counts(r.values, c, true);
    r.values.push_back(num(rules_version));
    return r;
}

Record cgroup_record(int64_t start_us, int64_t end_us, const std::string& path, std::string_view direction,
                     const Counts& c, uint64_t rules_version) {
    Record r{RecordType::Cgroup, {rfc3339(start_us), rfc3339(end_us), path, std::string(direction)}};
    add_counts(r.values, c, false);
    r.values.push_back(num(rules_version));
    return r;
}

Record class_record(int64_t start_us, int64_t end_us, const ClassIdentity& cls, const Counts& c,
                    uint64_t rules_version) {
    Record r{RecordType::Class,
             {rfc3339(start_us), rfc3339(end_us), cls.interface, std::string(cls.direction), num(cls.id),
              cls.name, cls.gone ? "true" : "false"}};
    add_counts(r.values, c, true);
    r.values.push_back(num(rules_version));
    return r;
}

Record flow_record(const FlowRecordIn& f) {
    Record r{RecordType::Flow,
             {rfc3339(f.first_us), rfc3339(f.last_us), f.interface, std::string(f.direction), f.family,
              num(f.proto), f.src, num(f.sport), f.dst, num(f.dport), num(f.tcp_flags), f.user, f.cls}};
    add_counts(r.values, f.counts, true);
    r.values.push_back(num(f.rules_version));
    return r;
}

Record alert_record(const AlertRecord& a) {
    return Record{RecordType::Alert,
                  {rfc3339(a.time_us), a.name, a.event, a.subject_kind, a.subject, a.metric, num(a.value),
                   num(a.limit), a.action, a.message, num(a.rules_version)}};
}

// ---- settings ----

std::string validate(const RecordsConfig& c) {
    using namespace records_limits;
    if (c.period < min_period || c.period > max_period)
        return "records.period: must be between 1s and 7d";
    if (c.interval < min_interval || c.interval > c.period)
        return "records.interval: must be between 1s and records.period (" + duration_text(c.period) + ")";
    if (c.max_file_size < min_file_size || c.max_file_size > max_file_size)
        return "records.max_file_size: must be between 512 and 1099511627776 bytes";
    if (!c.spool_dir.empty() && !c.spool_dir.is_absolute())
        return "records.spool_dir: must be an absolute path";
    return "";
}

std::string types_to_string(const RecordsConfig& c) {
    std::string s;
    for (auto t : kRecordTypes)
        if (c.type(t).enabled) {
            if (!s.empty())
                s += ',';
            s += std::string(to_string(t)) + "=" + std::string(to_string(c.type(t).format));
        }
    return s;
}

void types_from_string(std::string_view s, RecordsConfig& c) {
    std::array<bool, kRecordTypeCount> seen{};
    RecordsConfig out = c;
    for (auto& t : out.types)
        t.enabled = false;
    size_t pos = 0;
    while (pos <= s.size() && !s.empty()) {
        size_t comma = s.find(',', pos);
        std::string_view item =
            s.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        if (item.empty())
            throw std::invalid_argument("types: empty item in '" + std::string(s) + "'");
        std::string_view name = item, fmt;
        if (auto eq = item.find('='); eq != std::string_view::npos) {
            name = item.substr(0, eq);
            fmt = item.substr(eq + 1);
        }
        auto t = parse_record_type(name);
        if (!t)
            throw std::invalid_argument("types: unknown record type '" + std::string(name) +
                                        "' (known: interface, host, cgroup, flow, alert, class)");
        if (seen[static_cast<size_t>(*t)])
            throw std::invalid_argument("types: '" + std::string(name) + "' named twice");
        seen[static_cast<size_t>(*t)] = true;
        out.type(*t).enabled = true;
        if (!fmt.empty() || item.find('=') != std::string_view::npos) {
            auto f = parse_record_format(fmt);
            if (!f)
                throw std::invalid_argument("types: unknown format '" + std::string(fmt) + "' for " +
                                            std::string(name) + " (csv or jsonl)");
            out.type(*t).format = *f;
        }
        if (comma == std::string_view::npos)
            break;
        pos = comma + 1;
    }
    c = out;
}

RecordsConfig apply_overrides(const RecordsConfig& base, const nlohmann::json& o) {
    if (!o.is_object())
        throw std::invalid_argument("settings must be an object");
    RecordsConfig c = base;
    for (const auto& [key, v] : o.items()) {
        auto need = [&key = key](bool ok, const char* what) {
            if (!ok)
                throw std::invalid_argument(key + ": expected " + what);
        };
        if (key == "enabled" || key == "compress") {
            need(v.is_boolean(), "a boolean");
            (key == "enabled" ? c.enabled : c.compress) = v.get<bool>();
        } else if (key == "period" || key == "interval") {
            need(v.is_string(), "a duration such as \"5m\"");
            auto d = parse_duration(v.get<std::string>());
            if (!d)
                throw std::invalid_argument(key + ": '" + v.get<std::string>() +
                                            "' is not a duration (number with ms, s, m, h or d)");
            (key == "period" ? c.period : c.interval) = *d;
        } else if (key == "max_file_size" || key == "max_records") {
            need(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), "a number >= 0");
            (key == "max_file_size" ? c.max_file_size : c.max_records) = v.get<uint64_t>();
        } else if (key == "types") {
            need(v.is_string(), "text such as \"interface=csv,flow=jsonl\"");
            types_from_string(v.get<std::string>(), c);
        } else {
            throw std::invalid_argument(
                "unknown setting '" + key +
                "' (enabled, period, interval, types, max_file_size, max_records, compress)");
        }
    }
    if (auto why = validate(c); !why.empty())
        throw std::invalid_argument(why);
    return c;
}

nlohmann::json settings_to_json(const RecordsConfig& c) {
    return {{"enabled", c.enabled},
            {"period", duration_text(c.period)},
            {"interval", duration_text(c.interval)},
            {"types", types_to_string(c)},
            {"max_file_size", c.max_file_size},
            {"max_records", c.max_records},
            {"compress", c.compress}};
}

// ---- rotation ----

int64_t period_end(int64_t now_us, std::chrono::milliseconds period) {
    const int64_t p = static_cast<int64_t>(period.count()) * 1000;
    int64_t q = now_us / p;
    if (now_us < 0 && now_us % p != 0)
        q--;
    return (q + 1) * p;
}

bool full_before(const OpenFileFill& fill, uint64_t line_bytes, const RecordsConfig& c) {
    if (fill.records == 0)
        return false;
    if (fill.bytes + line_bytes > c.max_file_size)
        return true;
    return c.max_records != 0 && fill.records + 1 > c.max_records;
}

std::string_view to_string(RotateReason r) {
    constexpr std::array<std::string_view, 6> kNames{"full",     "period",   "demand",
                                                     "settings", "shutdown", "recovered"};
    return enum_name(kNames, r);
}

std::string sanitize_host(std::string_view host) {
    std::string s;
    for (char ch : host) {
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                        ch == '-' || ch == '.';
        s += ok ? ch : '-';
    }
    return s.empty() ? "host" : s;
}

std::string file_name(const std::string& host, RecordType t, int64_t start_us, uint64_t seq, RecordFormat f,
                      bool gz) {
    char seqbuf[32];
    std::snprintf(seqbuf, sizeof(seqbuf), "%06llu", static_cast<unsigned long long>(seq));
    return sanitize_host(host) + "_" + std::string(to_string(t)) + "_" + compact_utc(start_us) + "_" +
           seqbuf + "." + std::string(extension(f)) + (gz ? ".gz" : "");
}

std::optional<ParsedName> parse_file_name(std::string_view name) {
    ParsedName p;
    if (name.size() > 3 && name.substr(name.size() - 3) == ".gz") {
        p.gz = true;
        name.remove_suffix(3);
    }
    auto dot = name.rfind('.');
    if (dot == std::string_view::npos)
        return std::nullopt;
    auto f = parse_record_format(name.substr(dot + 1));
    if (!f)
        return std::nullopt;
    p.format = *f;
    name = name.substr(0, dot);
    // host_type_start_seq; host has no '_'.
    auto u1 = name.find('_');
    if (u1 == std::string_view::npos)
        return std::nullopt;
    auto u2 = name.find('_', u1 + 1);
    if (u2 == std::string_view::npos)
        return std::nullopt;
    auto u3 = name.find('_', u2 + 1);
    if (u3 == std::string_view::npos || name.find('_', u3 + 1) != std::string_view::npos)
        return std::nullopt;
    p.host = std::string(name.substr(0, u1));
    auto t = parse_record_type(name.substr(u1 + 1, u2 - u1 - 1));
    if (!t || p.host.empty())
        return std::nullopt;
    p.type = *t;
    p.start = std::string(name.substr(u2 + 1, u3 - u2 - 1));
    if (p.start.size() != 16 || p.start[8] != 'T' || p.start[15] != 'Z')
        return std::nullopt;
    auto seq = name.substr(u3 + 1);
    if (seq.size() < 6)
        return std::nullopt;
    auto [ptr, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), p.seq);
    if (ec != std::errc() || ptr != seq.data() + seq.size())
        return std::nullopt;
    return p;
}

} // namespace nettally
