// Collector: the state file's part (see collector.h): to_json and restore.
#include "core/collector.h"
#include "core/collector_keys.h"

#include <set>
#include <stdexcept>
#include <tuple>

namespace nettally {
namespace {

std::string to_hex(const std::string& bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += kDigits[b >> 4];
        out += kDigits[b & 15];
    }
    return out;
}

std::string from_hex(const std::string& hex) {
    if (hex.size() % 2)
        throw std::invalid_argument("odd hex length");
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        throw std::invalid_argument("not a hex digit");
    };
    std::string out;
    for (size_t i = 0; i < hex.size(); i += 2)
        out += static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1]));
    return out;
}

// Collector::to_json's host-class keys.
void add_host_classes_json(nlohmann::json& out, const std::map<std::string, HostClassTotals>& totals,
                           const std::map<std::string, std::array<Counts, 2>>& offsets,
                           const std::array<MonotonicCounts, 2>& overflow) {
    nlohmann::json host_classes = nlohmann::json::array();
    for (const auto& [key, c] : totals)
        host_classes.push_back({{"interface", c.interface},
                                {"mac", c.mac},
                                {"ip", c.ip},
                                {"id", c.id},
                                {"name", c.name},
                                {"gone", c.gone},
                                {"sent", c.sent.to_json()},
                                {"received", c.received.to_json()}});
    nlohmann::json host_offsets = nlohmann::json::array();
    for (const auto& [key, o] : offsets)
        host_offsets.push_back({{"host", to_hex(key)},
                                {"sent", nettally::to_json(o[0])},
                                {"received", nettally::to_json(o[1])}});
    out["host_classes"] = std::move(host_classes);
    out["host_class_offsets"] = std::move(host_offsets);
    out["host_class_overflow"] = {overflow[0].to_json(), overflow[1].to_json()};
}

} // namespace

nlohmann::json Collector::to_json() const {
    nlohmann::json ifaces = nlohmann::json::object();
    for (const auto& [name, st] : ifaces_) {
        nlohmann::json dirs = nlohmann::json::object();
        for (uint8_t d = 0; d < NT_DIR_MAX; d++) {
            nlohmann::json buckets = nlohmann::json::object();
            for (size_t b = 0; b < kBucketCount; b++)
                buckets[std::string(bucket_name(b))] = st.dir[d].bucket[b].to_json();
            dirs[std::string(to_string(static_cast<Direction>(d)))] = {
                {"total", st.dir[d].total.to_json()},
                {"buckets", std::move(buckets)},
                {"host_overflow", st.dir[d].host_overflow.to_json()}};
        }
        ifaces[name] = {{"role", st.info.role}, {"ifindex", st.info.ifindex}, {"dirs", std::move(dirs)}};
    }
    nlohmann::json hosts = nlohmann::json::array();
    for (const auto& [key, h] : hosts_)
        hosts.push_back({{"interface", h.interface},
                         {"mac", h.mac},
                         {"ip", h.ip},
                         {"sent", h.sent.to_json()},
                         {"received", h.received.to_json()},
                         {"wan_sent", nettally::to_json(h.wan_sent)},
                         {"wan_received", nettally::to_json(h.wan_received)},
                         {"first_us", h.first_us},
                         {"last_us", h.last_us}});
    nlohmann::json users = nlohmann::json::array();
    for (const auto& [key, u] : users_)
        users.push_back({{"interface", u.interface},
                         {"user", u.user},
                         {"sent", u.sent.to_json()},
                         {"received", u.received.to_json()}});
    nlohmann::json evicted = nlohmann::json::array();
    for (const auto& [key, e] : evicted_)
        evicted.push_back({{"ifindex", key.first},
                           {"dir", key.second},
                           {"counts", nettally::to_json(e.counts)},
                           {"flows", e.flows}});
    // Finished flows by name, and the live flows' sums at this moment: after
    // a reboot the live ones are gone from the kernel, but their counts are
    // in the totals, so they join the finished ones.
    nlohmann::json finished = nlohmann::json::object(), live = nlohmann::json::object();
    for (const auto& [name, dirs] : finished_)
        finished[name] = {nettally::to_json(dirs[0]), nettally::to_json(dirs[1])};
    std::map<std::string, std::array<Counts, NT_DIR_MAX>> live_sums;
    for (const auto& f : flows_)
        if (const std::string& n = name_of(f.key.ifindex); !n.empty() && f.key.dir < NT_DIR_MAX)
            live_sums[n][f.key.dir] += f.counts;
    for (const auto& [name, dirs] : live_sums)
        live[name] = {nettally::to_json(dirs[0]), nettally::to_json(dirs[1])};
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& [key, c] : classes_)
        classes.push_back({{"interface", c.interface},
                           {"dir", c.dir},
                           {"id", c.id},
                           {"name", c.name},
                           {"gone", c.gone},
                           {"counts", c.counts.to_json()}});
    nlohmann::json offsets = nlohmann::json::array();
    for (const auto& [key, o] : class_offsets_)
        offsets.push_back({{"ifindex", key.first}, {"dir", key.second}, {"counts", nettally::to_json(o)}});
    nlohmann::json out = {{"interfaces", std::move(ifaces)},
                          {"classes", std::move(classes)},
                          {"class_offsets", std::move(offsets)},
                          {"class_overflow", class_overflow_.to_json()},
                          {"hosts", std::move(hosts)},
                          {"evicted", std::move(evicted)},
                          {"finished", std::move(finished)},
                          {"live", std::move(live)},
                          {"flows_evicted", stats_.flows_evicted},
                          {"users", std::move(users)},
                          {"user_overflow", {user_overflow_[0].to_json(), user_overflow_[1].to_json()}}};
    add_host_classes_json(out, host_classes_, host_class_offsets_, host_class_overflow_);
    return out;
}

