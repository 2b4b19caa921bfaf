// Accounting records, the pure half: record types and their fields (names, units), the CSV
// (header line, RFC 4180 quoting) and JSON Lines encoders, UTC RFC 3339 timestamps, the settings
// (config key records.*, the D-Bus overrides) with their validation, the rotation decisions (full,
// period boundary aligned to the wall clock) and the names of closed files. No syscalls: the
// Recorder (daemon/io/records.h) does the files. README "Accounting records" documents the fields.
#pragma once

#include "core/counters.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

enum class RecordType { Interface, Host, Cgroup, Flow, Alert, Class };
inline constexpr size_t kRecordTypeCount = 6;
inline constexpr std::array<RecordType, kRecordTypeCount> kRecordTypes{
    RecordType::Interface, RecordType::Host,  RecordType::Cgroup,
    RecordType::Flow,      RecordType::Alert, RecordType::Class};
// "interface" | "host" | "cgroup" | "flow" | "alert" | "class"
std::string_view to_string(RecordType t);
std::optional<RecordType> parse_record_type(std::string_view s);

enum class RecordFormat { Csv, Jsonl };
std::string_view to_string(RecordFormat f); // "csv" | "jsonl"
std::optional<RecordFormat> parse_record_format(std::string_view s);
// File extension without the dot: "csv" | "jsonl".
std::string_view extension(RecordFormat f);

// A column: its name and whether JSON gives it as a number or a boolean (else as a string; CSV
// writes booleans as true/false). README's "Accounting records" documents each column's meaning and
// unit. Every type ends with rules_version: the traffic-class ruleset's version (0: none).
struct FieldSpec {
    const char* name;
    bool numeric;
    bool boolean = false;
};
// The fields of a record type, in column order.
const std::vector<FieldSpec>& fields(RecordType t);

// One record: values in the order of fields(type), numeric ones as decimal text.
struct Record {
    RecordType type = RecordType::Interface;
    std::vector<std::string> values;
};

// "2024-05-01T12:00:00.250Z": UTC, millisecond precision, from microseconds since the epoch.
std::string rfc3339(int64_t unix_us);
// "20240501T120000Z" (file names).
std::string compact_utc(int64_t unix_us);

// The CSV header line (with '\n'); "" for JSON Lines.
std::string header_line(RecordType t, RecordFormat f);
// One encoded line with its '\n'. CSV fields are quoted when they contain ',', '"', CR or LF
// (RFC 4180: a quote doubles); JSON Lines: one object, keys in field order.
std::string encode(const Record& r, RecordFormat f);
// Parses one CSV line (no trailing newline) into fields; nullopt if the quoting is broken.
std::optional<std::vector<std::string>> parse_csv_line(std::string_view line);

// Record builders. start/end: the interval the usage covers (unix µs). rules_version: the version
// of the traffic-class ruleset in force (0: none).
Record interface_record(int64_t start_us, int64_t end_us, const std::string& interface,
                        const std::string& role, std::string_view direction, const Counts& c,
                        uint64_t rules_version = 0);
// A host as its records name it. user: the subscriber bound to ip at the record's end ("" when none
// or when no subscribers are configured).
struct HostIdentity {
    std::string interface, mac, ip, user;
};
Record host_record(int64_t start_us, int64_t end_us, const HostIdentity& host, std::string_view direction,
                   const Counts& c, uint64_t rules_version = 0);
// Cgroup counters have no link layer: l2 is not a field.
Record cgroup_record(int64_t start_us, int64_t end_us, const std::string& path, std::string_view direction,
                     const Counts& c, uint64_t rules_version = 0);
// A traffic class on one interface in one direction (Collector::classes()); gone: the class is
// not in the ruleset in force.
struct ClassIdentity {
    std::string interface;
    std::string_view direction;
    uint32_t id = 0;
    std::string name;
    bool gone = false;
};
Record class_record(int64_t start_us, int64_t end_us, const ClassIdentity& cls, const Counts& c,
                    uint64_t rules_version);
struct FlowRecordIn {
    int64_t first_us = 0;
    int64_t last_us = 0;
    std::string interface;
    std::string_view direction;
    std::string family; // "ipv4" | "ipv6"
    uint8_t proto = 0;
    std::string src;
    uint16_t sport = 0;
    std::string dst;
    uint16_t dport = 0;
    uint8_t tcp_flags = 0;
    std::string user; // lan interfaces: the subscriber bound to the host's address at last_us
    // The class of the flow's latest classified packet ("" when none) and the version of the ruleset
    // that gave it (with no class: the version in force; 0: no ruleset).
    std::string cls;
    uint64_t rules_version = 0;
    Counts counts;
};
Record flow_record(const FlowRecordIn& f);

