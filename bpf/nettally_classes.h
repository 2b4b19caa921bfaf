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
 * cand, slot and rule are the chunk loop's (cls_chunk) input and answer;
 * slot and flags are nt_classify's arguments, kept here so that they are not
 * spilled to its stack frame (see there).
 */
#define NT_CLS_NO_RULE 0xFFFFFFFFu
struct nt_cls_scratch {
	__u32 eq[NT_CLS_DIMS];
	__u32 key[NT_CLS_DIMS]; /* each dimension's chunk 0 in the masks map */
	__u32 idx;		/* a map key: not on the stack, see cls_chunk */
	__u32 slot;
	__u32 rule;
	__u32 flags;
	__u64 cand;
	__u64 acc[NT_CLS_CHUNK_WORDS];
	struct nt_cls_lpm_key lpm;
	struct nt_cls_mac_key mac;
	struct nt_cls_iface_key iface;
	/* where class_of records the class of a packet without a flow entry */
	struct nt_flow_val no_flow;
};
NT_MAP(nt_cls_scratch, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct nt_cls_scratch);

/* nt_classify's flags beside the direction (bit 0) */
#define NT_CLS_F_LAN 2u	  /* a lan interface with a link layer: the MAC dimension */
#define NT_CLS_F_PORTS 4u /* TCP or UDP with known ports */

/*
 * Key 0 of the single-entry per-CPU maps (nt_cls_scratch, nettally.bpf.c's
 * nt_verdict), in .rodata rather than on the stack: nt_classify's frame and
 * its bpf_loop callback's add to the program's (512 bytes for the three, as
 * Linux 6.1 counts them: tests/bpf VerifierBudget).
 */
static const __u32 nt_cls_key0 = 0;

/*
 * A scratch field read from memory where it is used: clang would otherwise
 * keep it in a register across the helper calls, spilled to the stack.
 */
#define NT_CLS_RD(x) (*(volatile __typeof__(x) *)&(x))

/*
 * Equivalence id of value v of a scalar dimension (offset off) in the
 * scratch's slot; the map key in the scratch, not on the stack.
 */
