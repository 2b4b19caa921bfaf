// nettallyctl's command line: what the user asked for (Options), parsed with CLI11 from the
// one verb table (verbs.h). Pure: no bus, no files; unit-tested in tests/unit/ctl_args_test.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace nettally::ctl {

enum class Command {
    Status,
    Interfaces,
    Hosts,
    Flows,
    Cgroups,
    History,
    Reload,
    Thresholds,
    Watch,
    Records,
    Upload,
    Top,
    Export,
    Subscribers,
    Users,
    Rules,
    Classes,
    Help,
    Version
};

// nettallyctl thresholds SUB [NAME] [--OPTION VALUE]...
struct ThresholdArgs {
    std::string sub;                           // list | usage | add | modify | remove | reset
    std::string name;                          // usage: optional; add, modify, remove, reset: required
    std::map<std::string, std::string> fields; // definition keys (D-Bus names) -> text values
};

// One `records set KEY=VALUE`, typed as SetSettings expects it.
using SettingValue = std::variant<bool, std::uint64_t, std::string>;

// nettallyctl records SUB [KEY=VALUE...]
struct RecordsArgs {
    std::string sub;                              // status | set | reset | rotate | spool
    std::map<std::string, SettingValue> settings; // set: the validated KEY=VALUE pairs
};

// nettallyctl upload SUB [URL] [--user NAME] [--password-stdin | --password-file FILE]
struct UploadArgs {
    std::string sub; // status | spool | now | set-target | clear-target
    std::string url;
    std::string user;
    bool password_stdin = false;
    std::string password_file;
};

// nettallyctl export SUB [URL...]
struct ExportArgs {
    std::string sub; // status | set | clear
    std::vector<std::string> urls;
};

// nettallyctl rules SUB [FILE] [-o BUNDLE] [--sign KEY] [--key PUB]
struct RulesArgs {
    std::string sub;  // compile | keygen | verify | status | load | rollback
    std::string file; // compile: the rule document; keygen: the key files' PREFIX; verify, load: the bundle
    std::string sign_key; // compile --sign: the secret key file
    std::string key;      // verify --key: the public key file
};

struct Options {
    Command command = Command::Help;
    bool json = false;
    double timeout_sec = 0; // 0: kDefaultTimeoutSec
    std::string sort = "l2";
    std::optional<std::uint32_t> top;
    bool tree = false;                // cgroups --tree
    std::string period = "day";       // history --period (the daemon validates it)
    std::string subject;              // history --subject PREFIX
    bool graph = false;               // history --graph
    std::string layer = "l2";         // history --graph --layer
    std::string output;               // history --graph --output FILE.svg; rules compile -o BUNDLE
    bool once = false;                // top --once
    std::uint64_t interval_ms = 1000; // top --interval
    ThresholdArgs thresholds;
    RecordsArgs records;
    UploadArgs upload;
    ExportArgs exports;
    RulesArgs rules;
    bool class_hosts = false; // classes --hosts
    std::string iface;        // classes --hosts --iface NAME ("": every interface)
};

inline constexpr double kDefaultTimeoutSec = 10;
inline constexpr double kMaxTimeoutSec = 86400;
inline constexpr std::uint32_t kDefaultTop = 20;

struct UsageError {
    std::string message;
};

using ParseResult = std::variant<Options, UsageError>;

// args excludes argv[0]. --help anywhere wins over a usage error (Command::Help).
ParseResult parse_args(const std::vector<std::string_view>& args);

// "N must be a positive integer" is checked here; the upper bound is the daemon's call.
std::optional<std::uint32_t> parse_top(std::string_view s);
std::optional<double> parse_timeout(std::string_view s);

// KEY=VALUE of `records set`: enabled/compress true|false (yes/no, on/off), max_file_size a
// size as the config writes it ("64MiB", core/units.h), max_records a whole number, period,
// interval and types as text (nettallyd validates them). The error text otherwise.
std::variant<std::pair<std::string, SettingValue>, std::string> parse_setting(std::string_view key_value);

// The whole of `nettallyctl --help`: the verb table's commands and options, the JSON shapes,
// exit status and examples.
std::string help_text(std::string_view version);

} // namespace nettally::ctl
