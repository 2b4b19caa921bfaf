// Loading traffic classes into the kernel (kernel/classes.h).
#include "kernel/classes.h"

#include "core/abi.h"
#include "os/error.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <span>

namespace nettally {
namespace {

void check(int rc, const std::string& what) {
    if (rc != 0)
        throw SysError(errno, "classes: " + what);
}

// Deletes every key of `fd` whose slot (read by `slot_of`) is `slot`.
template <typename K, typename SlotOf> void delete_slot(int fd, uint32_t slot, SlotOf slot_of) {
    std::vector<K> doomed;
    K key{};
    K next{};
    const K* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (slot_of(next) == slot)
            doomed.push_back(next);
        key = next;
        prev = &key;
    }
    for (const K& k : doomed)
        check(bpf_map_delete_elem(fd, &k), "deleting a stale entry");
}

// values[i] at key first + i, in one batch.
void update_range(int fd, uint32_t first, const std::vector<uint32_t>& values, const std::string& what) {
    if (values.empty())
        return;
    std::vector<uint32_t> keys(values.size());
    for (uint32_t i = 0; i < keys.size(); i++)
        keys[i] = first + i;
    bpf_map_batch_opts opts{};
    opts.sz = sizeof(opts);
    auto count = static_cast<uint32_t>(values.size());
    check(bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts), what);
}

void expand(const ScalarDim& d, uint32_t off, std::vector<uint32_t>& out) {
    for (size_t r = 0; r < d.runs.size(); r++) {
        const uint32_t end = r + 1 < d.runs.size() ? d.runs[r + 1][0] : d.domain;
        for (uint32_t v = d.runs[r][0]; v < end; v++)
            out[off + v] = d.runs[r][1];
    }
}

// The interface dimension: each named interface's rule set, interned.
struct IfaceDim {
    EqTable eqs;
    uint32_t none_eq = 0;
    std::vector<std::pair<uint32_t, uint32_t>> ifindex_eq;
};

IfaceDim iface_dim(const Bundle& b, const std::vector<std::pair<uint32_t, std::string>>& ifaces) {
    IfaceDim d;
    d.eqs.words = b.words;
    std::map<std::vector<uint64_t>, uint32_t> ids;
    const auto id = [&](const std::vector<uint64_t>& m) {
        const auto [it, added] = ids.try_emplace(m, static_cast<uint32_t>(ids.size()));
        if (added)
            d.eqs.masks.insert(d.eqs.masks.end(), m.begin(), m.end());
        return it->second;
    };
    std::vector<uint64_t> none(b.words, 0);
    for (size_t i = 0; i < b.rules.size(); i++)
        if (b.rules[i].interfaces.empty())
            none[i / 64] |= uint64_t{1} << (i % 64);
    d.none_eq = id(none);
    for (const auto& [ifindex, name] : ifaces)
        d.ifindex_eq.emplace_back(ifindex, id(interface_mask(b, name)));
    return d;
}

void check_fits(const Bundle& b) {
    if (b.words > NT_CLS_MAX_WORDS || b.rules.size() > NT_CLS_MAX_RULES)
        throw BundleError("bundle has " + std::to_string(b.rules.size()) + " rules, the kernel tables hold " +
                          std::to_string(NT_CLS_MAX_RULES));
    if (b.src.entries.size() + b.dst.entries.size() > NT_CLS_MAX_PREFIXES)
        throw BundleError("bundle has more prefixes than the kernel tables hold");
    if (b.mac.entries.size() > NT_CLS_MAX_MACS)
        throw BundleError("bundle has more MACs than the kernel tables hold");
}