namespace {

// The saved interface totals (Collector::to_json "interfaces").
std::map<std::string, InterfaceState> interfaces_from_json(const nlohmann::json& list, bool same_counters) {
    std::map<std::string, InterfaceState> ifaces;
    for (const auto& [name, v] : list.items()) {
        InterfaceState st;
        st.info.name = name;
        st.info.role = v.at("role").get<std::string>();
        st.info.ifindex = v.at("ifindex").get<uint32_t>();
        for (uint8_t d = 0; d < NT_DIR_MAX; d++) {
            const auto& dj = v.at("dirs").at(std::string(to_string(static_cast<Direction>(d))));
            st.dir[d].total.restore(dj.at("total"), same_counters);
            for (size_t b = 0; b < kBucketCount; b++)
                st.dir[d].bucket[b].restore(dj.at("buckets").at(std::string(bucket_name(b))), same_counters);
            st.dir[d].host_overflow.restore(dj.at("host_overflow"), same_counters);
        }
        ifaces[name] = std::move(st);
    }
    return ifaces;
}

// The saved host totals (Collector::to_json "hosts"), keyed by host_id.
std::map<std::string, HostTotals> hosts_from_json(const nlohmann::json& list, bool same_counters) {
    std::map<std::string, HostTotals> hosts;
    for (const auto& hj : list) {
        HostTotals h;
        h.interface = hj.at("interface").get<std::string>();
        h.mac = hj.at("mac").get<std::string>();
        h.ip = hj.at("ip").get<std::string>();
        h.sent.restore(hj.at("sent"), same_counters);
        h.received.restore(hj.at("received"), same_counters);
        // State files from before the WAN figures have none.
        if (hj.contains("wan_sent"))
            h.wan_sent = counts_from_json(hj.at("wan_sent"));
        if (hj.contains("wan_received"))
            h.wan_received = counts_from_json(hj.at("wan_received"));
        h.first_us = hj.at("first_us").get<uint64_t>();
        h.last_us = hj.at("last_us").get<uint64_t>();
        hosts[ledger::host_id(h.interface, h.mac, h.ip)] = std::move(h);
    }
    return hosts;
}

// The saved user totals (Collector::to_json "users"), keyed by user_key; none in older states.
std::map<std::string, UserTotals> users_from_json(const nlohmann::json& j, bool same_counters) {
    std::map<std::string, UserTotals> users;
    if (!j.contains("users"))
        return users;
    for (const auto& uj : j.at("users")) {
        UserTotals u;
        u.interface = uj.at("interface").get<std::string>();
        u.user = uj.at("user").get<std::string>();
        u.sent.restore(uj.at("sent"), same_counters);
        u.received.restore(uj.at("received"), same_counters);
        users[ledger::user_key(u.interface, u.user)] = std::move(u);
    }
    return users;
}

// Finished flows' totals per interface; with new counters the live flows' totals join them.
std::map<std::string, std::array<Counts, NT_DIR_MAX>> finished_from_json(const nlohmann::json& j,
                                                                         bool same_counters) {
    std::map<std::string, std::array<Counts, NT_DIR_MAX>> finished;
    for (const auto& [name, dirs] : j.at("finished").items())
        for (uint8_t d = 0; d < NT_DIR_MAX; d++)
            finished[name][d] = counts_from_json(dirs.at(d));
    if (!same_counters)
        for (const auto& [name, dirs] : j.at("live").items())
            for (uint8_t d = 0; d < NT_DIR_MAX; d++)
                finished[name][d] += counts_from_json(dirs.at(d));
    return finished;
}

} // namespace

