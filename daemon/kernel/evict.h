// FlowEvictor: takes finished flows out of nt_flows with the eviction program
// (bpf/evict.bpf.c): per pass, one batch update writes up to NT_EVICT_BATCH keys, one
// BPF_PROG_TEST_RUN sums each flow's per-CPU values in the kernel and deletes the flow, and one
// batch lookup reads the sums back. One BPF_MAP_LOOKUP_AND_DELETE_ELEM syscall per flow costs
// several microseconds; this costs a fraction of one (bench/README.md "Flow eviction").
#pragma once

#include "core/counters.h"
#include "nettally_evict.h"

#include <span>
#include <vector>

struct nettally_evict_bpf;

namespace nettally {

class FlowEvictor {
public:
    // flows_fd: the loaded nt_flows. Throws SysError when the kernel cannot load the program
    // (bpf_loop: 5.17; bpf_map_lookup_percpu_elem: 5.19): the caller falls back to one
    // syscall per flow.
    FlowEvictor(int flows_fd, int ncpus);
    ~FlowEvictor();
    FlowEvictor(const FlowEvictor&) = delete;
    FlowEvictor& operator=(const FlowEvictor&) = delete;

    // Removes the flows of keys that are still in the map and appends their final counts to
    // out, each exactly once. Throws SysError; the flows appended before the error are gone
    // from the map, and so may be those of the pass that failed.
    void take(std::span<const nt_flow_key> keys, std::vector<FlowEntry>& out);

private:
    void pass(std::span<const nt_flow_key> keys, std::vector<FlowEntry>& out);

    nettally_evict_bpf* skel_ = nullptr;
    std::vector<nt_evict_rec> slots_;
    std::vector<uint32_t> index_;
};

} // namespace nettally
