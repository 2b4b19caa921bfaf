// nettallyd's event loop, start-up, reload and shutdown. See daemon.h.
#include "app/daemon.h"

#include "kernel/cgroups.h"
#include "core/interfaces.h"
#include "core/thresholds_alerts.h"
#include "bus/accounting.h"
#include "kernel/enforce.h"
#include "os/logging.h"
#include "os/system.h"
#include "bus/thresholds.h"
#include "bus/records.h"
#include "io/records.h"
#include "bus/upload.h"
#include "io/upload.h"

#include <algorithm>
#include <optional>
#include <csignal>
#include <ctime>
#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <linux/rtnetlink.h>
#include <sys/epoll.h>
#include <sys/socket.h>
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
    return DatapathOptions{c.max_flows, c.max_hosts, c.count_hosts, c.pin_dir.string()};
}

FlowTimeouts flow_timeouts(const Config& c) {
    return FlowTimeouts{std::chrono::duration_cast<std::chrono::nanoseconds>(c.flow_idle_timeout),
                        std::chrono::duration_cast<std::chrono::nanoseconds>(c.flow_active_timeout)};
}

constexpr int kStateVersion = 1;

PeriodSpec period_spec(const Config& c) {
    PeriodSpec p;
    p.month_start_day = c.month_start_day;
    p.time_zone = c.time_zone;
    p.keep_days = c.keep_days;
    p.keep_months = c.keep_months;
    return p;
}

History make_history(const Config& c) {
    try {
        return History(period_spec(c));
    } catch (const std::invalid_argument& e) {
        throw ConfigError(c.path, 0, 0, "periods", e.what());
    }
}

} // namespace

Daemon::Daemon(Config cfg) : cfg_(std::move(cfg)) {
    started_us_ = clock_us(CLOCK_REALTIME);
    boot_id_ = read_boot_id();
    state_ = std::make_unique<StateFile>(cfg_.state_dir, "state.json");
    InterfacePlan plan = plan_interfaces(cfg_, list_links());
    for (const auto& w : plan.warnings)
        spdlog::warn("config: {}", w);

    datapath_ = std::make_unique<Datapath>(datapath_options(cfg_));
    collector_ = std::make_unique<Collector>(*datapath_);
    collector_->set_flow_timeouts(flow_timeouts(cfg_));
    collector_->on_violation([](const std::string& m) { spdlog::error("reconcile: invariant violated: {}", m); });
    collector_->on_overflow([](const std::string& m) { spdlog::warn("collector: {}", m); });
    history_ = std::make_unique<HistoryFeed>(make_history(cfg_));
    collector_->on_flow_finished([this](const FlowEntry& f, const std::string& iface) {
        history_->on_flow_finished(f, iface);
        if (thresholds_)
            thresholds_->on_flow_finished(f, iface);
        if (recorder_)
            recorder_->on_flow_finished(f, iface, *collector_);
    });
    collector_->set_interfaces(plan.interfaces);
    if (cfg_.cgroups.enabled)
        cgroups_ = std::make_unique<CgroupAccounting>(cfg_.cgroups);
    restore_state();
    setup_thresholds();
    // Without restored totals everything counted so far is new: the first records cover it.
    recorder_ = std::make_unique<Recorder>(cfg_.records, cfg_.state_dir, state_restored_from_.empty());

    std::vector<uint32_t> keep;
    for (const auto& i : plan.interfaces)
        keep.push_back(i.ifindex);
    for (const auto& name : datapath_->detach_stale(keep))
        spdlog::info("datapath: removed a nettally program left on {} by an earlier run", name);
    for (const auto& i : plan.interfaces) {
        datapath_->attach(i.ifindex, i.role == "lan", i.xdp, i.l3);
        spdlog::info("datapath: accounting {} (ifindex {}, role {}, {})", i.name, i.ifindex, i.role,
                     i.xdp ? "XDP ingress + TC egress" : "TC ingress+egress");
    }
    attached_ = plan.interfaces;
    poll_now();
    save_state();
}