namespace {

// The saved class totals (Collector::to_json "classes"), keyed by class_key; none in older states.
std::map<std::string, ClassTotals> classes_from_json(const nlohmann::json& j, bool same_counters) {
    std::map<std::string, ClassTotals> classes;
    if (!j.contains("classes"))
        return classes;
    for (const auto& cj : j.at("classes")) {
        ClassTotals c;
        c.interface = cj.at("interface").get<std::string>();
        c.dir = cj.at("dir").get<uint8_t>();
        if (c.dir >= NT_DIR_MAX)
            throw std::out_of_range("class direction " + std::to_string(c.dir));
        c.id = cj.at("id").get<uint32_t>();
        c.name = cj.at("name").get<std::string>();
        c.gone = cj.at("gone").get<bool>();
        c.counts.restore(cj.at("counts"), same_counters);
        classes[ledger::class_key(c.interface, c.dir, c.id)] = std::move(c);
    }
    return classes;
}

// The saved host-class totals (Collector::to_json "host_classes"); none in older states.
std::map<std::string, HostClassTotals> host_classes_from_json(const nlohmann::json& j, bool same_counters) {
    std::map<std::string, HostClassTotals> out;
    if (!j.contains("host_classes"))
        return out;
    for (const auto& cj : j.at("host_classes")) {
        HostClassTotals c;
        c.interface = cj.at("interface").get<std::string>();
        c.mac = cj.at("mac").get<std::string>();
        c.ip = cj.at("ip").get<std::string>();
        c.id = cj.at("id").get<uint32_t>();
        c.name = cj.at("name").get<std::string>();
        c.gone = cj.at("gone").get<bool>();
        c.sent.restore(cj.at("sent"), same_counters);
        c.received.restore(cj.at("received"), same_counters);
        out[ledger::host_class_key(ledger::host_id(c.interface, c.mac, c.ip), c.id)] = std::move(c);
    }
    return out;
}

// The per-host reconciliation offsets: the same kernel counters only.
std::map<std::string, std::array<Counts, 2>> host_class_offsets_from_json(const nlohmann::json& j,
                                                                          bool same_counters) {
    std::map<std::string, std::array<Counts, 2>> out;
    if (!same_counters || !j.contains("host_class_offsets"))
        return out;
    for (const auto& oj : j.at("host_class_offsets")) {
        std::string key = from_hex(oj.at("host").get<std::string>());
        if (key.size() != sizeof(nt_host_key))
            throw std::invalid_argument("host key of " + std::to_string(key.size()) + " bytes");
        out[std::move(key)] = {counts_from_json(oj.at("sent")), counts_from_json(oj.at("received"))};
    }
    return out;
}

// The class overflow counter of a state; zero in states written before it.
MonotonicCounts class_overflow_from_json(const nlohmann::json& j, bool same_counters) {
    MonotonicCounts out;
    if (j.contains("class_overflow"))
        out.restore(j.at("class_overflow"), same_counters);
    return out;
}

// Everything per host and class a state holds (none in states written before it).
struct HostClassState {
    std::map<std::string, HostClassTotals> totals;
    std::map<std::string, std::array<Counts, 2>> offsets;
    std::array<MonotonicCounts, 2> overflow{};
};

HostClassState host_class_state_from_json(const nlohmann::json& j, bool same_counters) {
    HostClassState s;
    s.totals = host_classes_from_json(j, same_counters);
    s.offsets = host_class_offsets_from_json(j, same_counters);
    if (j.contains("host_class_overflow"))
        for (size_t d = 0; d < 2; d++)
            s.overflow[d].restore(j.at("host_class_overflow").at(d), same_counters);
    return s;
}

// The reconciliation offsets: they hold for the same kernel counters only.
std::map<IfaceKey, Counts> class_offsets_from_json(const nlohmann::json& j, bool same_counters) {
    std::map<IfaceKey, Counts> out;
    if (!same_counters || !j.contains("class_offsets"))
        return out;
    for (const auto& oj : j.at("class_offsets"))
        out[{oj.at("ifindex").get<uint32_t>(), oj.at("dir").get<uint8_t>()}] =
            counts_from_json(oj.at("counts"));
    return out;
}

// The per-user overflow counters (sent, received) of a state; zero in states written before them.
std::array<MonotonicCounts, 2> user_overflow_from_json(const nlohmann::json& j, bool same_counters) {
    std::array<MonotonicCounts, 2> out{};
    if (j.contains("user_overflow"))
        for (size_t d = 0; d < 2; d++)
            out[d].restore(j.at("user_overflow").at(d), same_counters);
    return out;
}

// The restored interfaces, where those declared before the restore keep their present flag and
// info, and those the state does not know are kept as they are.
std::map<std::string, InterfaceState>
merged_interfaces(std::map<std::string, InterfaceState> restored,
                  const std::map<std::string, InterfaceState>& current) {
    for (auto& [name, st] : restored) {
        auto cur = current.find(name);
        if (cur != current.end()) {
            st.info = cur->second.info;
            st.present = cur->second.present;
        }
    }
    for (const auto& [name, st] : current)
        if (!restored.count(name))
            restored[name] = st;
    return restored;
}

} // namespace

