// nettallyctl's pure half (see format.h): everything between "the daemon's answer as plain
// structs" and "the text to print", plus argument parsing and error classification.
#include "format.h"
#include "format_thresholds.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <limits>
#include <type_traits>

namespace nettally::ctl {

namespace {

// Hinnant's days-to-civil algorithm: exact over the whole uint64 µs range, where
// std::chrono::year stops at 32767 and gmtime_r would need a time_t round trip.
struct CivilTime {
    std::int64_t year;
    unsigned month, day, hour, minute, second, micros;
};

CivilTime to_civil(MicrosSinceEpoch t) {
    const std::uint64_t secs = t / 1'000'000;
    const auto days = static_cast<std::int64_t>(secs / 86400);
    const std::uint64_t sod = secs % 86400;

    const std::int64_t z = days + 719468;
    const std::int64_t era = z / 146097; // z >= 0: no negative-era correction needed
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);

    return CivilTime{y,
                     m,
                     d,
                     static_cast<unsigned>(sod / 3600),
                     static_cast<unsigned>(sod / 60 % 60),
                     static_cast<unsigned>(sod % 60),
                     static_cast<unsigned>(t % 1'000'000)};
}

// Display width of a cell: code points, so a UTF-8 interface name does not skew columns.
std::size_t display_width(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool is_icmp(std::uint8_t proto) {
    return proto == 1 || proto == 58;
}

// Which Counters field a sort key names, for the hosts table's byte columns.
struct Layer {
    std::string_view header;
    std::uint64_t Counters::*field;
};

Layer layer_for(std::string_view sort_key) {
    if (sort_key == "l3")
        return {"L3", &Counters::l3};
    if (sort_key == "l4")
        return {"L4", &Counters::l4};
    if (sort_key == "payload")
        return {"PAYLOAD", &Counters::payload};
    return {"L2", &Counters::l2};
}

std::vector<std::string> counter_cells(const Counters& c) {
    return {std::to_string(c.packets), human_bytes(c.l2), human_bytes(c.l3), human_bytes(c.l4),
            human_bytes(c.payload)};
}

bool is_time_key(std::string_view key) {
    return key.size() > 3 && key.substr(key.size() - 3) == "_at";
}

std::optional<MicrosSinceEpoch> status_time(std::string_view key, const StatusValue& v) {
    if (!is_time_key(key))
        return std::nullopt;
    if (const auto* u = std::get_if<std::uint64_t>(&v))
        return *u;
    if (const auto* i = std::get_if<std::int64_t>(&v); i && *i >= 0)
        return static_cast<MicrosSinceEpoch>(*i);
    return std::nullopt;
}

// GetStatus keys in the order the XML documents them, so `status` reads top-down like the
// API reference; keys added later follow alphabetically.
constexpr std::array kStatusOrder = {
    "version",
    "pid",
    "started_at",
    "config_path",
    "poll_interval_ms",
    "polls",
    "last_poll_at",
    "interfaces",
    "flows",
    "flow_capacity",
    "hosts",
    "host_capacity",
    "flow_overflow_packets",
    "host_overflow_packets",
    "reconcile_checks",
    "reconcile_exact",
    "reconcile_violations",
};

std::string status_value_text(std::string_view key, const StatusValue& v) {
    if (auto t = status_time(key, v))
        return *t == 0 ? std::string("never") : human_time(*t) + " UTC";
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t>) {
                return std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                std::array<char, 32> buf{};
                std::snprintf(buf.data(), buf.size(), "%g", x);
                return buf.data();
            } else if constexpr (std::is_same_v<T, std::string>) {
                return x;
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                std::string out;
                for (const auto& s : x)
                    out += (out.empty() ? "" : ", ") + s;
                return out;
            } else {
                return "(D-Bus type " + x.signature + ")";
            }
        },
        v);
}

Json status_value_json(std::string_view key, const StatusValue& v) {
    if (auto t = status_time(key, v))
        return time_json(*t);
    return std::visit(
        [](const auto& x) -> Json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, Unsupported>)
                return nullptr;
            else
                return x;
        },
        v);
}

} // namespace

// ---- scalar formatting -----------------------------------------------------------------

std::string human_bytes(std::uint64_t bytes) {
    if (bytes < 1024)
        return std::to_string(bytes) + " B";

    static constexpr std::array<const char*, 7> kUnits = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    std::size_t unit = 1;
    while (unit + 1 < kUnits.size() && (bytes >> (10 * (unit + 1))) != 0)
        ++unit;

    // Integer arithmetic keeps 2^64-1 exact; rem * 10 stays below 2^64 because rem < 2^60.
    const unsigned shift = 10 * static_cast<unsigned>(unit);
    std::uint64_t whole = bytes >> shift;
    const std::uint64_t rem = bytes & ((std::uint64_t{1} << shift) - 1);
    std::uint64_t tenth = (rem * 10 + (std::uint64_t{1} << (shift - 1))) >> shift;
    if (tenth == 10) {
        ++whole;
        tenth = 0;
    }
    // 1023.95 KiB rounds to 1024.0 KiB: show it as the next unit instead.
    if (whole == 1024 && unit + 1 < kUnits.size()) {
        whole = 1;
        ++unit;
    }
    return std::to_string(whole) + "." + std::to_string(tenth) + " " + kUnits[unit];
}

