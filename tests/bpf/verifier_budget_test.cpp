// Verifier budget: every program in the nettally object must verify in at most a quarter
// of the kernel's instruction-processing limit (BPF_COMPLEXITY_LIMIT_INSNS, 1,000,000),
// so parser growth (more tags, more extension headers, unrolled loops) is caught long
// before a kernel refuses to load it. The counts come from bpf_prog_info.verified_insns
// (kernel >= 5.16) and are printed and recorded as test properties so growth is visible.
#include "nettally.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

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
};

TEST(VerifierBudget, EveryProgramWithinQuarterOfComplexityLimit) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;

    std::unique_ptr<nettally_bpf, SkelDeleter> skel(nettally_bpf__open());
    ASSERT_TRUE(skel) << "nettally_bpf__open: " << std::strerror(errno);
    const int err = nettally_bpf__load(skel.get());
    ASSERT_EQ(err, 0) << "nettally_bpf__load: " << std::strerror(-err) << " (libbpf log above)";

    int programs = 0;
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) {
        const std::string name = bpf_program__name(prog);
        bpf_prog_info info{};
        __u32 len = sizeof(info);
        ASSERT_EQ(bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len), 0)
            << name << " bpf_obj_get_info_by_fd: " << std::strerror(errno);
        if (len < offsetof(bpf_prog_info, verified_insns) + sizeof(info.verified_insns) ||
            info.verified_insns == 0)
            GTEST_SKIP() << name << ": kernel does not report bpf_prog_info.verified_insns (needs >= 5.16)";

        const uint64_t n = info.verified_insns;
        std::printf("[ verifier ] %-20s %8llu verified insns (budget %llu, %.2f%% of the limit)\n",
                    name.c_str(), static_cast<unsigned long long>(n),
                    static_cast<unsigned long long>(kBudget),
                    100.0 * static_cast<double>(n) / static_cast<double>(kComplexityLimitInsns));
        RecordProperty(name + "_verified_insns", std::to_string(n));
        EXPECT_LE(n, kBudget) << name << " verified_insns " << n
                              << " exceeds 25% of BPF_COMPLEXITY_LIMIT_INSNS";
        programs++;
    }
    std::fflush(stdout);
    EXPECT_EQ(programs, 10) << "programs in the object: nt_tc_{ingress,egress}_{lan,wan,l3}, "
                               "nt_tc_ingress_xdpfix_{lan,wan} and nt_xdp_ingress_{lan,wan}; a new "
                               "program must be measured here too";
}

} // namespace
