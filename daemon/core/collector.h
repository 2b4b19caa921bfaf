// The Collector turns kernel map snapshots into the daemon's view: 64-bit
// totals per interface that never go backwards, the live flow and host tables,
// and the reconciliation check at every poll. Map access is injected (MapReader)
// so the logic runs in unit tests without root or BPF.
#pragma once

#include "core/counters.h"

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace nettally {

using IfaceKey = std::pair<uint32_t, uint8_t>; // ifindex, direction
using IfaceSnapshot = std::map<IfaceKey, IfaceCounters>;

class MapReader {
public:
    virtual ~MapReader() = default;
    virtual IfaceSnapshot read_ifaces() = 0;
    virtual std::vector<FlowEntry> read_flows() = 0;
    virtual std::vector<HostEntry> read_hosts() = 0;
};

struct InterfaceInfo {
    std::string name;
    std::string role; // "lan" | "wan"
    uint32_t ifindex = 0;
    bool xdp = false; // ingress counted at XDP instead of TC
};

// Monotonic totals of one interface in one direction.
struct DirTotals {
    MonotonicCounts total;
    std::array<MonotonicCounts, kBucketCount> bucket{};
    MonotonicCounter host_overflow;
};

struct InterfaceState {
    InterfaceInfo info;
    std::array<DirTotals, NT_DIR_MAX> dir{};
};

struct CollectorStats {
    uint64_t polls = 0;
    uint64_t reconcile_checks = 0;
    uint64_t reconcile_exact = 0;
    uint64_t reconcile_violations = 0;
    std::string last_violation;
};

// Clock readings taken by the caller at poll time, to convert the kernel's
// CLOCK_BOOTTIME stamps to wall-clock time.
struct PollClock {
    uint64_t realtime_us = 0;
    uint64_t boottime_ns = 0;
};

class Collector {
public:
    using ViolationHandler = std::function<void(const std::string&)>;

    explicit Collector(MapReader& reader) : reader_(reader) {}

    // Declares the interfaces being accounted. Totals are kept by name, so an
    // interface that comes back (same or new ifindex) continues its totals.
    void set_interfaces(const std::vector<InterfaceInfo>& ifaces);
    void on_violation(ViolationHandler h) { on_violation_ = std::move(h); }

    void poll(const PollClock& clock);

    const std::map<std::string, InterfaceState>& interfaces() const { return ifaces_; }
    const std::vector<FlowEntry>& flows() const { return flows_; }
    const std::vector<HostEntry>& hosts() const { return hosts_; }
    const CollectorStats& stats() const { return stats_; }
    uint64_t last_poll_us() const { return last_clock_.realtime_us; }

    // Wall-clock microseconds for a kernel CLOCK_BOOTTIME stamp (0 stays 0).
    uint64_t to_unix_us(uint64_t boot_ns) const;
    // Name of the interface an ifindex belongs to, "" if unknown.
    const std::string& name_of(uint32_t ifindex) const;

private:
    void check_reconciliation(const IfaceSnapshot& before, const IfaceSnapshot& after);

    MapReader& reader_;
    ViolationHandler on_violation_;
    std::map<std::string, InterfaceState> ifaces_;
    std::map<uint32_t, std::string> names_;
    std::vector<FlowEntry> flows_;
    std::vector<HostEntry> hosts_;
    CollectorStats stats_;
    PollClock last_clock_;
};

} // namespace nettally
