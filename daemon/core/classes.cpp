// The rule document of traffic classes (classes.h): its parser, on the config file's YAML
// walker (config_yaml.h) so errors read the same, and the plain meaning of a rule.
#include "core/classes.h"

#include "core/config.h"
#include "core/config_yaml.h"
#include "core/units.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <fnmatch.h>
#include <functional>
#include <set>
#include <utility>

namespace nettally {
namespace {

using config_yaml::Entry;
using config_yaml::Field;
using config_yaml::kind_of;
using config_yaml::quote;

struct Named {
    std::string_view name;
    uint8_t value;
};

constexpr Named kProtocols[] = {{"icmp", 1},       {"igmp", 2},   {"tcp", 6},      {"udp", 17},
                                {"gre", 47},       {"esp", 50},   {"ah", 51},      {"icmpv6", 58},
                                {"ipv6-icmp", 58}, {"sctp", 132}, {"udplite", 136}};

constexpr Named kDscp[] = {{"be", 0},    {"cs0", 0},   {"cs1", 8},   {"af11", 10}, {"af12", 12}, {"af13", 14},
                           {"cs2", 16},  {"af21", 18}, {"af22", 20}, {"af23", 22}, {"cs3", 24},  {"af31", 26},
                           {"af32", 28}, {"af33", 30}, {"cs4", 32},  {"af41", 34}, {"af42", 36}, {"af43", 38},
                           {"cs5", 40},  {"va", 44},   {"ef", 46},   {"cs6", 48},  {"cs7", 56}};

std::optional<uint8_t> lookup(std::span<const Named> table, std::string_view name) {
    for (const Named& n : table)
        if (n.name == name)
            return n.value;
    return std::nullopt;
}

// The reader of one document: a YamlReader with the rule language's value forms.
class RulesParser : public config_yaml::YamlReader {
public:
    using YamlReader::YamlReader;

