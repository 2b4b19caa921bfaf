// Traffic classes in the kernel: the TC programs classify packets (BPF_PROG_TEST_RUN) with the
// tables kernel/classes.cpp loads from a bundle, and the class they count each packet under must
// be the reference classifier's (core/classes_bundle.h classify(), the same bundle) and, for the
// fixture rows, the class written in the row. A fixture table of hand-made packets (overlapping
// prefixes, port range edges, rule order, IPv4-mapped IPv6, fragments, VLAN, DSCP, MAC), then a
// differential run of 120,000 random packets over random rulesets of 1 .. 16,384 rules
// (tests/classes_random.h); the fixture rows again with the rules spread over 10,000.
//
// The test-run device is the loopback; the loader is told its name ("lan0", "wan1", ...) so the
// rules' interface globs resolve for it, and reloaded when a row needs another name, which also
// exercises the slot switch.
#include "../classes_random.h"
#include "bpf_test_util.h"
#include "packet_builder.h"
#include "shared_object.h"

#include "core/classes.h"
#include "core/classes_bundle.h"
#include "core/counters.h"
#include "kernel/classes.h"
#include "kernel/datapath.h"
#include "nettally.skel.h"
#include "nettally_abi.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <net/if.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace nettally::test {
namespace {

const Mac kGwMac = {0x02, 0, 0, 0, 0, 0xfe};

bpf_program* prog_for(nettally_bpf* s, bool lan, uint8_t dir) {
    if (lan)
        return dir == NT_DIR_INGRESS ? s->progs.nt_tc_ingress_lan : s->progs.nt_tc_egress_lan;
    return dir == NT_DIR_INGRESS ? s->progs.nt_tc_ingress_wan : s->progs.nt_tc_egress_wan;
}

// The frame whose parse gives these facts. Later fragments (has_ports false on tcp/udp) get
// their own fragment id so no first fragment is found for them.
std::vector<uint8_t> frame_of(const PacketFacts& f, uint16_t frag_id) {
    PacketBuilder b;
    const Mac host = f.mac;
    if (f.dir == NT_DIR_INGRESS)
        b.eth(kGwMac, host);
    else
        b.eth(host, kGwMac);
    if (f.vlan)
        b.vlan(f.vlan);
    const bool ports = f.proto == 6 || f.proto == 17;
    const bool later_fragment = ports && !f.has_ports;
    if (f.family == NT_AF_INET) {
        Ipv4Opts o;
        std::memcpy(o.src.data(), f.src.data(), 4);
        std::memcpy(o.dst.data(), f.dst.data(), 4);
        o.tos = static_cast<uint8_t>(f.dscp << 2);
        o.id = frag_id;
        if (later_fragment)
            o.frag_offset = 100;
        if (!ports && f.proto != 1)
            o.protocol = f.proto;
        if (later_fragment)
            o.protocol = f.proto;
        b.ipv4(o);
    } else {
        Ipv6Opts o;
        std::memcpy(o.src.data(), f.src.data(), 16);
        std::memcpy(o.dst.data(), f.dst.data(), 16);
        o.traffic_class = static_cast<uint8_t>(f.dscp << 2);
        if (!ports && f.proto != 58)
            o.next_header = f.proto;
        b.ipv6(o);
        if (later_fragment)
            b.ipv6_fragment({.offset = 100, .more = false, .id = frag_id, .next_header = f.proto});
    }
    if (later_fragment)
        b.payload(64);
    else if (f.proto == 6)
        b.tcp({.sport = f.sport, .dport = f.dport});
    else if (f.proto == 17)
        b.udp({.sport = f.sport, .dport = f.dport});
    else if (f.proto == 1)
        b.icmp(8, 0);
    else if (f.proto == 58)
        b.icmpv6(128, 0);
    else
        b.payload(32);
    return b.build();
}

class Classes : public ::testing::Test {
protected:
    // One load for the suite (shared_object.h); each test starts from every map as after the
    // load and a new loader.
    static void SetUpTestSuite() {
        if (bpf_unavailable_reason().empty())
            shared_.load(open_datapath_object, nettally_bpf__load, nettally_bpf__destroy);
    }
    static void TearDownTestSuite() { shared_.release(); }
    void SetUp() override {
        if (const std::string& why = bpf_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        skel_ = shared_.fresh();
        ASSERT_TRUE(skel_) << "the suite's skeleton";
        lo_ = if_nametoindex("lo");
        ASSERT_NE(lo_, 0u);
        const KernelClasses::Maps m = KernelClasses::Maps::of(skel_);
        kc_ = std::make_unique<KernelClasses>(m);
    }

    void load(const Bundle& b, const std::string& lo_name) {
        kc_->load(b, {{lo_, lo_name}});
        loaded_name_ = lo_name;
    }

    // Runs the frame through the program and returns the class it was counted under (-1: none
    // or more than one).
    int64_t run(const std::vector<uint8_t>& frame, bool lan, uint8_t dir) {
        const int fd = bpf_map__fd(skel_->maps.nt_cls_counts);
        nt_cls_count_key k{};
        while (bpf_map_get_next_key(fd, nullptr, &k) == 0)
            bpf_map_delete_elem(fd, &k);
        bpf_test_run_opts opts{};
        opts.sz = sizeof(opts);
        opts.data_in = frame.data();
        opts.data_size_in = static_cast<uint32_t>(frame.size());
        opts.repeat = 1;
        if (bpf_prog_test_run_opts(bpf_program__fd(prog_for(skel_, lan, dir)), &opts) != 0) {
            ADD_FAILURE() << "test_run: " << std::strerror(errno);
            return -1;
        }
        const auto counts = dump_percpu<nt_cls_count_key, nt_counts>(skel_->maps.nt_cls_counts);
        if (counts.size() != 1)
            return -1;
        uint64_t packets = 0;
        for (const nt_counts& c : counts[0].per_cpu)
            packets += c.packets;
        EXPECT_EQ(packets, 1u);
        EXPECT_EQ(counts[0].key.ifindex, lo_);
        EXPECT_EQ(counts[0].key.dir, dir);
        return counts[0].key.class_id;
    }

    static SharedSkeleton<nettally_bpf> shared_;
    nettally_bpf* skel_ = nullptr;
    unsigned lo_ = 0;
    std::unique_ptr<KernelClasses> kc_;
    std::string loaded_name_;
    uint16_t frag_id_ = 1;
};
SharedSkeleton<nettally_bpf> Classes::shared_;

const char* const kRules = R"(name: fixture
version: 5
classes:
  - name: cam
    id: 70
    match: {interface: "lan*", mac: "02:00:00:00:0c:01"}
  - name: iptv
    id: 10
    match: {interface: "wan*", protocol: udp, dst: [232.0.0.0/8, "ff3e::/16"]}
  - name: host7
    id: 15
    match: {src: [198.18.1.7, "fd00:1:2::7"]}
  - name: voip
    id: 20
    match:
      - {protocol: [udp, tcp], dport: 5060}
      - {protocol: udp, dport: 10000-20000, dscp: ef}
  - name: dns
    id: 40
    match: [{protocol: [udp, tcp], dport: 53}, {protocol: [udp, tcp], sport: 53}]
  - name: web
    id: 50
    match: {protocol: tcp, dport: [80, 443]}
  - name: net24
    id: 60
    match: {dst: 198.18.1.0/24, direction: egress}
  - name: net16
    id: 61
    match: {dst: 198.18.0.0/16}
  - name: tagged
    id: 80
    match: {vlan: 100-199}
  - name: marked
    id: 90
    match: {dscp: [cs5, af41]}
  - name: gre
    id: 95
    match: {protocol: gre}
)";

struct Row {
    const char* name;
    const char* ifname;
    uint8_t dir;
    const char* src;
    const char* dst;
    uint8_t proto;
    int sport; // -1: a later fragment whose first was not seen
    int dport;
    uint8_t dscp = 0;
    uint16_t vlan = 0;
    const char* mac = "02:00:00:00:00:01";
    const char* want;
};

PacketFacts facts_of(const Row& r) {
    PacketFacts f;
    f.ifname = r.ifname;
    f.lan = std::string(r.ifname).rfind("lan", 0) == 0;
    f.has_mac = true;
    f.dir = r.dir;
    const bool v6 = std::string(r.src).find(':') != std::string::npos;
    f.family = v6 ? NT_AF_INET6 : NT_AF_INET;
    inet_pton(v6 ? AF_INET6 : AF_INET, r.src, f.src.data());
    inet_pton(v6 ? AF_INET6 : AF_INET, r.dst, f.dst.data());
    f.proto = r.proto;
    f.has_ports = (r.proto == 6 || r.proto == 17) && r.sport >= 0;
    f.sport = static_cast<uint16_t>(r.sport < 0 ? 0 : r.sport);
    f.dport = static_cast<uint16_t>(r.dport < 0 ? 0 : r.dport);
    f.dscp = r.dscp;
    f.vlan = r.vlan;
    f.mac = parse_mac(r.mac);
    return f;
}

constexpr uint8_t In = NT_DIR_INGRESS;
constexpr uint8_t Out = NT_DIR_EGRESS;

const Row kRows[] = {
    {"iptv_v4", "wan0", In, "198.19.9.9", "232.1.2.3", 17, 5000, 5000, 0, 0, "02:00:00:00:00:01", "iptv"},
    {"iptv_v6", "wan0", In, "fd00:9::1", "ff3e::1234", 17, 5000, 5000, 0, 0, "02:00:00:00:00:01", "iptv"},
    {"iptv_only_on_wan", "lan0", In, "198.19.9.9", "232.1.2.3", 17, 5000, 5000, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"iptv_udp_only", "wan0", In, "198.19.9.9", "232.1.2.3", 6, 5000, 80, 0, 0, "02:00:00:00:00:01", "web"},
    {"iptv_range_edge_out", "wan0", In, "198.19.9.9", "233.0.0.0", 17, 5000, 5000, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"host7_beats_voip", "wan0", Out, "198.18.1.7", "198.19.0.1", 17, 1000, 5060, 0, 0, "02:00:00:00:00:01",
     "host7"},
    {"host7_v6", "wan0", Out, "fd00:1:2::7", "fd00:9::1", 6, 1000, 443, 0, 0, "02:00:00:00:00:01", "host7"},
    {"host7_neighbour", "wan0", Out, "198.18.1.8", "198.19.0.1", 6, 1000, 443, 0, 0, "02:00:00:00:00:01",
     "web"},
    {"sip_udp", "wan0", In, "198.19.0.1", "198.18.1.9", 17, 5060, 5060, 0, 0, "02:00:00:00:00:01", "voip"},
    {"sip_tcp", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 5060, 0, 0, "02:00:00:00:00:01", "voip"},
    {"rtp_low_edge", "wan0", In, "198.19.0.1", "198.19.1.9", 17, 40000, 10000, 46, 0, "02:00:00:00:00:01",
     "voip"},
    {"rtp_high_edge", "wan0", In, "198.19.0.1", "198.19.1.9", 17, 40000, 20000, 46, 0, "02:00:00:00:00:01",
     "voip"},
    {"rtp_below", "wan0", In, "198.19.0.1", "198.19.1.9", 17, 40000, 9999, 46, 0, "02:00:00:00:00:01",
     "other"},
    {"rtp_above", "wan0", In, "198.19.0.1", "198.19.1.9", 17, 40000, 20001, 46, 0, "02:00:00:00:00:01",
     "other"},
    {"rtp_not_ef", "wan0", In, "198.19.0.1", "198.19.1.9", 17, 40000, 15000, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"rtp_tcp_not_voip", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 15000, 46, 0, "02:00:00:00:00:01",
     "other"},
    {"rtp_v6", "wan0", In, "fd00:9::1", "fd00:9::2", 17, 40000, 12345, 46, 0, "02:00:00:00:00:01", "voip"},
    {"dns_query", "wan0", Out, "198.19.1.9", "198.19.0.53", 17, 40000, 53, 0, 0, "02:00:00:00:00:01", "dns"},
    {"dns_answer", "wan0", In, "198.19.0.53", "198.19.1.9", 17, 53, 40000, 0, 0, "02:00:00:00:00:01", "dns"},
    {"dns_tcp_v6", "wan0", In, "fd00:9::53", "fd00:9::2", 6, 53, 40000, 0, 0, "02:00:00:00:00:01", "dns"},
    {"web_80", "wan0", Out, "198.19.1.9", "198.19.0.80", 6, 40000, 80, 0, 0, "02:00:00:00:00:01", "web"},
    {"web_443", "wan0", Out, "198.19.1.9", "198.19.0.80", 6, 40000, 443, 0, 0, "02:00:00:00:00:01", "web"},
    {"web_81_other", "wan0", Out, "198.19.1.9", "198.19.0.80", 6, 40000, 81, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"web_udp_443_other", "wan0", Out, "198.19.1.9", "198.19.0.80", 17, 40000, 443, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"net24_egress", "wan0", Out, "198.19.1.9", "198.18.1.200", 6, 40000, 22, 0, 0, "02:00:00:00:00:01",
     "net24"},
    {"net24_ingress_is_net16", "wan0", In, "198.19.1.9", "198.18.1.200", 6, 40000, 22, 0, 0,
     "02:00:00:00:00:01", "net16"},
    {"net16_outside_24", "wan0", Out, "198.19.1.9", "198.18.2.1", 6, 40000, 22, 0, 0, "02:00:00:00:00:01",
     "net16"},
    {"net16_edge_out", "wan0", Out, "198.19.1.9", "198.17.255.255", 6, 40000, 22, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"mapped_v6_net24", "wan0", Out, "::ffff:198.19.1.9", "::ffff:198.18.1.200", 6, 40000, 22, 0, 0,
     "02:00:00:00:00:01", "net24"},
    {"mapped_v6_host7", "wan0", Out, "::ffff:198.18.1.7", "::ffff:198.19.0.1", 6, 40000, 22, 0, 0,
     "02:00:00:00:00:01", "host7"},
    {"mapped_v6_iptv", "wan0", In, "::ffff:198.19.1.1", "::ffff:232.0.0.1", 17, 1, 2, 0, 0,
     "02:00:00:00:00:01", "iptv"},
    {"v6_not_mapped", "wan0", Out, "fd00:9::1", "::198.18.1.200", 6, 40000, 22, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"later_fragment_unseen_not_dns", "wan0", In, "198.19.0.53", "198.19.1.9", 17, -1, -1, 0, 0,
     "02:00:00:00:00:01", "other"},
    {"later_fragment_unseen_v6", "wan0", In, "fd00:9::53", "fd00:9::2", 17, -1, -1, 0, 0, "02:00:00:00:00:01",
     "other"},
    {"later_fragment_unseen_net16", "wan0", In, "198.19.0.53", "198.18.7.7", 17, -1, -1, 0, 0,
     "02:00:00:00:00:01", "net16"},
    {"vlan_100", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 22, 0, 100, "02:00:00:00:00:01", "tagged"},
    {"vlan_199", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 22, 0, 199, "02:00:00:00:00:01", "tagged"},
    {"vlan_200", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 22, 0, 200, "02:00:00:00:00:01", "other"},
    {"vlan_99", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 22, 0, 99, "02:00:00:00:00:01", "other"},
    {"vlan_web_first", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 80, 0, 150, "02:00:00:00:00:01",
     "web"},
    {"dscp_cs5", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 22, 40, 0, "02:00:00:00:00:01", "marked"},
    {"dscp_af41_v6", "wan0", In, "fd00:9::1", "fd00:9::2", 6, 40000, 22, 34, 0, "02:00:00:00:00:01",
     "marked"},
    {"dscp_ef_not_marked", "wan0", In, "198.19.0.1", "198.19.1.9", 6, 40000, 22, 46, 0, "02:00:00:00:00:01",
     "other"},
    {"icmp_other", "wan0", In, "198.19.0.1", "198.19.1.9", 1, 0, 0, 0, 0, "02:00:00:00:00:01", "other"},
    {"icmpv6_other", "wan0", In, "fd00:9::1", "fd00:9::2", 58, 0, 0, 0, 0, "02:00:00:00:00:01", "other"},
    {"gre", "wan0", In, "198.19.0.1", "198.19.1.9", 47, 0, 0, 0, 0, "02:00:00:00:00:01", "gre"},
    {"cam_lan_ingress_src_mac", "lan0", In, "198.19.3.3", "198.19.0.1", 6, 40000, 80, 0, 0,
     "02:00:00:00:0c:01", "cam"},
    {"cam_lan_egress_dst_mac", "lan1", Out, "198.19.0.1", "198.19.3.3", 6, 80, 40000, 0, 0,
     "02:00:00:00:0c:01", "cam"},
    {"cam_mac_on_wan_ignored", "wan0", In, "198.19.3.3", "198.19.0.1", 6, 40000, 80, 0, 0,
     "02:00:00:00:0c:01", "web"},
    {"other_mac_on_lan", "lan0", In, "198.19.3.3", "198.19.0.1", 6, 40000, 80, 0, 0, "02:00:00:00:0c:02",
     "web"},
};

TEST_F(Classes, FixtureRowsMatchTheReferenceAndTheRow) {
    const Bundle b = read_bundle([] {
        Bundle c = compile_rules(parse_rules(kRules, "fixture.yaml"));
        return write_bundle(c);
    }());
    ASSERT_GE(std::size(kRows), 40u);
    for (const Row& r : kRows) {
        if (loaded_name_ != r.ifname)
            load(b, r.ifname);
        const PacketFacts f = facts_of(r);
        const uint32_t ref = classify(b, f);
        EXPECT_EQ(class_name(b, ref), r.want) << r.name << ": reference classifier";
        const int64_t got = run(frame_of(f, frag_id_++), f.lan, f.dir);
        EXPECT_EQ(got, static_cast<int64_t>(ref))
            << r.name << ": kernel class " << got << " (" << class_name(b, static_cast<uint32_t>(got)) << ")";
    }
}

// The same rows with the fixture's rules spread over a ruleset of about 10,000: fillers that no
// row matches (classes_random.h) before each rule, so the rules sit in many bitmask chunks and
// a row's candidate chunks (the summary AND) are checked one after the other.
TEST_F(Classes, FixtureRowsOnALargeRuleset) {
    RuleSet rs = parse_rules(kRules, "fixture.yaml");
    classes_test::Random rnd(19);
    std::vector<Rule> spread;
    const size_t per_rule = 10000 / rs.rules.size();
    uint32_t n = 0;
    for (const Rule& rule : rs.rules) {
        for (size_t i = 0; i < per_rule; i++)
            spread.push_back(rnd.filler(rule.class_id, n++));
        spread.push_back(rule);
    }
    rs.rules = std::move(spread);
    const Bundle b = read_bundle([&] {
        Bundle c = compile_rules(rs);
        return write_bundle(c);
    }());
    ASSERT_GT(b.rules.size(), 9000u);
    for (const Row& r : kRows) {
        if (loaded_name_ != r.ifname)
            load(b, r.ifname);
        const PacketFacts f = facts_of(r);
        const uint32_t ref = classify(b, f);
        EXPECT_EQ(class_name(b, ref), r.want) << r.name << ": reference classifier";
        const int64_t got = run(frame_of(f, frag_id_++), f.lan, f.dir);
        EXPECT_EQ(got, static_cast<int64_t>(ref))
            << r.name << ": kernel class " << got << " (" << class_name(b, static_cast<uint32_t>(got)) << ")";
    }
}

// A later fragment takes its first fragment's class (its ports come from the first fragment).
TEST_F(Classes, LaterFragmentTakesTheFirstFragmentsClass) {
    Bundle b = compile_rules(parse_rules(kRules, "fixture.yaml"));
    load(b, "wan0");
    for (const bool v6 : {false, true}) {
        PacketBuilder first;
        PacketBuilder later;
        first.eth(kGwMac, parse_mac("02:00:00:00:00:01"));
        later.eth(kGwMac, parse_mac("02:00:00:00:00:01"));
        if (v6) {
            const Ipv6Opts o{.src = parse_ipv6("fd00:9::53"), .dst = parse_ipv6("fd00:9::2")};
            first.ipv6(o).ipv6_fragment({.offset = 0, .more = true, .id = 77});
            later.ipv6(o).ipv6_fragment({.offset = 3, .more = false, .id = 77, .next_header = 17});
        } else {
            Ipv4Opts o{.src = parse_ipv4("198.19.0.53"), .dst = parse_ipv4("198.19.1.9")};
            o.id = 77;
            o.mf = true;
            first.ipv4(o);
            o.mf = false;
            o.frag_offset = 3;
            o.protocol = 17;
            later.ipv4(o);
        }
        first.udp({.sport = 53, .dport = 40000, .length = 8 + 40}).payload(16);
        later.payload(24);
        EXPECT_EQ(run(first.build(), false, NT_DIR_INGRESS), 40)
            << (v6 ? "v6" : "v4") << " first fragment: dns";
        EXPECT_EQ(run(later.build(), false, NT_DIR_INGRESS), 40)
            << (v6 ? "v6" : "v4") << " later fragment: dns";
    }
}

// Without a ruleset nothing is classified; after clear() neither.
TEST_F(Classes, NoRulesetNoClassCounters) {
    PacketFacts f = facts_of(kRows[0]);
    EXPECT_EQ(run(frame_of(f, 1), false, NT_DIR_INGRESS), -1);
    load(compile_rules(parse_rules(kRules, "fixture.yaml")), "wan0");
    EXPECT_EQ(run(frame_of(f, 2), false, NT_DIR_INGRESS), 10);
    kc_->clear();
    EXPECT_EQ(run(frame_of(f, 3), false, NT_DIR_INGRESS), -1);
}

// 100 swaps between two rulesets that put the same packet in different classes, while another
// thread keeps sending it: every packet is counted in exactly one of the two classes (never in
// neither: class other or no class; never in both: the classes add up to the interface total).
TEST_F(Classes, SwapsUnderTrafficClassifyByExactlyOneRuleset) {
    const char* a =
        "name: a\nversion: 1\nclasses:\n  - {name: web, id: 1, match: {protocol: tcp, dport: 80}}\n";
    const char* b = "name: b\nversion: 2\nclasses:\n  - {name: net, id: 2, match: {dst: 198.19.0.0/16}}\n"
                    "  - {name: web, id: 1, match: {protocol: tcp, dport: 80}}\n";
    const Bundle ba = compile_rules(parse_rules(a, "a.yaml"));
    const Bundle bb = compile_rules(parse_rules(b, "b.yaml"));
    load(ba, "wan0");
    const std::vector<uint8_t> frame =
        PacketBuilder()
            .eth(kGwMac, parse_mac("02:00:00:00:00:01"))
            .ipv4({.src = parse_ipv4("198.18.0.1"), .dst = parse_ipv4("198.19.0.80")})
            .tcp({.sport = 40000, .dport = 80})
            .build();
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> sent{0};
    std::thread flood([&] {
        bpf_test_run_opts opts{};
        opts.sz = sizeof(opts);
        opts.data_in = frame.data();
        opts.data_size_in = static_cast<uint32_t>(frame.size());
        opts.repeat = 100;
        const int fd = bpf_program__fd(skel_->progs.nt_tc_ingress_wan);
        while (!stop.load()) {
            if (bpf_prog_test_run_opts(fd, &opts) != 0)
                break;
            sent += 100;
        }
    });
    for (int i = 0; i < 100; i++)
        load(i % 2 ? ba : bb, "wan0");
    stop = true;
    flood.join();
    ASSERT_GT(sent.load(), 0u);
    uint64_t by_class[3] = {};
    for (const auto& e : dump_percpu<nt_cls_count_key, nt_counts>(skel_->maps.nt_cls_counts)) {
        ASSERT_LE(e.key.class_id, 2u);
        for (const nt_counts& c : e.per_cpu)
            by_class[e.key.class_id] += c.packets;
    }
    uint64_t total = 0;
    for (const auto& e : dump_percpu<nt_iface_key, nt_iface_val>(skel_->maps.nt_ifaces))
        for (const nt_iface_val& v : e.per_cpu)
            total += v.total.packets;
    EXPECT_EQ(by_class[0], 0u) << "packets classified by neither ruleset";
    EXPECT_GT(by_class[1], 0u);
    EXPECT_GT(by_class[2], 0u);
    EXPECT_EQ(by_class[1] + by_class[2], total) << "classes == interface total";
    EXPECT_EQ(total, sent.load());
    // The flow's cached class follows the last swap (ba: web).
    EXPECT_EQ(run(frame, false, NT_DIR_INGRESS), 1);
}

// The class cached in a flow entry holds only for the ruleset it was computed under, even when a
// later ruleset lands in the same slot; and never when the rules test DSCP (per packet).
TEST_F(Classes, FlowCacheFollowsTheRuleset) {
    const auto bundle = [](const char* text) { return compile_rules(parse_rules(text, "r.yaml")); };
    const Bundle a1 =
        bundle("name: a\nversion: 1\nclasses:\n  - {name: web, id: 1, match: {dport: 80, protocol: tcp}}\n");
    const Bundle b =
        bundle("name: b\nversion: 2\nclasses:\n  - {name: net, id: 2, match: {dst: 198.19.0.0/16}}\n");
    const Bundle a2 =
        bundle("name: a\nversion: 3\nclasses:\n  - {name: web2, id: 3, match: {dport: 80, protocol: tcp}}\n");
    const Bundle d = bundle("name: d\nversion: 4\nclasses:\n  - {name: ef, id: 4, match: {dscp: ef}}\n");
    const auto frame = [](uint8_t dscp) {
        return PacketBuilder()
            .eth(kGwMac, parse_mac("02:00:00:00:00:01"))
            .ipv4({.src = parse_ipv4("198.18.0.1"),
                   .dst = parse_ipv4("198.19.0.80"),
                   .tos = static_cast<uint8_t>(dscp << 2)})
            .tcp({.sport = 40000, .dport = 80})
            .build();
    };
    load(a1, "wan0");
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 1) << "a1, first packet";
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 1) << "a1, cached";
    load(b, "wan0");
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 2) << "b";
    load(a2, "wan0"); // the slot a1 used
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 3) << "a2 in a1's slot";
    load(d, "wan0");
    EXPECT_EQ(run(frame(46), false, NT_DIR_INGRESS), 4) << "d, ef";
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 0) << "d, same flow without ef";
    EXPECT_EQ(run(frame(46), false, NT_DIR_INGRESS), 4) << "d, ef again";
}