std::string rfc3339_utc(MicrosSinceEpoch t) {
    const CivilTime c = to_civil(t);
    std::array<char, 48> buf{};
    std::snprintf(buf.data(), buf.size(), "%04lld-%02u-%02uT%02u:%02u:%02u.%06uZ",
                  static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second, c.micros);
    return buf.data();
}

Json time_json(MicrosSinceEpoch t) {
    return t == 0 ? Json(nullptr) : Json(rfc3339_utc(t));
}

std::string human_time(MicrosSinceEpoch t, std::string_view never) {
    if (t == 0)
        return std::string(never);
    const CivilTime c = to_civil(t);
    std::array<char, 48> buf{};
    std::snprintf(buf.data(), buf.size(), "%04lld-%02u-%02u %02u:%02u:%02u", static_cast<long long>(c.year),
                  c.month, c.day, c.hour, c.minute, c.second);
    return buf.data();
}

std::string proto_name(std::uint8_t proto) {
    switch (proto) {
    case 1:
        return "icmp";
    case 6:
        return "tcp";
    case 17:
        return "udp";
    case 58:
        return "icmpv6";
    default:
        return std::to_string(proto);
    }
}

std::string tcp_flags_string(std::uint8_t flags) {
    static constexpr std::string_view kLetters = "CEUAPRSF";
    std::string out(kLetters.size(), '.');
    for (std::size_t i = 0; i < kLetters.size(); ++i)
        if (flags & (0x80U >> i))
            out[i] = kLetters[i];
    return out;
}

// ---- --json shapes ---------------------------------------------------------------------

Json counters_json(const Counters& c) {
    return Json{{"packets", c.packets}, {"l2", c.l2}, {"l3", c.l3}, {"l4", c.l4}, {"payload", c.payload}};
}

Json interfaces_json(const std::vector<InterfaceRow>& rows) {
    static constexpr std::string_view kFinished = ".finished_flows";
    Json list = Json::array();
    for (const auto& r : rows) {
        // Finished flows are flows, not unattributed traffic: they get their own key.
        Json unattributed = Json::object(), finished = Json::object();
        for (const auto& [key, c] : r.unattributed) {
            if (key.size() > kFinished.size() && key.ends_with(kFinished))
                finished[key.substr(0, key.size() - kFinished.size())] = counters_json(c);
            else
                unattributed[key] = counters_json(c);
        }
        Json entry{{"name", r.name},
                   {"role", r.role},
                   {"ifindex", r.ifindex},
                   {"ingress", counters_json(r.ingress)},
                   {"egress", counters_json(r.egress)},
                   {"unattributed", std::move(unattributed)}};
        if (!finished.empty())
            entry["finished_flows"] = std::move(finished);
        list.push_back(std::move(entry));
    }
    return Json{{"interfaces", std::move(list)}};
}

Json hosts_json(const std::vector<HostRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"mac", r.mac},
                            {"ip", r.ip},
                            {"interface", r.interface},
                            {"sent", counters_json(r.sent)},
                            {"received", counters_json(r.received)},
                            {"first_seen", time_json(r.first_seen)},
                            {"last_seen", time_json(r.last_seen)}});
    return Json{{"hosts", std::move(list)}};
}

Json flows_json(const std::vector<FlowRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows) {
        // Counters sit flat in the flow object (the documented shape), unlike hosts.
        Json f = {{"interface", r.interface},
                  {"direction", r.direction},
                  {"proto", proto_name(r.proto)},
                  {"src", r.src},
                  {"sport", r.sport},
                  {"dst", r.dst},
                  {"dport", r.dport}};
        f.update(counters_json(r.counters));
        f["first_seen"] = time_json(r.first_seen);
        f["last_seen"] = time_json(r.last_seen);
        // Flag letters only mean something for tcp; other protocols pass the raw byte through.
        f["tcp_flags"] = r.proto == 6 ? Json(tcp_flags_string(r.tcp_flags)) : Json(r.tcp_flags);
        if (is_icmp(r.proto)) {
            f["icmp_type"] = r.dport >> 8;
            f["icmp_code"] = r.dport & 0xFF;
        }
        list.push_back(std::move(f));
    }
    return Json{{"flows", std::move(list)}};
}

Json status_json(const StatusMap& status) {
    Json obj = Json::object();
    for (const auto& [key, value] : status)
        obj[key] = status_value_json(key, value);
    return Json{{"status", std::move(obj)}};
}

