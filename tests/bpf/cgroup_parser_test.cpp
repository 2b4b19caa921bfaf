// The cgroup_skb fixture table: crafted packets run once through nt_cg_ingress or
// nt_cg_egress (bpf/cgroup.bpf.c) with BPF_PROG_TEST_RUN, then the per-CPU maps are read
// back and compared with figures worked out by hand (DESIGN.md "Layers"; no l2 at these
// hooks, so l2 is 0 everywhere).
//
// What test_run gives a cgroup_skb program (net/bpf/test_run.c, bpf_prog_test_run_skb):
//   - data_in is an Ethernet frame; eth_type_trans() pulls the 14-byte header and sets
//     skb->protocol, so the program sees the packet from the IP header on, as at the real
//     hooks. The rows build a frame with eth() for that reason only.
//   - skb->sk is a socket-less dummy created by the test runner: bpf_skb_cgroup_id() is the
//     cgroup of the running test process, its ancestor at level 0 the cgroup v2 root (id 1),
//     and bpf_get_netns_cookie() the runner's network namespace.
//   - skb->dev is lo unless ctx_in names another device; ingress_ifindex comes from ctx_in.
//     The table runs in a private network namespace with a veth pair, so "an interface
//     other than lo" exists without touching the host's links.
//   - gso_segs/gso_size in ctx_in reach skb_shinfo, as for TC: GSO rows work.
//
// Per row, the skeleton loaded with the row's netns filter and map size (one load per such
// configuration, shared by its rows, every map reset to its state after the load:
// shared_object.h), the tracked subtrees the row asks for, one run. A netns-filter row where the
// kernel has no bpf_get_netns_cookie for cgroup_skb (before 6.15) cannot load; it reports SKIPPED
// with the fallback nettallyd takes there (cookie 0, every namespace: the other rows). Then: the direction's
// total equals the expected counts (the other direction's is zero); exactly one category moved (the cgroup's
// entry in that direction, or one bucket); total == entries + buckets; nt_cg_busy is back to 0; the program
// returned 1.
#include "bpf_test_util.h"
#include "packet_builder.h"
#include "shared_object.h"

