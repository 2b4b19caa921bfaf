// The Prometheus families of nettallyd (metrics.h): one function per source, each reading the
// daemon's own totals as they are at the scrape.
#include "core/metrics.h"

#include "core/cgroups.h"
#include "core/thresholds.h"
#include "core/units.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <sstream>
#include <tuple>
#include <variant>

namespace nettally {

namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<prometheus::ClientMetric::Label>;

struct Layer {
    const char* name;
    uint64_t Counts::*figure;
};
constexpr std::array<Layer, 4> kLayers{{
    {"l2", &Counts::l2},
    {"l3", &Counts::l3},
    {"l4", &Counts::l4},
    {"payload", &Counts::payload},
}};

template <typename... F> void append(MetricFamilies& out, F&&... families) {
    (out.push_back(std::forward<F>(families)), ...);
}

double num(uint64_t v) {
    return static_cast<double>(v);
}

// The two counters of one kind of subject: nettally_<subject>_bytes_total by layer (from
// `first_layer` on: cgroups have no l2) and nettally_<subject>_packets_total.
struct CountFamilies {
    MetricFamily bytes;
    MetricFamily packets;
    size_t first_layer = 0;

    CountFamilies(const std::string& subject, std::string bytes_help, std::string packets_help,
                  size_t first = 0)
        : bytes(make_family("nettally_" + subject + "_bytes_total", std::move(bytes_help),
                            MetricType::Counter)),
          packets(make_family("nettally_" + subject + "_packets_total", std::move(packets_help),
                              MetricType::Counter)),
          first_layer(first) {}

    void add(const Labels& labels, const Counts& c) {
        for (size_t i = first_layer; i < kLayers.size(); i++) {
            Labels l = labels;
            l.push_back({"layer", kLayers[i].name});
            add_sample(bytes, std::move(l), num(c.*kLayers[i].figure));
        }
        add_sample(packets, labels, num(c.packets));
    }

