/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Traffic classes in the TC and XDP programs (nettally.bpf.c): the two slots
 * of tables nettallyd loads rule bundles into (daemon/kernel/classes.h), the
 * per-class counters, and classification: a packet's dimensions to
 * equivalence ids, their rule bitmasks ANDed, the first rule's class, cached
 * in the flow entry (candidate chunks by a summary AND, then bpf_loop over
 * them: kernel >= 5.17). Counting a packet into its class stays with the
 * other counters in nettally.bpf.c.
 *
 * Include after vmlinux.h, bpf_helpers.h, nettally_abi.h, nettally_parse.h and
 * nettally_maps.h.
 */
#ifndef NETTALLY_CLASSES_H
#define NETTALLY_CLASSES_H

/*
 * Traffic classes (nettally_abi.h): two slots of tables, nt_cls_gen picks the
 * one packets use (0: no ruleset loaded; the packet path costs one load).
 */
__u32 nt_cls_gen = 0;

NT_MAP(nt_cls_scalar, BPF_MAP_TYPE_ARRAY, NT_CLS_SLOTS *NT_CLS_SCALAR_SPAN, __u32, __u32);
NT_MAP(nt_cls_info, BPF_MAP_TYPE_ARRAY, NT_CLS_SLOTS, __u32, struct nt_cls_info);

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NT_CLS_SLOTS *NT_CLS_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nt_cls_lpm_key);
	__type(value, __u32);
} nt_cls_lpm SEC(".maps");

NT_MAP(nt_cls_mac, BPF_MAP_TYPE_HASH, NT_CLS_SLOTS *NT_CLS_MAX_MACS, struct nt_cls_mac_key, __u32);
NT_MAP(nt_cls_iface, BPF_MAP_TYPE_HASH, NT_CLS_SLOTS *NT_MAX_IFACES, struct nt_cls_iface_key,
       __u32);
NT_MAP(nt_cls_rule_class, BPF_MAP_TYPE_ARRAY, NT_CLS_SLOTS *NT_CLS_MAX_RULES, __u32, __u32);

/*
 * A slot's bitmasks: an array of chunks (nettally_abi.h: summaries and
 * NT_CLS_CHUNK_WORDS-word pieces of each equivalence id's mask), sized for its
 * ruleset by nettallyd.
 */
struct nt_cls_mask_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	/* struct nt_cls_chunk; clang's BTF would hold the struct only as a forward here */
	__type(value, __u64[NT_CLS_CHUNK_WORDS]);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, NT_CLS_SLOTS);
	__type(key, __u32);
	__array(values, struct nt_cls_mask_inner);
} nt_cls_masks SEC(".maps");

NT_MAP(nt_cls_counts, BPF_MAP_TYPE_PERCPU_HASH, NT_CLS_MAX_COUNTS, struct nt_cls_count_key,
       struct nt_counts);
NT_MAP(nt_cls_overflow, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct nt_counts);

/*
 * Classification's working set: off the stack, which account() nearly fills.
 * cand, slot and rule are the chunk loop's (cls_chunk) input and answer.
 */
#define NT_CLS_NO_RULE 0xFFFFFFFFu
struct nt_cls_scratch {
	__u32 eq[NT_CLS_DIMS];
	__u32 key[NT_CLS_DIMS]; /* each dimension's chunk 0 in the masks map */
	__u32 idx;		/* a masks map key: not on the stack, see cls_chunk */
	__u32 slot;
	__u32 rule;
	__u32 pad;
	__u64 cand;
	__u64 acc[NT_CLS_CHUNK_WORDS];
	struct nt_cls_lpm_key lpm;
	struct nt_cls_mac_key mac;
	struct nt_cls_iface_key iface;
};
NT_MAP(nt_cls_scratch, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct nt_cls_scratch);

/* Equivalence id of value v of a scalar dimension (offset off) in a slot. */
static __always_inline __u32 cls_scalar(__u32 slot, __u32 off, __u32 v, __u32 none)
{
	__u32 idx = slot * NT_CLS_SCALAR_SPAN + off + v;
	__u32 *e = bpf_map_lookup_elem(&nt_cls_scalar, &idx);

	return e ? *e : none;
}

static __always_inline __u32 cls_addr(struct nt_cls_scratch *s, __u32 slot, __u8 dim,
				      const struct pkt *p, const __u32 *addr)
{
	__u32 *e;

	s->lpm.prefixlen = NT_CLS_LPM_KEY_BITS + (p->family == NT_AF_INET ? 32 : 128);
	s->lpm.slot = slot;
	s->lpm.dim = dim;
	s->lpm.family = p->family;
	s->lpm.pad = 0;
	__builtin_memcpy(s->lpm.addr, addr, sizeof(s->lpm.addr));
	e = bpf_map_lookup_elem(&nt_cls_lpm, &s->lpm);
	return e ? *e : 0;
}