// The flow entry carries the class of the flow's latest classified packet (what ListFlows, the flow
// records and IPFIX report): under a ruleset that tests DSCP (per packet, nothing cached) it follows
// each packet; under one that does not, the cached class; a new ruleset's serial replaces the old.
TEST_F(Classes, FlowCarriesTheClassOfItsLatestPacket) {
    const auto bundle = [](const char* text) { return compile_rules(parse_rules(text, "r.yaml")); };
    const Bundle a =
        bundle("name: a\nversion: 1\nclasses:\n  - {name: web, id: 1, match: {dport: 80, protocol: tcp}}\n");
    const Bundle d = bundle("name: d\nversion: 2\nclasses:\n  - {name: ef, id: 4, match: {dscp: ef}}\n");
    const auto frame = [](uint8_t dscp) {
        return PacketBuilder()
            .eth(kGwMac, parse_mac("02:00:00:00:00:01"))
            .ipv4({.src = parse_ipv4("198.18.0.1"),
                   .dst = parse_ipv4("198.19.0.80"),
                   .tos = static_cast<uint8_t>(dscp << 2)})
            .tcp({.sport = 40000, .dport = 80})
            .build();
    };
    // The flow's class as nettallyd folds it (core/counters.h): the CPU with the latest packet.
    const auto flow_class = [this]() -> std::pair<int64_t, uint32_t> {
        const auto flows = dump_percpu<nt_flow_key, nt_flow_val>(skel_->maps.nt_flows);
        if (flows.size() != 1)
            return {-1, 0};
        const FlowEntry e = fold_percpu(flows[0].key, flows[0].per_cpu);
        return {e.cls_serial ? e.cls_id : -1, e.cls_serial};
    };
    load(a, "wan0");
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 1);
    const auto [web, serial_a] = flow_class();
    EXPECT_EQ(web, 1);
    EXPECT_NE(serial_a, 0u);
    load(d, "wan0");
    EXPECT_EQ(run(frame(46), false, NT_DIR_INGRESS), 4);
    const auto [ef, serial_d] = flow_class();
    EXPECT_EQ(ef, 4) << "the new ruleset's class";
    EXPECT_NE(serial_d, serial_a);
    EXPECT_EQ(run(frame(0), false, NT_DIR_INGRESS), 0);
    EXPECT_EQ(flow_class().first, 0) << "per packet: the latest packet's class (other)";
    EXPECT_EQ(run(frame(46), false, NT_DIR_INGRESS), 4);
    EXPECT_EQ(flow_class().first, 4);
    EXPECT_EQ(flow_class().second, serial_d);
}

