// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nettally per-cgroup accounting: cgroup_skb ingress and egress programs,
 * attached (multi) to the root of the cgroup v2 hierarchy, count the traffic
 * of the gateway's own sockets by the cgroup of the socket.
 *
 * Which cgroup: bpf_skb_cgroup_id(), the cgroup the socket was created in
 * (skb->sk, set by the hook to the full socket: the listener for a SYN-ACK,
 * the receiving socket on ingress). bpf_get_current_cgroup_id() would be
 * wrong on ingress, where "current" is whatever task the softirq interrupted,
 * and on egress too whenever the stack transmits from softirq or a timer (TCP
 * ACKs, retransmits, a window opening).
 *
 * What the hooks see: ingress runs at the socket (sk_filter), after
 * reassembly; egress runs in ip{,6}_finish_output, before fragmentation. Both
 * start at the IP header, so there is no l2. The parser is the one TC and XDP
 * use (nettally_parse.h, started at the IP header): GSO/GRO aggregates are
 * counted as their wire segments with every segment's IP and transport
 * headers, untrusted GSO (gso_segs 0) cut by gso_size as the stack will; a
 * datagram that IP fragments below the hook (or reassembled above
 * it) counts as one packet with one IP header: its l4 and payload equal the
 * wire's, its packets and l3 do not (README "Per-cgroup accounting").
 *
 * Every packet goes into the per-direction total first and then into exactly
 * one category: the cgroup's entry, or one bucket (enum nt_cg_bucket). Which
 * cgroups get an entry is decided here, bounded: a cgroup is tracked when it
 * or an ancestor (NT_CG_MAX_DEPTH levels) is a subtree root the daemon put in
 * nt_cg_subtrees, so a cgroup created between two polls is counted from its
 * first packet. The programs never change a packet's fate: they return 1.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nettally_abi.h"
#include "nettally_parse.h"
#include "nettally_maps.h"

#define LOOPBACK_IFINDEX 1 /* lo is ifindex 1 in every network namespace */

/*
 * Start-up knob set by nettallyd before load: the network namespace whose
 * sockets are counted (SO_NETNS_COOKIE of the daemon's namespace), or 0 to
 * count every namespace (config cgroups.netns: all, or a kernel without
 * bpf_get_netns_cookie for cgroup_skb). With 0 the verifier drops the helper
 * call as dead code, so the program loads on such kernels.
 */
const volatile __u64 cfg_netns_cookie = 0;

NT_MAP(nt_cg_counts, BPF_MAP_TYPE_PERCPU_HASH, NT_CG_DEFAULT_MAX_ENTRIES, __u64, struct nt_cg_val);

NT_MAP(nt_cg_totals, BPF_MAP_TYPE_PERCPU_ARRAY, NT_DIR_MAX, __u32, struct nt_cg_dir_val);

NT_MAP(nt_cg_subtrees, BPF_MAP_TYPE_HASH, NT_CG_MAX_SUBTREES, __u64, __u8);

NT_MAP(nt_cg_busy, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, __u64);

/*
 * The figures of one packet (nettally_parse.h, from the IP header, no flow
 * identity). Returns 0, or -1 when the packet is unparsable (non-IP too:
 * cgroup_skb runs for inet sockets only, never seen); then c holds only what is
 * certain: the packets and the bytes handed to the hook.
 */
static __always_inline int cg_parse(struct __sk_buff *skb, struct nt_counts *c)
{
	struct pctx pc = {};
	struct pkt p = {};

	pctx_from_skb(&pc, skb);
	parse(&pc, &p, 0, 1, 0);
	*c = p.c;
	c->l2 = 0; /* the hooks see no link layer */
	if (p.bucket == NT_BUCKET_MAX)
		return 0;
	c->l3 = pc.len;
	c->l4 = 0;
	c->payload = 0;
	return -1;
}

/*
 * Atomic adds, although every value is per-CPU: egress runs in process context, where the
 * program can be preempted (it only has migration disabled) or interrupted by the ingress
 * program in softirq on the same CPU; a plain read-modify-write would lose counts then.
 */
static __always_inline void add_counts(struct nt_counts *to, const struct nt_counts *c)
{
	__sync_fetch_and_add(&to->packets, c->packets);
	__sync_fetch_and_add(&to->l3, c->l3);
	__sync_fetch_and_add(&to->l4, c->l4);
	__sync_fetch_and_add(&to->payload, c->payload);
}

