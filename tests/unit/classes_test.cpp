// Traffic classes (core/classes.h, core/classes_bundle.h): the rule document and its
// file:line:col: key: messages, the compiled tables against the plain meaning of the rules
// (fixed cases and random rulesets), the bundle's round trip, and the bundles the reader must
// refuse.
#include "../classes_random.h"
#include "core/classes.h"
#include "core/classes_bundle.h"
#include "core/config.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>

namespace nettally {
namespace {

const char* const kDoc = R"(name: home
version: 7
classes:
  - name: iptv
    id: 10
    match:
      protocol: udp
      dst: 239.0.0.0/8
  - name: voip
    id: 20
    match:
      - {protocol: udp, dport: 5060}
      - {protocol: udp, dport: 10000-20000, dscp: ef}
  - name: web
    id: 30
    match:
      protocol: tcp
      dport: [80, 443]
  - name: dns
    id: 40
    match:
      - {protocol: [udp, tcp], dport: 53}
      - {protocol: [udp, tcp], sport: 53}
  - name: cameras
    id: 50
    match: {interface: "lan*", mac: "02:00:00:00:00:01", src: [198.18.5.0/24, "fd00:5::/64"], vlan: 100-101}
)";

std::string error_of(const std::string& text) {
    try {
        parse_rules(text, "rules.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "accepted, but an error was expected:\n" << text;
    return "";
}

PacketFacts packet(const std::string& src, const std::string& dst, uint8_t proto, int sport, int dport) {
    PacketFacts p;
    p.ifname = "wan0";
    p.dir = NT_DIR_INGRESS;
    const bool v6 = src.find(':') != std::string::npos;
    p.family = v6 ? NT_AF_INET6 : NT_AF_INET;
    EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, src.c_str(), p.src.data()), 1) << src;
    EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, dst.c_str(), p.dst.data()), 1) << dst;
    p.proto = proto;
    p.has_ports = sport >= 0;
    p.sport = static_cast<uint16_t>(sport < 0 ? 0 : sport);
    p.dport = static_cast<uint16_t>(dport < 0 ? 0 : dport);
    return p;
}

// Compiled, written and read back: the tables the kernel gets.
Bundle round_trip(const RuleSet& rs) {
    Bundle b = compile_rules(rs);
    const std::vector<uint8_t> bytes = write_bundle(b);
    return read_bundle(bytes);
}

TEST(ClassesDocument, Parses) {
    const RuleSet rs = parse_rules(kDoc, "rules.yaml");
    EXPECT_EQ(rs.name, "home");
    EXPECT_EQ(rs.version, 7u);
    ASSERT_EQ(rs.classes.size(), 5u);
    EXPECT_EQ(rs.classes[1].name, "voip");
    EXPECT_EQ(rs.classes[1].id, 20u);
    ASSERT_EQ(rs.rules.size(), 7u); // voip and dns have two match blocks each
    EXPECT_EQ(rs.rules[2].class_id, 20u);
    EXPECT_EQ(rs.rules[2].dscp, (std::vector<ValueRange>{{46, 46}}));
    EXPECT_EQ(rs.rules[2].dports, (std::vector<ValueRange>{{10000, 20000}}));
    EXPECT_EQ(rs.rules[4].protocols, (std::vector<ValueRange>{{17, 17}, {6, 6}}));
    EXPECT_EQ(rs.rules[6].src.size(), 2u);
    EXPECT_EQ(rs.rules[6].vlans, (std::vector<ValueRange>{{100, 101}}));
    EXPECT_EQ(rs.rules[6].interfaces, std::vector<std::string>{"lan*"});
}

// The example shipped in config/ (README "Traffic classes") stays valid.
TEST(ClassesDocument, ShippedExampleCompiles) {
    std::ifstream in(std::string(NT_SOURCE_DIR) + "/config/classes.example.yaml");
    std::ostringstream text;
    text << in.rdbuf();
    const RuleSet rs = parse_rules(text.str(), "classes.example.yaml");
    EXPECT_EQ(rs.classes.size(), 6u);
    const Bundle b = round_trip(rs);
    PacketFacts p = packet("198.18.0.1", "232.1.1.1", 17, 1234, 5000);
    p.ifname = "lan0";
    EXPECT_EQ(class_name(b, classify(b, p)), "other"); // wan* only
    p.ifname = "wan1";
    EXPECT_EQ(class_name(b, classify(b, p)), "iptv");
}

