// nt_bench_scrape: the daemon's cost per Prometheus scrape, and whether scrapes delay polls.
//
//   nt_bench_scrape [--hosts N] [--flows F] [--max-hosts M] [--rounds K] [--seconds S] [--json PATH]
//
// A Collector over an in-memory MapReader holding N hosts (default 10,000) and F live flows
// (default 100,000) on 4 interfaces, polled once. Then:
//  1. The scrape's two halves, K times each (default 50), in CPU time of the calling thread
//     (CLOCK_THREAD_CPUTIME_ID): build_metrics (what the event loop does: read the totals,
//     pick the top M hosts) and metrics_text (what the HTTP thread does: format the text).
//     Prints median and max in ms, the exposition's size and series count.
//  2. The real exposer (io/metrics.h) on 127.0.0.1 and an sd-event loop polling the Collector
//     100 ms after the end of the previous poll (a poll of F flows), for S seconds (default 5)
//     without scrapes and S seconds with a client scraping back to back over HTTP: the process
//     CPU per scrape (from getrusage, minus the polls-only phase) and the poll timer's lateness
//     (how long after its due time each poll started) in both phases, median / p99 / max.
// Figures only: it does not pass or fail.
#include "bench_util.h"
#include "core/metrics.h"
#include "io/metrics.h"
#include "os/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace nettally;
using namespace nettally::bench;

namespace {

class MemMaps : public MapReader {
public:
    std::vector<FlowEntry> flows;
    std::vector<HostEntry> hosts;
    IfaceSnapshot read_ifaces() override { return {}; }
    void read_flows(std::vector<FlowEntry>& out) override { out = flows; }
    std::vector<HostEntry> read_hosts() override { return hosts; }
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>&) override { return {}; }
    std::map<IfaceKey, EvictedSums> read_evicted() override { return {}; }
    void write_evicted(const IfaceKey&, const EvictedSums&) override {}
};

struct Options {
    uint64_t hosts = 10000, flows = 100000, max_hosts = 100, rounds = 50, seconds = 5;
    std::string json;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        const auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--hosts")
            o.hosts = std::stoull(next());
        else if (a == "--flows")
            o.flows = std::stoull(next());
        else if (a == "--max-hosts")
            o.max_hosts = std::stoull(next());
        else if (a == "--rounds")
            o.rounds = std::stoull(next());
        else if (a == "--seconds")
            o.seconds = std::stoull(next());
        else if (a == "--json")
            o.json = next();
        else {
            std::fprintf(stderr,
                         "usage: nt_bench_scrape [--hosts N] [--flows F] [--max-hosts M] [--rounds K] "
                         "[--seconds S] [--json PATH]\n");
            std::exit(a == "--help" ? 0 : 2);
        }
    }
    return o;
}

void fill(MemMaps& m, const Options& o) {
    for (uint64_t i = 0; i < o.flows; i++) {
        FlowEntry f;
        f.key = synthetic_flow_key(i, static_cast<uint32_t>(1 + i % 4));
        f.counts = Counts(i % 100 + 1, 1000 + i, 900 + i, 800 + i, 700 + i);
        m.flows.push_back(f);
    }
    for (uint64_t i = 0; i < o.hosts; i++) {
        HostEntry h;
        h.key.ifindex = 1 + static_cast<uint32_t>(i % 2); // lan interfaces 1 and 2
        h.key.family = NT_AF_INET;
        const uint8_t mac[6] = {
            2, 0, 0, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        std::memcpy(h.key.mac, mac, 6);
        const uint8_t ip[4] = {198, 19, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        std::memcpy(h.key.addr, ip, 4);
        h.sent = Counts(i + 1, (i * 7919) % 1000003 + 100, 1, 1, 1);
        h.received = Counts(i + 1, (i * 104729) % 1000003 + 100, 1, 1, 1);
        m.hosts.push_back(h);
    }
}

double thread_cpu_ms() {
    return static_cast<double>(cpu_ns()) * 1e-6;
}

double process_cpu_ms() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + t.tv_usec * 1e-3; };
    return ms(ru.ru_utime) + ms(ru.ru_stime);
}

double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// One HTTP GET /metrics; returns the body size, 0 on failure.
size_t scrape(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t total = 0;
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
        if (write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
            char buf[65536];
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0)
                total += static_cast<size_t>(n);
        }
    }
    close(fd);
    return total;
}

int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

struct Phase {
    std::vector<double> late_ms;
    double cpu_ms = 0;
    uint64_t scrapes = 0;
    size_t last_size = 0;
};

