// NAT (core/nat.h): post-NAT tuples of flows on either side of a masquerading gateway, the
// conntrack entries kept after they end, and the WAN credit of LAN hosts.
#include "core/nat.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

using namespace nettally;

namespace {

uint32_t ip(const char* s) {
    in_addr a{};
    inet_pton(AF_INET, s, &a);
    return a.s_addr;
}

constexpr uint32_t kLan = 2, kWan = 3;

// Client 198.18.0.2:40000 -> server 198.19.0.2:80, masqueraded to 198.19.0.1:61000.
CtEntry masq() {
    return {{6, ip("198.18.0.2"), ip("198.19.0.2"), 40000, 80},
            {6, ip("198.19.0.2"), ip("198.19.0.1"), 80, 61000}};
}

FlowEntry flow(uint32_t ifindex, uint8_t dir, const char* src, uint16_t sport, const char* dst,
               uint16_t dport, uint64_t packets) {
    FlowEntry f;
    f.key.ifindex = ifindex;
    f.key.dir = dir;
    f.key.proto = 6;
    f.key.family = NT_AF_INET;
    f.key.sport = sport;
    f.key.dport = dport;
    f.key.src[0] = ip(src);
    f.key.dst[0] = ip(dst);
    f.counts = Counts(packets, packets * 100, packets * 80, packets * 60, packets * 40);
    return f;
}

} // namespace

TEST(Nat, PostNatOfIngressFlowsOnBothSides) {
    NatTable t;
    t.update(masq());
    // LAN ingress (client -> server): after the gateway it leaves wan0 as 198.19.0.1:61000 -> server.
    auto p = t.post_nat(flow(kLan, NT_DIR_INGRESS, "198.18.0.2", 40000, "198.19.0.2", 80, 1).key);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->src, ip("198.19.0.1"));
    EXPECT_EQ(p->dst, ip("198.19.0.2"));
    EXPECT_EQ(p->sport, 61000);
    EXPECT_EQ(p->dport, 80);
    // WAN ingress (server -> public address): after the gateway, server -> client.
    p = t.post_nat(flow(kWan, NT_DIR_INGRESS, "198.19.0.2", 80, "198.19.0.1", 61000, 1).key);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->src, ip("198.19.0.2"));
    EXPECT_EQ(p->dst, ip("198.18.0.2"));
    EXPECT_EQ(p->sport, 80);
    EXPECT_EQ(p->dport, 40000);
    // Egress flows are seen after the translation.
    EXPECT_FALSE(t.post_nat(flow(kWan, NT_DIR_EGRESS, "198.19.0.1", 61000, "198.19.0.2", 80, 1).key));
    EXPECT_FALSE(t.post_nat(flow(kLan, NT_DIR_EGRESS, "198.19.0.2", 80, "198.18.0.2", 40000, 1).key));
    // Another connection, and one without translation.
    EXPECT_FALSE(t.post_nat(flow(kLan, NT_DIR_INGRESS, "198.18.0.2", 40001, "198.19.0.2", 80, 1).key));
    CtEntry routed = masq();
    routed.reply = routed.orig.reversed();
    EXPECT_FALSE(routed.translated());
    t.update(routed); // the same original tuple, now untranslated: forgotten
    EXPECT_EQ(t.size(), 0u);
}

TEST(Nat, EndedConnectionsKeptThenExpired) {
    NatTable t;
    t.update(masq());
    t.destroyed(masq(), 1000);
    EXPECT_TRUE(t.post_nat(flow(kLan, NT_DIR_INGRESS, "198.18.0.2", 40000, "198.19.0.2", 80, 1).key));
    t.expire(1500, 1000);
    EXPECT_EQ(t.size(), 1u);
    t.expire(2000, 1000);
    EXPECT_EQ(t.size(), 0u);
    // A DESTROY without its NEW (subscribed late) still teaches the translation.
    t.destroyed(masq(), 3000);
    EXPECT_EQ(t.size(), 1u);
    // A dump without the entry: it ended while nobody listened; kept as destroyed.
    NatTable d;
    d.update(masq());
    d.replace({}, 5000);
    EXPECT_EQ(d.size(), 1u);
    d.expire(5999, 1000);
    EXPECT_EQ(d.size(), 1u);
    d.expire(6000, 1000);
    EXPECT_EQ(d.size(), 0u);
}

TEST(Nat, WanCreditPerLanHost) {
    NatTable t;
    t.update(masq());
    WanCredit w;
    const std::set<uint32_t> wan{kWan}, hosts{ip("198.18.0.2")};
    std::vector<FlowEntry> live = {flow(kWan, NT_DIR_EGRESS, "198.19.0.1", 61000, "198.19.0.2", 80, 3),
                                   flow(kWan, NT_DIR_INGRESS, "198.19.0.2", 80, "198.19.0.1", 61000, 2),
                                   flow(kLan, NT_DIR_INGRESS, "198.18.0.2", 40000, "198.19.0.2", 80, 3),
                                   // the gateway's own connection: no LAN host
                                   flow(kWan, NT_DIR_EGRESS, "198.19.0.1", 22, "198.19.0.9", 5000, 7)};
    auto d = w.poll(live, t, wan, hosts);
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(d[0].addr, ip("198.18.0.2"));
    EXPECT_EQ(d[0].dir, NT_DIR_EGRESS);
    EXPECT_EQ(d[0].counts, Counts(3, 300, 240, 180, 120));
    EXPECT_EQ(d[1].dir, NT_DIR_INGRESS);
    EXPECT_EQ(d[1].counts.packets, 2u);
    // Only what is new is credited again; a finished flow gives its remainder once.
    live[0].counts = Counts(5, 500, 400, 300, 200);
    d = w.poll(live, t, wan, hosts);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].counts, Counts(2, 200, 160, 120, 80));
    FlowEntry done = live[1];
    done.counts = Counts(4, 400, 320, 240, 160);
    w.finished(done, t, wan, hosts);
    live.erase(live.begin() + 1);
    d = w.poll(live, t, wan, hosts);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].dir, NT_DIR_INGRESS);
    EXPECT_EQ(d[0].counts, Counts(2, 200, 160, 120, 80));
    EXPECT_TRUE(w.poll(live, t, wan, hosts).empty());
}

TEST(Nat, WanCreditWaitsForTheConnection) {
    // The flow is seen before its conntrack event is read: credited in full once it is.
    NatTable t;
    WanCredit w;
    const std::set<uint32_t> wan{kWan}, hosts{ip("198.18.0.2")};
    const std::vector<FlowEntry> live = {flow(kWan, NT_DIR_EGRESS, "198.19.0.1", 61000, "198.19.0.2", 80, 3)};
    EXPECT_TRUE(w.poll(live, t, wan, hosts).empty());
    t.update(masq());
    const auto d = w.poll(live, t, wan, hosts);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].counts.packets, 3u);
    // A routed LAN (no translation): the host's own address is on the WAN side.
    WanCredit r;
    const std::vector<FlowEntry> routed = {
        flow(kWan, NT_DIR_INGRESS, "198.19.0.2", 80, "198.18.0.2", 40000, 4)};
    const auto rd = r.poll(routed, NatTable{}, wan, hosts);
    ASSERT_EQ(rd.size(), 1u);
    EXPECT_EQ(rd[0].addr, ip("198.18.0.2"));
}
