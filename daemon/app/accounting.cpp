// The accounting path: see accounting.h.
#include "app/accounting.h"

#include "app/subscribers.h"
#include "kernel/cgroups.h"
#include "os/clock.h"
#include "os/error.h"
#include "os/system.h"

#include <algorithm>
#include <spdlog/spdlog.h>

namespace nettally {
namespace {

constexpr int kStateVersion = 1;

DatapathOptions datapath_options(const Config& c) {
    DatapathOptions o{c.max_flows, c.max_hosts, c.count_hosts, c.pin_dir.string()};
    o.max_host_classes = c.rules.host_class_entries();
    o.classes = c.rules.section;
    // The programs the interface rules ask for load with the maps; an l3 link or a kind a reload
    // brings loads its own at its first attach.
    o.preload.emplace();
    for (const InterfaceRule& r : c.interfaces)
        o.preload->push_back(AttachKind{r.role == Role::Lan, r.mode == AttachMode::Xdp, false});
    return o;
}

History make_history(const Config& c) {
    try {
        return History(period_spec(c));
    } catch (const std::invalid_argument& e) {
        throw ConfigError(c.path, 0, 0, "periods", e.what());
    }
}

bool same_interface(const InterfaceInfo& a, const InterfaceInfo& b) {
    return a.ifindex == b.ifindex && a.role == b.role && a.name == b.name && a.xdp == b.xdp && a.l3 == b.l3;
}

} // namespace

FlowTimeouts flow_timeouts(const Config& c) {
    return FlowTimeouts{std::chrono::duration_cast<std::chrono::nanoseconds>(c.flow_idle_timeout),
                        std::chrono::duration_cast<std::chrono::nanoseconds>(c.flow_active_timeout)};
}

std::vector<LinkInfo> current_links() {
    std::vector<LinkInfo> out;
    list_links([&](const std::string& name, uint32_t ifindex, bool loopback, bool l3) {
        out.push_back(LinkInfo{name, ifindex, loopback, l3});
    });
    return out;
}

PeriodSpec period_spec(const Config& c) {
    PeriodSpec p;
    p.month_start_day = c.month_start_day;
    p.time_zone = c.time_zone;
    p.keep_days = c.keep_days;
    p.keep_months = c.keep_months;
    return p;
}

Accounting::Accounting(const Config& cfg, const InterfacePlan& plan)
    : boot_id_(read_boot_id()), state_(cfg.state_dir, "state.json") {
    datapath_ = std::make_unique<Datapath>(datapath_options(cfg));
    collector_ = std::make_unique<Collector>(*datapath_);
    collector_->set_flow_timeouts(flow_timeouts(cfg));
    collector_->on_violation(
        [](const std::string& m) { spdlog::error("reconcile: invariant violated: {}", m); });
    collector_->on_overflow([](const std::string& m) { spdlog::warn("collector: {}", m); });
    history_ = std::make_unique<HistoryFeed>(make_history(cfg));
    collector_->on_flow_finished([this](const FlowEntry& f, const std::string& iface) {
        history_->on_flow_finished(f, iface);
        for (const auto& l : flow_listeners_)
            l(f, iface);
    });
    collector_->set_interfaces(plan.interfaces);
    subscribers_ = std::make_unique<Subscribers>(*datapath_);
    subscribers_->on_change([](const BindingChange& c) {
        // RADIUS changes come at the access server's request rate: debug level (the
        // SubscriberChanged signal and the radius_* counters carry them).
        spdlog::log(c.binding.source == BindingSource::Radius ? spdlog::level::debug : spdlog::level::info,
                    "subscribers: {} {} -> {} ({}{}{})", to_string(c.kind), c.binding.prefix.to_string(),
                    c.binding.user, to_string(c.binding.source), c.binding.session.empty() ? "" : " session ",
                    c.binding.session);
    });
    collector_->set_user_ids(&subscribers_->ids());
    if (cfg.cgroups.enabled)
        cgroups_ = std::make_unique<CgroupAccounting>(cfg.cgroups);
    restore_state(cfg);
    try {
        subscribers_->open_journal(cfg.state_dir / "radius.journal");
    } catch (const SysError& e) {
        spdlog::error("subscribers: {}; RADIUS changes are kept by the state file only", e.what());
    }
    // After the restore: static bindings still configured keep their start time.
    subscribers_->configure(cfg.subscribers, realtime_us());
}

Accounting::~Accounting() = default;

const CgroupLedger* Accounting::cgroup_ledger() const {
    return cgroups_ ? &cgroups_->ledger() : nullptr;
}

LedgerUsage Accounting::usage() const {
    return LedgerUsage(*collector_, cgroup_ledger(), subscribers_->enabled());
}

void Accounting::attach(const InterfacePlan& plan) {
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
}

void Accounting::apply_interfaces(const Config& next, bool strict, const std::function<void()>& poll) {
    InterfacePlan plan;
    try {
        plan = plan_interfaces(next, current_links(), strict);
    } catch (const InterfaceError& e) {
        throw ConfigError(next.path, 0, 0, "interfaces", e.what());
    }
    for (const auto& w : plan.warnings)
        spdlog::warn("config: {}", w);

    // Attach what is new or changed role; on failure undo this reload's attaches.
    std::vector<InterfaceInfo> done;
    try {
        for (const auto& i : plan.interfaces) {
            if (std::any_of(attached_.begin(), attached_.end(),
                            [&](const auto& a) { return same_interface(a, i); }))
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
        if (std::any_of(plan.interfaces.begin(), plan.interfaces.end(),
                        [&](const auto& i) { return i.ifindex == a.ifindex; }))
            continue;
        if (!std::exchange(polled, true))
            poll();
        datapath_->detach(a.ifindex);
        collector_->forget_interface(a.ifindex);
        datapath_->forget_interface(a.ifindex);
        spdlog::info("datapath: released {} (ifindex {}); its totals are kept", a.name, a.ifindex);
    }
    for (const auto& i : done)
        spdlog::info("datapath: accounting {} (ifindex {}, role {}, {})", i.name, i.ifindex, i.role,
                     i.xdp ? "XDP ingress + TC egress" : "TC");
    attached_ = plan.interfaces;
    collector_->set_interfaces(attached_);
}

void Accounting::detach_all() {
    if (cgroups_)
        cgroups_->detach();
    datapath_->detach_all();
    datapath_->detach_stale({});
}

void Accounting::remove_pins() {
    datapath_->remove_pins();
}

void Accounting::poll(uint64_t now_us) {
    collector_->poll(PollClock{now_us, kernel_stamp_ns()});
    history_->feed(*collector_, static_cast<int64_t>(now_us));
    subscribers_->poll(now_us);
    if (cgroups_)
        cgroups_->poll(now_us);
}

std::optional<History> Accounting::check_reload(const Config& cur, const Config& next) const {
    if (next.max_flows != cur.max_flows || next.max_hosts != cur.max_hosts ||
        next.count_hosts != cur.count_hosts || next.pin_dir != cur.pin_dir ||
        next.state_dir != cur.state_dir || next.rules.host_class_entries() != cur.rules.host_class_entries())
        throw ConfigError(next.path, 0, 0, "flows/hosts/rules/pin_dir/state_dir",
                          "map sizes (rules.max_host_classes and whether a rules section exists included), "
                          "hosts.enabled, pin_dir and state_dir take effect only at start: "
                          "restart nettallyd to change them");
    if (next.cgroups.enabled != cur.cgroups.enabled || next.cgroups.max_entries != cur.cgroups.max_entries ||
        next.cgroups.all_netns != cur.cgroups.all_netns)
        throw ConfigError(next.path, 0, 0, "cgroups",
                          "cgroups.enabled, cgroups.max_entries and cgroups.netns take effect only at start: "
                          "restart nettallyd to change them");
    if (next.month_start_day == cur.month_start_day && next.time_zone == cur.time_zone &&
        next.keep_days == cur.keep_days && next.keep_months == cur.keep_months)
        return std::nullopt;
    make_history(next); // validates the new period settings before anything changes
    try {
        return History::from_json(history_->history().to_json(), period_spec(next));
    } catch (const std::exception& e) {
        throw ConfigError(next.path, 0, 0, "periods", e.what());
    }
}

void Accounting::apply_reload(const Config& next, std::optional<History> next_history) {
    if (next_history)
        history_->set_history(std::move(*next_history));
    if (cgroups_)
        cgroups_->set_subtrees(next.cgroups.subtrees);
    collector_->set_flow_timeouts(flow_timeouts(next));
    try {
        subscribers_->configure(next.subscribers, realtime_us());
    } catch (const SysError& e) {
        spdlog::error("subscribers: {}", e.what());
    }
}

void Accounting::restore_state(const Config& cfg) {
    std::vector<std::string> problems;
    auto loaded = state_.read(&problems);
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
        restore_json(nlohmann::json::parse(loaded->content), cfg, loaded->from);
    } catch (const std::exception& e) {
        spdlog::error("state: {} unusable ({}); totals start from the kernel counters", loaded->from,
                      e.what());
    }
}

void Accounting::restore_json(const nlohmann::json& j, const Config& cfg, const std::string& from) {
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
            history_->restore(j.at("history"), period_spec(cfg), same_counters);
        } catch (const std::exception& e) {
            spdlog::error("state: history in {} unusable ({}); history starts afresh", from, e.what());
        }
    }
    if (cgroups_ && j.contains("cgroups"))
        cgroups_->restore(j.at("cgroups"));
    if (j.contains("subscribers")) {
        try {
            subscribers_->restore(j.at("subscribers"));
        } catch (const std::exception& e) {
            spdlog::error("state: subscriber bindings in {} unusable ({}); bindings start afresh", from,
                          e.what());
        }
    }
    restored_from_ = from;
    spdlog::info("state: restored totals from {} (saved {} s ago; {})", from,
                 (realtime_us() - j.at("saved_at_us").get<uint64_t>()) / 1000000,
                 same_counters ? "same kernel counters: continuing exactly"
                               : "new kernel counters: adding to the saved totals");
}

