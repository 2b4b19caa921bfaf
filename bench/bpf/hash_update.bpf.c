// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Reference point for the in-kernel cost bench: "a single per-CPU hash
 * update". One PERCPU_HASH with nettally's flow key and value (same sizes,
 * same map type, max_entries set by the bench before load), and a TC program
 * that does what nettally's hot path does to a flow and nothing else: build
 * the key on the stack, look it up, add to the counters in place (insert with
 * BPF_NOEXIST on a miss). No parsing, no clock, no other map.
 *
 * nt_bench_hash_update takes the key from .bss so the bench can point it at
 * any entry of a map it has filled to N entries; nt_bench_hash_update_pkt
 * takes it from the packet's first bytes, so packets that walk many entries
 * measure the same update with cache misses (the "walk" rows).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "../../bpf/nettally_abi.h"

#define TC_ACT_UNSPEC (-1)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NT_DEFAULT_MAX_FLOWS);
	__type(key, struct nt_flow_key);
	__type(value, struct nt_flow_val);
} bench_flows SEC(".maps");

struct nt_flow_key bench_key = {};

static __always_inline int add_to(struct __sk_buff *skb, const struct nt_flow_key *key)
{
	struct nt_flow_val *v;
	__u64 len = skb->len;

	v = bpf_map_lookup_elem(&bench_flows, key);
	if (!v) {
		struct nt_flow_val init = {.c = {.packets = 1, .l2 = len}};

		bpf_map_update_elem(&bench_flows, key, &init, BPF_NOEXIST);
		return TC_ACT_UNSPEC;
	}
	v->c.packets += 1;
	v->c.l2 += len;
	v->c.l3 += len;
	v->c.l4 += len;
	v->c.payload += len;
	return TC_ACT_UNSPEC;
}

SEC("tc")
int nt_bench_hash_update(struct __sk_buff *skb)
{
	struct nt_flow_key key;

	__builtin_memcpy(&key, &bench_key, sizeof(key));
	return add_to(skb, &key);
}

SEC("tc")
int nt_bench_hash_update_pkt(struct __sk_buff *skb)
{
	struct nt_flow_key key;

	if (bpf_skb_load_bytes(skb, 0, &key, sizeof(key)))
		return TC_ACT_UNSPEC;
	return add_to(skb, &key);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
