// Counter arithmetic: see counters.h.
#include "core/counters.h"

#include "core/enum_names.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <numeric>

namespace nettally {

Counts& Counts::operator+=(const Counts& o) {
    packets += o.packets;
    l2 += o.l2;
    l3 += o.l3;
    l4 += o.l4;
    payload += o.payload;
    return *this;
}

bool Counts::all_le(const Counts& o) const {
    return packets <= o.packets && l2 <= o.l2 && l3 <= o.l3 && l4 <= o.l4 && payload <= o.payload;
}

Counts delta_since(const Counts& now, const Counts& before) {
    auto d = [](uint64_t a, uint64_t b) { return a >= b ? a - b : a; };
    return Counts(d(now.packets, before.packets), d(now.l2, before.l2), d(now.l3, before.l3),
                  d(now.l4, before.l4), d(now.payload, before.payload));
}

uint64_t Counts::get(CountField f) const {
    static constexpr std::array<uint64_t Counts::*, 5> kFields = {&Counts::packets, &Counts::l2, &Counts::l3,
                                                                  &Counts::l4, &Counts::payload};
    return this->*kFields.at(static_cast<size_t>(f));
}

std::string Counts::to_string() const {
    return "packets=" + std::to_string(packets) + " l2=" + std::to_string(l2) + " l3=" + std::to_string(l3) +
           " l4=" + std::to_string(l4) + " payload=" + std::to_string(payload);
}

std::string_view to_string(Direction d) {
    return d == Direction::Ingress ? "ingress" : "egress";
}

std::string_view bucket_name(size_t bucket) {
    // Indexed by enum nt_bucket.
    static constexpr std::array<std::string_view, NT_BUCKET_MAX> kNames = {"non_ip", "unparsable",
                                                                           "flow_overflow"};
    static_assert(NT_BUCKET_NON_IP == 0 && NT_BUCKET_UNPARSABLE == 1 && NT_BUCKET_FLOW_OVERFLOW == 2);
    return bucket < kNames.size() ? kNames[bucket] : "unknown";
}

Counts IfaceCounters::bucket_sum() const {
    return std::accumulate(bucket.begin(), bucket.end(), Counts{});
}

IfaceCounters fold_percpu(std::span<const nt_iface_val> per_cpu) {
    IfaceCounters r;
    for (const auto& v : per_cpu) {
        r.total += Counts(v.total);
        for (size_t b = 0; b < kBucketCount; b++)
            r.bucket[b] += Counts(v.bucket[b]);
        r.host_overflow += v.host_overflow;
    }
    return r;
}

// first_ns == 0 marks a CPU that never saw the entry.
template <typename Entry> static void fold_times(Entry& e, uint64_t first, uint64_t last) {
    if (first && (!e.first_ns || first < e.first_ns))
        e.first_ns = first;
    e.last_ns = std::max(e.last_ns, last);
}

FlowEntry fold_percpu(const nt_flow_key& key, std::span<const nt_flow_val> per_cpu) {
    FlowEntry e;
    e.key = key;
    uint64_t cls_ns = 0;
    for (const auto& v : per_cpu) {
        e.counts += Counts(v.c);
        fold_times(e, v.first_ns, v.last_ns);
        e.tcp_flags |= v.tcp_flags;
        if (v.cls_serial && (!e.cls_serial || v.last_ns > cls_ns)) {
            e.cls_id = v.cls_id;
            e.cls_serial = v.cls_serial;
            cls_ns = v.last_ns;
        }
    }
    return e;
}

HostEntry fold_percpu(const nt_host_key& key, std::span<const nt_host_val> per_cpu) {
    HostEntry e;
    e.key = key;
    for (const auto& v : per_cpu) {
        e.sent += Counts(v.sent);
        e.received += Counts(v.received);
        fold_times(e, v.first_ns, v.last_ns);
    }
    return e;
}

namespace {

// An entry of sent and received figures (users, host x class): the sum over the CPUs.
template <typename Entry, typename Key, typename Val>
Entry fold_sides(const Key& key, std::span<const Val> per_cpu) {
    Entry e;
    e.key = key;
    for (const auto& v : per_cpu) {
        e.sent += Counts(v.sent);
        e.received += Counts(v.received);
    }
    return e;
}

} // namespace

UserEntry fold_percpu(const nt_user_key& key, std::span<const nt_user_val> per_cpu) {
    return fold_sides<UserEntry>(key, per_cpu);
}

HostClassEntry fold_percpu(const nt_host_cls_key& key, std::span<const nt_host_cls_val> per_cpu) {
    return fold_sides<HostClassEntry>(key, per_cpu);
}

ClassEntry fold_percpu(const nt_cls_count_key& key, std::span<const nt_counts> per_cpu) {
    ClassEntry e;
    e.key = key;
    for (const auto& v : per_cpu)
        e.counts += Counts(v);
    return e;
}

uint64_t MonotonicCounter::observe(uint64_t raw) {
    if (raw < last_raw_)
        base_ += last_raw_; // the kernel counter restarted: keep what it had
    last_raw_ = raw;
    return total();
}

uint64_t MonotonicCounter::observe_parts(uint64_t raw) {
    if (raw < last_raw_)
        base_ += last_raw_ - raw;
    last_raw_ = raw;
    return total();
}

void MonotonicCounter::restore(uint64_t total) {
    base_ = total;
    last_raw_ = 0;
}

void MonotonicCounter::restore_exact(uint64_t base, uint64_t last_raw) {
    base_ = base;
    last_raw_ = last_raw;
}

nlohmann::json MonotonicCounts::to_json() const {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : c_)
        a.push_back({c.base(), c.last_raw()});
    return a;
}

