// The BPF parser fixture table: crafted frames run once through one of the four TC
// programs with BPF_PROG_TEST_RUN, then the per-CPU maps are read back and compared
// with figures worked out by hand from each frame's construction (DESIGN.md "Layers").
//
// The table shares one loaded skeleton (shared_object.h: loading verifies every program, about
// 40 s under qemu TCG); each row starts from every map reset to its state after the load, so the
// maps hold exactly what one run wrote. Per row:
//   - the interface total (nt_ifaces) equals the expected counts;
//   - exactly one category moved: the expected flow, or the expected bucket;
//   - the reconciliation invariant total == sum(flows) + sum(buckets) holds;
//   - on lan programs the host entry (or its absence) matches.
//
// The test-run skb is attached to the loopback device of the current netns unless
// ctx_in sets ifindex (net/bpf/test_run.c); rows check that instead of assuming it.
// Per-CPU values come back as libbpf_num_possible_cpus() elements, each rounded up
// to 8 bytes; all of them are summed because the run may land on any CPU.
//
// GSO rows pass gso_segs/gso_size in ctx_in (struct __sk_buff), which test_run copies
// into skb_shinfo. A row whose frame this kernel's test_run refuses with EINVAL (a runt
// below ETH_HLEN, an untagged IP frame shorter than its IP header, more than one page of
// data) carries the reason and reports SKIPPED; a neighbouring row covers the same parser
// path with a frame the kernel accepts.
#include "bpf_test_util.h"
#include "packet_builder.h"
#include "shared_object.h"

#include "kernel/datapath.h"
#include "nettally.skel.h"
#include "nettally_abi.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

namespace nettally::test {
namespace {

// ---------------------------------------------------------------------------------------
// Environment and skeleton

struct SkelDeleter {
    void operator()(nettally_bpf* s) const { nettally_bpf__destroy(s); }
};
using Skel = std::unique_ptr<nettally_bpf, SkelDeleter>;

enum class Prog { IngressLan, EgressLan, IngressWan, EgressWan };

const char* prog_name(Prog p) {
    switch (p) {
    case Prog::IngressLan:
        return "nt_tc_ingress_lan";
    case Prog::EgressLan:
        return "nt_tc_egress_lan";
    case Prog::IngressWan:
        return "nt_tc_ingress_wan";
    case Prog::EgressWan:
        return "nt_tc_egress_wan";
    }
    return "?";
}

bpf_program* prog_of(nettally_bpf* s, Prog p) {
    switch (p) {
    case Prog::IngressLan:
        return s->progs.nt_tc_ingress_lan;
    case Prog::EgressLan:
        return s->progs.nt_tc_egress_lan;
    case Prog::IngressWan:
        return s->progs.nt_tc_ingress_wan;
    case Prog::EgressWan:
        return s->progs.nt_tc_egress_wan;
    }
    return nullptr;
}

bool is_lan(Prog p) {
    return p == Prog::IngressLan || p == Prog::EgressLan;
}
uint32_t dir_of(Prog p) {
    return p == Prog::IngressLan || p == Prog::IngressWan ? NT_DIR_INGRESS : NT_DIR_EGRESS;
}

struct IfaceSum {
    nt_counts total{};
    nt_counts bucket[NT_BUCKET_MAX]{};
    uint64_t host_overflow = 0;
};

IfaceSum sum(const std::vector<nt_iface_val>& v) {
    IfaceSum s;
    for (const auto& c : v) {
        s.total += c.total;
        for (int b = 0; b < NT_BUCKET_MAX; b++)
            s.bucket[b] += c.bucket[b];
        s.host_overflow += c.host_overflow;
    }
    return s;
}

struct FlowSum {
    nt_counts c{};
    uint8_t tcp_flags = 0;
    bool stamped = false; // some CPU set first_ns/last_ns
};

FlowSum sum(const std::vector<nt_flow_val>& v) {
    FlowSum s;
    for (const auto& c : v) {
        s.c += c.c;
        s.tcp_flags |= c.tcp_flags;
        s.stamped |= c.first_ns != 0 && c.last_ns >= c.first_ns;
    }
    return s;
}

struct HostSum {
    nt_counts sent{};
    nt_counts received{};
};

HostSum sum(const std::vector<nt_host_val>& v) {
    HostSum s;
    for (const auto& c : v) {
        s.sent += c.sent;
        s.received += c.received;
    }
    return s;
}

std::string bucket_name(int b) {
    switch (b) {
    case NT_BUCKET_NON_IP:
        return "non_ip";
    case NT_BUCKET_UNPARSABLE:
        return "unparsable";
    case NT_BUCKET_FLOW_OVERFLOW:
        return "flow_overflow";
    }
    return std::to_string(b);
}

// ---------------------------------------------------------------------------------------
// The table

struct FlowExpect {
    uint8_t family; // NT_AF_INET / NT_AF_INET6
    uint8_t proto;
    uint16_t sport;
    uint16_t dport;
    const char* src;
    const char* dst;
    uint8_t tcp_flags = 0;
};

struct HostExpect {
    Mac mac;
    const char* ip; // family follows the flow
};

struct SkbCtx {
    uint32_t gso_segs = 0;
    uint32_t gso_size = 0;
};

struct Row {
    std::string name;
    std::vector<uint8_t> frame;
    Prog prog;
    nt_counts expect;                         // {packets, l2, l3, l4, payload}
    std::variant<nt_bucket, FlowExpect> into; // the one category that moves
    std::optional<HostExpect> host;           // lan only: sent (ingress) / received (egress)
    std::optional<SkbCtx> ctx;                // ctx_in, only where needed
    // When set, the kernel may refuse this frame in BPF_PROG_TEST_RUN (EINVAL); the row
    // then reports SKIPPED with this explanation instead of running.
    const char* refusal_note = nullptr;
};

void PrintTo(const Row& r, std::ostream* os) {
    *os << r.name;
}

const Mac kHostMac = parse_mac("02:00:00:00:00:01");
const Mac kGwMac = parse_mac("02:00:00:00:00:fe");
const Mac kWanPeerMac = parse_mac("02:00:00:00:01:01");
const Mac kWanOurMac = parse_mac("02:00:00:00:01:02");
const Mac kBroadcast = parse_mac("ff:ff:ff:ff:ff:ff");

constexpr const char* kHost4 = "192.168.1.10";
constexpr const char* kGw4 = "192.168.1.1";
constexpr const char* kRemote4 = "198.51.100.7";
constexpr const char* kHost6 = "2001:db8:1::10";
constexpr const char* kRemote6 = "2001:db8:ffff::7";

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIcmpv6 = 58;
constexpr uint8_t kIgmp = 2;
constexpr uint8_t kNoNext = 59;

Ipv4Opts v4(const char* src, const char* dst) {
    Ipv4Opts o;
    o.src = parse_ipv4(src);
    o.dst = parse_ipv4(dst);
    return o;
}

Ipv6Opts v6(const char* src, const char* dst) {
    Ipv6Opts o;
    o.src = parse_ipv6(src);
    o.dst = parse_ipv6(dst);
    return o;
}

template <typename F> Ipv4Opts v4(const char* src, const char* dst, F&& tweak) {
    Ipv4Opts o = v4(src, dst);
    tweak(o);
    return o;
}

template <typename F> Ipv6Opts v6(const char* src, const char* dst, F&& tweak) {
    Ipv6Opts o = v6(src, dst);
    tweak(o);
    return o;
}

PacketBuilder ipv6_with_dstopts(unsigned n) {
    PacketBuilder b;
    b.eth(kWanOurMac, kWanPeerMac).ipv6(v6(kRemote6, kHost6));
    for (unsigned i = 0; i < n; i++)
        b.ipv6_dest_opts(0);
    return b;
}

// IPv4: TCP, UDP, ICMP.
void add_ipv4_rows(std::vector<Row>& t) {
    // DF set, as on most TCP: the DF bit must not read as a fragment offset.
    t.push_back({"ipv4_tcp",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .ipv4(v4(kHost4, kRemote4, [](Ipv4Opts& o) { o.df = true; }))
                     .tcp({.sport = 40000, .dport = 443, .flags = kTcpAck | kTcpPsh})
                     .payload(100)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 20 + 20 + 100, 20 + 20 + 100, 20 + 100, 100},
                 FlowExpect{NT_AF_INET, kTcp, 40000, 443, kHost4, kRemote4, 0x18},
                 HostExpect{kHostMac, kHost4}});

