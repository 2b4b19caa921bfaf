// nt_bench_poll: the daemon's cost per poll cycle at N live flows.
//
//   nt_bench_poll --flows N [--polls K] [--max-entries M] [--json PATH]
//       Loads the real Datapath (nettally's skeleton, max_flows = M, default
//       the next power of two >= N), fills nt_flows with N synthetic flows
//       from userspace, and times Collector::poll() over it K times (after one
//       untimed warm-up poll), plus Datapath::read_flows() alone. Prints the
//       median poll time, the time per live flow, and VmRSS / VmHWM.
//       One N per process, so VmHWM belongs to that N alone.
//
//   nt_bench_poll --fill-pid PID --flows N
//       Fills the nt_flows map of a running nettallyd (found through
//       /proc/PID/fdinfo) with N synthetic flows, so a bench can read the real
//       daemon's RSS and CPU at N live flows.
//
//   nt_bench_poll --read-ifaces PID
//       Prints the interface totals in a running nettallyd's nt_ifaces map as
//       JSON (summed over CPUs): what the daemon's next poll will see. The
//       system bench uses it when nettallyctl is not available.
//
// Synthetic flows use ifindex 1000, an interface the daemon does not account,
// so they never take part in the reconciliation check (which compares flows
// with the totals of accounted interfaces).
#include "bench_util.h"
#include "kernel/datapath.h"
#include "os/clock.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace nettally;
using namespace nettally::bench;

namespace {

constexpr uint32_t kSyntheticIfindex = 1000;

[[noreturn]] void usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "Usage: nt_bench_poll --flows N [--polls K] [--max-entries M] [--json PATH]\n"
                 "       nt_bench_poll --fill-pid PID --flows N\n"
                 "       nt_bench_poll --read-ifaces PID\n");
    std::exit(rc);
}

// The daemon grows under the bench (pinned maps, flow eviction came after the
// first Datapath): these adapt to what the Datapath and Collector offer, so the
// bench builds against every version of daemon/ and never rots.
template <typename Opts> void use_private_pins(Opts& o) {
    if constexpr (requires { o.pin_dir = std::string(); })
        o.pin_dir = "/sys/fs/bpf/ntb-poll-" + std::to_string(getpid()); // never the daemon's own pins
}
template <typename Dp> void remove_pins(Dp& d) {
    if constexpr (requires { d.remove_pins(); })
        d.remove_pins();
}
template <typename C> void keep_flows_live(C& c) {
    // Synthetic flows are idle: an hour of idle timeout keeps eviction out of the timing.
    if constexpr (requires { c.set_flow_timeouts({std::chrono::hours(1), std::chrono::hours(1)}); })
        c.set_flow_timeouts({std::chrono::hours(1), std::chrono::hours(1)});
}

uint32_t next_pow2(uint64_t n) {
    uint64_t p = 1024;
    while (p < n)
        p <<= 1;
    return static_cast<uint32_t>(p);
}

int read_ifaces(pid_t pid) {
    int fd = find_map_fd(pid, "nt_ifaces");
    if (fd < 0) {
        std::fprintf(stderr, "nt_bench_poll: process %d holds no map called nt_ifaces\n", pid);
        return 1;
    }
    const int ncpus = libbpf_num_possible_cpus();
    std::vector<nt_iface_val> vals(static_cast<size_t>(ncpus));
    nlohmann::json out = nlohmann::json::array();
    nt_iface_key key{}, next{};
    void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        if (bpf_map_lookup_elem(fd, &key, vals.data()) != 0)
            continue;
        const IfaceCounters c = fold_percpu(std::span<const nt_iface_val>(vals));
        out.push_back({{"ifindex", key.ifindex},
                       {"dir", key.dir},
                       {"packets", c.total.packets},
                       {"l2", c.total.l2},
                       {"l3", c.total.l3},
                       {"l4", c.total.l4},
                       {"payload", c.total.payload}});
    }
    close(fd);
    std::printf("%s\n", out.dump().c_str());
    return 0;
}

