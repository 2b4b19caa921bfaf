// nettallyctl's pure half (see format.h): everything between "the daemon's answer as plain
// structs" and "the text to print", plus argument parsing and error classification.
#include "format.h"

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

} // namespace

std::vector<std::string> counter_cells(const Counters& c) {
    return {std::to_string(c.packets), human_bytes(c.l2), human_bytes(c.l3), human_bytes(c.l4),
            human_bytes(c.payload)};
}

namespace {

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

} // namespace

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

std::string dump(const Json& j) {
    return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

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

Json status_json(const StatusMap& status) {
    return Json{{"status", object_json(status, status_value_json)}};
}

Json reload_json() {
    return Json{{"reloaded", true}};
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

std::string reload_text() {
    return "Configuration reloaded.\n";
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
