// The Collector turns kernel map snapshots into the daemon's view: 64-bit
// totals per interface, per host, per user, per class and per host and class
// that never go backwards, the live flow table, flow eviction (idle/active timeouts) with the finished flows
// handed on, overflow episodes, and the reconciliation check at every poll. Map access is injected
// (MapReader) so the logic runs in unit tests without root.
#pragma once

#include "core/counters.h"
#include "core/nat.h"
#include "core/subscribers.h"

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace nettally {

using IfaceKey = std::pair<uint32_t, uint8_t>; // ifindex, direction
using IfaceSnapshot = std::map<IfaceKey, IfaceCounters>;

// What the flows taken out of the flow map held, for one interface and direction.
struct EvictedSums {
    Counts counts;
    uint64_t flows = 0;
};

class MapReader {
public:
    virtual ~MapReader() = default;
    virtual IfaceSnapshot read_ifaces() = 0;
    // Replaces out's contents with every live flow. out keeps its capacity from poll to poll,
    // so a large table is not allocated and faulted in again each time.
    virtual void read_flows(std::vector<FlowEntry>& out) = 0;
    virtual std::vector<HostEntry> read_hosts() = 0;
    // Removes the flows and returns their final counts (atomically per flow:
    // a packet is either in the returned value or in a new entry).
    virtual std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>& keys) = 0;
    // The evicted flows' sums kept beside the counters (the pinned nt_evicted map): they
    // outlive a crash of the daemon as the counters do. write_evicted replaces one entry;
    // a failure is logged, not thrown (the poll goes on; the next eviction writes it again).
    virtual std::map<IfaceKey, EvictedSums> read_evicted() = 0;
    virtual void write_evicted(const IfaceKey& key, const EvictedSums& sums) = 0;
    // Per-user counters of the lan interfaces (nt_user_counts), and what found no entry
    // (nt_user_overflow). Empty unless subscribers are configured.
    virtual std::vector<UserEntry> read_users() { return {}; }
    virtual UserEntry read_user_overflow() { return {}; }
    // Per-class counters (nt_cls_counts) and what found no entry (nt_cls_overflow). Empty while
    // no ruleset was ever loaded.
    virtual std::vector<ClassEntry> read_classes() { return {}; }
    virtual Counts read_class_overflow() { return {}; }
    // Per lan host and class counters (nt_host_cls) and what found no entry (nt_host_cls_overflow:
    // its sent and received). Empty while no ruleset was ever loaded.
    virtual std::vector<HostClassEntry> read_host_classes() { return {}; }
    virtual HostClassEntry read_host_class_overflow() { return {}; }
};

struct InterfaceInfo {
    std::string name;
    std::string role; // "lan" | "wan"
    uint32_t ifindex = 0;
    bool xdp = false; // ingress counted at XDP instead of TC
    bool l3 = false;  // no link-layer header: the L3 programs are attached
};

// Monotonic totals of one interface in one direction.
struct DirTotals {
    MonotonicCounts total;
    std::array<MonotonicCounts, kBucketCount> bucket{};
    MonotonicCounts host_overflow; // packets only (other figures stay 0)
};

struct InterfaceState {
    InterfaceInfo info;
    bool present = false; // accounted now (false: gone or released, totals kept)
    std::array<DirTotals, NT_DIR_MAX> dir{};
};

// A host's totals: kept by interface name, MAC and address, so they outlive
// the kernel entry (reboot, map reset) and a renamed interface index.
struct HostTotals {
    std::string interface;
    std::string mac;
    std::string ip;
    MonotonicCounts sent;
    MonotonicCounts received;
    // What crossed WAN-role interfaces for the host's connections (core/nat.h WanCredit): sent =
    // WAN egress, received = WAN ingress, after NAT.
    Counts wan_sent;
    Counts wan_received;
    uint64_t first_us = 0; // wall clock, 0 = unknown
    uint64_t last_us = 0;
};

// A user's totals on one lan interface (user "" = unbound: no bound address), kept by
// interface name and user name like the host totals.
struct UserTotals {
    std::string interface;
    std::string user;
    MonotonicCounts sent;
    MonotonicCounts received;
};