// The masks map's entries of one equivalence table (bpf/nettally_abi.h): per id, when the ruleset
// spans more than one chunk, a summary chunk (bit c of word 0: chunk c is not all zero), then the
// id's mask in chunks of NT_CLS_CHUNK_WORDS words, the last one padded with zeros.
void append_chunks(const EqTable& t, uint32_t chunks, std::vector<nt_cls_chunk>& out) {
    for (uint32_t eq = 0; eq < t.size(); eq++) {
        const std::span<const uint64_t> mask = t.mask(eq);
        const size_t at = out.size();
        if (chunks > 1)
            out.emplace_back();
        for (uint32_t c = 0; c < chunks; c++) {
            nt_cls_chunk chunk{};
            for (uint32_t i = 0; i < NT_CLS_CHUNK_WORDS; i++) {
                const size_t w = size_t{c} * NT_CLS_CHUNK_WORDS + i;
                chunk.w[i] = w < mask.size() ? mask[w] : 0;
            }
            if (chunks > 1 && (chunk.w[0] | chunk.w[1] | chunk.w[2] | chunk.w[3]) != 0)
                out[at].w[0] |= uint64_t{1} << c;
            out.push_back(chunk);
        }
    }
}

// A new inner map with every dimension's bitmasks, one after the other; info.base says where.
int masks_map(const Bundle& b, const IfaceDim& iface, nt_cls_info& info) {
    const EqTable* tables[NT_CLS_DIMS] = {&iface.eqs,  &b.dir.eqs,  &b.proto.eqs, &b.sport.eqs, &b.dport.eqs,
                                          &b.dscp.eqs, &b.vlan.eqs, &b.src.eqs,   &b.dst.eqs,   &b.mac.eqs};
    const uint32_t chunks = (b.words + NT_CLS_CHUNK_WORDS - 1) / NT_CLS_CHUNK_WORDS;
    std::vector<nt_cls_chunk> entries;
    for (int d = 0; d < NT_CLS_DIMS; d++) {
        info.base[d] = static_cast<uint32_t>(entries.size());
        append_chunks(*tables[d], chunks, entries);
    }
    bpf_map_create_opts opts{}; // not LIBBPF_OPTS(): a GNU statement expression, -Wpedantic
    opts.sz = sizeof(opts);
    opts.map_flags = BPF_F_INNER_MAP;
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "nt_cls_masks_i", 4, sizeof(nt_cls_chunk),
                                  static_cast<uint32_t>(entries.size()), &opts);
    if (fd < 0)
        throw SysError(errno, "classes: creating the bitmask map");
    std::vector<uint32_t> keys(entries.size());
    for (uint32_t i = 0; i < keys.size(); i++)
        keys[i] = i;
    bpf_map_batch_opts bopts{};
    bopts.sz = sizeof(bopts);
    auto count = static_cast<uint32_t>(entries.size());
    if (bpf_map_update_batch(fd, keys.data(), entries.data(), &count, &bopts) != 0) {
        const int err = errno;
        close(fd);
        throw SysError(err, "classes: filling the bitmask map");
    }
    return fd;
}

void fill_lookups(const KernelClasses::Maps& m, const Bundle& b, const IfaceDim& iface, uint32_t slot) {
    delete_slot<nt_cls_lpm_key>(m.lpm, slot, [](const nt_cls_lpm_key& k) { return k.slot; });
    for (const auto& [dim, table] : {std::pair{NT_CLS_SRC, &b.src}, std::pair{NT_CLS_DST, &b.dst}})
        for (const PrefixEntry& e : table->entries) {
            nt_cls_lpm_key k{};
            k.prefixlen = NT_CLS_LPM_KEY_BITS + e.len;
            k.slot = static_cast<uint8_t>(slot);
            k.dim = static_cast<uint8_t>(dim);
            k.family = e.family;
            std::memcpy(k.addr, e.addr.data(), sizeof(k.addr));
            check(bpf_map_update_elem(m.lpm, &k, &e.eq, BPF_ANY), "adding a prefix");
        }
    delete_slot<nt_cls_mac_key>(m.mac, slot, [](const nt_cls_mac_key& k) { return k.slot; });
    for (const MacEntry& e : b.mac.entries) {
        nt_cls_mac_key k{};
        k.slot = static_cast<uint8_t>(slot);
        std::memcpy(k.mac, e.mac.data(), 6);
        check(bpf_map_update_elem(m.mac, &k, &e.eq, BPF_ANY), "adding a MAC");
    }
    delete_slot<nt_cls_iface_key>(m.iface, slot, [](const nt_cls_iface_key& k) { return k.slot; });
    for (const auto& [ifindex, eq] : iface.ifindex_eq) {
        const nt_cls_iface_key k{slot, ifindex};
        check(bpf_map_update_elem(m.iface, &k, &eq, BPF_ANY), "adding an interface");
    }
}

} // namespace