    t.push_back({"ipv4_tcp_options_12",
                 PacketBuilder()
                     .eth(kHostMac, kGwMac)
                     .ipv4(v4(kRemote4, kHost4))
                     .tcp({.sport = 443,
                           .dport = 40000,
                           .flags = kTcpAck,
                           .options = tcp_timestamp_option(1000, 2000)})
                     .payload(200)
                     .build(),
                 Prog::EgressLan,
                 {1, 14 + 20 + 32 + 200, 20 + 32 + 200, 32 + 200, 200},
                 FlowExpect{NT_AF_INET, kTcp, 443, 40000, kRemote4, kHost4, 0x10},
                 HostExpect{kHostMac, kHost4}});

    t.push_back({"ipv4_udp",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .udp({.sport = 51000, .dport = 53})
                     .payload(512)
                     .build(),
                 Prog::EgressWan,
                 {1, 14 + 20 + 8 + 512, 20 + 8 + 512, 8 + 512, 512},
                 FlowExpect{NT_AF_INET, kUdp, 51000, 53, kHost4, kRemote4}});

    // ICMP: sport 0, dport = type << 8 | code = 8 << 8 = 2048.
    t.push_back({"ipv4_icmp_echo",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .icmp(8, 0, 0x1234, 1)
                     .payload(56)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 20 + 8 + 56, 20 + 8 + 56, 8 + 56, 56},
                 FlowExpect{NT_AF_INET, kIcmp, 0, 2048, kHost4, kRemote4},
                 HostExpect{kHostMac, kHost4}});
}

// IPv4 header options (IHL above 5).
void add_ipv4_options_rows(std::vector<Row>& t) {
    // Record route with 2 slots: 11 bytes + EOL = 12 bytes of options, IHL 8.
    t.push_back({"ipv4_ip_options_ihl8_udp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4, [](Ipv4Opts& o) { o.options = ipv4_record_route_option(2); }))
                     .udp({.sport = 53, .dport = 40001})
                     .payload(50)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 32 + 8 + 50, 32 + 8 + 50, 8 + 50, 50},
                 FlowExpect{NT_AF_INET, kUdp, 53, 40001, kRemote4, kHost4}});

    // IGMPv2 report with router alert (IHL 6), padded to the 60-byte minimum, sent to a
    // multicast MAC: a flow, no host entry; IGMP has no transport header: payload = l4.
    t.push_back({"ipv4_igmp_router_alert_ihl6_multicast",
                 PacketBuilder()
                     .eth(parse_mac("01:00:5e:00:00:16"), kGwMac)
                     .ipv4(v4(kGw4, "224.0.0.22",
                              [](Ipv4Opts& o) {
                                  o.ttl = 1;
                                  o.options = ipv4_router_alert_option();
                                  o.protocol = kIgmp;
                              }))
                     .bytes({0x16, 0x00, 0x00, 0x00, 239, 1, 1, 1})
                     .pad_to(60)
                     .build(),
                 Prog::EgressLan,
                 {1, 60, 24 + 8, 8, 8},
                 FlowExpect{NT_AF_INET, kIgmp, 0, 0, kGw4, "224.0.0.22"}});
}

// Length fields that contradict each other or the frame; Ethernet padding.
void add_length_field_rows(std::vector<Row>& t) {
    const nt_bucket kUnparsable = NT_BUCKET_UNPARSABLE;

    t.push_back({"ipv4_tot_len_exceeds_frame",
                 PacketBuilder()
                     .eth(kHostMac, kGwMac)
                     .ipv4(v4(kRemote4, kHost4, [](Ipv4Opts& o) { o.tot_len = 1500; }))
                     .tcp({.sport = 443, .dport = 40019})
                     .payload(100)
                     .build(),
                 Prog::EgressLan,
                 {1, 14 + 20 + 20 + 100, 0, 0, 0},
                 kUnparsable});

    t.push_back({"ipv6_payload_len_exceeds_frame",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6, [](Ipv6Opts& o) { o.payload_len = 2000; }))
                     .udp({.sport = 443, .dport = 40020})
                     .payload(100)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 8 + 100, 0, 0, 0},
                 kUnparsable});

    // 14 + 20 + 8 + 4 = 46 bytes padded to 60: l2 is the frame, l3 the IP total length.
    t.push_back({"ipv4_udp_padded_to_60",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .udp({.sport = 40011, .dport = 123})
                     .payload(4)
                     .pad_to(60)
                     .build(),
                 Prog::IngressLan,
                 {1, 60, 20 + 8 + 4, 8 + 4, 4},
                 FlowExpect{NT_AF_INET, kUdp, 40011, 123, kHost4, kRemote4},
                 HostExpect{kHostMac, kHost4}});

    // IHL 15 (a full 60-byte header of NOP options) but total length 40.
    t.push_back({"ipv4_ihl_exceeds_tot_len",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4,
                              [](Ipv4Opts& o) {
                                  o.options = std::vector<uint8_t>(40, 0x01);
                                  o.tot_len = 40;
                                  o.protocol = kTcp;
                              }))
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 60, 0, 0, 0},
                 kUnparsable});

    // A dest-opts header of 40 bytes in an IPv6 payload length of 16: the walk runs past l3.
    t.push_back({"ipv6_ext_hdr_exceeds_payload_len",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6, [](Ipv6Opts& o) { o.payload_len = 16; }))
                     .ipv6_dest_opts(4)
                     .udp({.sport = 53, .dport = 40026})
                     .payload(10)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 40 + 8 + 10, 0, 0, 0},
                 kUnparsable});
}

// Header length fields below the minimum or beyond the datagram.
void add_header_length_rows(std::vector<Row>& t) {
    const nt_bucket kUnparsable = NT_BUCKET_UNPARSABLE;

    t.push_back({"ipv4_ihl_4",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4, [](Ipv4Opts& o) { o.ihl = 4; }))
                     .udp({.sport = 53, .dport = 40018})
                     .payload(20)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 20 + 8 + 20, 0, 0, 0},
                 kUnparsable});

    // Data offset 15 (60 bytes) in a datagram with room for 20 + 10.
    t.push_back({"tcp_doff_exceeds_datagram",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4))
                     .tcp({.sport = 443, .dport = 40027, .data_offset = 15})
                     .payload(10)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 20 + 20 + 10, 0, 0, 0},
                 kUnparsable});

    t.push_back({"tcp_doff_4",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4))
                     .tcp({.sport = 443, .dport = 40021, .data_offset = 4})
                     .payload(10)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 20 + 20 + 10, 0, 0, 0},
                 kUnparsable});
}

