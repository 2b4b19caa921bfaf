// NAT: conntrack entries, post-NAT tuples, WAN credit per LAN host. See nat.h.
#include "core/nat.h"

#include <cstring>
#include <stdexcept>
#include <utility>

namespace nettally {

namespace {

constexpr uint8_t kTcp = 6, kUdp = 17;

PostNat post_of(const CtTuple& t) {
    return {t.src, t.dst, t.sport, t.dport};
}

} // namespace

std::optional<CtTuple> flow_tuple(const nt_flow_key& k) {
    if (k.family != NT_AF_INET || (k.proto != kTcp && k.proto != kUdp))
        return std::nullopt;
    return CtTuple{k.proto, k.src[0], k.dst[0], k.sport, k.dport};
}

void NatTable::erase(const CtTuple& orig) {
    auto it = conns_.find(orig);
    if (it == conns_.end())
        return;
    by_reply_.erase(it->second.entry.reply);
    conns_.erase(it);
}

void NatTable::update(const CtEntry& e) {
    erase(e.orig);
    if (!e.translated())
        return;
    // A reply tuple now taken by another connection (a reused port): the old one is over.
    if (auto r = by_reply_.find(e.reply); r != by_reply_.end())
        erase(r->second);
    conns_[e.orig] = Conn{e, 0};
    by_reply_[e.reply] = e.orig;
}

void NatTable::destroyed(const CtEntry& e, uint64_t now_ns) {
    auto it = conns_.find(e.orig);
    if (it == conns_.end()) {
        if (!e.translated())
            return;
        update(e);
        it = conns_.find(e.orig);
    }
    it->second.destroyed_ns = now_ns ? now_ns : 1;
}

void NatTable::replace(const std::vector<CtEntry>& entries, uint64_t now_ns) {
    std::set<CtTuple> live;
    for (const auto& e : entries)
        if (e.translated())
            live.insert(e.orig);
    // Live entries missing from the dump ended while nobody listened: they count as destroyed now.
    for (auto& [orig, c] : conns_)
        if (!c.destroyed_ns && !live.count(orig))
            c.destroyed_ns = now_ns ? now_ns : 1;
    for (const auto& e : entries)
        update(e);
}

void NatTable::expire(uint64_t now_ns, uint64_t keep_ns) {
    for (auto it = conns_.begin(); it != conns_.end();) {
        const uint64_t d = it->second.destroyed_ns;
        if (d && now_ns >= d + keep_ns) {
            by_reply_.erase(it->second.entry.reply);
            it = conns_.erase(it);
        } else {
            ++it;
        }
    }
}

std::optional<PostNat> NatTable::post_nat(const nt_flow_key& k) const {
    if (k.dir != NT_DIR_INGRESS)
        return std::nullopt;
    const auto t = flow_tuple(k);
    if (!t)
        return std::nullopt;
    if (auto it = conns_.find(*t); it != conns_.end())
        return post_of(it->second.entry.reply.reversed());
    if (auto r = by_reply_.find(*t); r != by_reply_.end())
        return post_of(r->second.reversed());
    return std::nullopt;
}

const CtEntry* NatTable::connection(const nt_flow_key& k) const {
    const auto t = flow_tuple(k);
    if (!t)
        return nullptr;
    for (const CtTuple& x : {*t, t->reversed()}) {
        if (auto it = conns_.find(x); it != conns_.end())
            return &it->second.entry;
        if (auto r = by_reply_.find(x); r != by_reply_.end())
            return &conns_.at(r->second).entry;
    }
    return nullptr;
}

bool WanCredit::KeyLess::operator()(const nt_flow_key& a, const nt_flow_key& b) const {
    return std::memcmp(&a, &b, sizeof a) < 0;
}

void WanCredit::credit(const FlowEntry& f, const Counts& delta, const NatTable& nat,
                       const std::set<uint32_t>& lan_hosts) {
    uint32_t host = 0;
    if (const CtEntry* c = nat.connection(f.key)) {
        if (lan_hosts.count(c->orig.src))
            host = c->orig.src;
        else if (lan_hosts.count(c->reply.src))
            host = c->reply.src;
    } else if (f.key.family == NT_AF_INET) {
        // Not translated (a routed LAN): the host's own address is on the WAN side.
        const uint32_t own = f.key.dir == NT_DIR_EGRESS ? f.key.src[0] : f.key.dst[0];
        if (lan_hosts.count(own))
            host = own;
    }
    if (!host)
        return;
    seen_[f.key] = f.counts;
    if (delta.packets)
        out_.push_back({host, f.key.dir, delta});
}

void WanCredit::finished(const FlowEntry& f, const NatTable& nat, const std::set<uint32_t>& wan_ifindexes,
                         const std::set<uint32_t>& lan_hosts) {
    if (!wan_ifindexes.count(f.key.ifindex))
        return;
    auto it = seen_.find(f.key);
    const Counts delta = it == seen_.end() ? f.counts : delta_since(f.counts, it->second);
    credit(f, delta, nat, lan_hosts);
    seen_.erase(f.key);
}

std::vector<WanDelta> WanCredit::poll(const std::vector<FlowEntry>& live, const NatTable& nat,
                                      const std::set<uint32_t>& wan_ifindexes,
                                      const std::set<uint32_t>& lan_hosts) {
    std::map<nt_flow_key, Counts, KeyLess> keep;
    for (const auto& f : live) {
        if (!wan_ifindexes.count(f.key.ifindex))
            continue;
        auto it = seen_.find(f.key);
        const Counts delta = it == seen_.end() ? f.counts : delta_since(f.counts, it->second);
        credit(f, delta, nat, lan_hosts);
        if (auto s = seen_.find(f.key); s != seen_.end())
            keep[f.key] = s->second;
    }
    // Flows gone without a finished() call (an interface released) are forgotten.
    seen_ = std::move(keep);
    return std::exchange(out_, {});
}

nlohmann::json WanCredit::to_json() const {
    nlohmann::json flows = nlohmann::json::array();
    for (const auto& [key, c] : seen_) {
        const auto* b = reinterpret_cast<const uint8_t*>(&key);
        flows.push_back({{"key", std::vector<uint8_t>(b, b + sizeof key)}, {"counts", nettally::to_json(c)}});
    }
    return flows;
}

void WanCredit::restore(const nlohmann::json& j) {
    std::map<nt_flow_key, Counts, KeyLess> out;
    for (const auto& f : j) {
        const auto bytes = f.at("key").get<std::vector<uint8_t>>();
        if (bytes.size() != sizeof(nt_flow_key))
            throw std::invalid_argument("bad WAN credit entry");
        nt_flow_key key{};
        std::memcpy(&key, bytes.data(), sizeof key);
        out[key] = counts_from_json(f.at("counts"));
    }
    seen_ = std::move(out);
}

} // namespace nettally
