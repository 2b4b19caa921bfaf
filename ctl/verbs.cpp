// See verbs.h. The help paragraphs are the manual's COMMANDS section, kept beside the command.
#include "verbs.h"

#include "commands.h"

#include <algorithm>

namespace nettally::ctl {
namespace {

constexpr OptionSpec kListing[] = {
    {"--top", "N", Target::Top, "",
     "hosts, flows, top: at most N entries; N is a positive integer (default\n"
     "20, with --json too). nettallyd accepts 1..100000 and says so otherwise."},
    {"--sort", "KEY", Target::Sort, "",
     "hosts, flows, top: order by KEY (default l2). nettallyd validates KEY."},
};
constexpr OptionSpec kTop[] = {
    {"--top", "N", Target::Top, "", ""},
    {"--sort", "KEY", Target::Sort, "", ""},
    {"--once", "", Target::Once, "", "top: print one frame (rates over one interval) and exit."},
    {"--interval", "T", Target::Interval, "", "top: time T between readings, 100ms..1h (default 1s)."},
};
constexpr OptionSpec kTree[] = {
    {"--tree", "", Target::Tree, "", "cgroups: show the hierarchy (tables) or nest it (JSON \"children\")."},
};
constexpr OptionSpec kHistory[] = {
    {"--period", "P", Target::Period, "", "history: day (default) or month."},
    {"--subject", "S", Target::Subject, "", "history: only subjects starting with S (e.g. iface:wan0)."},
    {"--graph", "", Target::Graph, "", "history: bars per period and subject instead of the table."},
    {"--layer", "L", Target::Layer, "", "history --graph: packets, l2 (default), l3, l4 or payload."},
    {"--output", "FILE", Target::Output, "", "history --graph: write an SVG bar chart to FILE."},
};
// Threshold definition options: values go to the daemon as text, which parses and checks them.
constexpr OptionSpec subject_option(std::string_view flag, std::string_view value, std::string_view kind) {
    return {flag, value, Target::SubjectKind, kind, ""};
}
constexpr OptionSpec field_option(std::string_view flag, std::string_view value, std::string_view key) {
    return {flag, value, Target::Field, key, ""};
}
constexpr OptionSpec kDefinition[] = {
    // SUBJECT: one of these
    subject_option("--interface", "NAME", "interface"), subject_option("--host", "MAC|IP", "host"),
    subject_option("--cgroup", "PATH|UNIT", "cgroup"), subject_option("--flow", "FILTER", "flow"),
    subject_option("--user", "NAME", "user"), subject_option("--class", "NAME[@IFACE]", "class"),
    // OPTIONS: the definition field each one sets
    field_option("--direction", "D", "direction"), field_option("--layer", "L", "layer"),
    field_option("--period", "P", "period"), field_option("--window", "DURATION", "window_s"),
    field_option("--step", "SIZE", "step"), field_option("--limit", "SIZE", "limit"),
    field_option("--min-interval", "DURATION", "min_interval_ms"), field_option("--rate", "SIZE", "rate_bps"),
    field_option("--rate-window", "DURATION", "rate_window_s"), field_option("--action", "A", "action"),
    field_option("--action-rate", "SIZE", "action_rate"), field_option("--action-on", "WHEN", "action_on")};
constexpr OptionSpec kClasses[] = {
    {"--hosts", "", Target::ClassHosts, "",
     "classes: per lan host and class (ListHostClasses) instead of per interface."},
    {"--iface", "NAME", Target::Iface, "", "classes --hosts: only the hosts of lan interface NAME."},
};
constexpr OptionSpec kRulesCompile[] = {
    {"-o,--output", "BUNDLE", Target::Output, "", "rules compile: the bundle file to write."},
    {"--sign", "KEY", Target::SignKey, "",
     "rules compile: sign the bundle with the secret key file KEY (rules keygen;\n"
     "mode 0600)."},
};
constexpr OptionSpec kRulesVerify[] = {
    {"--key", "PUB", Target::VerifyKey, "",
     "rules verify: the public key file (PREFIX.pub of rules keygen)."},
};
constexpr OptionSpec kSetTarget[] = {
    {"--user", "NAME", Target::User, "", ""},
    {"--password-stdin", "", Target::PasswordStdin, "", ""},
    {"--password-file", "FILE", Target::PasswordFile, "", ""},
    {"--password", "", Target::RefusedPassword, "", ""},
};

constexpr std::string_view kThresholdsAddHelp =
    R"(Add a runtime threshold or change one (AddThreshold, ModifyThreshold).
SUBJECT is one of --interface NAME, --host MAC|IP, --cgroup PATH|UNIT,
--flow FILTER ("iface=wan0,proto=tcp,dport=443"), --user NAME (a subscriber:
every address bound to NAME; throttle and block apply to all of them),
--class NAME (a traffic class of the active ruleset on every lan interface:
sent from the lan's hosts, received by them) or --class NAME@IFACE (the class
on one interface: sent = egress, received = ingress); class subjects notify.
OPTIONS: --limit SIZE,
--direction sent|received|both, --layer l2|l3|l4|payload,
--period day|month|rolling|since, --window DURATION (rolling),
--min-interval DURATION (Burst), --rate SIZE and --rate-window DURATION
(RateExceeded; SIZE per second), --action notify|throttle|block,
--action-rate SIZE (throttle, per second), --action-on limit|burst|any.
SIZE: bytes or 1MB (10^6), 1MiB = 1M (2^20), 5GB...; DURATION: 800ms, 90s, 1h.
nettallyd checks every value. Root and group nettally only.)";

constexpr std::string_view kRecordsSetHelp =
    R"(Change settings (SetSettings), validated all together: enabled=true|false,
period=5m, interval=1m, types=interface=csv,host=csv,flow=jsonl,
max_file_size=SIZE (bytes or 64MiB, 1GB as in the config), max_records=N
(0: no limit), compress=true|false. Saved in nettallyd's state directory;
they win over the config file. Root and group nettally only.)";

