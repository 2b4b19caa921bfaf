// Thresholds (quotas), burst and rate alerts: the pure engine behind the
// org.nettally.Accounting1.Thresholds D-Bus interface. No syscalls, no clock:
// the daemon hands it the wall-clock time and a UsageSource (the collector's
// totals) at every poll, and emits the events it returns as D-Bus signals.
// Definitions (subject, direction, layer, period, step, limit, action) are
// core/thresholds_def.h; alert records of the events core/thresholds_alerts.h.
//
// Rolling windows are kept in up to kRollingSlots slots. Usage counts from the
// poll before the threshold was set: a subject's earlier traffic (a host's
// lifetime total) never counts.
// Events, in this order within one observe():
//   StepCrossed   each time floor(usage / step) grows, one event per step (at most
//                 kMaxStepEvents per poll; the last carries how many were skipped);
//   LimitReached  once per period when usage reaches the limit;
//   Burst         when two successive step crossings come closer together than
//                 min_interval_ms; crossing times are interpolated linearly between
//                 polls, so several steps crossed in one poll get their measured
//                 spacing, not zero;
//   RateExceeded  when bytes/s over the last rate_window_s seconds goes above
//                 rate_bps; once per excursion (re-armed when the rate falls back to
//                 or below rate_bps);
//   ActionApplied / ActionLifted / ActionFailed  around the ActionEnforcer.
// Actions (throttle, block; notify does nothing in the kernel) are applied when
// action_on says (limit: on LimitReached; burst: on Burst or RateExceeded; any:
// either) and lifted when the period rolls over (rolling: when usage falls
// below the limit again), on ResetPeriod, on removal, and on modification.
#pragma once

#include "core/actions.h"
#include "core/collector.h"
#include "core/flow_filter.h"
#include "core/history.h"
#include "core/thresholds_def.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nettally {

class CgroupLedger;

// Cumulative totals per subject, from the daemon's ledgers.
class UsageSource {
public:
    virtual ~UsageSource() = default;
    // Monotonic totals of the subject in that direction (nullopt: not seen yet, e.g. a
    // host that has not sent anything; counts as unchanged). Not used for FlowAggregate.
    virtual std::optional<Counts> total(const Subject& s, UsageDirection d) const = 0;
    // Every live flow with its interface name.
    virtual void for_each_flow(const std::function<void(const FlowEntry&, const std::string&)>& fn) const = 0;
    // "" when the subject can be watched on this machine, else why not ("unknown interface ...").
    virtual std::string check(const Subject& s, UsageLayer layer) const = 0;
};

// A class subject's value split: "NAME" -> {NAME, ""}, "NAME@IFACE" -> {NAME, IFACE}.
std::pair<std::string, std::string> class_subject(const std::string& value);

// The daemon's UsageSource: the Collector (interfaces, hosts by MAC or IP, users, classes, flows) and the
// cgroup ledger (nullptr when cgroup accounting is off). A cgroup subject may also be given as
// a unit name ("foo.service"); resolve_subject turns it into its path. `users`: subscribers are
// configured, so user subjects can be watched (a user counts from 0 until first bound).
class LedgerUsage final : public UsageSource {
public:
    LedgerUsage(const Collector& c, const CgroupLedger* cgroups, bool users = false)
        : c_(c), cg_(cgroups), users_(users) {}
    std::optional<Counts> total(const Subject& s, UsageDirection d) const override;
    void for_each_flow(const std::function<void(const FlowEntry&, const std::string&)>& fn) const override;
    std::string check(const Subject& s, UsageLayer layer) const override;

private:
    bool is_lan(const std::string& iface) const;

    const Collector& c_;
    const CgroupLedger* cg_;
    bool users_;
};

struct ThresholdEvent {
    enum class Kind {
        StepCrossed,
        LimitReached,
        Burst,
        RateExceeded,
        ActionApplied,
        ActionLifted,
        ActionFailed
    };
    Kind kind = Kind::StepCrossed;
    std::string name;
    std::string subject; // subject_text
    uint64_t usage = 0;  // bytes in the period at the poll that saw it
    uint64_t step_index = 0;
    uint64_t value = 0;  // LimitReached: limit; Burst: measured interval (ms); RateExceeded: rate (B/s)
    uint64_t value2 = 0; // Burst: min_interval_ms; RateExceeded: rate_bps; StepCrossed: skipped steps
    int64_t time_us = 0; // wall clock: the poll (Burst: the estimated crossing time)
    std::string action;  // Action*: notify|throttle|block
    std::string reason;  // Action*: limit|burst|rate|rollover|reset|removed|modified|restart, or the error
};
std::string_view to_string(ThresholdEvent::Kind k);