#include "nettally_abi.h"
#include "nettally_cg.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace nettally::test {
namespace {

// ---------------------------------------------------------------------------------------
// Environment: a private network namespace with a veth pair, entered around each run

constexpr const char* kVeth = "ntcgt0";
constexpr uint64_t kRootCgroupId = 1; // cgroup v2 root: kernfs node id 1

struct TestNetns {
    int orig = -1;
    int ns = -1;
    unsigned ifindex = 0;
    uint64_t cookie = 0;
    std::string error;
};

uint64_t netns_cookie() {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (s < 0 || getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
        cookie = 0;
    if (s >= 0)
        close(s);
    return cookie;
}

// Created once per process; the test process itself stays in its own namespace
// except inside NetnsScope.
const TestNetns& test_netns() {
    static const TestNetns t = [] {
        TestNetns r;
        r.orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (r.orig < 0 || unshare(CLONE_NEWNET) != 0) {
            r.error = std::string("cannot create a network namespace: ") + std::strerror(errno);
            return r;
        }
        const std::string cmd =
            std::string("ip link add ") + kVeth + " type veth peer name " + kVeth + "p >/dev/null 2>&1";
        if (std::system(cmd.c_str()) == 0)
            r.ifindex = if_nametoindex(kVeth);
        if (r.ifindex == 0)
            r.error = "cannot create a veth pair in the test network namespace (ip link add ... type veth)";
        r.cookie = netns_cookie();
        r.ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (setns(r.orig, CLONE_NEWNET) != 0)
            std::abort(); // the rest of the process must not run in the test namespace
        return r;
    }();
    return t;
}

// Enters the test namespace for its lifetime (test_run takes the caller's namespace).
class NetnsScope {
public:
    NetnsScope() : ok_(setns(test_netns().ns, CLONE_NEWNET) == 0) {}
    ~NetnsScope() {
        if (ok_ && setns(test_netns().orig, CLONE_NEWNET) != 0)
            std::abort();
    }
    NetnsScope(const NetnsScope&) = delete;
    NetnsScope& operator=(const NetnsScope&) = delete;
    bool ok() const { return ok_; }

private:
    bool ok_;
};

// The cgroup v2 id of this process (what bpf_skb_cgroup_id() returns for test_run's socket),
// from the cgroup2 mount and /proc/self/cgroup; nullopt when it cannot be found out.
std::optional<uint64_t> own_cgroup_id() {
    std::ifstream mi("/proc/self/mountinfo");
    std::string line;
    std::string mnt;
    while (std::getline(mi, line)) {
        const auto dash = line.find(" - ");
        if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0)
            continue;
        std::istringstream f(line);
        std::string id, parent, dev, root;
        f >> id >> parent >> dev >> root >> mnt;
        if (root == "/")
            break;
        mnt.clear();
    }
    std::ifstream cg("/proc/self/cgroup");
    std::string path;
    while (std::getline(cg, line))
        if (line.rfind("0::", 0) == 0)
            path = line.substr(3);
    if (mnt.empty() || path.empty())
        return std::nullopt;
    alignas(file_handle) unsigned char buf[sizeof(file_handle) + 64] = {};
    auto* fh = reinterpret_cast<file_handle*>(buf);
    fh->handle_bytes = 64;
    int mount_id = 0;
    if (name_to_handle_at(AT_FDCWD, (mnt + path).c_str(), fh, &mount_id, 0) != 0 ||
        fh->handle_bytes < sizeof(uint64_t))
        return std::nullopt;
    uint64_t id = 0;
    std::memcpy(&id, fh->f_handle, sizeof(id));
    return id;
}

// ---------------------------------------------------------------------------------------
// The table

// Which cgroups are tracked, and how the row reaches the hook.
enum class Track { Root, Nothing, FullMap };
enum class Netns { All, Ours, Other }; // cfg_netns_cookie: 0, the runner's, another
enum class Dev { Veth, Loopback };

struct Setup {
    Track track = Track::Root;
    Netns netns = Netns::All;
    Dev dev = Dev::Veth;
};

struct Entry {}; // counted in the cgroup's entry

struct Gso {
    uint32_t segs = 0;
    uint32_t size = 0;
};

struct CgRow {
    std::string name;
    std::vector<uint8_t> frame; // Ethernet + packet; the program sees it from the IP header
    uint32_t dir;               // NT_DIR_INGRESS / NT_DIR_EGRESS
    nt_counts expect;           // {packets, l2 (always 0), l3, l4, payload}
    std::variant<Entry, nt_cg_bucket> into;
    Setup setup = {};
    std::optional<Gso> gso = std::nullopt;
    const char* refusal_note = nullptr; // set: EINVAL from test_run reports SKIPPED
};

void PrintTo(const CgRow& r, std::ostream* os) {
    *os << r.name;
}

constexpr uint32_t kIn = NT_DIR_INGRESS;
constexpr uint32_t kOut = NT_DIR_EGRESS;
constexpr nt_cg_bucket kUnparsable = NT_CG_BUCKET_UNPARSABLE;

const Mac kPeerMac = parse_mac("02:00:00:00:02:01");
const Mac kOurMac = parse_mac("02:00:00:00:02:02");
constexpr const char* kUs4 = "198.18.3.2";
constexpr const char* kPeer4 = "198.18.4.2";
constexpr const char* kUs6 = "fd00:3::2";
constexpr const char* kPeer6 = "fd00:4::2";

constexpr uint8_t kUdp = 17;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIgmp = 2;
constexpr uint8_t kNoNext = 59;

// The link-layer header test_run strips before the program runs.
PacketBuilder pkt() {
    return PacketBuilder().eth(kOurMac, kPeerMac);
}

template <typename F = void (*)(Ipv4Opts&)>
Ipv4Opts v4(
    const char* src, const char* dst, F&& tweak = [](Ipv4Opts&) {}) {
    Ipv4Opts o;
    o.src = parse_ipv4(src);
    o.dst = parse_ipv4(dst);
    tweak(o);
    return o;
}

template <typename F = void (*)(Ipv6Opts&)>
Ipv6Opts v6(
    const char* src, const char* dst, F&& tweak = [](Ipv6Opts&) {}) {
    Ipv6Opts o;
    o.src = parse_ipv6(src);
    o.dst = parse_ipv6(dst);
    tweak(o);
    return o;
}

PacketBuilder v6_dstopts(unsigned n) {
    PacketBuilder b = pkt();
    b.ipv6(v6(kPeer6, kUs6));
    for (unsigned i = 0; i < n; i++)
        b.ipv6_dest_opts(0);
    return b;
}

void add_ipv4_rows(std::vector<CgRow>& t) {
    t.push_back({"ipv4_tcp_df",
                 pkt()
                     .ipv4(v4(kUs4, kPeer4, [](Ipv4Opts& o) { o.df = true; }))
                     .tcp({.sport = 40000, .dport = 443, .flags = kTcpAck | kTcpPsh})
                     .payload(100)
                     .build(),
                 kOut,
                 {1, 0, 20 + 20 + 100, 20 + 100, 100},
                 Entry{}});
    t.push_back({"ipv4_tcp_options_12",
                 pkt()
                     .ipv4(v4(kPeer4, kUs4))
                     .tcp({.sport = 443, .dport = 40000, .options = tcp_timestamp_option(1, 2)})
                     .payload(200)
                     .build(),
                 kIn,
                 {1, 0, 20 + 32 + 200, 32 + 200, 200},
                 Entry{}});
    // Record route, 2 slots: 12 bytes of options, IHL 8.
    t.push_back({"ipv4_ip_options_ihl8_udp",
                 pkt()
                     .ipv4(v4(kPeer4, kUs4, [](Ipv4Opts& o) { o.options = ipv4_record_route_option(2); }))
                     .udp({.sport = 53, .dport = 40001})
                     .payload(50)
                     .build(),
                 kIn,
                 {1, 0, 32 + 8 + 50, 8 + 50, 50},
                 Entry{}});
    t.push_back({"ipv4_udp",
                 pkt().ipv4(v4(kUs4, kPeer4)).udp({.sport = 51000, .dport = 53}).payload(512).build(),
                 kOut,
                 {1, 0, 20 + 8 + 512, 8 + 512, 512},
                 Entry{}});
    t.push_back({"ipv4_icmp_echo",
                 pkt().ipv4(v4(kUs4, kPeer4)).icmp(8, 0, 1, 1).payload(56).build(),
                 kOut,
                 {1, 0, 20 + 8 + 56, 8 + 56, 56},
                 Entry{}});
    // IGMP with router alert (IHL 6): no transport header, payload = l4.
    t.push_back({"ipv4_igmp_router_alert_ihl6",
                 pkt()
                     .ipv4(v4(kUs4, "224.0.0.22",
                              [](Ipv4Opts& o) {
                                  o.options = ipv4_router_alert_option();
                                  o.protocol = kIgmp;
                              }))
                     .bytes({0x16, 0, 0, 0, 239, 1, 1, 1})
                     .build(),
                 kOut,
                 {1, 0, 24 + 8, 8, 8},
                 Entry{}});
    // First fragment of a 1508-byte UDP datagram, and its 28-byte tail (payload = l4).
    t.push_back({"ipv4_frag_first_udp",
                 pkt()
                     .ipv4(v4(kUs4, kPeer4, [](Ipv4Opts& o) { o.mf = true; }))
                     .udp({.sport = 51001, .dport = 4500, .length = 1508})
                     .payload(1472)
                     .build(),
                 kOut,
                 {1, 0, 20 + 8 + 1472, 8 + 1472, 1472},
                 Entry{}});
    t.push_back({"ipv4_frag_nonfirst_udp",
                 pkt()
                     .ipv4(v4(kUs4, kPeer4,
                              [](Ipv4Opts& o) {
                                  o.frag_offset = 185;
                                  o.protocol = kUdp;
                              }))
                     .payload(28)
                     .build(),
                 kOut,
                 {1, 0, 20 + 28, 28, 28},
                 Entry{}});
}

void add_ipv6_rows(std::vector<CgRow>& t) {
    t.push_back({"ipv6_tcp",
                 pkt().ipv6(v6(kUs6, kPeer6)).tcp({.sport = 40002, .dport = 443}).payload(1000).build(),
                 kOut,
                 {1, 0, 40 + 20 + 1000, 20 + 1000, 1000},
                 Entry{}});
    t.push_back({"ipv6_udp",
                 pkt().ipv6(v6(kPeer6, kUs6)).udp({.sport = 443, .dport = 40003}).payload(300).build(),
                 kIn,
                 {1, 0, 40 + 8 + 300, 8 + 300, 300},
                 Entry{}});
    t.push_back({"icmpv6_echo",
                 pkt().ipv6(v6(kPeer6, kUs6)).icmpv6(128, 0, 1, 7).payload(56).build(),
                 kIn,
                 {1, 0, 40 + 8 + 56, 8 + 56, 56},
                 Entry{}});
    // Hop-by-hop (8) + dest-opts (16) + SRH with 2 segments (40).
    t.push_back({"ipv6_hbh_dstopts_routing_udp",
                 pkt()
                     .ipv6(v6(kUs6, kPeer6))
                     .ipv6_hop_by_hop(0)
                     .ipv6_dest_opts(1)
                     .ipv6_routing(2)
                     .udp({.sport = 40004, .dport = 4500})
                     .payload(100)
                     .build(),
                 kOut,
                 {1, 0, 40 + 8 + 16 + 40 + 8 + 100, 8 + 100, 100},
                 Entry{}});
    // AH with a 12-byte ICV: 24 bytes.
    t.push_back(
        {"ipv6_ah_tcp",
         pkt().ipv6(v6(kPeer6, kUs6)).ipv6_ah(12).tcp({.sport = 443, .dport = 40005}).payload(50).build(),
         kIn,
         {1, 0, 40 + 24 + 20 + 50, 20 + 50, 50},
         Entry{}});
    t.push_back({"ipv6_frag_first_udp",
                 pkt()
                     .ipv6(v6(kUs6, kPeer6))
                     .ipv6_fragment({.offset = 0, .more = true})
                     .udp({.sport = 4500, .dport = 40006, .length = 1508})
                     .payload(1000)
                     .build(),
                 kOut,
                 {1, 0, 40 + 8 + 8 + 1000, 8 + 1000, 1000},
                 Entry{}});
    t.push_back({"ipv6_frag_nonfirst_udp",
                 pkt()
                     .ipv6(v6(kUs6, kPeer6))
                     .ipv6_fragment({.offset = 126, .next_header = kUdp})
                     .payload(500)
                     .build(),
                 kOut,
                 {1, 0, 40 + 8 + 500, 500, 500},
                 Entry{}});
    t.push_back(
        {"ipv6_no_next_header",
         pkt().ipv6(v6(kPeer6, kUs6, [](Ipv6Opts& o) { o.next_header = kNoNext; })).payload(16).build(),
         kIn,
         {1, 0, 40 + 16, 16, 16},
         Entry{}});
    // NT_MAX_IPV6_EXT_HDRS (8) headers are within the budget, 9 fail closed.
    t.push_back({"ipv6_ext_chain_8_dstopts_within_budget",
                 v6_dstopts(8).udp({.sport = 4500, .dport = 40014}).payload(10).build(),
                 kIn,
                 {1, 0, 40 + 8 * 8 + 8 + 10, 8 + 10, 10},
                 Entry{}});
    t.push_back({"ipv6_ext_chain_9_dstopts_over_budget",
                 v6_dstopts(9).udp({.sport = 4500, .dport = 40015}).payload(10).build(),
                 kIn,
                 {1, 0, 40 + 9 * 8 + 8 + 10, 0, 0},
                 kUnparsable});
}

// Unparsable: only the packets and the bytes handed to the hook (as l3) are counted.
// Here: header and length fields that contradict each other or the packet.
void add_malformed_rows(std::vector<CgRow>& t) {
    t.push_back({"ipv4_ihl_4",
                 pkt()
                     .ipv4(v4(kPeer4, kUs4, [](Ipv4Opts& o) { o.ihl = 4; }))
                     .udp({.sport = 53, .dport = 1})
                     .payload(20)
                     .build(),
                 kIn,
                 {1, 0, 20 + 8 + 20, 0, 0},
                 kUnparsable});
    // skb->protocol says IPv6, the header is version 4.
    t.push_back({"ipv4_packet_under_ipv6_protocol",
                 PacketBuilder()
                     .eth(kOurMac, kPeerMac, kEthPIpv6)
                     .ipv4(v4(kPeer4, kUs4))
                     .udp({.sport = 53, .dport = 1})
                     .payload(20)
                     .build(),
                 kIn,
                 {1, 0, 20 + 8 + 20, 0, 0},
                 kUnparsable});
    t.push_back({"ipv4_tot_len_exceeds_packet",
                 pkt()
                     .ipv4(v4(kPeer4, kUs4, [](Ipv4Opts& o) { o.tot_len = 1500; }))
                     .tcp({.sport = 443, .dport = 2})
                     .payload(100)
                     .build(),
                 kIn,
                 {1, 0, 20 + 20 + 100, 0, 0},
                 kUnparsable});
    t.push_back({"ipv6_payload_len_exceeds_packet",
                 pkt()
                     .ipv6(v6(kPeer6, kUs6, [](Ipv6Opts& o) { o.payload_len = 2000; }))
                     .udp({.sport = 443, .dport = 3})
                     .payload(100)
                     .build(),
                 kIn,
                 {1, 0, 40 + 8 + 100, 0, 0},
                 kUnparsable});
    // IHL 15 (60 bytes) in a total length of 40.
    t.push_back({"ipv4_ihl_exceeds_tot_len",
                 pkt()
                     .ipv4(v4(kPeer4, kUs4,
                              [](Ipv4Opts& o) {
                                  o.options = std::vector<uint8_t>(40, 0x01);
                                  o.tot_len = 40;
                                  o.protocol = kTcp;
                              }))
                     .build(),
                 kIn,
                 {1, 0, 60, 0, 0},
                 kUnparsable});
}

// Headers cut short or longer than the datagram; not IP. Counted as unparsable.
void add_truncated_rows(std::vector<CgRow>& t) {
    t.push_back(
        {"icmp_truncated_header",
         pkt().ipv4(v4(kPeer4, kUs4, [](Ipv4Opts& o) { o.protocol = kIcmp; })).bytes({8, 0, 0, 0}).build(),
         kIn,
         {1, 0, 20 + 4, 0, 0},
         kUnparsable});
    // The packet ends 10 bytes into the TCP header (total length says so too).
    t.push_back({"tcp_header_cut_short",
                 pkt()
                     .ipv4(v4(kUs4, kPeer4, [](Ipv4Opts& o) { o.tot_len = 30; }))
                     .tcp({.sport = 1, .dport = 2})
                     .truncate_to(14 + 30)
                     .build(),
                 kOut,
                 {1, 0, 30, 0, 0},
                 kUnparsable});
    t.push_back(
        {"tcp_doff_4",
         pkt().ipv4(v4(kPeer4, kUs4)).tcp({.sport = 443, .dport = 4, .data_offset = 4}).payload(10).build(),
         kIn,
         {1, 0, 20 + 20 + 10, 0, 0},
         kUnparsable});
    t.push_back(
        {"tcp_doff_exceeds_datagram",
         pkt().ipv4(v4(kPeer4, kUs4)).tcp({.sport = 443, .dport = 5, .data_offset = 15}).payload(10).build(),
         kIn,
         {1, 0, 20 + 20 + 10, 0, 0},
         kUnparsable});
    // A 40-byte dest-opts header in a payload length of 16.
    t.push_back({"ipv6_ext_hdr_exceeds_payload_len",
                 pkt()
                     .ipv6(v6(kPeer6, kUs6, [](Ipv6Opts& o) { o.payload_len = 16; }))
                     .ipv6_dest_opts(4)
                     .udp({.sport = 53, .dport = 6})
                     .payload(10)
                     .build(),
                 kIn,
                 {1, 0, 40 + 40 + 8 + 10, 0, 0},
                 kUnparsable});
    // Not IP: the hooks never see it (inet sockets only), the parser fails it closed.
    t.push_back(
        {"arp_not_ip",
         pkt()
             .arp({.op = 1, .sha = kPeerMac, .spa = parse_ipv4(kPeer4), .tha = {}, .tpa = parse_ipv4(kUs4)})
             .build(),
         kIn,
         {1, 0, 28, 0, 0},
         kUnparsable});
    t.push_back(
        {"ipv4_truncated_header",
         pkt().ipv4(v4(kPeer4, kUs4)).udp({.sport = 53, .dport = 7}).payload(10).truncate_to(14 + 10).build(),
         kIn,
         {1, 0, 10, 0, 0},
         kUnparsable,
         {},
         std::nullopt,
         "BPF_PROG_TEST_RUN wants the whole IPv4 header of an ETH_P_IP frame in the test skb and "
         "returns EINVAL for a shorter one; rows tcp_header_cut_short and icmp_truncated_header "
         "cover a packet that ends inside a header"});
}

// GSO/GRO: every wire segment with its own IP and transport headers.
void add_gso_rows(std::vector<CgRow>& t) {
    const nt_counts tcp4_3x1000{3, 0, 3 * (20 + 20 + 1000), 3 * (20 + 1000), 3000};
    t.push_back({"gso_tcp4_3x1000",
                 pkt().ipv4(v4(kUs4, kPeer4)).tcp({.sport = 40013, .dport = 443}).payload(3000).build(),
                 kOut,
                 tcp4_3x1000,
                 Entry{},
                 {},
                 Gso{3, 1000}});
    // Untrusted GSO (SKB_GSO_DODGY, tap/virtio) leaves gso_segs 0: cut by gso_size, as TC does.
    t.push_back({"gso_tcp4_untrusted_segs_0",
                 pkt().ipv4(v4(kPeer4, kUs4)).tcp({.sport = 443, .dport = 40014}).payload(3000).build(),
                 kIn,
                 tcp4_3x1000,
                 Entry{},
                 {},
                 Gso{0, 1000}});
    // 3000 / 1200 rounds up to 3 segments: 1200 + 1200 + 600.
    t.push_back({"gso_udp6_untrusted_segs_0_short_tail",
                 pkt().ipv6(v6(kPeer6, kUs6)).udp({.sport = 443, .dport = 40030}).payload(3000).build(),
                 kIn,
                 {3, 0, 3 * (40 + 8) + 3000, 3 * 8 + 3000, 3000},
                 Entry{},
                 {},
                 Gso{0, 1200}});
    // 1448 + 1448 + 500 bytes with timestamps: 3 × (40 + 32) of headers.
    t.push_back({"gso_tcp6_ts_3segs_short_tail",
                 pkt()
                     .ipv6(v6(kUs6, kPeer6))
                     .tcp({.sport = 443, .dport = 40022, .options = tcp_timestamp_option(5, 6)})
                     .payload(3396)
                     .build(),
                 kOut,
                 {3, 0, 3 * (40 + 32) + 3396, 3 * 32 + 3396, 3396},
                 Entry{},
                 {},
                 Gso{3, 1448}});
    // BIG TCP: the IP length field is 0, the length lives in the skb only.
    t.push_back({"gso_big_tcp4_tot_len_0",
                 pkt()
                     .ipv4(v4(kUs4, kPeer4, [](Ipv4Opts& o) { o.tot_len = 0; }))
                     .tcp({.sport = 40028, .dport = 443})
                     .payload(3000)
                     .build(),
                 kOut,
                 tcp4_3x1000,
                 Entry{},
                 {},
                 Gso{3, 1000}});
    t.push_back({"gso_big_tcp6_payload_len_0",
                 pkt()
                     .ipv6(v6(kUs6, kPeer6, [](Ipv6Opts& o) { o.payload_len = 0; }))
                     .tcp({.sport = 40029, .dport = 443})
                     .payload(3000)
                     .build(),
                 kOut,
                 {3, 0, 3 * (40 + 20 + 1000), 3 * (20 + 1000), 3000},
                 Entry{},
                 {},
                 Gso{3, 1000}});
    t.push_back({"gso_udp4_3x1200",
                 pkt().ipv4(v4(kUs4, kPeer4)).udp({.sport = 40023, .dport = 443}).payload(3600).build(),
                 kOut,
                 {3, 0, 3 * (20 + 8) + 3600, 3 * 8 + 3600, 3600},
                 Entry{},
                 {},
                 Gso{3, 1200}});
    // Unparsable GSO packet: its gso_segs packets and the bytes handed over, nothing more.
    t.push_back({"gso_tcp4_doff_4_unparsable",
                 pkt()
                     .ipv4(v4(kUs4, kPeer4))
                     .tcp({.sport = 40031, .dport = 443, .data_offset = 4})
                     .payload(3000)
                     .build(),
                 kOut,
                 {3, 0, 20 + 20 + 3000, 0, 0},
                 kUnparsable,
                 {},
                 Gso{3, 1000}});
}

// Which category: tracked or not, map full, loopback, network namespace filter; and the
// order the buckets are decided in (netns, loopback, unparsable, then the cgroup).
void add_bucket_rows(std::vector<CgRow>& t) {
    const auto udp4 = [] {
        return pkt().ipv4(v4(kUs4, kPeer4)).udp({.sport = 40040, .dport = 53}).payload(10).build();
    };
    const nt_counts one{1, 0, 20 + 8 + 10, 8 + 10, 10};
    t.push_back({"untracked_cgroup", udp4(), kOut, one, NT_CG_BUCKET_UNTRACKED, {.track = Track::Nothing}});
    t.push_back(
        {"untracked_cgroup_ingress", udp4(), kIn, one, NT_CG_BUCKET_UNTRACKED, {.track = Track::Nothing}});
    t.push_back(
        {"tracked_but_map_full", udp4(), kOut, one, NT_CG_BUCKET_OVERFLOW, {.track = Track::FullMap}});
    t.push_back({"loopback_egress", udp4(), kOut, one, NT_CG_BUCKET_LOOPBACK, {.dev = Dev::Loopback}});
    t.push_back({"loopback_ingress", udp4(), kIn, one, NT_CG_BUCKET_LOOPBACK, {.dev = Dev::Loopback}});
    t.push_back({"netns_filter_ours", udp4(), kOut, one, Entry{}, {.netns = Netns::Ours}});
    t.push_back({"netns_filter_other", udp4(), kOut, one, NT_CG_BUCKET_OTHER_NETNS, {.netns = Netns::Other}});
    t.push_back({"other_netns_before_loopback",
                 udp4(),
                 kIn,
                 one,
                 NT_CG_BUCKET_OTHER_NETNS,
                 {.netns = Netns::Other, .dev = Dev::Loopback}});
    const auto bad = pkt().ipv4(v4(kUs4, kPeer4)).tcp({.sport = 1, .dport = 2, .data_offset = 4}).build();
    t.push_back({"loopback_before_unparsable",
                 bad,
                 kOut,
                 {1, 0, 40, 0, 0},
                 NT_CG_BUCKET_LOOPBACK,
                 {.dev = Dev::Loopback}});
    t.push_back(
        {"unparsable_before_untracked", bad, kOut, {1, 0, 40, 0, 0}, kUnparsable, {.track = Track::Nothing}});
}

std::vector<CgRow> cg_rows() {
    std::vector<CgRow> t;
    add_ipv4_rows(t);
    add_ipv6_rows(t);
    add_malformed_rows(t);
    add_truncated_rows(t);
    add_gso_rows(t);
    add_bucket_rows(t);
    return t;
}

// ---------------------------------------------------------------------------------------
// Running

struct RunResult {
    int err = 0; // 0 or errno
    uint32_t retval = 0;
};

RunResult cg_test_run(bpf_program* prog, const CgRow& row) {
    const unsigned ifindex = row.setup.dev == Dev::Loopback ? 1 : test_netns().ifindex;
    __sk_buff skb{};
    skb.ifindex = ifindex;
    skb.ingress_ifindex = ifindex;
    if (row.gso) {
        skb.gso_segs = row.gso->segs;
        skb.gso_size = row.gso->size;
    }
    // Not LIBBPF_OPTS(): it is a GNU statement expression, which -Wpedantic rejects in C++.
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = row.frame.data();
    opts.data_size_in = static_cast<__u32>(row.frame.size());
    opts.ctx_in = &skb;
    opts.ctx_size_in = sizeof(skb);
    opts.repeat = 1;
    RunResult r;
    NetnsScope in_test_netns;
    if (!in_test_netns.ok()) {
        r.err = errno;
        return r;
    }
    if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) != 0)
        r.err = errno;
    r.retval = opts.retval;
    return r;
}