// IPv6 without extension headers.
void add_ipv6_rows(std::vector<Row>& t) {
    t.push_back({"ipv6_tcp",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .ipv6(v6(kHost6, kRemote6))
                     .tcp({.sport = 40002, .dport = 443, .flags = kTcpAck | kTcpPsh})
                     .payload(1000)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 40 + 20 + 1000, 40 + 20 + 1000, 20 + 1000, 1000},
                 FlowExpect{NT_AF_INET6, kTcp, 40002, 443, kHost6, kRemote6, 0x18},
                 HostExpect{kHostMac, kHost6}});

    t.push_back({"ipv6_udp",
                 PacketBuilder()
                     .eth(kHostMac, kGwMac)
                     .ipv6(v6(kRemote6, kHost6))
                     .udp({.sport = 443, .dport = 40003})
                     .payload(300)
                     .build(),
                 Prog::EgressLan,
                 {1, 14 + 40 + 8 + 300, 40 + 8 + 300, 8 + 300, 300},
                 FlowExpect{NT_AF_INET6, kUdp, 443, 40003, kRemote6, kHost6},
                 HostExpect{kHostMac, kHost6}});

    // ICMPv6 echo request: dport = 128 << 8 | 0 = 32768.
    t.push_back({"icmpv6_echo",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6))
                     .icmpv6(128, 0, 0x4321, 7)
                     .payload(56)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 8 + 56, 40 + 8 + 56, 8 + 56, 56},
                 FlowExpect{NT_AF_INET6, kIcmpv6, 0, 32768, kRemote6, kHost6}});

    // To the all-nodes group (33:33:00:00:00:01) on lan egress: a flow, but no host.
    t.push_back({"icmpv6_echo_multicast_dest_no_host",
                 PacketBuilder()
                     .eth(parse_mac("33:33:00:00:00:01"), kGwMac)
                     .ipv6(v6("fe80::1", "ff02::1", [](Ipv6Opts& o) { o.hop_limit = 1; }))
                     .icmpv6(128, 0, 1, 1)
                     .payload(16)
                     .build(),
                 Prog::EgressLan,
                 {1, 14 + 40 + 8 + 16, 40 + 8 + 16, 8 + 16, 16},
                 FlowExpect{NT_AF_INET6, kIcmpv6, 0, 32768, "fe80::1", "ff02::1"}});

    // Next header 59: no transport header, payload = l4.
    t.push_back({"ipv6_no_next_header",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6, [](Ipv6Opts& o) { o.next_header = kNoNext; }))
                     .payload(16)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 16, 40 + 16, 16, 16},
                 FlowExpect{NT_AF_INET6, kNoNext, 0, 0, kRemote6, kHost6}});
}

// IPv6 extension headers and the walk budget.
void add_ipv6_ext_header_rows(std::vector<Row>& t) {
    const nt_bucket kUnparsable = NT_BUCKET_UNPARSABLE;

    // Hop-by-hop (8) + dest-opts (hdr ext len 1: 16) + SRH with 2 segments (8 + 32 = 40).
    t.push_back({"ipv6_hbh_dstopts_routing_udp",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .ipv6(v6(kHost6, kRemote6))
                     .ipv6_hop_by_hop(0)
                     .ipv6_dest_opts(1)
                     .ipv6_routing(2)
                     .udp({.sport = 40004, .dport = 4500})
                     .payload(100)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 40 + 8 + 16 + 40 + 8 + 100, 40 + 8 + 16 + 40 + 8 + 100, 8 + 100, 100},
                 FlowExpect{NT_AF_INET6, kUdp, 40004, 4500, kHost6, kRemote6},
                 HostExpect{kHostMac, kHost6}});

    // AH with a 12-byte ICV: 24 bytes.
    t.push_back({"ipv6_ah_tcp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6))
                     .ipv6_ah(12)
                     .tcp({.sport = 443, .dport = 40005, .flags = kTcpAck})
                     .payload(50)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 24 + 20 + 50, 40 + 24 + 20 + 50, 20 + 50, 50},
                 FlowExpect{NT_AF_INET6, kTcp, 443, 40005, kRemote6, kHost6, 0x10}});

    // Exactly NT_MAX_IPV6_EXT_HDRS (8) dest-opts headers of 8 bytes: still within budget.
    t.push_back({"ipv6_ext_chain_8_dstopts_within_budget",
                 ipv6_with_dstopts(8).udp({.sport = 4500, .dport = 40014}).payload(10).build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 8 * 8 + 8 + 10, 40 + 8 * 8 + 8 + 10, 8 + 10, 10},
                 FlowExpect{NT_AF_INET6, kUdp, 4500, 40014, kRemote6, kHost6}});

    // One more than the budget: fails closed.
    t.push_back({"ipv6_ext_chain_9_dstopts_over_budget",
                 ipv6_with_dstopts(9).udp({.sport = 4500, .dport = 40015}).payload(10).build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 9 * 8 + 8 + 10, 0, 0, 0},
                 kUnparsable});
}

// Fragments: the first carries the transport header, later ones are all l4.
void add_fragment_rows(std::vector<Row>& t) {
    // First fragment of a 1508-byte UDP datagram: MF, offset 0, ports present.
    t.push_back({"ipv4_frag_first_udp",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4, [](Ipv4Opts& o) { o.mf = true; }))
                     .udp({.sport = 51001, .dport = 4500, .length = 1508})
                     .payload(1472)
                     .build(),
                 Prog::EgressWan,
                 {1, 14 + 20 + 8 + 1472, 20 + 8 + 1472, 8 + 1472, 1472},
                 FlowExpect{NT_AF_INET, kUdp, 51001, 4500, kHost4, kRemote4}});

    // Its last fragment: offset 1480 / 8 = 185, the remaining 28 bytes; ports 0, payload = l4.
    t.push_back({"ipv4_frag_nonfirst_udp",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4,
                              [](Ipv4Opts& o) {
                                  o.frag_offset = 185;
                                  o.protocol = kUdp;
                              }))
                     .payload(28)
                     .build(),
                 Prog::EgressWan,
                 {1, 14 + 20 + 28, 20 + 28, 28, 28},
                 FlowExpect{NT_AF_INET, kUdp, 0, 0, kHost4, kRemote4}});

    // First fragment (offset 0, M) of a 1508-byte UDP datagram; carries the UDP header.
    t.push_back({"ipv6_frag_first_udp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6))
                     .ipv6_fragment({.offset = 0, .more = true})
                     .udp({.sport = 4500, .dport = 40006, .length = 1508})
                     .payload(1000)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 8 + 8 + 1000, 40 + 8 + 8 + 1000, 8 + 1000, 1000},
                 FlowExpect{NT_AF_INET6, kUdp, 4500, 40006, kRemote6, kHost6}});

    // Its last fragment: offset 1008 / 8 = 126, 500 bytes; ports 0, payload = l4.
    t.push_back({"ipv6_frag_nonfirst_udp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv6(v6(kRemote6, kHost6))
                     .ipv6_fragment({.offset = 126, .more = false, .next_header = kUdp})
                     .payload(500)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 40 + 8 + 500, 40 + 8 + 500, 500, 500},
                 FlowExpect{NT_AF_INET6, kUdp, 0, 0, kRemote6, kHost6}});
}