void MonotonicCounts::restore(const nlohmann::json& j, bool same_counters) {
    if (!j.is_array() || j.size() != c_.size())
        throw std::runtime_error("counter state: expected 5 [base, last_raw] pairs");
    for (size_t i = 0; i < c_.size(); i++) {
        const uint64_t base = j.at(i).at(0).get<uint64_t>();
        const uint64_t raw = j.at(i).at(1).get<uint64_t>();
        if (same_counters)
            c_[i].restore_exact(base, raw);
        else
            c_[i].restore(base + raw);
    }
    total_ = Counts(c_[0].total(), c_[1].total(), c_[2].total(), c_[3].total(), c_[4].total());
}

nlohmann::json to_json(const Counts& c) {
    return {c.packets, c.l2, c.l3, c.l4, c.payload};
}

Counts counts_from_json(const nlohmann::json& j) {
    if (!j.is_array() || j.size() != 5)
        throw std::runtime_error("counts: expected [packets, l2, l3, l4, payload]");
    return Counts(j.at(0).get<uint64_t>(), j.at(1).get<uint64_t>(), j.at(2).get<uint64_t>(),
                  j.at(3).get<uint64_t>(), j.at(4).get<uint64_t>());
}

const Counts& MonotonicCounts::observe(const Counts& raw) {
    total_ = Counts(c_[0].observe(raw.packets), c_[1].observe(raw.l2), c_[2].observe(raw.l3),
                    c_[3].observe(raw.l4), c_[4].observe(raw.payload));
    return total_;
}

const Counts& MonotonicCounts::observe_parts(const Counts& raw) {
    total_ =
        Counts(c_[0].observe_parts(raw.packets), c_[1].observe_parts(raw.l2), c_[2].observe_parts(raw.l3),
               c_[3].observe_parts(raw.l4), c_[4].observe_parts(raw.payload));
    return total_;
}

ReconcileOutcome reconcile(const ReconcileInput& in) {
    const Counts categories = in.flows + in.buckets_after;
    if (in.total_before == in.total_after)
        return categories == in.total_after ? ReconcileOutcome::Exact : ReconcileOutcome::Violated;
    if (in.total_before.all_le(categories) && categories.all_le(in.total_after))
        return ReconcileOutcome::Bracketed;
    return ReconcileOutcome::Violated;
}

std::string_view to_string(SortKey k) {
    static constexpr std::array<std::string_view, 7> kNames = {"packets", "l2",         "l3",       "l4",
                                                               "payload", "first_seen", "last_seen"};
    return enum_name(kNames, k);
}

std::optional<SortKey> parse_sort_key(std::string_view s, bool allow_first_seen) {
    if (s == "bytes")
        return SortKey::L2;
    const auto k = parse_enum(s, {SortKey::Packets, SortKey::L2, SortKey::L3, SortKey::L4, SortKey::Payload,
                                  SortKey::LastSeen, SortKey::FirstSeen});
    if (k == SortKey::FirstSeen && !allow_first_seen)
        return std::nullopt;
    return k;
}

uint64_t sort_value(const Counts& c, SortKey k) {
    static_assert(static_cast<int>(SortKey::Payload) == static_cast<int>(CountField::Payload));
    return k <= SortKey::Payload ? c.get(static_cast<CountField>(k)) : 0;
}

std::vector<size_t> top_n(std::span<const uint64_t> values, size_t n) {
    std::vector<size_t> idx(values.size());
    std::iota(idx.begin(), idx.end(), 0);
    n = std::min(n, idx.size());
    auto cmp = [&](size_t a, size_t b) { return values[a] != values[b] ? values[a] > values[b] : a < b; };
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(), cmp);
    idx.resize(n);
    return idx;
}

std::string format_mac(const uint8_t mac[6]) {
    char buf[18];
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                  mac[5]);
    return buf;
}

std::string format_addr(uint8_t family, const uint32_t addr[4]) {
    char buf[INET6_ADDRSTRLEN];
    const int af = family == NT_AF_INET6 ? AF_INET6 : AF_INET;
    if (!inet_ntop(af, addr, buf, sizeof(buf)))
        return "?";
    return buf;
}

} // namespace nettally