// A traffic class's totals on one interface in one direction, kept by interface name, direction
// and the class's stable id like the host totals. gone: the id is not in the active ruleset (the
// class was removed); its totals stay.
struct ClassTotals {
    std::string interface;
    uint8_t dir = 0;
    uint32_t id = 0;
    std::string name;
    bool gone = false;
    MonotonicCounts counts;
};

// A lan host's totals in one traffic class: the host as HostTotals keys it (interface name, MAC,
// address), the class by its stable id; gone as in ClassTotals. Kept, like the host totals, for as
// long as the daemon keeps state (hosts are never evicted).
struct HostClassTotals {
    std::string interface;
    std::string mac;
    std::string ip;
    uint32_t id = 0;
    std::string name;
    bool gone = false;
    MonotonicCounts sent;
    MonotonicCounts received;
};

// The class reconciliation line of one interface and direction, on the kernel's raw counters:
// while classes are on, every packet the interface total counts is counted in exactly one class,
// so total - Σ classes stays what it was when classification started there (the packets counted
// before; `offset`, captured at the first poll that sees the interface with classes on).
struct ClassReconcileInput {
    Counts offset;
    Counts total;        // the interface total, read between the two class reads
    Counts classes_low;  // Σ classes read before the total
    Counts classes_high; // Σ classes read after it
};
// Exact: total - offset == Σ classes and both class reads agree. Bracketed: classes moved
// between the reads and total - offset lies between them. Violated: anything else.
ReconcileOutcome reconcile_classes(const ClassReconcileInput& in);

struct CollectorStats : PollStats {
    uint64_t flows_evicted = 0;
    bool flow_map_full = false; // flow_overflow grew at the last poll
    uint64_t overflow_episodes = 0;
    // Polls whose user counters moved under every one of 8 re-reads around the hosts (so hosts
    // and users of that poll may differ by the packets in between).
    uint64_t user_snapshot_misses = 0;
    // The class reconciliation line (reconcile_classes), per interface and direction and poll.
    uint64_t class_reconcile_checks = 0;
    uint64_t class_reconcile_exact = 0;
    uint64_t class_reconcile_violations = 0;
    std::string last_class_violation;
    // Polls whose class counters moved under every one of 8 re-reads around the interface totals.
    uint64_t class_snapshot_misses = 0;
    // The same line per lan host and direction (sent, received): the host's classes grew by what
    // the host grew by since classification began (reconcile_classes on the host's raw figures).
    // Not checked while nt_host_cls_overflow is non-zero (a class entry was missing somewhere).
    uint64_t host_class_reconcile_checks = 0;
    uint64_t host_class_reconcile_exact = 0;
    uint64_t host_class_reconcile_violations = 0;
    std::string last_host_class_violation;
    // Polls whose host-class counters moved under every one of 8 re-reads around the hosts.
    uint64_t host_class_snapshot_misses = 0;
};

// Clock readings taken by the caller at poll time, to convert the kernel's
// stamps (kernel_stamp_ns: CLOCK_MONOTONIC) to wall-clock time and to age flows.
struct PollClock {
    uint64_t realtime_us = 0;
    uint64_t kernel_ns = 0;
};

struct FlowTimeouts {
    std::chrono::nanoseconds idle{std::chrono::seconds(15)};
    std::chrono::nanoseconds active{std::chrono::minutes(30)};
};

class Collector {
public:
    using Notify = std::function<void(const std::string&)>;
    using FlowSink = std::function<void(const FlowEntry&, const std::string& interface)>;

    explicit Collector(MapReader& reader) : reader_(reader) {}

    // Declares the interfaces being accounted. Totals are kept by name: an
    // interface that comes back continues its totals, a renamed one (same
    // ifindex, new name) takes its totals along.
    void set_interfaces(const std::vector<InterfaceInfo>& ifaces);
    void set_flow_timeouts(const FlowTimeouts& t) { timeouts_ = t; }
    void on_violation(Notify h) { on_violation_ = std::move(h); }
    void on_overflow(Notify h) { on_overflow_ = std::move(h); }
    void on_flow_finished(FlowSink s) { on_flow_finished_ = std::move(s); }