TEST(ClassesDocument, ErrorsNameFileLineColumnAndKey) {
    const std::string head = "name: t\nversion: 1\nclasses:\n";
    const std::pair<std::string, std::string> cases[] = {
        {"", "rules.yaml:1:1: document: the rule document is empty"},
        {"name: t\nclasses: []\n", "rules.yaml:1:1: version: missing"},
        {"name: t\nversion: 0\nclasses: []\n",
         "rules.yaml:2:10: version: expected a whole number 1 .. 2^63-1"},
        {"name: T!\nversion: 1\nclasses: []\n", "rules.yaml:1:7: name: invalid name 'T!'"},
        {"name: t\nversion: 1\nclasses: []\ncolour: red\n", "rules.yaml:4:1: colour: unknown key"},
        {head + "  - {name: a, match: {}}\n", "rules.yaml:4:5: classes[0].id: missing"},
        {head + "  - {id: 1, match: {}}\n", "rules.yaml:4:5: classes[0].name: missing"},
        {head + "  - {name: a, id: 1}\n", "rules.yaml:4:5: classes[0].match: missing"},
        {head + "  - {name: other, id: 1, match: {}}\n",
         "rules.yaml:4:12: classes[0].name: 'other' is the default"},
        {head + "  - {name: a, id: 1, match: {}}\n  - {name: b, id: 1, match: {}}\n",
         "rules.yaml:5:19: classes[1].id: class id 1 used twice"},
        {head + "  - {name: a, id: 1, match: {}}\n  - {name: a, id: 2, match: {}}\n",
         "rules.yaml:5:12: classes[1].name: class name 'a' used twice"},
        {head + "  - {name: a, id: 70000, match: {}}\n",
         "rules.yaml:4:19: classes[0].id: 70000 is out of range"},
        {head + "  - name: a\n    id: 1\n    match:\n      dport: 99999\n",
         "rules.yaml:7:14: classes[0].match.dport: invalid port '99999' (0 .. 65535)"},
        {head + "  - name: a\n    id: 1\n    match:\n      dport: [80, 90-85]\n",
         "rules.yaml:7:19: classes[0].match.dport[1]: range '90-85' runs backwards"},
        {head + "  - name: a\n    id: 1\n    match:\n      src: 198.18.1.1/24\n",
         "rules.yaml:7:12: classes[0].match.src: invalid prefix '198.18.1.1/24': address bits are set"},
        {head + "  - name: a\n    id: 1\n    match:\n      protocol: icmp\n      dport: 80\n",
         "rules.yaml:7:7: classes[0].match.protocol: sport and dport match tcp and udp only"},
        {head + "  - name: a\n    id: 1\n    match:\n      protocol: bogus\n",
         "rules.yaml:7:17: classes[0].match.protocol: invalid protocol 'bogus'"},
        {head + "  - name: a\n    id: 1\n    match:\n      dscp: 64\n",
         "rules.yaml:7:13: classes[0].match.dscp: invalid DSCP value '64' (0 .. 63)"},
        {head + "  - name: a\n    id: 1\n    match:\n      direction: up\n",
         "rules.yaml:7:18: classes[0].match.direction: unknown direction 'up'"},
        {head + "  - name: a\n    id: 1\n    match:\n      mac: 02:00:00:00:00\n",
         "rules.yaml:7:12: classes[0].match.mac: invalid MAC address"},
        {head + "  - name: a\n    id: 1\n    match:\n      interface: [wan0, \"\"]\n",
         "rules.yaml:7:25: classes[0].match.interface[1]: invalid interface name or glob ''"},
        // Found by fuzz_rules: a NUL inside a glob was accepted here and refused by the reader.
        {head + "  - name: a\n    id: 1\n    match:\n      interface: \"wan\\0x\"\n",
         "rules.yaml:7:18: classes[0].match.interface: invalid interface name or glob 'wan\\x00x'"},
        {head + "  - name: a\n    id: 1\n    match:\n      interface: \"wan 1\"\n",
         "rules.yaml:7:18: classes[0].match.interface: invalid interface name or glob 'wan 1'"},
        {head + "  - name: a\n    id: 1\n    match:\n      vlan: 4095\n",
         "rules.yaml:7:13: classes[0].match.vlan: invalid VLAN id '4095' (0 .. 4094)"},
        {head + "  - name: a\n    id: 1\n    match:\n      dport: []\n",
         "rules.yaml:7:14: classes[0].match.dport: expected a port or a range A-B or a non-empty list"},
        {head + "  - name: a\n    id: 1\n    match: [1]\n",
         "rules.yaml:6:13: classes[0].match[0]: expected a map"},
        {"name: t\nversion: 1\nclasses: [\n", "rules.yaml:4:1: yaml:"},
        {"name: t\n---\nname: u\n", "rules.yaml:3:1: document: only one YAML document is allowed"},
    };
    for (const auto& [text, expected] : cases) {
        const std::string got = error_of(text);
        EXPECT_EQ(got.substr(0, expected.size()), expected) << text;
        EXPECT_EQ(got.find('\n'), std::string::npos) << got;
    }
}

