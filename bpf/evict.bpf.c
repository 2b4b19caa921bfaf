// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Flow eviction in one pass. Taking flows out of nt_flows with one
 * BPF_MAP_LOOKUP_AND_DELETE_ELEM syscall each costs microseconds per flow.
 * Here nettallyd writes up to NT_EVICT_BATCH keys into the slots of nt_evict
 * (one batch update), sets nt_evict_count, runs this program once through
 * BPF_PROG_TEST_RUN (on a dummy frame; it never sees traffic) and reads the
 * slots back (one batch lookup). For each key the program sums the flow's
 * per-CPU values (bpf_map_lookup_percpu_elem) into the slot and deletes the
 * flow; a key whose flow is gone leaves found = 0.
 *
 * Packets that reach a flow between its sum and its deletion are lost to it,
 * as with BPF_MAP_LOOKUP_AND_DELETE_ELEM (the programs add in place, without
 * the bucket lock): the window is the same few instructions.
 *
 * A TC program run by BPF_PROG_TEST_RUN rather than a map iterator: iterators
 * are tracing programs, which some hardened kernels refuse to load, and an
 * iterator that deletes what it visits can skip elements when a read()
 * restarts inside a hash bucket.
 *
 * nt_flows is the main object's map (bpf_map__reuse_fd before load).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "nettally_maps.h"
#include "nettally_evict.h"

#define TC_ACT_OK 0

/* libbpf_num_possible_cpus(), set before load. */
const volatile __u32 cfg_ncpus = 1;

/* How many slots of nt_evict the next run takes (written by nettallyd before it). */
__u32 nt_evict_count = 0;

NT_MAP(nt_flows, BPF_MAP_TYPE_PERCPU_HASH, 1, struct nt_flow_key, struct nt_flow_val);
NT_MAP(nt_evict, BPF_MAP_TYPE_ARRAY, NT_EVICT_BATCH, __u32, struct nt_evict_rec);

static long evict_one(__u32 i, void *unused)
{
	struct nt_evict_rec *r = bpf_map_lookup_elem(&nt_evict, &i);
	struct nt_flow_key key;
	__u64 cls_ns = 0;

	if (!r)
		return 1;
	__builtin_memcpy(&key, &r->key, sizeof(key));
	__builtin_memset(&r->c, 0, sizeof(r->c));
	r->first_ns = r->last_ns = 0;
	r->tcp_flags = 0;
	r->found = 0;
	r->cls_id = 0;
	r->cls_serial = 0;
	r->pad = 0;
	for (__u32 cpu = 0; cpu < NT_EVICT_MAX_CPUS && cpu < cfg_ncpus; cpu++) {
		struct nt_flow_val *v = bpf_map_lookup_percpu_elem(&nt_flows, &key, cpu);

		if (!v)
			continue;
		r->found = 1;
		r->c.packets += v->c.packets;
		r->c.l2 += v->c.l2;
		r->c.l3 += v->c.l3;
		r->c.l4 += v->c.l4;
		r->c.payload += v->c.payload;
		if (v->first_ns && (!r->first_ns || v->first_ns < r->first_ns))
			r->first_ns = v->first_ns;
		if (v->last_ns > r->last_ns)
			r->last_ns = v->last_ns;
		r->tcp_flags |= v->tcp_flags;
		/* The flow's class: that of the CPU which saw its latest classified packet. */
		if (v->cls_serial && (!r->cls_serial || v->last_ns > cls_ns)) {
			r->cls_id = v->cls_id;
			r->cls_serial = v->cls_serial;
			cls_ns = v->last_ns;
		}
	}
	if (r->found)
		bpf_map_delete_elem(&nt_flows, &key);
	return 0;
}

SEC("tc")
int nt_evict_flows(struct __sk_buff *skb)
{
	__u32 n = nt_evict_count;

	if (n > NT_EVICT_BATCH)
		n = NT_EVICT_BATCH;
	bpf_loop(n, evict_one, NULL, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
