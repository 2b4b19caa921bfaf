// Per lan host and traffic class in the daemon, the pure parts: the collector's host-class totals
// (names, gone classes, the host identity of the host totals, a renamed interface), the per-host
// reconciliation line (Σ a host's classes == the host since classification began, offset as the
// interface line), the overflow counter, the consistent read around the hosts, restore across
// restarts; rules.max_host_classes in the config; `nettallyctl classes --hosts --iface`.
#include "args.h"
#include "config_section_test.h"
#include "core/collector.h"
#include "core/config.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cstring>
#include <string>
#include <vector>

namespace nettally {
namespace {

using config_test::error_of;
using config_test::parse;

// The kernel maps as account() fills them for lan hosts: a host's packet goes to its host entry
// and then, while a ruleset is in force, to its host and class entry (or the overflow).
class HostMaps : public MapReader {
public:
    std::vector<HostEntry> hosts;
    std::vector<HostClassEntry> host_classes;
    HostClassEntry overflow;
    // Host-class packets the "kernel" adds after the next read_hosts(): a packet in flight.
    std::vector<std::pair<HostClassEntry, bool>> in_flight;
    int host_reads = 0;

    IfaceSnapshot read_ifaces() override { return {}; }
    void read_flows(std::vector<FlowEntry>& out) override { out.clear(); }
    std::vector<HostEntry> read_hosts() override {
        host_reads++;
        return hosts;
    }
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>&) override { return {}; }
    std::map<IfaceKey, EvictedSums> read_evicted() override { return {}; }
    void write_evicted(const IfaceKey&, const EvictedSums&) override {}
    std::vector<HostClassEntry> read_host_classes() override {
        auto out = host_classes;
        // What was in flight lands after this read: the next one sees it.
        for (auto& [e, sent] : in_flight)
            add_class(e.key.host, e.key.class_id, sent ? e.sent : e.received, sent);
        in_flight.clear();
        return out;
    }
    HostClassEntry read_host_class_overflow() override { return overflow; }

    static nt_host_key host(uint32_t ifindex, uint8_t last) {
        nt_host_key k{};
        k.ifindex = ifindex;
        k.family = NT_AF_INET;
        const uint8_t mac[6] = {2, 0, 0, 0, 0, last};
        std::memcpy(k.mac, mac, 6);
        k.addr[0] = htonl(0xC6120100u | last); // 198.18.1.last
        return k;
    }

    // One packet of `c` of host k: sent (ingress) or received (egress), in class id (or, with
    // classified false, in no class: before a ruleset, or a lost packet).
    void count(const nt_host_key& k, bool sent, uint32_t id, const Counts& c, bool classified = true) {
        HostEntry* h = nullptr;
        for (auto& e : hosts)
            if (std::memcmp(&e.key, &k, sizeof(k)) == 0)
                h = &e;
        if (!h) {
            hosts.push_back(HostEntry{k, {}, {}, 1, 1});
            h = &hosts.back();
        }
        (sent ? h->sent : h->received) += c;
        if (classified)
            add_class(k, id, c, sent);
    }

    void add_class(const nt_host_key& k, uint32_t id, const Counts& c, bool sent) {
        for (auto& e : host_classes)
            if (std::memcmp(&e.key.host, &k, sizeof(k)) == 0 && e.key.class_id == id) {
                (sent ? e.sent : e.received) += c;
                return;
            }
        HostClassEntry e;
        e.key.host = k;
        e.key.class_id = id;
        (sent ? e.sent : e.received) = c;
        host_classes.push_back(e);
    }
};

const Counts kPkt(1, 100, 86, 66, 40);
const Counts kBig(1, 1514, 1500, 1480, 1448);

struct HostClassFixture : ::testing::Test {
    HostMaps maps;
    Collector col{maps};
    std::vector<std::string> violations;
    const nt_host_key a = HostMaps::host(3, 2);
    const nt_host_key b = HostMaps::host(3, 3);