    void move_to(MetricFamilies& out) {
        out.push_back(std::move(bytes));
        out.push_back(std::move(packets));
    }
};

void add_interfaces(MetricFamilies& out, const Collector& c) {
    CountFamilies counts(
        "interface",
        "Bytes on an accounted interface, by direction and layer (l2 frame, l3 IP datagram, l4 "
        "segment, payload).",
        "Wire packets on an accounted interface, by direction.");
    auto unattributed = make_family("nettally_interface_unattributed_packets_total",
                                    "Packets in no flow, by bucket: non_ip, unparsable, flow_overflow (the "
                                    "flow map was full).",
                                    MetricType::Counter);
    auto host_overflow =
        make_family("nettally_interface_host_overflow_packets_total",
                    "Packets of LAN hosts that found no entry in the full host map.", MetricType::Counter);
    auto up = make_family("nettally_interface_up",
                          "1 if the interface is accounted now, 0 if it is gone or released (totals kept).",
                          MetricType::Gauge);
    for (const auto& [name, st] : c.interfaces()) {
        add_sample(up, {{"interface", name}}, st.present ? 1 : 0);
        for (uint8_t d = 0; d < NT_DIR_MAX; d++) {
            const Labels labels{{"interface", name},
                                {"direction", std::string(to_string(static_cast<Direction>(d)))}};
            const DirTotals& t = st.dir[d];
            counts.add(labels, t.total.total());
            add_sample(host_overflow, labels, num(t.host_overflow.total().packets));
            for (size_t b = 0; b < kBucketCount; b++) {
                Labels l = labels;
                l.push_back({"bucket", std::string(bucket_name(b))});
                add_sample(unattributed, std::move(l), num(t.bucket[b].total().packets));
            }
        }
    }
    counts.move_to(out);
    append(out, std::move(unattributed), std::move(host_overflow), std::move(up));
}

void add_hosts(MetricFamilies& out, const Collector& c, size_t max_hosts) {
    CountFamilies counts(
        "host",
        "Bytes a LAN host sent and received, by layer; only the top metrics.max_hosts hosts by "
        "volume (l2 sent + received).",
        "Packets a LAN host sent and received; the same hosts as nettally_host_bytes_total.");
    for (const HostTotals* h : top_hosts(c.hosts(), max_hosts))
        for (const auto& [dir, totals] : {std::pair{"sent", &h->sent}, std::pair{"received", &h->received}})
            counts.add({{"interface", h->interface}, {"host", h->ip}, {"mac", h->mac}, {"direction", dir}},
                       totals->total());
    counts.move_to(out);
}

// Subscribers (README "Subscribers"): every user's totals per lan interface, and the traffic of
// no bound address as user "-". Only the top metrics.max_hosts rows by volume, like the hosts.
void add_users(MetricFamilies& out, const Collector& c, size_t max_rows) {
    if (c.users().empty())
        return;
    CountFamilies counts("user",
                         "Bytes a subscriber's bound addresses sent and received on a lan interface, by "
                         "layer (user \"-\": addresses bound to no user); only the top metrics.max_hosts "
                         "rows by volume (l2 sent + received).",
                         "Packets a subscriber's bound addresses sent and received on a lan interface; the "
                         "same rows as nettally_user_bytes_total.");
    std::vector<std::pair<uint64_t, const UserTotals*>> rows;
    for (const auto& [key, u] : c.users())
        rows.emplace_back(u.sent.total().l2 + u.received.total().l2, &u);
    const size_t n = std::min(max_rows, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                      [](const auto& a, const auto& b) {
                          return a.first != b.first ? a.first > b.first
                                                    : std::tie(a.second->interface, a.second->user) <
                                                          std::tie(b.second->interface, b.second->user);
                      });
    for (size_t i = 0; i < n; i++) {
        const UserTotals& u = *rows[i].second;
        const std::string user = u.user.empty() ? "-" : u.user;
        counts.add({{"interface", u.interface}, {"user", user}, {"direction", "sent"}}, u.sent.total());
        counts.add({{"interface", u.interface}, {"user", user}, {"direction", "received"}},
                   u.received.total());
    }
    counts.move_to(out);
}

// GetStatus keys with a metric of their own: the daemon's figures as `nettallyctl status` shows
// them. One a line: KEY METRIC HELP; a METRIC ending in _total is a counter, others are gauges;
// *_timestamp_seconds come from microseconds.
constexpr std::string_view kStatusMetrics = R"(
flows nettally_flows_active Live flows in the kernel flow map.
flow_capacity nettally_flow_capacity Entries the kernel flow map holds.
flows_evicted nettally_flows_evicted_total Flows finished (idle or active timeout).
flow_map_full nettally_flow_map_full 1 if the flow map overflowed at the last poll.
overflow_episodes nettally_flow_overflow_episodes_total Times the flow map became full.
hosts nettally_hosts LAN hosts with totals (all of them, exported or not).
host_capacity nettally_host_capacity Entries the kernel host map holds.
interfaces nettally_interfaces Interfaces accounted now.
polls nettally_polls_total Polls of the kernel maps.
last_poll_at nettally_last_poll_timestamp_seconds Wall-clock time of the last poll.
state_saved_at nettally_state_saved_timestamp_seconds Wall-clock time the state file was saved.
reconcile_checks nettally_reconcile_checks_total Reconciliation checks (total == flows + finished + buckets, per interface and direction).
reconcile_exact nettally_reconcile_exact_total Reconciliation checks of a quiet snapshot that held exactly.
reconcile_violations nettally_reconcile_violations_total Reconciliation checks that failed.
cgroup_entries nettally_cgroup_entries Cgroups in the kernel cgroup map.
cgroup_capacity nettally_cgroup_capacity Entries the kernel cgroup map holds.
cgroup_overflow_packets nettally_cgroup_overflow_packets_total Packets of cgroups that found no entry in the full cgroup map.
cgroup_untracked_packets nettally_cgroup_untracked_packets_total Packets of cgroups outside cgroups.subtrees.
cgroup_reconcile_checks nettally_cgroup_reconcile_checks_total Cgroup reconciliation checks.
cgroup_reconcile_violations nettally_cgroup_reconcile_violations_total Cgroup reconciliation checks that failed.
enforce_dropped_packets nettally_enforce_dropped_packets_total Packets dropped by threshold actions (block, throttle).
enforce_dropped_bytes nettally_enforce_dropped_bytes_total Bytes (l2) dropped by threshold actions (block, throttle).
export_collectors nettally_export_collectors IPFIX collectors the exporter sends to.
export_records nettally_export_records_total IPFIX data records sent, summed over the collectors.
export_messages nettally_export_messages_total IPFIX messages sent, summed over the collectors.
export_bytes nettally_export_bytes_total Bytes of IPFIX messages sent, summed over the collectors.
export_send_errors nettally_export_send_errors_total Failed sends to IPFIX collectors.
export_dropped nettally_export_dropped_records_total IPFIX records dropped from a full TCP collector buffer.
export_buffered nettally_export_buffered_records IPFIX records waiting for a TCP collector.
export_tracked_flows nettally_export_tracked_flows Live flows the exporter follows for interim records.
nat_conntrack nettally_nat_conntrack 1 if the conntrack table is followed (NAT fields and WAN figures).
nat_connections nettally_nat_connections Translated connections known from conntrack.
nat_events nettally_nat_events_total Conntrack events read.
nat_resyncs nettally_nat_resyncs_total Full conntrack dumps after lost events.
wan_uncredited_packets nettally_wan_uncredited_packets_total WAN packets of translated connections credited to no LAN host.
radius_sessions nettally_radius_sessions RADIUS accounting sessions open now.
radius_requests nettally_radius_requests_total Datagrams the RADIUS accounting listener received.
radius_responses nettally_radius_responses_total Accounting-Responses sent (retransmissions' included).
radius_retransmissions nettally_radius_retransmissions_total Retransmitted RADIUS requests answered again with no second effect.
rules_version nettally_rules_version Version of the traffic-class ruleset in force (0: none).
rules_rejected nettally_rules_rejected_total Traffic-class bundles refused (LoadRules, rules.bundle, the pull).
class_reconcile_checks nettally_class_reconcile_checks_total Class reconciliation checks (the classes grow by what the interface total grows by).
class_reconcile_violations nettally_class_reconcile_violations_total Class reconciliation checks that failed.
class_overflow_packets nettally_class_overflow_packets_total Packets that found no entry in the full class counter map.
)";

std::optional<double> status_number(const Status& s, const std::string& key) {
    const auto it = s.find(key);
    if (it == s.end())
        return std::nullopt;
    return std::visit(
        [](const auto& v) -> std::optional<double> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string>)
                return std::nullopt;
            else
                return static_cast<double>(v);
        },
        it->second);
}

