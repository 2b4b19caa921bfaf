// nettallyd's wiring, start-up, reload and shutdown. See daemon.h.
#include "app/daemon.h"

#include "app/export.h"
#include "app/links.h"
#include "app/rules.h"
#include "app/subscribers.h"
#include "bus/services.h"
#include "bus/upload.h"
#include "io/metrics.h"
#include "io/records.h"
#include "io/upload.h"
#include "os/clock.h"
#include "os/error.h"
#include "os/logging.h"

#include <csignal>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#ifndef NETTALLY_VERSION
#define NETTALLY_VERSION "dev"
#endif

namespace nettally {

namespace {

constexpr std::array<int, 3> kSignals = {SIGTERM, SIGINT, SIGHUP};

int64_t wall_us() {
    return static_cast<int64_t>(realtime_us());
}

// How long an ended connection stays in the NAT table: its flows are finished only after their
// idle timeout, and then exported and credited with it; a minute more covers the polls between.
std::chrono::nanoseconds nat_keep(const Config& c) {
    return flow_timeouts(c).idle + std::chrono::minutes(1);
}

// A load or rollback for the bus: a refusal is an invalid argument (its reason is the message).
template <typename F> std::pair<uint64_t, std::string> rules_call(F&& f) {
    try {
        const Rules::Applied a = f();
        return {a.version, a.hash};
    } catch (const RulesRefused& e) {
        throw std::invalid_argument(e.what());
    }
}

// GetRulesStatus (org.nettally.Accounting1.Rules.xml).
Status rules_status(const Rules& r) {
    const Rules::State s = r.state();
    return {{"active", s.active},
            {"version", s.version},
            {"hash", s.hash},
            {"name", s.name},
            {"classes", s.classes},
            {"loaded_at", s.loaded_at_us},
            {"origin", s.origin},
            {"previous_version", s.previous_version},
            {"previous_hash", s.previous_hash},
            {"rejected", s.rejected},
            {"last_rejection", s.last_rejection},
            {"last_rejection_at", s.last_rejection_at_us}};
}

Rules::Interfaces ifaces_of(const std::vector<InterfaceInfo>& list) {
    Rules::Interfaces out;
    for (const auto& i : list)
        out.emplace_back(i.ifindex, i.name);
    return out;
}

} // namespace

// What counts, in order: the accounting path (restoring the state file), thresholds (their
// kernel enforcer holds the datapath's policy map), records, then the programs go on the
// interfaces and the first poll is saved.
Daemon::Daemon(Config cfg) : cfg_(std::move(cfg)), started_us_(realtime_us()) {
    const InterfacePlan plan = plan_interfaces(cfg_, current_links());
    for (const auto& w : plan.warnings)
        spdlog::warn("config: {}", w);
    accounting_ = std::make_unique<Accounting>(cfg_, plan);
    // The ruleset first: thresholds on its classes are checked against it.
    rules_ = std::make_unique<Rules>(accounting_->datapath(), accounting_->collector(), cfg_.rules,
                                     cfg_.state_dir);
    rules_->start(ifaces_of(plan.interfaces));
    thresholds_ = std::make_unique<Thresholds>(
        accounting_->datapath(), cfg_, accounting_->usage(), wall_us(),
        [this](const std::string& user) { return accounting_->subscribers().user_id(user); });
    // Without restored totals everything counted so far is new: the first records cover it.
    recorder_ =
        std::make_unique<Recorder>(cfg_.records, cfg_.state_dir, accounting_->restored_from().empty());
    thresholds_->set_recorder(recorder_.get());
    recorder_->set_user_of([this](uint8_t family, const uint32_t addr[4], int64_t at_us) {
        const Subscribers& s = accounting_->subscribers();
        return s.enabled() ? s.table().user_at(family, addr, static_cast<uint64_t>(at_us)) : std::string();
    });
    nat_ = std::make_unique<NatWatch>(nat_keep(cfg_), cfg_.state_dir);
    export_ = std::make_unique<FlowExport>(cfg_.exports, flow_timeouts(cfg_), cfg_.state_dir);
    export_->set_nat(&nat_->table());
    if (accounting_->subscribers().enabled())
        export_->set_users([this](const FlowEntry& f, uint64_t end_ms) {
            // A flow's user is its lan host's: the source of ingress, the destination of egress flows.
            const Collector& c = accounting_->collector();
            const auto it = c.interfaces().find(c.name_of(f.key.ifindex));
            if (it == c.interfaces().end() || it->second.info.role != "lan")
                return std::string();
            return accounting_->subscribers().table().user_at(
                f.key.family, f.key.dir == NT_DIR_INGRESS ? f.key.src : f.key.dst, end_ms * 1000);
        });
    accounting_->add_flow_listener([this](const FlowEntry& f, const std::string& iface) {
        nat_->on_flow_finished(f, accounting_->collector());
        thresholds_->on_flow_finished(f, iface);
        recorder_->on_flow_finished(f, iface, accounting_->collector());
        export_->on_flow_finished(f, accounting_->collector());
    });
    // Every record carries the ruleset version; the IPFIX flow templates carry the class elements
    // while a ruleset is in force.
    export_->set_class_of([this](const FlowEntry& f) { return accounting_->collector().flow_class(f); });
    recorder_->set_rules_version(rules_->state().version);
    export_->set_classes(rules_->active() != nullptr);
    rules_->on_applied([this](const Rules::Applied& a) {
        recorder_->set_rules_version(a.version); // writes the usage so far under the old version
        export_->set_classes(true);
        if (bus_)
            bus_->rules_applied(a.version, a.hash);
    });
    accounting_->attach(plan);
    poll_now();
    save_state();
}

Daemon::~Daemon() = default;

// What lives on the loop, in order: signals, timers, hotplug, the uploader, the recorder's period
// timer, the bus (last: its adaptors serve everything above).
void Daemon::start() {
    sigset_t ss;
    sigemptyset(&ss);
    for (int sig : kSignals)
        sigaddset(&ss, sig);
    sigprocmask(SIG_BLOCK, &ss, nullptr);
    for (size_t i = 0; i < kSignals.size(); i++) {
        const int r = sd_event_add_signal(
            loop_.get(), signals_[i].put(), kSignals[i],
            [](sd_event_source*, const signalfd_siginfo* si, void* self) {
                static_cast<Daemon*>(self)->on_signal(static_cast<int>(si->ssi_signo));
                return 0;
            },
            this);
        if (r < 0)
            throw SysError(-r, "adding signal handler");
    }
    sd_event_set_watchdog(loop_.get(), 1);
    poll_timer_.attach(loop_.get(), CLOCK_MONOTONIC, [this] {
        try {
            poll_now();
        } catch (const std::exception& e) {
            spdlog::error("collector: poll failed: {}", e.what());
        }
        notify_status();
        arm_poll_timer();
    });
    persist_timer_.attach(loop_.get(), CLOCK_MONOTONIC, [this] {
        save_state();
        arm_persist_timer();
    });
    arm_poll_timer();
    arm_persist_timer();
    links_ = std::make_unique<LinkWatch>(loop_.get(), [this] {
        try {
            accounting_->apply_interfaces(cfg_, false, [this] { poll_now(); });
            interfaces_changed();
        } catch (const std::exception& e) {
            spdlog::error("hotplug: {}", e.what());
        }
    });
    accounting_->subscribers().watch(loop_.get());
    start_uploader();
    nat_->start(loop_.get());
    export_->start(loop_.get(), accounting_->collector());
    rules_->watch(loop_.get());
    // The recorder says when a file lands in the spool; the uploader's inotify watch and its scan
    // at start find files from other writers and from before a restart.
    recorder_->on_file_closed([this](const std::filesystem::path&) {
        if (uploader_)
            uploader_->file_closed();
    });
    recorder_->on_rotated([this](const ClosedFile& f) {
        if (bus_)
            bus_->file_rotated(f);
    });
    recorder_->start(loop_.get(), [this] { poll_now(); });
    start_metrics();
    connect_bus();
}

MetricFamilies Daemon::collect_metrics() const {
    const Status st = status();
    MetricsSources src{accounting_->collector(), st};
    src.cgroups = accounting_->cgroup_ledger();
    src.thresholds = &thresholds_->engine();
    src.max_hosts = cfg_.metrics.max_hosts;
    src.version = NETTALLY_VERSION;
    MetricFamilies f = build_metrics(src);
    if (uploader_)
        add_upload_metrics(f, uploader_->status());
    return f;
}

// The exposer (metrics.listen, start only) and the textfile timer (metrics.textfile_dir, reloadable).
void Daemon::start_metrics() {
    textfile_timer_.attach(loop_.get(), CLOCK_MONOTONIC, [this] {
        write_textfile();
        arm_textfile_timer();
    });
    arm_textfile_timer();
    if (cfg_.metrics.listen.empty())
        return;
    try {
        metrics_ = std::make_unique<MetricsExposer>(loop_.get(), cfg_.metrics.listen,
                                                    [this] { return collect_metrics(); });
    } catch (const SysError&) {
        throw;
    } catch (const std::runtime_error& e) {
        throw ConfigError(cfg_.path, 0, 0, "metrics.listen", e.what());
    }
    spdlog::info("metrics: serving http://{}/metrics", cfg_.metrics.listen);
}

void Daemon::arm_textfile_timer() {
    if (cfg_.metrics.textfile_dir.empty())
        textfile_timer_.disarm();
    else
        textfile_timer_.arm_in(static_cast<uint64_t>(cfg_.metrics.textfile_interval.count()) * 1000u);
}

void Daemon::write_textfile() {
    if (cfg_.metrics.textfile_dir.empty())
        return;
    try {
        write_metrics_textfile(cfg_.metrics.textfile_dir, collect_metrics());
    } catch (const std::exception& e) {
        spdlog::error("metrics: textfile: {}", e.what());
    }
}

void Daemon::arm_poll_timer() {
    poll_timer_.arm_in(static_cast<uint64_t>(cfg_.poll_interval.count()) * 1000u);
}

void Daemon::arm_persist_timer() {
    persist_timer_.arm_in(static_cast<uint64_t>(cfg_.persist_interval.count()) * 1000u);
}

std::filesystem::path Daemon::spool_dir() const {
    return cfg_.records.spool_dir.empty() ? cfg_.state_dir / "spool" : cfg_.records.spool_dir;
}

void Daemon::start_uploader() {
    // Signals go out through the Upload interface once the bus is up; before that (and without
    // a bus) the log is the only record.
    UploadEvents ev;
    ev.succeeded = [this](const std::string& n, const std::string& url, uint64_t bytes) {
        if (bus_)
            bus_->upload_events().succeeded(n, url, bytes);
    };
    ev.failed = [this](const std::string& n, const std::string& kind, const std::string& err,
                       uint32_t attempts, uint64_t next) {
        if (bus_)
            bus_->upload_events().failed(n, kind, err, attempts, next);
    };
    ev.dropped = [this](const std::vector<std::string>& names, uint64_t bytes, const std::string& reason) {
        if (bus_)
            bus_->upload_events().dropped(names, bytes, reason);
    };
    try {
        uploader_ =
            std::make_unique<Uploader>(loop_.get(), spool_dir(), cfg_.state_dir, cfg_.upload, std::move(ev));
    } catch (const SysError&) {
        throw;
    } catch (const std::runtime_error& e) {
        throw ConfigError(cfg_.path, 0, 0, "upload", e.what());
    }
    if (!cfg_.upload.url.empty())
        spdlog::info("upload: spool {} -> {}", spool_dir().string(), cfg_.upload.url);
}

void Daemon::connect_bus() {
    const auto ledger = [this]() -> const CgroupLedger* { return accounting_->cgroup_ledger(); };
    BusParts parts{
        accounting_->collector(),
        ServiceHooks{[this] { return status(); }, [this] { reload(); }, ledger,
                     [this]() -> const History& { return accounting_->history(); }},
        ThresholdsHooks{[this]() -> ThresholdEngine& { return thresholds_->engine(); },
                        [this] { return accounting_->usage(); }, ledger, [this] { return last_poll_us_; },
                        [this] {
                            thresholds_->flush_events();
                            thresholds_->save();
                        }},
        uploader_.get(),
        recorder_.get(),
        ExportHooks{[this] { return export_->source(); }, [this] { return export_->status(); },
                    [this](const std::vector<std::string>& urls) { export_->set_collectors(urls); }},
        SubscribersHooks{[this]() -> const BindingTable& { return accounting_->subscribers().table(); },
                         [this](uint8_t family, const uint32_t addr[4]) {
                             return accounting_->subscribers().user_of(family, addr);
                         },
                         [this] { return accounting_->subscribers().enabled(); }},
        RulesHooks{[this](std::span<const uint8_t> bytes) {
                       return rules_call([&] { return rules_->load(bytes, "dbus"); });
                   },
                   [this] { return rules_call([&] { return rules_->rollback(); }); },
                   [this] { return rules_status(*rules_); }},
    };
    bus_ = BusServices::connect(loop_.get(), std::move(parts));
    rules_->on_rejected([this](const std::string& reason) {
        if (bus_)
            bus_->rules_rejected(reason);
    });
    accounting_->subscribers().on_change([this](const BindingChange& c) {
        if (bus_)
            bus_->subscriber_changed(c);
    });
    export_->on_failed([this](const std::string& url, const std::string& error) {
        if (bus_)
            bus_->export_failed(url, error);
    });
    if (bus_)
        thresholds_->bus_tried(
            [this](const std::vector<ThresholdEvent>& events) { bus_->thresholds().emit(events); });
    else
        thresholds_->bus_tried(nullptr);
}

void Daemon::interfaces_changed() {
    rules_->interfaces_changed(ifaces_of(accounting_->attached()));
}

void Daemon::poll_now() {
    const uint64_t now_us = realtime_us();
    nat_->sync();
    accounting_->poll(now_us);
    nat_->credit(accounting_->collector());
    last_poll_us_ = static_cast<int64_t>(now_us);
    thresholds_->observe(accounting_->usage(), last_poll_us_);
    recorder_->record(accounting_->collector(), accounting_->cgroup_ledger(), static_cast<int64_t>(now_us));
    export_->poll(accounting_->collector());
}

void Daemon::save_state(bool detached) {
    accounting_->save_state(detached);
    thresholds_->save();
    export_->save();
    nat_->save();
}

void Daemon::detach_everything() {
    poll_now();
    accounting_->detach_all();
    save_state(true);
    accounting_->remove_pins();
    spdlog::info("daemon: detached from every interface and removed the pins; totals saved in {}",
                 accounting_->state_path().string());
}

void Daemon::notify_status() {
    const Collector& c = accounting_->collector();
    sd_notifyf(0, "STATUS=Accounting %zu interface(s), %zu flows, %zu hosts; %llu polls",
               c.interfaces().size(), c.flows().size(), c.hosts().size(),
               static_cast<unsigned long long>(c.stats().polls));
}

void Daemon::on_signal(int signo) {
    if (signo == SIGHUP) {
        try {
            reload();
        } catch (const std::exception& e) {
            spdlog::error("config: reload refused, keeping the running config: {}", e.what());
            sd_notify(0, "READY=1");
        }
        return;
    }
    stop(signo);
}

void Daemon::stop(int signo) {
    spdlog::info("daemon: signal {} received, stopping", signo);
    sd_notify(0, "STOPPING=1");
    try {
        poll_now();
    } catch (const std::exception& e) {
        spdlog::error("collector: final poll failed: {}", e.what());
    }
    recorder_->shutdown(accounting_->collector(), accounting_->cgroup_ledger(), wall_us());
    write_textfile();
    save_state();
    sd_event_exit(loop_.get(), 0);
}

void Daemon::reload() {
    sd_notify(0, "RELOADING=1");
    Config next = load_config(cfg_.path);
    std::optional<History> next_history = accounting_->check_reload(cfg_, next);
    if (next.records.spool_dir != cfg_.records.spool_dir)
        throw ConfigError(next.path, 0, 0, "records.spool_dir",
                          "takes effect only at start: restart nettallyd to change it");
    if (next.metrics.listen != cfg_.metrics.listen)
        throw ConfigError(next.path, 0, 0, "metrics.listen",
                          "takes effect only at start: restart nettallyd to change it");
    try {
        Uploader::check_config(next.upload);
    } catch (const std::runtime_error& e) {
        throw ConfigError(next.path, 0, 0, "upload", e.what());
    }
    const auto poll = [this] { poll_now(); };
    accounting_->apply_interfaces(next, true, poll);
    interfaces_changed();
    try {
        thresholds_->check_reload(next, accounting_->usage());
    } catch (const ConfigError&) {
        accounting_->apply_interfaces(cfg_, false, poll); // back to the running config's interfaces
        interfaces_changed();
        throw;
    }
    // Every check has passed: from here on the new config is applied.
    set_log_level(next.log_level); // a level the config accepted
    thresholds_->apply_reload(next, accounting_->usage(), last_poll_us_);
    accounting_->apply_reload(next, std::move(next_history));
    const bool persist_changed = next.persist_interval != cfg_.persist_interval;
    const bool interval_changed = next.poll_interval != cfg_.poll_interval;
    const bool textfile_changed = next.metrics.textfile_dir != cfg_.metrics.textfile_dir ||
                                  next.metrics.textfile_interval != cfg_.metrics.textfile_interval;
    cfg_ = std::move(next);
    if (interval_changed && poll_timer_.attached())
        arm_poll_timer();
    if (persist_changed && persist_timer_.attached())
        arm_persist_timer();
    if (textfile_changed && textfile_timer_.attached())
        arm_textfile_timer();
    recorder_->set_config(cfg_.records);
    rules_->set_config(cfg_.rules); // limits, keys, the pull; rules.bundle when it holds a newer version
    try {
        nat_->set_keep(nat_keep(cfg_));
        export_->apply(cfg_.exports, flow_timeouts(cfg_));
    } catch (const std::exception& e) {
        spdlog::error("export: {}", e.what());
    }
    if (uploader_) {
        try {
            uploader_->apply_config(cfg_.upload);
        } catch (const std::exception& e) { // checked above; a credential file may vanish meanwhile
            spdlog::error("upload: {}", e.what());
        }
    }
    spdlog::info("config: reloaded {} ({} interface(s), poll every {} ms)", cfg_.path,
                 accounting_->interfaces(), cfg_.poll_interval.count());
    sd_notify(0, "READY=1");
}

Status Daemon::status() const {
    Status m;
    m["version"] = std::string(NETTALLY_VERSION);
    m["pid"] = static_cast<uint32_t>(getpid());
    m["started_at"] = started_us_;
    m["config_path"] = cfg_.path;
    m["poll_interval_ms"] = static_cast<uint64_t>(cfg_.poll_interval.count());
    accounting_->add_status(m);
    thresholds_->add_status(m);
    rules_->add_status(m);
    export_->add_status(m);
    nat_->add_status(m);
    return m;
}

int Daemon::run() {
    loop_ = EventLoop::default_loop();
    start();
    spdlog::info("daemon: ready: {} interface(s), poll every {} ms", accounting_->interfaces(),
                 cfg_.poll_interval.count());
    sd_notify(0, "READY=1");
    notify_status();

    const int r = sd_event_loop(loop_.get());
    if (r < 0)
        throw SysError(-r, "event loop");

    spdlog::info("daemon: state saved; programs stay attached and keep counting until the next start "
                 "(nettallyd --detach removes them)");
    return 0;
}

} // namespace nettally