TEST(ClassesCompile, FixedCases) {
    const Bundle b = round_trip(parse_rules(kDoc, "rules.yaml"));
    const auto c = [&](const PacketFacts& p) {
        const uint32_t id = classify(b, p);
        EXPECT_EQ(id, classify_direct(parse_rules(kDoc, "rules.yaml"), p));
        return class_name(b, id);
    };
    EXPECT_EQ(c(packet("198.18.0.1", "239.1.2.3", 17, 1000, 5000)), "iptv");
    EXPECT_EQ(c(packet("198.18.0.1", "239.1.2.3", 6, 1000, 80)), "web"); // iptv is udp only
    EXPECT_EQ(c(packet("198.18.0.1", "198.18.0.2", 17, 1000, 5060)), "voip");
    PacketFacts rtp = packet("198.18.0.1", "198.18.0.2", 17, 1000, 20000);
    EXPECT_EQ(c(rtp), "other"); // not ef
    rtp.dscp = 46;
    EXPECT_EQ(c(rtp), "voip");
    rtp.dport = 20001;
    EXPECT_EQ(c(rtp), "other");
    rtp.dport = 10000;
    EXPECT_EQ(c(rtp), "voip");
    rtp.dport = 9999;
    EXPECT_EQ(c(rtp), "other");
    EXPECT_EQ(c(packet("fd00::1", "fd00::2", 6, 40000, 443)), "web");
    EXPECT_EQ(c(packet("fd00::1", "fd00::2", 6, 53, 40000)), "dns");
    EXPECT_EQ(c(packet("fd00::1", "fd00::2", 17, -1, -1)), "other"); // later fragment, first unseen
    EXPECT_EQ(c(packet("198.18.0.1", "198.18.0.2", 1, -1, -1)), "other");
    EXPECT_EQ(c(packet("::ffff:198.18.0.1", "::ffff:239.0.0.1", 17, 1, 2)), "iptv"); // IPv4-mapped
    PacketFacts cam = packet("198.18.5.9", "198.18.0.1", 6, 1, 2);
    cam.vlan = 100;
    cam.mac = {0x02, 0, 0, 0, 0, 1};
    cam.has_mac = true;
    EXPECT_EQ(c(cam), "other"); // wan0 is not lan*
    cam.ifname = "lan3";
    cam.lan = true;
    EXPECT_EQ(c(cam), "cameras");
    cam.vlan = 0;
    EXPECT_EQ(c(cam), "other");
    cam.vlan = 101;
    cam.mac[5] = 2;
    EXPECT_EQ(c(cam), "other");
}

TEST(ClassesCompile, RandomRulesetsMatchThePlainMeaning) {
    classes_test::Random rnd(4242);
    size_t mismatches = 0;
    size_t matched = 0;
    for (int set = 0; set < 200; set++) {
        const RuleSet rs = rnd.ruleset(1 + rnd.below(set < 150 ? 12 : 150));
        const Bundle b = round_trip(rs);
        for (int i = 0; i < 500; i++) {
            const PacketFacts p = rnd.packet();
            const uint32_t want = classify_direct(rs, p);
            matched += want != kClassOther;
            if (classify(b, p) != want && ++mismatches < 5)
                ADD_FAILURE() << "ruleset " << set << " packet " << i << ": " << classify(b, p)
                              << " != " << want;
        }
    }
    EXPECT_EQ(mismatches, 0u);
    EXPECT_GT(matched, 20000u); // the pools make most packets hit some rule
}

TEST(ClassesBundle, RoundTripKeepsEverything) {
    Bundle b = compile_rules(parse_rules(kDoc, "rules.yaml"));
    const std::vector<uint8_t> bytes = write_bundle(b);
    const Bundle r = read_bundle(bytes);
    EXPECT_EQ(r.version, 7u);
    EXPECT_EQ(r.name, "home");
    EXPECT_EQ(r.hash, b.hash);
    EXPECT_EQ(r.hash, fnv1a64(std::span(bytes).subspan(kBundleHeaderSize)));
    EXPECT_EQ(r.rules.size(), 7u);
    EXPECT_EQ(r.rules[6].interfaces, std::vector<std::string>{"lan*"});
    EXPECT_EQ(r.dport.runs, b.dport.runs);
    EXPECT_EQ(r.src.eqs.masks, b.src.eqs.masks);
    EXPECT_EQ(r.mac.entries.size(), 1u);
    Bundle again = r;
    EXPECT_EQ(write_bundle(again), bytes);
}