TEST_F(Classes, DifferentialRandomPacketsOverRandomRulesets) {
    classes_test::Random rnd(777);
    size_t packets = 0;
    size_t mismatches = 0;
    size_t non_other = 0;
    size_t deep = 0;
    // 50 rulesets of 1 .. 200 rules, then 10 beyond the old 1,024-rule kernel limit: 1,025 ..
    // 16,384 rules (the kernel's limit), most of 5,000 .. 10,000, one random rule in 20 .. 400.
    const size_t large[] = {1025, 2000, 5000, 6000, 7500, 8000, 9000, 10000, 10240, 16384};
    for (int set = 0; set < 60; set++) {
        Bundle b = compile_rules(set < 50 ? rnd.ruleset(1 + rnd.below(set < 40 ? 20 : 200))
                                          : rnd.large_ruleset(large[set - 50], 20 + rnd.below(381)));
        const Bundle r = read_bundle(write_bundle(b));
        for (const char* ifname : classes_test::kIfnames) {
            load(r, ifname);
            for (int i = 0; i < 500; i++) {
                PacketFacts f = rnd.packet();
                f.ifname = ifname;
                f.lan = std::string(ifname).rfind("lan", 0) == 0;
                const uint32_t want = classify(r, f);
                const int64_t got = run(frame_of(f, frag_id_++), f.lan, f.dir);
                packets++;
                non_other += want != kClassOther;
                deep += first_rule(r, f) >= 1024;
                if (got != static_cast<int64_t>(want) && ++mismatches <= 5)
                    ADD_FAILURE() << "ruleset " << set << " on " << ifname << " packet " << i << ": kernel "
                                  << got << ", reference " << want;
            }
        }
    }
    std::printf("[ classes ] %zu packets, %zu in a class, %zu past the 1,024th rule, %zu mismatches\n",
                packets, non_other, deep, mismatches);
    EXPECT_EQ(packets, 120000u);
    EXPECT_EQ(mismatches, 0u);
    EXPECT_GT(non_other, 36000u);
    EXPECT_GT(deep, 2000u) << "packets whose first matching rule is past the 1,024th";
}

} // namespace
} // namespace nettally::test