static __always_inline __u32 cls_scalar(struct nt_cls_scratch *s, __u32 off, __u32 v)
{
	__u32 *e;

	s->idx = NT_CLS_RD(s->slot) * NT_CLS_SCALAR_SPAN + off + v;
	e = bpf_map_lookup_elem(&nt_cls_scalar, &s->idx);
	return e ? *e : 0;
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
	__u32 c;
	struct nt_cls_scratch *s = bpf_map_lookup_elem(&nt_cls_scratch, (void *)&nt_cls_key0);
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
 * The packet's class by the tables of slot (0 or 1): each dimension's
 * equivalence id; the AND of their summaries (one chunk: that chunk) gives
 * the candidate chunks; in ascending order, the first whose AND of the
 * dimensions' masks is not zero holds the first rule that matches, its lowest
 * set bit. flags: the direction (bit 0), NT_CLS_F_LAN, NT_CLS_F_PORTS.
 *
 * A global function: the verifier checks it once, on its own, with scalar
 * arguments, instead of once per state the parser and the counters before it
 * end in (Linux 6.1 prunes few of those: the lan programs went past the
 * complexity limit). Its working set stays in the scratch map: its frame and
 * cls_chunk's add to the program's, 512 bytes for the three.
 */
__attribute__((noinline)) int nt_classify(const struct pkt *p, __u32 ifindex, __u32 flags,
					  __u32 slot)
{
	struct nt_cls_scratch *s = bpf_map_lookup_elem(&nt_cls_scratch, (void *)&nt_cls_key0);
	struct nt_cls_info *info;
	__u32 *e, chunks, stride;
	void *masks;

	if (!p || !s)
		return NT_CLASS_OTHER;
	/* Live across the calls below: s, p and info only (the frame, see above). */
	s->slot = slot & 1;
	s->flags = flags;
	s->iface.slot = slot & 1;
	s->iface.ifindex = ifindex;
	info = bpf_map_lookup_elem(&nt_cls_info, &s->slot);
	if (!info)
		return NT_CLASS_OTHER;
	e = bpf_map_lookup_elem(&nt_cls_iface, &s->iface);
	s->eq[NT_CLS_IFACE] = e ? *e : info->none_eq[NT_CLS_IFACE];
	s->eq[NT_CLS_DIR] = cls_scalar(s, NT_CLS_OFF_DIR, NT_CLS_RD(s->flags) & 1);
	s->eq[NT_CLS_PROTO] = cls_scalar(s, NT_CLS_OFF_PROTO, p->proto);
	if (NT_CLS_RD(s->flags) & NT_CLS_F_PORTS) {
		s->eq[NT_CLS_SPORT] = cls_scalar(s, NT_CLS_OFF_SPORT, p->sport);
		s->eq[NT_CLS_DPORT] = cls_scalar(s, NT_CLS_OFF_DPORT, p->dport);
	} else {
		s->eq[NT_CLS_SPORT] = info->none_eq[NT_CLS_SPORT];
		s->eq[NT_CLS_DPORT] = info->none_eq[NT_CLS_DPORT];
	}
	s->eq[NT_CLS_DSCP] = cls_scalar(s, NT_CLS_OFF_DSCP, p->dscp & 63);
	s->eq[NT_CLS_VLAN] = cls_scalar(s, NT_CLS_OFF_VLAN, p->vlan & 0xFFF);
	s->eq[NT_CLS_SRC] = cls_addr(s, NT_CLS_RD(s->slot), NT_CLS_SRC, p, p->src);
	s->eq[NT_CLS_DST] = cls_addr(s, NT_CLS_RD(s->slot), NT_CLS_DST, p, p->dst);
	s->eq[NT_CLS_MAC] = info->none_eq[NT_CLS_MAC];
	if (NT_CLS_RD(s->flags) & NT_CLS_F_LAN) {
		s->mac.slot = NT_CLS_RD(s->slot);
		s->mac.pad = 0;
		__builtin_memcpy(
		    s->mac.mac, (NT_CLS_RD(s->flags) & 1) == NT_DIR_INGRESS ? p->smac : p->dmac, 6);
		e = bpf_map_lookup_elem(&nt_cls_mac, &s->mac);
		if (e)
			s->eq[NT_CLS_MAC] = *e;
	}
	chunks = cls_chunks(info);
	stride = cls_stride(chunks);
#pragma unroll
	for (int d = 0; d < NT_CLS_DIMS; d++)
		s->key[d] = info->base[d] + s->eq[d] * stride + (stride - chunks);
	s->cand = 1;
	if (chunks > 1) {
		masks = bpf_map_lookup_elem(&nt_cls_masks, &s->slot);
		if (!masks)
			return NT_CLASS_OTHER;
		s->cand = ~0ull;
#pragma unroll
		for (int d = 0; d < NT_CLS_DIMS; d++) {
			struct nt_cls_chunk *m;

			s->idx = s->key[d] - 1;
			m = bpf_map_lookup_elem(masks, &s->idx);
			if (!m)
				return NT_CLASS_OTHER;
			s->cand &= m->w[0];
		}
		if (!s->cand)
			return NT_CLASS_OTHER;
	}
	s->rule = NT_CLS_NO_RULE;
	bpf_loop(NT_CLS_MAX_CHUNKS, cls_chunk, NULL, 0);
	if (s->rule >= NT_CLS_MAX_RULES)
		return NT_CLASS_OTHER;
	s->idx = NT_CLS_RD(s->slot) * NT_CLS_MAX_RULES + s->rule;
	e = bpf_map_lookup_elem(&nt_cls_rule_class, &s->idx);
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
	/*
	 * Where the class goes is decided before the call: fv is the constant
	 * NULL on some paths, and a test of it after the call would have
	 * Linux < 6.3 mark every scalar precise (see nt_verdict).
	 */
	if (!fv) {
		fv = bpf_map_lookup_elem(&nt_cls_scratch, (void *)&nt_cls_key0);
		if (!fv)
			return NT_CLASS_OTHER;
		fv = &((struct nt_cls_scratch *)fv)->no_flow;
	}
	cls = nt_classify(p, ifindex,
			  (dir & 1) | (lan ? NT_CLS_F_LAN : 0) | (has_ports ? NT_CLS_F_PORTS : 0),
			  slot);
	fv->cls_id = cls;
	fv->cls_serial = info->serial;
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