/* The socket's cgroup or one of its ancestors is a tracked subtree root. */
static __always_inline int tracked(struct __sk_buff *skb)
{
#pragma clang loop unroll(disable)
	for (int level = 0; level < NT_CG_MAX_DEPTH; level++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);

		if (!id)
			break; /* below the socket's own cgroup */
		if (bpf_map_lookup_elem(&nt_cg_subtrees, &id))
			return 1;
	}
	return 0;
}

/* Returns NT_CG_BUCKET_MAX when counted in the cgroup's entry, else the bucket. */
static __always_inline __u32 count_cgroup(struct __sk_buff *skb, __u32 dir,
					  const struct nt_counts *c)
{
	__u64 id = bpf_skb_cgroup_id(skb);
	struct nt_cg_val *v = bpf_map_lookup_elem(&nt_cg_counts, &id);

	if (!v) {
		/* Only tracked cgroups get an entry, so an entry means "tracked". */
		if (!tracked(skb))
			return NT_CG_BUCKET_UNTRACKED;
		struct nt_cg_val init = {};

		if (dir == NT_DIR_EGRESS)
			init.dir[NT_DIR_EGRESS] = *c;
		else
			init.dir[NT_DIR_INGRESS] = *c;
		if (bpf_map_update_elem(&nt_cg_counts, &id, &init, BPF_NOEXIST) == 0)
			return NT_CG_BUCKET_MAX;
		/* Another CPU created it in between, or the map is full. */
		v = bpf_map_lookup_elem(&nt_cg_counts, &id);
		if (!v)
			return NT_CG_BUCKET_OVERFLOW;
	}
	add_counts(dir == NT_DIR_EGRESS ? &v->dir[NT_DIR_EGRESS] : &v->dir[NT_DIR_INGRESS], c);
	return NT_CG_BUCKET_MAX;
}

/* One packet: its total, then exactly one category. */
static __always_inline void account_packet(struct __sk_buff *skb, __u32 dir)
{
	struct nt_counts c = {};
	struct nt_cg_dir_val *tv;
	__u32 bucket, ifindex;
	int ok;

	ok = cg_parse(skb, &c) == 0;

	/* Two plain loads: the verifier refuses a ctx pointer the compiler offsets. */
	if (dir == NT_DIR_INGRESS)
		ifindex = skb->ingress_ifindex;
	else
		ifindex = skb->ifindex;

	tv = bpf_map_lookup_elem(&nt_cg_totals, &dir);
	if (!tv)
		return;
	add_counts(&tv->total, &c);

	if (cfg_netns_cookie && bpf_get_netns_cookie(skb) != cfg_netns_cookie)
		bucket = NT_CG_BUCKET_OTHER_NETNS;
	else if (ifindex == LOOPBACK_IFINDEX)
		bucket = NT_CG_BUCKET_LOOPBACK;
	else if (!ok)
		bucket = NT_CG_BUCKET_UNPARSABLE;
	else
		bucket = count_cgroup(skb, dir, &c);
	if (bucket < NT_CG_BUCKET_MAX)
		add_counts(&tv->bucket[bucket], &c);
}

/*
 * For the same reason a program can sit between its total and its category for a while. It
 * keeps nt_cg_busy raised (per CPU) from before the total until after the category, so the
 * daemon holds the categories to the total read before them only when no program was in
 * flight at that moment (CgroupTracker::check): no false alarm from a preempted program.
 */
static __always_inline void account(struct __sk_buff *skb, __u32 dir)
{
	__u32 zero = 0;
	__u64 *busy = bpf_map_lookup_elem(&nt_cg_busy, &zero);

	if (!busy)
		return;
	__sync_fetch_and_add(busy, 1);
	account_packet(skb, dir);
	__sync_fetch_and_add(busy, -1);
}

SEC("cgroup_skb/ingress")
int nt_cg_ingress(struct __sk_buff *skb)
{
	account(skb, NT_DIR_INGRESS);
	return 1;
}

SEC("cgroup_skb/egress")
int nt_cg_egress(struct __sk_buff *skb)
{
	account(skb, NT_DIR_EGRESS);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
