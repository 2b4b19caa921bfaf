// Collector: see collector.h.
#include "core/collector.h"
#include "core/collector_keys.h"

#include <algorithm>
#include <arpa/inet.h>
#include <optional>
#include <set>

namespace nettally {
namespace {

// The kernel's host key as bytes: the host-class reconciliation offsets are kept per raw key.
std::string raw_host_key(const nt_host_key& k) {
    return {reinterpret_cast<const char*>(&k), sizeof(k)};
}

// a - b figure by figure; nullopt when some figure of b exceeds a's.
std::optional<Counts> minus(const Counts& a, const Counts& b) {
    if (!b.all_le(a))
        return std::nullopt;
    return Counts(a.packets - b.packets, a.l2 - b.l2, a.l3 - b.l3, a.l4 - b.l4, a.payload - b.payload);
}

// Σ classes per interface and direction.
std::map<IfaceKey, Counts> class_sums(const std::vector<ClassEntry>& raw) {
    std::map<IfaceKey, Counts> out;
    for (const auto& c : raw)
        if (c.key.dir < NT_DIR_MAX)
            out[{c.key.ifindex, static_cast<uint8_t>(c.key.dir)}] += c.counts;
    return out;
}

// What tells two reads of the class counters apart: every key and figure.
std::vector<uint64_t> class_figures(const std::vector<ClassEntry>& raw, const Counts& overflow) {
    std::vector<uint64_t> out{overflow.packets, overflow.l2};
    for (const auto& c : raw)
        out.insert(out.end(), {c.key.ifindex, c.key.dir, c.key.class_id, c.counts.packets, c.counts.l2,
                               c.counts.l3, c.counts.l4, c.counts.payload});
    return out;
}

} // namespace

void Collector::set_interfaces(const std::vector<InterfaceInfo>& ifaces) {
    std::map<uint32_t, std::string> next;
    for (const auto& i : ifaces) {
        // Same ifindex under a new name: a rename. Move the totals along
        // unless the new name already has its own.
        auto old = names_.find(i.ifindex);
        if (old != names_.end() && old->second != i.name && !ifaces_.count(i.name)) {
            auto node = ifaces_.extract(old->second);
            node.key() = i.name;
            ifaces_.insert(std::move(node));
            std::map<std::string, HostTotals> rekeyed;
            for (auto& [key, h] : hosts_) {
                if (h.interface == old->second)
                    h.interface = i.name;
                rekeyed[ledger::host_id(h.interface, h.mac, h.ip)] = std::move(h);
            }
            hosts_ = std::move(rekeyed);
            std::map<std::string, UserTotals> users;
            for (auto& [key, u] : users_) {
                if (u.interface == old->second)
                    u.interface = i.name;
                users[ledger::user_key(u.interface, u.user)] = std::move(u);
            }
            users_ = std::move(users);
            std::map<std::string, ClassTotals> classes;
            for (auto& [key, c] : classes_) {
                if (c.interface == old->second)
                    c.interface = i.name;
                classes[ledger::class_key(c.interface, c.dir, c.id)] = std::move(c);
            }
            classes_ = std::move(classes);
            std::map<std::string, HostClassTotals> host_classes;
            for (auto& [key, c] : host_classes_) {
                if (c.interface == old->second)
                    c.interface = i.name;
                host_classes[ledger::host_class_key(ledger::host_id(c.interface, c.mac, c.ip), c.id)] =
                    std::move(c);
            }
            host_classes_ = std::move(host_classes);
        }
        next[i.ifindex] = i.name;
    }
    for (auto& [name, st] : ifaces_)
        st.present = false;
    for (const auto& i : ifaces) {
        auto& st = ifaces_[i.name];
        st.info = i;
        st.present = true;
    }
    names_ = std::move(next);
}

const std::string& Collector::name_of(uint32_t ifindex) const {
    static const std::string unknown;
    auto it = names_.find(ifindex);
    return it == names_.end() ? unknown : it->second;
}

uint64_t Collector::to_unix_us(uint64_t stamp_ns) const {
    if (!stamp_ns)
        return 0;
    const int64_t age_us =
        (static_cast<int64_t>(last_clock_.kernel_ns) - static_cast<int64_t>(stamp_ns)) / 1000;
    return static_cast<uint64_t>(static_cast<int64_t>(last_clock_.realtime_us) - age_us);
}

void Collector::poll(const PollClock& clock) {
    // Order matters: totals, then categories, then totals again (see reconcile()).
    IfaceSnapshot before = reader_.read_ifaces();
    reader_.read_flows(flows_);
    std::vector<ClassEntry> classes_low, classes_high;
    Counts class_overflow;
    IfaceSnapshot after = read_ifaces_and_classes(classes_low, classes_high, class_overflow);
    HostRead hr;
    read_hosts_and_users(hr);

    last_clock_ = clock;
    check_reconciliation(before, after);
    check_class_reconciliation(after, classes_low, classes_high);
    check_host_class_reconciliation(hr);

    for (const auto& [key, counters] : after) {
        auto n = names_.find(key.first);
        if (n == names_.end() || key.second >= NT_DIR_MAX)
            continue;
        DirTotals& d = ifaces_[n->second].dir[key.second];
        d.total.observe(counters.total);
        for (size_t b = 0; b < kBucketCount; b++)
            d.bucket[b].observe(counters.bucket[b]);
        d.host_overflow.observe(Counts(counters.host_overflow, 0, 0, 0, 0));
    }
    update_hosts(hr.hosts);
    update_users(hr.users, hr.user_overflow);
    update_classes(classes_high, class_overflow);
    update_host_classes(hr.host_classes_high, hr.hc_overflow);
    track_overflow(after);
    evict(clock);
    stats_.polls++;
}

namespace {

// Per user entry and direction, the packets: what tells two reads of the user counters apart.
std::vector<uint64_t> user_packets(const std::vector<UserEntry>& users, const UserEntry& overflow) {
    std::vector<uint64_t> out{overflow.sent.packets, overflow.received.packets};
    for (const auto& u : users) {
        out.push_back(u.key.ifindex);
        out.push_back(u.key.user);
        out.push_back(u.sent.packets);
        out.push_back(u.received.packets);
    }
    return out;
}

// What tells two reads of the host-class counters apart: every key's packets.
std::vector<uint64_t> host_class_packets(const std::vector<HostClassEntry>& raw,
                                         const HostClassEntry& overflow) {
    std::vector<uint64_t> out{overflow.sent.packets, overflow.received.packets};
    for (const auto& e : raw) {
        const std::string k = raw_host_key(e.key.host);
        for (const char c : k)
            out.push_back(static_cast<unsigned char>(c));
        out.insert(out.end(), {e.key.class_id, e.sent.packets, e.sent.l2, e.received.packets, e.received.l2});
    }
    return out;
}

// Σ classes per host (raw key), sent and received.
std::map<std::string, std::array<Counts, 2>> host_class_sums(const std::vector<HostClassEntry>& raw) {
    std::map<std::string, std::array<Counts, 2>> out;
    for (const auto& e : raw) {
        auto& s = out[raw_host_key(e.key.host)];
        s[0] += e.sent;
        s[1] += e.received;
    }
    return out;
}

} // namespace

void Collector::read_hosts_and_users(HostRead& r) {
    // The programs count a lan packet for its host, then its user, then its host and class, in
    // the same run, so users and host classes read before and after the hosts, unchanged, mean
    // the hosts hold exactly their packets: Σ users + unbound == hosts and, per host, Σ classes ==
    // the host since classification began, at every poll, under traffic too. Without subscribers
    // or classes those maps are empty and the second read costs little.
    r.users = reader_.read_users();
    r.user_overflow = reader_.read_user_overflow();
    r.host_classes_low = reader_.read_host_classes();
    r.hc_overflow = reader_.read_host_class_overflow();
    auto users_before = user_packets(r.users, r.user_overflow);
    auto hc_before = host_class_packets(r.host_classes_low, r.hc_overflow);
    for (int attempt = 0;; attempt++) {
        r.hosts = reader_.read_hosts();
        r.users = reader_.read_users();
        r.user_overflow = reader_.read_user_overflow();
        r.host_classes_high = reader_.read_host_classes();
        r.hc_overflow = reader_.read_host_class_overflow();
        auto users_after = user_packets(r.users, r.user_overflow);
        auto hc_after = host_class_packets(r.host_classes_high, r.hc_overflow);
        const bool users_same = users_after == users_before, hc_same = hc_after == hc_before;
        if (users_same && hc_same)
            return;
        if (attempt == 7) {
            // Published as read: off by the packets in between (host classes: checked as bracketed).
            if (!users_same)
                stats_.user_snapshot_misses++;
            if (!hc_same)
                stats_.host_class_snapshot_misses++;
            return;
        }
        users_before = std::move(users_after);
        hc_before = std::move(hc_after);
        r.host_classes_low = r.host_classes_high;
    }
}

void Collector::update_host_classes(const std::vector<HostClassEntry>& raw, const HostClassEntry& overflow) {
    host_class_overflow_[0].observe(overflow.sent);
    host_class_overflow_[1].observe(overflow.received);
    for (const auto& e : raw) {
        const std::string& iface = name_of(e.key.host.ifindex);
        if (iface.empty())
            continue;
        const std::string mac = format_mac(e.key.host.mac);
        const std::string ip = format_addr(e.key.host.family, e.key.host.addr);
        auto [it, added] = host_classes_.try_emplace(
            ledger::host_class_key(ledger::host_id(iface, mac, ip), e.key.class_id));
        HostClassTotals& t = it->second;
        if (added) {
            t.interface = iface;
            t.mac = mac;
            t.ip = ip;
            t.id = e.key.class_id;
            auto n = class_names_.find(t.id);
            t.gone = n == class_names_.end();
            t.name = t.gone ? "class " + std::to_string(t.id) : n->second;
        }
        t.sent.observe(e.sent);
        t.received.observe(e.received);
    }
}

ReconcileOutcome reconcile_classes(const ClassReconcileInput& in) {
    const auto classified = minus(in.total, in.offset);
    if (!classified)
        return ReconcileOutcome::Violated;
    if (*classified == in.classes_low && in.classes_low == in.classes_high)
        return ReconcileOutcome::Exact;
    if (in.classes_low.all_le(*classified) && classified->all_le(in.classes_high))
        return ReconcileOutcome::Bracketed;
    return ReconcileOutcome::Violated;
}

namespace {

// One check of a class line (interface or host), counted in `checks` and in `exact` or
// `violations`: "" when it held, else what broke ("{total} - unclassified {offset} but classes
// {low} .. {high}").
std::string check_class_line(const ClassReconcileInput& in, uint64_t& checks, uint64_t& exact,
                             uint64_t& violations) {
    checks++;
    switch (reconcile_classes(in)) {
    case ReconcileOutcome::Exact:
        exact++;
        return "";
    case ReconcileOutcome::Bracketed:
        return "";
    case ReconcileOutcome::Violated:
        break;
    }
    violations++;
    return "{" + in.total.to_string() + "} - unclassified {" + in.offset.to_string() + "} but classes {" +
           in.classes_low.to_string() + "} .. {" + in.classes_high.to_string() + "}";
}

} // namespace

void Collector::check_host_class_reconciliation(const HostRead& r) {
    if (class_names_.empty())
        return; // no ruleset: nothing is classified
    if (r.hc_overflow.sent.packets || r.hc_overflow.received.packets)
        return; // some host's class entry is missing: the line cannot hold
    const auto lows = host_class_sums(r.host_classes_low), highs = host_class_sums(r.host_classes_high);
    for (const auto& h : r.hosts) {
        const std::string key = raw_host_key(h.key);
        const std::array<Counts, 2> totals{h.sent, h.received};
        auto l = lows.find(key);
        auto hi = highs.find(key);
        const std::array<Counts, 2> low = l == lows.end() ? std::array<Counts, 2>{} : l->second;
        const std::array<Counts, 2> high = hi == highs.end() ? std::array<Counts, 2>{} : hi->second;
        auto off = host_class_offsets_.find(key);
        if (off == host_class_offsets_.end()) {
            // First sight with classes on: what the host holds beyond its classes was counted
            // before classification began.
            if (low == high) {
                auto s = minus(totals[0], high[0]);
                auto rv = minus(totals[1], high[1]);
                if (s && rv)
                    host_class_offsets_[key] = {*s, *rv};
            }
            continue;
        }
        for (size_t d = 0; d < 2; d++) {
            ClassReconcileInput in;
            in.offset = off->second[d];
            in.total = totals[d];
            in.classes_low = low[d];
            in.classes_high = high[d];
            const std::string broken =
                check_class_line(in, stats_.host_class_reconcile_checks, stats_.host_class_reconcile_exact,
                                 stats_.host_class_reconcile_violations);
            if (broken.empty())
                continue;
            stats_.last_host_class_violation =
                "host " + format_mac(h.key.mac) + " " + format_addr(h.key.family, h.key.addr) +
                " on ifindex " + std::to_string(h.key.ifindex) + (d ? " received" : " sent") + ": " + broken;
            if (on_violation_)
                on_violation_("host classes: " + stats_.last_host_class_violation);
        }
    }
}

IfaceSnapshot Collector::read_ifaces_and_classes(std::vector<ClassEntry>& low, std::vector<ClassEntry>& high,
                                                 Counts& overflow) {
    // The programs add a packet to the interface total, then to its class, in the same run: class
    // counters read before and after the totals, unchanged, mean the totals hold exactly the
    // classes' packets (plus the offset). Without classes the class map is empty and costs little.
    low = reader_.read_classes();
    Counts low_overflow = reader_.read_class_overflow();
    for (int attempt = 0;; attempt++) {
        IfaceSnapshot after = reader_.read_ifaces();
        high = reader_.read_classes();
        overflow = reader_.read_class_overflow();
        if (class_figures(high, overflow) == class_figures(low, low_overflow))
            return after;
        if (attempt == 7) {
            stats_.class_snapshot_misses++; // checked as bracketed: low <= total <= high
            return after;
        }
        low = high;
        low_overflow = overflow;
    }
}

void Collector::set_classes(const std::map<uint32_t, std::string>& active, uint64_t version,
                            uint32_t serial) {
    class_names_ = active;
    rules_version_ = version;
    for (const auto& [id, name] : active)
        seen_class_names_[id] = name;
    if (serial != 0) {
        std::erase_if(serial_versions_, [serial](const auto& e) { return e.first == serial; });
        serial_versions_.emplace_back(serial, version);
        // Flows live minutes (flows.active_timeout): the last 64 loads cover them.
        constexpr size_t kKeep = 64;
        if (serial_versions_.size() > kKeep)
            serial_versions_.erase(serial_versions_.begin());
    }
    for (auto& [key, c] : classes_) {
        auto n = active.find(c.id);
        c.gone = n == active.end();
        if (!c.gone)
            c.name = n->second;
    }
    for (auto& [key, c] : host_classes_) {
        auto n = active.find(c.id);
        c.gone = n == active.end();
        if (!c.gone)
            c.name = n->second;
    }
}

Collector::FlowClass Collector::flow_class(const FlowEntry& f) const {
    FlowClass c;
    if (class_names_.empty())
        return c;
    c.version = rules_version_;
    if (f.cls_serial == 0)
        return c;
    c.classified = true;
    c.id = f.cls_id;
    for (const auto& [serial, version] : serial_versions_)
        if (serial == f.cls_serial)
            c.version = version;
    if (auto n = class_names_.find(c.id); n != class_names_.end())
        c.name = n->second;
    else if (auto m = seen_class_names_.find(c.id); m != seen_class_names_.end())
        c.name = m->second;
    else
        c.name = "class " + std::to_string(c.id);
    return c;
}

void Collector::classes_started() {
    class_offsets_.clear();
    host_class_offsets_.clear();
}

void Collector::update_classes(const std::vector<ClassEntry>& raw, const Counts& overflow) {
    class_overflow_.observe(overflow);
    for (const auto& e : raw) {
        const std::string& name = name_of(e.key.ifindex);
        if (name.empty() || e.key.dir >= NT_DIR_MAX)
            continue;
        const auto dir = static_cast<uint8_t>(e.key.dir);
        auto [it, added] = classes_.try_emplace(ledger::class_key(name, dir, e.key.class_id));
        ClassTotals& c = it->second;
        if (added) {
            c.interface = name;
            c.dir = dir;
            c.id = e.key.class_id;
            auto n = class_names_.find(c.id);
            c.gone = n == class_names_.end();
            c.name = c.gone ? "class " + std::to_string(c.id) : n->second;
        }
        c.counts.observe(e.counts);
    }
}

void Collector::check_class_reconciliation(const IfaceSnapshot& after, const std::vector<ClassEntry>& low,
                                           const std::vector<ClassEntry>& high) {
    if (class_names_.empty())
        return; // no ruleset: nothing is classified
    const auto lows = class_sums(low), highs = class_sums(high);
    for (const auto& [key, a] : after) {
        ClassReconcileInput in;
        in.total = a.total;
        auto l = lows.find(key);
        auto h = highs.find(key);
        in.classes_low = l == lows.end() ? Counts{} : l->second;
        in.classes_high = h == highs.end() ? Counts{} : h->second;
        auto off = class_offsets_.find(key);
        if (off == class_offsets_.end()) {
            // First sight with classes on: what the total holds beyond the classes was counted
            // before classification started here.
            if (in.classes_low == in.classes_high)
                if (auto o = minus(in.total, in.classes_high))
                    class_offsets_[key] = *o;
            continue;
        }
        in.offset = off->second;
        const std::string broken =
            check_class_line(in, stats_.class_reconcile_checks, stats_.class_reconcile_exact,
                             stats_.class_reconcile_violations);
        if (broken.empty())
            continue;
        stats_.last_class_violation = "ifindex " + std::to_string(key.first) + " " +
                                      std::string(to_string(static_cast<Direction>(key.second))) +
                                      ": total " + broken;
        if (on_violation_)
            on_violation_("classes: " + stats_.last_class_violation);
    }
}

void Collector::forget_interface(uint32_t ifindex) {
    std::vector<nt_flow_key> keys;
    std::vector<FlowEntry> live;
    for (auto& f : flows_) {
        if (f.key.ifindex == ifindex)
            keys.push_back(f.key);
        else
            live.push_back(std::move(f));
    }
    if (!keys.empty())
        for (const auto& f : reader_.evict_flows(keys)) {
            stats_.flows_evicted++;
            if (const std::string& n = name_of(f.key.ifindex); !n.empty() && f.key.dir < NT_DIR_MAX)
                finished_[n][f.key.dir] += f.counts;
            if (on_flow_finished_)
                on_flow_finished_(f, name_of(f.key.ifindex));
        }
    flows_ = std::move(live);
    for (uint8_t d = 0; d < NT_DIR_MAX; d++) {
        evicted_.erase({ifindex, d});
        class_offsets_.erase({ifindex, d});
    }
    if (auto n = names_.find(ifindex); n != names_.end()) {
        if (auto st = ifaces_.find(n->second); st != ifaces_.end())
            st->second.present = false;
        names_.erase(n);
    }
}

Counts Collector::finished(const std::string& interface, uint8_t dir) const {
    auto it = finished_.find(interface);
    return it == finished_.end() || dir >= NT_DIR_MAX ? Counts{} : it->second[dir];
}

void Collector::update_hosts(const std::vector<HostEntry>& raw) {
    for (const auto& h : raw) {
        const std::string& iface = name_of(h.key.ifindex);
        if (iface.empty())
            continue;
        const std::string mac = format_mac(h.key.mac);
        const std::string ip = format_addr(h.key.family, h.key.addr);
        auto& t = hosts_[ledger::host_id(iface, mac, ip)];
        if (t.interface.empty()) {
            t.interface = iface;
            t.mac = mac;
            t.ip = ip;
        }
        t.sent.observe(h.sent);
        t.received.observe(h.received);
        const uint64_t first = to_unix_us(h.first_ns), last = to_unix_us(h.last_ns);
        if (first && (!t.first_us || first < t.first_us))
            t.first_us = first;
        t.last_us = std::max(t.last_us, last);
    }
}

std::vector<WanDelta> Collector::credit_wan(const std::vector<WanDelta>& deltas) {
    std::vector<WanDelta> lost;
    if (deltas.empty())
        return lost;
    // One pass over the hosts per poll, not one per delta: each IPv4 address's most recently
    // seen host (the same address behind two MACs or interfaces: the one seen last).
    std::map<uint32_t, HostTotals*> by_addr;
    for (auto& [id, h] : hosts_) {
        in_addr a{};
        if (inet_pton(AF_INET, h.ip.c_str(), &a) != 1)
            continue;
        HostTotals*& best = by_addr[a.s_addr];
        if (!best || h.last_us > best->last_us)
            best = &h;
    }
    for (const auto& d : deltas) {
        auto it = by_addr.find(d.addr);
        if (it == by_addr.end()) {
            lost.push_back(d);
            continue;
        }
        (d.dir == NT_DIR_EGRESS ? it->second->wan_sent : it->second->wan_received) += d.counts;
    }
    return lost;
}

std::set<uint32_t> Collector::host_addresses() const {
    std::set<uint32_t> out;
    for (const auto& [id, h] : hosts_) {
        in_addr a{};
        if (inet_pton(AF_INET, h.ip.c_str(), &a) == 1)
            out.insert(a.s_addr);
    }
    return out;
}

std::set<uint32_t> Collector::wan_ifindexes() const {
    std::set<uint32_t> out;
    for (const auto& [name, st] : ifaces_)
        if (st.present && st.info.role == "wan")
            out.insert(st.info.ifindex);
    return out;
}

void Collector::update_users(const std::vector<UserEntry>& raw, const UserEntry& overflow) {
    for (const auto& u : raw) {
        const std::string& iface = name_of(u.key.ifindex);
        if (iface.empty())
            continue;
        std::string user;
        if (u.key.user != NT_USER_UNBOUND) {
            user = user_ids_ ? user_ids_->name_of(u.key.user) : std::string();
            if (user.empty()) // an id whose name is lost: kept apart, never merged into unbound
                user = "#" + std::to_string(u.key.user);
        }
        auto& t = users_[ledger::user_key(iface, user)];
        if (t.interface.empty()) {
            t.interface = iface;
            t.user = user;
        }
        t.sent.observe(u.sent);
        t.received.observe(u.received);
    }
    user_overflow_[0].observe(overflow.sent);
    user_overflow_[1].observe(overflow.received);
}

void Collector::track_overflow(const IfaceSnapshot& after) {
    uint64_t overflow = 0;
    for (const auto& [key, c] : after)
        overflow += c.bucket[NT_BUCKET_FLOW_OVERFLOW].packets;
    const bool growing = overflow > overflow_seen_;
    if (growing && !stats_.flow_map_full) {
        stats_.overflow_episodes++;
        if (on_overflow_)
            on_overflow_("flow map full: " + std::to_string(overflow - overflow_seen_) +
                         " packet(s) went to the flow_overflow bucket since the last poll (" +
                         std::to_string(flows_.size()) + " live flows)");
    }
    stats_.flow_map_full = growing;
    overflow_seen_ = overflow;
}

void Collector::evict(const PollClock& clock) {
    const auto now = static_cast<int64_t>(clock.kernel_ns);
    const int64_t idle = timeouts_.idle.count(), active = timeouts_.active.count();
    // The live flows stay where they are (no second table of the same size): the expired
    // keys are noted, then the table is compacted in place.
    const auto finished = [&](const FlowEntry& f) {
        const bool is_idle = now - static_cast<int64_t>(f.last_ns) >= idle;
        const bool too_long = f.first_ns && now - static_cast<int64_t>(f.first_ns) >= active;
        return is_idle || too_long;
    };
    std::vector<nt_flow_key> expired;
    for (const auto& f : flows_)
        if (finished(f))
            expired.push_back(f.key);
    if (expired.empty())
        return;
    flows_.erase(std::remove_if(flows_.begin(), flows_.end(), finished), flows_.end());
    // The final values come from the kernel at deletion time, so packets that
    // arrived since the read above are in them.
    std::set<IfaceKey> touched;
    for (const auto& f : reader_.evict_flows(expired)) {
        const IfaceKey key{f.key.ifindex, f.key.dir};
        evicted_[key].counts += f.counts;
        evicted_[key].flows++;
        touched.insert(key);
        if (const std::string& n = name_of(f.key.ifindex); !n.empty() && f.key.dir < NT_DIR_MAX)
            finished_[n][f.key.dir] += f.counts;
        stats_.flows_evicted++;
        if (on_flow_finished_)
            on_flow_finished_(f, name_of(f.key.ifindex));
    }
    // Kept beside the counters at once: a crash before the next state save loses nothing.
    for (const auto& key : touched)
        reader_.write_evicted(key, evicted_[key]);
}

void Collector::check_reconciliation(const IfaceSnapshot& before, const IfaceSnapshot& after) {
    std::map<IfaceKey, Counts> flow_sums;
    for (const auto& [key, e] : evicted_)
        flow_sums[key] = e.counts;
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
        const ReconcileOutcome outcome = reconcile(in);
        if (outcome != ReconcileOutcome::Violated)
            reconcile_suspects_.erase(key);
        switch (outcome) {
        case ReconcileOutcome::Exact:
            stats_.reconcile_exact++;
            break;
        case ReconcileOutcome::Bracketed:
            break;
        case ReconcileOutcome::Violated: {
            // The program adds a packet to the interface total, then to its flow: a CPU stalled
            // between the two (a vCPU the host preempts) can leave one poll's reads on either side
            // of them. Both sides are cumulative, so a packet really missing from the flows fails
            // every later check too, and one that was only in flight is in the next poll's flows.
            if (reconcile_suspects_.insert(key).second)
                break;
            stats_.reconcile_violations++;
            std::string msg = "ifindex " + std::to_string(key.first) + " " +
                              std::string(to_string(static_cast<Direction>(key.second))) +
                              ": total before {" + in.total_before.to_string() + "} after {" +
                              in.total_after.to_string() + "} but flows {" + in.flows.to_string() +
                              "} + buckets {" + in.buckets_after.to_string() + "}";
            stats_.last_violation = msg;
            if (on_violation_)
                on_violation_(msg);
            break;
        }
        }
    }
    // An interface no longer read (gone, forgotten) leaves no suspicion to a link that reuses its ifindex.
    std::erase_if(reconcile_suspects_, [&](const IfaceKey& k) { return !after.contains(k); });
}

} // namespace nettally