/*
 * Index of the lowest set bit of a non-zero word: the bits below it counted
 * (SWAR popcount). No branches, so the verifier follows one path, not one per
 * bit index.
 */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u64 v = (x & -x) - 1;

	v -= (v >> 1) & 0x5555555555555555ull;
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0Full;
	return (__u32)((v * 0x0101010101010101ull) >> 56);
}

/*
 * Entries of an equivalence id in the masks map (nettally_abi.h): a summary
 * when the ruleset spans more than one chunk, then its chunks.
 */
static __always_inline __u32 cls_chunks(const struct nt_cls_info *info)
{
	return (info->words + NT_CLS_CHUNK_WORDS - 1) / NT_CLS_CHUNK_WORDS;
}

static __always_inline __u32 cls_stride(__u32 chunks) { return chunks == 1 ? 1 : chunks + 1; }

/*
 * bpf_loop callback: the lowest candidate chunk left in the scratch's cand,
 * ANDed over the dimensions; stops (1) at the first matching rule (written to
 * rule) or when no candidate is left. The verifier checks this body once,
 * however many chunks a ruleset has. Its stack frame adds to account()'s
 * (512 bytes for both), so its state stays in the scratch map.
 */
static long cls_chunk(__u32 i, void *unused)
{
	__u32 zero = 0, c;
	struct nt_cls_scratch *s = bpf_map_lookup_elem(&nt_cls_scratch, &zero);
	void *masks;
	__u64 cand;

	if (!s)
		return 1;
	cand = s->cand;
	if (!cand)
		return 1;
	s->cand = cand & (cand - 1);
	c = lowest_bit(cand);
	masks = bpf_map_lookup_elem(&nt_cls_masks, &s->slot);
	if (!masks)
		return 1;
	s->acc[0] = s->acc[1] = s->acc[2] = s->acc[3] = ~0ull;
#pragma unroll
	for (int d = 0; d < NT_CLS_DIMS; d++) {
		struct nt_cls_chunk *m;

		s->idx = s->key[d] + c;
		m = bpf_map_lookup_elem(masks, &s->idx);
		if (!m)
			return 1;
		s->acc[0] &= m->w[0];
		s->acc[1] &= m->w[1];
		s->acc[2] &= m->w[2];
		s->acc[3] &= m->w[3];
	}
	c *= NT_CLS_CHUNK_WORDS * 64;
	if (s->acc[0])
		s->rule = c + lowest_bit(s->acc[0]);
	else if (s->acc[1])
		s->rule = c + 64 + lowest_bit(s->acc[1]);
	else if (s->acc[2])
		s->rule = c + 128 + lowest_bit(s->acc[2]);
	else if (s->acc[3])
		s->rule = c + 192 + lowest_bit(s->acc[3]);
	else
		return 0;
	return 1;
}

/*
 * The packet's class by the tables of generation gen (1 or 2): each
 * dimension's equivalence id; the AND of their summaries (one chunk: that
 * chunk) gives the candidate chunks; in ascending order, the first whose AND
 * of the dimensions' masks is not zero holds the first rule that matches, its
 * lowest set bit.
 */