// 802.1Q and QinQ tags and the tag budget.
void add_vlan_rows(std::vector<Row>& t) {
    const nt_bucket kNonIp = NT_BUCKET_NON_IP;
    const nt_bucket kUnparsable = NT_BUCKET_UNPARSABLE;

    t.push_back({"vlan_8021q_ipv4_tcp",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .vlan(100)
                     .ipv4(v4(kHost4, kRemote4))
                     .tcp({.sport = 40007, .dport = 80, .flags = kTcpAck | kTcpPsh})
                     .payload(100)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 4 + 20 + 20 + 100, 20 + 20 + 100, 20 + 100, 100},
                 FlowExpect{NT_AF_INET, kTcp, 40007, 80, kHost4, kRemote4, 0x18},
                 HostExpect{kHostMac, kHost4}});

    t.push_back({"qinq_8021ad_8021q_ipv6_udp",
                 PacketBuilder()
                     .eth(kHostMac, kGwMac)
                     .vlan(10, kEthP8021AD)
                     .vlan(20, kEthP8021Q)
                     .ipv6(v6(kRemote6, kHost6))
                     .udp({.sport = 443, .dport = 40008})
                     .payload(64)
                     .build(),
                 Prog::EgressLan,
                 {1, 14 + 4 + 4 + 40 + 8 + 64, 40 + 8 + 64, 8 + 64, 64},
                 FlowExpect{NT_AF_INET6, kUdp, 443, 40008, kRemote6, kHost6},
                 HostExpect{kHostMac, kHost6}});

    // Three tags: more than NT_MAX_VLAN_TAGS (2), fails closed.
    t.push_back({"triple_tag_unparsable",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .vlan(10, kEthP8021AD)
                     .vlan(20)
                     .vlan(30)
                     .ipv4(v4(kRemote4, kHost4))
                     .udp({.sport = 53, .dport = 40016})
                     .payload(10)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 4 + 4 + 4 + 20 + 8 + 10, 0, 0, 0},
                 kUnparsable});

    // 802.1Q-tagged ARP, padded to 64 (the tagged minimum): not IP.
    t.push_back({"vlan_8021q_arp",
                 PacketBuilder()
                     .eth(kBroadcast, kWanPeerMac)
                     .vlan(100)
                     .arp({.op = 1,
                           .sha = kWanPeerMac,
                           .spa = parse_ipv4("203.0.113.1"),
                           .tha = {},
                           .tpa = parse_ipv4("203.0.113.2")})
                     .pad_to(64)
                     .build(),
                 Prog::IngressWan,
                 {1, 64, 0, 0, 0},
                 kNonIp});
}

// PPPoE session and discovery, PPP control.
void add_pppoe_rows(std::vector<Row>& t) {
    const nt_bucket kNonIp = NT_BUCKET_NON_IP;

    // PPPoE session header (6) + PPP protocol (2) before the IP datagram.
    t.push_back({"pppoe_session_ipv4_tcp",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .pppoe_session(0x0101)
                     .ipv4(v4(kHost4, kRemote4))
                     .tcp({.sport = 40009, .dport = 443, .flags = kTcpAck | kTcpPsh})
                     .payload(100)
                     .build(),
                 Prog::EgressWan,
                 {1, 14 + 6 + 2 + 20 + 20 + 100, 20 + 20 + 100, 20 + 100, 100},
                 FlowExpect{NT_AF_INET, kTcp, 40009, 443, kHost4, kRemote4, 0x18}});

    t.push_back({"pppoe_session_ipv6_udp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .pppoe_session(0x0101)
                     .ipv6(v6(kRemote6, kHost6))
                     .udp({.sport = 443, .dport = 40010})
                     .payload(200)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 6 + 2 + 40 + 8 + 200, 40 + 8 + 200, 8 + 200, 200},
                 FlowExpect{NT_AF_INET6, kUdp, 443, 40010, kRemote6, kHost6}});

    // PADI: Service-Name (empty) + Host-Uniq (4) tags, 14 + 6 + 12 = 32, padded to 60.
    t.push_back({"pppoe_discovery_padi",
                 PacketBuilder()
                     .eth(kBroadcast, kHostMac)
                     .pppoe_discovery(
                         0x09, 0, {0x01, 0x01, 0x00, 0x00, 0x01, 0x03, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef})
                     .pad_to(60)
                     .build(),
                 Prog::IngressLan,
                 {1, 60, 0, 0, 0},
                 kNonIp});

    // LCP echo request inside a PPPoE session: 14 + 8 + 8 = 30, padded to 60.
    t.push_back({"ppp_lcp_echo_request",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .pppoe_session(0x0101)
                     .ppp_lcp(9, 1, {0x12, 0x34, 0x56, 0x78})
                     .pad_to(60)
                     .build(),
                 Prog::EgressWan,
                 {1, 60, 0, 0, 0},
                 kNonIp});
}

// Other link-layer protocols: not IP.
void add_other_l2_rows(std::vector<Row>& t) {
    const nt_bucket kNonIp = NT_BUCKET_NON_IP;

    t.push_back(
        {"arp_request",
         PacketBuilder()
             .eth(kBroadcast, kHostMac)
             .arp({.op = 1, .sha = kHostMac, .spa = parse_ipv4(kHost4), .tha = {}, .tpa = parse_ipv4(kGw4)})
             .pad_to(60)
             .build(),
         Prog::IngressLan,
         {1, 60, 0, 0, 0},
         kNonIp});

    // Chassis ID (9) + Port ID (9) + TTL (4) + End (2) = 24; 14 + 24 = 38, padded to 60.
    t.push_back(
        {"lldp",
         PacketBuilder().eth(parse_mac("01:80:c2:00:00:0e"), kHostMac).lldp(kHostMac).pad_to(60).build(),
         Prog::IngressLan,
         {1, 60, 0, 0, 0},
         kNonIp});
}

// Frames that end inside a header.
void add_truncated_rows(std::vector<Row>& t) {
    const nt_bucket kUnparsable = NT_BUCKET_UNPARSABLE;

    t.push_back({"runt_10_bytes",
                 PacketBuilder().eth(kGwMac, kHostMac, kEthPIpv4).truncate_to(10).build(),
                 Prog::IngressWan,
                 {1, 10, 0, 0, 0},
                 kUnparsable,
                 std::nullopt,
                 std::nullopt,
                 "BPF_PROG_TEST_RUN refuses skb data shorter than ETH_HLEN (14) with EINVAL "
                 "(net/bpf/test_run.c), so a 10-byte runt cannot be injected this way; "
                 "row vlan_tag_missing_14_bytes covers the shortest frame it accepts"});

    // TPID 0x8100 with the tag itself missing: the shortest frame test_run accepts.
    t.push_back({"vlan_tag_missing_14_bytes",
                 PacketBuilder().eth(kGwMac, kHostMac, kEthP8021Q).build(),
                 Prog::IngressWan,
                 {1, 14, 0, 0, 0},
                 kUnparsable});

    // IPv4 header cut after 10 of its 20 bytes.
    t.push_back({"ipv4_truncated_header",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .udp({.sport = 40017, .dport = 53})
                     .payload(10)
                     .truncate_to(14 + 10)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 10, 0, 0, 0},
                 kUnparsable,
                 std::nullopt,
                 std::nullopt,
                 "this kernel's BPF_PROG_TEST_RUN returns EINVAL for an untagged ETH_P_IP frame with "
                 "fewer than 20 bytes after the Ethernet header (and ETH_P_IPV6 with fewer than 40): "
                 "it wants the network header in the test skb; row vlan_ipv4_truncated_header puts "
                 "the same cut header behind an 802.1Q tag, which the kernel does not look into"});

    // The same cut IPv4 header behind an 802.1Q tag, where test_run lets it through.
    t.push_back({"vlan_ipv4_truncated_header",
                 PacketBuilder()
                     .eth(kGwMac, kHostMac)
                     .vlan(100)
                     .ipv4(v4(kHost4, kRemote4))
                     .udp({.sport = 40017, .dport = 53})
                     .payload(10)
                     .truncate_to(14 + 4 + 10)
                     .build(),
                 Prog::IngressLan,
                 {1, 14 + 4 + 10, 0, 0, 0},
                 kUnparsable});

    // IPv6 header cut after 30 of its 40 bytes, behind a tag for the same reason.
    t.push_back({"vlan_ipv6_truncated_header",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .vlan(100)
                     .ipv6(v6(kRemote6, kHost6))
                     .udp({.sport = 53, .dport = 40024})
                     .payload(10)
                     .truncate_to(14 + 4 + 30)
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 4 + 30, 0, 0, 0},
                 kUnparsable});

    // ICMP with only 4 of its 8 header bytes inside the datagram.
    t.push_back({"icmp_truncated_header",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4, [](Ipv4Opts& o) { o.protocol = kIcmp; }))
                     .bytes({8, 0, 0, 0})
                     .build(),
                 Prog::IngressWan,
                 {1, 14 + 20 + 4, 0, 0, 0},
                 kUnparsable});
}