constexpr Verb kVerbs[] = {
    {"status",
     Command::Status,
     run_status,
     "status",
     R"(Daemon-wide figures (GetStatus), one "key: value" line each.)",
     {}},
    {"interfaces",
     Command::Interfaces,
     run_interfaces,
     "interfaces",
     R"(Totals per interface, one row per direction (ListInterfaces), followed by
the unattributed buckets (non_ip, unparsable, flow_overflow) that are not 0.)",
     {}},
    {"hosts", Command::Hosts, run_hosts, "hosts [--top N] [--sort KEY]",
     R"(Hosts seen on lan interfaces, by MAC and IP (ListHosts). KEY is packets,
l2, l3, l4 or payload (sent + received, largest first) or last_seen (most
recent first). The byte columns show KEY's layer, or l2 for other keys.)",
     kListing},
    {"flows", Command::Flows, run_flows, "flows [--top N] [--sort KEY]",
     R"(Unidirectional flows (ListFlows). KEY is packets, l2, l3, l4 or payload
(largest first), first_seen or last_seen (most recent first). ICMP and
ICMPv6 rows show DPORT as TYPE/CODE. With a ruleset in force (rules load),
CLASS is the traffic class of the flow's latest classified packet.)",
     kListing},
    {"cgroups", Command::Cgroups, run_cgroups, "cgroups [--tree]",
     R"(The gateway's own traffic by cgroup (ListCgroups): sockets of nettallyd's
network namespace, per cgroup path and systemd unit, packets and bytes
received (IN) and sent (OUT). A cgroup's figures include every cgroup
below it; --tree draws the hierarchy. STATE "gone": the cgroup was removed,
its totals are kept. Needs cgroups.enabled in nettallyd's config.)",
     kTree},
    {"history", Command::History, run_history,
     "history [--period day|month] [--subject PREFIX] [--graph [--layer L] [--output FILE]]",
     R"(Totals per accounting period (GetHistory), oldest first: days or months
(default day) in nettallyd's configured time zone, for every subject or
those starting with PREFIX. Subjects: iface:NAME:DIR,
host:IFACE|MAC|IP:sent|received, flow:IFACE:DIR:PROTO[/PORT] and, with
subscribers, user:NAME:sent|received (every lan interface). --graph draws
each period's figure (--layer) as bars, one per subject, with the exact
value beside it, as vnstat -d does; with --output FILE it writes an SVG bar
chart instead (each bar's exact value in its data-value attribute).)",
     kHistory},
    {"reload",
     Command::Reload,
     run_reload,
     "reload",
     R"(Re-read the config file (Reload). Allowed to root and group nettally.
An invalid config is refused (exit 1) and the running one stays.)",
     {}},
    {"thresholds list",
     Command::Thresholds,
     run_thresholds,
     "thresholds list",
     R"(Every threshold (ListThresholds): source (config or runtime), subject,
direction, layer, period, step, limit, action.)",
     {}},
    {"thresholds usage",
     Command::Thresholds,
     run_thresholds,
     "thresholds usage [NAME]",
     R"(Usage against each threshold, or NAME's (GetUsage): bytes in the period,
steps signalled, share of the limit, end of the period, action in force.)",
     {},
     0,
     1},
    {"thresholds add", Command::Thresholds, run_thresholds,
     "thresholds add NAME SUBJECT --step SIZE [OPTIONS]", "", kDefinition, 1, 1,
     "thresholds add needs a threshold NAME"},
    {"thresholds modify", Command::Thresholds, run_thresholds, "thresholds modify NAME [OPTIONS]",
     kThresholdsAddHelp, kDefinition, 1, 1, "thresholds modify needs a threshold NAME"},
    {"thresholds remove",
     Command::Thresholds,
     run_thresholds,
     "thresholds remove NAME",
     "",
     {},
     1,
     1,
     "thresholds remove needs a threshold NAME"},
    {"thresholds reset",
     Command::Thresholds,
     run_thresholds,
     "thresholds reset NAME",
     R"(Remove a runtime threshold, or restart a threshold's usage from now
(RemoveThreshold, ResetPeriod). Root and group nettally only.)",
     {},
     1,
     1,
     "thresholds reset needs a threshold NAME"},
    {"top", Command::Top, run_top, "top [--once] [--interval T] [--top N] [--sort KEY]",
     R"(Live rates, as iftop and nethogs show them: per interface and direction,
then the busiest hosts and flows, from two readings of the totals one
--interval T apart (the time between the daemon's polls, not the calls). KEY
is packets, l2 (default), l3, l4 or payload: the order, and the layer of the
byte rates. On a terminal the screen is redrawn to its size every interval;
q or Ctrl-C quits. --once: one frame on stdout. --json: each frame as one
JSON line {"interval_s", "layer", "interfaces": [{"name", "ingress",
"egress"}], "hosts": [{"interface", "mac", "ip", "sent", "received"}],
"flows": [FLOW + "rate"]}, rates as {"packets_per_s", "bytes_per_s"};
with --once one object. N (default 20; live: what fits) caps hosts and flows.)",
     kTop},
    {"watch",
     Command::Watch,
     run_watch,
     "watch",
     R"(Print the thresholds signals (StepCrossed, LimitReached, Burst,
RateExceeded, ActionApplied, ActionLifted, ActionFailed) as they arrive,
one line each (--json: one JSON object per line, "signal" naming it, times
as TIME), until SIGINT or SIGTERM (exit 0).)",
     {}},
    {"records status",
     Command::Records,
     run_records,
     "records status",
     R"(The accounting record settings in effect (GetSettings): enabled, period,
interval, types (TYPE=FORMAT,...), max_file_size, max_records, compress,
which keys were set over D-Bus, the spool directory and counts.
JSON: {"records": {KEY: VALUE, ...}}.)",
     {}},
    {"records set",
     Command::Records,
     run_records,
     "records set KEY=VALUE...",
     kRecordsSetHelp,
     {},
     1,
     -1,
     "records set: give at least one KEY=VALUE"},
    {"records reset",
     Command::Records,
     run_records,
     "records reset",
     "Drop every setting made with 'records set': the config's apply again.",
     {}},
    {"records rotate",
     Command::Records,
     run_records,
     "records rotate",
     R"(Write the usage up to now and close every open file into the spool
(Rotate); prints the closed files. JSON: {"closed": [NAME, ...]}.)",
     {}},
    {"records spool",
     Command::Records,
     run_records,
     "records spool",
     R"(Closed files in the spool (ListSpool): NAME, BYTES, TYPE, CREATED.
JSON: {"spool": [{"name", "size", "type", "created": TIME}]}.)",
     {}},
    {"upload status",
     Command::Upload,
     run_upload,
     "upload status",
     R"(The uploader (GetUploadStatus): target URL, user, whether a password is
set (never the password), state (idle, uploading, waiting, auth_failed,
disabled), last error, counts of uploaded, failed and dropped files, and
the spool's size and cap. JSON: {"upload": {KEY: VALUE, ...}}.)",
     {}},
    {"upload spool",
     Command::Upload,
     run_upload,
     "upload spool",
     R"(Files waiting in the spool, oldest first (ListSpool): NAME, BYTES,
MODIFIED, STATE (uploading, queued, waiting, paused), ATTEMPTS, LAST ERROR.
JSON: {"spool": [{"name", "size", "mtime": TIME, "state", "attempts",
"last_error"}]}.)",
     {}},
    {"upload now",
     Command::Upload,
     run_upload,
     "upload now",
     "Send now, ending a backoff or an authentication pause (UploadNow).",
     {}},
    {"upload set-target", Command::Upload, run_upload,
     "upload set-target URL [--user NAME] [--password-stdin | --password-file FILE]",
     R"(Upload to URL as NAME (SetTarget); the password is read from the first
line of stdin or from FILE, never from the command line. Kept in
nettallyd's state directory until the config's upload target or
credentials change. Root and group nettally only.)",
     kSetTarget, 1, 1, "upload set-target: missing URL"},
    {"upload clear-target",
     Command::Upload,
     run_upload,
     "upload clear-target",
     "Drop the target set with set-target: the config's applies again.",
     {}},
    {"export status",
     Command::Export,
     run_export,
     "export status",
     R"(IPFIX export (GetExportStatus): where the collectors come from (config,
dbus, none) and per collector URL, STATE (sending, connecting, connected,
down), RECORDS, MESSAGES, BYTES, ERRORS, DROPPED, BUFFERED, LAST TEMPLATE,
LAST ERROR. JSON: {"export": {"source", "collectors": [{"url", "state",
"records", "messages", "bytes", "send_errors", "dropped", "buffered",
"last_template_at": TIME, "last_error"}]}}.)",
     {}},
    {"export set",
     Command::Export,
     run_export,
     "export set URL...",
     R"(Export to these collectors (SetCollectors): udp://ADDRESS:PORT or
tcp://ADDRESS:PORT, IPv6 in brackets. Kept in nettallyd's state directory
until the config's export.collectors changes. Root and group nettally only.)",
     {},
     1,
     -1,
     "export set: missing URL"},
    {"export clear",
     Command::Export,
     run_export,
     "export clear",
     "Drop the collectors set with export set: the config's apply again.",
     {}},
    {"subscribers",
     Command::Subscribers,
     run_subscribers,
     "subscribers",
     R"(Bindings of addresses and prefixes to users (ListSubscribers), open ones
first, then the closed ones kept for subscribers.keep_closed: USER, BINDING,
SOURCE (static, dhcp, radius), SESSION, SINCE, UNTIL, STATE (counting: the
kernel counts the prefix for it; outranked: another source's binding of the
same prefix wins; closed). JSON: {"subscribers": [{"user", "prefix",
"source", "session", "mac", "since": TIME, "until": TIME, "effective"}],
"radius": {"enabled", "listen", "sessions", "requests", "responses",
"retransmissions", "send_errors", "dropped_total", "dropped": {REASON: N},
"opened", "refreshed", "closed", "nas_reset", "unknown_session",
"no_address", "stale"}} (the RADIUS accounting listener's counters).)",
     {}},
    {"users",
     Command::Users,
     run_users,
     "users",
     R"(Per-user totals on each lan interface (ListUsers), counted for the user
bound when the packet crossed; the row of user (unbound) is the traffic of
no bound address.
Per interface and direction the users add up to the hosts. JSON: {"users":
[{"interface", "user" (null: unbound), "sent": C, "received": C}]}.)",
     {}},
    {"rules compile", Command::Rules, run_rules, "rules compile RULES.yaml -o BUNDLE [--sign KEY]",
     R"(Check a traffic class rule document and compile it into a bundle, the
binary tables nettallyd loads (no daemon needed). Every problem is reported
as FILE:LINE:COL: KEY: PROBLEM (exit 1). With --sign KEY the bundle gets an
Ed25519 signature trailer by that secret key. Prints the ruleset's name,
version, hash, classes, rules and size. JSON: {"name", "version", "hash",
"classes", "rules", "bytes", "output", "key_id" (signed only)}.)",
     kRulesCompile, 1, 1, "rules compile needs the rule document RULES.yaml"},
    {"rules keygen",
     Command::Rules,
     run_rules,
     "rules keygen PREFIX",
     R"(Make an Ed25519 key pair for signing bundles: PREFIX.key, the secret key
(mode 0600, for rules compile --sign), and PREFIX.pub, the public key (for
a gateway's rules.trusted_keys and rules verify). Each file is one line of
base64. Existing files are not overwritten. Prints the key id (the first 8
bytes of the public key, in hex). JSON: {"key_id", "public", "secret"}.)",
     {},
     1,
     1,
     "rules keygen needs PREFIX, the start of the key files' names"},
    {"rules verify", Command::Rules, run_rules, "rules verify BUNDLE --key PUB",
     R"(Check a bundle as a gateway with this trusted key does: the signature
trailer by that key over the bundle, then the bundle itself. Prints the
ruleset's name, version, hash, the signing key id and ok, or why it is
refused (exit 1). JSON: {"ok", "error", "name", "version", "hash",
"key_id"}.)",
     kRulesVerify, 1, 1, "rules verify needs the bundle file BUNDLE"},
    {"rules status",
     Command::Rules,
     run_rules,
     "rules status",
     R"(The traffic-class ruleset in force (GetRulesStatus): active, version,
hash, name, classes, loaded_at, origin (dbus, config PATH, rollback, saved),
previous_version and previous_hash (what rules rollback returns to),
rejected (bundles refused so far), last_rejection and last_rejection_at.
JSON: the same keys, times as TIME.)",
     {}},
    {"rules load",
     Command::Rules,
     run_rules,
     "rules load BUNDLE",
     R"(Put a compiled bundle in force (LoadRules). Refused, with nothing
changed and the reason on one line (exit 1), when it is not a valid bundle,
is larger than rules.max_size, fails the signature check or its version is
not greater than the version in force. Prints the version and hash now in
force; JSON: {"version", "hash"}. Root and group nettally only.)",
     {},
     1,
     1,
     "rules load needs the bundle file BUNDLE"},
    {"rules rollback",
     Command::Rules,
     run_rules,
     "rules rollback",
     R"(Put the previous ruleset in force again (RollbackRules), whatever its
version; the one rolled back from becomes the previous one. JSON:
{"version", "hash"}. Root and group nettally only.)",
     {}},
    {"classes", Command::Classes, run_classes, "classes [--hosts [--iface NAME]]",
     R"(Per-class totals (ListClasses): IFACE, DIR, CLASS, PACKETS, L2, L3, L4,
PAYLOAD and GONE (the class is not in the ruleset in force; its totals are
kept). While a ruleset is in force, per interface and direction the classes
add up to what the interface counted. JSON: {"classes": [{"interface",
"direction", "class_id", "class", "counters": C, "gone"}]}.
With --hosts, per lan host and class (ListHostClasses): IFACE, MAC, IP,
CLASS, SENT_PKTS, SENT_L2, RECV_PKTS, RECV_L2, GONE (--json has all five
figures); per host the classes add up to what the host counted since
classification began. --iface NAME: that interface's hosts only. JSON:
{"host_classes": [{"interface", "mac", "ip", "class_id", "class", "sent": C,
"received": C, "gone"}]}.)",
     kClasses},
    {"help", Command::Help, nullptr, "help", "Print this text.", {}},
};

} // namespace

std::span<const Verb> verbs() {
    return kVerbs;
}

const Verb* find_verb(std::string_view name) {
    for (const Verb& v : kVerbs)
        if (v.name == name)
            return &v;
    return nullptr;
}

std::string_view group_of(std::string_view verb_name) {
    const auto space = verb_name.find(' ');
    return space == std::string_view::npos ? std::string_view() : verb_name.substr(0, space);
}

std::vector<std::string_view> group_subcommands(std::string_view group) {
    std::vector<std::string_view> out;
    for (const Verb& v : kVerbs)
        if (group_of(v.name) == group && !group.empty())
            out.push_back(v.name.substr(group.size() + 1));
    return out;
}

} // namespace nettally::ctl
