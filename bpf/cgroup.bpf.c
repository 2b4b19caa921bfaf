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
 * start at the IP header, so there is no l2. GSO/GRO aggregates are counted
 * as their gso_segs wire segments with every segment's IP and transport
 * headers, as the TC parser in nettally.bpf.c does (same definitions, same
 * budgets); a datagram that IP fragments below the hook (or reassembled above
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
#include "nettally_proto.h"

#define LOOPBACK_IFINDEX 1 /* lo is ifindex 1 in every network namespace */

/* Headers are never looked for beyond this offset from the IP header. */
#define NT_MAX_HDR_OFF 1024

/*
 * Start-up knob set by nettallyd before load: the network namespace whose
 * sockets are counted (SO_NETNS_COOKIE of the daemon's namespace), or 0 to
 * count every namespace (config cgroups.netns: all, or a kernel without
 * bpf_get_netns_cookie for cgroup_skb). With 0 the verifier drops the helper
 * call as dead code, so the program loads on such kernels.
 */
const volatile __u64 cfg_netns_cookie = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NT_CG_DEFAULT_MAX_ENTRIES);
	__type(key, __u64);
	__type(value, struct nt_cg_val);
} nt_cg_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NT_DIR_MAX);
	__type(key, __u32);
	__type(value, struct nt_cg_dir_val);
} nt_cg_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NT_CG_MAX_SUBTREES);
	__type(key, __u64);
	__type(value, __u8);
} nt_cg_subtrees SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nt_cg_busy SEC(".maps");

static __always_inline int load_hdr(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
	if (off > NT_MAX_HDR_OFF)
		return -1;
	return bpf_skb_load_bytes(skb, off, to, len);
}

static __always_inline int is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_FRAGMENT_ ||
	       nh == IPPROTO_DSTOPTS_ || nh == IPPROTO_AH_ || nh == IPPROTO_MH_;
}

/*
 * The figures of one packet as nettally.bpf.c's parse() defines them, with the
 * IP header at offset 0. Returns 0, or -1 when the packet is unparsable.
 */
static __always_inline int parse(struct __sk_buff *skb, struct nt_counts *c)
{
	const __u32 len = skb->len;
	const __u32 segs = skb->gso_segs ? skb->gso_segs : 1;
	const __u16 proto = bpf_ntohs(skb->protocol);
	__u32 l3 = 0, iphl = 0, l4hl = 0;
	int first_frag = 1;
	__u8 l4proto;

	if (proto == ETH_P_IP) {
		struct iphdr ip;
		__u16 frag;

		if (load_hdr(skb, 0, &ip, sizeof(ip)))
			return -1;
		if (ip.version != 4 || ip.ihl < 5)
			return -1;
		iphl = ip.ihl * 4;
		l3 = bpf_ntohs(ip.tot_len);
		if (l3 == 0 && segs > 1) /* BIG TCP: length lives in the skb only */
			l3 = len;
		if (l3 < iphl || l3 > len)
			return -1;
		frag = bpf_ntohs(ip.frag_off);
		first_frag = (frag & IP_OFFSET_MASK) == 0;
		l4proto = ip.protocol;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		__u8 nh;

		if (load_hdr(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		if (ip6.version != 6)
			return -1;
		l3 = 40 + bpf_ntohs(ip6.payload_len);
		if (l3 == 40 && segs > 1) /* BIG TCP */
			l3 = len;
		if (l3 > len)
			return -1;
		iphl = 40;
		nh = ip6.nexthdr;
		/* A bounded loop, not unrolled: the verifier walks it per iteration. */
#pragma clang loop unroll(disable)
		for (int i = 0; i < NT_MAX_IPV6_EXT_HDRS; i++) {
			__u8 ext[4];
			__u32 elen;

			if (!is_ipv6_ext(nh))
				break;
			if (load_hdr(skb, iphl, ext, sizeof(ext)))
				return -1;
			if (nh == IPPROTO_FRAGMENT_) {
				__u16 fo = (__u16)ext[2] << 8 | ext[3];

				first_frag = (fo & 0xFFF8) == 0;
				elen = 8;
			} else if (nh == IPPROTO_AH_) {
				elen = ((__u32)ext[1] + 2) * 4;
			} else {
				elen = ((__u32)ext[1] + 1) * 8;
			}
			nh = ext[0];
			iphl += elen;
			if (iphl > l3)
				return -1;
		}
		if (is_ipv6_ext(nh))
			return -1; /* chain longer than the budget: fail closed */
		l4proto = nh;
	} else {
		return -1; /* cgroup_skb runs for inet sockets only; never seen */
	}

	/* Transport header: only the first fragment carries it. */
	if (first_frag) {
		if (l4proto == IPPROTO_TCP_) {
			struct tcphdr tcp;

			if (load_hdr(skb, iphl, &tcp, sizeof(tcp)))
				return -1;
			l4hl = tcp.doff * 4;
			if (l4hl < sizeof(tcp))
				return -1;
		} else if (l4proto == IPPROTO_UDP_) {
			struct udphdr udp;

			if (load_hdr(skb, iphl, &udp, sizeof(udp)))
				return -1;
			l4hl = sizeof(udp);
		} else if (l4proto == IPPROTO_ICMP_ || l4proto == IPPROTO_ICMPV6_) {
			__u8 tc[2];

			if (load_hdr(skb, iphl, tc, sizeof(tc)))
				return -1;
			l4hl = 8;
		}
		if (iphl + l4hl > l3)
			return -1;
	}

	/* Each wire segment repeats the IP and transport headers. */
	if (segs > 1)
		l3 = len + (segs - 1) * (iphl + l4hl);
	c->packets = segs;
	c->l3 = l3;
	c->l4 = l3 - segs * iphl;
	c->payload = c->l4 - segs * l4hl;
	return 0;
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

	ok = parse(skb, &c) == 0;
	if (!ok) {
		/* Only what is certain: the packets and the bytes handed to the hook. */
		c.packets = skb->gso_segs ? skb->gso_segs : 1;
		c.l3 = skb->len;
		c.l4 = 0;
		c.payload = 0;
	}

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
