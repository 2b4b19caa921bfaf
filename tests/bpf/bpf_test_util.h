// Helpers the BPF fixture tests share: whether BPF can be used here, reading per-CPU
// maps back (one value per possible CPU, summed by the caller) and labelled counter
// comparisons.
#pragma once

#include "nettally_abi.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace nettally::test {

// Why BPF tests cannot run here, or empty when they can. Probed once.
inline const std::string& bpf_unavailable_reason() {
    static const std::string reason = [] {
        if (geteuid() != 0)
            return std::string("needs root (CAP_BPF + CAP_NET_ADMIN) to load BPF programs");
        const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "nt_probe", 4, 4, 1, nullptr);
        if (fd < 0) {
            const int err = errno;
            if (err == EPERM || err == EACCES)
                return std::string("BPF not permitted here: bpf(BPF_MAP_CREATE) failed: ") +
                       std::strerror(err);
            return std::string(); // something else: let the load report it as a failure
        }
        close(fd);
        return std::string();
    }();
    return reason;
}

// ---------------------------------------------------------------------------------------
// Per-CPU map reading

template <typename K, typename V> struct PerCpuEntry {
    K key;
    std::vector<V> per_cpu;
};

// Every entry of a per-CPU hash map, with one value per possible CPU.
template <typename K, typename V> std::vector<PerCpuEntry<K, V>> dump_percpu(const bpf_map* map) {
    const int fd = bpf_map__fd(map);
    const int ncpu = libbpf_num_possible_cpus();
    const size_t stride = (sizeof(V) + 7) & ~size_t{7};
    std::vector<PerCpuEntry<K, V>> out;
    if (fd < 0 || ncpu <= 0) {
        ADD_FAILURE() << "cannot read map " << bpf_map__name(map) << ": fd " << fd << ", cpus " << ncpu;
        return out;
    }
    EXPECT_EQ(bpf_map__key_size(map), sizeof(K)) << bpf_map__name(map) << " key size vs ABI header";
    EXPECT_EQ(bpf_map__value_size(map), sizeof(V)) << bpf_map__name(map) << " value size vs ABI header";

    std::vector<uint8_t> raw(stride * static_cast<size_t>(ncpu));
    K key{};
    K next{};
    const K* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (bpf_map_lookup_elem(fd, &next, raw.data()) != 0) {
            ADD_FAILURE() << bpf_map__name(map)
                          << ": lookup of a listed key failed: " << std::strerror(errno);
            break;
        }
        PerCpuEntry<K, V> e{next, std::vector<V>(static_cast<size_t>(ncpu))};
        for (int c = 0; c < ncpu; c++)
            std::memcpy(&e.per_cpu[static_cast<size_t>(c)], raw.data() + stride * static_cast<size_t>(c),
                        sizeof(V));
        out.push_back(std::move(e));
        key = next;
        prev = &key;
    }
    return out;
}

inline nt_counts& operator+=(nt_counts& a, const nt_counts& b) {
    a.packets += b.packets;
    a.l2 += b.l2;
    a.l3 += b.l3;
    a.l4 += b.l4;
    a.payload += b.payload;
    return a;
}

inline void expect_counts(const nt_counts& got, const nt_counts& want, const std::string& label) {
    EXPECT_EQ(got.packets, want.packets) << label << " packets";
    EXPECT_EQ(got.l2, want.l2) << label << " l2";
    EXPECT_EQ(got.l3, want.l3) << label << " l3";
    EXPECT_EQ(got.l4, want.l4) << label << " l4";
    EXPECT_EQ(got.payload, want.payload) << label << " payload";
}

inline constexpr nt_counts kZero{};

} // namespace nettally::test
