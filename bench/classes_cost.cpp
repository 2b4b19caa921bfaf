// nt_bench_classes_kernel: the in-kernel cost per packet of traffic classes, and the swap time.
//
//   nt_bench_classes_kernel [--rounds R] [--repeat N] [--json PATH]
//       nt_tc_ingress_wan on one IPv4/UDP 64-byte packet (BPF_PROG_TEST_RUN, pinned to CPU 0),
//       first with no ruleset (nt_cls_gen = 0: today's path plus one load), then with rulesets of
//       1, 100, 1,000 and 10,000 rules loaded by KernelClasses:
//         miss    no rule matches the packet (worst case): one summary AND over the dimensions,
//                 then each candidate chunk of 256 rules the summaries leave (here: the last)
//         first   a catch-all first rule matches: chunk 0 (best case)
//         cached  "miss", but the rules test nothing per packet, so the class cached in the
//                 flow entry is reused (the bench repeats one packet: always a hit)
//       "miss" and "first" get one rule more, on DSCP, which turns the flow cache off.
//       Each figure is the median over R rounds (default 21) of the kernel's mean ns per
//       repetition over N repetitions (default 200000); the rulesets take turns within a round.
//       "swap_ms" is KernelClasses::load's wall time (fill the unused slot, wait for running
//       programs, flip), the median over the rounds. One JSON object per line on stdout; --json
//       also writes them as one document (bench/run.sh, report.py). Figures only: no pass or fail.
#include "bench_util.h"
#include "core/classes.h"
#include "core/classes_bundle.h"
#include "kernel/classes.h"
#include "nettally.skel.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace nettally;
using namespace nettally::bench;

namespace {

// n rules, none of which matches the bench packet (its addresses are in 198.18.0.0/16): each
// names a /24 of 198.19.0.0/16 (past the 256th: a host of one) or a /64 of fd00::/8, every third
// with a UDP port range.
RuleSet ruleset(size_t n, bool catch_all_first, bool per_packet) {
    RuleSet rs;
    rs.name = "bench";
    rs.version = 1;
    rs.classes = {{1, "first"}, {2, "rest"}};
    if (catch_all_first) {
        Rule all;
        all.class_id = 1;
        rs.rules.push_back(all);
    }
    for (size_t i = rs.rules.size(); i < n; i++) {
        Rule r;
        r.class_id = 2;
        Prefix p;
        if (i % 4 == 3) {
            p.family = NT_AF_INET6;
            p.addr = {htonl(0xfd000000u | static_cast<uint32_t>(i)), 0, 0, 0};
            p.len = 64;
        } else {
            p.family = NT_AF_INET;
            p.addr = {htonl(0xC6130000u | static_cast<uint32_t>((i % 256) << 8 | (i / 256) % 256)), 0, 0, 0};
            p.len = i < 256 ? 24 : 32;
        }
        r.dst = {p};
        if (i % 3 == 0) {
            r.protocols = {{17, 17}};
            r.dports = {{static_cast<uint32_t>(1000 + i), static_cast<uint32_t>(1100 + i)}};
        }
        rs.rules.push_back(r);
    }
    if (per_packet) { // one rule more, on a DSCP the packet does not carry
        Rule ef;
        ef.class_id = 2;
        ef.dscp = {{63, 63}};
        rs.rules.push_back(ef);
    }
    return rs;
}

double run_ns(int prog_fd, const TestPacket& pkt, int repeat) {
    bpf_test_run_opts run{};
    run.sz = sizeof(run);
    run.data_in = pkt.bytes.data();
    run.data_size_in = static_cast<uint32_t>(pkt.bytes.size());
    run.repeat = repeat;
    if (bpf_prog_test_run_opts(prog_fd, &run) != 0)
        throw std::runtime_error(std::string("bpf_prog_test_run_opts: ") + std::strerror(errno));
    return run.duration;
}

struct Case {
    std::string name;
    Bundle bundle;
    std::vector<double> swap_ms;
    std::vector<double> ns;
};

} // namespace

int main(int argc, char** argv) {
    int rounds = 21;
    int repeat = 200000;
    std::string json_path;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--rounds")
            rounds = std::atoi(argv[i + 1]);
        else if (a == "--repeat")
            repeat = std::atoi(argv[i + 1]);
        else if (a == "--json")
            json_path = argv[i + 1];
    }
    pin_to_cpu(0);
    std::unique_ptr<nettally_bpf, void (*)(nettally_bpf*)> skel(nettally_bpf__open(), nettally_bpf__destroy);
    if (!skel) {
        std::perror("nettally_bpf__open");
        return 1;
    }
    // Only the TC programs run here; the XDP ones (which a kernel may refuse) stay unloaded.
    bpf_program* p;
    bpf_object__for_each_program(p, skel->obj) {
        bpf_program__set_autoload(p, std::string(bpf_program__name(p)).rfind("nt_tc_", 0) == 0);
    }
    if (const int err = nettally_bpf__load(skel.get()); err != 0) {
        std::fprintf(stderr, "nettally_bpf__load: %s\n", std::strerror(-err));
        return 1;
    }
    const KernelClasses::Maps m = KernelClasses::Maps::of(skel.get());
    KernelClasses kc(m);
    const std::vector<std::pair<uint32_t, std::string>> ifaces = {{if_nametoindex("lo"), "wan0"}};
    const int prog = bpf_program__fd(skel->progs.nt_tc_ingress_wan);
    const TestPacket pkt = make_packet(NT_AF_INET, 17, 64);

    std::vector<Case> cases;
    cases.push_back({"none", {}, {}, {}});
    for (const size_t n : {size_t{1}, size_t{100}, size_t{1000}, size_t{10000}}) {
        cases.push_back({std::to_string(n) + " miss", compile_rules(ruleset(n, false, true)), {}, {}});
        cases.push_back({std::to_string(n) + " first", compile_rules(ruleset(n, true, true)), {}, {}});
        cases.push_back({std::to_string(n) + " cached", compile_rules(ruleset(n, false, false)), {}, {}});
    }
    for (int r = 0; r < rounds; r++)
        for (Case& c : cases) {
            if (c.name == "none") {
                kc.clear();
            } else {
                const uint64_t t0 = now_ns();
                kc.load(c.bundle, ifaces);
                c.swap_ms.push_back(static_cast<double>(now_ns() - t0) / 1e6);
            }
            run_ns(prog, pkt, 1000); // warm-up after the swap
            c.ns.push_back(run_ns(prog, pkt, repeat));
        }
    const double base = median(cases[0].ns);
    std::string doc = "[\n";
    for (Case& c : cases) {
        char line[256];
        std::snprintf(
            line, sizeof(line),
            "{\"case\": \"%s\", \"rules\": %zu, \"ns\": %.0f, \"over_none_ns\": %.0f, \"swap_ms\": %.2f}",
            c.name.c_str(), c.bundle.rules.size(), median(c.ns), median(c.ns) - base,
            c.swap_ms.empty() ? 0.0 : median(c.swap_ms));
        std::printf("%s\n", line);
        doc += std::string(doc.size() > 2 ? ",\n" : "") + line;
    }
    doc += "\n]\n";
    if (!json_path.empty()) {
        FILE* f = std::fopen(json_path.c_str(), "w");
        if (!f || std::fputs(doc.c_str(), f) < 0 || std::fclose(f) != 0) {
            std::perror(json_path.c_str());
            return 1;
        }
    }
    return 0;
}