// Traffic classes (README "Traffic classes"): every class's totals per interface and direction,
// gone ones included (their totals stay). class_id keeps the series apart when a gone class and
// an active one share a name.
void add_classes(MetricFamilies& out, const Collector& c) {
    if (c.classes().empty())
        return;
    CountFamilies counts("class",
                         "Bytes of a traffic class on an accounted interface, by direction and layer; per "
                         "interface and direction the classes sum to what the interface counted while a "
                         "ruleset was in force.",
                         "Wire packets of a traffic class on an accounted interface, by direction.");
    for (const auto& [key, cl] : c.classes())
        counts.add({{"interface", cl.interface},
                    {"direction", std::string(to_string(static_cast<Direction>(cl.dir)))},
                    {"class", cl.name},
                    {"class_id", std::to_string(cl.id)}},
                   cl.counts.total());
    counts.move_to(out);
}

void add_status(MetricFamilies& out, const Status& status) {
    std::string_view rest = kStatusMetrics;
    while (!rest.empty()) {
        const std::string_view line = rest.substr(0, rest.find('\n'));
        rest.remove_prefix(std::min(rest.size(), line.size() + 1));
        const size_t a = line.find(' '), b = line.find(' ', a + 1);
        if (line.empty() || b == std::string_view::npos)
            continue;
        const std::string name(line.substr(a + 1, b - a - 1));
        const bool timestamp = name.ends_with("_timestamp_seconds");
        if (const auto v = status_number(status, std::string(line.substr(0, a))))
            add_single(out, name, std::string(line.substr(b + 1)),
                       name.ends_with("_total") ? MetricType::Counter : MetricType::Gauge,
                       *v * (timestamp ? 1e-6 : 1));
    }
    // RADIUS drops by reason (status radius_dropped_REASON; README "RADIUS accounting").
    MetricFamily dropped =
        make_family("nettally_radius_dropped_total", "RADIUS datagrams dropped unanswered, by reason.",
                    MetricType::Counter);
    for (const auto& [key, value] : status)
        if (key.starts_with("radius_dropped_"))
            if (const auto v = status_number(status, key))
                add_sample(dropped, {{"reason", key.substr(15)}}, *v);
    if (!dropped.metric.empty())
        out.push_back(std::move(dropped));
}

