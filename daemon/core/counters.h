// Counter arithmetic shared by the collector, the ledger and the D-Bus API:
// per-CPU folding of map values, monotonic totals across map resets, the
// reconciliation check, and sorting. Pure: no syscalls, unit-tested without root.
#pragma once

#include "core/abi.h"

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// One figure of a Counts: the packets or one layer's bytes.
enum class CountField { Packets, L2, L3, L4, Payload };

struct Counts {
    uint64_t packets = 0;
    uint64_t l2 = 0, l3 = 0, l4 = 0, payload = 0; // bytes counted at each layer (see README)

    Counts() = default;
    Counts(uint64_t p, uint64_t b2, uint64_t b3, uint64_t b4, uint64_t pl)
        : packets(p), l2(b2), l3(b3), l4(b4), payload(pl) {}
    explicit Counts(const nt_counts& c) : Counts(c.packets, c.l2, c.l3, c.l4, c.payload) {}

    Counts& operator+=(const Counts& o);
    friend Counts operator+(Counts a, const Counts& b) { return a += b; }
    bool operator==(const Counts&) const = default;
    // True when every figure of *this is <= the same figure of o.
    bool all_le(const Counts& o) const;
    uint64_t get(CountField f) const;
    std::string to_string() const;
};

// What a monotonic total grew by from `before` to `now`, figure by figure; a figure that went
// down was reset in between, so all of `now` is new.
Counts delta_since(const Counts& now, const Counts& before);

enum class Direction : uint8_t { Ingress = NT_DIR_INGRESS, Egress = NT_DIR_EGRESS };
std::string_view to_string(Direction);

enum class Bucket : uint8_t {
    NonIp = NT_BUCKET_NON_IP,
    Unparsable = NT_BUCKET_UNPARSABLE,
    FlowOverflow = NT_BUCKET_FLOW_OVERFLOW,
};
constexpr size_t kBucketCount = NT_BUCKET_MAX;
std::string_view bucket_name(size_t bucket);

// One interface and direction, folded over CPUs.
struct IfaceCounters {
    Counts total;
    std::array<Counts, kBucketCount> bucket{};
    uint64_t host_overflow = 0;

    Counts bucket_sum() const;
    bool operator==(const IfaceCounters&) const = default;
};

struct FlowEntry {
    nt_flow_key key{};
    Counts counts;
    uint64_t first_ns = 0; // kernel stamp (kernel_stamp_ns)
    uint64_t last_ns = 0;
    uint8_t tcp_flags = 0;
    // The class of the flow's latest classified packet (the CPU with the latest last_ns among those
    // with a class) and the serial of the ruleset that gave it (nt_cls_info.serial; 0: no class).
    // Collector::flow_class() names them.
    uint16_t cls_id = 0;
    uint32_t cls_serial = 0;
};

struct HostEntry {
    nt_host_key key{};
    Counts sent;
    Counts received;
    uint64_t first_ns = 0;
    uint64_t last_ns = 0;
};

// One lan interface and user (NT_USER_UNBOUND: no bound address), folded over CPUs.
struct UserEntry {
    nt_user_key key{};
    Counts sent;
    Counts received;
};

// One interface, direction and traffic class (nt_cls_counts), folded over CPUs.
struct ClassEntry {
    nt_cls_count_key key{};
    Counts counts;
};

// One lan host and traffic class (nt_host_cls), folded over CPUs.
struct HostClassEntry {
    nt_host_cls_key key{};
    Counts sent;
    Counts received;
};

// Per-CPU folding. Each span holds one value per possible CPU.
IfaceCounters fold_percpu(std::span<const nt_iface_val> per_cpu);
FlowEntry fold_percpu(const nt_flow_key& key, std::span<const nt_flow_val> per_cpu);
HostEntry fold_percpu(const nt_host_key& key, std::span<const nt_host_val> per_cpu);
UserEntry fold_percpu(const nt_user_key& key, std::span<const nt_user_val> per_cpu);
ClassEntry fold_percpu(const nt_cls_count_key& key, std::span<const nt_counts> per_cpu);
HostClassEntry fold_percpu(const nt_host_cls_key& key, std::span<const nt_host_cls_val> per_cpu);