LedgerUsage Daemon::usage() const {
    return LedgerUsage(*collector_, cgroups_ ? &cgroups_->ledger() : nullptr);
}

void Daemon::setup_thresholds() {
    thresholds_file_ = std::make_unique<StateFile>(cfg_.state_dir, "thresholds.json");
    // Throttle and block in the kernel (kernel/enforce.h); it holds the datapath's policy map,
    // so it is declared after datapath_ and destroyed before it.
    auto kernel = make_kernel_enforcer(*datapath_);
    kernel_enforcer_ = kernel.get();
    enforcer_ = std::move(kernel);
    thresholds_ = std::make_unique<ThresholdEngine>(period_spec(cfg_), *enforcer_);
    const auto now = static_cast<int64_t>(clock_us(CLOCK_REALTIME));
    try {
        thresholds_->set_config(cfg_.thresholds, usage(), now);
    } catch (const ThresholdError& e) {
        throw ConfigError(cfg_.path, 0, 0, "thresholds", e.what());
    }
    std::vector<std::string> problems;
    auto loaded = thresholds_file_->read(&problems);
    for (const auto& p : problems)
        spdlog::error("thresholds: {}: skipped", p);
    if (loaded) {
        try {
            problems.clear();
            thresholds_->restore(nlohmann::json::parse(loaded->content), now, &problems);
            for (const auto& p : problems)
                spdlog::error("thresholds: {}", p);
            spdlog::info("thresholds: restored {} threshold(s) from {}", thresholds_->thresholds().size(),
                         loaded->from);
        } catch (const std::exception& e) {
            spdlog::error("thresholds: {} unusable ({}); runtime thresholds are lost", loaded->from, e.what());
        }
    }
}

void Daemon::save_thresholds() {
    if (!thresholds_)
        return;
    try {
        thresholds_file_->write(thresholds_->to_json().dump());
    } catch (const SysError& e) {
        spdlog::error("thresholds: saving failed: {}", e.what());
    }
}

void Daemon::flush_threshold_events() {
    if (!thresholds_)
        return;
    auto events = thresholds_->take_events();
    for (const auto& e : events)
        spdlog::info("thresholds: {} {} {} usage {} step {}{}{}", to_string(e.kind), e.name, e.subject, e.usage,
                     e.step_index, e.reason.empty() ? "" : " ", e.reason);
    if (recorder_) {
        std::vector<AlertRecord> alerts;
        for (const auto& e : events) {
            const Threshold* t = thresholds_->find(e.name);
            alerts.push_back(alert_record_of(e, t ? &t->def : nullptr));
        }
        recorder_->add_alerts(alerts);
    }
    if (thresholds_service_)
        thresholds_service_->emit(events);
    else if (!bus_tried_)
        pending_events_.insert(pending_events_.end(), events.begin(), events.end());
}

void Daemon::restore_state() {
    std::vector<std::string> problems;
    auto loaded = state_->read(&problems);
    for (const auto& p : problems)
        spdlog::error("state: {}: skipped", p);
    if (!loaded) {
        if (!problems.empty())
            spdlog::error("state: no usable state file; totals start from the kernel counters");
        return;
    }
    for (const auto& p : loaded->problems)
        spdlog::error("state: {}: skipped, using {}", p, loaded->from);
    try {
        const auto j = nlohmann::json::parse(loaded->content);
        if (j.at("version").get<int>() != kStateVersion)
            throw std::runtime_error("unsupported state version " + std::to_string(j.at("version").get<int>()));
        // The kernel counters are the ones the state saw only if the pinned
        // maps survived and the machine did not reboot.
        const bool same_counters = datapath_->reused_pins() && j.at("boot_id").get<std::string>() == boot_id_ &&
                                   !j.value("detached", false);
        collector_->restore(j.at("collector"), same_counters);
        if (const uint64_t late = collector_->restored_late_flows())
            spdlog::info("state: {} flow(s) finished after that save; their counts come from the pinned sums "
                         "beside the counters",
                         late);
        if (j.contains("history")) {
            try {
                history_->restore(j.at("history"), period_spec(cfg_), same_counters);
            } catch (const std::exception& e) {
                spdlog::error("state: history in {} unusable ({}); history starts afresh", loaded->from,
                              e.what());
            }
        }
        if (cgroups_ && j.contains("cgroups"))
            cgroups_->restore(j.at("cgroups"));
        state_restored_from_ = loaded->from;
        spdlog::info("state: restored totals from {} (saved {} s ago; {})", loaded->from,
                     (clock_us(CLOCK_REALTIME) - j.at("saved_at_us").get<uint64_t>()) / 1000000,
                     same_counters ? "same kernel counters: continuing exactly"
                                   : "new kernel counters: adding to the saved totals");
    } catch (const std::exception& e) {
        spdlog::error("state: {} unusable ({}); totals start from the kernel counters", loaded->from, e.what());
    }
}

