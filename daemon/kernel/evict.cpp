// FlowEvictor: see evict.h.
#include "kernel/evict.h"

#include "nettally_evict.h"
#include "nettally_evict.skel.h"
#include "os/error.h"

#include <algorithm>
#include <array>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <numeric>

namespace nettally {

// The record as bpf/evict.bpf.c writes it: no implicit padding on either side.
static_assert(sizeof(nt_evict_rec) == 112 && offsetof(nt_evict_rec, c) == 48 &&
              offsetof(nt_evict_rec, cls_serial) == 104);

FlowEvictor::FlowEvictor(int flows_fd, int ncpus) : slots_(NT_EVICT_BATCH), index_(NT_EVICT_BATCH) {
    std::iota(index_.begin(), index_.end(), 0u);
    skel_ = nettally_evict_bpf__open();
    if (!skel_)
        throw SysError(errno, "opening the eviction program");
    skel_->rodata->cfg_ncpus = static_cast<uint32_t>(ncpus);
    int err = bpf_map__reuse_fd(skel_->maps.nt_flows, flows_fd);
    if (!err)
        err = nettally_evict_bpf__load(skel_);
    if (err) {
        nettally_evict_bpf__destroy(skel_);
        skel_ = nullptr;
        throw SysError(-err, "loading the eviction program");
    }
}

FlowEvictor::~FlowEvictor() {
    nettally_evict_bpf__destroy(skel_);
}

void FlowEvictor::take(std::span<const nt_flow_key> keys, std::vector<FlowEntry>& out) {
    for (size_t off = 0; off < keys.size(); off += NT_EVICT_BATCH)
        pass(keys.subspan(off, std::min<size_t>(NT_EVICT_BATCH, keys.size() - off)), out);
}

void FlowEvictor::pass(std::span<const nt_flow_key> keys, std::vector<FlowEntry>& out) {
    const int fd = bpf_map__fd(skel_->maps.nt_evict);
    auto count = static_cast<uint32_t>(keys.size());
    for (uint32_t i = 0; i < count; i++)
        slots_[i] = nt_evict_rec{.key = keys[i]};
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(fd, index_.data(), slots_.data(), &count, &opts))
        throw SysError(errno, "writing the keys of the flows to finish");
    // .bss is memory-mapped: the program reads the count when it runs.
    __atomic_store_n(&skel_->bss->nt_evict_count, count, __ATOMIC_RELEASE);
    // The program never looks at the frame; BPF_PROG_TEST_RUN wants one of Ethernet size.
    const std::array<uint8_t, 64> frame{};
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame.data(), .data_size_in = frame.size(), .repeat = 1);
    if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.nt_evict_flows), &run))
        throw SysError(errno, "running the eviction program");
    __atomic_store_n(&skel_->bss->nt_evict_count, 0u, __ATOMIC_RELEASE);
    // Array slots read back in one batch (the slots before count; the rest are not read).
    uint32_t next = 0, got = count;
    const int err = bpf_map_lookup_batch(fd, nullptr, &next, index_.data(), slots_.data(), &got, &opts);
    if (err && errno != ENOENT)
        throw SysError(errno, "reading the finished flows");
    for (uint32_t i = 0; i < std::min(got, count); i++) {
        const nt_evict_rec& r = slots_[i];
        if (!r.found)
            continue;
        FlowEntry& e = out.emplace_back();
        e.key = r.key;
        e.counts = Counts(r.c);
        e.first_ns = r.first_ns;
        e.last_ns = r.last_ns;
        e.tcp_flags = r.tcp_flags;
        e.cls_id = r.cls_id;
        e.cls_serial = r.cls_serial;
    }
}

} // namespace nettally