void add_cgroups(MetricFamilies& out, const CgroupLedger& ledger) {
    CountFamilies counts("cgroup",
                         "Bytes of the sockets created in this cgroup itself (not its children, so sums over "
                         "cgroups count each byte once), by layer (l3, l4, payload).",
                         "Packets of the sockets created in this cgroup itself.", 1);
    for (const CgroupRow& row : ledger.rows()) {
        if (row.self.empty())
            continue;
        for (const auto& [dir, c] :
             {std::pair{"ingress", &row.self.ingress}, std::pair{"egress", &row.self.egress}})
            counts.add({{"cgroup", row.path}, {"unit", row.unit}, {"direction", dir}}, *c);
    }
    counts.move_to(out);
}

void add_thresholds(MetricFamilies& out, const ThresholdEngine& engine) {
    auto info = make_family("nettally_threshold_info",
                            "A threshold's definition (always 1): subject, direction, layer, period.",
                            MetricType::Gauge);
    auto usage = make_family("nettally_threshold_usage_bytes", "Bytes counted in the current period.",
                             MetricType::Gauge);
    auto limit =
        make_family("nettally_threshold_limit_bytes", "The threshold's limit (0: none).", MetricType::Gauge);
    auto reached = make_family("nettally_threshold_limit_reached",
                               "1 if the limit was reached in the current period.", MetricType::Gauge);
    auto action = make_family("nettally_threshold_action_active", "1 if the threshold's action is in force.",
                              MetricType::Gauge);
    for (const auto& [name, t] : engine.thresholds()) {
        add_sample(info,
                   {{"threshold", name},
                    {"subject", subject_text(t.def.subject)},
                    {"direction", std::string(to_string(t.def.direction))},
                    {"layer", std::string(to_string(t.def.layer))},
                    {"period", std::string(to_string(t.def.period))}},
                   1);
        const Labels l{{"threshold", name}};
        add_sample(usage, l, num(t.st.usage));
        add_sample(limit, l, num(t.def.limit));
        add_sample(reached, l, t.st.limit_reached ? 1 : 0);
        add_sample(action, l, t.st.action_active ? 1 : 0);
    }
    append(out, std::move(info), std::move(usage), std::move(limit), std::move(reached), std::move(action));
}

} // namespace

std::optional<std::string> parse_listen_address(std::string_view text) {
    const auto hp = parse_host_port(text);
    return hp ? std::optional<std::string>(hp->text()) : std::nullopt;
}

MetricFamily make_family(std::string name, std::string help, MetricType type) {
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

void add_single(MetricFamilies& out, std::string name, std::string help, MetricType type, double value) {
    MetricFamily f = make_family(std::move(name), std::move(help), type);
    add_sample(f, {}, value);
    out.push_back(std::move(f));
}

void add_sample(MetricFamily& family, Labels labels, double value) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    if (family.type == MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    family.metric.push_back(std::move(m));
}

std::vector<const HostTotals*> top_hosts(const std::map<std::string, HostTotals>& hosts, size_t n) {
    std::vector<std::pair<uint64_t, const HostTotals*>> all;
    all.reserve(hosts.size());
    for (const auto& [key, h] : hosts)
        all.emplace_back(h.sent.total().l2 + h.received.total().l2, &h); // map order: key order
    n = std::min(n, all.size());
    // Larger volume first; stable_sort would keep key order among equals but costs a full sort.
    const auto by_volume = [&](const auto& a, const auto& b) {
        return std::tie(b.first, a.second->interface, a.second->mac, a.second->ip) <
               std::tie(a.first, b.second->interface, b.second->mac, b.second->ip);
    };
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), by_volume);
    std::vector<const HostTotals*> top;
    top.reserve(n);
    for (size_t i = 0; i < n; i++)
        top.push_back(all[i].second);
    return top;
}

MetricFamilies build_metrics(const MetricsSources& src) {
    MetricFamilies out;
    auto build = make_family("nettally_build_info", "nettallyd's version (always 1).", MetricType::Gauge);
    add_sample(build, {{"version", src.version}}, 1);
    out.push_back(std::move(build));
    add_interfaces(out, src.collector);
    add_hosts(out, src.collector, src.max_hosts);
    add_users(out, src.collector, src.max_hosts);
    add_classes(out, src.collector);
    add_status(out, src.status);
    if (src.cgroups)
        add_cgroups(out, *src.cgroups);
    if (src.thresholds)
        add_thresholds(out, *src.thresholds);
    return out;
}

std::string metrics_text(const MetricFamilies& families) {
    std::ostringstream os;
    prometheus::TextSerializer().Serialize(os, families);
    return os.str();
}

} // namespace nettally
