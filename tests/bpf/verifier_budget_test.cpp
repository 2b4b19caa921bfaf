// Verifier budget: every program in the nettally object must verify in at most a quarter
// of the kernel's instruction-processing limit (BPF_COMPLEXITY_LIMIT_INSNS, 1,000,000),
// so parser growth (more tags, more extension headers, unrolled loops) is caught long
// before a kernel refuses to load it. The counts come from bpf_prog_info.verified_insns
// (kernel >= 5.16) and are printed and recorded as test properties so growth is visible.
// Both objects are measured: nettally (TC, XDP), with and without traffic classes
// (cfg_classes: nettallyd loads the classifier only for a config with a rules section), and
// nettally_cg (cgroup_skb), the latter
// with and without the netns filter (cfg_netns_cookie), since the filter is dead code
// the verifier prunes when the cookie is 0. The filtered object loads only where the
// kernel has bpf_get_netns_cookie for cgroup_skb (Linux 6.15); elsewhere nettallyd
// (daemon/kernel/cgroups.cpp) probes the helper and loads the object with cookie 0, so
// the test probes the same way and then measures what the daemon loads: the unfiltered
// object only, saying so on a "[ verifier ]" line and in a test property.
// The stack is checked as Linux 6.1 counts it (each frame rounded up to 32 bytes, the frames
// of a call chain at most 512 together), which is stricter than the build machine's kernel.
#include "kernel/datapath.h"
#include "nettally.skel.h"
#include "nettally_cg.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

// Not in the UAPI headers: include/linux/bpf.h in the kernel tree.
constexpr uint64_t kComplexityLimitInsns = 1'000'000;
constexpr uint64_t kBudget = kComplexityLimitInsns / 4;

// Same probe as parser_test.cpp: the reason BPF cannot be used here, or empty.
std::string bpf_unavailable_reason() {
    if (geteuid() != 0)
        return "needs root (CAP_BPF + CAP_NET_ADMIN) to load BPF programs";
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "nt_probe", 4, 4, 1, nullptr);
    if (fd < 0) {
        const int err = errno;
        if (err == EPERM || err == EACCES)
            return std::string("BPF not permitted here: bpf(BPF_MAP_CREATE) failed: ") + std::strerror(err);
        return {};
    }
    close(fd);
    return {};
}

struct SkelDeleter {
    void operator()(nettally_bpf* s) const { nettally_bpf__destroy(s); }
    void operator()(nettally_cg_bpf* s) const { nettally_cg_bpf__destroy(s); }
};

// Checks and prints every program of a loaded object; returns how many were measured, or
// -1 when the kernel does not report verified_insns (the caller skips).
int measure(bpf_object* obj, const std::string& suffix) {
    int programs = 0;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj) {
        if (!bpf_program__autoload(prog))
            continue; // not loaded: measure_one_by_one() loads it on its own
        const std::string name = std::string(bpf_program__name(prog)) + suffix;
        bpf_prog_info info{};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) {
            ADD_FAILURE() << name << " bpf_obj_get_info_by_fd: " << std::strerror(errno);
            continue;
        }
        if (len < offsetof(bpf_prog_info, verified_insns) + sizeof(info.verified_insns) ||
            info.verified_insns == 0)
            return -1;

        const uint64_t n = info.verified_insns;
        std::printf("[ verifier ] %-28s %8llu verified insns (budget %llu, %.2f%% of the limit)\n",
                    name.c_str(), static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(kBudget),
                    100.0 * static_cast<double>(n) / static_cast<double>(kComplexityLimitInsns));
        ::testing::Test::RecordProperty(name + "_verified_insns", std::to_string(n));
        EXPECT_LE(n, kBudget) << name << " verified_insns " << n
                              << " exceeds 25% of BPF_COMPLEXITY_LIMIT_INSNS";
        programs++;
    }
    std::fflush(stdout);
    return programs;
}

bool is_xdp_program(const std::string& name) {
    return name.rfind("nt_xdp_", 0) == 0;
}

// The programs of the object nettallyd loads on this kernel: 10, or 8 where the kernel refuses the
// XDP programs' helpers (nettally::xdp_unavailable(), said on a "[ verifier ]" line and in a test
// property). The VM suite measures them on Debian 12's kernel.
int programs_loaded_here() {
    const std::string& why = nettally::xdp_unavailable();
    if (why.empty())
        return 10;
    std::printf("[ verifier ] nt_xdp_ingress_{lan,wan}: not loaded on this kernel: %s\n", why.c_str());
    std::fflush(stdout);
    ::testing::Test::RecordProperty("xdp_programs", "not loaded: " + why);
    return 8;
}

