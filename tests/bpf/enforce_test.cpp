// The enforcement fixture table: crafted frames run through the lan (and wan) TC
// programs with BPF_PROG_TEST_RUN, with a threshold action in nt_policy (or none),
// then the verdict, the EDT stamp, the interface counters and the entry's drop
// counters and schedule are compared with what the row says.
//
// Per row, the table's one skeleton with every map reset to its state after the load
// (shared_object.h), nt_policy_kinds set as the daemon sets it, and one run. What the rows pin down:
//   - no policy, or a policy for another host, or a wan program: TC_ACT_UNSPEC;
//   - block: TC_ACT_SHOT, host as source on ingress, as destination on egress, by
//     IPv4, IPv6 or MAC key;
//   - throttle within the budget: passes and moves the schedule by the packet's
//     cost (l2 bytes * 1e9 / rate); over the budget: TC_ACT_SHOT, schedule unchanged;
//   - EDT (egress on an interface marked for fq): passes, skb->tstamp = schedule;
//   - counting: a packet dropped on ingress is counted (it arrived), one dropped on
//     egress is not (it never left), and the drop counters say which direction.
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
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nettally::test {
namespace {

std::string bpf_unavailable_reason() {
    if (geteuid() != 0)
        return "needs root (CAP_BPF + CAP_NET_ADMIN) to load BPF programs";
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "nt_probe", 4, 4, 1, nullptr);
    if (fd < 0 && (errno == EPERM || errno == EACCES))
        return std::string("BPF not permitted here: ") + std::strerror(errno);
    if (fd >= 0)
        close(fd);
    return {};
}

struct SkelDeleter {
    void operator()(nettally_bpf* s) const { nettally_bpf__destroy(s); }
};
using Skel = std::unique_ptr<nettally_bpf, SkelDeleter>;

enum class Prog { IngressLan, EgressLan, IngressWan };

bpf_program* prog_of(nettally_bpf* s, Prog p) {
    switch (p) {
    case Prog::IngressLan:
        return s->progs.nt_tc_ingress_lan;
    case Prog::EgressLan:
        return s->progs.nt_tc_egress_lan;
    case Prog::IngressWan:
        return s->progs.nt_tc_ingress_wan;
    }
    return nullptr;
}

uint64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

const Mac kHostMac = parse_mac("02:00:00:00:00:01");
const Mac kGwMac = parse_mac("02:00:00:00:00:fe");
constexpr const char* kHost4 = "198.18.1.2";
constexpr const char* kOther4 = "198.18.1.3";
constexpr const char* kRemote4 = "198.18.2.2";
constexpr const char* kHost6 = "fd00:1::2";
constexpr const char* kRemote6 = "fd00:2::2";

constexpr uint32_t kUnspec = 0xFFFFFFFFu; // TC_ACT_UNSPEC (-1) as test_run reports it
constexpr uint32_t kShot = 2;             // TC_ACT_SHOT
constexpr uint64_t kRate = 1'000'000;     // 1 MB/s
constexpr uint64_t kBurstNs = 1'000'000'000ull;
constexpr uint64_t kHorizonNs = 2'000'000'000ull;

// 100 bytes of UDP payload: l2 = 14 + 20 + 8 + 100 (IPv4), 14 + 40 + 8 + 100 (IPv6).
std::vector<uint8_t> udp4(const char* src, const char* dst, const Mac& smac, const Mac& dmac) {
    Ipv4Opts o;
    o.src = parse_ipv4(src);
    o.dst = parse_ipv4(dst);
    return PacketBuilder().eth(dmac, smac).ipv4(o).udp({.sport = 40000, .dport = 5201}).payload(100).build();
}
std::vector<uint8_t> udp6(const char* src, const char* dst, const Mac& smac, const Mac& dmac) {
    Ipv6Opts o;
    o.src = parse_ipv6(src);
    o.dst = parse_ipv6(dst);
    return PacketBuilder().eth(dmac, smac).ipv6(o).udp({.sport = 40000, .dport = 5201}).payload(100).build();
}

enum class Schedule { Idle, Near, Far }; // tat: 0; now + 0.5 s (within burst and horizon); now + 5 s

struct Policy {
    uint8_t family;   // NT_AF_INET / NT_AF_INET6 / NT_POLICY_MAC
    const char* addr; // IP text or MAC text
    uint32_t action;
    Schedule schedule = Schedule::Idle;
};

struct Row {
    std::string name;
    std::vector<uint8_t> frame;
    Prog prog;
    std::optional<Policy> policy;
    uint32_t kinds; // nt_policy_kinds
    bool edt_iface = false;
    uint32_t verdict;
    bool counted;        // the interface total moved
    bool schedule_moves; // throttle: tat advanced by the packet's cost
    bool stamped = false;
};

void PrintTo(const Row& r, std::ostream* os) {
    *os << r.name;
}

nt_policy_key key_of(const Policy& p) {
    nt_policy_key k{};
    k.family = p.family;
    if (p.family == NT_AF_INET) {
        auto a = parse_ipv4(p.addr);
        std::memcpy(k.addr, a.data(), 4);
    } else if (p.family == NT_AF_INET6) {
        auto a = parse_ipv6(p.addr);
        std::memcpy(k.addr, a.data(), 16);
    } else {
        auto m = parse_mac(p.addr);
        std::memcpy(k.addr, m.data(), 6);
    }
    return k;
}

std::vector<Row> rows() {
    const auto in4 = udp4(kHost4, kRemote4, kHostMac, kGwMac);  // host -> remote (lan ingress)
    const auto out4 = udp4(kRemote4, kHost4, kGwMac, kHostMac); // remote -> host (lan egress)
    const auto other4 = udp4(kOther4, kRemote4, parse_mac("02:00:00:00:00:02"), kGwMac);
    const auto in6 = udp6(kHost6, kRemote6, kHostMac, kGwMac);
    const uint32_t ip = NT_POLICY_KIND_IP, mac = NT_POLICY_KIND_MAC;
    const Policy block4{NT_AF_INET, kHost4, NT_POLICY_BLOCK};
    const auto thr = [](Schedule s) { return Policy{NT_AF_INET, kHost4, NT_POLICY_THROTTLE, s}; };
    std::vector<Row> t;
    t.push_back({"no_policy_ingress", in4, Prog::IngressLan, std::nullopt, 0, false, kUnspec, true, false});
    t.push_back({"no_policy_egress", out4, Prog::EgressLan, std::nullopt, 0, false, kUnspec, true, false});
    // An entry present but the kinds flag off: the programs do not look (flag is the gate).
    t.push_back({"kinds_off_entry_ignored", in4, Prog::IngressLan, block4, 0, false, kUnspec, true, false});
    t.push_back({"other_host_passes", other4, Prog::IngressLan, block4, ip, false, kUnspec, true, false});
    t.push_back({"block_src_ingress", in4, Prog::IngressLan, block4, ip, false, kShot, true, false});
    t.push_back({"block_dst_egress", out4, Prog::EgressLan, block4, ip, false, kShot, false, false});
    t.push_back({"block_ipv6", in6, Prog::IngressLan, Policy{NT_AF_INET6, kHost6, NT_POLICY_BLOCK}, ip, false,
                 kShot, true, false});
    t.push_back({"block_mac_ingress", in4, Prog::IngressLan,
                 Policy{NT_POLICY_MAC, "02:00:00:00:00:01", NT_POLICY_BLOCK}, mac, false, kShot, true,
                 false});
    t.push_back({"block_mac_egress", out4, Prog::EgressLan,
                 Policy{NT_POLICY_MAC, "02:00:00:00:00:01", NT_POLICY_BLOCK}, mac, false, kShot, false,
                 false});
    // Destination-only match on ingress is not the host's own traffic direction.
    t.push_back(
        {"block_src_only_on_ingress", out4, Prog::IngressLan, block4, ip, false, kUnspec, true, false});
    t.push_back({"wan_never_enforces", in4, Prog::IngressWan, block4, ip, false, kUnspec, true, false});
    t.push_back({"throttle_within_budget_ingress", in4, Prog::IngressLan, thr(Schedule::Idle), ip, false,
                 kUnspec, true, true});
    t.push_back({"throttle_within_burst_egress", out4, Prog::EgressLan, thr(Schedule::Near), ip, false,
                 kUnspec, true, true});
    t.push_back({"throttle_over_budget_ingress", in4, Prog::IngressLan, thr(Schedule::Far), ip, false, kShot,
                 true, false});
    t.push_back({"throttle_over_budget_egress", out4, Prog::EgressLan, thr(Schedule::Far), ip, false, kShot,
                 false, false});
    t.push_back({"throttle_edt_stamps_egress", out4, Prog::EgressLan, thr(Schedule::Near), ip, true, kUnspec,
                 true, true, true});
    t.push_back({"throttle_edt_beyond_horizon", out4, Prog::EgressLan, thr(Schedule::Far), ip, true, kShot,
                 false, false});
    // EDT is egress only: ingress on the same interface is policed.
    t.push_back({"throttle_edt_ingress_policed", in4, Prog::IngressLan, thr(Schedule::Far), ip, true, kShot,
                 true, false});
    return t;
}

class EnforceFixture : public ::testing::TestWithParam<Row> {
protected:
    static void SetUpTestSuite() {
        if (bpf_unavailable_reason().empty())
            shared_.load(open_datapath_object, nettally_bpf__load, nettally_bpf__destroy);
    }
    static void TearDownTestSuite() { shared_.release(); }
    void SetUp() override {
        if (const std::string why = bpf_unavailable_reason(); !why.empty())
            GTEST_SKIP() << why;
        skel_ = shared_.fresh();
        ASSERT_TRUE(skel_) << "the table's skeleton";
    }
    static SharedSkeleton<nettally_bpf> shared_;
    nettally_bpf* skel_ = nullptr;
};
SharedSkeleton<nettally_bpf> EnforceFixture::shared_;

uint64_t iface_packets(nettally_bpf* s) {
    const int fd = bpf_map__fd(s->maps.nt_ifaces);
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<nt_iface_val> v(static_cast<size_t>(ncpu));
    nt_iface_key k{}, next{};
    uint64_t packets = 0;
    const nt_iface_key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (bpf_map_lookup_elem(fd, &next, v.data()) == 0)
            for (const auto& c : v)
                packets += c.total.packets;
        k = next;
        prev = &k;
    }
    return packets;
}

