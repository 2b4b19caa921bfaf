// The accounting path of nettallyd: the datapath (BPF programs and pinned
// maps), the collector that reads them, the history fed from it, cgroup
// accounting (when enabled) and the state file that carries their totals
// across restarts. Built in that order by the constructor, which also
// restores the state file; attach() then puts the programs on the planned
// interfaces. Destroyed in reverse order (the datapath last).
#pragma once

#include "core/collector.h"
#include "core/config.h"
#include "core/history_feed.h"
#include "core/interfaces.h"
#include "core/status.h"
#include "core/thresholds.h"
#include "io/state.h"
#include "kernel/datapath.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nettally {

class CgroupAccounting;
class Subscribers;

PeriodSpec period_spec(const Config& c);
// flows.idle_timeout and flows.active_timeout as the collector takes them.
FlowTimeouts flow_timeouts(const Config& c);
// The links of this network namespace (os/system.h), for plan_interfaces. Throws SysError.
std::vector<LinkInfo> current_links();

class Accounting {
public:
    using FlowListener = std::function<void(const FlowEntry&, const std::string& iface)>;

    // Throws SysError, PinMismatch, ConfigError (bad period settings).
    Accounting(const Config& cfg, const InterfacePlan& plan);
    ~Accounting();
    Accounting(const Accounting&) = delete;
    Accounting& operator=(const Accounting&) = delete;

    // Removes programs left by an earlier run elsewhere, attaches to the planned interfaces.
    void attach(const InterfacePlan& plan);
    // Re-plans for `next` (reload, hotplug): attaches what is new or changed, releases what is
    // gone (calling `poll` first, once, so their counts are in). All or nothing for attaches.
    void apply_interfaces(const Config& next, bool strict, const std::function<void()>& poll);
    // Uninstall: detach from everything, remove stale programs (the pins go after the save).
    void detach_all();
    void remove_pins();

    // After the history: thresholds and records see each finished flow too.
    void add_flow_listener(FlowListener l) { flow_listeners_.push_back(std::move(l)); }
    void poll(uint64_t now_us);

    // Reload: what the new config changes here, checked before anything applies.
    std::optional<History> check_reload(const Config& cur, const Config& next) const; // throws ConfigError
    void apply_reload(const Config& next, std::optional<History> next_history);

    void save_state(bool detached);
    void add_status(Status& m) const;

    Collector& collector() { return *collector_; }
    const Collector& collector() const { return *collector_; }
    Datapath& datapath() { return *datapath_; }
    Subscribers& subscribers() { return *subscribers_; }
    const Subscribers& subscribers() const { return *subscribers_; }
    const History& history() const { return history_->history(); }
    const CgroupLedger* cgroup_ledger() const;
    LedgerUsage usage() const;
    size_t interfaces() const { return attached_.size(); }
    const std::vector<InterfaceInfo>& attached() const { return attached_; }
    // Empty when the totals did not come from a state file (a first start).
    const std::string& restored_from() const { return restored_from_; }
    const std::filesystem::path& state_path() const { return state_.path(); }

private:
    void restore_state(const Config& cfg);
    void restore_json(const nlohmann::json& j, const Config& cfg, const std::string& from);

    std::string boot_id_;
    StateFile state_;
    std::unique_ptr<Datapath> datapath_;
    std::unique_ptr<Collector> collector_;
    std::unique_ptr<HistoryFeed> history_;
    std::unique_ptr<Subscribers> subscribers_;
    std::unique_ptr<CgroupAccounting> cgroups_; // null unless cgroups.enabled
    std::vector<FlowListener> flow_listeners_;
    std::vector<InterfaceInfo> attached_;
    uint64_t state_saved_us_ = 0;
    std::string restored_from_;
};

} // namespace nettally