Json counters4_json(const Counters4& c) {
    return Json{{"packets", c.packets}, {"l2", nullptr}, {"l3", c.l3}, {"l4", c.l4}, {"payload", c.payload}};
}

namespace {

Json cgroup_json(const CgroupEntry& r) {
    return Json{{"path", r.path},
                {"unit", r.unit},
                {"ingress", counters4_json(r.ingress)},
                {"egress", counters4_json(r.egress)},
                {"self", Json{{"ingress", counters4_json(r.self_ingress)}, {"egress", counters4_json(r.self_egress)}}},
                {"gone", r.gone}};
}

// "/a/b" is below "/a"; everything is below "/".
bool below(std::string_view path, std::string_view parent) {
    if (parent == "/")
        return path.size() > 1 && path[0] == '/';
    return path.size() > parent.size() && path.substr(0, parent.size()) == parent && path[parent.size()] == '/';
}

// For each row, the index of its nearest listed ancestor (rows come parents first), or -1.
std::vector<long> tree_parents(const std::vector<CgroupEntry>& rows) {
    std::vector<long> parent(rows.size(), -1);
    std::vector<std::size_t> stack;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        while (!stack.empty() && !below(rows[i].path, rows[stack.back()].path))
            stack.pop_back();
        parent[i] = stack.empty() ? -1 : static_cast<long>(stack.back());
        stack.push_back(i);
    }
    return parent;
}

std::string last_component(const std::string& path) {
    const auto slash = path.rfind('/');
    return path == "/" || slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

Json cgroups_json(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree) {
    Json list = Json::array();
    if (!tree) {
        for (const auto& r : rows)
            list.push_back(cgroup_json(r));
    } else {
        const auto parent = tree_parents(rows);
        std::vector<Json> nodes;
        nodes.reserve(rows.size());
        for (const auto& r : rows) {
            nodes.push_back(cgroup_json(r));
            nodes.back()["children"] = Json::array();
        }
        // Children come after their parent: attach from the end so every subtree is complete
        // before it is moved into its parent, then restore file order.
        for (std::size_t k = rows.size(); k-- > 0;) {
            if (parent[k] >= 0) {
                auto& kids = nodes[static_cast<std::size_t>(parent[k])]["children"];
                kids.insert(kids.begin(), std::move(nodes[k]));
            }
        }
        for (std::size_t i = 0; i < rows.size(); ++i)
            if (parent[i] < 0)
                list.push_back(std::move(nodes[i]));
    }
    Json b = Json::object();
    for (const auto& [key, c] : buckets)
        b[key] = counters4_json(c);
    return Json{{"cgroups", std::move(list)}, {"buckets", std::move(b)}};
}

Json reload_json() {
    return Json{{"reloaded", true}};
}

Json history_json(std::string_view period, const std::vector<HistoryRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows) {
        Json totals = Json::object();
        for (const auto& [subject, c] : r.totals)
            totals[subject] = counters_json(c);
        list.push_back(Json{{"label", r.label},
                            {"start", time_json(r.start)},
                            {"end", time_json(r.end)},
                            {"totals", std::move(totals)}});
    }
    return Json{{"history", Json{{"period", std::string(period)}, {"periods", std::move(list)}}}};
}

// ---- human output ----------------------------------------------------------------------

std::string render_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width(columns.size());
    for (std::size_t i = 0; i < columns.size(); ++i)
        width[i] = display_width(columns[i].header);
    for (const auto& row : rows)
        for (std::size_t i = 0; i < columns.size() && i < row.size(); ++i)
            width[i] = std::max(width[i], display_width(row[i]));

    std::string out;
    auto emit = [&](auto cell_of) {
        std::string line;
        for (std::size_t i = 0; i < columns.size(); ++i) {
            const std::string_view cell = cell_of(i);
            const std::string pad(width[i] - display_width(cell), ' ');
            if (i != 0)
                line += "  ";
            if (columns[i].align == Align::Right)
                line += pad;
            line += cell;
            if (columns[i].align == Align::Left)
                line += pad;
        }
        line.erase(line.find_last_not_of(' ') + 1);
        out += line;
        out += '\n';
    };
    emit([&](std::size_t i) -> std::string_view { return columns[i].header; });
    for (const auto& row : rows)
        emit([&](std::size_t i) -> std::string_view {
            return i < row.size() ? std::string_view(row[i]) : "";
        });
    return out;
}

std::string history_text(const std::vector<HistoryRow>& rows) {
    const std::vector<Column> cols = {{"PERIOD"},          {"SUBJECT"},         {"PACKETS", Align::Right},
                                      {"L2", Align::Right}, {"L3", Align::Right}, {"L4", Align::Right},
                                      {"PAYLOAD", Align::Right}};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows)
        for (const auto& [subject, c] : r.totals) {
            std::vector<std::string> row = {r.label, subject};
            auto nums = counter_cells(c);
            row.insert(row.end(), nums.begin(), nums.end());
            cells.push_back(std::move(row));
        }
    return render_table(cols, cells);
}

