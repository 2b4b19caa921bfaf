// nt_bench_export: nettallyd's CPU cost per exported IPFIX record.
//
//   nt_bench_export [--rate N] [--seconds S] [--ipv6-share P] [--json PATH]
//       Finishes N synthetic flows per second (default 10000; P percent IPv6, default 30) for S
//       seconds (default 5) the way the daemon does: ExportTracker::finished() makes each record,
//       records_fitting() + Stream::flows() pack them into messages of 1400 bytes, and every
//       message is sent on a non-blocking datagram socket (a local socketpair whose other end
//       this process drains, so nothing leaves the machine). Prints the process CPU time per
//       record and per message, and the CPU share at that rate (also as JSON to PATH). Figures
//       only: no pass or fail.
#include "bench_util.h"
#include "core/export.h"
#include "core/ipfix.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

using namespace nettally;
using namespace nettally::bench;

namespace {

FlowEntry synthetic_flow(uint64_t i, bool v6) {
    FlowEntry f;
    f.key = synthetic_flow_key(i * 2 + (v6 ? 1 : 0), 1000);
    f.counts = Counts(10 + i % 7, 1500, 1400, 1300, 1200);
    f.first_ns = 1000000000ull;
    f.last_ns = 2000000000ull;
    return f;
}

} // namespace

int main(int argc, char** argv) {
    uint64_t rate = 10000, seconds = 5, v6_share = 30;
    std::string json;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
        if (a == "--json")
            json = argv[i + 1];
        else if (a == "--rate")
            rate = v;
        else if (a == "--seconds")
            seconds = v;
        else if (a == "--ipv6-share")
            v6_share = v;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv) < 0) {
        std::perror("socketpair");
        return 1;
    }
    ExportTracker tracker;
    ipfix::Stream stream(1, ipfix::kDefaultPen, 1400);
    const auto to_unix = [](uint64_t boot_ns) { return boot_ns / 1000; };
    uint64_t records = 0, messages = 0, send_errors = 0, busy_ns = 0;
    const uint64_t per_tick = rate / 100; // a poll every 10 ms
    char drain[65536];
    for (uint64_t tick = 0; tick < seconds * 100; tick++) {
        const uint64_t t0 = now_ns(), c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        std::vector<ipfix::FlowRecord> batch;
        for (uint64_t k = 0; k < per_tick; k++) {
            const uint64_t i = tick * per_tick + k;
            if (auto r =
                    tracker.finished(synthetic_flow(i, i % 100 < v6_share), ipfix::EndReason::Idle, to_unix))
                batch.push_back(*r);
        }
        std::span<const ipfix::FlowRecord> rest(batch);
        while (!rest.empty()) {
            const size_t n = ipfix::records_fitting(rest, 1400);
            const auto msg = stream.flows(static_cast<uint32_t>(tick), rest.subspan(0, n)).front();
            if (send(sv[0], msg.data(), msg.size(), MSG_DONTWAIT) < 0)
                send_errors++;
            messages++;
            records += n;
            rest = rest.subspan(n);
            while (recv(sv[1], drain, sizeof drain, MSG_DONTWAIT) > 0) {
            }
        }
        busy_ns += cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
        const uint64_t spent = now_ns() - t0;
        if (spent < 10000000)
            std::this_thread::sleep_for(std::chrono::nanoseconds(10000000 - spent));
    }
    std::printf("export: %llu records in %llu messages (%llu send errors) at %llu records/s for %llu s\n",
                static_cast<unsigned long long>(records), static_cast<unsigned long long>(messages),
                static_cast<unsigned long long>(send_errors), static_cast<unsigned long long>(rate),
                static_cast<unsigned long long>(seconds));
    std::printf("export: CPU %.0f ns per record, %.0f ns per message (incl. the drain), %.2f %% of one CPU\n",
                static_cast<double>(busy_ns) / static_cast<double>(records),
                static_cast<double>(busy_ns) / static_cast<double>(messages),
                100.0 * static_cast<double>(busy_ns) / (static_cast<double>(seconds) * 1e9));
    if (!json.empty()) {
        const nlohmann::json j{
            {"rate", rate},
            {"seconds", seconds},
            {"records", records},
            {"messages", messages},
            {"send_errors", send_errors},
            {"ns_per_record", static_cast<double>(busy_ns) / static_cast<double>(records)},
            {"cpu_pct", 100.0 * static_cast<double>(busy_ns) / (static_cast<double>(seconds) * 1e9)}};
        std::ofstream(json) << j.dump(2) << "\n";
    }
    close(sv[0]);
    close(sv[1]);
    return 0;
}