TEST(ClassesBundle, EmptyRulesetIsValid) {
    RuleSet rs;
    rs.name = "none";
    rs.version = 1;
    const Bundle b = round_trip(rs);
    EXPECT_EQ(b.words, 1u);
    EXPECT_EQ(classify(b, packet("198.18.0.1", "198.18.0.2", 6, 1, 2)), kClassOther);
}

void put_u32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
    for (int i = 0; i < 4; i++)
        v[at + static_cast<size_t>(i)] = static_cast<uint8_t>(x >> (8 * i));
}

// Rewrites the body's hash so a change inside the body is judged on its content, not caught by
// the hash alone.
void rehash(std::vector<uint8_t>& v) {
    const uint64_t h = fnv1a64(std::span(v).subspan(kBundleHeaderSize));
    for (int i = 0; i < 8; i++)
        v[16 + static_cast<size_t>(i)] = static_cast<uint8_t>(h >> (8 * i));
}

// The offset of a section's payload (kind 1..12) in a written bundle.
size_t section_at(const std::vector<uint8_t>& v, uint16_t kind) {
    size_t at = kBundleHeaderSize;
    for (uint16_t k = 1; k < kind; k++)
        at += 8 + (v[at + 4] | v[at + 5] << 8 | v[at + 6] << 16 | size_t{v[at + 7]} << 24);
    return at + 8;
}

TEST(ClassesBundle, RefusesBadBundles) {
    Bundle b = compile_rules(parse_rules(kDoc, "rules.yaml"));
    const std::vector<uint8_t> good = write_bundle(b);
    using Edit = std::function<void(std::vector<uint8_t>&)>;
    const std::pair<std::string, Edit> cases[] = {
        {"truncated", [](auto& v) { v.resize(20); }},
        {"body size", [](auto& v) { v.pop_back(); }},
        {"body size", [](auto& v) { v.push_back(0); }},
        {"bad magic", [](auto& v) { v[0] = 'X'; }},
        {"unknown format version 2", [](auto& v) { v[4] = 2; }},
        {"header size", [](auto& v) { v[6] = 40; }},
        {"version 0 out of range", [](auto& v) { std::fill(v.begin() + 8, v.begin() + 16, 0); }},
        {"do not match the header's hash", [](auto& v) { v[v.size() - 9] ^= 1; }},
        {"bitmask width", [](auto& v) { put_u32(v, 36, 2); }},
        {"rule count does not match",
         [](auto& v) {
             put_u32(v, 28, 8);
             put_u32(v, 36, 1);
         }},
        {"class count does not match", [](auto& v) { put_u32(v, 32, 4); }},
        {"unknown sections or flags", [](auto& v) { put_u32(v, 44, 1); }},
        {"too many rules", [](auto& v) { put_u32(v, 28, 1u << 20); }},
        {"where 'name' was expected",
         [](auto& v) {
             v[kBundleHeaderSize] = 9;
             rehash(v);
         }},
        {"names class id 99",
         [](auto& v) {
             put_u32(v, section_at(v, 3) + 4, 99);
             rehash(v);
         }},
        {"runs must start at 0",
         [](auto& v) {
             put_u32(v, section_at(v, 7) + 12, 5);
             rehash(v);
         }},
        {"out of range",
         [](auto& v) {
             put_u32(v, section_at(v, 7) + 4, 60000);
             rehash(v);
         }},
        {"domain 1",
         [](auto& v) {
             put_u32(v, section_at(v, 6), 1);
             rehash(v);
         }},
        {"past the last one",
         [](auto& v) {
             v[v.size() - 1] = 0x80;
             rehash(v);
         }},
        {"host bits set",
         [](auto& v) {
             v[section_at(v, 10) + 4 + 4 + 15] |= 1;
             rehash(v);
         }},
        {"invalid class name",
         [](auto& v) {
             v[section_at(v, 2) + 4 + 4 + 2] = 'A';
             rehash(v);
         }},
        {"truncated",
         [](auto& v) {
             put_u32(v, section_at(v, 1) - 4, 1000);
             rehash(v);
         }},
        {"too large", [](auto& v) { v.resize(kBundleMaxSize + 1); }},
    };
    for (const auto& [expected, edit] : cases) {
        std::vector<uint8_t> bad = good;
        edit(bad);
        try {
            read_bundle(bad);
            ADD_FAILURE() << "accepted a bundle that should fail with: " << expected;
        } catch (const BundleError& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos)
                << e.what() << " / " << expected;
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
        }
    }
    EXPECT_NO_THROW(read_bundle(good));
}

} // namespace
} // namespace nettally
