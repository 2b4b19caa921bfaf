// core/metrics: the listen address syntax, the top-hosts selection that bounds the host label
// set, and the families built from a Collector (names, labels, values equal to the totals).
#include "core/cgroups.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/subscribers.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>

using namespace nettally;

namespace {

class HostMaps : public MapReader {
public:
    std::vector<HostEntry> hosts;
    std::vector<UserEntry> users;
    std::vector<ClassEntry> classes;
    IfaceSnapshot ifaces;
    std::vector<UserEntry> read_users() override { return users; }
    std::vector<ClassEntry> read_classes() override { return classes; }
    IfaceSnapshot read_ifaces() override { return ifaces; }
    void read_flows(std::vector<FlowEntry>& out) override { out.clear(); }
    std::vector<HostEntry> read_hosts() override { return hosts; }
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>&) override { return {}; }
    std::map<IfaceKey, EvictedSums> read_evicted() override { return {}; }
    void write_evicted(const IfaceKey&, const EvictedSums&) override {}
};

// Host i on ifindex 1: 198.18.x.y, l2 volume `sent_l2` sent and nothing received.
HostEntry host(uint32_t i, uint64_t sent_l2) {
    HostEntry h;
    h.key.ifindex = 1;
    h.key.family = NT_AF_INET;
    const uint8_t mac[6] = {2, 0, 0, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(h.key.mac, mac, 6);
    const uint8_t ip[4] = {198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(h.key.addr, ip, 4);
    h.sent = Counts(sent_l2 / 100 + 1, sent_l2, sent_l2 - 14, sent_l2 - 34, sent_l2 - 42);
    return h;
}

const prometheus::MetricFamily* family(const MetricFamilies& f, const std::string& name) {
    for (const auto& fam : f)
        if (fam.name == name)
            return &fam;
    return nullptr;
}

std::string label(const prometheus::ClientMetric& m, const std::string& name) {
    for (const auto& l : m.label)
        if (l.name == name)
            return l.value;
    return "<none>";
}

} // namespace

TEST(MetricsListen, AcceptsIpv4AndBracketedIpv6) {
    EXPECT_EQ(parse_listen_address("127.0.0.1:9847"), "127.0.0.1:9847");
    EXPECT_EQ(parse_listen_address("[::1]:9847"), "[::1]:9847");
    EXPECT_EQ(parse_listen_address("[fd00:0::1]:80"), "[fd00::1]:80");
    EXPECT_EQ(parse_listen_address("0.0.0.0:1"), "0.0.0.0:1");
}

TEST(MetricsListen, Rejects) {
    for (const char* bad :
         {"", "9847", ":9847", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:9847",
          "[127.0.0.1]:9847", "[::1]9847", "localhost:9847", "127.0.0.1:+80", "127.0.0.1:98a"})
        EXPECT_FALSE(parse_listen_address(bad)) << bad;
}

TEST(MetricsHosts, TopByVolumeBoundedAndStable) {
    HostMaps maps;
    // 10,000 hosts; volumes repeat every 1000 so ties are common.
    for (uint32_t i = 0; i < 10000; i++)
        maps.hosts.push_back(host(i, 1000 + (i * 7919) % 1000 * 100));
    Collector c(maps);
    c.set_interfaces({{"lan0", "lan", 1}});
    c.poll({});
    ASSERT_EQ(c.hosts().size(), 10000u);

    const auto top = top_hosts(c.hosts(), 50);
    ASSERT_EQ(top.size(), 50u);
    // Every host left out has no more volume than the smallest one chosen.
    const auto volume = [](const HostTotals* h) { return h->sent.total().l2 + h->received.total().l2; };
    const uint64_t smallest = volume(top.back());
    std::set<const HostTotals*> chosen(top.begin(), top.end());
    for (size_t i = 1; i < top.size(); i++)
        EXPECT_GE(volume(top[i - 1]), volume(top[i]));
    for (const auto& [key, h] : c.hosts()) {
        if (!chosen.count(&h)) {
            EXPECT_LE(volume(&h), smallest) << key;
        }
    }
    // The same selection again (ties broken by key, not by chance).
    EXPECT_EQ(top_hosts(c.hosts(), 50), top);
    EXPECT_EQ(top_hosts(c.hosts(), 20000).size(), 10000u);
    EXPECT_TRUE(top_hosts(c.hosts(), 0).empty());
}

TEST(MetricsBuild, HostSeriesBoundedWithManyHosts) {
    HostMaps maps;
    for (uint32_t i = 0; i < 10000; i++)
        maps.hosts.push_back(host(i, 100 + i));
    Collector c(maps);
    c.set_interfaces({{"lan0", "lan", 1}});
    c.poll({});
    const Status st;
    MetricsSources src{c, st};
    src.max_hosts = 100;
    src.version = "1.2.3";
    const MetricFamilies f = build_metrics(src);

    const auto* bytes = family(f, "nettally_host_bytes_total");
    ASSERT_NE(bytes, nullptr);
    EXPECT_EQ(bytes->type, prometheus::MetricType::Counter);
    // 100 hosts x 2 directions x 4 layers, and the hosts are the 100 largest.
    ASSERT_EQ(bytes->metric.size(), 100u * 2 * 4);
    std::set<std::string> hosts;
    for (const auto& m : bytes->metric) {
        hosts.insert(label(m, "host"));
        const std::string h = label(m, "host");
        const auto& t = c.hosts().at(label(m, "interface") + "|" + label(m, "mac") + "|" + h);
        const Counts& counts = label(m, "direction") == "sent" ? t.sent.total() : t.received.total();
        const std::string layer = label(m, "layer");
        const uint64_t want = layer == "l2"   ? counts.l2
                              : layer == "l3" ? counts.l3
                              : layer == "l4" ? counts.l4
                                              : counts.payload;
        EXPECT_EQ(m.counter.value, static_cast<double>(want)) << h << " " << layer;
    }
    EXPECT_EQ(hosts.size(), 100u);
    EXPECT_TRUE(hosts.count("198.18.39.15")); // host 9999: the largest
    EXPECT_FALSE(hosts.count("198.18.0.0"));  // host 0: the smallest
    const auto* packets = family(f, "nettally_host_packets_total");
    ASSERT_NE(packets, nullptr);
    EXPECT_EQ(packets->metric.size(), 100u * 2);

    const auto* info = family(f, "nettally_build_info");
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(label(info->metric.at(0), "version"), "1.2.3");

    // The text format has one line per series plus HELP and TYPE per family.
    const std::string text = metrics_text(f);
    EXPECT_NE(text.find("# TYPE nettally_host_bytes_total counter"), std::string::npos);
}

TEST(MetricsBuild, InterfaceFamiliesEqualTheTotals) {
    HostMaps maps;
    IfaceCounters in, out;
    in.total = Counts(10, 1000, 860, 660, 500);
    in.bucket[NT_BUCKET_NON_IP] = Counts(2, 120, 0, 0, 0);
    out.total = Counts(7, 700, 600, 500, 400);
    maps.ifaces[{1, NT_DIR_INGRESS}] = in;
    maps.ifaces[{1, NT_DIR_EGRESS}] = out;
    Collector c(maps);
    c.set_interfaces({{"lan0", "lan", 1}});
    c.poll({});
    const Status st{{"flows", uint32_t{3}}, {"polls", uint64_t{1}}, {"last_poll_at", uint64_t{2500000}}};
    MetricsSources src{c, st};
    const MetricFamilies f = build_metrics(src);

    std::set<std::string> names;
    for (const auto& fam : f)
        EXPECT_TRUE(names.insert(fam.name).second) << "family twice: " << fam.name;
    const auto* bytes = family(f, "nettally_interface_bytes_total");
    ASSERT_NE(bytes, nullptr);
    ASSERT_EQ(bytes->metric.size(), 2u * 4);
    std::map<std::string, double> got;
    for (const auto& m : bytes->metric)
        got[label(m, "interface") + "/" + label(m, "direction") + "/" + label(m, "layer")] = m.counter.value;
    EXPECT_EQ(got["lan0/ingress/l2"], 1000);
    EXPECT_EQ(got["lan0/ingress/payload"], 500);
    EXPECT_EQ(got["lan0/egress/l3"], 600);
    EXPECT_EQ(got["lan0/egress/l4"], 500);
    const auto* packets = family(f, "nettally_interface_packets_total");
    ASSERT_NE(packets, nullptr);
    ASSERT_EQ(packets->metric.size(), 2u);
    EXPECT_EQ(label(packets->metric[0], "direction"), "ingress");
    EXPECT_EQ(packets->metric[0].counter.value, 10);
    const auto* unattributed = family(f, "nettally_interface_unattributed_packets_total");
    ASSERT_NE(unattributed, nullptr);
    EXPECT_EQ(label(unattributed->metric[0], "bucket"), "non_ip");
    EXPECT_EQ(unattributed->metric[0].counter.value, 2);
    const auto* flows = family(f, "nettally_flows_active");
    ASSERT_NE(flows, nullptr);
    EXPECT_EQ(flows->type, prometheus::MetricType::Gauge);
    EXPECT_EQ(flows->metric.at(0).gauge.value, 3);
    const auto* last = family(f, "nettally_last_poll_timestamp_seconds");
    ASSERT_NE(last, nullptr);
    EXPECT_DOUBLE_EQ(last->metric.at(0).gauge.value, 2.5);
    // Keys the Status does not have give no family.
    EXPECT_EQ(family(f, "nettally_cgroup_entries"), nullptr);
}

// A gone class and an active one of the same name (another id) are two series, not one twice.
TEST(MetricsBuild, ClassSeriesKeptApartById) {
    HostMaps maps;
    Collector c(maps);
    c.set_interfaces({{"lan0", "lan", 1}});
    auto entry = [](uint32_t id, uint64_t packets) {
        ClassEntry e;
        e.key.ifindex = 1;
        e.key.dir = NT_DIR_INGRESS;
        e.key.class_id = id;
        e.counts = Counts(packets, packets * 100, packets * 80, packets * 60, packets * 40);
        return e;
    };
    c.set_classes({{0, "other"}, {40, "dns"}});
    c.classes_started();
    maps.classes = {entry(40, 3)};
    c.poll({1, 1});
    c.set_classes({{0, "other"}, {41, "dns"}});
    maps.classes = {entry(40, 3), entry(41, 5)};
    c.poll({2, 2});
    const Status st;
    const MetricFamilies f = build_metrics(MetricsSources{c, st});
    const auto* packets = family(f, "nettally_class_packets_total");
    ASSERT_NE(packets, nullptr);
    std::map<std::string, double> got;
    for (const auto& m : packets->metric) {
        const std::string key = label(m, "class") + "#" + label(m, "class_id");
        EXPECT_TRUE(got.emplace(key, m.counter.value).second) << "series twice: " << key;
    }
    EXPECT_EQ(got, (std::map<std::string, double>{{"dns#40", 3}, {"dns#41", 5}}));
}

TEST(MetricsBuild, ExportFiguresFromTheStatus) {
    HostMaps maps;
    Collector c(maps);
    const Status st{{"export_collectors", uint32_t{2}},
                    {"export_records", uint64_t{120}},
                    {"export_send_errors", uint64_t{3}},
                    {"export_buffered", uint64_t{7}}};
    MetricsSources src{c, st};
    const MetricFamilies f = build_metrics(src);
    const auto* records = family(f, "nettally_export_records_total");
    ASSERT_NE(records, nullptr);
    EXPECT_EQ(records->type, prometheus::MetricType::Counter);
    EXPECT_EQ(records->metric.at(0).counter.value, 120);
    const auto* errors = family(f, "nettally_export_send_errors_total");
    ASSERT_NE(errors, nullptr);
    EXPECT_EQ(errors->metric.at(0).counter.value, 3);
    const auto* buffered = family(f, "nettally_export_buffered_records");
    ASSERT_NE(buffered, nullptr);
    EXPECT_EQ(buffered->type, prometheus::MetricType::Gauge);
    EXPECT_EQ(buffered->metric.at(0).gauge.value, 7);
    ASSERT_NE(family(f, "nettally_export_collectors"), nullptr);
    EXPECT_EQ(family(f, "nettally_export_collectors")->metric.at(0).gauge.value, 2);
    EXPECT_EQ(family(f, "nettally_export_bytes_total"), nullptr); // not in this Status
}

TEST(MetricsBuild, NatFiguresFromTheStatus) {
    HostMaps maps;
    Collector c(maps);
    const Status st{{"nat_conntrack", true},
                    {"nat_connections", uint64_t{12}},
                    {"nat_events", uint64_t{40}},
                    {"nat_resyncs", uint64_t{1}},
                    {"wan_uncredited_packets", uint64_t{5}}};
    MetricsSources src{c, st};
    const MetricFamilies f = build_metrics(src);
    const auto* on = family(f, "nettally_nat_conntrack");
    ASSERT_NE(on, nullptr);
    EXPECT_EQ(on->type, prometheus::MetricType::Gauge);
    EXPECT_EQ(on->metric.at(0).gauge.value, 1);
    const auto* conns = family(f, "nettally_nat_connections");
    ASSERT_NE(conns, nullptr);
    EXPECT_EQ(conns->metric.at(0).gauge.value, 12);
    for (const auto& [name, value] :
         {std::pair{"nettally_nat_events_total", 40.0}, std::pair{"nettally_nat_resyncs_total", 1.0},
          std::pair{"nettally_wan_uncredited_packets_total", 5.0}}) {
        const auto* fam = family(f, name);
        ASSERT_NE(fam, nullptr) << name;
        EXPECT_EQ(fam->type, prometheus::MetricType::Counter) << name;
        EXPECT_EQ(fam->metric.at(0).counter.value, value) << name;
    }
}

TEST(MetricsBuild, CgroupsBySelfWithoutL2) {
    HostMaps maps;
    Collector c(maps);
    CgroupLedger ledger;
    CgroupCounts raw;
    raw.ingress = Counts(3, 0, 300, 240, 200);
    raw.egress = Counts(2, 0, 150, 110, 90);
    ledger.observe(7, "/system.slice/unbound.service", raw, 1);
    const Status st;
    MetricsSources src{c, st};
    src.cgroups = &ledger;
    const MetricFamilies f = build_metrics(src);
    const auto* bytes = family(f, "nettally_cgroup_bytes_total");
    ASSERT_NE(bytes, nullptr);
    // Only the cgroup with sockets of its own (not its parents "/" and "/system.slice"), l3/l4/payload.
    ASSERT_EQ(bytes->metric.size(), 2u * 3);
    std::map<std::string, double> got;
    for (const auto& m : bytes->metric) {
        EXPECT_EQ(label(m, "cgroup"), "/system.slice/unbound.service");
        EXPECT_EQ(label(m, "unit"), "unbound.service");
        got[label(m, "direction") + "/" + label(m, "layer")] = m.counter.value;
    }
    EXPECT_EQ(got["ingress/l3"], 300);
    EXPECT_EQ(got["egress/payload"], 90);
    EXPECT_FALSE(got.count("ingress/l2"));
    const auto* packets = family(f, "nettally_cgroup_packets_total");
    ASSERT_NE(packets, nullptr);
    ASSERT_EQ(packets->metric.size(), 2u);
    EXPECT_EQ(packets->metric[0].counter.value + packets->metric[1].counter.value, 5);
}

namespace {

constexpr const char* kRules = "interfaces:\n  - name: eth0\n    role: lan\n";

std::string config_error(const std::string& metrics) {
    try {
        parse_config(std::string(kRules) + metrics, "test.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "accepted, but an error was expected:\n" << metrics;
    return "";
}

} // namespace

TEST(MetricsConfig, DefaultsOffAndParsedValues) {
    const Config off = parse_config(kRules, "test.yaml");
    EXPECT_TRUE(off.metrics.listen.empty());
    EXPECT_TRUE(off.metrics.textfile_dir.empty());
    EXPECT_EQ(off.metrics.max_hosts, 100u);
    EXPECT_EQ(off.metrics.textfile_interval, std::chrono::seconds(15));

    const Config c = parse_config(std::string(kRules) + "metrics:\n"
                                                        "  listen: \"[fd00:0::1]:9847\"\n"
                                                        "  max_hosts: 5\n"
                                                        "  textfile_dir: /var/lib/node-exporter\n"
                                                        "  textfile_interval: 2s\n",
                                  "test.yaml");
    EXPECT_EQ(c.metrics.listen, "[fd00::1]:9847");
    EXPECT_EQ(c.metrics.max_hosts, 5u);
    EXPECT_EQ(c.metrics.textfile_dir, "/var/lib/node-exporter");
    EXPECT_EQ(c.metrics.textfile_interval, std::chrono::seconds(2));
    // An empty section is all defaults.
    EXPECT_EQ(parse_config(std::string(kRules) + "metrics:\n", "test.yaml").metrics, MetricsConfig{});
}

TEST(MetricsConfig, ErrorsNameFileLineColumnAndKey) {
    EXPECT_EQ(
        config_error("metrics:\n  listen: localhost:9847\n"),
        "test.yaml:5:11: metrics.listen: expected ADDRESS:PORT or [IPV6-ADDRESS]:PORT (port 1-65535), got "
        "'localhost:9847'");
    EXPECT_EQ(
        config_error("metrics:\n  listen: 127.0.0.1:70000\n"),
        "test.yaml:5:11: metrics.listen: expected ADDRESS:PORT or [IPV6-ADDRESS]:PORT (port 1-65535), got "
        "'127.0.0.1:70000'");
    EXPECT_EQ(config_error("metrics:\n  max_hosts: 100001\n"),
              "test.yaml:5:14: metrics.max_hosts: 100001 is out of range (0 .. 100000)");
    EXPECT_EQ(config_error("metrics:\n  textfile_dir: relative/dir\n"),
              "test.yaml:5:17: metrics.textfile_dir: must be an absolute path, got 'relative/dir'");
    EXPECT_EQ(config_error("metrics:\n  textfile_interval: 500ms\n"),
              "test.yaml:5:22: metrics.textfile_interval: duration '500ms' is out of range (1s .. 1h)");
    EXPECT_EQ(config_error("metrics: 5\n"), "test.yaml:4:10: metrics: expected a map, got the value '5'");
    EXPECT_EQ(config_error("metrics:\n  listn: 127.0.0.1:9847\n"),
              "test.yaml:5:3: metrics.listn: unknown key (valid keys: listen, max_hosts, textfile_dir, "
              "textfile_interval)");
}

TEST(MetricsUsers, EveryUserAndTheUnboundRowEqualTheTotals) {
    HostMaps maps;
    UserIds ids;
    const uint32_t alice = ids.id_of("alice"), bob = ids.id_of("bob");
    const auto user = [](uint32_t id, uint64_t l2) {
        UserEntry u;
        u.key.ifindex = 1;
        u.key.user = id;
        u.sent = Counts(l2 / 100 + 1, l2, l2 - 14, l2 - 34, l2 - 42);
        u.received = Counts(3, 300, 258, 198, 174);
        return u;
    };
    maps.users = {user(alice, 5000), user(bob, 9000), user(NT_USER_UNBOUND, 700)};
    Collector c(maps);
    c.set_user_ids(&ids);
    c.set_interfaces({{"lan0", "lan", 1}});
    c.poll({});
    ASSERT_EQ(c.users().size(), 3u);

    const Status st;
    MetricsSources src{c, st};
    src.max_hosts = 2;
    const MetricFamilies f = build_metrics(src);
    const auto* bytes = family(f, "nettally_user_bytes_total");
    const auto* packets = family(f, "nettally_user_packets_total");
    ASSERT_TRUE(bytes && packets);
    // max_hosts 2: bob and alice (the largest), not the unbound row.
    std::map<std::string, uint64_t> sent_l2, sent_packets;
    for (const auto& m : bytes->metric)
        if (label(m, "direction") == "sent" && label(m, "layer") == "l2")
            sent_l2[label(m, "user")] = static_cast<uint64_t>(m.counter.value);
    for (const auto& m : packets->metric)
        if (label(m, "direction") == "sent")
            sent_packets[label(m, "user")] = static_cast<uint64_t>(m.counter.value);
    EXPECT_EQ(sent_l2, (std::map<std::string, uint64_t>{{"alice", 5000}, {"bob", 9000}}));
    EXPECT_EQ(sent_packets, (std::map<std::string, uint64_t>{{"alice", 51}, {"bob", 91}}));
    EXPECT_EQ(bytes->metric.size(), 2u * 2u * 4u) << "2 users x 2 directions x 4 layers";

    src.max_hosts = 100;
    const MetricFamilies all = build_metrics(src);
    std::set<std::string> users;
    for (const auto& m : family(all, "nettally_user_packets_total")->metric)
        users.insert(label(m, "user"));
    EXPECT_EQ(users, (std::set<std::string>{"alice", "bob", "-"})) << "the unbound row is user \"-\"";
}

TEST(MetricsUsers, NoFamiliesWithoutSubscribers) {
    HostMaps maps;
    Collector c(maps);
    c.set_interfaces({{"lan0", "lan", 1}});
    c.poll({});
    const Status st;
    MetricsSources src{c, st};
    src.max_hosts = 100;
    EXPECT_EQ(family(build_metrics(src), "nettally_user_bytes_total"), nullptr);
}
