// Traffic classes: the rule document an operator writes (named classes with stable ids, first
// match wins in the written order) and what one rule matches. Pure: the document is read from
// text (parse_rules), every problem a ConfigError "file:line:col: key.path: problem", and
// rule_matches() is the language's meaning written out plainly, the yardstick the compiled
// tables (core/classes_bundle.h) are tested against.
#pragma once

#include "core/subscribers.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// The class every packet that matches no rule falls into.
inline constexpr uint32_t kClassOther = 0;
inline constexpr std::string_view kClassOtherName = "other";

namespace classes_limits {
inline constexpr uint32_t max_class_id = 65535;
inline constexpr size_t max_classes = 4096;
inline constexpr size_t max_rules = 16384; // match blocks over all classes
inline constexpr size_t max_values = 4096; // entries of one list (prefixes, ports, ...)
inline constexpr size_t max_name_len = 63;
inline constexpr size_t max_glob_len = 15; // IFNAMSIZ - 1
} // namespace classes_limits

// An inclusive range of a scalar dimension (ports, protocol, DSCP, VLAN id).
struct ValueRange {
    uint32_t lo = 0;
    uint32_t hi = 0;
    auto operator<=>(const ValueRange&) const = default;
};

// The packet facts a rule can test. An empty list means "any".
enum class RuleDir : uint8_t { Any = 0, Ingress = 1, Egress = 2 };

// One match block: every dimension given must match (lists: any of their values).
struct Rule {
    uint32_t class_id = 0;
    std::vector<std::string> interfaces; // fnmatch globs
    RuleDir direction = RuleDir::Any;
    std::vector<ValueRange> protocols;
    std::vector<Prefix> src;
    std::vector<Prefix> dst;
    std::vector<ValueRange> sports; // tcp and udp only
    std::vector<ValueRange> dports;
    std::vector<ValueRange> dscp;
    std::vector<ValueRange> vlans; // 0: untagged
    std::vector<std::array<uint8_t, 6>> macs;
};

struct TrafficClass {
    uint32_t id = 0;
    std::string name;
};

// A parsed rule document: classes in written order, rules in written order (a class's match
// blocks one after the other).
struct RuleSet {
    std::string name;
    uint64_t version = 0;
    std::vector<TrafficClass> classes;
    std::vector<Rule> rules;
};

// What classification looks at in one packet, as the BPF parser sees it. Addresses in network
// order (IPv4 in the first word). has_ports: a TCP or UDP packet whose ports are known (not a
// later fragment whose first fragment was missed). vlan: the outer tag's id, 0 untagged. mac:
// the host's MAC on a lan-role interface (source on ingress, destination on egress).
struct PacketFacts {
    std::string ifname;
    bool lan = false;
    bool has_mac = false; // false on interfaces without a link layer
    uint8_t dir = 0;      // NT_DIR_*
    uint8_t family = 0;   // NT_AF_INET / NT_AF_INET6
    uint8_t proto = 0;
    bool has_ports = false;
    uint16_t sport = 0;
    uint16_t dport = 0;
    uint8_t dscp = 0;
    uint16_t vlan = 0;
    std::array<uint32_t, 4> src{};
    std::array<uint32_t, 4> dst{};
    std::array<uint8_t, 6> mac{};
};

// Reads a rule document; throws ConfigError naming source, line, column and key.
RuleSet parse_rules(const std::string& text, const std::string& source);

// A class or ruleset name: 1..63 of a-z, 0-9, '-', '_', '.'.
bool valid_class_name(std::string_view name);

// An interface name or fnmatch glob as a rule may hold it: 1..15 bytes of printable ASCII
// without spaces, '/' or ':' (what Linux allows in an interface name).
bool valid_interface_glob(std::string_view glob);

// A prefix as rules write it: Prefix::parse's forms, and 0.0.0.0/0 or ::/0 for every address of
// the family. nullopt with `why` set otherwise.
std::optional<Prefix> parse_rule_prefix(std::string_view text, std::string* why = nullptr);

// True when the address matches the prefix as the rules mean it: an IPv4 prefix also matches
// the IPv4-mapped IPv6 form of its addresses (::ffff:a.b.c.d).
bool prefix_matches(const Prefix& p, uint8_t family, const std::array<uint32_t, 4>& addr);
bool rule_matches(const Rule& rule, const PacketFacts& pkt);
// The first rule's class that matches, or kClassOther: the plain reading of the document.
uint32_t classify_direct(const RuleSet& rules, const PacketFacts& pkt);

// "tcp" -> 6 ... and the DSCP names ("ef", "af41", "cs5", "be"); nullopt for an unknown name.
std::optional<uint8_t> protocol_number(std::string_view name);
std::optional<uint8_t> dscp_number(std::string_view name);

} // namespace nettally