    void poll(const PollClock& clock);
    // Credits WAN deltas (core/nat.h) to the hosts with that IPv4 address (the most recently seen
    // one when the address is on more than one MAC or interface). Returns the deltas that found
    // no host.
    std::vector<WanDelta> credit_wan(const std::vector<WanDelta>& deltas);
    // The IPv4 addresses of the hosts (network byte order).
    std::set<uint32_t> host_addresses() const;
    // The ifindexes of the present WAN-role interfaces.
    std::set<uint32_t> wan_ifindexes() const;

    // An interface is gone or released: its live flows are finished now (they
    // are in the last poll's reading) and its ifindex is forgotten.
    void forget_interface(uint32_t ifindex);

    const std::map<std::string, InterfaceState>& interfaces() const { return ifaces_; }
    const std::vector<FlowEntry>& flows() const { return flows_; }
    const std::map<std::string, HostTotals>& hosts() const { return hosts_; }
    // Per-user totals by "interface|user"; names come from `ids` (set before the first poll).
    void set_user_ids(const UserIds* ids) { user_ids_ = ids; }
    const std::map<std::string, UserTotals>& users() const { return users_; }
    // Packets whose user entry could not be created (sent, received), summed over interfaces.
    const MonotonicCounts& user_overflow_sent() const { return user_overflow_[0]; }
    const MonotonicCounts& user_overflow_received() const { return user_overflow_[1]; }
    // Traffic classes (app/rules.h). set_classes: the active ruleset's classes (id -> name; the
    // "other" class included), or none; every other class with totals is marked gone.
    // classes_started: classification (re)starts now on every interface, from no classification
    // (a first load, or a start without a saved ruleset in force): the reconciliation offsets are
    // captured again at the next poll. A start that continues a ruleset keeps the restored ones.
    // version, serial: the active ruleset's version and its kernel load's serial
    // (nt_cls_info.serial), by which flow_class() tells which ruleset classified a flow.
    void set_classes(const std::map<uint32_t, std::string>& active, uint64_t version = 0,
                     uint32_t serial = 0);
    void classes_started();
    // The active ruleset's version, 0 when none.
    uint64_t rules_version() const { return class_names_.empty() ? 0 : rules_version_; }
    // A flow's class (FlowEntry::cls_id, cls_serial) named: nothing while no ruleset is active;
    // classified false while no packet of the flow was classified (only fragments, or none since
    // the ruleset came into force), and then version is the active one. version: the ruleset
    // that classified the flow's latest classified packet (the active one when that load is not
    // known, such as a flow from before a restart).
    struct FlowClass {
        bool classified = false;
        uint32_t id = 0;
        std::string name; // "" when not classified
        uint64_t version = 0;
    };
    FlowClass flow_class(const FlowEntry& f) const;
    // Per "interface|direction|id".
    const std::map<std::string, ClassTotals>& classes() const { return classes_; }
    // The active ruleset's classes (id -> name, "other" included); empty: no ruleset.
    const std::map<uint32_t, std::string>& class_names() const { return class_names_; }
    const MonotonicCounts& class_overflow() const { return class_overflow_; }
    // Per "interface|mac|ip|id" (the host's key and the class id), lan interfaces only.
    const std::map<std::string, HostClassTotals>& host_classes() const { return host_classes_; }
    // Host packets whose host-class entry could not be created (map full): sent, received.
    const MonotonicCounts& host_class_overflow_sent() const { return host_class_overflow_[0]; }
    const MonotonicCounts& host_class_overflow_received() const { return host_class_overflow_[1]; }
    const CollectorStats& stats() const { return stats_; }
    uint64_t last_poll_us() const { return last_clock_.realtime_us; }
    // Finished (evicted) flows' counts per interface and direction, kept for
    // the reconciliation invariant.
    const std::map<IfaceKey, EvictedSums>& evicted() const { return evicted_; }
    // Flows the last restore() took from the pinned sums because the state predates their
    // eviction (the daemon was killed before saving it).
    uint64_t restored_late_flows() const { return restored_late_flows_; }
    // The same by interface name, on the scale of the interface totals
    // (survives reboots): total == live flows + finished + buckets.
    Counts finished(const std::string& interface, uint8_t dir) const;

