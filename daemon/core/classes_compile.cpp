// The compiler of traffic classes and the reference classifier (classes_bundle.h).
#include "core/classes_bundle.h"

#include <algorithm>
#include <arpa/inet.h>
#include <bit>
#include <cstdio>
#include <fnmatch.h>
#include <functional>
#include <map>
#include <tuple>

namespace nettally {
namespace {

using Mask = std::vector<uint64_t>;

void set_bit(Mask& m, size_t i) {
    m[i / 64] |= uint64_t{1} << (i % 64);
}

// Interns masks into equivalence ids.
class EqBuilder {
public:
    explicit EqBuilder(uint32_t words, const char* dim) : dim_(dim) { table_.words = words; }

    uint32_t id(const Mask& m) {
        const auto [it, added] = ids_.try_emplace(m, static_cast<uint32_t>(ids_.size()));
        if (added) {
            if (ids_.size() > kBundleMaxEq)
                throw BundleError(std::string("dimension ") + dim_ + " needs more than " +
                                  std::to_string(kBundleMaxEq) + " distinct rule sets");
            table_.masks.insert(table_.masks.end(), m.begin(), m.end());
        }
        return it->second;
    }
    EqTable take() { return std::move(table_); }

private:
    const char* dim_;
    std::map<Mask, uint32_t> ids_;
    EqTable table_;
};

// The rules that do not test a dimension: they pass every value of it.
template <typename Has> Mask unconstrained(const RuleSet& rs, uint32_t words, Has has) {
    Mask m(words, 0);
    for (size_t i = 0; i < rs.rules.size(); i++)
        if (!has(rs.rules[i]))
            set_bit(m, i);
    return m;
}

// A sweep over the range boundaries: between two boundaries the set of rules is constant.
ScalarDim scalar_dim(const RuleSet& rs, uint32_t words, uint32_t domain, const char* name,
                     const std::function<std::vector<ValueRange>(const Rule&)>& get) {
    EqBuilder eqs(words, name);
    std::map<uint32_t, std::vector<std::pair<size_t, int>>> events; // value -> (rule, +1/-1)
    for (size_t i = 0; i < rs.rules.size(); i++)
        for (const ValueRange& r : get(rs.rules[i])) {
            events[r.lo].emplace_back(i, 1);
            if (r.hi + 1 < domain)
                events[r.hi + 1].emplace_back(i, -1);
        }
    const Mask base = unconstrained(rs, words, [&](const Rule& r) { return !get(r).empty(); });
    ScalarDim d;
    d.domain = domain;
    d.none_eq = eqs.id(base);
    Mask cur = base;
    std::vector<int> open(rs.rules.size(), 0);
    events.try_emplace(0);
    for (const auto& [value, evs] : events) {
        for (const auto& [rule, delta] : evs) {
            open[rule] += delta;
            if (open[rule] > 0)
                set_bit(cur, rule);
            else
                cur[rule / 64] &= ~(uint64_t{1} << (rule % 64));
        }
        const uint32_t eq = eqs.id(cur);
        if (d.runs.empty() || d.runs.back()[1] != eq)
            d.runs.push_back({value, eq});
    }
    d.eqs = eqs.take();
    return d;
}

std::vector<ValueRange> direction_ranges(const Rule& r) {
    if (r.direction == RuleDir::Any)
        return {};
    const uint32_t d = r.direction == RuleDir::Ingress ? NT_DIR_INGRESS : NT_DIR_EGRESS;
    return {{d, d}};
}

// Host-order words, for ordering addresses as numbers.
std::array<uint32_t, 4> host_order(const std::array<uint32_t, 4>& a) {
    return {ntohl(a[0]), ntohl(a[1]), ntohl(a[2]), ntohl(a[3])};
}

using PrefixKey = std::tuple<uint8_t, std::array<uint32_t, 4>, uint8_t>; // family, host-order addr, len

Prefix to_prefix(const PrefixKey& k) {
    Prefix p;
    p.family = std::get<0>(k);
    const auto& h = std::get<1>(k);
    p.addr = {htonl(h[0]), htonl(h[1]), htonl(h[2]), htonl(h[3])};
    p.len = std::get<2>(k);
    return p;
}

// A rule's prefixes as the kernel stores them: an IPv4 prefix also as its IPv4-mapped IPv6 form.
void add_prefix(std::map<PrefixKey, Mask>& own, const Prefix& p, size_t rule, uint32_t words) {
    const auto add = [&](const PrefixKey& k) {
        auto [it, added] = own.try_emplace(k, Mask(words, 0));
        set_bit(it->second, rule);
    };
    add({p.family, host_order(p.addr), p.len});
    if (p.family == NT_AF_INET)
        add({NT_AF_INET6, {0, 0, 0xffff, ntohl(p.addr[0])}, static_cast<uint8_t>(96 + p.len)});
}

// Each entry's mask: the unconstrained rules, its own and every containing prefix's (a stack of
// the containing entries, which sort before the ones they contain).
PrefixDim prefix_dim(const RuleSet& rs, uint32_t words, const char* name,
                     const std::vector<Prefix> Rule::*field) {
    std::map<PrefixKey, Mask> own;
    own.try_emplace({NT_AF_INET, {}, 0}, Mask(words, 0));
    own.try_emplace({NT_AF_INET6, {}, 0}, Mask(words, 0));
    for (size_t i = 0; i < rs.rules.size(); i++)
        for (const Prefix& p : rs.rules[i].*field)
            add_prefix(own, p, i, words);
    const Mask base = unconstrained(rs, words, [&](const Rule& r) { return !(r.*field).empty(); });
    EqBuilder eqs(words, name);
    PrefixDim d;
    std::vector<std::pair<Prefix, Mask>> stack;
    for (const auto& [key, mask] : own) {
        const Prefix p = to_prefix(key);
        while (!stack.empty() && !stack.back().first.contains(p.family, p.addr.data()))
            stack.pop_back();
        Mask m = stack.empty() ? base : stack.back().second;
        for (uint32_t w = 0; w < words; w++)
            m[w] |= mask[w];
        d.entries.push_back({p.family, p.len, p.addr, eqs.id(m)});
        stack.emplace_back(p, std::move(m));
    }
    d.eqs = eqs.take();
    return d;
}

MacDim mac_dim(const RuleSet& rs, uint32_t words) {
    const Mask base = unconstrained(rs, words, [](const Rule& r) { return !r.macs.empty(); });
    std::map<std::array<uint8_t, 6>, Mask> own;
    for (size_t i = 0; i < rs.rules.size(); i++)
        for (const auto& mac : rs.rules[i].macs) {
            auto [it, added] = own.try_emplace(mac, base);
            set_bit(it->second, i);
        }
    EqBuilder eqs(words, "mac");
    MacDim d;
    d.none_eq = eqs.id(base);
    for (const auto& [mac, mask] : own)
        d.entries.push_back({mac, eqs.id(mask)});
    d.eqs = eqs.take();
    return d;
}

void and_into(Mask& acc, std::span<const uint64_t> m) {
    for (size_t w = 0; w < acc.size(); w++)
        acc[w] &= m[w];
}

} // namespace

uint32_t ScalarDim::eq_of(uint32_t value) const {
    const auto it = std::upper_bound(runs.begin(), runs.end(), value,
                                     [](uint32_t v, const std::array<uint32_t, 2>& r) { return v < r[0]; });
    return it == runs.begin() ? none_eq : (it - 1)->at(1);
}

uint32_t PrefixDim::eq_of(uint8_t family, const std::array<uint32_t, 4>& addr) const {
    int best = -1;
    uint32_t eq = 0;
    for (const PrefixEntry& e : entries) {
        Prefix p;
        p.family = e.family;
        p.len = e.len;
        p.addr = e.addr;
        if (e.family == family && static_cast<int>(e.len) > best && p.contains(family, addr.data())) {
            best = e.len;
            eq = e.eq;
        }
    }
    return eq;
}

uint32_t MacDim::eq_of(const PacketFacts& pkt) const {
    if (!pkt.lan || !pkt.has_mac)
        return none_eq;
    const auto it =
        std::lower_bound(entries.begin(), entries.end(), pkt.mac,
                         [](const MacEntry& e, const std::array<uint8_t, 6>& m) { return e.mac < m; });
    return it != entries.end() && it->mac == pkt.mac ? it->eq : none_eq;
}

Bundle compile_rules(const RuleSet& rs) {
    Bundle b;
    b.version = rs.version;
    b.name = rs.name;
    b.classes = rs.classes;
    b.words = std::max<uint32_t>(1, static_cast<uint32_t>((rs.rules.size() + 63) / 64));
    for (const Rule& r : rs.rules)
        b.rules.push_back({r.class_id, r.interfaces});
    const uint32_t w = b.words;
    b.dir = scalar_dim(rs, w, NT_DIR_MAX, "direction", direction_ranges);
    b.proto = scalar_dim(rs, w, 256, "protocol", [](const Rule& r) { return r.protocols; });
    b.sport = scalar_dim(rs, w, 65536, "sport", [](const Rule& r) { return r.sports; });
    b.dport = scalar_dim(rs, w, 65536, "dport", [](const Rule& r) { return r.dports; });
    b.dscp = scalar_dim(rs, w, 64, "dscp", [](const Rule& r) { return r.dscp; });
    b.vlan = scalar_dim(rs, w, 4096, "vlan", [](const Rule& r) { return r.vlans; });
    b.src = prefix_dim(rs, w, "src", &Rule::src);
    b.dst = prefix_dim(rs, w, "dst", &Rule::dst);
    b.mac = mac_dim(rs, w);
    return b;
}

std::vector<uint64_t> interface_mask(const Bundle& b, const std::string& ifname) {
    Mask m(b.words, 0);
    for (size_t i = 0; i < b.rules.size(); i++) {
        const auto& globs = b.rules[i].interfaces;
        if (globs.empty() || std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
                return fnmatch(g.c_str(), ifname.c_str(), 0) == 0;
            }))
            set_bit(m, i);
    }
    return m;
}