// The load-time configuration a row needs: the netns filter's cookie, a full-map size.
struct CgConfig {
    uint64_t cookie = 0;
    bool full_map = false;
    bool operator<(const CgConfig& o) const {
        return cookie != o.cookie ? cookie < o.cookie : full_map < o.full_map;
    }
};

CgConfig config_of(const CgRow& row) {
    CgConfig c;
    if (row.setup.netns == Netns::Ours)
        c.cookie = test_netns().cookie;
    else if (row.setup.netns == Netns::Other)
        c.cookie = test_netns().cookie + 1000;
    c.full_map = row.setup.track == Track::FullMap;
    return c;
}

// Whether the kernel has bpf_get_netns_cookie for cgroup_skb, probed as nettallyd probes it
// (daemon/kernel/cgroups.cpp): without it the object with a non-zero cookie does not load, and
// nettallyd loads it with cookie 0.
bool cgroup_netns_cookie_helper() {
    static const bool helper =
        libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_get_netns_cookie, nullptr) == 1;
    return helper;
}

// The skeleton of a configuration, loaded once per configuration for the table.
void load_cg_skeleton(SharedSkeleton<nettally_cg_bpf>& shared, const CgConfig& c) {
    shared.load(nettally_cg_bpf__open, nettally_cg_bpf__load, nettally_cg_bpf__destroy,
                [&](nettally_cg_bpf* s) {
                    s->rodata->cfg_netns_cookie = c.cookie;
                    return !c.full_map || bpf_map__set_max_entries(s->maps.nt_cg_counts, 1) == 0;
                });
}

