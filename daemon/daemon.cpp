// nettallyd's event loop, start-up, reload and shutdown. See daemon.h.
#include "daemon.h"

#include "core/interfaces.h"
#include "dbus_service.h"
#include "logging.h"
#include "system.h"

#include <algorithm>
#include <csignal>
#include <ctime>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#ifndef NETTALLY_VERSION
#define NETTALLY_VERSION "dev"
#endif

namespace nettally {
namespace {

uint64_t clock_us(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

DatapathOptions datapath_options(const Config& c) {
    return DatapathOptions{c.max_flows, c.max_hosts, c.count_hosts};
}

} // namespace

Daemon::Daemon(Config cfg) : cfg_(std::move(cfg)) {
    started_us_ = clock_us(CLOCK_REALTIME);
    InterfacePlan plan = plan_interfaces(cfg_, list_links());
    for (const auto& w : plan.warnings)
        spdlog::warn("config: {}", w);

    datapath_ = std::make_unique<Datapath>(datapath_options(cfg_));
    collector_ = std::make_unique<Collector>(*datapath_);
    collector_->on_violation([](const std::string& m) { spdlog::error("reconcile: invariant violated: {}", m); });
    for (const auto& i : plan.interfaces) {
        datapath_->attach(i.ifindex, i.role == "lan", i.xdp);
        spdlog::info("datapath: accounting {} (ifindex {}, role {}, {})", i.name, i.ifindex, i.role,
                     i.xdp ? "XDP ingress + TC egress" : "TC ingress+egress");
    }
    attached_ = plan.interfaces;
    collector_->set_interfaces(attached_);
    poll_now();
}

Daemon::~Daemon() {
    service_.reset();
    bus_.reset();
    sd_event_source_unref(bus_io_);
    sd_event_source_unref(bus_time_);
    sd_event_source_unref(poll_src_);
    sd_event_unref(ev_);
}

void Daemon::poll_now() {
    collector_->poll(PollClock{clock_us(CLOCK_REALTIME), clock_us(CLOCK_BOOTTIME) * 1000u});
}

void Daemon::arm_poll_timer() {
    const uint64_t usec = static_cast<uint64_t>(cfg_.poll_interval.count()) * 1000u;
    if (!poll_src_) {
        int r = sd_event_add_time_relative(ev_, &poll_src_, CLOCK_MONOTONIC, usec, 0, on_poll, this);
        if (r < 0)
            throw SysError(-r, "adding poll timer");
        return;
    }
    sd_event_source_set_time_relative(poll_src_, usec);
    sd_event_source_set_enabled(poll_src_, SD_EVENT_ONESHOT);
}

int Daemon::on_poll(sd_event_source*, uint64_t, void* self) {
    auto* d = static_cast<Daemon*>(self);
    try {
        d->poll_now();
    } catch (const std::exception& e) {
        spdlog::error("collector: poll failed: {}", e.what());
    }
    d->notify_status();
    d->arm_poll_timer();
    return 0;
}

void Daemon::notify_status() {
    const auto& s = collector_->stats();
    sd_notifyf(0, "STATUS=Accounting %zu interface(s), %zu flows, %zu hosts; %llu polls",
               collector_->interfaces().size(), collector_->flows().size(), collector_->hosts().size(),
               static_cast<unsigned long long>(s.polls));
}

int Daemon::on_signal(sd_event_source*, const signalfd_siginfo* si, void* self) {
    auto* d = static_cast<Daemon*>(self);
    if (si->ssi_signo == SIGHUP) {
        try {
            d->reload();
        } catch (const std::exception& e) {
            spdlog::error("config: reload refused, keeping the running config: {}", e.what());
            sd_notify(0, "READY=1");
        }
        return 0;
    }
    spdlog::info("daemon: signal {} received, stopping", si->ssi_signo);
    sd_notify(0, "STOPPING=1");
    sd_event_exit(d->ev_, 0);
    return 0;
}

void Daemon::apply_interfaces(const Config& next) {
    InterfacePlan plan;
    try {
        plan = plan_interfaces(next, list_links());
    } catch (const InterfaceError& e) {
        throw ConfigError(next.path, 0, 0, "interfaces", e.what());
    }
    for (const auto& w : plan.warnings)
        spdlog::warn("config: {}", w);

    auto same = [](const InterfaceInfo& a, const InterfaceInfo& b) {
        return a.ifindex == b.ifindex && a.role == b.role && a.name == b.name && a.xdp == b.xdp;
    };
    // Attach what is new or changed role; on failure undo this reload's attaches.
    std::vector<InterfaceInfo> done;
    try {
        for (const auto& i : plan.interfaces) {
            bool kept = std::any_of(attached_.begin(), attached_.end(), [&](const auto& a) { return same(a, i); });
            if (kept)
                continue;
            datapath_->attach(i.ifindex, i.role == "lan", i.xdp); // replaces ours if role/mode changed
            done.push_back(i);
        }
    } catch (...) {
        for (const auto& i : done) {
            auto old = std::find_if(attached_.begin(), attached_.end(),
                                    [&](const auto& a) { return a.ifindex == i.ifindex; });
            if (old != attached_.end())
                datapath_->attach(old->ifindex, old->role == "lan", old->xdp);
            else
                datapath_->detach(i.ifindex);
        }
        throw;
    }
    for (const auto& a : attached_) {
        bool kept = std::any_of(plan.interfaces.begin(), plan.interfaces.end(),
                                [&](const auto& i) { return i.ifindex == a.ifindex; });
        if (!kept) {
            datapath_->detach(a.ifindex);
            spdlog::info("datapath: released {} (ifindex {})", a.name, a.ifindex);
        }
    }
    for (const auto& i : done)
        spdlog::info("datapath: accounting {} (ifindex {}, role {}, {})", i.name, i.ifindex, i.role,
                     i.xdp ? "XDP ingress + TC egress" : "TC");
    attached_ = plan.interfaces;
    collector_->set_interfaces(attached_);
}

void Daemon::reload() {
    sd_notify(0, "RELOADING=1");
    Config next = load_config(cfg_.path);
    if (next.max_flows != cfg_.max_flows || next.max_hosts != cfg_.max_hosts ||
        next.count_hosts != cfg_.count_hosts)
        throw ConfigError(next.path, 0, 0, "flows/hosts",
                          "map sizes and hosts.enabled take effect only at start: restart nettallyd to change them");
    if (!set_log_level(next.log_level))
        throw ConfigError(next.path, 0, 0, "log_level", "unknown level '" + next.log_level + "'");
    apply_interfaces(next);
    const bool interval_changed = next.poll_interval != cfg_.poll_interval;
    cfg_ = std::move(next);
    if (interval_changed && poll_src_)
        arm_poll_timer();
    spdlog::info("config: reloaded {} ({} interface(s), poll every {} ms)", cfg_.path, attached_.size(),
                 cfg_.poll_interval.count());
    sd_notify(0, "READY=1");
}

std::map<std::string, sdbus::Variant> Daemon::status() const {
    const auto& s = collector_->stats();
    uint64_t flow_overflow = 0, host_overflow = 0;
    for (const auto& [name, st] : collector_->interfaces())
        for (const auto& d : st.dir) {
            flow_overflow += d.bucket[NT_BUCKET_FLOW_OVERFLOW].total().packets;
            host_overflow += d.host_overflow.total();
        }
    std::map<std::string, sdbus::Variant> m;
    m["version"] = sdbus::Variant(std::string(NETTALLY_VERSION));
    m["pid"] = sdbus::Variant(static_cast<uint32_t>(getpid()));
    m["started_at"] = sdbus::Variant(started_us_);
    m["config_path"] = sdbus::Variant(cfg_.path);
    m["poll_interval_ms"] = sdbus::Variant(static_cast<uint64_t>(cfg_.poll_interval.count()));
    m["polls"] = sdbus::Variant(s.polls);
    m["last_poll_at"] = sdbus::Variant(collector_->last_poll_us());
    m["interfaces"] = sdbus::Variant(static_cast<uint32_t>(attached_.size()));
    m["flows"] = sdbus::Variant(static_cast<uint32_t>(collector_->flows().size()));
    m["flow_capacity"] = sdbus::Variant(datapath_->flow_capacity());
    m["hosts"] = sdbus::Variant(static_cast<uint32_t>(collector_->hosts().size()));
    m["host_capacity"] = sdbus::Variant(datapath_->host_capacity());
    m["flow_overflow_packets"] = sdbus::Variant(flow_overflow);
    m["host_overflow_packets"] = sdbus::Variant(host_overflow);
    m["reconcile_checks"] = sdbus::Variant(s.reconcile_checks);
    m["reconcile_exact"] = sdbus::Variant(s.reconcile_exact);
    m["reconcile_violations"] = sdbus::Variant(s.reconcile_violations);
    return m;
}

void Daemon::connect_bus() {
    try {
        bus_ = sdbus::createSystemBusConnection();
        service_ = std::make_unique<AccountingService>(
            *bus_, *collector_, ServiceHooks{[this] { return status(); }, [this] { reload(); }});
        bus_->requestName(kBusName);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: system bus not available ({}: {}); counting continues without the API",
                     e.getName(), e.getMessage());
        service_.reset();
        bus_.reset();
        return;
    }
    const auto pd = bus_->getEventLoopPollData();
    int r = sd_event_add_io(ev_, &bus_io_, pd.fd, static_cast<uint32_t>(pd.events), on_bus_io, this);
    if (r >= 0)
        r = sd_event_source_set_prepare(bus_io_, on_bus_prepare);
    if (r >= 0)
        r = sd_event_add_time(ev_, &bus_time_, CLOCK_MONOTONIC, 0, 0, on_bus_time, this);
    if (r < 0)
        throw SysError(-r, "adding the D-Bus connection to the event loop");
    spdlog::info("dbus: serving {} at {}", kBusName, kObjectPath);
}

void Daemon::process_bus() {
    try {
        while (bus_->processPendingRequest()) {
        }
    } catch (const sdbus::Error& e) {
        spdlog::error("dbus: {}: {}", e.getName(), e.getMessage());
    }
}

int Daemon::on_bus_io(sd_event_source*, int, uint32_t, void* self) {
    static_cast<Daemon*>(self)->process_bus();
    return 0;
}

int Daemon::on_bus_time(sd_event_source*, uint64_t, void* self) {
    static_cast<Daemon*>(self)->process_bus();
    return 0;
}

// Before the loop sleeps: ask sd-bus what it waits for next.
int Daemon::on_bus_prepare(sd_event_source*, void* self) {
    auto* d = static_cast<Daemon*>(self);
    const auto pd = d->bus_->getEventLoopPollData();
    sd_event_source_set_io_events(d->bus_io_, static_cast<uint32_t>(pd.events));
    if (pd.timeout_usec == UINT64_MAX) {
        sd_event_source_set_enabled(d->bus_time_, SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(d->bus_time_, pd.timeout_usec);
        sd_event_source_set_enabled(d->bus_time_, SD_EVENT_ONESHOT);
    }
    return 0;
}

int Daemon::run() {
    int r = sd_event_default(&ev_);
    if (r < 0)
        throw SysError(-r, "creating event loop");
    sigset_t ss;
    sigemptyset(&ss);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&ss, sig);
    sigprocmask(SIG_BLOCK, &ss, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        r = sd_event_add_signal(ev_, nullptr, sig, on_signal, this);
        if (r < 0)
            throw SysError(-r, "adding signal handler");
    }
    sd_event_set_watchdog(ev_, 1);
    arm_poll_timer();
    connect_bus();

    spdlog::info("daemon: ready: {} interface(s), poll every {} ms", attached_.size(), cfg_.poll_interval.count());
    sd_notify(0, "READY=1");
    notify_status();

    r = sd_event_loop(ev_);
    if (r < 0)
        throw SysError(-r, "event loop");

    // Detach before the bus goes so a client that sees the name vanish knows
    // the filters are gone.
    datapath_->detach_all();
    spdlog::info("daemon: detached from all interfaces, exiting");
    return 0;
}

} // namespace nettally