// An alert as the alert logic reports it (thresholds, bursts); see Recorder::add_alerts.
struct AlertRecord {
    int64_t time_us = 0;
    std::string name;         // threshold / rule name
    std::string event;        // "crossed" | "cleared" | "burst" | ...
    std::string subject_kind; // "interface" | "host" | "cgroup" | "flow"
    std::string subject;
    std::string metric; // e.g. "l3", "packets"
    uint64_t value = 0;
    uint64_t limit = 0;
    std::string action; // "notify" | "throttle" | "block"
    std::string message;
    uint64_t rules_version = 0; // the traffic-class ruleset in force (0: none)
};
Record alert_record(const AlertRecord& a);

// ---- settings --------------------------------------------------------------------------------

struct RecordTypeSettings {
    bool enabled = true;
    RecordFormat format = RecordFormat::Csv;
    bool operator==(const RecordTypeSettings&) const = default;
};

// Key records.* of the config (README "Accounting records"), possibly overridden at run time
// through D-Bus (<state_dir>/records.json).
struct RecordsConfig {
    bool enabled = false;
    std::chrono::milliseconds period{std::chrono::hours{1}};     // files close at each boundary
    std::chrono::milliseconds interval{std::chrono::minutes{1}}; // usage records cover at most this
    std::array<RecordTypeSettings, kRecordTypeCount> types{};    // by RecordType
    uint64_t max_file_size = 64ull << 20;                        // bytes, uncompressed, header included
    uint64_t max_records = 1000000;                              // records per file (0: no limit)
    bool compress = false;                                       // gzip closed files (".gz")
    std::filesystem::path spool_dir;                             // "" = <state_dir>/spool
    bool operator==(const RecordsConfig&) const = default;

    const RecordTypeSettings& type(RecordType t) const { return types[static_cast<size_t>(t)]; }
    RecordTypeSettings& type(RecordType t) { return types[static_cast<size_t>(t)]; }
};

namespace records_limits {
inline constexpr std::chrono::milliseconds min_period{std::chrono::seconds{1}};
inline constexpr std::chrono::milliseconds max_period{std::chrono::days{7}};
inline constexpr std::chrono::milliseconds min_interval{std::chrono::seconds{1}};
inline constexpr uint64_t min_file_size = 512;
inline constexpr uint64_t max_file_size = 1ull << 40;
} // namespace records_limits

// "" when c is acceptable, else one line naming the key and the problem.
std::string validate(const RecordsConfig& c);

// "interface=csv,host=jsonl,flow=csv": the enabled types and their formats, in type order.
std::string types_to_string(const RecordsConfig& c);
// Parses the same text into c's types (every type not named is disabled); a name without
// "=format" keeps the type's current format. Throws std::invalid_argument.
void types_from_string(std::string_view s, RecordsConfig& c);

// The run-time overrides: a JSON object with any of the keys enabled (bool), period and interval
// (duration text "5m"), types (text as above), max_file_size, max_records (numbers), compress
// (bool). Returns base with them applied and validated; throws std::invalid_argument naming the
// key, and then nothing is applied. spool_dir cannot be overridden.
RecordsConfig apply_overrides(const RecordsConfig& base, const nlohmann::json& overrides);
// The overridable settings of c as such an object (GetSettings, records.json).
nlohmann::json settings_to_json(const RecordsConfig& c);

// ---- rotation --------------------------------------------------------------------------------

// The end of the period that contains now_us, aligned to the Unix epoch (UTC): with a period
// of 5m files close at :00, :05, ...; 1h at whole hours; 1d at midnight UTC.
int64_t period_end(int64_t now_us, std::chrono::milliseconds period);

struct OpenFileFill {
    uint64_t bytes = 0;   // written so far, header included, uncompressed
    uint64_t records = 0; // records (the header is not one)
};
// True when a file holding `fill` must be closed before a line of line_bytes is appended: it
// would pass max_file_size or max_records. A file with no record yet always takes the line, so a
// file never exceeds max_file_size unless its first record alone (with the header) does.
bool full_before(const OpenFileFill& fill, uint64_t line_bytes, const RecordsConfig& c);

enum class RotateReason { Full, Period, Demand, Settings, Shutdown, Recovered };
std::string_view to_string(RotateReason r);

// Closed file names: <host>_<type>_<YYYYmmddTHHMMSSZ>_<seq>.<csv|jsonl>[.gz]; seq is six digits
// or more and never repeats in a state directory. host is sanitised (see sanitize_host).
std::string file_name(const std::string& host, RecordType t, int64_t start_us, uint64_t seq, RecordFormat f,
                      bool gz);
// Letters, digits, '-' and '.' kept; anything else (including '_') becomes '-'; "" becomes "host".
std::string sanitize_host(std::string_view host);
struct ParsedName {
    std::string host;
    RecordType type = RecordType::Interface;
    std::string start; // the YYYYmmddTHHMMSSZ text
    uint64_t seq = 0;
    RecordFormat format = RecordFormat::Csv;
    bool gz = false;
};
std::optional<ParsedName> parse_file_name(std::string_view name);

} // namespace nettally