    // Wall-clock microseconds for a kernel stamp (0 stays 0).
    uint64_t to_unix_us(uint64_t stamp_ns) const;
    // Name of the interface an ifindex belongs to, "" if unknown.
    const std::string& name_of(uint32_t ifindex) const;

    // State for the state file. same_counters: the kernel maps are the same
    // ones as when the state was saved (pinned maps reused, same boot), so
    // counters continue exactly; otherwise totals restart from the saved ones.
    nlohmann::json to_json() const;
    void restore(const nlohmann::json& j, bool same_counters); // throws std::exception on bad input

private:
    void check_reconciliation(const IfaceSnapshot& before, const IfaceSnapshot& after);
    void update_hosts(const std::vector<HostEntry>& raw);
    void update_users(const std::vector<UserEntry>& raw, const UserEntry& overflow);
    // Hosts between two reads of the user and host-class counters (re-read until both agree, at
    // most 8 times): host_classes_low / _high and hc_overflow are the host-class counters before and
    // after.
    struct HostRead {
        std::vector<HostEntry> hosts;
        std::vector<UserEntry> users;
        UserEntry user_overflow;
        std::vector<HostClassEntry> host_classes_low;
        std::vector<HostClassEntry> host_classes_high;
        HostClassEntry hc_overflow;
    };
    void read_hosts_and_users(HostRead& r);
    void update_host_classes(const std::vector<HostClassEntry>& raw, const HostClassEntry& overflow);
    void check_host_class_reconciliation(const HostRead& r);
    // The interface totals (`after`) between two reads of the class counters, re-read until those
    // agree (at most 8 times): `low` and `high` are the class counters before and after.
    IfaceSnapshot read_ifaces_and_classes(std::vector<ClassEntry>& low, std::vector<ClassEntry>& high,
                                          Counts& overflow);
    void update_classes(const std::vector<ClassEntry>& raw, const Counts& overflow);
    void check_class_reconciliation(const IfaceSnapshot& after, const std::vector<ClassEntry>& low,
                                    const std::vector<ClassEntry>& high);
    void evict(const PollClock& clock);
    void track_overflow(const IfaceSnapshot& after);

    MapReader& reader_;
    Notify on_violation_;
    Notify on_overflow_;
    FlowSink on_flow_finished_;
    FlowTimeouts timeouts_;
    std::map<std::string, InterfaceState> ifaces_;
    std::map<uint32_t, std::string> names_;
    std::vector<FlowEntry> flows_;
    std::map<std::string, HostTotals> hosts_;
    const UserIds* user_ids_ = nullptr;
    std::map<std::string, UserTotals> users_;
    std::array<MonotonicCounts, 2> user_overflow_{};
    std::map<IfaceKey, EvictedSums> evicted_;
    // Interfaces whose last check fell outside its bracket: a violation once the next one does too.
    std::set<IfaceKey> reconcile_suspects_;
    std::map<std::string, ClassTotals> classes_;
    std::map<uint32_t, std::string> class_names_;      // the active ruleset's; empty: none
    std::map<uint32_t, std::string> seen_class_names_; // every ruleset's of this run, latest name
    uint64_t rules_version_ = 0;
    std::vector<std::pair<uint32_t, uint64_t>> serial_versions_; // latest loads: serial, version
    MonotonicCounts class_overflow_;
    std::map<IfaceKey, Counts> class_offsets_; // see ClassReconcileInput (raw kernel figures)
    std::map<std::string, HostClassTotals> host_classes_;
    std::array<MonotonicCounts, 2> host_class_overflow_{};
    // Per host (the raw nt_host_key bytes), sent and received: what the host counted before
    // classification began (raw kernel figures), as class_offsets_.
    std::map<std::string, std::array<Counts, 2>> host_class_offsets_;
    uint64_t restored_late_flows_ = 0;
    std::map<std::string, std::array<Counts, NT_DIR_MAX>> finished_;
    uint64_t overflow_seen_ = 0;
    CollectorStats stats_;
    PollClock last_clock_;
};

} // namespace nettally
