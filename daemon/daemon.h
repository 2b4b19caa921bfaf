// nettallyd's process: one sd-event loop owns the poll timer, signals, the
// watchdog and the D-Bus connection. Start-up order: datapath (load + attach),
// first poll, bus name, READY=1. Shutdown: STOPPING=1, detach, exit.
#pragma once

#include "core/collector.h"
#include "core/config.h"
#include "datapath.h"

#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-event.h>


namespace nettally {

class AccountingService;

class Daemon {
public:
    explicit Daemon(Config cfg); // throws SysError, InterfaceError
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    int run();

    // Re-reads the config file and applies it whole, or throws (ConfigError,
    // InterfaceError as ConfigError, SysError) and keeps the running config.
    void reload();

private:
    void apply_interfaces(const Config& next);
    void poll_now();
    void arm_poll_timer();
    void connect_bus();
    void notify_status();
    std::map<std::string, sdbus::Variant> status() const;

    static int on_poll(sd_event_source*, uint64_t, void*);
    static int on_signal(sd_event_source*, const signalfd_siginfo*, void*);
    static int on_bus_io(sd_event_source*, int, uint32_t, void*);
    static int on_bus_time(sd_event_source*, uint64_t, void*);
    static int on_bus_prepare(sd_event_source*, void*);
    void process_bus();

    Config cfg_;
    std::unique_ptr<Datapath> datapath_;
    std::unique_ptr<Collector> collector_;
    std::vector<InterfaceInfo> attached_;
    uint64_t started_us_ = 0;

    sd_event* ev_ = nullptr;
    sd_event_source* poll_src_ = nullptr;
    sd_event_source* bus_io_ = nullptr;
    sd_event_source* bus_time_ = nullptr;
    std::unique_ptr<sdbus::IConnection> bus_;
    std::unique_ptr<AccountingService> service_;
};

} // namespace nettally
