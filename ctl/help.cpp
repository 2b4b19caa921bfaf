// `nettallyctl --help`: fixed sections around the COMMANDS and OPTIONS the verb table
// (verbs.cpp) documents, so a command and its help are written in one place.
#include "args.h"
#include "verbs.h"

#include <set>

namespace nettally::ctl {
namespace {

constexpr std::string_view kHead = R"(NAME
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

)";

constexpr std::string_view kGlobalOptions = R"(OPTIONS
    --json         Print JSON (see JSON OUTPUT) instead of tables. Accepted before or
                   after COMMAND.
    --timeout SEC  Wait at most SEC seconds for each answer (default 10; fractions such
                   as 0.5 allowed; at most 86400).
)";

constexpr std::string_view kLastOptions = R"(    -h, --help     Print this text and exit.
    --version      Print the version and exit.

)";

constexpr std::string_view kTail = R"(JSON OUTPUT
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
                  "wan_sent": C, "wan_received": C, "first_seen": TIME, "last_seen": TIME}]}
                wan_sent/wan_received: what the host's connections moved out of and into
                wan-role interfaces (after NAT, matched by conntrack).
    history     {"history": {"period": "day"|"month", "periods": [{"label": S,
                  "start": TIME, "end": TIME, "totals": {SUBJECT: C, ...}}]}}
    flows       {"flows": [{"interface": S, "direction": "ingress"|"egress",
                  "proto": "tcp"|"udp"|"icmp"|"icmpv6"|"<number>", "src": S, "sport": N,
                  "dst": S, "dport": N, "packets": N, "l2": N, "l3": N, "l4": N,
                  "payload": N, "first_seen": TIME, "last_seen": TIME, "tcp_flags": F,
                  "class": S|null}]}
                The counters sit directly in each flow object. F is, for tcp, the OR of
                all TCP flags seen as "CEUAPRSF" with "." for a clear flag (SYN+ACK is
                "...A..S."), and for other protocols the raw number. ICMP and ICMPv6 flows
                have sport 0 and dport TYPE * 256 + CODE, and also "icmp_type": N and
                "icmp_code": N. "class": the traffic class of the flow's latest
                classified packet, null when no ruleset is in force or the flow has
                none yet.
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
    hosts with subscribers configured: each host also has "user": S, or null when its
                address is bound to no one (the user it is bound to now).
    subscribers {"subscribers": [{"user": S, "prefix": S, "source": "static"|"dhcp"|"radius",
                  "session": S|null, "mac": S|null, "since": TIME, "until": TIME,
                  "effective": B}]}
                until null while open; effective: the kernel counts the prefix for it.
    users       {"users": [{"interface": S, "user": S|null, "sent": C, "received": C}]}
                user null: the unbound row (no bound address). Per interface and
                direction, users + unbound == the sum of that interface's hosts.
    classes     {"classes": [{"interface": S, "direction": "ingress"|"egress",
                  "class_id": N, "class": S, "counters": C, "gone": B}]}
                gone: the class is not in the ruleset in force (its totals are kept).
    classes --hosts {"host_classes": [{"interface": S, "mac": S, "ip": S,
                  "class_id": N, "class": S, "sent": C, "received": C, "gone": B}]}
                per lan host, the classes add up to what the host counted since
                classification began.
    rules status {"active": B, "version": N, "hash": S, "name": S, "classes": N,
                  "loaded_at": TIME, "origin": S, "previous_version": N,
                  "previous_hash": S, "rejected": N, "last_rejection": S,
                  "last_rejection_at": TIME}
    rules load, rules rollback {"version": N, "hash": S}
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

)";

// Each line of `text` indented by `indent` spaces.
std::string indented(std::string_view text, std::size_t indent) {
    std::string out;
    std::size_t start = 0;
    while (start < text.size()) {
        const auto nl = text.find('\n', start);
        const auto line =
            text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        out += std::string(indent, ' ') + std::string(line) + "\n";
        if (nl == std::string_view::npos)
            break;
        start = nl + 1;
    }
    return out;
}

// "    status      Daemon-wide..." when the synopsis fits the 12-column name field, else the
// synopsis on its own line and the paragraph below it.
std::string commands_section() {
    std::string out = "COMMANDS\n";
    for (const Verb& v : verbs()) {
        if (v.synopsis.size() < 12 && !v.help.empty()) {
            const std::string first =
                "    " + std::string(v.synopsis) + std::string(12 - v.synopsis.size(), ' ');
            const std::string para = indented(v.help, 16);
            out += first + para.substr(16);
        } else {
            out += "    " + std::string(v.synopsis) + "\n" + indented(v.help, 16);
        }
    }
    return out + "\n";
}

// The options with an OPTIONS line of their own, once each, in table order.
std::string options_section() {
    std::string out(kGlobalOptions);
    std::set<std::string_view> seen;
    for (const Verb& v : verbs())
        for (const OptionSpec& o : v.options) {
            if (o.help.empty() || !seen.insert(o.flag).second)
                continue;
            std::string name = std::string(o.flag) + (o.value.empty() ? "" : " " + std::string(o.value));
            name.resize(std::max<std::size_t>(name.size() + 1, 15), ' ');
            const std::string para = indented(o.help, 4 + name.size());
            out += "    " + name + para.substr(4 + name.size());
        }
    return out + std::string(kLastOptions);
}

} // namespace

std::string help_text(std::string_view version) {
    std::string text(kHead);
    text += commands_section();
    text += options_section();
    text += kTail;
    text += "VERSION\n    ";
    text += version;
    text += '\n';
    return text;
}

} // namespace nettally::ctl