TEST_P(EnforceFixture, Verdict) {
    const Row& row = GetParam();
    const std::string& n = row.name;
    nettally_bpf* const skel = skel_;

    const uint64_t l2 = row.frame.size();
    const uint64_t cost = l2 * 1'000'000'000ull / kRate;
    nt_policy_key pk{};
    uint64_t tat0 = 0;
    const int pfd = bpf_map__fd(skel->maps.nt_policy);
    if (row.policy) {
        pk = key_of(*row.policy);
        nt_policy_val v{};
        v.action = row.policy->action;
        v.rate = kRate;
        v.burst_ns = kBurstNs;
        v.horizon_ns = kHorizonNs;
        const uint64_t now = mono_ns();
        tat0 = row.policy->schedule == Schedule::Near  ? now + kBurstNs / 2
               : row.policy->schedule == Schedule::Far ? now + 5 * kBurstNs
                                                       : 0;
        v.tat[0] = v.tat[1] = tat0;
        ASSERT_EQ(bpf_map_update_elem(pfd, &pk, &v, BPF_ANY), 0) << n << " policy entry";
    }
    if (row.edt_iface) {
        const uint32_t lo = if_nametoindex("lo");
        const uint8_t one = 1;
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.nt_policy_edt), &lo, &one, BPF_ANY), 0);
    }
    skel->bss->nt_policy_kinds = row.kinds;

    __sk_buff ctx_out{};
    std::vector<uint8_t> out(row.frame.size() + 256);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = row.frame.data();
    opts.data_size_in = static_cast<__u32>(row.frame.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<__u32>(out.size());
    opts.ctx_out = &ctx_out;
    opts.ctx_size_out = sizeof(ctx_out);
    opts.repeat = 1;
    const uint64_t before = mono_ns();
    ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(prog_of(skel, row.prog)), &opts), 0)
        << n << " test_run: " << std::strerror(errno);
    const uint64_t after = mono_ns();

    EXPECT_EQ(opts.retval, row.verdict) << n << " verdict";
    EXPECT_EQ(iface_packets(skel), row.counted ? 1u : 0u) << n << " interface total packets";

    if (row.stamped) {
        EXPECT_EQ(ctx_out.tstamp, tat0) << n << " skb->tstamp is the schedule's departure time";
    } else {
        EXPECT_EQ(ctx_out.tstamp, 0u) << n << " skb->tstamp untouched";
    }

    if (!row.policy)
        return;
    nt_policy_val got{};
    ASSERT_EQ(bpf_map_lookup_elem_flags(pfd, &pk, &got, BPF_F_LOCK), 0) << n << " read back policy";
    const bool enforced_here = row.kinds != 0 && row.prog != Prog::IngressWan && n != "other_host_passes" &&
                               n != "block_src_only_on_ingress";
    const uint32_t d = row.prog == Prog::EgressLan ? NT_DIR_EGRESS : NT_DIR_INGRESS;
    const bool dropped = row.verdict == kShot;
    EXPECT_EQ(got.dropped_packets[d], dropped ? 1u : 0u) << n << " dropped packets, this direction";
    EXPECT_EQ(got.dropped_bytes[d], dropped ? l2 : 0u) << n << " dropped bytes (l2), this direction";
    EXPECT_EQ(got.dropped_packets[1 - d], 0u) << n << " dropped packets, other direction";
    if (row.schedule_moves) {
        ASSERT_TRUE(enforced_here) << n << " table error";
        // tat = max(tat0, now) + cost, with now taken inside the run.
        const uint64_t lo = (tat0 > before ? tat0 : before) + cost;
        const uint64_t hi = (tat0 > after ? tat0 : after) + cost;
        EXPECT_GE(got.tat[d], lo) << n << " schedule moved by the packet's cost";
        EXPECT_LE(got.tat[d], hi) << n << " schedule moved by the packet's cost";
    } else {
        EXPECT_EQ(got.tat[d], tat0) << n << " schedule unchanged";
    }
    EXPECT_EQ(got.tat[1 - d], tat0) << n << " other direction's schedule unchanged";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EnforceFixture, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