int first_rule(const Bundle& b, const PacketFacts& pkt) {
    Mask acc = interface_mask(b, pkt.ifname);
    and_into(acc, b.dir.eqs.mask(b.dir.eq_of(pkt.dir)));
    and_into(acc, b.proto.eqs.mask(b.proto.eq_of(pkt.proto)));
    and_into(acc, b.sport.eqs.mask(pkt.has_ports ? b.sport.eq_of(pkt.sport) : b.sport.none_eq));
    and_into(acc, b.dport.eqs.mask(pkt.has_ports ? b.dport.eq_of(pkt.dport) : b.dport.none_eq));
    and_into(acc, b.dscp.eqs.mask(b.dscp.eq_of(pkt.dscp)));
    and_into(acc, b.vlan.eqs.mask(b.vlan.eq_of(pkt.vlan)));
    and_into(acc, b.src.eqs.mask(b.src.eq_of(pkt.family, pkt.src)));
    and_into(acc, b.dst.eqs.mask(b.dst.eq_of(pkt.family, pkt.dst)));
    and_into(acc, b.mac.eqs.mask(b.mac.eq_of(pkt)));
    for (size_t w = 0; w < acc.size(); w++)
        if (acc[w])
            return static_cast<int>(w * 64 + static_cast<size_t>(std::countr_zero(acc[w])));
    return -1;
}

uint32_t classify(const Bundle& b, const PacketFacts& pkt) {
    const int r = first_rule(b, pkt);
    return r < 0 ? kClassOther : b.rules[static_cast<size_t>(r)].class_id;
}

std::string class_name(const Bundle& b, uint32_t id) {
    if (id == kClassOther)
        return std::string(kClassOtherName);
    for (const TrafficClass& c : b.classes)
        if (c.id == id)
            return c.name;
    return {};
}

std::string hash_text(uint64_t hash) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
    return buf;
}

uint64_t fnv1a64(std::span<const uint8_t> data) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const uint8_t c : data) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

} // namespace nettally
