// nettallyd's process: one sd-event loop owns the poll and persist timers,
// signals, the watchdog, link events (hotplug) and the D-Bus connection.
// Start-up: datapath (load, reusing pinned maps), restore the state file,
// attach, first poll, bus name, READY=1. Shutdown (SIGTERM): final poll, save
// state, exit with programs still attached and counting into the pinned maps;
// the next start picks them up. `--detach` (uninstall) removes everything.
//
// The wiring, in two places only: the constructor builds what counts (it is
// all `--detach` needs), start() adds what lives on the loop. Members are
// declared in build order, so they are torn down in reverse by the (default)
// destructor: the bus first, the datapath and the loop last.
#pragma once

#include "app/accounting.h"
#include "app/nat.h"
#include "app/thresholds.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/status.h"
#include "os/event.h"

#include <array>
#include <memory>

namespace nettally {

class BusServices;
class FlowExport;
class LinkWatch;
class MetricsExposer;
class Recorder;
class Rules;
class Uploader;

class Daemon {
public:
    explicit Daemon(Config cfg); // throws SysError, InterfaceError, PinMismatch, ConfigError
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

    const History& history() const { return accounting_->history(); }

private:
    void start(); // the loop-bound parts, in order
    void start_uploader();
    void connect_bus();
    void poll_now();
    void interfaces_changed();
    void save_state(bool detached = false);
    void stop(int signo);
    void on_signal(int signo);
    void notify_status();
    void arm_poll_timer();
    void arm_persist_timer();
    // Prometheus (metrics.*): the families of one scrape, the exposer, the textfile.
    MetricFamilies collect_metrics() const;
    void start_metrics();
    void arm_textfile_timer();
    void write_textfile();
    Status status() const;
    std::filesystem::path spool_dir() const;

    Config cfg_;
    uint64_t started_us_ = 0;
    int64_t last_poll_us_ = 0;
    EventLoop loop_; // created by run(); outlives every source below
    std::unique_ptr<Accounting> accounting_;
    std::unique_ptr<Thresholds> thresholds_;
    // Traffic classes (rules.*): the ruleset goes into the kernel before the programs go on the
    // interfaces, so a restart classifies every packet.
    std::unique_ptr<Rules> rules_;
    // Accounting records (records.*): files, rotation, spool; created with the collector, so the
    // first poll is recorded.
    std::unique_ptr<Recorder> recorder_;
    // NAT (conntrack) for the export's post-NAT fields and the hosts' WAN figures; before export_,
    // which reads its table.
    std::unique_ptr<NatWatch> nat_;
    // IPFIX flow export (export.*): sockets opened in start(), on the loop.
    std::unique_ptr<FlowExport> export_;
    // Upload of spooled files (upload.*); created in start(), on the loop.
    std::unique_ptr<Uploader> uploader_;
    Timer poll_timer_, persist_timer_;
    std::array<EventSource, 3> signals_;
    std::unique_ptr<LinkWatch> links_;
    Timer textfile_timer_;
    std::unique_ptr<MetricsExposer> metrics_; // null unless metrics.listen; gone before what it reads
    std::unique_ptr<BusServices> bus_;
};

} // namespace nettally