// Polls every 100 ms on an sd-event loop for `seconds`, with or without a back-to-back scraper.
Phase run_phase(sd_event* ev, Collector& c, int port, uint64_t seconds, bool scraping) {
    Phase ph;
    constexpr uint64_t kPeriodUs = 100000;
    uint64_t now = 0;
    sd_event_now(ev, CLOCK_MONOTONIC, &now);
    struct Ctx {
        Collector* c;
        Phase* ph;
        uint64_t due;
        uint64_t end;
        bool finished = false;
    } ctx{&c, &ph, now + kPeriodUs, now + seconds * 1000000};
    sd_event_source* t = nullptr;
    sd_event_add_time(
        ev, &t, CLOCK_MONOTONIC, ctx.due, 1,
        [](sd_event_source* s, uint64_t, void* p) {
            auto* x = static_cast<Ctx*>(p);
            x->ph->late_ms.push_back(static_cast<double>(static_cast<int64_t>(now_ns() / 1000 - x->due)) /
                                     1e3);
            x->c->poll({});
            // Armed relative to the poll's end, as the daemon arms its poll timer: a lateness is
            // the loop's delay (a scrape holding it, scheduling), never a long poll carried on.
            x->due = now_ns() / 1000 + kPeriodUs;
            if (x->due >= x->end) {
                x->finished = true;
                return 0;
            }
            sd_event_source_set_time(s, x->due);
            return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        },
        &ctx);
    std::atomic<bool> stop{false}, stopped{!scraping};
    std::thread scraper;
    const double cpu0 = process_cpu_ms();
    if (scraping)
        scraper = std::thread([&] {
            while (!stop) {
                const size_t n = scrape(port);
                if (n) {
                    ph.last_size = n;
                    ph.scrapes++;
                }
            }
            stopped = true;
        });
    while (!ctx.finished)
        sd_event_run(ev, UINT64_MAX);
    stop = true;
    while (!stopped) // the last scrape waits for the loop
        sd_event_run(ev, 10000);
    if (scraper.joinable())
        scraper.join();
    ph.cpu_ms = process_cpu_ms() - cpu0;
    sd_event_source_disable_unref(t);
    return ph;
}

} // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    spdlog::set_level(spdlog::level::warn);
    MemMaps maps;
    fill(maps, o);
    Collector c(maps);
    c.set_interfaces({{"lan0", "lan", 1}, {"lan1", "lan", 2}, {"wan0", "wan", 3}, {"wan1", "wan", 4}});
    c.set_flow_timeouts({std::chrono::hours(1), std::chrono::hours(1)});
    c.poll({});
    std::printf("scrape cost: %zu hosts, %zu live flows, max_hosts %llu\n", c.hosts().size(),
                c.flows().size(), static_cast<unsigned long long>(o.max_hosts));

    const Status st{{"flows", static_cast<uint32_t>(c.flows().size())}, {"polls", uint64_t{1}}};
    std::vector<double> build_ms, text_ms;
    size_t series = 0, bytes = 0;
    for (uint64_t r = 0; r < o.rounds; r++) {
        MetricsSources src{c, st};
        src.max_hosts = o.max_hosts;
        src.version = "bench";
        double t0 = thread_cpu_ms();
        const MetricFamilies f = build_metrics(src);
        build_ms.push_back(thread_cpu_ms() - t0);
        t0 = thread_cpu_ms();
        const std::string text = metrics_text(f);
        text_ms.push_back(thread_cpu_ms() - t0);
        bytes = text.size();
        series = 0;
        for (const auto& fam : f)
            series += fam.metric.size();
    }
    std::printf("  loop share (build_metrics):  median %.3f ms CPU, max %.3f ms\n", median(build_ms),
                *std::max_element(build_ms.begin(), build_ms.end()));
    std::printf("  HTTP thread (metrics_text):  median %.3f ms CPU, max %.3f ms\n", median(text_ms),
                *std::max_element(text_ms.begin(), text_ms.end()));
    std::printf("  exposition: %zu series, %zu bytes\n", series, bytes);

    sd_event* ev = nullptr;
    if (sd_event_new(&ev) < 0)
        return 1;
    const int port = free_port();
    Phase idle, busy;
    {
        MetricsExposer exposer(ev, "127.0.0.1:" + std::to_string(port), [&] {
            MetricsSources src{c, st};
            src.max_hosts = o.max_hosts;
            src.version = "bench";
            return build_metrics(src);
        });
        idle = run_phase(ev, c, port, o.seconds, false);
        busy = run_phase(ev, c, port, o.seconds, true);
    }
    sd_event_unref(ev);
    const double per_scrape =
        busy.scrapes ? (busy.cpu_ms - idle.cpu_ms) / static_cast<double>(busy.scrapes) : 0;
    std::printf("  HTTP scrapes back to back for %llus: %llu scrapes of %zu bytes, %.3f ms process CPU per "
                "scrape (minus the polls-only phase)\n",
                static_cast<unsigned long long>(o.seconds), static_cast<unsigned long long>(busy.scrapes),
                busy.last_size, per_scrape);
    std::printf("  poll lateness, polls only:     median %.3f ms, p99 %.3f ms, max %.3f ms (%zu polls)\n",
                percentile(idle.late_ms, 0.5), percentile(idle.late_ms, 0.99), percentile(idle.late_ms, 1),
                idle.late_ms.size());
    std::printf("  poll lateness, while scraping: median %.3f ms, p99 %.3f ms, max %.3f ms (%zu polls)\n",
                percentile(busy.late_ms, 0.5), percentile(busy.late_ms, 0.99), percentile(busy.late_ms, 1),
                busy.late_ms.size());
    if (!o.json.empty()) {
        nlohmann::json j{{"hosts", c.hosts().size()},
                         {"flows", c.flows().size()},
                         {"max_hosts", o.max_hosts},
                         {"build_ms_median", median(build_ms)},
                         {"text_ms_median", median(text_ms)},
                         {"series", series},
                         {"bytes", bytes},
                         {"http_scrapes", busy.scrapes},
                         {"cpu_ms_per_scrape", per_scrape},
                         {"poll_late_ms_max_idle", percentile(idle.late_ms, 1)},
                         {"poll_late_ms_max_scraping", percentile(busy.late_ms, 1)},
                         {"poll_late_ms_p99_scraping", percentile(busy.late_ms, 0.99)}};
        std::ofstream(o.json) << j.dump(2) << "\n";
    }
    return 0;
}