std::string interfaces_text(const std::vector<InterfaceRow>& rows) {
    const std::vector<Column> counter_columns = {{"PACKETS", Align::Right},
                                                 {"L2", Align::Right},
                                                 {"L3", Align::Right},
                                                 {"L4", Align::Right},
                                                 {"PAYLOAD", Align::Right}};
    std::vector<Column> totals_cols = {{"NAME"}, {"ROLE"}, {"DIR"}};
    totals_cols.insert(totals_cols.end(), counter_columns.begin(), counter_columns.end());
    std::vector<Column> bucket_cols = {{"NAME"}, {"DIR"}, {"BUCKET"}};
    bucket_cols.insert(bucket_cols.end(), counter_columns.begin(), counter_columns.end());

    std::vector<std::vector<std::string>> totals;
    std::vector<std::vector<std::string>> buckets;
    for (const auto& r : rows) {
        for (const auto& [dir, c] : {std::pair{"ingress", &r.ingress}, std::pair{"egress", &r.egress}}) {
            std::vector<std::string> cells = {r.name, r.role, dir};
            auto nums = counter_cells(*c);
            cells.insert(cells.end(), nums.begin(), nums.end());
            totals.push_back(std::move(cells));
        }
        // Zero buckets are the normal case; listing them would bury the ones that matter.
        for (const auto& [key, c] : r.unattributed) {
            if (c == Counters{})
                continue;
            const auto dot = key.find('.');
            std::vector<std::string> cells = {r.name, dot == std::string::npos ? "-" : key.substr(0, dot),
                                              dot == std::string::npos ? key : key.substr(dot + 1)};
            auto nums = counter_cells(c);
            cells.insert(cells.end(), nums.begin(), nums.end());
            buckets.push_back(std::move(cells));
        }
    }

    std::string out = render_table(totals_cols, totals);
    if (!buckets.empty())
        out += "\nUnattributed (non-zero buckets):\n" + render_table(bucket_cols, buckets);
    return out;
}

std::string hosts_text(const std::vector<HostRow>& rows, std::string_view sort_key) {
    const Layer layer = layer_for(sort_key);
    const std::string l(layer.header);
    const std::vector<Column> cols = {{"MAC"},
                                      {"IP"},
                                      {"IFACE"},
                                      {"SENT PKTS", Align::Right},
                                      {"SENT " + l, Align::Right},
                                      {"RECV PKTS", Align::Right},
                                      {"RECV " + l, Align::Right},
                                      {"LAST SEEN"}};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows)
        cells.push_back({r.mac, r.ip, r.interface, std::to_string(r.sent.packets),
                         human_bytes(r.sent.*layer.field), std::to_string(r.received.packets),
                         human_bytes(r.received.*layer.field), human_time(r.last_seen)});
    return render_table(cols, cells);
}

std::string flows_text(const std::vector<FlowRow>& rows) {
    const std::vector<Column> cols = {{"IFACE"},
                                      {"DIR"},
                                      {"PROTO"},
                                      {"SRC"},
                                      {"SPORT", Align::Right},
                                      {"DST"},
                                      {"DPORT", Align::Right},
                                      {"PKTS", Align::Right},
                                      {"L2", Align::Right},
                                      {"L3", Align::Right},
                                      {"L4", Align::Right},
                                      {"PAYLOAD", Align::Right},
                                      {"LAST SEEN"}};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        // ICMP has no ports; the API packs type and code into dport, which reads better split.
        const bool icmp = is_icmp(r.proto);
        std::vector<std::string> row = {r.interface,
                                        r.direction,
                                        proto_name(r.proto),
                                        r.src,
                                        icmp ? "-" : std::to_string(r.sport),
                                        r.dst,
                                        icmp ? std::to_string(r.dport >> 8) + "/" +
                                                   std::to_string(r.dport & 0xFF)
                                             : std::to_string(r.dport)};
        auto nums = counter_cells(r.counters);
        row.insert(row.end(), nums.begin(), nums.end());
        row.push_back(human_time(r.last_seen));
        cells.push_back(std::move(row));
    }
    return render_table(cols, cells);
}

std::string status_text(const StatusMap& status) {
    std::string out;
    auto line = [&](const std::string& key, const StatusValue& v) {
        out += key + ": " + status_value_text(key, v) + "\n";
    };
    for (const char* key : kStatusOrder)
        if (auto it = status.find(key); it != status.end())
            line(it->first, it->second);
    for (const auto& [key, v] : status)
        if (std::find(kStatusOrder.begin(), kStatusOrder.end(), key) == kStatusOrder.end())
            line(key, v);
    return out;
}

