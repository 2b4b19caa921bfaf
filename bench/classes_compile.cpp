// nt_bench_classes: the cost of compiling traffic class rules, and what the tables weigh.
//
//   nt_bench_classes [--rules N]...
//       For each N (default 1, 100, 1000, 10000) builds a ruleset the way an operator's grows
//       (each rule: a /24 or /32 of 198.18.0.0/15 or a /64 of fd00::/8 as destination, every
//       third one a port range, every fifth a DSCP value, spread over 16 classes), then times
//       compile_rules, write_bundle and read_bundle, and the reference classifier per packet.
//       Prints the bundle size, the bitmask width and each dimension's number of equivalence ids
//       (what the kernel tables will hold: ids x words x 8 bytes of bitmasks per dimension), one
//       JSON object per N. Figures only: no pass or fail.
#include "core/classes.h"
#include "core/classes_bundle.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace nettally;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

Rule rule_number(size_t i, std::mt19937& rng) {
    Rule r;
    r.class_id = static_cast<uint32_t>(1 + i % 16);
    Prefix p;
    if (i % 4 == 3) {
        p.family = NT_AF_INET6;
        p.addr = {htonl(0xfd000000u | static_cast<uint32_t>(i >> 16)), htonl(static_cast<uint32_t>(i)), 0, 0};
        p.len = 64;
    } else {
        p.family = NT_AF_INET;
        const uint32_t host = 0xC6120000u + static_cast<uint32_t>((i * 2654435761u) % 131072u);
        p.len = i % 2 ? 32 : 24;
        p.addr = {htonl(p.len == 24 ? host & 0xFFFFFF00u : host), 0, 0, 0};
    }
    r.dst = {p};
    if (i % 3 == 0) {
        r.protocols = {{17, 17}};
        const auto lo = static_cast<uint32_t>(1024 + rng() % 60000);
        r.dports = {{lo, lo + static_cast<uint32_t>(rng() % 500)}};
    }
    if (i % 5 == 0)
        r.dscp = {{static_cast<uint32_t>(rng() % 64), static_cast<uint32_t>(rng() % 64)}};
    if (!r.dscp.empty() && r.dscp[0].lo > r.dscp[0].hi)
        std::swap(r.dscp[0].lo, r.dscp[0].hi);
    return r;
}

RuleSet ruleset(size_t n) {
    std::mt19937 rng(static_cast<uint32_t>(n));
    RuleSet rs;
    rs.name = "bench";
    rs.version = 1;
    for (uint32_t c = 1; c <= 16; c++)
        rs.classes.push_back({c, "c" + std::to_string(c)});
    for (size_t i = 0; i < n; i++)
        rs.rules.push_back(rule_number(i, rng));
    return rs;
}

void run(size_t n) {
    const RuleSet rs = ruleset(n);
    auto t0 = std::chrono::steady_clock::now();
    Bundle b = compile_rules(rs);
    const double compile_ms = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    const std::vector<uint8_t> bytes = write_bundle(b);
    const double write_ms = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    const Bundle r = read_bundle(bytes);
    const double read_ms = ms_since(t0);
    PacketFacts p;
    p.ifname = "wan0";
    p.family = NT_AF_INET;
    p.proto = 17;
    p.has_ports = true;
    const int packets = 2000;
    t0 = std::chrono::steady_clock::now();
    uint64_t matched = 0;
    for (int i = 0; i < packets; i++) {
        p.dst[0] = htonl(0xC6120000u + static_cast<uint32_t>(i * 97 % 131072));
        p.dport = static_cast<uint16_t>(1024 + i * 31 % 60000);
        matched += classify(r, p) != kClassOther;
    }
    const double classify_us = ms_since(t0) * 1000 / packets;
    std::printf(
        "{\"rules\": %zu, \"bundle_bytes\": %zu, \"words\": %u, \"compile_ms\": %.1f, \"write_ms\": %.1f, "
        "\"read_ms\": %.1f, \"reference_classify_us\": %.2f, \"matched\": %llu, \"eq\": {\"dir\": %u, "
        "\"proto\": %u, \"sport\": %u, \"dport\": %u, \"dscp\": %u, \"vlan\": %u, \"src\": %u, \"dst\": %u, "
        "\"mac\": %u}, \"dst_prefixes\": %zu, \"dport_runs\": %zu}\n",
        n, bytes.size(), r.words, compile_ms, write_ms, read_ms, classify_us,
        static_cast<unsigned long long>(matched), r.dir.eqs.size(), r.proto.eqs.size(), r.sport.eqs.size(),
        r.dport.eqs.size(), r.dscp.eqs.size(), r.vlan.eqs.size(), r.src.eqs.size(), r.dst.eqs.size(),
        r.mac.eqs.size(), r.dst.entries.size(), r.dport.runs.size());
}

} // namespace

int main(int argc, char** argv) {
    std::vector<size_t> counts;
    for (int i = 1; i + 1 < argc; i += 2)
        if (std::string(argv[i]) == "--rules")
            counts.push_back(std::strtoull(argv[i + 1], nullptr, 10));
    if (counts.empty())
        counts = {1, 100, 1000, 10000};
    for (const size_t n : counts) {
        try {
            run(n);
        } catch (const BundleError& e) {
            std::printf("{\"rules\": %zu, \"error\": \"%s\"}\n", n, e.what());
        }
    }
    return 0;
}
