// nettallyctl's pure half: the named rows of the D-Bus API, the --json shapes and the human
// tables. Nothing here touches D-Bus, files or the clock, so every byte nettallyctl prints can
// be unit-tested from plain structs (tests/unit/format*_test.cpp). convert.h turns the
// generated proxy's sdbus types into these structs; args.h parses the command line.
// Implemented by feature: format.cpp (scalars, tables, status, exit status),
// format_traffic.cpp (interfaces, hosts, flows), format_cgroups.cpp, format_history.cpp,
// format_thresholds.cpp, format_records.cpp (records and upload).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace nettally::ctl {

// Keys come out in the documented order (name before counters), not alphabetically: the
// shapes are read by people as often as by jq.
using Json = nlohmann::ordered_json;

// ---- rows, mirroring org.nettally.Accounting1.xml -------------------------------------

// The XML's counter set "C" (ttttt), in its field order.
struct Counters {
    std::uint64_t packets = 0;
    std::uint64_t l2 = 0;
    std::uint64_t l3 = 0;
    std::uint64_t l4 = 0;
    std::uint64_t payload = 0;
    bool operator==(const Counters&) const = default;
};

// Times on the bus are microseconds since the Unix epoch, 0 meaning "never".
using MicrosSinceEpoch = std::uint64_t;

struct InterfaceRow {
    std::string name;
    std::string role;
    std::uint32_t ifindex = 0;
    Counters ingress;
    Counters egress;
    std::map<std::string, Counters> unattributed; // "ingress.non_ip" -> C
    Counters finished_ingress;                    // flows no longer listed by ListFlows
    Counters finished_egress;
};

struct HostRow {
    std::string mac;
    std::string ip;
    std::string interface;
    Counters sent;
    Counters received;
    MicrosSinceEpoch first_seen = 0;
    MicrosSinceEpoch last_seen = 0;
    Counters wan_sent; // what the host's connections moved across wan-role interfaces
    Counters wan_received;
    // The user its address is bound to now (ListHostUsers): nullopt when the daemon has no
    // subscribers configured, "" when unbound.
    std::optional<std::string> user;
};

// A binding (ListSubscribers).
struct SubscriberRow {
    std::string user;
    std::string prefix;
    std::string source;
    std::string session;
    std::string mac;
    MicrosSinceEpoch since = 0;
    MicrosSinceEpoch until = 0; // 0: open
    bool effective = false;
};

// A user's totals on one interface (ListUsers); user "" is the unbound row.
struct UserRow {
    std::string interface;
    std::string user;
    Counters sent;
    Counters received;
};

// One traffic class on one interface and direction (ListClasses).
struct ClassRow {
    std::string interface;
    std::string direction;
    std::uint32_t id = 0;
    std::string name;
    Counters counters;
    bool gone = false;
};

// One lan host in one traffic class (ListHostClasses).
struct HostClassRow {
    std::string interface;
    std::string mac;
    std::string ip;
    std::uint32_t id = 0;
    std::string name;
    Counters sent;
    Counters received;
    bool gone = false;
};

struct FlowRow {
    std::string interface;
    std::string direction;
    std::uint8_t proto = 0;
    std::string src;
    std::uint16_t sport = 0;
    std::string dst;
    std::uint16_t dport = 0; // ICMP/ICMPv6: type * 256 + code
    Counters counters;
    MicrosSinceEpoch first_seen = 0;
    MicrosSinceEpoch last_seen = 0;
    std::uint8_t tcp_flags = 0;
    // The traffic class of the flow's latest classified packet; "" when no ruleset is in force or
    // the flow has no class yet.
    std::string cls;
    // The user the flow's lan host (ingress: src, egress: dst) is bound to now: nullopt when
    // the daemon has no subscribers configured, "" when unbound or not a lan host.
    std::optional<std::string> user;
};

// ListCgroups' counter set "C4" (tttt): cgroup hooks start at the IP header, so there is no l2.
struct Counters4 {
    std::uint64_t packets = 0;
    std::uint64_t l3 = 0;
    std::uint64_t l4 = 0;
    std::uint64_t payload = 0;
    bool operator==(const Counters4&) const = default;
};

struct CgroupEntry {
    std::string path;  // "/system.slice/foo.service"
    std::string unit;  // "foo.service", "" when systemd does not manage the cgroup
    Counters4 ingress; // this cgroup and every cgroup below it
    Counters4 egress;
    Counters4 self_ingress; // sockets created in this cgroup itself
    Counters4 self_egress;
    bool gone = false; // no cgroup at this path now; totals kept
};