std::string cgroups_text(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree) {
    const std::vector<Column> cols = {{tree ? "CGROUP" : "PATH"},
                                      {"UNIT"},
                                      {"IN PKTS", Align::Right},
                                      {"IN L3", Align::Right},
                                      {"IN PAYLOAD", Align::Right},
                                      {"OUT PKTS", Align::Right},
                                      {"OUT L3", Align::Right},
                                      {"OUT PAYLOAD", Align::Right},
                                      {"STATE"}};
    std::vector<std::string> names(rows.size());
    if (!tree) {
        for (std::size_t i = 0; i < rows.size(); ++i)
            names[i] = rows[i].path;
    } else {
        // systemd-cgls style: "├─ " before a child that has later siblings, "└─ " before the last
        // one, and "│  " / "   " under them for the deeper levels.
        const auto parent = tree_parents(rows);
        std::vector<bool> last(rows.size(), true);
        for (std::size_t i = 0; i < rows.size(); ++i)
            for (std::size_t j = i + 1; j < rows.size(); ++j)
                if (parent[j] == parent[i]) {
                    last[i] = false;
                    break;
                }
        for (std::size_t i = 0; i < rows.size(); ++i) {
            std::string prefix;
            for (long a = parent[i]; a >= 0 && parent[static_cast<std::size_t>(a)] >= 0;
                 a = parent[static_cast<std::size_t>(a)])
                prefix.insert(0, last[static_cast<std::size_t>(a)] ? "   " : "│  ");
            if (parent[i] >= 0)
                prefix += last[i] ? "└─ " : "├─ ";
            names[i] = prefix + (parent[i] >= 0 ? last_component(rows[i].path) : rows[i].path);
        }
    }
    std::vector<std::vector<std::string>> cells;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        cells.push_back({names[i], r.unit.empty() ? "-" : r.unit, std::to_string(r.ingress.packets),
                         human_bytes(r.ingress.l3), human_bytes(r.ingress.payload), std::to_string(r.egress.packets),
                         human_bytes(r.egress.l3), human_bytes(r.egress.payload), r.gone ? "gone" : ""});
    }
    std::string out = render_table(cols, cells);

    const std::vector<Column> bucket_cols = {{"DIR"},
                                             {"BUCKET"},
                                             {"PACKETS", Align::Right},
                                             {"L3", Align::Right},
                                             {"L4", Align::Right},
                                             {"PAYLOAD", Align::Right}};
    std::vector<std::vector<std::string>> bucket_cells;
    for (const auto& [key, c] : buckets) {
        if (c == Counters4{})
            continue;
        const auto dot = key.find('.');
        bucket_cells.push_back({dot == std::string::npos ? "-" : key.substr(0, dot),
                                dot == std::string::npos ? key : key.substr(dot + 1), std::to_string(c.packets),
                                human_bytes(c.l3), human_bytes(c.l4), human_bytes(c.payload)});
    }
    if (!bucket_cells.empty())
        out += "\nNot in any cgroup row (non-zero buckets):\n" + render_table(bucket_cols, bucket_cells);
    return out;
}

std::string reload_text() {
    return "Configuration reloaded.\n";
}

// ---- command line ----------------------------------------------------------------------

std::optional<std::uint32_t> parse_top(std::string_view s) {
    if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::uint32_t n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size() || n == 0)
        return std::nullopt;
    return n;
}

std::optional<double> parse_timeout(std::string_view s) {
    // Plain decimal only: from_chars would also take "inf", "nan" and exponents.
    const auto dot = s.find('.');
    const auto digits = [](std::string_view p) {
        return std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (s.empty() || s == "." || !digits(s.substr(0, dot)) ||
        (dot != std::string_view::npos && !digits(s.substr(dot + 1))))
        return std::nullopt;
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || !(v > 0) || v > kMaxTimeoutSec)
        return std::nullopt;
    return v;
}

std::string_view command_word(const std::vector<std::string_view>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
        const auto a = args[i];
        if (a == "--timeout") {
            ++i;
            continue;
        }
        if (!a.empty() && a[0] == '-')
            continue;
        return a;
    }
    return {};
}

