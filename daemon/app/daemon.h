// nettallyd's process: one sd-event loop owns the poll and persist timers,
// signals, the watchdog, link events (hotplug) and the D-Bus connection.
// Start-up: datapath (load, reusing pinned maps), restore the state file,
// attach, first poll, bus name, READY=1. Shutdown (SIGTERM): final poll, save
// state, exit with programs still attached and counting into the pinned maps;
// the next start picks them up. `--detach` (uninstall) removes everything.
#pragma once

#include "core/collector.h"
#include "core/config.h"
#include "core/history_feed.h"
#include "core/thresholds.h"
#include "kernel/datapath.h"
#include "io/state.h"

#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-event.h>


namespace nettally {

class AccountingService;
class ThresholdsService;
class KernelEnforcer;
class CgroupAccounting;
class UploadService;
class Recorder;
class RecordsService;
class Uploader;

class Daemon {
public:
    explicit Daemon(Config cfg); // throws SysError, InterfaceError, PinMismatch
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    int run();

    // Uninstall: final poll, save state, detach every nettally program from
    // every link and remove the pins. The next start resumes from the state.
    void detach_everything();

    // Re-reads the config file and applies it whole, or throws (ConfigError,
    // InterfaceError as ConfigError, SysError) and keeps the running config.
    void reload();

private:
    void apply_interfaces(const Config& next, bool strict);
    void restore_state();
    void save_state(bool detached = false);
    void poll_now();
    void arm_poll_timer();
    void arm_persist_timer();
    void watch_links();
    static int on_persist(sd_event_source*, uint64_t, void*);
    static int on_link_event(sd_event_source*, int, uint32_t, void*);
    static int on_link_settle(sd_event_source*, uint64_t, void*);
    void connect_bus();
    void notify_status();
    // Thresholds: config + saved runtime ones at start, saved on every change.
    void setup_thresholds();
    void save_thresholds();
    void flush_threshold_events();
    LedgerUsage usage() const;
    std::map<std::string, sdbus::Variant> status() const;

public:
    const History& history() const { return history_->history(); }

private:

    static int on_poll(sd_event_source*, uint64_t, void*);
    static int on_signal(sd_event_source*, const signalfd_siginfo*, void*);
    static int on_bus_io(sd_event_source*, int, uint32_t, void*);
    static int on_bus_time(sd_event_source*, uint64_t, void*);
    static int on_bus_prepare(sd_event_source*, void*);
    void process_bus();

    Config cfg_;
    std::unique_ptr<Datapath> datapath_;
    std::unique_ptr<Collector> collector_;
    std::unique_ptr<HistoryFeed> history_;
    std::unique_ptr<CgroupAccounting> cgroups_; // null unless cgroups.enabled
    std::vector<InterfaceInfo> attached_;
    uint64_t started_us_ = 0;
    std::string boot_id_;
    std::unique_ptr<StateFile> state_;
    uint64_t state_saved_us_ = 0;
    std::string state_restored_from_;
    int link_fd_ = -1;

    sd_event* ev_ = nullptr;
    sd_event_source* poll_src_ = nullptr;
    sd_event_source* persist_src_ = nullptr;
    sd_event_source* link_io_ = nullptr;
    sd_event_source* link_settle_ = nullptr;
    sd_event_source* bus_io_ = nullptr;
    sd_event_source* bus_time_ = nullptr;
    std::unique_ptr<sdbus::IConnection> bus_;
    std::unique_ptr<AccountingService> service_;
    std::unique_ptr<ActionEnforcer> enforcer_;
    KernelEnforcer* kernel_enforcer_ = nullptr; // enforcer_, for its GetStatus keys
    std::unique_ptr<ThresholdEngine> thresholds_;
    std::unique_ptr<StateFile> thresholds_file_;
    std::unique_ptr<ThresholdsService> thresholds_service_;
    std::vector<ThresholdEvent> pending_events_; // before the bus is up
    int64_t last_poll_us_ = 0;
    bool bus_tried_ = false;

    // Upload of spooled files (upload.*); created in run(), on the loop.
    void start_uploader();
    std::filesystem::path spool_dir() const;
    std::unique_ptr<Uploader> uploader_;
    std::unique_ptr<UploadService> upload_service_;

    // Accounting records (records.*): files, rotation, spool; created with the collector, so the
    // first poll is recorded.
    std::unique_ptr<Recorder> recorder_;
    std::unique_ptr<RecordsService> records_service_;
};

} // namespace nettally