void Accounting::save_state(bool detached) {
    nlohmann::json j = {{"version", kStateVersion},
                        {"boot_id", boot_id_},
                        {"saved_at_us", realtime_us()},
                        {"detached", detached},
                        {"collector", collector_->to_json()},
                        {"history", history_->to_json()},
                        {"subscribers", subscribers_->to_json()}};
    if (cgroups_)
        j["cgroups"] = cgroups_->to_json();
    try {
        state_.write(j.dump());
        state_saved_us_ = realtime_us();
        subscribers_->state_saved();
    } catch (const SysError& e) {
        spdlog::error("state: saving failed: {}", e.what());
    }
}

void Accounting::add_status(Status& m) const {
    const auto& s = collector_->stats();
    uint64_t flow_overflow = 0, host_overflow = 0;
    for (const auto& [name, st] : collector_->interfaces())
        for (const auto& d : st.dir) {
            flow_overflow += d.bucket[NT_BUCKET_FLOW_OVERFLOW].total().packets;
            host_overflow += d.host_overflow.total().packets;
        }
    m.insert({{"polls", s.polls},
              {"last_poll_at", collector_->last_poll_us()},
              {"interfaces", static_cast<uint32_t>(attached_.size())},
              {"flows", static_cast<uint32_t>(collector_->flows().size())},
              {"flow_capacity", datapath_->flow_capacity()},
              {"hosts", static_cast<uint32_t>(collector_->hosts().size())},
              {"host_capacity", datapath_->host_capacity()},
              {"flow_overflow_packets", flow_overflow},
              {"host_overflow_packets", host_overflow},
              {"reconcile_checks", s.reconcile_checks},
              {"reconcile_exact", s.reconcile_exact},
              {"reconcile_violations", s.reconcile_violations},
              {"flows_evicted", s.flows_evicted},
              {"flow_map_full", s.flow_map_full},
              {"overflow_episodes", s.overflow_episodes},
              {"user_snapshot_misses", s.user_snapshot_misses},
              {"state_saved_at", state_saved_us_},
              {"state_file", state_.path().string()},
              {"pinned_maps_reused", datapath_->reused_pins()},
              {"boot_id", boot_id_}});
    m["subscribers_enabled"] = subscribers_->enabled();
    m["subscriber_bindings_open"] = static_cast<uint32_t>(
        std::count_if(subscribers_->table().bindings().begin(), subscribers_->table().bindings().end(),
                      [](const Binding& b) { return b.open(); }));
    m["subscriber_bindings_kept"] = static_cast<uint32_t>(subscribers_->table().bindings().size());
    m["subscriber_lease_problems"] = subscribers_->lease_problems();
    m["subscriber_leases_unnamed"] = static_cast<uint64_t>(subscribers_->leases_unnamed());
    subscribers_->add_status(m);
    m["user_overflow_packets"] = collector_->user_overflow_sent().total().packets +
                                 collector_->user_overflow_received().total().packets;
    if (cgroups_)
        cgroups_->add_status(m);
    else
        m["cgroups_enabled"] = false;
}

} // namespace nettally
