// Random rulesets and packets for the differential tests of traffic classes: the compiled tables
// (tests/unit/classes_test.cpp) and the BPF program (tests/bpf) against the rule language's plain
// meaning (classify_direct). Values come from small pools of nested prefixes, port range edges,
// DSCP, VLAN and MAC values, so random packets land on rule edges often, not by luck.
#pragma once

#include "core/classes.h"

#include <arpa/inet.h>

#include <random>
#include <string>

namespace nettally::classes_test {

inline const char* const kPrefixes[] = {"198.18.0.0/15", "198.18.0.0/16", "198.18.1.0/24", "198.18.1.128/25",
                                        "198.19.2.0/24", "198.18.1.7",    "fd00::/8",      "fd00:1::/32",
                                        "fd00:1:2::/48", "fd00:1:2::7",   "0.0.0.0/0",     "::/0"};
inline const char* const kAddrs[] = {
    "198.18.1.7", "198.18.1.200",      "198.18.1.1",        "198.18.9.9",       "198.19.2.3",
    "198.19.3.3", "fd00:1:2::7",       "fd00:1:2::8",       "fd00:1:3::1",      "fd00:9::1",
    "fd00::1",    "::ffff:198.18.1.7", "::ffff:198.19.2.3", "::ffff:198.20.0.1"};
inline const char* const kIfnames[] = {"wan0", "lan0", "lan1", "tv0"};
inline const char* const kGlobs[] = {"wan*", "lan0", "lan?", "tv*", "*"};
inline const std::array<uint8_t, 6> kMacs[] = {
    {0x02, 0, 0, 0, 0, 1}, {0x02, 0, 0, 0, 0, 2}, {0x02, 0, 0, 0, 0, 3}};
inline const uint32_t kPortEdges[] = {0,    1,    53,   79,    80,    81,    443,  1023,
                                      1024, 5060, 9999, 10000, 20000, 20001, 65535};
inline const uint8_t kProtos[] = {1, 6, 17, 47, 58};

class Random {
public:
    explicit Random(uint32_t seed) : rng_(seed) {}

    uint32_t below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }
    bool chance(uint32_t one_in) { return below(one_in) == 0; }
    template <typename T, size_t N> const T& pick(const T (&a)[N]) { return a[below(N)]; }

    std::vector<ValueRange> ranges(uint32_t max, const uint32_t* edges, size_t n_edges) {
        std::vector<ValueRange> out;
        const uint32_t count = 1 + below(3);
        for (uint32_t i = 0; i < count; i++) {
            uint32_t a = edges ? edges[below(static_cast<uint32_t>(n_edges))] : below(max + 1);
            uint32_t b =
                chance(2) ? a : (edges ? edges[below(static_cast<uint32_t>(n_edges))] : below(max + 1));
            if (a > b)
                std::swap(a, b);
            out.push_back({a, b});
        }
        return out;
    }

    Rule rule(uint32_t class_id) {
        Rule r;
        r.class_id = class_id;
        if (chance(4))
            r.interfaces = {pick(kGlobs)};
        if (chance(4))
            r.direction = chance(2) ? RuleDir::Ingress : RuleDir::Egress;
        const bool ports = chance(3);
        if (ports)
            r.protocols = chance(2) ? std::vector<ValueRange>{{6, 6}} : std::vector<ValueRange>{{17, 17}};
        else if (chance(4))
            r.protocols = {{pick(kProtos), pick(kProtos)}};
        if (!r.protocols.empty() && r.protocols[0].lo > r.protocols[0].hi)
            std::swap(r.protocols[0].lo, r.protocols[0].hi);
        if (ports && chance(2))
            r.dports = ranges(65535, kPortEdges, std::size(kPortEdges));
        if (ports && chance(3))
            r.sports = ranges(65535, kPortEdges, std::size(kPortEdges));
        for (auto* list : {&r.src, &r.dst})
            if (chance(3))
                for (uint32_t i = 0, n = 1 + below(2); i < n; i++)
                    list->push_back(*parse_rule_prefix(pick(kPrefixes)));
        if (chance(6))
            r.dscp = ranges(63, nullptr, 0);
        if (chance(6))
            r.vlans = ranges(20, nullptr, 0);
        if (chance(6))
            r.macs = {pick(kMacs)};
        return r;
    }