// A 64-bit total that never goes backwards although the raw kernel counter it
// follows may restart from zero (map recreated, interface re-attached).
class MonotonicCounter {
public:
    // Feeds the latest raw reading; returns the new total. A reading below the last one
    // means the kernel counter restarted from zero: all of it is new.
    uint64_t observe(uint64_t raw);
    // For a sum of parts rather than one kernel counter (live + finished flows of an
    // aggregate): a part can leave it unseen (a flow finished while the daemon was down),
    // so a reading below the last one keeps the total and counts from there.
    uint64_t observe_parts(uint64_t raw);
    uint64_t total() const { return base_ + last_raw_; }
    // Starts from a known total (restored state), with no raw reading yet:
    // the kernel counters it follows start from zero (fresh maps).
    void restore(uint64_t total);
    // Restores base and last raw reading exactly: the kernel counters it
    // follows are the same ones (reused pinned maps), still counting.
    void restore_exact(uint64_t base, uint64_t last_raw);
    uint64_t base() const { return base_; }
    uint64_t last_raw() const { return last_raw_; }

private:
    uint64_t base_ = 0;
    uint64_t last_raw_ = 0;
};

// The same for a Counts (five figures, each monotonic on its own).
class MonotonicCounts {
public:
    const Counts& observe(const Counts& raw);
    const Counts& observe_parts(const Counts& raw); // MonotonicCounter::observe_parts, per figure
    const Counts& total() const { return total_; }
    // [[base, last_raw] x 5] in packets, l2, l3, l4, payload order.
    nlohmann::json to_json() const;
    // same_counters: see MonotonicCounter::restore_exact vs restore.
    void restore(const nlohmann::json& j, bool same_counters);

private:
    std::array<MonotonicCounter, 5> c_{};
    Counts total_;
};

// Reconciliation invariant: for every interface and direction, total ==
// flows (live + finished) + unattributed buckets. The kernel writes the total
// before the category, and the collector reads totals (before), flows, then
// totals+buckets (after). So categories can never exceed the later total, and
// on a quiet snapshot (before == after) they must be equal exactly.
struct ReconcileInput {
    Counts total_before;
    Counts total_after;
    Counts flows;         // live flows read between the two totals + finished flows
    Counts buckets_after; // buckets read with total_after
};
enum class ReconcileOutcome { Exact, Bracketed, Violated };
ReconcileOutcome reconcile(const ReconcileInput& in);

// What every poller with a reconcile check counts (the collector's and the cgroup tracker's stats).
struct PollStats {
    uint64_t polls = 0;
    uint64_t reconcile_checks = 0;
    uint64_t reconcile_exact = 0;
    uint64_t reconcile_violations = 0;
    std::string last_violation;
};

// Sorting and top-N for the list methods. The first five keys are the CountField of the same name.
enum class SortKey { Packets, L2, L3, L4, Payload, FirstSeen, LastSeen };
std::string_view to_string(SortKey k);
std::optional<SortKey> parse_sort_key(std::string_view s, bool allow_first_seen);
uint64_t sort_value(const Counts& c, SortKey k);

constexpr uint32_t kMaxTop = 100000;

// Returns indices of the top n entries by value, descending, ties broken by
// index order so results are stable.
std::vector<size_t> top_n(std::span<const uint64_t> values, size_t n);

// Formatting helpers for the API (pure, libc-only).
std::string format_mac(const uint8_t mac[6]);
std::string format_addr(uint8_t family, const uint32_t addr[4]);

nlohmann::json to_json(const Counts& c);
Counts counts_from_json(const nlohmann::json& j); // throws nlohmann::json::exception on bad input
// nlohmann's hooks, so a Counts can be a member of a type serialized with NLOHMANN_DEFINE_TYPE_*.
inline void to_json(nlohmann::json& j, const Counts& c) {
    j = to_json(c);
}
inline void from_json(const nlohmann::json& j, Counts& c) {
    c = counts_from_json(j);
}

} // namespace nettally
