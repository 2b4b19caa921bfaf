// org.nettally.Accounting1 method implementations. See accounting.h and
// daemon/bus/org.nettally.Accounting1.xml for the contract.
#include "bus/accounting.h"

#include "bus/access.h"
#include "core/config.h"
#include "os/error.h"

#include <algorithm>
#include <spdlog/spdlog.h>
#include <variant>

namespace nettally {
namespace {

void check_top(uint32_t top) {
    if (top == 0 || top > kMaxTop)
        throw sdbus::Error(kErrInvalidArgument, "top must be between 1 and " + std::to_string(kMaxTop) +
                                                    ", got " + std::to_string(top));
}

SortKey check_sort(const std::string& key, bool allow_first_seen) {
    auto k = parse_sort_key(key, allow_first_seen);
    if (!k)
        throw sdbus::Error(kErrInvalidArgument, "unknown sort key '" + key +
                                                    "' (use packets, l2, l3, l4, payload, " +
                                                    (allow_first_seen ? "first_seen, " : "") + "last_seen)");
    return *k;
}

} // namespace

AccountingService::AccountingService(sdbus::IConnection& conn, const Collector& collector, ServiceHooks hooks)
    : AdaptorInterfaces(conn, kObjectPath), collector_(collector), hooks_(std::move(hooks)) {
    registerAdaptor();
}

AccountingService::~AccountingService() {
    unregisterAdaptor();
}

AccountingService::C AccountingService::to_dbus(const Counts& c) {
    return C(c.packets, c.l2, c.l3, c.l4, c.payload);
}

std::map<std::string, sdbus::Variant> AccountingService::GetStatus() {
    std::map<std::string, sdbus::Variant> out;
    for (const auto& [key, value] : hooks_.status())
        out.emplace(key, std::visit([](const auto& v) { return sdbus::Variant(v); }, value));
    return out;
}

std::vector<bus::WireInterface> AccountingService::ListInterfaces() {
    std::vector<bus::WireInterface> out;
    for (const auto& [name, st] : collector_.interfaces()) {
        std::map<std::string, C> unattributed;
        for (uint8_t d = 0; d < NT_DIR_MAX; d++)
            for (size_t b = 0; b < kBucketCount; b++)
                unattributed[std::string(to_string(static_cast<Direction>(d))) + "." +
                             std::string(bucket_name(b))] = to_dbus(st.dir[d].bucket[b].total());
        out.emplace_back(name, st.info.role, st.present ? st.info.ifindex : 0u,
                         to_dbus(st.dir[NT_DIR_INGRESS].total.total()),
                         to_dbus(st.dir[NT_DIR_EGRESS].total.total()), std::move(unattributed),
                         to_dbus(collector_.finished(name, NT_DIR_INGRESS)),
                         to_dbus(collector_.finished(name, NT_DIR_EGRESS)));
    }
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, std::string, AccountingService::C, AccountingService::C,
                          uint64_t, uint64_t, AccountingService::C, AccountingService::C>>
AccountingService::ListHosts(const std::string& sort_key, const uint32_t& top) {
    const SortKey key = check_sort(sort_key, false);
    check_top(top);
    std::vector<const HostTotals*> hosts;
    std::vector<uint64_t> values;
    for (const auto& [id, h] : collector_.hosts()) {
        hosts.push_back(&h);
        values.push_back(key == SortKey::LastSeen ? h.last_us
                                                  : sort_value(h.sent.total() + h.received.total(), key));
    }
    std::vector<sdbus::Struct<std::string, std::string, std::string, C, C, uint64_t, uint64_t, C, C>> out;
    for (size_t i : top_n(values, top)) {
        const HostTotals& h = *hosts[i];
        out.emplace_back(h.mac, h.ip, h.interface, to_dbus(h.sent.total()), to_dbus(h.received.total()),
                         h.first_us, h.last_us, to_dbus(h.wan_sent), to_dbus(h.wan_received));
    }
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, uint8_t, std::string, uint16_t, std::string, uint16_t,
                          AccountingService::C, uint64_t, uint64_t, uint8_t, std::string>>
AccountingService::ListFlows(const std::string& sort_key, const uint32_t& top) {
    const SortKey key = check_sort(sort_key, true);
    check_top(top);
    const auto& flows = collector_.flows();
    std::vector<uint64_t> values;
    values.reserve(flows.size());
    for (const auto& f : flows)
        values.push_back(key == SortKey::LastSeen    ? f.last_ns
                         : key == SortKey::FirstSeen ? f.first_ns
                                                     : sort_value(f.counts, key));

    std::vector<sdbus::Struct<std::string, std::string, uint8_t, std::string, uint16_t, std::string, uint16_t,
                              C, uint64_t, uint64_t, uint8_t, std::string>>
        out;
    for (size_t i : top_n(values, top)) {
        const auto& f = flows[i];
        out.emplace_back(collector_.name_of(f.key.ifindex),
                         std::string(to_string(static_cast<Direction>(f.key.dir))), f.key.proto,
                         format_addr(f.key.family, f.key.src), f.key.sport,
                         format_addr(f.key.family, f.key.dst), f.key.dport, to_dbus(f.counts),
                         collector_.to_unix_us(f.first_ns), collector_.to_unix_us(f.last_ns), f.tcp_flags,
                         collector_.flow_class(f).name);
    }
    return out;
}

std::tuple<std::vector<sdbus::Struct<std::string, std::string, AccountingService::C4, AccountingService::C4,
                                     AccountingService::C4, AccountingService::C4, bool>>,
           std::map<std::string, AccountingService::C4>>
AccountingService::ListCgroups() {
    const CgroupLedger* ledger = hooks_.cgroups ? hooks_.cgroups() : nullptr;
    if (!ledger)
        throw sdbus::Error(kErrFailed, "cgroup accounting is off (set cgroups.enabled: true in the config)");
    auto c4 = [](const Counts& c) { return C4(c.packets, c.l3, c.l4, c.payload); };
    std::vector<sdbus::Struct<std::string, std::string, C4, C4, C4, C4, bool>> rows;
    for (const auto& r : ledger->rows())
        rows.emplace_back(r.path, r.unit, c4(r.total.ingress), c4(r.total.egress), c4(r.self.ingress),
                          c4(r.self.egress), r.gone);
    std::map<std::string, C4> buckets;
    for (size_t b = 0; b < kCgroupBucketCount; ++b) {
        const CgroupCounts c = ledger->bucket(b);
        buckets["ingress." + std::string(cgroup_bucket_name(b))] = c4(c.ingress);
        buckets["egress." + std::string(cgroup_bucket_name(b))] = c4(c.egress);
    }
    return {std::move(rows), std::move(buckets)};
}

std::vector<sdbus::Struct<std::string, uint64_t, uint64_t, std::map<std::string, AccountingService::C>>>
AccountingService::GetHistory(const std::string& period, const std::string& subject_prefix) {
    const auto kind = parse_period_kind(period);
    if (!kind)
        throw sdbus::Error(kErrInvalidArgument, "unknown period '" + period + "' (use day or month)");
    std::vector<sdbus::Struct<std::string, uint64_t, uint64_t, std::map<std::string, C>>> out;
    for (const auto& p : hooks_.history().periods(*kind)) {
        std::map<std::string, C> totals;
        for (const auto& [subject, c] : p.totals)
            if (subject.compare(0, subject_prefix.size(), subject_prefix) == 0)
                totals.emplace(subject, to_dbus(c));
        out.emplace_back(p.label, static_cast<uint64_t>(p.start_us), static_cast<uint64_t>(p.end_us),
                         std::move(totals));
    }
    return out;
}

void AccountingService::Reload() {
    require_privileged(getObject(), "Reload");
    try {
        hooks_.reload();
    } catch (const ConfigError& e) {
        throw sdbus::Error(kErrInvalidConfig, e.what());
    } catch (const SysError& e) {
        throw sdbus::Error(kErrFailed, e.what());
    }
}

} // namespace nettally