    RuleSet parse(const std::string& text) const;

private:
    RuleSet parse_document(const std::string& text) const;
    void read_classes(const Entry& e, const std::string& path, RuleSet& rs) const;
    void read_class(const YAML::Node& item, const std::string& path, RuleSet& rs, std::set<uint32_t>& ids,
                    std::set<std::string>& names) const;
    void read_match(const YAML::Node& block, const std::string& path, Rule& rule) const;
    std::vector<Field> match_fields(Rule& rule) const;
    void check_rule(const YAML::Node& block, const std::string& path, const Rule& rule) const;
    // A scalar or a list of scalars, each handed to `one` with its own path and mark.
    void each_value(
        const Entry& e, const std::string& path, const std::string& expected,
        const std::function<void(const std::string&, const YAML::Mark&, const std::string&)>& one) const;
    std::vector<ValueRange>
    ranges(const Entry& e, const std::string& path, const std::string& what, uint32_t max,
           const std::function<std::optional<uint8_t>(std::string_view)>& names) const;
    std::vector<Prefix> prefixes(const Entry& e, const std::string& path) const;
};

RuleSet RulesParser::parse(const std::string& text) const {
    try {
        return parse_document(text);
    } catch (const YAML::Exception& e) {
        fail(e.mark, "yaml", e.msg);
    }
}

RuleSet RulesParser::parse_document(const std::string& text) const {
    const YAML::Node root = load_one_document(text);
    if (root.IsNull())
        fail(YAML::Mark::null_mark(), "document", "the rule document is empty");
    if (!root.IsMap())
        fail(root.Mark(), "document", "expected a map with name, version and classes, got " + kind_of(root));
    RuleSet rs;
    bool have_version = false;
    bool have_classes = false;
    walk_map(root, "",
             {{"name",
               [&](const Entry& e, const std::string& p) {
                   rs.name = scalar(e, p, "a ruleset name");
                   if (!valid_class_name(rs.name))
                       fail(mark_of(e), p,
                            "invalid name " + quote(rs.name) + " (1..63 of a-z, 0-9, '-', '_', '.')");
               }},
              {"version",
               [&](const Entry& e, const std::string& p) {
                   const std::string t = scalar(e, p, "a whole number 1 .. 2^63-1");
                   const auto v = parse_uint(t);
                   if (!v || *v == 0 || *v > uint64_t{INT64_MAX})
                       fail(mark_of(e), p, "expected a whole number 1 .. 2^63-1, got " + quote(t));
                   rs.version = *v;
                   have_version = true;
               }},
              {"classes", [&](const Entry& e, const std::string& p) {
                   read_classes(e, p, rs);
                   have_classes = true;
               }}});
    if (rs.name.empty())
        fail(root.Mark(), "name", "missing: the ruleset needs a name");
    if (!have_version)
        fail(root.Mark(), "version", "missing: the ruleset needs a version (it must grow with every change)");
    if (!have_classes)
        fail(root.Mark(), "classes", "missing: the list of classes");
    return rs;
}

void RulesParser::read_classes(const Entry& e, const std::string& path, RuleSet& rs) const {
    if (!e.value.IsSequence())
        fail(mark_of(e), path, "expected a list of classes, got " + kind_of(e.value));
    if (e.value.size() > classes_limits::max_classes)
        fail(mark_of(e), path, "at most " + std::to_string(classes_limits::max_classes) + " classes");
    std::set<uint32_t> ids;
    std::set<std::string> names;
    size_t i = 0;
    for (const YAML::Node& item : e.value)
        read_class(item, path + "[" + std::to_string(i++) + "]", rs, ids, names);
}

void RulesParser::read_class(const YAML::Node& item, const std::string& path, RuleSet& rs,
                             std::set<uint32_t>& ids, std::set<std::string>& names) const {
    if (!item.IsMap())
        fail(item.Mark(), path, "expected a map {name, id, match}, got " + kind_of(item));
    TrafficClass tc;
    bool have_match = false;
    const size_t first_rule = rs.rules.size();
    walk_map(item, path,
             {{"name",
               [&](const Entry& e, const std::string& p) {
                   tc.name = scalar(e, p, "a class name");
                   if (!valid_class_name(tc.name))
                       fail(mark_of(e), p,
                            "invalid class name " + quote(tc.name) + " (1..63 of a-z, 0-9, '-', '_', '.')");
                   if (tc.name == kClassOtherName)
                       fail(mark_of(e), p, "'other' is the default class (id 0) and cannot be defined");
                   if (!names.insert(tc.name).second)
                       fail(mark_of(e), p, "class name " + quote(tc.name) + " used twice");
               }},
              {"id",
               [&](const Entry& e, const std::string& p) {
                   tc.id = number(e, p, 1, classes_limits::max_class_id);
                   if (!ids.insert(tc.id).second)
                       fail(mark_of(e), p, "class id " + std::to_string(tc.id) + " used twice");
               }},
              {"match", [&](const Entry& e, const std::string& p) {
                   have_match = true;
                   const auto blocks = e.value.IsSequence() ? e.value : YAML::Node();
                   if (e.value.IsMap() || e.value.IsNull()) {
                       rs.rules.emplace_back();
                       read_match(e.value, p, rs.rules.back());
                       return;
                   }
                   if (!e.value.IsSequence() || e.value.size() == 0)
                       fail(mark_of(e), p,
                            "expected a map of criteria or a list of them, got " + kind_of(e.value));
                   size_t j = 0;
                   for (const YAML::Node& block : blocks) {
                       rs.rules.emplace_back();
                       read_match(block, p + "[" + std::to_string(j++) + "]", rs.rules.back());
                   }
               }}});
    if (tc.name.empty())
        fail(item.Mark(), path + ".name", "missing: every class needs a name");
    if (tc.id == 0)
        fail(item.Mark(), path + ".id", "missing: every class needs a stable id 1 .. 65535");
    if (!have_match)
        fail(item.Mark(), path + ".match", "missing: the criteria of the class ({} matches everything)");
    if (rs.rules.size() > classes_limits::max_rules)
        fail(item.Mark(), path + ".match",
             "more than " + std::to_string(classes_limits::max_rules) + " match blocks in the document");
    for (size_t r = first_rule; r < rs.rules.size(); r++)
        rs.rules[r].class_id = tc.id;
    rs.classes.push_back(std::move(tc));
}

void RulesParser::read_match(const YAML::Node& block, const std::string& path, Rule& rule) const {
    if (block.IsNull())
        return; // `match:` with nothing: every packet
    if (!block.IsMap())
        fail(block.Mark(), path, "expected a map of criteria, got " + kind_of(block));
    walk_map(block, path, match_fields(rule));
    check_rule(block, path, rule);
}

std::vector<Field> RulesParser::match_fields(Rule& rule) const {
    const auto no_names = [](std::string_view) -> std::optional<uint8_t> { return std::nullopt; };
    return {
        {"interface",
         [&](const Entry& e, const std::string& p) {
             each_value(e, p, "an interface name or glob",
                        [&](const std::string& t, const YAML::Mark& m, const std::string& vp) {
                            if (!valid_interface_glob(t))
                                fail(m, vp,
                                     "invalid interface name or glob " + quote(t) +
                                         " (1..15 printable characters, no space, '/' or ':')");
                            rule.interfaces.push_back(t);
                        });
         }},
        {"direction",
         [&](const Entry& e, const std::string& p) {
             rule.direction = one_of(e, p, "direction", {"ingress", "egress"}) == "ingress" ? RuleDir::Ingress
                                                                                            : RuleDir::Egress;
         }},
        {"protocol",
         [&](const Entry& e, const std::string& p) {
             rule.protocols = ranges(e, p, "protocol", 255, protocol_number);
         }},
        {"src", [&](const Entry& e, const std::string& p) { rule.src = prefixes(e, p); }},
        {"dst", [&](const Entry& e, const std::string& p) { rule.dst = prefixes(e, p); }},
        {"sport",
         [&](const Entry& e, const std::string& p) { rule.sports = ranges(e, p, "port", 65535, no_names); }},
        {"dport",
         [&](const Entry& e, const std::string& p) { rule.dports = ranges(e, p, "port", 65535, no_names); }},
        {"dscp", [&](const Entry& e,
                     const std::string& p) { rule.dscp = ranges(e, p, "DSCP value", 63, dscp_number); }},
        {"vlan",
         [&](const Entry& e, const std::string& p) { rule.vlans = ranges(e, p, "VLAN id", 4094, no_names); }},
        {"mac",
         [&](const Entry& e, const std::string& p) {
             each_value(e, p, "a MAC address",
                        [&](const std::string& t, const YAML::Mark& m, const std::string& vp) {
                            const auto mac = parse_mac(t);
                            if (!mac)
                                fail(m, vp,
                                     "invalid MAC address " + quote(t) + " (expected aa:bb:cc:dd:ee:ff)");
                            rule.macs.push_back(*mac);
                        });
         }},
    };
}

// Ports exist for TCP and UDP only: a port criterion with another protocol can never match.
void RulesParser::check_rule(const YAML::Node& block, const std::string& path, const Rule& rule) const {
    if (rule.sports.empty() && rule.dports.empty())
        return;
    for (const ValueRange& r : rule.protocols)
        for (uint32_t v = r.lo; v <= r.hi; v++)
            if (v != 6 && v != 17)
                fail(block.Mark(), path + ".protocol",
                     "sport and dport match tcp and udp only, protocol " + std::to_string(v) +
                         " has no ports");
}

void RulesParser::each_value(
    const Entry& e, const std::string& path, const std::string& expected,
    const std::function<void(const std::string&, const YAML::Mark&, const std::string&)>& one) const {
    if (e.value.IsScalar()) {
        one(e.value.Scalar(), mark_of(e), path);
        return;
    }
    if (!e.value.IsSequence() || e.value.size() == 0)
        fail(mark_of(e), path,
             "expected " + expected + " or a non-empty list of them, got " + kind_of(e.value));
    if (e.value.size() > classes_limits::max_values)
        fail(mark_of(e), path, "at most " + std::to_string(classes_limits::max_values) + " values in a list");
    size_t i = 0;
    for (const YAML::Node& v : e.value) {
        const std::string vp = path + "[" + std::to_string(i++) + "]";
        if (!v.IsScalar())
            fail(v.Mark(), vp, "expected " + expected + ", got " + kind_of(v));
        one(v.Scalar(), v.Mark(), vp);
    }
}

std::vector<ValueRange>
RulesParser::ranges(const Entry& e, const std::string& path, const std::string& what, uint32_t max,
                    const std::function<std::optional<uint8_t>(std::string_view)>& names) const {
    std::vector<ValueRange> out;
    const auto value = [&](std::string_view t, const YAML::Mark& m, const std::string& vp) -> uint32_t {
        if (const auto n = names(t))
            return *n;
        const auto v = parse_uint(t);
        if (!v || *v > max)
            fail(m, vp, "invalid " + what + " " + quote(t) + " (0 .. " + std::to_string(max) + ")");
        return static_cast<uint32_t>(*v);
    };
    each_value(e, path, "a " + what + " or a range A-B",
               [&](const std::string& t, const YAML::Mark& m, const std::string& vp) {
                   const auto dash = t.find('-');
                   // Names may hold a '-' ("ipv6-icmp"): a name wins over a range.
                   if (dash == std::string::npos || names(t)) {
                       const uint32_t v = value(t, m, vp);
                       out.push_back({v, v});
                       return;
                   }
                   const uint32_t lo = value(std::string_view(t).substr(0, dash), m, vp);
                   const uint32_t hi = value(std::string_view(t).substr(dash + 1), m, vp);
                   if (lo > hi)
                       fail(m, vp, "range " + quote(t) + " runs backwards");
                   out.push_back({lo, hi});
               });
    return out;
}

std::vector<Prefix> RulesParser::prefixes(const Entry& e, const std::string& path) const {
    std::vector<Prefix> out;
    each_value(e, path, "an address or prefix",
               [&](const std::string& t, const YAML::Mark& m, const std::string& vp) {
                   std::string why;
                   const auto p = parse_rule_prefix(t, &why);
                   if (!p)
                       fail(m, vp, "invalid prefix " + quote(t) + ": " + why);
                   out.push_back(*p);
               });
    return out;
}

bool in_ranges(const std::vector<ValueRange>& rs, uint32_t v) {
    if (rs.empty())
        return true;
    return std::any_of(rs.begin(), rs.end(), [v](const ValueRange& r) { return v >= r.lo && v <= r.hi; });
}

bool in_prefixes(const std::vector<Prefix>& ps, uint8_t family, const std::array<uint32_t, 4>& a) {
    if (ps.empty())
        return true;
    return std::any_of(ps.begin(), ps.end(), [&](const Prefix& p) { return prefix_matches(p, family, a); });
}

} // namespace

bool valid_class_name(std::string_view name) {
    if (name.empty() || name.size() > classes_limits::max_name_len)
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
}

std::optional<uint8_t> protocol_number(std::string_view name) {
    return lookup(kProtocols, name);
}

std::optional<uint8_t> dscp_number(std::string_view name) {
    return lookup(kDscp, name);
}

bool valid_interface_glob(std::string_view glob) {
    if (glob.empty() || glob.size() > classes_limits::max_glob_len)
        return false;
    return std::all_of(glob.begin(), glob.end(),
                       [](char c) { return c > ' ' && c < 0x7f && c != '/' && c != ':'; });
}

std::optional<Prefix> parse_rule_prefix(std::string_view text, std::string* why) {
    if (text == "0.0.0.0/0" || text == "::/0") {
        Prefix any;
        any.family = text == "::/0" ? NT_AF_INET6 : NT_AF_INET;
        any.len = 0;
        return any;
    }
    return Prefix::parse(text, why);
}

RuleSet parse_rules(const std::string& text, const std::string& source) {
    return RulesParser(source.empty() ? "<rules>" : source).parse(text);
}

bool prefix_matches(const Prefix& p, uint8_t family, const std::array<uint32_t, 4>& addr) {
    if (p.family == family) {
        if (p.len == 0)
            return true;
        return p.contains(family, addr.data());
    }
    // An IPv4 prefix and an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
    if (p.family == NT_AF_INET && family == NT_AF_INET6 && addr[0] == 0 && addr[1] == 0 &&
        addr[2] == htonl(0xffff)) {
        if (p.len == 0)
            return true;
        const uint32_t a[4] = {addr[3], 0, 0, 0};
        return p.contains(NT_AF_INET, a);
    }
    return false;
}

bool rule_matches(const Rule& rule, const PacketFacts& pkt) {
    if (!rule.interfaces.empty() &&
        std::none_of(rule.interfaces.begin(), rule.interfaces.end(),
                     [&](const std::string& g) { return fnmatch(g.c_str(), pkt.ifname.c_str(), 0) == 0; }))
        return false;
    if (rule.direction != RuleDir::Any && (rule.direction == RuleDir::Ingress) != (pkt.dir == NT_DIR_INGRESS))
        return false;
    if (!in_ranges(rule.protocols, pkt.proto) || !in_ranges(rule.dscp, pkt.dscp) ||
        !in_ranges(rule.vlans, pkt.vlan))
        return false;
    if (!rule.sports.empty() && (!pkt.has_ports || !in_ranges(rule.sports, pkt.sport)))
        return false;
    if (!rule.dports.empty() && (!pkt.has_ports || !in_ranges(rule.dports, pkt.dport)))
        return false;
    if (!in_prefixes(rule.src, pkt.family, pkt.src) || !in_prefixes(rule.dst, pkt.family, pkt.dst))
        return false;
    if (!rule.macs.empty() && (!pkt.lan || !pkt.has_mac ||
                               std::find(rule.macs.begin(), rule.macs.end(), pkt.mac) == rule.macs.end()))
        return false;
    return true;
}

uint32_t classify_direct(const RuleSet& rules, const PacketFacts& pkt) {
    for (const Rule& r : rules.rules)
        if (rule_matches(r, pkt))
            return r.class_id;
    return kClassOther;
}

} // namespace nettally
