// nettallyctl's pure half: command-line parsing, the --json shapes and the human tables.
// Nothing here touches D-Bus, files or the clock, so every byte nettallyctl prints can be
// unit-tested from plain structs (tests/unit/format_test.cpp). nettallyctl.cpp only converts
// the generated proxy's sdbus types into these structs and writes the result.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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
};

struct HostRow {
    std::string mac;
    std::string ip;
    std::string interface;
    Counters sent;
    Counters received;
    MicrosSinceEpoch first_seen = 0;
    MicrosSinceEpoch last_seen = 0;
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
    std::string path; // "/system.slice/foo.service"
    std::string unit; // "foo.service", "" when systemd does not manage the cgroup
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

Json counters_json(const Counters& c);
Json interfaces_json(const std::vector<InterfaceRow>& rows);
Json hosts_json(const std::vector<HostRow>& rows);
Json flows_json(const std::vector<FlowRow>& rows);
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

// Columns separated by two spaces, each as wide as its widest cell; no trailing blanks.
std::string render_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<std::string>>& rows);

std::string interfaces_text(const std::vector<InterfaceRow>& rows);
// The byte columns show `sort_key`'s layer when it is one (l2, l3, l4, payload), else l2.
std::string hosts_text(const std::vector<HostRow>& rows, std::string_view sort_key);
std::string flows_text(const std::vector<FlowRow>& rows);
std::string status_text(const StatusMap& status);
// tree: the CGROUP column draws the hierarchy instead of full paths.
std::string cgroups_text(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree);
std::string reload_text();

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

// ---- command line ----------------------------------------------------------------------

enum class Command { Status, Interfaces, Hosts, Flows, Cgroups, History, Reload, Thresholds, Watch, Help, Version };

// nettallyctl thresholds SUB [NAME] [--OPTION VALUE]... (format_thresholds.h parses them).
struct ThresholdArgs {
    std::string sub;  // list | usage | add | modify | remove | reset
    std::string name; // usage: optional; add, modify, remove, reset: required
    std::map<std::string, std::string> fields; // definition keys (D-Bus names) -> text values
};

struct Options {
    Command command = Command::Help;
    bool json = false;
    double timeout_sec = 0; // 0: kDefaultTimeoutSec
    std::string sort = "l2";
    std::optional<std::uint32_t> top;
    bool tree = false; // cgroups --tree
    std::string period = "day"; // history --period (the daemon validates it)
    std::string subject;        // history --subject PREFIX
    ThresholdArgs thresholds;   // thresholds ...
};

inline constexpr double kDefaultTimeoutSec = 10;
inline constexpr double kMaxTimeoutSec = 86400;
inline constexpr std::uint32_t kDefaultTop = 20;

struct UsageError {
    std::string message;
};

// The first word of args (argv without argv[0]) that is not an option, skipping --timeout's
// value: the command ("records", "upload", ...). Empty when there is none.
std::string_view command_word(const std::vector<std::string_view>& args);

using ParseResult = std::variant<Options, UsageError>;

// args excludes argv[0].
ParseResult parse_args(const std::vector<std::string_view>& args);

// "N must be a positive integer" is checked here; the upper bound is the daemon's call.
std::optional<std::uint32_t> parse_top(std::string_view s);
std::optional<double> parse_timeout(std::string_view s);

std::string help_text(std::string_view version);

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