// Frames above the MTU.
void add_large_rows(std::vector<Row>& t) {
    // 14 + 20 + 20 + 8946 = 9000.
    t.push_back({"jumbo_9000_ipv4_tcp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4))
                     .tcp({.sport = 443, .dport = 40012, .flags = kTcpAck})
                     .payload(8946)
                     .build(),
                 Prog::IngressWan,
                 {1, 9000, 20 + 20 + 8946, 20 + 8946, 8946},
                 FlowExpect{NT_AF_INET, kTcp, 443, 40012, kRemote4, kHost4, 0x10},
                 std::nullopt,
                 std::nullopt,
                 "BPF_PROG_TEST_RUN builds a linear skb inside one page: data_size_in may be at most "
                 "PAGE_SIZE - NET_SKB_PAD - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) (3712 on "
                 "this x86-64 kernel) and this kernel has no way to ask for paged data, so a 9000-byte "
                 "frame is refused; row large_3700_ipv4_tcp runs the largest frame it accepts"});

    // Well above the 1500-byte MTU, just under the test_run limit: 14 + 20 + 20 + 3646 = 3700.
    t.push_back({"large_3700_ipv4_tcp",
                 PacketBuilder()
                     .eth(kWanOurMac, kWanPeerMac)
                     .ipv4(v4(kRemote4, kHost4))
                     .tcp({.sport = 443, .dport = 40025, .flags = kTcpAck})
                     .payload(3646)
                     .build(),
                 Prog::IngressWan,
                 {1, 3700, 20 + 20 + 3646, 20 + 3646, 3646},
                 FlowExpect{NT_AF_INET, kTcp, 443, 40025, kRemote4, kHost4, 0x10}});
}

// GSO/GRO: every wire segment with its own headers.
void add_gso_rows(std::vector<Row>& t) {
    // TSO super-packet: 3000 bytes of TCP payload, gso_size 1000, gso_segs 3. On the wire:
    // 3 segments of 14 + 20 + 20 + 1000.
    t.push_back({"gso_tcp4_3x1000",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .tcp({.sport = 40013, .dport = 443, .flags = kTcpAck | kTcpPsh})
                     .payload(3000)
                     .build(),
                 Prog::EgressWan,
                 {3, 3 * (14 + 20 + 20 + 1000), 3 * (20 + 20 + 1000), 3 * (20 + 1000), 3000},
                 FlowExpect{NT_AF_INET, kTcp, 40013, 443, kHost4, kRemote4, 0x18},
                 std::nullopt,
                 SkbCtx{.gso_segs = 3, .gso_size = 1000}});

    // Untrusted GSO (SKB_GSO_DODGY: a tap or virtio-net sender) leaves gso_segs 0: the segments
    // are derived from gso_size, 3000 / 1000 = 3, with the same figures as above.
    t.push_back({"gso_tcp4_untrusted_segs_0",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .tcp({.sport = 40014, .dport = 443, .flags = kTcpAck | kTcpPsh})
                     .payload(3000)
                     .build(),
                 Prog::EgressWan,
                 {3, 3 * (14 + 20 + 20 + 1000), 3 * (20 + 20 + 1000), 3 * (20 + 1000), 3000},
                 FlowExpect{NT_AF_INET, kTcp, 40014, 443, kHost4, kRemote4, 0x18},
                 std::nullopt,
                 SkbCtx{.gso_segs = 0, .gso_size = 1000}});

    // IPv6 TSO with timestamps and a short tail: 1448 + 1448 + 500 = 3396 bytes of payload,
    // 3 segments of 14 + 40 + 32 bytes of headers each.
    t.push_back(
        {"gso_tcp6_ts_3segs_short_tail",
         PacketBuilder()
             .eth(kHostMac, kGwMac)
             .ipv6(v6(kRemote6, kHost6))
             .tcp({.sport = 443, .dport = 40022, .flags = kTcpAck, .options = tcp_timestamp_option(5, 6)})
             .payload(3396)
             .build(),
         Prog::EgressLan,
         {3, 3 * (14 + 40 + 32) + 3396, 3 * (40 + 32) + 3396, 3 * 32 + 3396, 3396},
         FlowExpect{NT_AF_INET6, kTcp, 443, 40022, kRemote6, kHost6, 0x10},
         HostExpect{kHostMac, kHost6},
         SkbCtx{.gso_segs = 3, .gso_size = 1448}});
}

// BIG TCP (IP length 0) and UDP GSO.
void add_big_tcp_udp_gso_rows(std::vector<Row>& t) {
    // BIG TCP: IPv4 total length 0 in a GSO skb, the length lives in the skb only. Same wire
    // figures as gso_tcp4_3x1000.
    t.push_back({"gso_big_tcp4_tot_len_0",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4, [](Ipv4Opts& o) { o.tot_len = 0; }))
                     .tcp({.sport = 40028, .dport = 443, .flags = kTcpAck})
                     .payload(3000)
                     .build(),
                 Prog::EgressWan,
                 {3, 3 * (14 + 20 + 20 + 1000), 3 * (20 + 20 + 1000), 3 * (20 + 1000), 3000},
                 FlowExpect{NT_AF_INET, kTcp, 40028, 443, kHost4, kRemote4, 0x10},
                 std::nullopt,
                 SkbCtx{.gso_segs = 3, .gso_size = 1000}});

    // BIG TCP over IPv6: payload length 0.
    t.push_back({"gso_big_tcp6_payload_len_0",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv6(v6(kHost6, kRemote6, [](Ipv6Opts& o) { o.payload_len = 0; }))
                     .tcp({.sport = 40029, .dport = 443, .flags = kTcpAck})
                     .payload(3000)
                     .build(),
                 Prog::EgressWan,
                 {3, 3 * (14 + 40 + 20 + 1000), 3 * (40 + 20 + 1000), 3 * (20 + 1000), 3000},
                 FlowExpect{NT_AF_INET6, kTcp, 40029, 443, kHost6, kRemote6, 0x10},
                 std::nullopt,
                 SkbCtx{.gso_segs = 3, .gso_size = 1000}});

    // UDP GSO: 3 datagrams of 1200 bytes, 3 × (14 + 20 + 8) of headers on the wire.
    t.push_back({"gso_udp4_3x1200",
                 PacketBuilder()
                     .eth(kWanPeerMac, kWanOurMac)
                     .ipv4(v4(kHost4, kRemote4))
                     .udp({.sport = 40023, .dport = 443})
                     .payload(3600)
                     .build(),
                 Prog::EgressWan,
                 {3, 3 * (14 + 20 + 8) + 3600, 3 * (20 + 8) + 3600, 3 * 8 + 3600, 3600},
                 FlowExpect{NT_AF_INET, kUdp, 40023, 443, kHost4, kRemote4},
                 std::nullopt,
                 SkbCtx{.gso_segs = 3, .gso_size = 1200}});
}

std::vector<Row> rows() {
    std::vector<Row> t;
    add_ipv4_rows(t);
    add_ipv4_options_rows(t);
    add_ipv6_rows(t);
    add_ipv6_ext_header_rows(t);
    add_fragment_rows(t);
    add_vlan_rows(t);
    add_pppoe_rows(t);
    add_other_l2_rows(t);
    add_truncated_rows(t);
    add_length_field_rows(t);
    add_header_length_rows(t);
    add_large_rows(t);
    add_gso_rows(t);
    add_big_tcp_udp_gso_rows(t);
    return t;
}

// ---------------------------------------------------------------------------------------
// Running