ParseResult parse_args(const std::vector<std::string_view>& args) {
    Options opt;
    std::optional<Command> command;
    std::string_view command_word;
    bool help = false;
    bool version = false;
    bool sort_given = false;
    std::string history_opt; // set when --period or --subject was given
    std::optional<UsageError> error; // the first one; --help still wins over it

    auto fail = [&](std::string msg) {
        if (!error)
            error = UsageError{std::move(msg)};
    };

    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];

        // Options taking a value accept "--opt VALUE" and "--opt=VALUE".
        auto value_of = [&](std::string_view name) -> std::optional<std::string_view> {
            if (arg == name) {
                if (i + 1 >= args.size()) {
                    fail("option '" + std::string(name) + "' needs a value");
                    return std::nullopt;
                }
                return args[++i];
            }
            return arg.substr(name.size() + 1);
        };
        auto is_opt = [&](std::string_view name) {
            return arg == name || (arg.size() > name.size() && arg.substr(0, name.size()) == name &&
                                   arg[name.size()] == '=');
        };

        if (arg == "-h" || arg == "--help") {
            help = true;
        } else if (arg == "--version") {
            version = true;
        } else if (arg == "--json") {
            opt.json = true;
        } else if (arg == "--tree") {
            opt.tree = true;
        } else if (is_opt("--period")) {
            if (auto v = value_of("--period")) {
                opt.period = std::string(*v);
                history_opt = "--period";
            }
        } else if (is_opt("--subject")) {
            if (auto v = value_of("--subject")) {
                opt.subject = std::string(*v);
                history_opt = "--subject";
            }
        } else if (is_opt("--timeout")) {
            if (auto v = value_of("--timeout")) {
                if (auto t = parse_timeout(*v))
                    opt.timeout_sec = *t;
                else
                    fail("--timeout: '" + std::string(*v) + "' is not a number of seconds in (0, " +
                         std::to_string(static_cast<int>(kMaxTimeoutSec)) + "]");
            }
        } else if (is_opt("--top")) {
            if (auto v = value_of("--top")) {
                if (auto n = parse_top(*v))
                    opt.top = *n;
                else
                    fail("--top: '" + std::string(*v) + "' is not a positive integer (1.." +
                         std::to_string(std::numeric_limits<std::uint32_t>::max()) + ")");
            }
        } else if (is_opt("--sort")) {
            if (auto v = value_of("--sort")) {
                opt.sort = std::string(*v);
                sort_given = true;
            }
        } else if (arg.size() > 1 && arg[0] == '-') {
            fail("unknown option '" + std::string(arg) + "'");
        } else if (!command) {
            command_word = arg;
            if (arg == "status")
                command = Command::Status;
            else if (arg == "interfaces")
                command = Command::Interfaces;
            else if (arg == "hosts")
                command = Command::Hosts;
            else if (arg == "flows")
                command = Command::Flows;
            else if (arg == "cgroups")
                command = Command::Cgroups;
            else if (arg == "history")
                command = Command::History;
            else if (arg == "reload")
                command = Command::Reload;
            else if (arg == "thresholds" || arg == "watch") {
                // Their own arguments follow (format_thresholds.h); global options come first.
                command = arg == "watch" ? Command::Watch : Command::Thresholds;
                const std::vector<std::string_view> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                                         args.end());
                if (auto err = parse_threshold_args(*command, rest, opt))
                    fail(*err);
                break;
            }
            else if (arg == "help")
                command = Command::Help;
            else {
                fail("unknown command '" + std::string(arg) + "'");
                command = Command::Help; // keep parsing for --help; the error stands
            }
        } else if (command != Command::Help) {
            fail("unexpected argument '" + std::string(arg) + "'");
        }
    }

    if (help || (command == Command::Help && !error)) {
        opt.command = Command::Help;
        return opt;
    }
    if (error)
        return *error;
    if (version) {
        opt.command = Command::Version;
        return opt;
    }
    if (!command)
        return UsageError{"missing command"};

    const bool listing = *command == Command::Hosts || *command == Command::Flows;
    if (!listing && (opt.top || sort_given))
        return UsageError{std::string(opt.top ? "--top" : "--sort") +
                          " is only valid with 'hosts' and 'flows', not '" + std::string(command_word) + "'"};
    if (!history_opt.empty() && *command != Command::History)
        return UsageError{history_opt + " is only valid with 'history', not '" + std::string(command_word) + "'"};
    if (opt.tree && *command != Command::Cgroups)
        return UsageError{"--tree is only valid with 'cgroups', not '" + std::string(command_word) + "'"};
    opt.command = *command;
    return opt;
}