KernelClasses::KernelClasses(const Maps& maps) : maps_(maps), serial_(std::random_device{}()) {}

void KernelClasses::load(const Bundle& b, const std::vector<std::pair<uint32_t, std::string>>& ifaces) {
    check_fits(b);
    const uint32_t slot = generation() == 1 ? 1 : 0;
    const IfaceDim iface = iface_dim(b, ifaces);
    nt_cls_info info{};
    info.words = b.words;
    info.rules = static_cast<uint32_t>(b.rules.size());
    if (++serial_ == 0)
        serial_ = 1;
    info.serial = serial_;
    // The class a flow's first packet got holds for its later packets only when the rules test
    // nothing that can differ between them.
    if (b.dscp.eqs.size() > 1 || b.vlan.eqs.size() > 1 || !b.mac.entries.empty())
        info.flags |= NT_CLS_PER_PACKET;
    info.none_eq[NT_CLS_IFACE] = iface.none_eq;
    info.none_eq[NT_CLS_SPORT] = b.sport.none_eq;
    info.none_eq[NT_CLS_DPORT] = b.dport.none_eq;
    info.none_eq[NT_CLS_MAC] = b.mac.none_eq;
    const int inner = masks_map(b, iface, info);
    // Replacing the slot's inner map waits for running programs (synchronize_rcu in the
    // kernel): from here on nothing reads this slot's old tables.
    const int rc = bpf_map_update_elem(maps_.masks, &slot, &inner, BPF_ANY);
    const int err = errno;
    close(inner);
    if (rc != 0)
        throw SysError(err, "classes: installing the bitmask map");

    std::vector<uint32_t> scalars(NT_CLS_SCALAR_SPAN, 0);
    expand(b.dir, NT_CLS_OFF_DIR, scalars);
    expand(b.proto, NT_CLS_OFF_PROTO, scalars);
    expand(b.sport, NT_CLS_OFF_SPORT, scalars);
    expand(b.dport, NT_CLS_OFF_DPORT, scalars);
    expand(b.dscp, NT_CLS_OFF_DSCP, scalars);
    expand(b.vlan, NT_CLS_OFF_VLAN, scalars);
    update_range(maps_.scalar, slot * NT_CLS_SCALAR_SPAN, scalars, "filling the scalar tables");
    fill_lookups(maps_, b, iface, slot);
    std::vector<uint32_t> classes(b.rules.size());
    std::transform(b.rules.begin(), b.rules.end(), classes.begin(),
                   [](const BundleRule& r) { return r.class_id; });
    update_range(maps_.rule_class, slot * NT_CLS_MAX_RULES, classes, "filling the rule classes");
    check(bpf_map_update_elem(maps_.info, &slot, &info, BPF_ANY), "writing the slot's info");
    // The switch: one aligned store, which packets read once.
    __atomic_store_n(maps_.gen, slot + 1, __ATOMIC_RELEASE);
    loaded_ = true;
}

void KernelClasses::clear() {
    __atomic_store_n(maps_.gen, 0, __ATOMIC_RELEASE);
}

uint32_t KernelClasses::generation() const {
    return __atomic_load_n(maps_.gen, __ATOMIC_ACQUIRE);
}

} // namespace nettally