struct RunResult {
    int err = 0; // 0 or errno
    uint32_t retval = 0;
    std::vector<uint8_t> data_out;
};

RunResult test_run(bpf_program* prog, const std::vector<uint8_t>& frame, const std::optional<SkbCtx>& ctx) {
    RunResult r;
    r.data_out.resize(frame.size() + 256);
    __sk_buff skb{};
    // Not LIBBPF_OPTS(): it is a GNU statement expression, which -Wpedantic rejects in C++.
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<__u32>(frame.size());
    opts.data_out = r.data_out.data();
    opts.data_size_out = static_cast<__u32>(r.data_out.size());
    opts.repeat = 1;
    if (ctx) {
        skb.gso_segs = ctx->gso_segs;
        skb.gso_size = ctx->gso_size;
        opts.ctx_in = &skb;
        opts.ctx_size_in = sizeof(skb);
    }
    if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) != 0) {
        r.err = errno;
        return r;
    }
    r.retval = opts.retval;
    r.data_out.resize(opts.data_size_out);
    return r;
}

// A suite's shared skeleton: loaded once in SetUpTestSuite when BPF can be used here.
void load_shared(SharedSkeleton<nettally_bpf>& shared) {
    if (bpf_unavailable_reason().empty())
        shared.load(open_datapath_object, nettally_bpf__load, nettally_bpf__destroy);
}

template <size_t N>
void expect_addr(const __u32 (&got)[N], const char* text, uint8_t family, const std::string& label) {
    uint8_t want[16] = {};
    if (family == NT_AF_INET) {
        const Ipv4Addr a = parse_ipv4(text);
        std::memcpy(want, a.data(), 4);
    } else {
        const Ipv6Addr a = parse_ipv6(text);
        std::memcpy(want, a.data(), 16);
    }
    EXPECT_EQ(0, std::memcmp(got, want, 16)) << label << " (want " << text << ")";
}

