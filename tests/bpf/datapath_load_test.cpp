// Which programs a Datapath loads with its maps and which at a later attach (kernel/programs.cpp):
// the preloaded kinds only, and a program loaded later counts into the same maps (one object
// sharing every map with the first), on the loopback of a network namespace of the test's own;
// and the probe that asks the kernel what it lets them do (kernel/probe.h).
#include "bpf_test_util.h"
#include "kernel/datapath.h"
#include "kernel/probe.h"
#include "nettally_abi.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace nettally::test {
namespace {

constexpr uint32_t kLo = 1; // the loopback's ifindex in every namespace
constexpr size_t kPayload = 100;

// Brings lo up in this thread's namespace; "" or why not.
std::string lo_up() {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return std::string("socket: ") + std::strerror(errno);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    std::string err;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        err = std::string("SIOCGIFFLAGS: ") + std::strerror(errno);
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (err.empty() && ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        err = std::string("SIOCSIFFLAGS: ") + std::strerror(errno);
    close(s);
    return err;
}

// One UDP datagram of kPayload bytes over lo (127.0.0.1 to itself), received: "" or why not.
std::string send_one() {
    const int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    std::string err;
    char buf[kPayload] = {};
    if (rx < 0 || tx < 0 || bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        err = std::string("socket setup: ") + std::strerror(errno);
    else if (sendto(tx, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) !=
             static_cast<ssize_t>(sizeof(buf)))
        err = std::string("sendto: ") + std::strerror(errno);
    else if (recv(rx, buf, sizeof(buf), 0) != static_cast<ssize_t>(sizeof(buf)))
        err = std::string("recv: ") + std::strerror(errno);
    close(rx);
    close(tx);
    return err;
}

// lo's counters in one direction: packets and payload bytes.
std::pair<uint64_t, uint64_t> lo_counts(Datapath& dp, uint8_t dir) {
    const IfaceSnapshot snap = dp.read_ifaces();
    const auto it = snap.find(IfaceKey{kLo, dir});
    if (it == snap.end())
        return {0, 0};
    return {it->second.total.packets, it->second.total.payload};
}

void run_in_own_netns() {
    if (unshare(CLONE_NEWNET) != 0) {
        ADD_FAILURE() << "unshare(CLONE_NEWNET): " << std::strerror(errno);
        return;
    }
    if (const std::string why = lo_up(); !why.empty()) {
        ADD_FAILURE() << why;
        return;
    }
    DatapathOptions opts;
    opts.max_flows = 1024;
    opts.max_hosts = 1024;
    opts.pin_dir.clear(); // nothing pinned: the maps go with the namespace and the process
    opts.preload = std::vector<AttachKind>{AttachKind{true, false, false}};
    Datapath dp(opts);
    EXPECT_EQ(dp.loaded_programs(), (std::vector<std::string>{"nt_tc_egress_lan", "nt_tc_ingress_lan"}));

    // A kind not preloaded: its programs load now, and count into this Datapath's maps.
    dp.attach(kLo, false);
    EXPECT_EQ(dp.loaded_programs(), (std::vector<std::string>{"nt_tc_egress_lan", "nt_tc_egress_wan",
                                                              "nt_tc_ingress_lan", "nt_tc_ingress_wan"}));
    ASSERT_EQ(send_one(), "");
    for (uint8_t dir : {uint8_t{NT_DIR_INGRESS}, uint8_t{NT_DIR_EGRESS}})
        EXPECT_EQ(lo_counts(dp, dir), (std::pair<uint64_t, uint64_t>{1, kPayload}))
            << "direction " << int(dir);

    // Back to a preloaded kind (a role change swaps the filters in place), and again.
    dp.attach(kLo, true);
    dp.attach(kLo, false);
    EXPECT_EQ(dp.loaded_programs().size(), 4u) << "a program loaded twice";
    ASSERT_EQ(send_one(), "");
    for (uint8_t dir : {uint8_t{NT_DIR_INGRESS}, uint8_t{NT_DIR_EGRESS}})
        EXPECT_EQ(lo_counts(dp, dir), (std::pair<uint64_t, uint64_t>{2, 2 * kPayload}))
            << "direction " << int(dir);
}

TEST(DatapathPrograms, PreloadsTheConfiguredKindsAndLoadsOthersSharingTheMaps) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    // A namespace of its own for this thread only; it goes, with what is attached, when the
    // thread ends, whatever the outcome.
    std::thread t(run_in_own_netns);
    t.join();
}

// The probe decides by loading: a valid program loads (""), and a helper the kernel does not give
// that program type is refused with the verifier's line naming it, however the kernel words it
// ("unknown func" on 6.1, "program of this type cannot use helper" later). XDP has no
// bpf_get_netns_cookie on any kernel.
TEST(DatapathPrograms, ProbeLoadsWhatTheKernelTakesAndNamesTheHelperItRefuses) {
    if (const std::string why = bpf_unavailable_reason(); !why.empty())
        GTEST_SKIP() << why;
    const bpf_insn pass[] = {{0xb7, 0, 0, 0, XDP_PASS}, {0x95, 0, 0, 0, 0}};
    EXPECT_EQ(program_refusal(BPF_PROG_TYPE_XDP, BPF_XDP, "nt_probe_pass", pass, std::size(pass)), "");
    const bpf_insn cookie[] = {
        {0x85, 0, 0, 0, BPF_FUNC_get_netns_cookie}, {0xb7, 0, 0, 0, XDP_PASS}, {0x95, 0, 0, 0, 0}};
    const std::string why =
        program_refusal(BPF_PROG_TYPE_XDP, BPF_XDP, "nt_probe_cookie", cookie, std::size(cookie));
    EXPECT_NE(why.find("get_netns_cookie"), std::string::npos) << "the refusal: " << why;
    // What the daemon asks with it: both probes give "" or a reason, never throw; the kernel's answer
    // is compared with an independent probe by the cgroup and XDP integration tests.
    RecordProperty("xdp_unavailable", xdp_unavailable());
    RecordProperty("netns_cookie_unavailable", netns_cookie_unavailable());
}

} // namespace
} // namespace nettally::test
