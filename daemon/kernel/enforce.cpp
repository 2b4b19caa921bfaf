// KernelEnforcer: threshold actions into the kernel's policy map. See enforce.h.
#include "kernel/enforce.h"

#include "kernel/datapath.h"
#include "kernel/qdisc.h"

#include <algorithm>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace nettally {

KernelEnforcer::KernelEnforcer(Datapath& dp, UserIdOf user_id)
    : dp_(dp), table_(std::move(user_id)), qdisc_(std::make_unique<QdiscControl>()) {
    fq_why_not_ = QdiscControl::probe_fq();
    fq_available_ = fq_why_not_.empty();
    if (fq_available_)
        spdlog::info(
            "enforce: throttle mode edt: egress to a throttled host is paced by fq (installed as root "
            "qdisc on lan interfaces while a throttle is in force), ingress is policed");
    else
        spdlog::info(
            "enforce: throttle mode policer ({}): a throttled host's traffic above the rate is dropped "
            "in both directions",
            fq_why_not_);
}

KernelEnforcer::~KernelEnforcer() {
    // A clean shutdown stops enforcing: the programs stay attached and
    // counting while nettallyd is down, and nobody could lift an action then.
    table_ = PolicyTable{};
    try {
        sync();
    } catch (const std::exception& e) {
        spdlog::warn("enforce: lifting actions at shutdown: {}", e.what());
    }
}

std::string KernelEnforcer::check(const Subject& subject, ActionKind action, uint64_t rate) const {
    return check_enforceable(subject, action, rate);
}

void KernelEnforcer::apply(const std::string& id, const Subject& subject, ActionKind action, uint64_t rate) {
    const PolicyTable before = table_;
    try {
        table_.set(id, subject, action, rate);
        sync();
    } catch (const std::invalid_argument& e) {
        table_ = before;
        throw std::runtime_error(e.what());
    } catch (const std::exception& e) {
        table_ = before;
        try {
            sync();
        } catch (const std::exception&) {
        }
        throw std::runtime_error(std::string("enforcing ") + id + ": " + e.what());
    }
    if (action == ActionKind::Throttle)
        spdlog::info("enforce: {}: throttling {} {} to {} B/s ({})", id, to_string(subject.kind),
                     subject.value, rate, throttle_mode());
    else if (action == ActionKind::Block)
        spdlog::info("enforce: {}: blocking {} {}", id, to_string(subject.kind), subject.value);
}

void KernelEnforcer::lift(const std::string& id) {
    const auto ids = table_.ids();
    if (std::find(ids.begin(), ids.end(), id) == ids.end())
        return;
    table_.remove(id);
    try {
        sync();
        spdlog::info("enforce: {}: lifted", id);
    } catch (const std::exception& e) {
        spdlog::error("enforce: lifting {}: {}", id, e.what());
    }
}

std::vector<std::string> KernelEnforcer::active() const {
    return table_.ids();
}

std::string KernelEnforcer::throttle_mode() const {
    return fq_available_ ? "edt" : "policer";
}

void KernelEnforcer::sync() {
    const auto want = table_.effective();
    for (const auto& [key, params] : want) {
        const auto have = in_kernel_.find(key);
        if (have != in_kernel_.end() && have->second == params)
            continue;
        if (have != in_kernel_.end()) {
            // Changed parameters start a fresh schedule; keep the drops counted so far.
            if (auto old = dp_.policy_get(key.to_abi())) {
                dropped_packets_gone_ += old->dropped_packets[0] + old->dropped_packets[1];
                dropped_bytes_gone_ += old->dropped_bytes[0] + old->dropped_bytes[1];
            }
        }
        nt_policy_val v{};
        v.action = params.action;
        v.rate = params.rate;
        v.burst_ns = params.burst_ns;
        v.horizon_ns = params.horizon_ns;
        dp_.policy_put(key.to_abi(), v);
        in_kernel_[key] = params;
    }
    // New entries are in the map before the programs look for them; removed
    // ones are looked up no more before they go.
    dp_.set_policy_kinds(table_.kinds());
    for (auto it = in_kernel_.begin(); it != in_kernel_.end();) {
        if (want.count(it->first)) {
            ++it;
            continue;
        }
        if (auto old = dp_.policy_get(it->first.to_abi())) {
            dropped_packets_gone_ += old->dropped_packets[0] + old->dropped_packets[1];
            dropped_bytes_gone_ += old->dropped_bytes[0] + old->dropped_bytes[1];
        }
        dp_.policy_remove(it->first.to_abi());
        it = in_kernel_.erase(it);
    }
    sync_qdiscs();
}

void KernelEnforcer::sync_qdiscs() {
    if (!fq_available_)
        return;
    bool throttling = false;
    for (const auto& [key, params] : in_kernel_)
        throttling |= params.action == NT_POLICY_THROTTLE;
    if (throttling) {
        for (uint32_t ifindex : dp_.lan_interfaces()) {
            if (edt_ifaces_.count(ifindex))
                continue;
            const std::string why = qdisc_->install_fq(ifindex);
            if (!why.empty()) {
                spdlog::warn("enforce: ifindex {}: {}; throttled egress there is policed, not paced", ifindex,
                             why);
                continue;
            }
            dp_.set_edt_interface(ifindex, true);
            edt_ifaces_.insert(ifindex);
        }
        return;
    }
    for (uint32_t ifindex : edt_ifaces_) {
        dp_.set_edt_interface(ifindex, false);
        qdisc_->remove_fq(ifindex);
    }
    edt_ifaces_.clear();
}

void KernelEnforcer::add_status(Status& m) const {
    uint64_t packets = dropped_packets_gone_, bytes = dropped_bytes_gone_;
    for (const auto& [key, params] : in_kernel_)
        if (auto v = dp_.policy_get(key.to_abi())) {
            packets += v->dropped_packets[0] + v->dropped_packets[1];
            bytes += v->dropped_bytes[0] + v->dropped_bytes[1];
        }
    m["enforce_throttle_mode"] = StatusValue(throttle_mode());
    m["enforce_active"] = StatusValue(static_cast<uint32_t>(table_.size()));
    m["enforce_hosts"] = StatusValue(static_cast<uint32_t>(in_kernel_.size()));
    m["enforce_dropped_packets"] = StatusValue(packets);
    m["enforce_dropped_bytes"] = StatusValue(bytes);
}

std::unique_ptr<KernelEnforcer> make_kernel_enforcer(Datapath& dp, UserIdOf user_id) {
    return std::make_unique<KernelEnforcer>(dp, std::move(user_id));
}

} // namespace nettally
