// Pure logic of action enforcement: which subjects can be enforced, the kernel
// policy key of a host or user subject, the throttle schedule's parameters, and
// the table that folds several thresholds' actions on one key into the one entry
// the kernel holds (block beats throttle; the lowest rate wins). A host key is
// an address or a MAC; a user key is the user's id, and the kernel applies it
// to every address bound to the user (where a host and its user both have an
// entry, the programs apply the stricter). No syscalls;
// unit-tested in tests/unit/enforce_policy_test.cpp. daemon/kernel/enforce.cpp moves
// the result into the kernel map.
#pragma once

#include "core/abi.h"
#include "core/actions.h"

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nettally {

// Limits of a throttle rate, bytes per second of wire (l2) traffic.
constexpr uint64_t kMinThrottleRate = 1000;              // 1 kB/s
constexpr uint64_t kMaxThrottleRate = 50'000'000'000ull; // 400 Gbit/s
// The policer lets through about this much time's worth of rate at once...
constexpr uint64_t kThrottleBurstNs = 1'000'000'000ull; // 1 s
// ...but never less than this many bytes (a few full-size GSO/GRO packets,
// so a TCP sender is not starved at low rates).
constexpr uint64_t kThrottleMinBurstBytes = 4 * 65536;
// EDT: a packet scheduled further ahead than this is dropped (bounds fq's queue).
constexpr uint64_t kEdtHorizonNs = 2'000'000'000ull; // 2 s

struct PolicyKey {
    uint8_t family = 0;             // NT_AF_INET, NT_AF_INET6, NT_POLICY_MAC, NT_POLICY_USER
    std::array<uint8_t, 16> addr{}; // a user key: the id, host byte order, in the first 4 bytes
    auto operator<=>(const PolicyKey&) const = default;
    nt_policy_key to_abi() const;
    std::string to_string() const;
};

// The kernel-facing parameters of one host's effective action.
struct PolicyParams {
    uint32_t action = 0; // NT_POLICY_THROTTLE or NT_POLICY_BLOCK
    uint64_t rate = 0;   // bytes/s, throttle only
    uint64_t burst_ns = 0;
    uint64_t horizon_ns = 0;
    bool operator==(const PolicyParams&) const = default;
};

// The policy key of a host subject: an IPv4/IPv6 address (canonical or not)
// or a MAC ("aa:bb:cc:dd:ee:ff", any case). nullopt, with *why set, otherwise.
std::optional<PolicyKey> host_policy_key(const std::string& value, std::string* why = nullptr);

// "" when the action can be enforced for the subject; else one line why not.
std::string check_enforceable(const Subject& subject, ActionKind action, uint64_t rate_bytes_per_s);

// Throttle parameters for a rate (burst: 1 s of rate, at least kThrottleMinBurstBytes).
PolicyParams throttle_params(uint64_t rate_bytes_per_s);
PolicyParams block_params();

// The id the kernel counts a user under (Subscribers: allocated when new).
using UserIdOf = std::function<uint32_t(const std::string& user)>;

// The policy key of a user.
PolicyKey user_policy_key(uint32_t user_id);

// Which thresholds enforce what on which host or user, and what the kernel should hold.
class PolicyTable {
public:
    // user_id: how a user subject becomes a key; without it user subjects are refused.
    explicit PolicyTable(UserIdOf user_id = {}) : user_id_(std::move(user_id)) {}
    // Replaces whatever `id` enforced. Throws std::invalid_argument when
    // check_enforceable() refuses (nothing changes then). Notify removes the id.
    void set(const std::string& id, const Subject& subject, ActionKind action, uint64_t rate_bytes_per_s);
    // No-op for an unknown id.
    void remove(const std::string& id);
    std::vector<std::string> ids() const;
    // One entry per host with an action in force: block if any threshold
    // blocks it, else a throttle at the lowest rate asked for.
    std::map<PolicyKey, PolicyParams> effective() const;
    // nt_policy_kinds bits for the effective table.
    uint32_t kinds() const;
    size_t size() const { return by_id_.size(); }

private:
    struct Entry {
        PolicyKey key;
        ActionKind action = ActionKind::Notify;
        uint64_t rate = 0;
    };
    UserIdOf user_id_;
    std::map<std::string, Entry> by_id_;
};

// Signals only: what runs when kernel enforcement is not available. check() refuses
// throttle and block with a clear reason, so such a threshold is never half-accepted.
class NotifyOnlyEnforcer final : public ActionEnforcer {
public:
    std::string check(const Subject&, ActionKind action, uint64_t) const override;
    void apply(const std::string&, const Subject&, ActionKind, uint64_t) override;
    void lift(const std::string&) override {}
    std::vector<std::string> active() const override { return {}; }
};

} // namespace nettally