// A threshold's running state: what has been counted and signalled in the current period.
struct ThresholdState {
    int64_t period_start_us = 0;
    int64_t period_end_us = 0;        // 0: no end (since, rolling)
    std::optional<Counts> last_total; // source total at the last observe (nullopt: not seen yet)
    uint64_t usage = 0;               // bytes in the period
    uint64_t step_index = 0;          // highest step signalled in the period
    bool limit_reached = false;
    int64_t last_cross_us = 0; // estimated time of the last step crossing, 0 = none
    bool rate_alerted = false;
    bool action_active = false;
    Counts flow_finished; // FlowAggregate: finished flows matching since set
    int64_t last_observe_us = 0;
    // (time, cumulative bytes counted since set) for rolling windows and the rate alert
    std::deque<std::pair<int64_t, uint64_t>> samples;
    uint64_t counted = 0; // cumulative bytes counted since set (never resets)
};

struct Threshold {
    ThresholdDef def;
    bool from_config = false;
    int64_t set_at_us = 0;
    ThresholdState st;
    uint64_t rate_now() const; // bytes/s over the rate window, at the last observe
};

class ThresholdEngine {
public:
    static constexpr size_t kMaxStepEvents = 100;
    static constexpr size_t kRollingSlots = 600;
    static constexpr size_t kMaxThresholds = 1024;

    // Validates spec like History does (throws std::invalid_argument).
    ThresholdEngine(PeriodSpec spec, ActionEnforcer& enforcer);

    // Runtime changes. Each validates completely before changing anything and throws
    // ThresholdError (unknown subject, duplicate name, action the enforcer cannot do...).
    void add(const ThresholdDef& def, const UsageSource& src, int64_t now_us);
    void modify(const std::string& name, const FieldMap& changes, const UsageSource& src, int64_t now_us);
    void remove(const std::string& name);
    void reset(const std::string& name, const UsageSource& src, int64_t now_us);

    // Replaces the thresholds that come from the config file (reload), all or nothing:
    // unchanged ones keep their state, changed ones start afresh. Throws ThresholdError
    // (a name clash with a runtime threshold, an unknown subject...).
    void set_config(const std::vector<ThresholdDef>& defs, const UsageSource& src, int64_t now_us);
    // Checks what set_config would refuse, without changing anything.
    void check_config(const std::vector<ThresholdDef>& defs, const UsageSource& src) const;
    // New period rules (reload); day/month thresholds re-locate their period at the next observe.
    void set_period_spec(PeriodSpec spec);

    // One poll: usage, rollovers, events.
    void observe(const UsageSource& src, int64_t now_us);
    // A flow the collector finished: flow aggregates keep its counts.
    void on_flow_finished(const FlowEntry& f, const std::string& iface);

    // Events since the last call, in order.
    std::vector<ThresholdEvent> take_events();

    const std::map<std::string, Threshold>& thresholds() const { return t_; }
    const Threshold* find(const std::string& name) const;

    // Runtime definitions and every threshold's state, for <state_dir>/thresholds.json.
    nlohmann::json to_json() const;
    // Restores runtime thresholds and the state of config thresholds whose definition is
    // unchanged; re-applies active actions. Call after set_config. Throws std::exception on
    // malformed input; then nothing changed. Entries that no longer validate are skipped
    // and named in *problems.
    void restore(const nlohmann::json& j, int64_t now_us, std::vector<std::string>* problems);

private:
    void check_def(const ThresholdDef& def, const UsageSource& src) const;
    void start_period(Threshold& t, const UsageSource& src, int64_t now_us);
    std::optional<Counts> source_total(const Threshold& t, const UsageSource& src) const;
    void observe_one(Threshold& t, const UsageSource& src, int64_t now_us);
    // The steps of observe_one, in order.
    uint64_t take_delta(Threshold& t, const UsageSource& src) const;
    void roll_over(Threshold& t, int64_t when);
    static void count(Threshold& t, uint64_t delta, int64_t when);
    void signal_steps(Threshold& t, uint64_t prev_usage, int64_t t_prev, int64_t when);
    void signal_limit_and_rate(Threshold& t, int64_t when);
    void apply_action(Threshold& t, const char* reason, int64_t now_us);
    void lift_action(Threshold& t, const char* reason, int64_t now_us);
    void emit(ThresholdEvent::Kind k, const Threshold& t, int64_t now_us, uint64_t index = 0,
              uint64_t value = 0, uint64_t value2 = 0);

    History calendar_; // period bounds only; never fed
    ActionEnforcer& enforcer_;
    std::map<std::string, Threshold> t_;
    std::vector<ThresholdEvent> events_;
};

} // namespace nettally
