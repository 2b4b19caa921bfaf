// Thresholds in nettallyd: the kernel enforcer (throttle and block through the
// datapath's policy map), the engine (core/thresholds.h) and thresholds.json
// (runtime thresholds and their state). The constructor applies the config's
// thresholds and restores the saved ones. Events go to the log, to the
// Recorder (alert records) and, once the bus is up, out as signals; events
// raised before the bus is tried wait for it.
#pragma once

#include "core/config.h"
#include "core/enforce.h"
#include "core/status.h"
#include "core/thresholds.h"
#include "io/state.h"

#include <functional>
#include <memory>
#include <vector>

namespace nettally {

class Datapath;
class KernelEnforcer;
class Recorder;

class Thresholds {
public:
    using Emit = std::function<void(const std::vector<ThresholdEvent>&)>;

    // Throws ConfigError for thresholds the config cannot have. user_id: the kernel id of a
    // subscriber (actions on user subjects).
    Thresholds(Datapath& dp, const Config& cfg, const LedgerUsage& usage, int64_t now_us, UserIdOf user_id);
    ~Thresholds();
    Thresholds(const Thresholds&) = delete;
    Thresholds& operator=(const Thresholds&) = delete;

    ThresholdEngine& engine() { return *engine_; }
    const ThresholdEngine& engine() const { return *engine_; }
    void set_recorder(Recorder* r) { recorder_ = r; }
    // The bus was tried: with `emit`, signals go out (the waiting events first); without, they are
    // dropped (the log and the records keep them).
    void bus_tried(Emit emit);

    void observe(const LedgerUsage& usage, int64_t now_us);
    void on_flow_finished(const FlowEntry& f, const std::string& iface) {
        engine_->on_flow_finished(f, iface);
    }
    // Sends the engine's new events to the log, the records and the bus.
    void flush_events();
    void save();

    void check_reload(const Config& next, const LedgerUsage& usage) const; // throws ConfigError
    void apply_reload(const Config& next, const LedgerUsage& usage, int64_t now_us);

    void add_status(Status& m) const;

private:
    void restore(int64_t now_us);

    std::unique_ptr<KernelEnforcer> enforcer_; // holds the datapath's policy map
    std::unique_ptr<ThresholdEngine> engine_;
    StateFile file_;
    Recorder* recorder_ = nullptr;
    Emit emit_;
    bool bus_tried_ = false;
    std::vector<ThresholdEvent> pending_; // before the bus is tried
};

} // namespace nettally