int fill_pid(pid_t pid, uint64_t flows) {
    int fd = find_map_fd(pid, "nt_flows");
    if (fd < 0) {
        std::fprintf(stderr, "nt_bench_poll: process %d holds no map called nt_flows\n", pid);
        return 1;
    }
    const uint64_t t0 = now_ns();
    fill_flows(fd, libbpf_num_possible_cpus(), 0, flows, kSyntheticIfindex);
    std::printf("filled %llu flows into nt_flows of pid %d in %.0f ms\n",
                static_cast<unsigned long long>(flows), pid, static_cast<double>(now_ns() - t0) / 1e6);
    close(fd);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    uint64_t flows = 0;
    int polls = 0;
    uint32_t max_entries = 0;
    pid_t pid = 0, read_pid = 0;
    std::string json_path;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc)
                usage(2);
            return argv[++i];
        };
        if (a == "--flows")
            flows = std::stoull(next());
        else if (a == "--polls")
            polls = std::stoi(next());
        else if (a == "--max-entries")
            max_entries = static_cast<uint32_t>(std::stoul(next()));
        else if (a == "--fill-pid")
            pid = static_cast<pid_t>(std::stol(next()));
        else if (a == "--read-ifaces")
            read_pid = static_cast<pid_t>(std::stol(next()));
        else if (a == "--json")
            json_path = next();
        else if (a == "-h" || a == "--help")
            usage(0);
        else
            usage(2);
    }
    if (read_pid)
        return read_ifaces(read_pid);
    if (flows == 0)
        usage(2);
    spdlog::set_level(spdlog::level::warn);

    try {
        if (pid)
            return fill_pid(pid, flows);

        if (!max_entries)
            max_entries = next_pow2(flows);
        if (!polls)
            polls = flows >= 1000000 ? 5 : flows >= 100000 ? 10 : 20;
        const uint64_t rss_start = proc_status_kib(0, "VmRSS").value_or(0);

        DatapathOptions opts;
        opts.max_flows = max_entries;
        use_private_pins(opts);
        uint64_t t0 = now_ns();
        Datapath dp(opts);
        const double load_ms = static_cast<double>(now_ns() - t0) / 1e6;
        struct Unpin {
            Datapath& d;
            ~Unpin() { remove_pins(d); }
        } unpin{dp};

        const int fd = find_map_fd(0, "nt_flows");
        if (fd < 0)
            throw std::runtime_error("the Datapath's nt_flows map is not among this process's fds");
        t0 = now_ns();
        fill_flows(fd, libbpf_num_possible_cpus(), 0, flows, kSyntheticIfindex);
        const double fill_ms = static_cast<double>(now_ns() - t0) / 1e6;
        close(fd);

        Collector collector(dp);
        collector.set_interfaces({});
        keep_flows_live(collector);
        auto poll = [&] { collector.poll(PollClock{realtime_us(), kernel_stamp_ns()}); };
        t0 = now_ns();
        poll();
        const double first_ms = static_cast<double>(now_ns() - t0) / 1e6;
        if (collector.flows().size() != flows)
            std::fprintf(stderr, "nt_bench_poll: warning: poll saw %zu flows, expected %llu\n",
                         collector.flows().size(), static_cast<unsigned long long>(flows));

        std::vector<double> poll_ms, poll_cpu_ms, read_ms;
        for (int i = 0; i < polls; i++) {
            t0 = now_ns();
            const uint64_t c0 = cpu_ns();
            poll();
            poll_cpu_ms.push_back(static_cast<double>(cpu_ns() - c0) / 1e6);
            poll_ms.push_back(static_cast<double>(now_ns() - t0) / 1e6);
        }
        const uint64_t rss = proc_status_kib(0, "VmRSS").value_or(0);
        // The peak of the polls, before read_flows alone fills a second table of its own.
        const uint64_t hwm = proc_status_kib(0, "VmHWM").value_or(0);
        std::vector<FlowEntry> v;
        for (int i = 0; i < polls; i++) {
            t0 = now_ns();
            dp.read_flows(v);
            read_ms.push_back(static_cast<double>(now_ns() - t0) / 1e6);
        }
        const double med = median(poll_ms);
        const double per_flow_us = med * 1000.0 / static_cast<double>(flows);
        const double cpu_med = median(poll_cpu_ms);
        const double cpu_per_flow_us = cpu_med * 1000.0 / static_cast<double>(flows);

        std::printf(
            "%9llu flows (max_entries %u): poll %.2f ms median of %d (first %.2f ms) = %.3f us/flow "
            "(CPU %.2f ms = %.3f us/flow); "
            "read_flows alone %.2f ms; VmRSS %.1f MiB (%.1f before load), VmHWM %.1f MiB; load %.0f ms, "
            "fill %.0f ms\n",
            static_cast<unsigned long long>(flows), max_entries, med, polls, first_ms, per_flow_us, cpu_med,
            cpu_per_flow_us, median(read_ms), static_cast<double>(rss) / 1024,
            static_cast<double>(rss_start) / 1024, static_cast<double>(hwm) / 1024, load_ms, fill_ms);
        if (!json_path.empty()) {
            nlohmann::json j = {{"flows", flows},
                                {"max_entries", max_entries},
                                {"polls", polls},
                                {"poll_ms", med},
                                {"poll_ms_all", poll_ms},
                                {"first_poll_ms", first_ms},
                                {"per_flow_us", per_flow_us},
                                {"poll_cpu_ms", cpu_med},
                                {"cpu_per_flow_us", cpu_per_flow_us},
                                {"read_flows_ms", median(read_ms)},
                                {"rss_kib", rss},
                                {"rss_start_kib", rss_start},
                                {"hwm_kib", hwm},
                                {"load_ms", load_ms},
                                {"fill_ms", fill_ms}};
            std::ofstream f(json_path);
            f << j.dump(2) << "\n";
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nt_bench_poll: %s\n", e.what());
        return 1;
    }
    return 0;
}