// After the object failed to load: each program loaded alone, so that every program the kernel
// takes still has its figure and every one it refuses is named ("[ verifier ] NAME refused: ...").
void measure_one_by_one(bool classes, const std::string& suffix) {
    std::vector<std::string> names;
    {
        std::unique_ptr<nettally_bpf, SkelDeleter> skel(nettally::open_datapath_object());
        ASSERT_TRUE(skel) << "open_datapath_object: " << std::strerror(errno);
        bpf_program* prog;
        bpf_object__for_each_program(prog, skel->obj) names.emplace_back(bpf_program__name(prog));
    }
    for (const std::string& name : names) {
        if (is_xdp_program(name) && !nettally::xdp_unavailable().empty())
            continue; // nettallyd does not load it here either (note_xdp_left_out)
        std::unique_ptr<nettally_bpf, SkelDeleter> skel(nettally::open_datapath_object());
        ASSERT_TRUE(skel) << "open_datapath_object: " << std::strerror(errno);
        bpf_program* prog;
        bpf_object__for_each_program(prog, skel->obj)
            bpf_program__set_autoload(prog, name == bpf_program__name(prog));
        skel->rodata->cfg_classes = classes ? 1 : 0;
        if (const int err = nettally_bpf__load(skel.get()); err != 0) {
            std::printf("[ verifier ] %-28s refused: %s\n", (name + suffix).c_str(), std::strerror(-err));
            std::fflush(stdout);
            ADD_FAILURE() << name << suffix << " does not load: " << std::strerror(-err)
                          << " (libbpf log above)";
            continue;
        }
        measure(skel->obj, suffix);
    }
}

constexpr const char* kNoVerifiedInsns =
    "kernel does not report bpf_prog_info.verified_insns (needs >= 5.16)";

// The TC and XDP object as nettallyd loads it: cfg_classes 1 with a rules section in the config
// (the classifier and the class counters are live code), 0 without (the verifier drops them).
void check_object(bool classes) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;

    const std::string suffix = classes ? " (classes)" : "";
    std::unique_ptr<nettally_bpf, SkelDeleter> skel(nettally::open_datapath_object());
    ASSERT_TRUE(skel) << "open_datapath_object: " << std::strerror(errno);
    skel->rodata->cfg_classes = classes ? 1 : 0;
    if (const int err = nettally_bpf__load(skel.get()); err != 0) {
        ADD_FAILURE() << "nettally_bpf__load (cfg_classes " << classes << "): " << std::strerror(-err)
                      << " (libbpf log above); each program on its own follows";
        measure_one_by_one(classes, suffix);
        return;
    }

    const int programs = measure(skel->obj, suffix);
    if (programs < 0)
        GTEST_SKIP() << kNoVerifiedInsns;
    EXPECT_EQ(programs, programs_loaded_here())
        << "programs in the object: nt_tc_{ingress,egress}_{lan,wan,l3}, "
           "nt_tc_ingress_xdpfix_{lan,wan} and nt_xdp_ingress_{lan,wan}; a new "
           "program must be measured here too";
}

TEST(VerifierBudget, EveryProgramWithinQuarterOfComplexityLimit) {
    check_object(false);
}

TEST(VerifierBudget, EveryProgramWithClassesWithinQuarterOfComplexityLimit) {
    check_object(true);
}

TEST(VerifierBudget, CgroupProgramsWithinQuarterOfComplexityLimit) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;

    // cfg_netns_cookie 0: every namespace counted; non-zero: the netns filter is live code, where
    // the kernel has the helper (nettallyd's probe, daemon/kernel/cgroups.cpp).
    const bool helper =
        libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_get_netns_cookie, nullptr) == 1;
    ::testing::Test::RecordProperty("cgroup_netns_filter", helper ? "measured" : "fallback: cookie 0");
    if (!helper) {
        std::printf("[ verifier ] nt_cg_* (netns): not loadable here (no bpf_get_netns_cookie for "
                    "cgroup_skb, Linux 6.15); nettallyd's fallback applies: cookie 0, measured below\n");
        std::fflush(stdout);
    }
    for (const uint64_t cookie : {uint64_t{0}, uint64_t{1}}) {
        if (cookie != 0 && !helper)
            continue;
        std::unique_ptr<nettally_cg_bpf, SkelDeleter> skel(nettally_cg_bpf__open());
        ASSERT_TRUE(skel) << "nettally_cg_bpf__open: " << std::strerror(errno);
        skel->rodata->cfg_netns_cookie = cookie;
        const int err = nettally_cg_bpf__load(skel.get());
        ASSERT_EQ(err, 0) << "nettally_cg_bpf__load (netns cookie " << cookie << "): " << std::strerror(-err)
                          << " (libbpf log above)";

        const int programs = measure(skel->obj, cookie ? " (netns)" : "");
        if (programs < 0)
            GTEST_SKIP() << kNoVerifiedInsns;
        EXPECT_EQ(programs, 2) << "programs in the cgroup object: nt_cg_{ingress,egress}; a new "
                                  "program must be measured here too";
    }
}