void Daemon::save_state(bool detached) {
    nlohmann::json j = {{"version", kStateVersion},
                        {"boot_id", boot_id_},
                        {"saved_at_us", clock_us(CLOCK_REALTIME)},
                        {"detached", detached},
                        {"collector", collector_->to_json()},
                        {"history", history_->to_json()}};
    if (cgroups_)
        j["cgroups"] = cgroups_->to_json();
    try {
        state_->write(j.dump());
        state_saved_us_ = clock_us(CLOCK_REALTIME);
    } catch (const SysError& e) {
        spdlog::error("state: saving failed: {}", e.what());
    }
    save_thresholds();
}

void Daemon::detach_everything() {
    poll_now();
    if (cgroups_)
        cgroups_->detach();
    datapath_->detach_all();
    datapath_->detach_stale({});
    save_state(true);
    datapath_->remove_pins();
    spdlog::info("daemon: detached from every interface and removed the pins; totals saved in {}",
                 state_->path().string());
}

void Daemon::arm_persist_timer() {
    const uint64_t usec = static_cast<uint64_t>(cfg_.persist_interval.count()) * 1000u;
    if (!persist_src_) {
        int r = sd_event_add_time_relative(ev_, &persist_src_, CLOCK_MONOTONIC, usec, 0, on_persist, this);
        if (r < 0)
            throw SysError(-r, "adding persist timer");
        return;
    }
    sd_event_source_set_time_relative(persist_src_, usec);
    sd_event_source_set_enabled(persist_src_, SD_EVENT_ONESHOT);
}

int Daemon::on_persist(sd_event_source*, uint64_t, void* self) {
    auto* d = static_cast<Daemon*>(self);
    d->save_state();
    d->arm_persist_timer();
    return 0;
}