// A throttled host's stream: over many back-to-back packets at a fixed clock rate the
// policer passes about burst + elapsed * rate bytes and drops the rest.
TEST(EnforceProgram, PolicerPassesBurstThenDrops) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    Skel skel(open_datapath_object());
    ASSERT_TRUE(skel);
    ASSERT_EQ(nettally_bpf__load(skel.get()), 0);
    const auto frame = udp4(kHost4, kRemote4, kHostMac, kGwMac);
    nt_policy_key k = key_of(Policy{NT_AF_INET, kHost4, NT_POLICY_THROTTLE});
    nt_policy_val v{};
    v.action = NT_POLICY_THROTTLE;
    v.rate = 1000; // 1 kB/s: the run below takes far less than a byte's worth of time per packet
    v.burst_ns = 10'000'000'000ull; // 10 s at 1 kB/s: 10 kB
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel->maps.nt_policy), &k, &v, BPF_ANY), 0);
    skel->bss->nt_policy_kinds = NT_POLICY_KIND_IP;

    std::vector<uint8_t> out(frame.size() + 256);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<__u32>(frame.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<__u32>(out.size());
    opts.repeat = 1000;
    const uint64_t t0 = mono_ns();
    ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.nt_tc_ingress_lan), &opts), 0);
    const uint64_t elapsed = mono_ns() - t0;
    nt_policy_val got{};
    ASSERT_EQ(bpf_map_lookup_elem_flags(bpf_map__fd(skel->maps.nt_policy), &k, &got, BPF_F_LOCK), 0);
    const uint64_t l2 = frame.size();
    const uint64_t passed = 1000 - got.dropped_packets[NT_DIR_INGRESS];
    // Passed while tat - now <= 10 s: 10 s / (l2 ms per packet) + the first one; a little
    // more when the clock moves during the run (elapsed * rate bytes).
    const uint64_t want = 10'000 / l2 + 1;
    const uint64_t slack = elapsed * 1000 / 1'000'000'000ull / l2 + 1;
    EXPECT_GE(passed, want) << "packets through the policer";
    EXPECT_LE(passed, want + slack) << "packets through the policer";
    EXPECT_EQ(got.dropped_bytes[NT_DIR_INGRESS], got.dropped_packets[NT_DIR_INGRESS] * l2);
}

} // namespace
} // namespace nettally::test