// The per-CPU sums of the cgroup maps after one run.
struct CgMaps {
    nt_cg_dir_val dir[NT_DIR_MAX]{};
    std::vector<PerCpuEntry<uint64_t, nt_cg_val>> entries;
    uint64_t busy = 0;
};

CgMaps read_cg_maps(nettally_cg_bpf* s) {
    CgMaps m;
    for (const auto& e : dump_percpu<uint32_t, nt_cg_dir_val>(s->maps.nt_cg_totals)) {
        if (e.key >= NT_DIR_MAX)
            continue;
        for (const auto& v : e.per_cpu) {
            m.dir[e.key].total += v.total;
            for (int b = 0; b < NT_CG_BUCKET_MAX; b++)
                m.dir[e.key].bucket[b] += v.bucket[b];
        }
    }
    m.entries = dump_percpu<uint64_t, nt_cg_val>(s->maps.nt_cg_counts);
    for (const auto& e : dump_percpu<uint32_t, uint64_t>(s->maps.nt_cg_busy))
        for (const uint64_t v : e.per_cpu)
            m.busy += v;
    return m;
}

nt_counts sum_dir(const std::vector<nt_cg_val>& per_cpu, uint32_t dir) {
    nt_counts c{};
    for (const auto& v : per_cpu)
        c += v.dir[dir];
    return c;
}