class ParserFixture : public ::testing::TestWithParam<Row> {
protected:
    static void SetUpTestSuite() { load_shared(shared_); }
    static void TearDownTestSuite() { shared_.release(); }
    void SetUp() override {
        if (const std::string& why = bpf_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        skel_ = shared_.fresh();
        ASSERT_TRUE(skel_) << "the table's skeleton";
    }
    static SharedSkeleton<nettally_bpf> shared_;
    nettally_bpf* skel_ = nullptr;
};
SharedSkeleton<nettally_bpf> ParserFixture::shared_;

TEST_P(ParserFixture, CountsOneCategory) {
    const Row& row = GetParam();
    const std::string& n = row.name;
    nettally_bpf* const skel = skel_;

    const RunResult run = test_run(prog_of(skel, row.prog), row.frame, row.ctx);
    if (run.err == EINVAL && row.refusal_note)
        GTEST_SKIP() << n << ": " << row.refusal_note << " [kernel said: " << std::strerror(run.err) << "]";
    ASSERT_EQ(run.err, 0) << n << " bpf_prog_test_run_opts(" << prog_name(row.prog) << ", "
                          << row.frame.size() << " bytes): " << std::strerror(run.err);
    EXPECT_EQ(run.retval, 0xFFFFFFFFu) << n << " return code (TC_ACT_UNSPEC)";

    // Interface: exactly one entry, for the program's direction, on the test-run device.
    const unsigned lo = if_nametoindex("lo");
    ASSERT_NE(lo, 0u) << n << " loopback ifindex";
    const auto ifaces = dump_percpu<nt_iface_key, nt_iface_val>(skel->maps.nt_ifaces);
    ASSERT_EQ(ifaces.size(), 1u) << n << " nt_ifaces entries";
    const nt_iface_key ik = ifaces[0].key;
    EXPECT_EQ(ik.ifindex, lo) << n << " ifindex is the netns loopback (test-run device)";
    EXPECT_EQ(ik.dir, dir_of(row.prog)) << n << " direction";
    const IfaceSum iv = sum(ifaces[0].per_cpu);
    expect_counts(iv.total, row.expect, n + " total");
    EXPECT_EQ(iv.host_overflow, 0u) << n << " host_overflow";

    // Exactly one category moved.
    const auto flows = dump_percpu<nt_flow_key, nt_flow_val>(skel->maps.nt_flows);
    const FlowExpect* fe = std::get_if<FlowExpect>(&row.into);
    for (int b = 0; b < NT_BUCKET_MAX; b++) {
        const bool expected = !fe && std::get<nt_bucket>(row.into) == b;
        expect_counts(iv.bucket[b], expected ? row.expect : kZero, n + " bucket " + bucket_name(b));
    }
    if (fe) {
        ASSERT_EQ(flows.size(), 1u) << n << " nt_flows entries";
        const nt_flow_key& k = flows[0].key;
        EXPECT_EQ(k.ifindex, ik.ifindex) << n << " flow ifindex";
        EXPECT_EQ(k.dir, dir_of(row.prog)) << n << " flow dir";
        EXPECT_EQ(k.family, fe->family) << n << " flow family";
        EXPECT_EQ(k.proto, fe->proto) << n << " flow proto";
        EXPECT_EQ(k.sport, fe->sport) << n << " flow sport";
        EXPECT_EQ(k.dport, fe->dport) << n << " flow dport";
        EXPECT_EQ(k.pad, 0) << n << " flow key pad";
        expect_addr(k.src, fe->src, fe->family, n + " flow src");
        expect_addr(k.dst, fe->dst, fe->family, n + " flow dst");
        const FlowSum fv = sum(flows[0].per_cpu);
        expect_counts(fv.c, row.expect, n + " flow");
        EXPECT_EQ(fv.tcp_flags, fe->tcp_flags) << n << " flow tcp_flags";
        EXPECT_TRUE(fv.stamped) << n << " flow first_ns/last_ns";
    } else {
        EXPECT_EQ(flows.size(), 0u) << n << " nt_flows entries (bucketed packet)";
    }

    // Reconciliation: total == sum(flows) + sum(buckets).
    nt_counts parts{};
    for (const auto& f : flows)
        parts += sum(f.per_cpu).c;
    for (const auto& b : iv.bucket)
        parts += b;
    expect_counts(iv.total, parts, n + " reconciliation total vs flows+buckets");

    // Hosts: lan only; the source on ingress (sent), the unicast destination on egress (received).
    const auto hosts = dump_percpu<nt_host_key, nt_host_val>(skel->maps.nt_hosts);
    if (row.host) {
        ASSERT_TRUE(is_lan(row.prog) && fe)
            << n << " table error: host expected on a non-lan or non-flow row";
        ASSERT_EQ(hosts.size(), 1u) << n << " nt_hosts entries";
        const nt_host_key& hk = hosts[0].key;
        EXPECT_EQ(hk.ifindex, ik.ifindex) << n << " host ifindex";
        EXPECT_EQ(hk.family, fe->family) << n << " host family";
        EXPECT_EQ(hk.pad, 0) << n << " host key pad";
        EXPECT_EQ(0, std::memcmp(hk.mac, row.host->mac.data(), 6)) << n << " host mac";
        expect_addr(hk.addr, row.host->ip, fe->family, n + " host addr");
        const HostSum hv = sum(hosts[0].per_cpu);
        const bool ingress = dir_of(row.prog) == NT_DIR_INGRESS;
        expect_counts(hv.sent, ingress ? row.expect : kZero, n + " host sent");
        expect_counts(hv.received, ingress ? kZero : row.expect, n + " host received");
    } else {
        EXPECT_EQ(hosts.size(), 0u) << n << " nt_hosts entries";
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParserFixture, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------
// Row-independent checks

class ParserProgram : public ::testing::Test {
protected:
    static void SetUpTestSuite() { load_shared(shared_); }
    static void TearDownTestSuite() { shared_.release(); }
    void SetUp() override {
        if (const std::string& why = bpf_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        skel_ = shared_.fresh();
        ASSERT_TRUE(skel_) << "the suite's skeleton";
    }
    static SharedSkeleton<nettally_bpf> shared_;
    nettally_bpf* skel_ = nullptr;
};
SharedSkeleton<nettally_bpf> ParserProgram::shared_;

// Every program returns TC_ACT_UNSPEC (-1, reported by test_run as u32 0xffffffff) and
// leaves the packet as it was, whatever the frame.
TEST_F(ParserProgram, AlwaysReturnsTcActUnspecAndLeavesPacketAlone) {
    nettally_bpf* const skel = skel_;
    const std::vector<std::pair<const char*, std::vector<uint8_t>>> frames = {
        {"ipv4_tcp", PacketBuilder()
                         .eth(kGwMac, kHostMac)
                         .ipv4(v4(kHost4, kRemote4))
                         .tcp({.sport = 1, .dport = 2})
                         .payload(10)
                         .build()},
        {"arp",
         PacketBuilder()
             .eth(kBroadcast, kHostMac)
             .arp({.op = 1, .sha = kHostMac, .spa = parse_ipv4(kHost4), .tha = {}, .tpa = parse_ipv4(kGw4)})
             .pad_to(60)
             .build()},
        {"tag_missing_14", PacketBuilder().eth(kGwMac, kHostMac, kEthP8021Q).build()},
        {"garbage_64", std::vector<uint8_t>(64, 0xA5)},
    };
    for (Prog p : {Prog::IngressLan, Prog::EgressLan, Prog::IngressWan, Prog::EgressWan}) {
        for (const auto& [what, frame] : frames) {
            const std::string label = std::string(prog_name(p)) + " " + what;
            const RunResult r = test_run(prog_of(skel, p), frame, std::nullopt);
            ASSERT_EQ(r.err, 0) << label << " test_run: " << std::strerror(r.err);
            EXPECT_EQ(r.retval, 0xFFFFFFFFu) << label << " retval";
            EXPECT_EQ(r.data_out, frame) << label << " data_out unchanged";
        }
    }
}

// The same flow twice: the second packet takes the lookup-and-add path, not the create path.
TEST_F(ParserProgram, SecondPacketOfAFlowAddsToTheSameEntries) {
    nettally_bpf* const skel = skel_;
    const std::vector<uint8_t> frame = PacketBuilder()
                                           .eth(kGwMac, kHostMac)
                                           .ipv4(v4(kHost4, kRemote4))
                                           .tcp({.sport = 40000, .dport = 443, .flags = kTcpSyn})
                                           .payload(100)
                                           .build();
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(test_run(skel->progs.nt_tc_ingress_lan, frame, std::nullopt).err, 0) << "run " << i;

    const nt_counts want{2, 2 * (14 + 20 + 20 + 100), 2 * (20 + 20 + 100), 2 * (20 + 100), 2 * 100};
    const auto ifaces = dump_percpu<nt_iface_key, nt_iface_val>(skel->maps.nt_ifaces);
    ASSERT_EQ(ifaces.size(), 1u) << "nt_ifaces entries";
    expect_counts(sum(ifaces[0].per_cpu).total, want, "total");
    const auto flows = dump_percpu<nt_flow_key, nt_flow_val>(skel->maps.nt_flows);
    ASSERT_EQ(flows.size(), 1u) << "nt_flows entries";
    expect_counts(sum(flows[0].per_cpu).c, want, "flow");
    EXPECT_EQ(sum(flows[0].per_cpu).tcp_flags, kTcpSyn) << "flow tcp_flags";
    const auto hosts = dump_percpu<nt_host_key, nt_host_val>(skel->maps.nt_hosts);
    ASSERT_EQ(hosts.size(), 1u) << "nt_hosts entries";
    expect_counts(sum(hosts[0].per_cpu).sent, want, "host sent");
    expect_counts(sum(hosts[0].per_cpu).received, kZero, "host received");
}

// With room for one flow and one host, a second flow from a second host goes to the
// flow-overflow bucket, and its host miss is reported in host_overflow.
TEST_F(ParserProgram, FullMapsOverflowIntoBucketAndHostOverflow) {
    Skel skel(open_datapath_object());
    ASSERT_TRUE(skel) << "nettally_bpf__open: " << std::strerror(errno);
    ASSERT_EQ(bpf_map__set_max_entries(skel->maps.nt_flows, 1), 0) << "resize nt_flows";
    ASSERT_EQ(bpf_map__set_max_entries(skel->maps.nt_hosts, 1), 0) << "resize nt_hosts";
    for (Prog p : {Prog::EgressLan, Prog::IngressWan, Prog::EgressWan})
        bpf_program__set_autoload(prog_of(skel.get(), p), false);
    ASSERT_EQ(nettally_bpf__load(skel.get()), 0) << "nettally_bpf__load";

    const auto frame = [](const char* src, uint16_t sport) {
        return PacketBuilder()
            .eth(kGwMac, kHostMac)
            .ipv4(v4(src, kRemote4))
            .udp({.sport = sport, .dport = 53})
            .payload(10)
            .build();
    };
    ASSERT_EQ(test_run(skel->progs.nt_tc_ingress_lan, frame(kHost4, 40000), std::nullopt).err, 0) << "first";
    ASSERT_EQ(test_run(skel->progs.nt_tc_ingress_lan, frame("192.168.1.11", 40001), std::nullopt).err, 0)
        << "second";

    const nt_counts one{1, 14 + 20 + 8 + 10, 20 + 8 + 10, 8 + 10, 10};
    const nt_counts two{2, 2 * (14 + 20 + 8 + 10), 2 * (20 + 8 + 10), 2 * (8 + 10), 2 * 10};
    const auto ifaces = dump_percpu<nt_iface_key, nt_iface_val>(skel->maps.nt_ifaces);
    ASSERT_EQ(ifaces.size(), 1u) << "nt_ifaces entries";
    const IfaceSum iv = sum(ifaces[0].per_cpu);
    expect_counts(iv.total, two, "total");
    expect_counts(iv.bucket[NT_BUCKET_FLOW_OVERFLOW], one, "flow_overflow bucket");
    expect_counts(iv.bucket[NT_BUCKET_NON_IP], kZero, "non_ip bucket");
    expect_counts(iv.bucket[NT_BUCKET_UNPARSABLE], kZero, "unparsable bucket");
    EXPECT_EQ(iv.host_overflow, 1u) << "host_overflow";
    const auto flows = dump_percpu<nt_flow_key, nt_flow_val>(skel->maps.nt_flows);
    ASSERT_EQ(flows.size(), 1u) << "nt_flows entries";
    EXPECT_EQ(flows[0].key.sport, 40000) << "the first flow kept its entry";
    expect_counts(sum(flows[0].per_cpu).c, one, "flow");
    nt_counts parts = sum(flows[0].per_cpu).c;
    for (const auto& b : iv.bucket)
        parts += b;
    expect_counts(iv.total, parts, "reconciliation total vs flows+buckets");
}

// Subscribers: a packet of a bound address counts for its user (nt_bindings, an LPM trie:
// an IPv4 /32 and an IPv6 /64), every other host packet for NT_USER_UNBOUND, and per
// direction the users add up to the hosts. Broadcast egress (no host) and wan packets
// count for no user; with nt_users_on 0 no user entry is made at all.
TEST_F(ParserProgram, BoundAddressCountsForItsUser) {
    nettally_bpf* const skel = skel_;
    const auto bind = [&](uint8_t family, const char* addr, uint32_t len, uint32_t user) {
        nt_bind_key k{};
        k.prefixlen = NT_BIND_KEY_BITS + len;
        k.family = family;
        if (family == NT_AF_INET) {
            const auto a = parse_ipv4(addr);
            std::memcpy(k.addr, a.data(), a.size());
        } else {
            const auto a = parse_ipv6(addr);
            std::memcpy(k.addr, a.data(), a.size());
        }
        const nt_bind_val v{user, 0};
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.nt_bindings), &k, &v, BPF_ANY), 0)
            << "bind " << addr << "/" << len << ": " << std::strerror(errno);
    };
    bind(NT_AF_INET, kHost4, 32, 5);
    bind(NT_AF_INET6, "2001:db8:1::", 64, 6);
    const auto udp4 = [](const Mac& dmac, const Mac& smac, const char* src, const char* dst, unsigned n) {
        return PacketBuilder()
            .eth(dmac, smac)
            .ipv4(v4(src, dst))
            .udp({.sport = 4000, .dport = 53})
            .payload(n)
            .build();
    };
    const auto udp6 = [](const Mac& dmac, const Mac& smac, const char* src, const char* dst, unsigned n) {
        return PacketBuilder()
            .eth(dmac, smac)
            .ipv6(v6(src, dst))
            .udp({.sport = 4000, .dport = 53})
            .payload(n)
            .build();
    };
    const auto run = [&](Prog p, const std::vector<uint8_t>& frame) {
        ASSERT_EQ(test_run(prog_of(skel, p), frame, std::nullopt).err, 0) << prog_name(p);
    };
    const auto counts4 = [](unsigned n) { return nt_counts{1, 14 + 20 + 8 + n, 20 + 8 + n, 8 + n, n}; };
    const auto counts6 = [](unsigned n) { return nt_counts{1, 14 + 40 + 8 + n, 40 + 8 + n, 8 + n, n}; };

    // Off (the default): nothing per user.
    run(Prog::IngressLan, udp4(kGwMac, kHostMac, kHost4, kRemote4, 10));
    EXPECT_TRUE((dump_percpu<nt_user_key, nt_user_val>(skel->maps.nt_user_counts).empty()))
        << "user entries while nt_users_on is 0";

    skel->bss->nt_users_on = 1;
    skel->bss->nt_bind_serial = 1; // as nettallyd does when it turns counting on
    run(Prog::IngressLan, udp4(kGwMac, kHostMac, kHost4, kRemote4, 100));           // user 5 sent
    run(Prog::EgressLan, udp4(kHostMac, kGwMac, kRemote4, kHost4, 200));            // user 5 received
    run(Prog::IngressLan, udp4(kGwMac, kHostMac, "192.168.1.11", kRemote4, 300));   // unbound sent
    run(Prog::IngressLan, udp6(kGwMac, kHostMac, "2001:db8:1::99", kRemote6, 400)); // user 6 sent
    run(Prog::EgressLan, udp6(kHostMac, kGwMac, kRemote6, kHost6, 500));            // user 6 received
    run(Prog::EgressLan, udp6(kHostMac, kGwMac, kRemote6, "2001:db8:2::1", 600));   // unbound received
    run(Prog::EgressLan, udp4(kBroadcast, kGwMac, kGw4, "192.168.1.255", 700));     // no host: no user
    run(Prog::IngressWan, udp4(kWanOurMac, kWanPeerMac, kRemote4, kHost4, 800));    // wan: no user

    std::map<uint32_t, std::pair<nt_counts, nt_counts>> users;
    nt_counts user_sent{}, user_received{};
    uint32_t ifindex = 0;
    for (const auto& e : dump_percpu<nt_user_key, nt_user_val>(skel->maps.nt_user_counts)) {
        auto& [sent, received] = users[e.key.user];
        for (const auto& v : e.per_cpu) {
            sent += v.sent;
            received += v.received;
            user_sent += v.sent;
            user_received += v.received;
        }
        ifindex = e.key.ifindex;
    }
    ASSERT_EQ(users.size(), 3u) << "entries: user 5, user 6, unbound";
    expect_counts(users[5].first, counts4(100), "user 5 sent");
    expect_counts(users[5].second, counts4(200), "user 5 received");
    expect_counts(users[6].first, counts6(400), "user 6 sent (prefix)");
    expect_counts(users[6].second, counts6(500), "user 6 received (prefix)");
    expect_counts(users[NT_USER_UNBOUND].first, counts4(300), "unbound sent");
    expect_counts(users[NT_USER_UNBOUND].second, counts6(600), "unbound received");

    // Σ users + unbound == Σ hosts, per direction (the first, uncounted run is in the hosts: take it out).
    nt_counts host_sent{}, host_received{};
    for (const auto& e : dump_percpu<nt_host_key, nt_host_val>(skel->maps.nt_hosts)) {
        if (e.key.ifindex != ifindex)
            continue;
        const HostSum hs = sum(e.per_cpu);
        host_sent += hs.sent;
        host_received += hs.received;
    }
    nt_counts want_sent = user_sent;
    want_sent += counts4(10);
    expect_counts(host_sent, want_sent, "hosts sent == users sent + the run before nt_users_on");
    expect_counts(host_received, user_received, "hosts received == users received");
    std::vector<nt_user_val> overflow(static_cast<size_t>(libbpf_num_possible_cpus()));
    const uint32_t zero = 0;
    ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel->maps.nt_user_overflow), &zero, overflow.data()), 0);
    for (const auto& v : overflow)
        EXPECT_EQ(v.sent.packets + v.received.packets, 0u) << "user overflow";
}

