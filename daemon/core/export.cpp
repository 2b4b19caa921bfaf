// Flow export: collector URLs and the interim/final record tracker. See export.h.
#include "core/export.h"

#include "core/units.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace nettally {

namespace {

bool fail_why(std::string* why, const std::string& text) {
    if (why)
        *why = text;
    return false;
}

uint64_t to_ms(const ExportTracker::ToUnixUs& to_unix, uint64_t stamp_ns) {
    return to_unix(stamp_ns) / 1000;
}

} // namespace

std::optional<CollectorUrl> parse_collector_url(std::string_view url, std::string* why) {
    CollectorUrl u;
    const size_t sep = url.find("://");
    if (sep == std::string_view::npos) {
        fail_why(why, "expected udp://ADDRESS:PORT or tcp://ADDRESS:PORT");
        return std::nullopt;
    }
    const std::string_view scheme = url.substr(0, sep);
    if (scheme == "udp")
        u.transport = ExportTransport::Udp;
    else if (scheme == "tcp")
        u.transport = ExportTransport::Tcp;
    else {
        fail_why(why, "unknown scheme '" + std::string(scheme) + "' (valid: udp, tcp)");
        return std::nullopt;
    }
    std::string_view rest = url.substr(sep + 3);
    if (!rest.empty() && rest.back() == '/')
        rest.remove_suffix(1);
    if (rest.find('/') != std::string_view::npos || rest.find('@') != std::string_view::npos) {
        fail_why(why, "a collector URL has no path or user, only ADDRESS:PORT");
        return std::nullopt;
    }
    const auto hp = parse_host_port(rest, why);
    if (!hp) {
        if (why && rest.find(':') == std::string_view::npos)
            *why += " (IPFIX collectors listen on 4739)";
        return std::nullopt;
    }
    u.family = hp->family;
    std::memcpy(u.addr.data(), hp->addr, sizeof hp->addr);
    u.port = hp->port;
    u.text = std::string(scheme) + "://" + std::string(rest);
    return u;
}

ipfix::EndReason end_reason(const FlowEntry& f, uint64_t now_ns, const FlowTimeouts& t) {
    const auto now = static_cast<int64_t>(now_ns);
    if (now - static_cast<int64_t>(f.last_ns) >= t.idle.count())
        return ipfix::EndReason::Idle;
    if (f.first_ns && now - static_cast<int64_t>(f.first_ns) >= t.active.count())
        return ipfix::EndReason::Active;
    return ipfix::EndReason::Forced;
}

ipfix::FlowRecord make_record(const FlowEntry& f, const Counts& delta, uint64_t start_ms, uint64_t end_ms,
                              ipfix::EndReason reason, const NatTable* nat) {
    ipfix::FlowRecord r;
    r.ipv6 = f.key.family == NT_AF_INET6;
    r.protocol = f.key.proto;
    std::memcpy(r.src.data(), f.key.src, r.ipv6 ? 16 : 4);
    std::memcpy(r.dst.data(), f.key.dst, r.ipv6 ? 16 : 4);
    r.src_port = f.key.sport;
    r.dst_port = f.key.dport;
    const bool egress = f.key.dir == NT_DIR_EGRESS;
    r.ingress_if = egress ? 0 : f.key.ifindex;
    r.egress_if = egress ? f.key.ifindex : 0;
    r.direction = egress ? 1 : 0;
    r.counts = delta;
    r.start_ms = start_ms;
    r.end_ms = end_ms;
    r.reason = reason;
    r.tcp_flags = f.tcp_flags;
    if (f.key.proto == 1 || f.key.proto == 58) // ICMP, ICMPv6: dport is type * 256 + code
        r.icmp_type_code = f.key.dport;
    if (const auto post = nat ? nat->post_nat(f.key) : std::nullopt) {
        r.nat = true;
        std::memcpy(r.post_src.data(), &post->src, 4);
        std::memcpy(r.post_dst.data(), &post->dst, 4);
        r.post_sport = post->sport;
        r.post_dport = post->dport;
    }
    return r;
}