// "ingress.untracked" -> C4, as ListCgroups returns them.
using CgroupBuckets = std::map<std::string, Counters4>;

// One GetStatus value, reduced to the JSON-representable D-Bus types. A type nettallyctl
// does not know yet is kept as its signature (Unsupported) rather than failing the call,
// because the daemon may add keys.
struct Unsupported {
    std::string signature;
    bool operator==(const Unsupported&) const = default;
};
using StatusValue = std::variant<bool, std::int64_t, std::uint64_t, double, std::string,
                                 std::vector<std::string>, Unsupported>;
using StatusMap = std::map<std::string, StatusValue>;
// One a{sv} dictionary (ListThresholds, GetUsage, GetSettings, GetUploadStatus).
using Dict = StatusMap;

// Records ListSpool: a closed accounting file waiting for upload.
struct RecordFile {
    std::string name;
    std::uint64_t size = 0;
    std::string type; // "interface", "host", ...
    MicrosSinceEpoch created = 0;
};

// Upload ListSpool: a file waiting in the spool, with its transfer state.
struct UploadFile {
    std::string name;
    std::uint64_t size = 0;
    MicrosSinceEpoch mtime = 0;
    std::string state; // uploading | queued | waiting | paused
    std::uint32_t attempts = 0;
    std::string last_error;
};

// ---- scalar formatting -----------------------------------------------------------------

// "0 B", "1023 B", "1.0 KiB", "1.5 KiB", ..., "16.0 EiB"; one decimal, rounded half up.
std::string human_bytes(std::uint64_t bytes);

// "2026-11-24T09:41:33.123456Z". Callers decide what 0 means; this renders the epoch.
std::string rfc3339_utc(MicrosSinceEpoch t);
// JSON form: null for 0 ("never"), otherwise rfc3339_utc.
Json time_json(MicrosSinceEpoch t);
// "2026-11-24 09:41:33" (UTC, whole seconds), or `never` for 0.
std::string human_time(MicrosSinceEpoch t, std::string_view never = "-");

// "tcp", "udp", "icmp", "icmpv6", otherwise the number ("47").
std::string proto_name(std::uint8_t proto);
// nfdump's fixed-width layout, bit 7 down to bit 0: "CEUAPRSF" with '.' for a clear bit,
// so SYN+ACK is "...A..S." and columns of flags line up.
std::string tcp_flags_string(std::uint8_t flags);

// ---- --json shapes ---------------------------------------------------------------------

// One JSON object of a map, in the map's key order: each key's value is f(key, value) where f
// takes the key too (the status values), else f(value) (the counters).
template <typename Map, typename F> Json object_json(const Map& m, F&& f) {
    Json o = Json::object();
    for (const auto& [key, value] : m) {
        if constexpr (std::is_invocable_v<F&, const typename Map::key_type&,
                                          const typename Map::mapped_type&>)
            o[key] = f(key, value);
        else
            o[key] = f(value);
    }
    return o;
}

Json counters_json(const Counters& c);
// The status value as JSON: integer keys ending in "_at" become TIME, Unsupported null.
Json status_value_json(std::string_view key, const StatusValue& v);
// D-Bus strings are valid UTF-8 already; replaces rather than throws if one ever is not.
std::string dump(const Json& j);
Json interfaces_json(const std::vector<InterfaceRow>& rows);
Json hosts_json(const std::vector<HostRow>& rows);
Json flows_json(const std::vector<FlowRow>& rows);
// {"subscribers": [{"user", "prefix", "source", "session", "mac", "since": TIME, "until": TIME,
// "effective"}]}; until null while open, session and mac null when empty.
Json subscribers_json(const std::vector<SubscriberRow>& rows);
// The RADIUS listener's counters from GetStatus' radius_* keys: {"enabled", "listen", "sessions",
// "requests", "responses", "retransmissions", "send_errors", "dropped": {REASON: n, ...},
// "dropped_total", and what accepted requests did: "opened", "refreshed", ...}.
Json radius_json(const StatusMap& status);
// {"users": [{"interface", "user", "sent": C, "received": C}]}; user null for the unbound row.
Json users_json(const std::vector<UserRow>& rows);
// {"classes": [{"interface", "direction", "class_id", "class", "counters": C, "gone"}]}.
Json classes_json(const std::vector<ClassRow>& rows);
// {"host_classes": [{"interface", "mac", "ip", "class_id", "class", "sent": C, "received": C,
// "gone"}]}.
Json host_classes_json(const std::vector<HostClassRow>& rows);
// GetRulesStatus: {"active", "version", "hash", "name", ...} with times as TIME.
Json rules_status_json(const Dict& status);
Json status_json(const StatusMap& status);
// {"packets": N, "l2": null, "l3": N, "l4": N, "payload": N}: the same keys as every counter
// object, l2 null because the cgroup hooks never see it.
Json counters4_json(const Counters4& c);
// tree: each entry gets "children" (its child cgroups, nested) and only the top ones are listed.
Json cgroups_json(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree);
Json reload_json();