    RuleSet ruleset(size_t rules) {
        RuleSet rs;
        rs.name = "random";
        rs.version = 1 + below(1000);
        const uint32_t classes = 1 + below(6);
        for (uint32_t c = 1; c <= classes; c++)
            rs.classes.push_back({c * 10, "c" + std::to_string(c * 10)});
        for (size_t i = 0; i < rules; i++)
            rs.rules.push_back(rule(rs.classes[below(classes)].id));
        return rs;
    }

    // A rule no packet() matches: its destination is a host of 198.19.128.0/17 or of fd00:ff::/32
    // (no address of kAddrs); every third tests a protocol and a port range that packets do
    // carry, every fifth a direction, so the other dimensions' masks differ from chunk to chunk.
    Rule filler(uint32_t class_id, uint32_t i) {
        Rule r;
        r.class_id = class_id;
        Prefix p;
        if (i % 4 == 3) {
            p.family = NT_AF_INET6;
            p.addr = {htonl(0xfd0000ffu), 0, 0, htonl(i)};
            p.len = 128;
        } else {
            p.family = NT_AF_INET;
            p.addr = {htonl(0xC6138000u | (i & 0x7FFF)), 0, 0, 0};
            p.len = 32;
        }
        r.dst = {p};
        if (i % 3 == 0) {
            r.protocols = {{6, 6}};
            r.dports = ranges(65535, kPortEdges, std::size(kPortEdges));
        }
        if (i % 5 == 0)
            r.direction = chance(2) ? RuleDir::Ingress : RuleDir::Egress;
        return r;
    }

    // A ruleset of `rules` rules (up to 16,384), beyond one bitmask chunk: random rules (rule())
    // at random places, one in `one_in` on average, the others fillers, so the first rule a
    // packet matches can be in any chunk, and many packets match none.
    RuleSet large_ruleset(size_t rules, uint32_t one_in) {
        RuleSet rs = ruleset(0);
        for (size_t i = 0; i < rules; i++) {
            const uint32_t cls = rs.classes[below(static_cast<uint32_t>(rs.classes.size()))].id;
            rs.rules.push_back(chance(one_in) ? rule(cls) : filler(cls, static_cast<uint32_t>(i)));
        }
        return rs;
    }

    PacketFacts packet() {
        PacketFacts p;
        p.ifname = pick(kIfnames);
        p.lan = p.ifname.rfind("lan", 0) == 0;
        p.has_mac = true;
        p.dir = static_cast<uint8_t>(below(2));
        const std::string s = pick(kAddrs);
        std::string d = pick(kAddrs);
        const bool v6 = s.find(':') != std::string::npos;
        while ((d.find(':') != std::string::npos) != v6)
            d = pick(kAddrs);
        p.family = v6 ? NT_AF_INET6 : NT_AF_INET;
        inet_pton(v6 ? AF_INET6 : AF_INET, s.c_str(), p.src.data());
        inet_pton(v6 ? AF_INET6 : AF_INET, d.c_str(), p.dst.data());
        p.proto = pick(kProtos);
        if (p.proto == 6 || p.proto == 17) {
            p.has_ports = !chance(8); // a later fragment whose first was missed
            p.sport = static_cast<uint16_t>(chance(2) ? pick(kPortEdges) : below(65536));
            p.dport = static_cast<uint16_t>(chance(2) ? pick(kPortEdges) : below(65536));
        }
        p.dscp = static_cast<uint8_t>(below(64));
        p.vlan = static_cast<uint16_t>(chance(2) ? 0 : below(21));
        p.mac = pick(kMacs);
        return p;
    }

private:
    std::mt19937 rng_;
};

} // namespace nettally::classes_test