// The host entry caches its user under nt_bind_serial: a re-bound address counts for the new
// user from the first packet after the serial moves (nettallyd moves it right after every
// change of nt_bindings), and the cached user only while it has not moved.
TEST_F(ParserProgram, RebindTakesEffectWhenTheSerialMoves) {
    nettally_bpf* const skel = skel_;
    const auto bind = [&](uint32_t user) {
        nt_bind_key k{};
        k.prefixlen = NT_BIND_KEY_BITS + 32;
        k.family = NT_AF_INET;
        const auto a = parse_ipv4(kHost4);
        std::memcpy(k.addr, a.data(), a.size());
        const nt_bind_val v{user, 0};
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.nt_bindings), &k, &v, BPF_ANY), 0);
    };
    const auto send = [&](unsigned n) {
        const auto frame = PacketBuilder()
                               .eth(kGwMac, kHostMac)
                               .ipv4(v4(kHost4, kRemote4))
                               .udp({.sport = 4000, .dport = 53})
                               .payload(n)
                               .build();
        ASSERT_EQ(test_run(prog_of(skel, Prog::IngressLan), frame, std::nullopt).err, 0);
    };
    const auto packets_of = [&]() {
        std::map<uint32_t, uint64_t> out;
        for (const auto& e : dump_percpu<nt_user_key, nt_user_val>(skel->maps.nt_user_counts))
            for (const auto& v : e.per_cpu)
                out[e.key.user] += v.sent.packets;
        return out;
    };
    skel->bss->nt_users_on = 1;
    skel->bss->nt_bind_serial = 41;
    bind(5);
    send(10); // creates the host entry (user looked up, not cached)
    send(10); // looks up and caches user 5 under serial 41
    send(10); // from the cache
    EXPECT_EQ(packets_of(), (std::map<uint32_t, uint64_t>{{5, 3}}));

    bind(7); // the trie changed, the serial not yet: the cache still answers (so it is used)
    send(10);
    EXPECT_EQ(packets_of(), (std::map<uint32_t, uint64_t>{{5, 4}}));
    skel->bss->nt_bind_serial = 42; // nettallyd's next_bind_serial()
    send(10);
    send(10);
    EXPECT_EQ(packets_of(), (std::map<uint32_t, uint64_t>{{5, 4}, {7, 2}}));
}

} // namespace
} // namespace nettally::test