// The deepest chain of stack frames of a loaded program as Linux 6.1 counts it
// (check_max_stack_depth: each function's depth rounded up to 32 bytes, at least 32, summed
// along bpf-to-bpf calls and callbacks such as bpf_loop's). Newer kernels round to 16 bytes
// when they JIT, so a program can pass the build machine's verifier and still be refused by
// 6.1 ("combined stack size of N calls is M. Too large"). A function's depth is the lowest
// offset from r10 it reads, writes or takes the address of (a pointer into the stack handed
// to a helper: "rX = r10; rX += -N").
int stack_chain_6_1(const bpf_program* prog) {
    const bpf_insn* insns = bpf_program__insns(prog);
    const int n = static_cast<int>(bpf_program__insn_cnt(prog));
    std::set<int> starts{0};
    std::map<int, std::set<int>> calls; // instruction index -> callee start
    for (int i = 0; i < n; i++) {
        const bpf_insn& in = insns[i];
        const bool call = in.code == (BPF_JMP | BPF_CALL) && in.src_reg == BPF_PSEUDO_CALL;
        const bool func = in.code == (BPF_LD | BPF_IMM | BPF_DW) && in.src_reg == BPF_PSEUDO_FUNC;
        if (call || func) {
            starts.insert(i + in.imm + 1);
            calls[i].insert(i + in.imm + 1);
        }
        if (in.code == (BPF_LD | BPF_IMM | BPF_DW))
            i++; // its second half
    }
    const std::vector<int> begin(starts.begin(), starts.end());
    std::map<int, int> depth;             // function start -> rounded frame
    std::map<int, std::set<int>> callees; // function start -> callee starts
    for (size_t f = 0; f < begin.size(); f++) {
        const int end = f + 1 < begin.size() ? begin[f + 1] : n;
        int low = 0;
        std::set<int> from_fp; // registers holding r10 (plus an offset, tracked in low)
        for (int i = begin[f]; i < end; i++) {
            const bpf_insn& in = insns[i];
            const int cls = BPF_CLASS(in.code);
            if ((cls == BPF_STX || cls == BPF_ST) && in.dst_reg == BPF_REG_10)
                low = std::min(low, static_cast<int>(in.off));
            if (cls == BPF_LDX && in.src_reg == BPF_REG_10)
                low = std::min(low, static_cast<int>(in.off));
            if (in.code == (BPF_ALU64 | BPF_MOV | BPF_X) && in.src_reg == BPF_REG_10)
                from_fp.insert(in.dst_reg);
            else if (in.code == (BPF_ALU64 | BPF_ADD | BPF_K) && from_fp.count(in.dst_reg) != 0)
                low = std::min(low, in.imm);
            else if (cls == BPF_ALU64 || cls == BPF_ALU || cls == BPF_LDX ||
                     (cls == BPF_LD && in.code == (BPF_LD | BPF_IMM | BPF_DW)))
                from_fp.erase(in.dst_reg);
            if (calls.count(i) != 0)
                callees[begin[f]].insert(calls[i].begin(), calls[i].end());
            if (in.code == (BPF_LD | BPF_IMM | BPF_DW))
                i++;
        }
        depth[begin[f]] = (std::max(-low, 1) + 31) / 32 * 32;
    }
    // The call graph has no cycles (the verifier refuses recursion): the deepest chain from 0.
    std::map<int, int> chain;
    auto deepest = [&](auto&& self, int fn) -> int {
        if (const auto it = chain.find(fn); it != chain.end())
            return it->second;
        int below = 0;
        for (const int c : callees[fn])
            below = std::max(below, self(self, c));
        return chain[fn] = depth[fn] + below;
    };
    return deepest(deepest, 0);
}

// The nettally object as loaded with classes on: program + nt_classify + its bpf_loop callback
// is the deepest chain (bpf/nettally_classes.h).
TEST(VerifierBudget, StackWithinLimitAsLinux61CountsIt) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;

    std::unique_ptr<nettally_bpf, SkelDeleter> skel(nettally::open_datapath_object());
    ASSERT_TRUE(skel) << "open_datapath_object: " << std::strerror(errno);
    skel->rodata->cfg_classes = 1;
    ASSERT_EQ(nettally_bpf__load(skel.get()), 0) << "nettally_bpf__load (cfg_classes 1)";
    int programs = 0;
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) {
        if (!bpf_program__autoload(prog))
            continue; // left out on this kernel (programs_loaded_here)
        const int stack = stack_chain_6_1(prog);
        std::printf("[ verifier ] %-28s %8d stack bytes as 6.1 counts them (limit 512)\n",
                    bpf_program__name(prog), stack);
        EXPECT_LE(stack, 512) << bpf_program__name(prog)
                              << ": 6.1 would refuse it (combined stack size too large)";
        EXPECT_GE(stack, 32) << bpf_program__name(prog) << ": no instructions read";
        programs++;
    }
    std::fflush(stdout);
    EXPECT_EQ(programs, programs_loaded_here());
}

} // namespace