static __always_inline __u32 classify(const struct pkt *p, __u32 ifindex, __u32 dir, const int lan,
				      int has_ports, __u32 slot, struct nt_cls_info *info)
{
	__u32 zero = 0;
	struct nt_cls_scratch *s = bpf_map_lookup_elem(&nt_cls_scratch, &zero);
	void *masks = bpf_map_lookup_elem(&nt_cls_masks, &slot);
	__u32 *eq, chunks, stride, *e;
	__u64 cand = ~0ull;

	if (!s || !masks)
		return NT_CLASS_OTHER;
	eq = s->eq;
	s->iface.slot = slot;
	s->iface.ifindex = ifindex;
	e = bpf_map_lookup_elem(&nt_cls_iface, &s->iface);
	eq[NT_CLS_IFACE] = e ? *e : info->none_eq[NT_CLS_IFACE];
	eq[NT_CLS_DIR] = cls_scalar(slot, NT_CLS_OFF_DIR, dir & 1, 0);
	eq[NT_CLS_PROTO] = cls_scalar(slot, NT_CLS_OFF_PROTO, p->proto, 0);
	eq[NT_CLS_SPORT] = has_ports ? cls_scalar(slot, NT_CLS_OFF_SPORT, p->sport, 0)
				     : info->none_eq[NT_CLS_SPORT];
	eq[NT_CLS_DPORT] = has_ports ? cls_scalar(slot, NT_CLS_OFF_DPORT, p->dport, 0)
				     : info->none_eq[NT_CLS_DPORT];
	eq[NT_CLS_DSCP] = cls_scalar(slot, NT_CLS_OFF_DSCP, p->dscp & 63, 0);
	eq[NT_CLS_VLAN] = cls_scalar(slot, NT_CLS_OFF_VLAN, p->vlan & 0xFFF, 0);
	eq[NT_CLS_SRC] = cls_addr(s, slot, NT_CLS_SRC, p, p->src);
	eq[NT_CLS_DST] = cls_addr(s, slot, NT_CLS_DST, p, p->dst);
	eq[NT_CLS_MAC] = info->none_eq[NT_CLS_MAC];
	if (lan) {
		s->mac.slot = slot;
		s->mac.pad = 0;
		__builtin_memcpy(s->mac.mac, dir == NT_DIR_INGRESS ? p->smac : p->dmac, 6);
		e = bpf_map_lookup_elem(&nt_cls_mac, &s->mac);
		if (e)
			eq[NT_CLS_MAC] = *e;
	}
	chunks = cls_chunks(info);
	stride = cls_stride(chunks);
#pragma unroll
	for (int d = 0; d < NT_CLS_DIMS; d++)
		s->key[d] = info->base[d] + eq[d] * stride + (stride - chunks);
	if (chunks > 1) {
#pragma unroll
		for (int d = 0; d < NT_CLS_DIMS; d++) {
			struct nt_cls_chunk *m;

			s->idx = s->key[d] - 1;
			m = bpf_map_lookup_elem(masks, &s->idx);
			if (!m)
				return NT_CLASS_OTHER;
			cand &= m->w[0];
		}
		if (!cand)
			return NT_CLASS_OTHER;
	} else {
		cand = 1;
	}
	s->cand = cand;
	s->slot = slot;
	s->rule = NT_CLS_NO_RULE;
	bpf_loop(NT_CLS_MAX_CHUNKS, cls_chunk, NULL, 0);
	if (s->rule >= NT_CLS_MAX_RULES)
		return NT_CLASS_OTHER;
	slot = slot * NT_CLS_MAX_RULES + s->rule;
	e = bpf_map_lookup_elem(&nt_cls_rule_class, &slot);
	return e ? *e : NT_CLASS_OTHER;
}

/*
 * The packet's class under generation gen (1 or 2). fv: this CPU's value of
 * the packet's flow, or NULL (no flow entry, a fragment): the class cached
 * there is reused while it was computed under the same ruleset (serial) and
 * the ruleset tests nothing that varies between packets of a flow. Every
 * class computed is recorded there with its ruleset's serial, so the flow
 * carries the class of its latest classified packet (ListFlows, records,
 * IPFIX); a serial never repeats, so a class recorded under a per-packet
 * ruleset is never reused.
 */
static __always_inline __u32 class_of(const struct pkt *p, __u32 ifindex, __u32 dir, const int lan,
				      int has_ports, __u32 gen, struct nt_flow_val *fv)
{
	__u32 slot = (gen - 1) & 1;
	struct nt_cls_info *info = bpf_map_lookup_elem(&nt_cls_info, &slot);
	__u32 cls;

	if (!info)
		return NT_CLASS_OTHER;
	if (fv && !(info->flags & NT_CLS_PER_PACKET) && fv->cls_serial == info->serial)
		return fv->cls_id;
	cls = classify(p, ifindex, dir, lan, has_ports, slot, info);
	if (fv) {
		fv->cls_id = cls;
		fv->cls_serial = info->serial;
	}
	return cls;
}

/*
 * Per lan host and class (nettally_abi.h nt_host_cls), filled by account()
 * beside nt_hosts; sized by nettallyd before load. Not preallocated: an entry
 * takes memory when a host first has traffic in a class, so a large bound
 * costs nothing until it is used.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NT_DEFAULT_MAX_HOST_CLASSES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nt_host_cls_key);
	__type(value, struct nt_host_cls_val);
} nt_host_cls SEC(".maps");
NT_MAP(nt_host_cls_overflow, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct nt_host_cls_val);

/* count_host_class's key and first value: off the stack, which account() nearly fills. */
struct nt_host_cls_scratch {
	struct nt_host_cls_key key;
	struct nt_host_cls_val init;
	/*
	 * Set by account() for every IP packet on a lan interface while classes
	 * are on: 1 when count_host counted it. Kept here, not in a local, so
	 * the verifier does not explore the class lookup once per value.
	 */
	__u32 pending;
	__u32 pad;
	/* count_class's new nt_cls_counts value (see there) */
	struct nt_counts cls_init;
};
NT_MAP(nt_host_cls_scratch, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct nt_host_cls_scratch);

#endif /* NETTALLY_CLASSES_H */
