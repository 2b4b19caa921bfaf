// Compiled traffic classes: the tables the kernel classifies with, how a rule document becomes
// them (compile_rules), their binary form (a "bundle": write_bundle / read_bundle) and the
// reference classifier that answers from the same tables as the BPF program does.
//
// The scheme: each dimension of a packet (direction, protocol, source and destination port,
// DSCP, VLAN id, source and destination address, MAC, interface) maps its value to an
// equivalence id: values that the same set of rules accepts share one id. Each id has a bitmask
// of those rules (u64 words, bit i = rule i). A packet's rules are the AND of its dimensions'
// masks; the first set bit is the first rule that matches, whose class is the packet's.
//   scalars:   runs of values with one id each (the kernel expands them into arrays);
//   addresses: prefixes, each entry's mask already holding the rules of every prefix that
//              contains it, plus a /0 entry per family, so one longest-prefix lookup answers;
//   MAC:       exact values, and the id of every other MAC (also: not a lan interface);
//   interface: globs kept per rule, resolved against interface names when loaded.
//
// Binary form, little-endian: a 48-byte header (magic "NTCB", format version, header size,
// ruleset version, FNV-1a-64 hash of the body, body size, rule, class and word counts, section
// count, flags) and the body: sections {u16 kind, u16 zero, u32 length, payload} in a fixed
// order. read_bundle checks every length against the buffer and every id against its table, so
// a bundle it returns can be loaded into the kernel as it is.
#pragma once

#include "core/classes.h"

#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace nettally {

inline constexpr uint16_t kBundleFormat = 1;
inline constexpr size_t kBundleHeaderSize = 48;
inline constexpr size_t kBundleMaxSize = size_t{64} << 20;
inline constexpr uint32_t kBundleMaxEq = 65535; // ids are u16 in the kernel's arrays

// A bundle refused (reading) or a ruleset that does not compile; what() is one line.
class BundleError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Equivalence id -> rule bitmask, `words` u64 each, flat.
struct EqTable {
    uint32_t words = 1;
    std::vector<uint64_t> masks;
    uint32_t size() const { return words ? static_cast<uint32_t>(masks.size() / words) : 0; }
    std::span<const uint64_t> mask(uint32_t eq) const { return {masks.data() + size_t{eq} * words, words}; }
};

// A scalar dimension: runs[i] = {first value, id} in ascending order from 0; values up to the
// next run's start share the id. none_eq: the id of "no value" (no ports; for the others, the
// rules that do not test this dimension).
struct ScalarDim {
    uint32_t domain = 0;
    uint32_t none_eq = 0;
    std::vector<std::array<uint32_t, 2>> runs;
    EqTable eqs;
    uint32_t eq_of(uint32_t value) const;
};

struct PrefixEntry {
    uint8_t family = 0;
    uint8_t len = 0;
    std::array<uint32_t, 4> addr{}; // network order
    uint32_t eq = 0;
};

// Longest match wins; holds a /0 entry for each family.
struct PrefixDim {
    std::vector<PrefixEntry> entries; // sorted by family, address, length
    EqTable eqs;
    uint32_t eq_of(uint8_t family, const std::array<uint32_t, 4>& addr) const;
};

struct MacEntry {
    std::array<uint8_t, 6> mac{};
    uint32_t eq = 0;
};

struct MacDim {
    uint32_t none_eq = 0;          // a MAC no rule names, or no MAC (not lan, no link layer)
    std::vector<MacEntry> entries; // sorted by MAC
    EqTable eqs;
    uint32_t eq_of(const PacketFacts& pkt) const;
};

struct BundleRule {
    uint32_t class_id = 0;
    std::vector<std::string> interfaces; // globs; empty: any
};

struct Bundle {
    uint16_t format = kBundleFormat;
    uint64_t version = 0;
    uint64_t hash = 0; // of the body, as written
    std::string name;
    uint32_t words = 1; // u64 words of every bitmask: max(1, ceil(rules / 64))
    std::vector<TrafficClass> classes;
    std::vector<BundleRule> rules;
    ScalarDim dir, proto, sport, dport, dscp, vlan;
    PrefixDim src, dst;
    MacDim mac;
};

// The tables of a parsed document. Throws BundleError when a dimension needs more than
// kBundleMaxEq ids.
Bundle compile_rules(const RuleSet& rules);
// The binary form; sets bundle.hash.
std::vector<uint8_t> write_bundle(Bundle& bundle);
// Checks everything (see the file comment); throws BundleError with the first problem.
Bundle read_bundle(std::span<const uint8_t> data);

// The rules an interface name matches (globs), as a bitmask of `words` words: the interface
// dimension, computed when a bundle is loaded and when interfaces come and go.
std::vector<uint64_t> interface_mask(const Bundle& b, const std::string& ifname);
// Index of the first rule the packet matches, or -1.
int first_rule(const Bundle& b, const PacketFacts& pkt);
// The class of the packet from the bundle's own tables (kClassOther when no rule matches).
uint32_t classify(const Bundle& b, const PacketFacts& pkt);
// The class's name, "other" for kClassOther, "" for an unknown id.
std::string class_name(const Bundle& b, uint32_t id);
// 16 lowercase hex digits.
std::string hash_text(uint64_t hash);
uint64_t fnv1a64(std::span<const uint8_t> data);

} // namespace nettally
