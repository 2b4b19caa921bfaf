// nt_bench_evict: the daemon's cost to finish (evict) flows, per flow, at N live flows.
//
//   nt_bench_evict --flows N [--json PATH]
//       Loads the real Datapath (private pins), fills nt_flows with N synthetic
//       flows, times a plain Collector::poll() (no flow old enough to finish:
//       median of 3), then lets every flow pass the idle timeout and times the
//       one poll that finishes all N. Prints both, and the eviction cost per
//       flow: (evicting poll - plain poll) / N, in wall time and in the
//       process's CPU time (user + system: the kernel's map work is system
//       time), which a busy machine disturbs less. Checks that every flow was
//       finished and the map is empty afterwards. Twice, each on a fresh
//       Datapath: batched (the eviction program, kernel/evict.h: what the
//       daemon does) and per key (one lookup-and-delete syscall per flow: what
//       it did before, and still does on kernels without the program).
#include "bench_util.h"
#include "kernel/datapath.h"
#include "os/clock.h"

#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>

using namespace nettally;
using namespace nettally::bench;

namespace {

constexpr uint32_t kSyntheticIfindex = 1000;

double ms_since(uint64_t t0) {
    return static_cast<double>(now_ns() - t0) / 1e6;
}

struct Result {
    double plain_ms = 0, evict_ms = 0, plain_cpu_ms = 0, evict_cpu_ms = 0;
    uint64_t finished = 0, left = 0;
};

double cpu_ms() {
    return static_cast<double>(cpu_ns(CLOCK_PROCESS_CPUTIME_ID)) / 1e6;
}

Result run(uint64_t flows, bool batched) {
    uint32_t max_entries = 1024;
    while (max_entries < flows)
        max_entries <<= 1;
    DatapathOptions opts;
    opts.max_flows = max_entries;
    opts.batched_eviction = batched;
    opts.pin_dir = "/sys/fs/bpf/ntb-evict-" + std::to_string(getpid());
    Datapath dp(opts);
    struct Unpin {
        Datapath& d;
        ~Unpin() { d.remove_pins(); }
    } unpin{dp};

    const int fd = find_map_fd(0, "nt_flows");
    if (fd < 0)
        throw std::runtime_error("the Datapath's nt_flows map is not among this process's fds");
    fill_flows(fd, libbpf_num_possible_cpus(), 0, flows, kSyntheticIfindex);

    Collector collector(dp);
    collector.set_interfaces({});
    auto poll = [&] { collector.poll(PollClock{realtime_us(), kernel_stamp_ns()}); };
    collector.set_flow_timeouts({std::chrono::hours(1), std::chrono::hours(1)});
    poll(); // warm-up
    std::vector<double> plain, plain_cpu;
    for (int i = 0; i < 3; i++) {
        const uint64_t t0 = now_ns();
        const double c0 = cpu_ms();
        poll();
        plain.push_back(ms_since(t0));
        plain_cpu.push_back(cpu_ms() - c0);
    }
    Result r;
    r.plain_ms = median(plain);
    r.plain_cpu_ms = median(plain_cpu);

    collector.set_flow_timeouts({std::chrono::seconds(1), std::chrono::seconds(10)});
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    const uint64_t t0 = now_ns();
    const double c0 = cpu_ms();
    poll();
    r.evict_ms = ms_since(t0);
    r.evict_cpu_ms = cpu_ms() - c0;
    r.finished = collector.stats().flows_evicted;
    r.left = count_entries(fd, sizeof(nt_flow_key));
    close(fd);
    return r;
}

double per_flow_us(double with_ms, double without_ms, uint64_t flows) {
    return (with_ms - without_ms) * 1000.0 / static_cast<double>(flows);
}

} // namespace

int main(int argc, char** argv) {
    uint64_t flows = 0;
    std::string json_path;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--flows")
            flows = std::stoull(argv[i + 1]);
        else if (a == "--json")
            json_path = argv[i + 1];
    }
    if (!flows) {
        std::fprintf(stderr, "Usage: nt_bench_evict --flows N [--json PATH]\n");
        return 2;
    }
    spdlog::set_level(spdlog::level::warn);
    try {
        nlohmann::json j{{"flows", flows}};
        bool ok = true;
        for (const bool batched : {true, false}) {
            const Result r = run(flows, batched);
            const double wall = per_flow_us(r.evict_ms, r.plain_ms, flows);
            const double cpu = per_flow_us(r.evict_cpu_ms, r.plain_cpu_ms, flows);
            std::printf("%9llu flows, %s: plain poll %.2f ms, evicting poll %.2f ms -> eviction %.3f us/flow "
                        "(CPU %.3f us/flow; finished %llu, left in map %llu)\n",
                        static_cast<unsigned long long>(flows), batched ? "batched" : "per key", r.plain_ms,
                        r.evict_ms, wall, cpu, static_cast<unsigned long long>(r.finished),
                        static_cast<unsigned long long>(r.left));
            const std::string p = batched ? "" : "per_key_";
            j[p + "plain_poll_ms"] = r.plain_ms;
            j[p + "evict_poll_ms"] = r.evict_ms;
            j[p + "evict_us_per_flow"] = wall;
            j[p + "evict_cpu_us_per_flow"] = cpu;
            j[p + "finished"] = r.finished;
            j[p + "left"] = r.left;
            ok = ok && r.finished == flows && r.left == 0;
        }
        if (!json_path.empty())
            std::ofstream(json_path) << j.dump(2) << "\n";
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nt_bench_evict: %s\n", e.what());
        return 1;
    }
}
