// Pure logic of action enforcement. See enforce.h.
#include "core/enforce.h"
#include "core/units.h"

#include <arpa/inet.h>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace nettally {
namespace {} // namespace

nt_policy_key PolicyKey::to_abi() const {
    nt_policy_key k{};
    k.family = family;
    std::memcpy(k.addr, addr.data(), sizeof(k.addr));
    return k;
}

std::string PolicyKey::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family == NT_AF_INET)
        inet_ntop(AF_INET, addr.data(), buf, sizeof(buf));
    else if (family == NT_AF_INET6)
        inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
    else if (family == NT_POLICY_USER) {
        uint32_t id = 0;
        std::memcpy(&id, addr.data(), sizeof(id));
        std::snprintf(buf, sizeof(buf), "user #%u", id);
    } else
        std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", addr[0], addr[1], addr[2], addr[3],
                      addr[4], addr[5]);
    return buf;
}

std::optional<PolicyKey> host_policy_key(const std::string& value, std::string* why) {
    PolicyKey k;
    uint32_t ip[4]{};
    if (canonical_ip(value, &k.family, ip)) {
        static_assert(sizeof(ip) == sizeof(k.addr));
        std::memcpy(k.addr.data(), ip, sizeof(ip));
        return k;
    }
    if (auto mac = parse_mac(value)) {
        k.addr = {};
        std::memcpy(k.addr.data(), mac->data(), mac->size());
        k.family = NT_POLICY_MAC;
        return k;
    }
    if (why)
        *why = "host '" + value + "' is neither an IPv4/IPv6 address nor a MAC (aa:bb:cc:dd:ee:ff)";
    return std::nullopt;
}

PolicyKey user_policy_key(uint32_t user_id) {
    PolicyKey k;
    k.family = NT_POLICY_USER;
    std::memcpy(k.addr.data(), &user_id, sizeof(user_id));
    return k;
}

std::string check_enforceable(const Subject& subject, ActionKind action, uint64_t rate) {
    if (action == ActionKind::Notify)
        return "";
    if (subject.kind != SubjectKind::Host && subject.kind != SubjectKind::User)
        return "action " + std::string(to_string(action)) +
               " is enforced for host subjects (an IP address or a MAC) and user subjects only, "
               "not for a " +
               std::string(to_string(subject.kind)) + " subject; use notify";
    std::string why;
    if (subject.kind == SubjectKind::Host && !host_policy_key(subject.value, &why))
        return why;
    if (action == ActionKind::Throttle && (rate < kMinThrottleRate || rate > kMaxThrottleRate))
        return "throttle rate " + std::to_string(rate) + " B/s is out of range (" +
               std::to_string(kMinThrottleRate) + " .. " + std::to_string(kMaxThrottleRate) +
               " bytes per second)";
    return "";
}

PolicyParams throttle_params(uint64_t rate) {
    PolicyParams p;
    p.action = NT_POLICY_THROTTLE;
    p.rate = rate;
    // burst_ns = max(1 s, kThrottleMinBurstBytes at rate); rate >= kMinThrottleRate,
    // so the product stays far below 2^64.
    p.burst_ns = kThrottleBurstNs;
    const uint64_t min_ns = kThrottleMinBurstBytes * 1'000'000'000ull / rate;
    if (min_ns > p.burst_ns)
        p.burst_ns = min_ns;
    p.horizon_ns = kEdtHorizonNs > p.burst_ns ? kEdtHorizonNs : p.burst_ns;
    return p;
}

PolicyParams block_params() {
    PolicyParams p;
    p.action = NT_POLICY_BLOCK;
    return p;
}

void PolicyTable::set(const std::string& id, const Subject& subject, ActionKind action, uint64_t rate) {
    const std::string why = check_enforceable(subject, action, rate);
    if (!why.empty())
        throw std::invalid_argument(why);
    if (action == ActionKind::Notify) {
        by_id_.erase(id);
        return;
    }
    if (subject.kind == SubjectKind::User) {
        if (!user_id_)
            throw std::invalid_argument("action " + std::string(to_string(action)) +
                                        " for a user needs subscribers (subscribers:)");
        by_id_[id] = Entry{user_policy_key(user_id_(subject.value)), action, rate};
        return;
    }
    by_id_[id] = Entry{*host_policy_key(subject.value), action, rate};
}

void PolicyTable::remove(const std::string& id) {
    by_id_.erase(id);
}

std::vector<std::string> PolicyTable::ids() const {
    std::vector<std::string> out;
    for (const auto& [id, e] : by_id_)
        out.push_back(id);
    return out;
}

std::map<PolicyKey, PolicyParams> PolicyTable::effective() const {
    std::map<PolicyKey, std::pair<bool, uint64_t>> fold; // blocked, lowest rate
    for (const auto& [id, e] : by_id_) {
        auto [it, fresh] = fold.try_emplace(e.key, false, UINT64_MAX);
        if (e.action == ActionKind::Block)
            it->second.first = true;
        else if (e.rate < it->second.second)
            it->second.second = e.rate;
    }
    std::map<PolicyKey, PolicyParams> out;
    for (const auto& [key, f] : fold)
        out[key] = f.first ? block_params() : throttle_params(f.second);
    return out;
}

uint32_t PolicyTable::kinds() const {
    uint32_t k = 0;
    for (const auto& [id, e] : by_id_)
        k |= e.key.family == NT_POLICY_MAC    ? NT_POLICY_KIND_MAC
             : e.key.family == NT_POLICY_USER ? NT_POLICY_KIND_USER
                                              : NT_POLICY_KIND_IP;
    return k;
}

std::string NotifyOnlyEnforcer::check(const Subject&, ActionKind action, uint64_t) const {
    if (action == ActionKind::Notify)
        return "";
    return "kernel enforcement (throttle, block) is not available in this nettallyd";
}

void NotifyOnlyEnforcer::apply(const std::string&, const Subject&, ActionKind action, uint64_t) {
    if (action != ActionKind::Notify)
        throw std::runtime_error("kernel enforcement is not available in this nettallyd");
}

} // namespace nettally
