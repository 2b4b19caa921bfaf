// KernelEnforcer: the real ActionEnforcer (core/actions.h). Throttle and block
// for host subjects (an IPv4/IPv6 address or a MAC) and user subjects (every
// address or prefix bound to the user when the packet crosses), enforced by the
// TC programs on lan-role interfaces through the unpinned policy map nt_policy
// (bpf/nettally_abi.h):
//   - the host as source: TC ingress of the lan interface (what it uploads);
//   - the host as destination: TC egress of the lan interface (what it downloads).
// Each direction gets the configured rate on its own, measured in wire bytes
// (l2: a capture's frame length, every GSO/GRO segment with its headers).
//   Block:    every packet of the host is dropped (TC_ACT_SHOT / XDP_DROP).
//   Throttle: a token-bucket policer (GCRA: one "theoretical arrival time"
//             per direction, burst ~1 s of rate) drops what exceeds the rate.
//             Where the kernel has the fq qdisc, egress uses EDT instead
//             (skb->tstamp from the same schedule, fq paces it): fq is
//             installed as root qdisc on lan interfaces whose root is the
//             kernel's default, and removed again (default restored) when the
//             last throttle is lifted. Without fq (probed once) policing only.
// Counting: a packet dropped on ingress did arrive and is counted (a capture
// on the interface shows it); a packet dropped on egress never left and is not
// counted. Either way it lands in exactly one category, so the reconciliation
// invariant holds.
//
// Policy lives in an unpinned map: it dies with the programs of this process.
// The enforcer's destructor lifts everything it applied (a clean shutdown
// stops enforcing; the thresholds state re-applies actions at the next start).
//
// Construction, in app/thresholds.cpp (after the Datapath, destroyed before it):
//     std::unique_ptr<KernelEnforcer> enforcer_ = make_kernel_enforcer(datapath);
//     // hand `*enforcer_` to the thresholds engine as its ActionEnforcer&
//     // GetStatus: enforcer_->add_status(status);  (the enforce_* keys)
// All calls come from the one event loop; no threads.
#pragma once

#include "core/actions.h"
#include "core/enforce.h"
#include "core/status.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace nettally {

class Datapath;
class QdiscControl;

class KernelEnforcer final : public ActionEnforcer {
public:
    // Probes fq once; never throws for a missing fq. user_id: see PolicyTable (empty: no
    // subscribers, user subjects refused).
    explicit KernelEnforcer(Datapath& dp, UserIdOf user_id = {});
    ~KernelEnforcer() override; // lifts everything it applied
    KernelEnforcer(const KernelEnforcer&) = delete;
    KernelEnforcer& operator=(const KernelEnforcer&) = delete;

    std::string check(const Subject& subject, ActionKind action, uint64_t rate_bytes_per_s) const override;
    void apply(const std::string& id, const Subject& subject, ActionKind action,
               uint64_t rate_bytes_per_s) override;
    void lift(const std::string& id) override;
    std::vector<std::string> active() const override;

    // "edt" (fq available: throttled egress is paced, ingress policed) or
    // "policer" (both directions policed).
    std::string throttle_mode() const;
    // GetStatus keys: enforce_throttle_mode, enforce_active (threshold ids in force),
    // enforce_hosts (kernel entries), enforce_dropped_packets, enforce_dropped_bytes
    // (dropped by block and the policer since start).
    void add_status(Status& m) const;

private:
    void sync(); // pushes PolicyTable's effective entries to the kernel map
    void sync_qdiscs();

    Datapath& dp_;
    PolicyTable table_;
    std::map<PolicyKey, PolicyParams> in_kernel_;
    std::unique_ptr<QdiscControl> qdisc_;
    bool fq_available_ = false;
    std::string fq_why_not_;
    std::set<uint32_t> edt_ifaces_;     // lan interfaces where we installed fq
    uint64_t dropped_packets_gone_ = 0; // drops counted by entries since removed
    uint64_t dropped_bytes_gone_ = 0;
};

std::unique_ptr<KernelEnforcer> make_kernel_enforcer(Datapath& dp, UserIdOf user_id = {});

} // namespace nettally