ipfix::FlowRecord ExportTracker::record(const FlowEntry& f, const Counts& delta, uint64_t start_ms,
                                        uint64_t end_ms, ipfix::EndReason reason) const {
    ipfix::FlowRecord r = make_record(f, delta, start_ms, end_ms, reason, nat_);
    if (user_of_)
        r.user = user_of_(f, end_ms);
    if (class_of_) {
        const Collector::FlowClass c = class_of_(f);
        r.rules_version = c.version;
        r.class_id = c.classified ? c.id : ipfix::kNoClass;
    }
    return r;
}

bool ExportTracker::KeyLess::operator()(const nt_flow_key& a, const nt_flow_key& b) const {
    return std::memcmp(&a, &b, sizeof a) < 0;
}

std::optional<ipfix::FlowRecord> ExportTracker::finished(const FlowEntry& f, ipfix::EndReason reason,
                                                         const ToUnixUs& to_unix) {
    uint64_t start_ns = f.first_ns;
    Counts delta = f.counts;
    if (auto it = reported_.find(f.key); it != reported_.end()) {
        delta = delta_since(f.counts, it->second.counts);
        start_ns = it->second.end_ns;
        reported_.erase(it);
        if (delta.packets == 0)
            return std::nullopt;
    }
    return record(f, delta, to_ms(to_unix, start_ns), to_ms(to_unix, f.last_ns), reason);
}

std::vector<ipfix::FlowRecord> ExportTracker::interim(const std::vector<FlowEntry>& live, uint64_t now_ns,
                                                      std::chrono::nanoseconds active,
                                                      const ToUnixUs& to_unix) {
    std::vector<ipfix::FlowRecord> out;
    const auto due = static_cast<uint64_t>(active.count());
    for (const auto& f : live) {
        auto it = reported_.find(f.key);
        const uint64_t since = it == reported_.end() ? f.first_ns : it->second.since_ns;
        if (!f.first_ns || now_ns < since + due)
            continue;
        Reported& r = it == reported_.end() ? reported_[f.key] : it->second;
        const Counts delta = delta_since(f.counts, r.counts);
        const uint64_t start_ns = it == reported_.end() ? f.first_ns : r.end_ns;
        r.since_ns = now_ns;
        if (delta.packets == 0)
            continue;
        out.push_back(
            record(f, delta, to_ms(to_unix, start_ns), to_ms(to_unix, f.last_ns), ipfix::EndReason::Active));
        r.counts = f.counts;
        r.end_ns = f.last_ns;
    }
    return out;
}

nlohmann::json ExportTracker::to_json() const {
    nlohmann::json flows = nlohmann::json::array();
    for (const auto& [key, r] : reported_) {
        const auto* b = reinterpret_cast<const uint8_t*>(&key);
        const Counts& c = r.counts;
        flows.push_back({{"key", std::vector<uint8_t>(b, b + sizeof key)},
                         {"counts", {c.packets, c.l2, c.l3, c.l4, c.payload}},
                         {"end_ns", r.end_ns},
                         {"since_ns", r.since_ns}});
    }
    return flows;
}

void ExportTracker::restore(const nlohmann::json& j) {
    std::map<nt_flow_key, Reported, KeyLess> out;
    for (const auto& f : j) {
        const auto bytes = f.at("key").get<std::vector<uint8_t>>();
        const auto c = f.at("counts").get<std::vector<uint64_t>>();
        if (bytes.size() != sizeof(nt_flow_key) || c.size() != 5)
            throw std::invalid_argument("bad export flow entry");
        nt_flow_key key{};
        std::memcpy(&key, bytes.data(), sizeof key);
        out[key] = {Counts(c[0], c[1], c[2], c[3], c[4]), f.at("end_ns").get<uint64_t>(),
                    f.at("since_ns").get<uint64_t>()};
    }
    reported_ = std::move(out);
}

} // namespace nettally