const char* cg_bucket_name(int b) {
    static const char* const names[NT_CG_BUCKET_MAX] = {"other_netns", "loopback", "unparsable", "untracked",
                                                        "overflow"};
    return b >= 0 && b < NT_CG_BUCKET_MAX ? names[b] : "?";
}

class CgroupParserFixture : public ::testing::TestWithParam<CgRow> {
protected:
    static void TearDownTestSuite() { loaded_.clear(); }
    void SetUp() override {
        if (const std::string& why = bpf_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        if (!test_netns().error.empty())
            GTEST_SKIP() << test_netns().error;
        const CgRow& row = GetParam();
        const CgConfig c = config_of(row);
        if (c.cookie != 0 && !cgroup_netns_cookie_helper())
            GTEST_SKIP() << row.name << ": no bpf_get_netns_cookie for cgroup_skb on this kernel (Linux "
                         << "6.15): nettallyd loads the object with cookie 0 here and counts every "
                         << "namespace, as the rows without a netns filter do";
        SharedSkeleton<nettally_cg_bpf>& shared = loaded_[c];
        if (!shared.loaded())
            load_cg_skeleton(shared, c);
        skel_ = shared.fresh();
        ASSERT_TRUE(skel_) << row.name << " skeleton";
        const uint8_t one = 1;
        if (row.setup.track != Track::Nothing) {
            ASSERT_EQ(bpf_map__update_elem(skel_->maps.nt_cg_subtrees, &kRootCgroupId, sizeof(kRootCgroupId),
                                           &one, sizeof(one), BPF_ANY),
                      0)
                << row.name << " track the cgroup v2 root";
        }
    }
    // One loaded object per configuration, kept for the table's other rows of that configuration.
    static std::map<CgConfig, SharedSkeleton<nettally_cg_bpf>> loaded_;
    nettally_cg_bpf* skel_ = nullptr;
};
std::map<CgConfig, SharedSkeleton<nettally_cg_bpf>> CgroupParserFixture::loaded_;

// With a full map, one other cgroup's entry is already there (the daemon's or a neighbour's).
constexpr uint64_t kPrefilledId = 0xFFFF'FFFF'FFFF'0001ull;

void expect_entry(const CgRow& row, const CgMaps& m, uint64_t prefilled) {
    const std::string& n = row.name;
    const uint32_t other = row.dir == kIn ? kOut : kIn;
    std::optional<PerCpuEntry<uint64_t, nt_cg_val>> ours;
    for (const auto& e : m.entries)
        if (e.key != prefilled)
            ours = e;
    if (std::holds_alternative<nt_cg_bucket>(row.into)) {
        EXPECT_FALSE(ours) << n << " nt_cg_counts has an entry for a bucketed packet";
        return;
    }
    ASSERT_TRUE(ours) << n << " nt_cg_counts entry";
    EXPECT_EQ(m.entries.size(), prefilled ? 2u : 1u) << n << " nt_cg_counts entries";
    if (const auto id = own_cgroup_id()) {
        EXPECT_EQ(ours->key, *id) << n << " entry key is the test process's cgroup id";
    } else {
        EXPECT_NE(ours->key, 0u) << n << " entry key (own cgroup id unknown: cgroup2 not mounted)";
    }
    expect_counts(sum_dir(ours->per_cpu, row.dir), row.expect, n + " entry");
    expect_counts(sum_dir(ours->per_cpu, other), kZero, n + " entry, other direction");
}

TEST_P(CgroupParserFixture, CountsOneCategory) {
    const CgRow& row = GetParam();
    const std::string& n = row.name;
    nettally_cg_bpf* const skel = skel_;
    const uint64_t prefilled = row.setup.track == Track::FullMap ? kPrefilledId : 0;
    if (prefilled) {
        const std::vector<nt_cg_val> zero(static_cast<size_t>(libbpf_num_possible_cpus()));
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.nt_cg_counts), &prefilled, zero.data(), BPF_ANY),
                  0)
            << n << " prefill nt_cg_counts";
    }

    bpf_program* prog = row.dir == kIn ? skel->progs.nt_cg_ingress : skel->progs.nt_cg_egress;
    const RunResult run = cg_test_run(prog, row);
    if (run.err == EINVAL && row.refusal_note)
        GTEST_SKIP() << n << ": " << row.refusal_note << " [kernel said: " << std::strerror(run.err) << "]";
    ASSERT_EQ(run.err, 0) << n << " bpf_prog_test_run_opts(" << bpf_program__name(prog) << ", "
                          << row.frame.size() << " bytes): " << std::strerror(run.err);
    EXPECT_EQ(run.retval, 1u) << n << " return code (1: the packet's fate unchanged)";

    const CgMaps m = read_cg_maps(skel);
    const uint32_t other = row.dir == kIn ? kOut : kIn;
    expect_counts(m.dir[row.dir].total, row.expect, n + " total");
    expect_counts(m.dir[other].total, kZero, n + " total, other direction");
    const nt_cg_bucket* into = std::get_if<nt_cg_bucket>(&row.into);
    for (int b = 0; b < NT_CG_BUCKET_MAX; b++) {
        expect_counts(m.dir[row.dir].bucket[b], into && *into == b ? row.expect : kZero,
                      n + " bucket " + cg_bucket_name(b));
        expect_counts(m.dir[other].bucket[b], kZero, n + " other direction bucket " + cg_bucket_name(b));
    }
    expect_entry(row, m, prefilled);

    // Reconciliation: total == entries + buckets; and no program left in flight.
    nt_counts parts{};
    for (const auto& e : m.entries)
        parts += sum_dir(e.per_cpu, row.dir);
    for (const auto& b : m.dir[row.dir].bucket)
        parts += b;
    expect_counts(m.dir[row.dir].total, parts, n + " reconciliation total vs entries+buckets");
    EXPECT_EQ(m.busy, 0u) << n << " nt_cg_busy after the run";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CgroupParserFixture, ::testing::ValuesIn(cg_rows()),
                         [](const ::testing::TestParamInfo<CgRow>& info) { return info.param.name; });

} // namespace
} // namespace nettally::test
