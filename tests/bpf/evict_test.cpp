// Flow eviction through the eviction program (daemon/kernel/evict.h, bpf/evict.bpf.c) against
// the per-key path (one lookup-and-delete syscall per flow), on the real Datapath: each flow
// comes back exactly once with its per-CPU values folded as fold_percpu() does (sums, earliest
// non-zero first_ns, latest last_ns, OR of the TCP flags), absent keys come back as nothing, and
// the flows not asked for stay in the map untouched. More keys than one pass takes, so the
// passes' boundaries are crossed.
#include "bpf_test_util.h"

#include "kernel/datapath.h"
#include "nettally_evict.h"

#include <algorithm>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cstring>
#include <gtest/gtest.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace nettally::test {
namespace {

constexpr uint32_t kFlows = 20000; // > 2 * NT_EVICT_BATCH keys asked for below

nt_flow_key key_of(uint32_t i) {
    nt_flow_key k{};
    k.ifindex = 7 + i % 3;
    k.dir = static_cast<uint8_t>(i & 1);
    k.proto = (i & 2) ? 17 : 6;
    k.family = NT_AF_INET;
    k.sport = static_cast<uint16_t>(1024 + i % 50000);
    k.dport = static_cast<uint16_t>(i / 50000 + 1);
    k.src[0] = htonl(0xc6120000u + i);
    k.dst[0] = htonl(0xc6130001u);
    return k;
}

// Flow i's value on CPU c: distinct per flow and CPU; CPU 0 has never seen the flow's first
// packet (first_ns 0), so the fold must take the earliest non-zero one.
nt_flow_val value_of(uint32_t i, int c) {
    nt_flow_val v{};
    const uint64_t base = uint64_t{i} * 1000 + static_cast<uint64_t>(c) * 10 + 1;
    v.c.packets = base;
    v.c.l2 = base * 2;
    v.c.l3 = base * 3;
    v.c.l4 = base * 4;
    v.c.payload = base * 5;
    v.first_ns = c == 0 ? 0 : 1000000 + i * 10 + static_cast<uint64_t>(c);
    v.last_ns = 5000000 + i * 10 + static_cast<uint64_t>(c);
    v.tcp_flags = static_cast<uint8_t>(1u << (c % 8));
    return v;
}

FlowEntry expected(uint32_t i, int ncpus) {
    std::vector<nt_flow_val> vals;
    for (int c = 0; c < ncpus; c++)
        vals.push_back(value_of(i, c));
    return fold_percpu(key_of(i), std::span<const nt_flow_val>(vals));
}

uint32_t index_of(const nt_flow_key& k) {
    return ntohl(k.src[0]) - 0xc6120000u;
}

struct Outcome {
    std::vector<FlowEntry> taken;
    bool batched = false;
    uint64_t left = 0;
    std::vector<std::string> problems;
};

Outcome evict_half(bool batched) {
    Outcome r;
    DatapathOptions opts;
    opts.max_flows = 32768;
    opts.batched_eviction = batched;
    opts.pin_dir = "/sys/fs/bpf/nt-test-evict-" + std::to_string(getpid()) + (batched ? "-b" : "-k");
    Datapath dp(opts);
    struct Unpin {
        Datapath& d;
        ~Unpin() { d.remove_pins(); }
    } unpin{dp};
    r.batched = dp.batched_eviction();
    const int fd = bpf_obj_get((opts.pin_dir + "/nt_flows").c_str());
    if (fd < 0) {
        r.problems.push_back("nt_flows not pinned");
        return r;
    }
    const int ncpus = libbpf_num_possible_cpus();
    std::vector<nt_flow_val> vals(static_cast<size_t>(ncpus));
    for (uint32_t i = 0; i < kFlows; i++) {
        for (int c = 0; c < ncpus; c++)
            vals[static_cast<size_t>(c)] = value_of(i, c);
        const nt_flow_key k = key_of(i);
        if (bpf_map_update_elem(fd, &k, vals.data(), BPF_NOEXIST))
            r.problems.push_back("filling flow " + std::to_string(i));
    }
    // The even flows, then keys of flows that do not exist.
    std::vector<nt_flow_key> keys;
    for (uint32_t i = 0; i < kFlows; i += 2)
        keys.push_back(key_of(i));
    for (uint32_t i = kFlows; i < kFlows + 50; i++)
        keys.push_back(key_of(i));
    r.taken = dp.evict_flows(keys);
    std::sort(r.taken.begin(), r.taken.end(),
              [](const FlowEntry& a, const FlowEntry& b) { return index_of(a.key) < index_of(b.key); });
    // The odd flows are still there, as they were.
    for (uint32_t i = 0; i < kFlows; i++) {
        const nt_flow_key k = key_of(i);
        const bool present = bpf_map_lookup_elem(fd, &k, vals.data()) == 0;
        if (present != (i % 2 == 1)) {
            r.problems.push_back("flow " + std::to_string(i) + (present ? " still in the map" : " gone"));
            continue;
        }
        for (int c = 0; present && c < ncpus; c++) {
            const nt_flow_val want = value_of(i, c);
            if (std::memcmp(&vals[static_cast<size_t>(c)], &want, sizeof(want)) != 0)
                r.problems.push_back("flow " + std::to_string(i) + " changed on CPU " + std::to_string(c));
        }
        r.left += present ? 1 : 0;
    }
    close(fd);
    return r;
}

void check(const Outcome& r, int ncpus) {
    EXPECT_EQ(r.problems, std::vector<std::string>{});
    EXPECT_EQ(r.left, kFlows / 2);
    ASSERT_EQ(r.taken.size(), kFlows / 2) << "every even flow exactly once, no absent key";
    for (uint32_t n = 0; n < r.taken.size(); n++) {
        const FlowEntry& got = r.taken[n];
        const FlowEntry want = expected(n * 2, ncpus);
        ASSERT_EQ(std::memcmp(&got.key, &want.key, sizeof(want.key)), 0) << "flow " << n * 2;
        EXPECT_EQ(got.counts, want.counts) << "flow " << n * 2;
        EXPECT_EQ(got.first_ns, want.first_ns) << "flow " << n * 2;
        EXPECT_EQ(got.last_ns, want.last_ns) << "flow " << n * 2;
        EXPECT_EQ(got.tcp_flags, want.tcp_flags) << "flow " << n * 2;
    }
}

TEST(FlowEviction, BatchedTakesEachFlowOnceWithItsFoldedValues) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    const Outcome r = evict_half(true);
    ASSERT_TRUE(r.batched) << "the eviction program did not load (needs bpf_loop and "
                              "bpf_map_lookup_percpu_elem: kernel 5.19+)";
    check(r, libbpf_num_possible_cpus());
}

TEST(FlowEviction, PerKeyGivesTheSame) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    const Outcome r = evict_half(false);
    ASSERT_FALSE(r.batched);
    check(r, libbpf_num_possible_cpus());
}

} // namespace
} // namespace nettally::test
