// Flow-aggregate subjects of thresholds ("flow:iface=wan0,proto=tcp,dport=443"): which live and
// finished flows an aggregate sums. Pure; parse errors are ThresholdErrors naming the key "subject".
#pragma once

#include "core/collector.h"
#include "core/thresholds_def.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nettally {

// A flow aggregate: comma-separated key=value terms, all of which must match a flow
// (a unidirectional flow record on one interface, DESIGN.md):
//   iface=NAME        the interface (default: every interface; forwarded traffic is
//                     then seen on two interfaces and counted twice)
//   proto=tcp|udp|icmp|icmpv6|N
//   src=PREFIX, dst=PREFIX, net=PREFIX (either address)   v4 or v6, "198.18.0.0/15", a bare
//                     address is a /32 or /128
//   sport=N, dport=N, port=N (either port)   0..65535
// e.g. "iface=wan0,proto=tcp,dport=443". Direction: sent = egress flows, received =
// ingress flows, both = both.
struct FlowFilter {
    std::string iface;
    std::optional<uint8_t> proto;
    struct Prefix {
        uint8_t family = 0; // NT_AF_* as in the flow key
        uint32_t addr[4]{};
        uint8_t len = 0;
        bool matches(uint8_t family, const uint32_t a[4]) const;
    };
    std::optional<Prefix> src, dst, net;
    std::optional<uint16_t> sport, dport, port;

    bool matches(const FlowEntry& f, const std::string& iface) const;
    // Throws ThresholdError("subject: ...").
    static FlowFilter parse(std::string_view text);
};

} // namespace nettally
