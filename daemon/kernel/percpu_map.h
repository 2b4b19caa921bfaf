// Reading and draining per-CPU BPF hash maps, shared by the datapath (TC/XDP
// counters) and cgroup accounting: batched whole-map reads, and atomic
// remove-and-read of one entry with a fallback for kernels before 5.14.
#pragma once

#include "os/error.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <span>
#include <string>
#include <vector>

namespace nettally {

// The kernel's internal ENOTSUPP (not in userspace headers), returned for
// map operations a map type lacks.
inline constexpr int kENOTSUPP = 524;

// How many values a per-CPU map holds for one key (possible CPUs). Throws SysError.
inline int possible_cpus() {
    const int n = libbpf_num_possible_cpus();
    if (n <= 0)
        throw SysError(-n, "counting possible CPUs");
    return n;
}

// Reads a whole per-CPU hash map in batches: fn(key, span of one value per
// possible CPU). Throws SysError naming `what`.
template <typename K, typename V, typename Fn>
void read_percpu_map(int fd, int ncpus, const std::string& what, Fn&& fn, uint32_t chunk = 4096) {
    static_assert(sizeof(V) % 8 == 0, "per-CPU values are laid out on 8-byte strides");
    std::vector<K> keys(chunk);
    std::vector<V> vals(static_cast<size_t>(chunk) * static_cast<size_t>(ncpus));
    uint64_t in_token = 0, out_token = 0;
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
        uint32_t count = chunk;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_token, &out_token, keys.data(), vals.data(),
                                       &count, &opts);
        if (err && err != -ENOENT)
            throw SysError(-err, what);
        for (uint32_t i = 0; i < count; i++)
            fn(keys[i], std::span<const V>(&vals[static_cast<size_t>(i) * static_cast<size_t>(ncpus)],
                                           static_cast<size_t>(ncpus)));
        if (err == -ENOENT)
            return;
        in_token = out_token;
        first = false;
    }
}

// Removes one entry and returns its last per-CPU values in `values` (0 or
// -errno). Atomic with lookup-and-delete; where the kernel lacks it,
// `atomic` turns false (once) and it falls back to lookup then delete, which
// can lose a packet landing in between; the caller says so once.
inline int take_percpu_entry(int fd, const void* key, void* values, bool& atomic) {
    int err = -EOPNOTSUPP;
    if (atomic) {
        err = bpf_map_lookup_and_delete_elem(fd, key, values);
        if (err == -EINVAL || err == -EOPNOTSUPP || err == -kENOTSUPP)
            atomic = false;
        else
            return err;
    }
    err = bpf_map_lookup_elem(fd, key, values);
    if (err == 0)
        bpf_map_delete_elem(fd, key);
    return err;
}

} // namespace nettally