// Hotplug: any link change (new, gone, renamed) re-plans the interfaces
// after a short settle time, so a burst of events costs one re-plan.
void Daemon::watch_links() {
    link_fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (link_fd_ < 0) {
        spdlog::warn("hotplug: cannot open rtnetlink ({}); interfaces are planned at start and reload only",
                     std::strerror(errno));
        return;
    }
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (bind(link_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        throw SysError(errno, "subscribing to link events");
    int r = sd_event_add_io(ev_, &link_io_, link_fd_, EPOLLIN, on_link_event, this);
    if (r >= 0)
        r = sd_event_add_time(ev_, &link_settle_, CLOCK_MONOTONIC, UINT64_MAX, 0, on_link_settle, this);
    if (r < 0)
        throw SysError(-r, "adding link events to the event loop");
    sd_event_source_set_enabled(link_settle_, SD_EVENT_OFF);
}

int Daemon::on_link_event(sd_event_source*, int fd, uint32_t, void* self) {
    auto* d = static_cast<Daemon*>(self);
    char buf[8192];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
    uint64_t now = 0;
    sd_event_now(d->ev_, CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(d->link_settle_, now + 100000);
    sd_event_source_set_enabled(d->link_settle_, SD_EVENT_ONESHOT);
    return 0;
}

int Daemon::on_link_settle(sd_event_source*, uint64_t, void* self) {
    auto* d = static_cast<Daemon*>(self);
    try {
        d->apply_interfaces(d->cfg_, false);
    } catch (const std::exception& e) {
        spdlog::error("hotplug: {}", e.what());
    }
    return 0;
}

Daemon::~Daemon() {
    thresholds_service_.reset();
    records_service_.reset();
    upload_service_.reset();
    service_.reset();
    bus_.reset();
    uploader_.reset();
    recorder_.reset();
    sd_event_source_unref(bus_io_);
    sd_event_source_unref(bus_time_);
    sd_event_source_unref(poll_src_);
    sd_event_source_unref(persist_src_);
    sd_event_source_unref(link_io_);
    sd_event_source_unref(link_settle_);
    if (link_fd_ >= 0)
        close(link_fd_);
    sd_event_unref(ev_);
}

void Daemon::poll_now() {
    const uint64_t now_us = clock_us(CLOCK_REALTIME);
    collector_->poll(PollClock{now_us, clock_us(CLOCK_BOOTTIME) * 1000u});
    history_->feed(*collector_, static_cast<int64_t>(now_us));
    if (cgroups_)
        cgroups_->poll(now_us);
    last_poll_us_ = static_cast<int64_t>(now_us);
    if (thresholds_) {
        thresholds_->observe(usage(), last_poll_us_);
        flush_threshold_events();
    }
    if (recorder_)
        recorder_->record(*collector_, cgroups_ ? &cgroups_->ledger() : nullptr, static_cast<int64_t>(now_us));
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
    try {
        d->poll_now();
    } catch (const std::exception& e) {
        spdlog::error("collector: final poll failed: {}", e.what());
    }
    if (d->recorder_)
        d->recorder_->shutdown(*d->collector_, d->cgroups_ ? &d->cgroups_->ledger() : nullptr,
                               static_cast<int64_t>(clock_us(CLOCK_REALTIME)));
    d->save_state();
    sd_event_exit(d->ev_, 0);
    return 0;
}

void Daemon::apply_interfaces(const Config& next, bool strict) {
    InterfacePlan plan;
    try {
        plan = plan_interfaces(next, list_links(), strict);
    } catch (const InterfaceError& e) {
        throw ConfigError(next.path, 0, 0, "interfaces", e.what());
    }
    for (const auto& w : plan.warnings)
        spdlog::warn("config: {}", w);

    auto same = [](const InterfaceInfo& a, const InterfaceInfo& b) {
        return a.ifindex == b.ifindex && a.role == b.role && a.name == b.name && a.xdp == b.xdp && a.l3 == b.l3;
    };
    // Attach what is new or changed role; on failure undo this reload's attaches.
    std::vector<InterfaceInfo> done;
    try {
        for (const auto& i : plan.interfaces) {
            bool kept = std::any_of(attached_.begin(), attached_.end(), [&](const auto& a) { return same(a, i); });
            if (kept)
                continue;
            datapath_->attach(i.ifindex, i.role == "lan", i.xdp, i.l3); // replaces ours if role/mode changed
            done.push_back(i);
        }
    } catch (...) {
        for (const auto& i : done) {
            auto old = std::find_if(attached_.begin(), attached_.end(),
                                    [&](const auto& a) { return a.ifindex == i.ifindex; });
            if (old != attached_.end())
                datapath_->attach(old->ifindex, old->role == "lan", old->xdp, old->l3);
            else
                datapath_->detach(i.ifindex);
        }
        throw;
    }
    // Released interfaces: count what they had up to now, then drop their
    // kernel counters so a reused ifindex starts clean. Totals stay by name.
    bool polled = false;
    for (const auto& a : attached_) {
        bool kept = std::any_of(plan.interfaces.begin(), plan.interfaces.end(),
                                [&](const auto& i) { return i.ifindex == a.ifindex; });
        if (!kept) {
            if (!polled) {
                poll_now();
                polled = true;
            }
            datapath_->detach(a.ifindex);
            collector_->forget_interface(a.ifindex);
            datapath_->forget_interface(a.ifindex);
            spdlog::info("datapath: released {} (ifindex {}); its totals are kept", a.name, a.ifindex);
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
        next.count_hosts != cfg_.count_hosts || next.pin_dir != cfg_.pin_dir || next.state_dir != cfg_.state_dir)
        throw ConfigError(next.path, 0, 0, "flows/hosts/pin_dir/state_dir",
                          "map sizes, hosts.enabled, pin_dir and state_dir take effect only at start: "
                          "restart nettallyd to change them");
    if (next.cgroups.enabled != cfg_.cgroups.enabled || next.cgroups.max_entries != cfg_.cgroups.max_entries ||
        next.cgroups.all_netns != cfg_.cgroups.all_netns)
        throw ConfigError(next.path, 0, 0, "cgroups",
                          "cgroups.enabled, cgroups.max_entries and cgroups.netns take effect only at start: "
                          "restart nettallyd to change them");
    std::optional<History> next_history;
    if (next.month_start_day != cfg_.month_start_day || next.time_zone != cfg_.time_zone ||
        next.keep_days != cfg_.keep_days || next.keep_months != cfg_.keep_months) {
        make_history(next); // validates the new period settings before anything changes
        try {
            next_history = History::from_json(history_->history().to_json(), period_spec(next));
        } catch (const std::exception& e) {
            throw ConfigError(next.path, 0, 0, "periods", e.what());
        }
    }
    if (next.records.spool_dir != cfg_.records.spool_dir)
        throw ConfigError(next.path, 0, 0, "records.spool_dir",
                          "takes effect only at start: restart nettallyd to change it");
    try {
        Uploader::check_config(next.upload);
    } catch (const std::runtime_error& e) {
        throw ConfigError(next.path, 0, 0, "upload", e.what());
    }
    apply_interfaces(next, true);
    try {
        thresholds_->check_config(next.thresholds, usage());
    } catch (const ThresholdError& e) {
        apply_interfaces(cfg_, false); // back to the running config's interfaces
        throw ConfigError(next.path, 0, 0, "thresholds", e.what());
    }
    // Every check has passed: from here on the new config is applied.
    set_log_level(next.log_level); // a level the config accepted
    thresholds_->set_config(next.thresholds, usage(), last_poll_us_);
    thresholds_->set_period_spec(period_spec(next));
    flush_threshold_events();
    save_thresholds();
    if (next_history)
        history_->set_history(std::move(*next_history));
    if (cgroups_)
        cgroups_->set_subtrees(next.cgroups.subtrees);
    collector_->set_flow_timeouts(flow_timeouts(next));
    const bool persist_changed = next.persist_interval != cfg_.persist_interval;
    const bool interval_changed = next.poll_interval != cfg_.poll_interval;
    cfg_ = std::move(next);
    if (interval_changed && poll_src_)
        arm_poll_timer();
    if (persist_changed && persist_src_)
        arm_persist_timer();
    if (recorder_)
        recorder_->set_config(cfg_.records);
    if (uploader_) {
        try {
            uploader_->apply_config(cfg_.upload);
        } catch (const std::exception& e) { // checked above; a credential file may vanish meanwhile
            spdlog::error("upload: {}", e.what());
        }
    }
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
            host_overflow += d.host_overflow.total().packets;
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
    m["flows_evicted"] = sdbus::Variant(s.flows_evicted);
    m["flow_map_full"] = sdbus::Variant(s.flow_map_full);
    m["overflow_episodes"] = sdbus::Variant(s.overflow_episodes);
    m["state_saved_at"] = sdbus::Variant(state_saved_us_);
    m["state_file"] = sdbus::Variant(state_->path().string());
    m["pinned_maps_reused"] = sdbus::Variant(datapath_->reused_pins());
    m["boot_id"] = sdbus::Variant(boot_id_);
    if (kernel_enforcer_)
        kernel_enforcer_->add_status(m);
    m["thresholds"] = sdbus::Variant(static_cast<uint32_t>(thresholds_ ? thresholds_->thresholds().size() : 0));
    if (cgroups_)
        cgroups_->add_status(m);
    else
        m["cgroups_enabled"] = sdbus::Variant(false);
    return m;
}

void Daemon::connect_bus() {
    try {
        bus_ = sdbus::createSystemBusConnection();
        service_ = std::make_unique<AccountingService>(
            *bus_, *collector_,
            ServiceHooks{[this] { return status(); }, [this] { reload(); },
                         [this]() -> const CgroupLedger* { return cgroups_ ? &cgroups_->ledger() : nullptr; },
                         [this]() -> const History& { return history_->history(); }});
        thresholds_service_ = std::make_unique<ThresholdsService>(
            *bus_, ThresholdsHooks{[this]() -> ThresholdEngine& { return *thresholds_; }, [this] { return usage(); },
                                   [this]() -> const CgroupLedger* { return cgroups_ ? &cgroups_->ledger() : nullptr; },
                                   [this] { return last_poll_us_; },
                                   [this] {
                                       flush_threshold_events();
                                       save_thresholds();
                                   }});
        upload_service_ = std::make_unique<UploadService>(*bus_, uploader_.get());
        if (recorder_)
            records_service_ = std::make_unique<RecordsService>(*bus_, *recorder_);
        bus_->requestName(kBusName);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: system bus not available ({}: {}); counting continues without the API",
                     e.getName(), e.getMessage());
        thresholds_service_.reset();
        records_service_.reset();
        upload_service_.reset();
        service_.reset();
        bus_.reset();
        bus_tried_ = true;
        pending_events_.clear();
        return;
    }
    bus_tried_ = true;
    thresholds_service_->emit(std::exchange(pending_events_, {}));
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

std::filesystem::path Daemon::spool_dir() const {
    return cfg_.records.spool_dir.empty() ? cfg_.state_dir / "spool" : cfg_.records.spool_dir;
}

void Daemon::start_uploader() {
    // Signals go out through the Upload interface once the bus is up; before that (and without
    // a bus) the log is the only record.
    UploadEvents ev;
    ev.succeeded = [this](const std::string& n, const std::string& url, uint64_t bytes) {
        if (upload_service_)
            upload_service_->events().succeeded(n, url, bytes);
    };
    ev.failed = [this](const std::string& n, const std::string& kind, const std::string& err, uint32_t attempts,
                       uint64_t next) {
        if (upload_service_)
            upload_service_->events().failed(n, kind, err, attempts, next);
    };
    ev.dropped = [this](const std::vector<std::string>& names, uint64_t bytes, const std::string& reason) {
        if (upload_service_)
            upload_service_->events().dropped(names, bytes, reason);
    };
    try {
        uploader_ = std::make_unique<Uploader>(ev_, spool_dir(), cfg_.state_dir, cfg_.upload, std::move(ev));
    } catch (const SysError&) {
        throw;
    } catch (const std::runtime_error& e) {
        throw ConfigError(cfg_.path, 0, 0, "upload", e.what());
    }
    if (!cfg_.upload.url.empty())
        spdlog::info("upload: spool {} -> {}", spool_dir().string(), cfg_.upload.url);
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
    arm_persist_timer();
    watch_links();
    start_uploader();
    // The recorder says when a file lands in the spool; the uploader's inotify watch and its scan
    // at start find files from other writers and from before a restart.
    recorder_->on_file_closed([this](const std::filesystem::path&) {
        if (uploader_)
            uploader_->file_closed();
    });
    recorder_->on_rotated([this](const ClosedFile& f) {
        if (records_service_)
            records_service_->file_rotated(f);
    });
    recorder_->start(ev_, [this] { poll_now(); });
    connect_bus();

    spdlog::info("daemon: ready: {} interface(s), poll every {} ms", attached_.size(), cfg_.poll_interval.count());
    sd_notify(0, "READY=1");
    notify_status();

    r = sd_event_loop(ev_);
    if (r < 0)
        throw SysError(-r, "event loop");

    spdlog::info("daemon: state saved; programs stay attached and keep counting until the next start "
                 "(nettallyd --detach removes them)");
    return 0;
}

} // namespace nettally
