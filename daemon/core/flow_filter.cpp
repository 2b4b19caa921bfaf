// Flow-aggregate filters. See flow_filter.h.
#include "core/flow_filter.h"

#include "core/units.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace nettally {
namespace {

using threshold_errors::fail;
using threshold_errors::quote;

} // namespace

bool FlowFilter::Prefix::matches(uint8_t fam, const uint32_t a[4]) const {
    if (fam != family)
        return false;
    const auto* x = reinterpret_cast<const uint8_t*>(a);
    const auto* y = reinterpret_cast<const uint8_t*>(addr);
    const unsigned full = len / 8, rest = len % 8;
    if (std::memcmp(x, y, full) != 0)
        return false;
    if (rest == 0)
        return true;
    const uint8_t mask = static_cast<uint8_t>(0xff00 >> rest);
    return (x[full] & mask) == (y[full] & mask);
}

bool FlowFilter::matches(const FlowEntry& f, const std::string& ifname) const {
    const auto& k = f.key;
    if (!iface.empty() && ifname != iface)
        return false;
    if (proto && k.proto != *proto)
        return false;
    if (src && !src->matches(k.family, k.src))
        return false;
    if (dst && !dst->matches(k.family, k.dst))
        return false;
    if (net && !net->matches(k.family, k.src) && !net->matches(k.family, k.dst))
        return false;
    if (sport && k.sport != *sport)
        return false;
    if (dport && k.dport != *dport)
        return false;
    if (port && k.sport != *port && k.dport != *port)
        return false;
    return true;
}

namespace {

FlowFilter::Prefix prefix_of(const std::string& key, std::string_view val) {
    FlowFilter::Prefix p;
    const size_t slash = val.find('/');
    const auto ip = canonical_ip(val.substr(0, slash), &p.family, p.addr);
    if (!ip)
        fail("subject", key + "=" + std::string(val) + ": not an address or prefix");
    const unsigned max = p.family == NT_AF_INET ? 32 : 128;
    p.len = static_cast<uint8_t>(max);
    if (slash != std::string_view::npos) {
        auto n = parse_uint(val.substr(slash + 1));
        if (!n || *n > max)
            fail("subject",
                 key + "=" + std::string(val) + ": prefix length must be 0.." + std::to_string(max));
        p.len = static_cast<uint8_t>(*n);
    }
    return p;
}

uint16_t port_of(const std::string& key, std::string_view val) {
    auto n = parse_uint(val);
    if (!n || *n > 65535)
        fail("subject", key + "=" + std::string(val) + ": a port is 0..65535");
    return static_cast<uint16_t>(*n);
}

uint8_t proto_of(std::string_view val) {
    static const std::pair<std::string_view, uint8_t> kNames[] = {
        {"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmpv6", 58}};
    const auto it =
        std::find_if(std::begin(kNames), std::end(kNames), [&](const auto& p) { return p.first == val; });
    if (it != std::end(kNames))
        return it->second;
    auto n = parse_uint(val);
    if (!n || *n > 255)
        fail("subject", "proto=" + std::string(val) + ": use tcp, udp, icmp, icmpv6 or 0..255");
    return static_cast<uint8_t>(*n);
}

constexpr std::string_view kKeys = "iface, proto, src, dst, net, sport, dport, port";

// The address and port keys, and the member each one sets.
template <typename T> struct KeyMember {
    std::string_view key;
    std::optional<T> FlowFilter::*member;
};
constexpr KeyMember<FlowFilter::Prefix> kPrefixKeys[] = {
    {"src", &FlowFilter::src}, {"dst", &FlowFilter::dst}, {"net", &FlowFilter::net}};
constexpr KeyMember<uint16_t> kPortKeys[] = {
    {"sport", &FlowFilter::sport}, {"dport", &FlowFilter::dport}, {"port", &FlowFilter::port}};

// One key=value term into f.
void apply_term(FlowFilter& f, const std::string& key, std::string_view val) {
    if (key == "iface") {
        if (val.empty() || val.size() > 15)
            fail("subject", "iface=" + std::string(val) + ": not an interface name");
        f.iface = std::string(val);
        return;
    }
    if (key == "proto") {
        f.proto = proto_of(val);
        return;
    }
    for (const auto& k : kPrefixKeys)
        if (key == k.key) {
            f.*k.member = prefix_of(key, val);
            return;
        }
    for (const auto& k : kPortKeys)
        if (key == k.key) {
            f.*k.member = port_of(key, val);
            return;
        }
    fail("subject", "unknown flow filter key " + quote(key) + " (valid: " + std::string(kKeys) + ")");
}

} // namespace

FlowFilter FlowFilter::parse(std::string_view text) {
    FlowFilter f;
    if (text.empty())
        fail("subject", "a flow filter needs at least one term (" + std::string(kKeys) + ")");
    std::vector<std::string> seen;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find(',', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view term = text.substr(pos, end - pos);
        pos = end + 1;
        const size_t eq = term.find('=');
        if (eq == std::string_view::npos)
            fail("subject", "flow filter term " + quote(term) + " is not key=value");
        const std::string key(term.substr(0, eq));
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            fail("subject", "flow filter key " + quote(key) + " given twice");
        seen.push_back(key);
        apply_term(f, key, term.substr(eq + 1));
        if (end == text.size())
            break;
    }
    return f;
}

} // namespace nettally