void Collector::restore(const nlohmann::json& j, bool same_counters) {
    // Parse everything first; only a fully valid state replaces ours.
    std::map<std::string, InterfaceState> ifaces = interfaces_from_json(j.at("interfaces"), same_counters);
    std::map<std::string, HostTotals> hosts = hosts_from_json(j.at("hosts"), same_counters);
    std::map<std::string, UserTotals> users = users_from_json(j, same_counters);
    std::array<MonotonicCounts, 2> user_overflow = user_overflow_from_json(j, same_counters);
    std::map<std::string, ClassTotals> classes = classes_from_json(j, same_counters);
    std::map<IfaceKey, Counts> class_offsets = class_offsets_from_json(j, same_counters);
    const MonotonicCounts class_overflow = class_overflow_from_json(j, same_counters);
    HostClassState host_class_state = host_class_state_from_json(j, same_counters);
    // Evicted sums belong to the kernel counters they reconcile with.
    std::map<IfaceKey, EvictedSums> saved;
    std::set<IfaceKey> flows_unknown; // states written before the flow count was kept
    if (same_counters)
        for (const auto& ej : j.at("evicted")) {
            const IfaceKey key{ej.at("ifindex").get<uint32_t>(), ej.at("dir").get<uint8_t>()};
            saved[key] = {counts_from_json(ej.at("counts")), ej.value("flows", uint64_t{0})};
            if (!ej.contains("flows"))
                flows_unknown.insert(key);
        }
    uint64_t flows_evicted = j.value("flows_evicted", uint64_t{0});
    std::map<std::string, std::array<Counts, NT_DIR_MAX>> finished = finished_from_json(j, same_counters);

    // Same counters: the pinned sums (nt_evicted) are ahead of the state by the flows evicted
    // after it was saved (a crash in between); those join the finished flows of their
    // interface. A pinned entry behind the state (a pin set from before nt_evicted existed)
    // is written from the state instead.
    std::map<IfaceKey, EvictedSums> evicted;
    std::vector<std::pair<IfaceKey, EvictedSums>> to_pin;
    uint64_t late_flows = 0;
    if (same_counters) {
        std::map<uint32_t, std::string> names;
        for (const auto& [name, st] : ifaces)
            names[st.info.ifindex] = name;
        std::map<IfaceKey, EvictedSums> pinned = reader_.read_evicted();
        std::set<IfaceKey> keys;
        for (const auto& [k, v] : saved)
            keys.insert(k);
        for (const auto& [k, v] : pinned)
            keys.insert(k);
        for (const auto& key : keys) {
            const EvictedSums s = saved.count(key) ? saved.at(key) : EvictedSums{};
            auto p = pinned.find(key);
            const bool ahead =
                p != pinned.end() && s.counts.all_le(p->second.counts) && p->second.flows >= s.flows;
            if (!ahead) {
                evicted[key] = s;
                to_pin.emplace_back(key, s);
                continue;
            }
            evicted[key] = p->second;
            const Counts late = delta_since(p->second.counts, s.counts);
            if (late == Counts{})
                continue;
            auto n = names.find(key.first);
            if (n != names.end() && key.second < NT_DIR_MAX)
                finished[n->second][key.second] += late;
            if (!flows_unknown.count(key)) {
                flows_evicted += p->second.flows - s.flows;
                late_flows += p->second.flows - s.flows;
            }
        }
    }

    ifaces_ = merged_interfaces(std::move(ifaces), ifaces_);
    hosts_ = std::move(hosts);
    users_ = std::move(users);
    user_overflow_ = std::move(user_overflow);
    classes_ = std::move(classes);
    class_offsets_ = std::move(class_offsets);
    class_overflow_ = class_overflow;
    std::tie(host_classes_, host_class_offsets_, host_class_overflow_) = std::forward_as_tuple(
        std::move(host_class_state.totals), std::move(host_class_state.offsets), host_class_state.overflow);
    evicted_ = std::move(evicted);
    finished_ = std::move(finished);
    stats_.flows_evicted = flows_evicted;
    for (const auto& [key, sums] : to_pin)
        reader_.write_evicted(key, sums);
    restored_late_flows_ = late_flows;
}

} // namespace nettally
