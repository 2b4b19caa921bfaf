// Collector: see collector.h.
#include "core/collector.h"

namespace nettally {

void Collector::set_interfaces(const std::vector<InterfaceInfo>& ifaces) {
    names_.clear();
    for (const auto& i : ifaces) {
        auto& st = ifaces_[i.name];
        st.info = i;
        names_[i.ifindex] = i.name;
    }
}

const std::string& Collector::name_of(uint32_t ifindex) const {
    static const std::string unknown;
    auto it = names_.find(ifindex);
    return it == names_.end() ? unknown : it->second;
}

uint64_t Collector::to_unix_us(uint64_t boot_ns) const {
    if (!boot_ns)
        return 0;
    const int64_t age_us =
        (static_cast<int64_t>(last_clock_.boottime_ns) - static_cast<int64_t>(boot_ns)) / 1000;
    return static_cast<uint64_t>(static_cast<int64_t>(last_clock_.realtime_us) - age_us);
}

void Collector::poll(const PollClock& clock) {
    // Order matters: totals, then categories, then totals again (see reconcile()).
    IfaceSnapshot before = reader_.read_ifaces();
    std::vector<FlowEntry> flows = reader_.read_flows();
    IfaceSnapshot after = reader_.read_ifaces();
    std::vector<HostEntry> hosts = reader_.read_hosts();

    flows_ = std::move(flows);
    hosts_ = std::move(hosts);
    last_clock_ = clock;
    check_reconciliation(before, after);

    for (const auto& [key, counters] : after) {
        auto n = names_.find(key.first);
        if (n == names_.end() || key.second >= NT_DIR_MAX)
            continue;
        DirTotals& d = ifaces_[n->second].dir[key.second];
        d.total.observe(counters.total);
        for (size_t b = 0; b < kBucketCount; b++)
            d.bucket[b].observe(counters.bucket[b]);
        d.host_overflow.observe(counters.host_overflow);
    }
    stats_.polls++;
}

void Collector::check_reconciliation(const IfaceSnapshot& before, const IfaceSnapshot& after) {
    std::map<IfaceKey, Counts> flow_sums;
    for (const auto& f : flows_)
        flow_sums[{f.key.ifindex, f.key.dir}] += f.counts;

    for (const auto& [key, a] : after) {
        ReconcileInput in;
        auto b = before.find(key);
        in.total_before = b == before.end() ? Counts{} : b->second.total;
        in.total_after = a.total;
        in.buckets_after = a.bucket_sum();
        auto fs = flow_sums.find(key);
        in.flows = fs == flow_sums.end() ? Counts{} : fs->second;

        stats_.reconcile_checks++;
        switch (reconcile(in)) {
        case ReconcileOutcome::Exact:
            stats_.reconcile_exact++;
            break;
        case ReconcileOutcome::Bracketed:
            break;
        case ReconcileOutcome::Violated: {
            stats_.reconcile_violations++;
            std::string msg = "ifindex " + std::to_string(key.first) + " " +
                              std::string(to_string(static_cast<Direction>(key.second))) + ": total before {" +
                              in.total_before.to_string() + "} after {" + in.total_after.to_string() +
                              "} but flows {" + in.flows.to_string() + "} + buckets {" +
                              in.buckets_after.to_string() + "}";
            stats_.last_violation = msg;
            if (on_violation_)
                on_violation_(msg);
            break;
        }
        }
    }
}

} // namespace nettally