std::string help_text(std::string_view version) {
    std::string text = R"(NAME
    nettallyctl - query and control nettallyd, the nettally traffic-accounting daemon

SYNOPSIS
    nettallyctl [--json] [--timeout SEC] COMMAND [ARGS] [--json]
    nettallyctl --help | --version

DESCRIPTION
    nettallyctl talks to nettallyd over the system D-Bus (name org.nettally.Accounting1,
    object /org/nettally/Accounting1); it never opens BPF maps itself. Counters are
    64-bit totals since accounting started, per layer: l2 (the frame), l3 (the IP
    datagram), l4 (the transport segment) and payload. Tables show bytes in IEC units
    (1 KiB = 1024 B), packets as plain integers and times in UTC; JSON shows exact numbers.

COMMANDS
    status      Daemon-wide figures (GetStatus), one "key: value" line each.
    interfaces  Totals per interface, one row per direction (ListInterfaces), followed by
                the unattributed buckets (non_ip, unparsable, flow_overflow) that are not 0.
    hosts [--top N] [--sort KEY]
                Hosts seen on lan interfaces, by MAC and IP (ListHosts). KEY is packets,
                l2, l3, l4 or payload (sent + received, largest first) or last_seen (most
                recent first). The byte columns show KEY's layer, or l2 for other keys.
    flows [--top N] [--sort KEY]
                Unidirectional flows (ListFlows). KEY is packets, l2, l3, l4 or payload
                (largest first), first_seen or last_seen (most recent first). ICMP and
                ICMPv6 rows show DPORT as TYPE/CODE.
    cgroups [--tree]
                The gateway's own traffic by cgroup (ListCgroups): sockets of nettallyd's
                network namespace, per cgroup path and systemd unit, packets and bytes
                received (IN) and sent (OUT). A cgroup's figures include every cgroup
                below it; --tree draws the hierarchy. STATE "gone": the cgroup was removed,
                its totals are kept. Needs cgroups.enabled in nettallyd's config.
    history [--period day|month] [--subject PREFIX]
                Totals per accounting period (GetHistory), oldest first: days or months
                (default day) in nettallyd's configured time zone, for every subject or
                those starting with PREFIX. Subjects: iface:NAME:DIR,
                host:IFACE|MAC|IP:sent|received, flow:IFACE:DIR:PROTO[/PORT].
    reload      Re-read the config file (Reload). Allowed to root and group nettally.
                An invalid config is refused (exit 1) and the running one stays.
    thresholds list
                Every threshold (ListThresholds): source (config or runtime), subject,
                direction, layer, period, step, limit, action.
    thresholds usage [NAME]
                Usage against each threshold, or NAME's (GetUsage): bytes in the period,
                steps signalled, share of the limit, end of the period, action in force.
    thresholds add NAME SUBJECT --step SIZE [OPTIONS]
    thresholds modify NAME [OPTIONS]
                Add a runtime threshold or change one (AddThreshold, ModifyThreshold).
                SUBJECT is one of --interface NAME, --host MAC|IP, --cgroup PATH|UNIT,
                --flow FILTER ("iface=wan0,proto=tcp,dport=443"). OPTIONS: --limit SIZE,
                --direction sent|received|both, --layer l2|l3|l4|payload,
                --period day|month|rolling|since, --window DURATION (rolling),
                --min-interval DURATION (Burst), --rate SIZE and --rate-window DURATION
                (RateExceeded; SIZE per second), --action notify|throttle|block,
                --action-rate SIZE (throttle, per second), --action-on limit|burst|any.
                SIZE: bytes or 1MB (10^6), 1MiB = 1M (2^20), 5GB...; DURATION: 800ms, 90s, 1h.
                nettallyd checks every value. Root and group nettally only.
    thresholds remove NAME
    thresholds reset NAME
                Remove a runtime threshold, or restart a threshold's usage from now
                (RemoveThreshold, ResetPeriod). Root and group nettally only.
    watch       Print the thresholds signals (StepCrossed, LimitReached, Burst,
                RateExceeded, ActionApplied, ActionLifted, ActionFailed) as they arrive,
                one line each (--json: one JSON object per line, "signal" naming it, times
                as TIME), until SIGINT or SIGTERM (exit 0).
    help        Print this text.

OPTIONS
    --json         Print JSON (see JSON OUTPUT) instead of tables. Accepted before or
                   after COMMAND.
    --timeout SEC  Wait at most SEC seconds for each answer (default 10; fractions such
                   as 0.5 allowed; at most 86400).
    --top N        hosts, flows: at most N entries; N is a positive integer (default 20,
                   with --json too). nettallyd accepts 1..100000 and says so otherwise.
    --sort KEY     hosts, flows: order by KEY (default l2). nettallyd validates KEY.
    --tree         cgroups: show the hierarchy (tables) or nest it (JSON "children").
    --period P     history: day (default) or month.
    --subject S    history: only subjects starting with S (e.g. iface:wan0).
    -h, --help     Print this text and exit.
    --version      Print the version and exit.

JSON OUTPUT
    One JSON object on stdout. The keys below are stable; new keys may be added. All
    counters are JSON numbers. Below, C is a counter object
        {"packets": N, "l2": N, "l3": N, "l4": N, "payload": N}
    and TIME is an RFC 3339 UTC string with microseconds ("2026-11-24T09:41:33.123456Z"),
    or null for "never".

    status      {"status": {KEY: VALUE, ...}}
                Every key GetStatus returns, with its natural JSON type (string, number,
                boolean, array of strings). Integer keys ending in "_at" are TIMEs. A
                value of a D-Bus type nettallyctl does not know is null. Keys today:
                version, pid, started_at, config_path, poll_interval_ms, polls,
                last_poll_at, interfaces, flows, flow_capacity, hosts, host_capacity,
                flow_overflow_packets, host_overflow_packets, reconcile_checks,
                reconcile_exact, reconcile_violations, cgroups_enabled and, when it is
                true, cgroup_mount, cgroup_netns, cgroup_attach, cgroup_paths,
                cgroup_entries, cgroup_capacity, cgroup_overflow_packets,
                cgroup_untracked_packets, cgroup_retired, cgroup_reconcile_checks,
                cgroup_reconcile_exact, cgroup_reconcile_violations (the list in
                org.nettally.Accounting1.xml is authoritative; others may be added).
    interfaces  {"interfaces": [{"name": S, "role": "lan"|"wan", "ifindex": N,
                  "ingress": C, "egress": C,
                  "unattributed": {"ingress.non_ip": C, "egress.flow_overflow": C, ...},
                  "finished_flows": {"ingress": C, "egress": C}}]}
                ifindex 0: not accounted now (gone or released); totals are kept.
                total == live flows + finished_flows + unattributed, per direction.
    hosts       {"hosts": [{"mac": S, "ip": S, "interface": S, "sent": C, "received": C,
                  "first_seen": TIME, "last_seen": TIME}]}
    history     {"history": {"period": "day"|"month", "periods": [{"label": S,
                  "start": TIME, "end": TIME, "totals": {SUBJECT: C, ...}}]}}
    flows       {"flows": [{"interface": S, "direction": "ingress"|"egress",
                  "proto": "tcp"|"udp"|"icmp"|"icmpv6"|"<number>", "src": S, "sport": N,
                  "dst": S, "dport": N, "packets": N, "l2": N, "l3": N, "l4": N,
                  "payload": N, "first_seen": TIME, "last_seen": TIME, "tcp_flags": F}]}
                The counters sit directly in each flow object. F is, for tcp, the OR of
                all TCP flags seen as "CEUAPRSF" with "." for a clear flag (SYN+ACK is
                "...A..S."), and for other protocols the raw number. ICMP and ICMPv6 flows
                have sport 0 and dport TYPE * 256 + CODE, and also "icmp_type": N and
                "icmp_code": N.
    cgroups     {"cgroups": [{"path": S, "unit": S, "ingress": C4, "egress": C4,
                  "self": {"ingress": C4, "egress": C4}, "gone": B}],
                 "buckets": {"ingress.untracked": C4, "egress.overflow": C4, ...}}
                C4 is C with "l2": null: the cgroup hooks start at the IP header and
                never see layer 2. Entries come parents first, every ancestor up to "/"
                included; "ingress"/"egress" cover the cgroup and everything below it,
                "self" the sockets of the cgroup itself. "unit" is "" for cgroups systemd
                does not manage. With --tree each entry has "children" (nested entries)
                and only the top entries are listed. Buckets hold traffic without a
                cgroup entry: unparsable, untracked (outside cgroups.subtrees), overflow
                (cgroups.max_entries reached), unresolved, and traffic that is not on
                this namespace's interfaces: loopback, other_netns.
    reload      {"reloaded": true}

EXIT STATUS
    0   Success.
    1   nettallyd (or the bus on its behalf) answered with an error. Its D-Bus error
        name and message go to stderr, e.g. org.nettally.Accounting1.Error.InvalidArgument
        for an unknown --sort KEY or a --top N out of range, ...Error.InvalidConfig when
        reload refuses the config, org.freedesktop.DBus.Error.AccessDenied when the
        caller may not reload.
    2   Usage error: unknown command or option, or a bad value (message on stderr).
    3   nettallyd is not reachable: no system bus, nobody owns org.nettally.Accounting1,
        the connection failed or the answer did not come within --timeout.
    Whenever the exit status is not 0, stdout is left empty.

ENVIRONMENT
    DBUS_SYSTEM_BUS_ADDRESS
        The system bus to use (default unix:path=/run/dbus/system_bus_socket).

EXAMPLES
    nettallyctl hosts --top 5 --sort payload
    nettallyctl flows --json --top 100 | jq '.flows[] | select(.proto == "udp")'
    nettallyctl cgroups --tree
    nettallyctl cgroups --json | jq '.cgroups[] | select(.unit == "unbound.service") | .egress'

VERSION
    )";
    text += version;
    text += '\n';
    return text;
}

// ---- exit status -----------------------------------------------------------------------

ExitCode classify_dbus_error(std::string_view name, bool while_connecting) {
    if (while_connecting)
        return kExitUnreachable;
    // Transport failures and "no owner": nettallyd never got to answer. sd-bus names raw
    // socket errnos "System.Error.E..." (e.g. ECONNREFUSED) and maps some to the names below.
    static constexpr std::array<std::string_view, 10> kUnreachable = {
        "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply",        "org.freedesktop.DBus.Error.Timeout",
        "org.freedesktop.DBus.Error.TimedOut",       "org.freedesktop.DBus.Error.NoServer",
        "org.freedesktop.DBus.Error.Disconnected",   "org.freedesktop.DBus.Error.NoNetwork",
        "org.freedesktop.DBus.Error.BadAddress",     "org.freedesktop.DBus.Error.IOError",
    };
    if (std::find(kUnreachable.begin(), kUnreachable.end(), name) != kUnreachable.end())
        return kExitUnreachable;
    if (name.starts_with("org.freedesktop.DBus.Error.Spawn.") || name.starts_with("System.Error."))
        return kExitUnreachable;
    return kExitDaemonError;
}

} // namespace nettally::ctl
