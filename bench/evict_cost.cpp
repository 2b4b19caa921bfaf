// nt_bench_evict: the daemon's cost to finish (evict) flows, per flow, at N live flows.
//
//   nt_bench_evict --flows N [--json PATH]
//       Loads the real Datapath (private pins), fills nt_flows with N synthetic
//       flows, times a plain Collector::poll() (no flow old enough to finish:
//       median of 3), then lets every flow pass the idle timeout and times the
//       one poll that finishes all N with lookup-and-delete. Prints both, and
//       the eviction cost per flow: (evicting poll - plain poll) / N. Checks
//       that every flow was finished and the map is empty afterwards.
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
        uint32_t max_entries = 1024;
        while (max_entries < flows)
            max_entries <<= 1;
        DatapathOptions opts;
        opts.max_flows = max_entries;
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
        std::vector<double> plain;
        for (int i = 0; i < 3; i++) {
            const uint64_t t0 = now_ns();
            poll();
            plain.push_back(ms_since(t0));
        }
        const double plain_ms = median(plain);

        collector.set_flow_timeouts({std::chrono::seconds(1), std::chrono::seconds(10)});
        std::this_thread::sleep_for(std::chrono::milliseconds(1200));
        const uint64_t t0 = now_ns();
        poll();
        const double evict_ms = ms_since(t0);
        const uint64_t finished = collector.stats().flows_evicted;
        const uint64_t left = count_entries(fd, sizeof(nt_flow_key));
        close(fd);
        const double per_flow_us = (evict_ms - plain_ms) * 1000.0 / static_cast<double>(flows);
        std::printf("%9llu flows: plain poll %.2f ms, evicting poll %.2f ms -> eviction %.3f us/flow "
                    "(finished %llu, left in map %llu)\n",
                    static_cast<unsigned long long>(flows), plain_ms, evict_ms, per_flow_us,
                    static_cast<unsigned long long>(finished), static_cast<unsigned long long>(left));
        if (!json_path.empty()) {
            std::ofstream f(json_path);
            f << nlohmann::json{{"flows", flows},
                                {"plain_poll_ms", plain_ms},
                                {"evict_poll_ms", evict_ms},
                                {"evict_us_per_flow", per_flow_us},
                                {"finished", finished},
                                {"left", left}}
                     .dump(2)
              << "\n";
        }
        return finished == flows && left == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nt_bench_evict: %s\n", e.what());
        return 1;
    }
}