// ---- human output ----------------------------------------------------------------------

enum class Align { Left, Right };

struct Column {
    std::string header;
    Align align = Align::Left;
};
// A right-aligned column (figures); `{"HEADER"}` is a left-aligned one.
inline Column right(std::string header) {
    return {std::move(header), Align::Right};
}

// Columns separated by two spaces, each as wide as its widest cell; no trailing blanks.
std::string render_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<std::string>>& rows);

std::string interfaces_text(const std::vector<InterfaceRow>& rows);
// The byte columns show `sort_key`'s layer when it is one (l2, l3, l4, payload), else l2.
std::string hosts_text(const std::vector<HostRow>& rows, std::string_view sort_key);
std::string flows_text(const std::vector<FlowRow>& rows);
std::string subscribers_text(const std::vector<SubscriberRow>& rows);
std::string users_text(const std::vector<UserRow>& rows);
std::string classes_text(const std::vector<ClassRow>& rows);
std::string host_classes_text(const std::vector<HostClassRow>& rows);
std::string rules_status_text(const Dict& status);
std::string status_text(const StatusMap& status);
// tree: the CGROUP column draws the hierarchy instead of full paths.
std::string cgroups_text(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree);
std::string reload_text();
// PACKETS L2 L3 L4 PAYLOAD cells of one counter set.
std::vector<std::string> counter_cells(const Counters& c);

// ---- records and upload ------------------------------------------------------------------

// {"records": {KEY: VALUE}} (GetSettings); {"upload": {KEY: VALUE}} (GetUploadStatus).
Json records_settings_json(const Dict& d);
Json upload_status_json(const Dict& d);
// "key: value" lines; "-" for an empty string or a null value.
std::string settings_text(const Dict& d);
// {"closed": [NAME...]} / one name a line, or "no file was open".
Json rotated_json(const std::vector<std::string>& names);
std::string rotated_text(const std::vector<std::string>& names);
// {"spool": [{"name", "size", "type", "created": TIME}]} / NAME BYTES TYPE CREATED
Json record_spool_json(const std::vector<RecordFile>& files);
std::string record_spool_text(const std::vector<RecordFile>& files);
// {"spool": [{"name", "size", "mtime": TIME, "state", "attempts", "last_error"}]}
Json upload_spool_json(const std::vector<UploadFile>& files);
std::string upload_spool_text(const std::vector<UploadFile>& files);
// upload now / set-target / clear-target: the complete output.
std::string upload_now_output(bool json);
std::string target_output(const std::string& url, bool json);

// ---- history ---------------------------------------------------------------------------

// One accounting period (GetHistory): label, [start, end), totals by subject.
struct HistoryRow {
    std::string label;
    MicrosSinceEpoch start = 0;
    MicrosSinceEpoch end = 0;
    std::map<std::string, Counters> totals;
};
// {"history": {"period": "day"|"month", "periods": [{"label", "start": TIME, "end": TIME,
//   "totals": {SUBJECT: C}}]}}
Json history_json(std::string_view period, const std::vector<HistoryRow>& rows);
// One row per period and subject: PERIOD SUBJECT PACKETS L2 L3 L4 PAYLOAD.
std::string history_text(const std::vector<HistoryRow>& rows);

// ---- exit status -----------------------------------------------------------------------

enum ExitCode : int {
    kExitOk = 0,
    kExitDaemonError = 1,
    kExitUsage = 2,
    kExitUnreachable = 3,
};

// Maps a D-Bus error to "the daemon answered" (1) or "nobody answered" (3).
// `while_connecting` is true when the error came from opening the bus connection itself.
ExitCode classify_dbus_error(std::string_view error_name, bool while_connecting);

} // namespace nettally::ctl
