// NAT on the gateway (README "NAT"): the kernel's connection tracking entries of translated IPv4
// TCP/UDP connections (learned by os/conntrack.h), and what nettally derives from them: the
// post-NAT addresses and ports of a flow (IPFIX IEs 225-228) and the LAN host a WAN-side flow
// belongs to, whose wan_sent / wan_received it is credited to. Pure: the netlink socket is in
// os/conntrack.h.
//
// A conntrack entry has an original tuple O (as the initiator sent it) and a reply tuple R (as
// the reply arrives). With masquerade, O = client -> server and R = server -> public address. A
// flow whose packets are translated after the observation point is an ingress flow whose tuple is
// O (the LAN side of a masqueraded connection) or R (the WAN side); its post-NAT tuple is then the
// other one reversed. Egress flows are already translated when they are seen: they carry no
// post-NAT fields.
#pragma once

#include "core/counters.h"

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

namespace nettally {

// One direction of a connection: IPv4 addresses in network byte order, ports in host order.
struct CtTuple {
    uint8_t proto = 0;
    uint32_t src = 0;
    uint32_t dst = 0;
    uint16_t sport = 0;
    uint16_t dport = 0;
    auto operator<=>(const CtTuple&) const = default;
    CtTuple reversed() const { return {proto, dst, src, dport, sport}; }
};

struct CtEntry {
    CtTuple orig;
    CtTuple reply;
    // Addresses or ports change between the two directions.
    bool translated() const { return orig != reply.reversed(); }
};

// The tuple of an IPv4 TCP/UDP flow key (nullopt for anything else).
std::optional<CtTuple> flow_tuple(const nt_flow_key& k);

struct PostNat {
    uint32_t src = 0; // network byte order
    uint32_t dst = 0;
    uint16_t sport = 0;
    uint16_t dport = 0;
};

class NatTable {
public:
    // A new or updated entry; untranslated ones are ignored (and forget an earlier translation).
    void update(const CtEntry& e);
    // The connection ended at `now_ns` (CLOCK_MONOTONIC): kept `keep` longer, so that the flows it had,
    // finished by nettally only after their idle timeout, still find it.
    void destroyed(const CtEntry& e, uint64_t now_ns);
    // A full dump of the table: live entries are replaced, destroyed ones kept until they expire.
    void replace(const std::vector<CtEntry>& entries, uint64_t now_ns);
    // Forgets destroyed entries older than keep_ns.
    void expire(uint64_t now_ns, uint64_t keep_ns);

    // The post-NAT tuple of a flow translated after its observation point (see above).
    std::optional<PostNat> post_nat(const nt_flow_key& k) const;
    // The connection a flow belongs to, by either tuple in either direction.
    const CtEntry* connection(const nt_flow_key& k) const;
    size_t size() const { return conns_.size(); }

private:
    struct Conn {
        CtEntry entry;
        uint64_t destroyed_ns = 0; // 0: live
    };
    void erase(const CtTuple& orig);
    std::map<CtTuple, Conn> conns_;       // by original tuple
    std::map<CtTuple, CtTuple> by_reply_; // reply tuple -> original tuple
};

// What a LAN host's connections moved across WAN-role interfaces since the last call.
struct WanDelta {
    uint32_t addr = 0; // the LAN host, network byte order
    uint8_t dir = 0;   // NT_DIR_EGRESS: the host's wan_sent; NT_DIR_INGRESS: wan_received
    Counts counts;
};

// Turns the WAN-side flows into per-host deltas: each flow's counts are credited once, the part
// new since the last poll, to the LAN host of its connection (the original source, or the reply
// source when the connection came in from the WAN, as with port forwarding).
class WanCredit {
public:
    // A finished WAN-side flow (its final counts).
    void finished(const FlowEntry& f, const NatTable& nat, const std::set<uint32_t>& wan_ifindexes,
                  const std::set<uint32_t>& lan_hosts);
    // The live flows at this poll; returns everything credited since the last call.
    std::vector<WanDelta> poll(const std::vector<FlowEntry>& live, const NatTable& nat,
                               const std::set<uint32_t>& wan_ifindexes, const std::set<uint32_t>& lan_hosts);
    size_t tracked() const { return seen_.size(); }
    // What has been credited of live flows, saved with the state: after a restart in the same boot
    // the flows are still in the kernel, and without it their counts would be credited again.
    // restore() throws std::exception on bad input and then keeps nothing.
    nlohmann::json to_json() const;
    void restore(const nlohmann::json& j);

private:
    struct KeyLess {
        bool operator()(const nt_flow_key& a, const nt_flow_key& b) const;
    };
    void credit(const FlowEntry& f, const Counts& delta, const NatTable& nat,
                const std::set<uint32_t>& lan_hosts);
    std::map<nt_flow_key, Counts, KeyLess> seen_; // counts credited so far
    std::vector<WanDelta> out_;
};

} // namespace nettally