    void SetUp() override {
        col.set_interfaces({{"lan0", "lan", 3, false, false}, {"wan0", "wan", 4, false, false}});
        col.on_violation([this](const std::string& m) {
            if (m.rfind("host classes: ", 0) == 0)
                violations.push_back(m);
        });
    }
    const HostClassTotals* find(const Collector& c, const std::string& ip, uint32_t id) const {
        for (const auto& [key, t] : c.host_classes())
            if (t.ip == ip && t.id == id)
                return &t;
        return nullptr;
    }
    const HostClassTotals* find(const std::string& ip, uint32_t id) const { return find(col, ip, id); }
};

TEST_F(HostClassFixture, TotalsPerHostAndClassNamesAndGone) {
    col.set_classes({{0, "other"}, {40, "dns"}, {50, "web"}});
    col.classes_started();
    maps.count(a, true, 40, kPkt);
    maps.count(a, false, 40, kBig);
    maps.count(a, true, 50, kPkt);
    maps.count(b, false, 0, kBig);
    col.poll({1, 1});
    ASSERT_EQ(col.host_classes().size(), 3u);
    const HostClassTotals* dns = find("198.18.1.2", 40);
    ASSERT_NE(dns, nullptr);
    EXPECT_EQ(dns->interface, "lan0");
    EXPECT_EQ(dns->mac, "02:00:00:00:00:02");
    EXPECT_EQ(dns->name, "dns");
    EXPECT_FALSE(dns->gone);
    EXPECT_EQ(dns->sent.total(), kPkt);
    EXPECT_EQ(dns->received.total(), kBig);
    EXPECT_EQ(find("198.18.1.3", 0)->received.total(), kBig);
    EXPECT_EQ(find("198.18.1.3", 0)->sent.total(), Counts{});
    // The same identity as the host totals.
    EXPECT_TRUE(col.hosts().count("lan0|02:00:00:00:00:02|198.18.1.2"));
    EXPECT_TRUE(col.host_classes().count("lan0|02:00:00:00:00:02|198.18.1.2|40"));

    // A ruleset without dns: a's dns totals stay, marked gone; web goes on.
    col.set_classes({{0, "other"}, {50, "web"}});
    maps.count(a, true, 50, kPkt);
    col.poll({2, 2});
    EXPECT_TRUE(find("198.18.1.2", 40)->gone);
    EXPECT_EQ(find("198.18.1.2", 40)->sent.total(), kPkt);
    EXPECT_EQ(find("198.18.1.2", 50)->sent.total(), kPkt + kPkt);
    EXPECT_FALSE(find("198.18.1.2", 50)->gone);
    EXPECT_TRUE(violations.empty());
}

TEST_F(HostClassFixture, ReconciliationPerHostHoldsAndCatchesALostPacket) {
    // Before any ruleset: counted for the host only (the offset).
    maps.count(a, true, 0, kPkt, false);
    maps.count(a, false, 0, kBig, false);
    col.poll({1, 1});
    col.set_classes({{0, "other"}, {40, "dns"}});
    col.classes_started();
    maps.count(a, true, 40, kPkt);
    maps.count(b, false, 0, kBig); // b: first seen with classes on, offset 0
    col.poll({2, 2});              // captures the offsets
    EXPECT_EQ(col.stats().host_class_reconcile_checks, 0u);
    maps.count(a, true, 40, kPkt);
    maps.count(a, false, 0, kBig);
    maps.count(b, true, 40, kPkt);
    col.poll({3, 3});
    EXPECT_EQ(col.stats().host_class_reconcile_checks, 4u); // 2 hosts x sent, received
    EXPECT_EQ(col.stats().host_class_reconcile_exact, 4u);
    EXPECT_EQ(col.stats().host_class_reconcile_violations, 0u);

    // A packet counted for b but in none of its classes: b's received line breaks.
    maps.count(b, false, 0, kPkt, false);
    col.poll({4, 4});
    EXPECT_EQ(col.stats().host_class_reconcile_violations, 1u);
    ASSERT_EQ(violations.size(), 1u);
    EXPECT_NE(violations[0].find("198.18.1.3 on ifindex 3 received"), std::string::npos) << violations[0];
    EXPECT_EQ(col.stats().last_host_class_violation, violations[0].substr(14));
}

TEST_F(HostClassFixture, NoRulesetNoCheckAndOverflowStopsTheCheck) {
    maps.count(a, true, 0, kPkt, false);
    col.poll({1, 1});
    col.poll({2, 2});
    EXPECT_EQ(col.stats().host_class_reconcile_checks, 0u);
    EXPECT_TRUE(col.host_classes().empty());

    col.set_classes({{0, "other"}});
    col.classes_started();
    col.poll({3, 3});
    // The map is full: b's packet found no entry and went to the overflow.
    maps.count(b, true, 0, kPkt, false);
    maps.overflow.sent += kPkt;
    const uint64_t checks = col.stats().host_class_reconcile_checks;
    col.poll({4, 4});
    EXPECT_EQ(col.stats().host_class_reconcile_checks, checks);
    EXPECT_EQ(col.stats().host_class_reconcile_violations, 0u);
    EXPECT_EQ(col.host_class_overflow_sent().total(), kPkt);
    EXPECT_EQ(col.host_class_overflow_received().total(), Counts{});
}

TEST_F(HostClassFixture, ReadAgainWhileClassesMoveAroundTheHosts) {
    col.set_classes({{0, "other"}, {40, "dns"}});
    col.classes_started();
    maps.count(a, true, 40, kPkt);
    col.poll({1, 1});
    maps.count(a, true, 40, kPkt);
    // A packet counted for a's host entry whose class entry the kernel writes only after the
    // first read of the host classes: the collector reads again until two reads agree.
    maps.count(a, true, 40, kPkt, false);
    HostClassEntry e;
    e.key.host = a;
    e.key.class_id = 40;
    e.sent = kPkt;
    maps.in_flight.push_back({e, true});
    const int reads = maps.host_reads;
    col.poll({2, 2});
    EXPECT_GT(maps.host_reads - reads, 1);
    EXPECT_EQ(col.stats().host_class_snapshot_misses, 0u);
    EXPECT_EQ(col.stats().host_class_reconcile_violations, 0u);
    EXPECT_EQ(col.stats().host_class_reconcile_exact, 2u);
    EXPECT_EQ(find("198.18.1.2", 40)->sent.total(), kPkt + kPkt + kPkt);
}

TEST_F(HostClassFixture, RestoreContinuesExactlyAndKeepsGone) {
    col.set_classes({{0, "other"}, {40, "dns"}});
    col.classes_started();
    maps.count(a, true, 40, kPkt);
    maps.count(a, false, 0, kBig);
    col.poll({1, 1});
    col.set_classes({{0, "other"}});
    maps.count(a, true, 0, kPkt);
    col.poll({2, 2});
    const nlohmann::json saved = col.to_json();

    // Same kernel counters (pins reused): packets counted while the daemon was down are in the
    // totals, and the saved per-host offsets keep the line exact.
    maps.count(a, true, 0, kPkt);
    Collector again(maps);
    again.set_interfaces({{"lan0", "lan", 3, false, false}});
    again.restore(saved, true);
    again.set_classes({{0, "other"}});
    again.poll({3, 3});
    ASSERT_NE(find(again, "198.18.1.2", 40), nullptr);
    EXPECT_TRUE(find(again, "198.18.1.2", 40)->gone);
    EXPECT_EQ(find(again, "198.18.1.2", 40)->sent.total(), kPkt);
    EXPECT_EQ(find(again, "198.18.1.2", 0)->sent.total(), kPkt + kPkt);
    EXPECT_EQ(find(again, "198.18.1.2", 0)->received.total(), kBig);
    EXPECT_EQ(again.stats().host_class_reconcile_exact, 2u);
    EXPECT_EQ(again.stats().host_class_reconcile_violations, 0u);

    // New counters (a reboot): the totals go on from the saved ones.
    HostMaps fresh;
    Collector rebooted(fresh);
    rebooted.set_interfaces({{"lan0", "lan", 3, false, false}});
    rebooted.restore(saved, false);
    rebooted.set_classes({{0, "other"}});
    fresh.count(a, true, 0, kPkt);
    rebooted.poll({4, 4});
    EXPECT_EQ(find(rebooted, "198.18.1.2", 0)->sent.total(), kPkt + kPkt);
    EXPECT_EQ(find(rebooted, "198.18.1.2", 40)->sent.total(), kPkt);
    EXPECT_EQ(rebooted.stats().host_class_reconcile_violations, 0u);

    // A state from before host classes restores with none.
    nlohmann::json old = saved;
    old.erase("host_classes");
    old.erase("host_class_offsets");
    old.erase("host_class_overflow");
    Collector older(maps);
    older.restore(old, true);
    EXPECT_TRUE(older.host_classes().empty());
}

TEST_F(HostClassFixture, RenamedInterfaceTakesItsHostClasses) {
    col.set_classes({{0, "other"}});
    maps.count(a, true, 0, kPkt);
    col.poll({1, 1});
    col.set_interfaces({{"lan9", "lan", 3, false, false}});
    ASSERT_EQ(col.host_classes().size(), 1u);
    EXPECT_EQ(col.host_classes().begin()->first, "lan9|02:00:00:00:00:02|198.18.1.2|0");
    EXPECT_EQ(col.host_classes().begin()->second.interface, "lan9");
}

TEST(ConfigHostClasses, SizeFollowsTheRulesSection) {
    EXPECT_EQ(parse("").rules.host_class_entries(), 1u);
    EXPECT_EQ(parse("rules:\n").rules.host_class_entries(), uint32_t{NT_DEFAULT_MAX_HOST_CLASSES});
    EXPECT_EQ(parse("rules:\n  max_host_classes: 1024\n").rules.host_class_entries(), 1024u);
    EXPECT_NE(error_of("rules:\n  max_host_classes: 10\n").find("rules.max_host_classes"), std::string::npos);
    EXPECT_NE(error_of("rules:\n  max_host_classes: 99999999\n").find("rules.max_host_classes"),
              std::string::npos);
}

TEST(CtlClassesHosts, Options) {
    using namespace ctl;
    const ParseResult r = parse_args({"classes", "--hosts", "--iface", "lan1", "--json"});
    ASSERT_TRUE(std::holds_alternative<Options>(r));
    const auto& o = std::get<Options>(r);
    EXPECT_EQ(o.command, Command::Classes);
    EXPECT_TRUE(o.class_hosts);
    EXPECT_EQ(o.iface, "lan1");
    EXPECT_TRUE(o.json);
    const ParseResult bad = parse_args({"classes", "--iface", "lan1"});
    ASSERT_TRUE(std::holds_alternative<UsageError>(bad));
    EXPECT_NE(std::get<UsageError>(bad).message.find("--hosts"), std::string::npos);
    EXPECT_FALSE(std::get<Options>(parse_args({"classes"})).class_hosts);
}

} // namespace
} // namespace nettally
