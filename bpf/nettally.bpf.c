// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nettally data plane: TC clsact programs that count every packet once per
 * interface and direction, by layer, into per-CPU maps.
 *
 * Each packet is parsed once into a struct pkt (figures + flow identity) and
 * then added to the interface total and to exactly one category: its flow, or
 * one unattributed bucket. The interface total is written first, the category
 * second, so a reader that reads categories and then the totals never sees
 * more in the categories than in the totals (see daemon/core/collector.cpp).
 *
 * The parser (nettally_parse.h, shared with the cgroup_skb programs of
 * cgroup.bpf.c) serves TC (struct __sk_buff) and XDP (struct xdp_md): an
 * interface in XDP mode counts ingress at XDP and egress at TC, never both
 * hooks in one direction. The programs never drop or modify packets, except
 * where a threshold's action is in force (nt_policy, lan-role interfaces
 * only): block drops, throttle polices (or paces, EDT) a host's traffic.
 * Otherwise TC returns TC_ACT_UNSPEC (the next filter or the default action
 * decides) and XDP returns XDP_PASS.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nettally_abi.h"
#include "nettally_parse.h"
#include "nettally_maps.h"
#include "nettally_classes.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define NSEC_PER_SEC 1000000000ull

/* Start-up knobs, set by nettallyd through the skeleton's rodata before load. */
const volatile __u8 cfg_count_hosts = 1;
/*
 * 0: no traffic classes (the config has no rules: section). The verifier then drops the
 * classifier and the class counters as dead code: a smaller, cheaper program (on Linux 6.1
 * nt_tc_egress_lan 75,773 verified instructions against 158,144 with classes).
 */
const volatile __u8 cfg_classes = 1;

NT_MAP(nt_ifaces, BPF_MAP_TYPE_PERCPU_HASH, NT_MAX_IFACES *NT_DIR_MAX, struct nt_iface_key,
       struct nt_iface_val);

/* Userspace only (nettally_abi.h): created and pinned with the counters. */
NT_MAP(nt_evicted, BPF_MAP_TYPE_HASH, NT_MAX_IFACES *NT_DIR_MAX, struct nt_iface_key,
       struct nt_evicted_val);

NT_MAP(nt_flows, BPF_MAP_TYPE_PERCPU_HASH, NT_DEFAULT_MAX_FLOWS, struct nt_flow_key,
       struct nt_flow_val);

NT_MAP(nt_hosts, BPF_MAP_TYPE_PERCPU_HASH, NT_DEFAULT_MAX_HOSTS, struct nt_host_key,
       struct nt_host_val);

NT_MAP(nt_frags, BPF_MAP_TYPE_LRU_HASH, NT_MAX_FRAGS, struct nt_frag_key, struct nt_frag_val);

/*
 * nt_meta[0] holds NT_ABI_VERSION, written by nettallyd when it creates the
 * maps. A later nettallyd reads it before reusing pinned maps, so a layout
 * change is refused with a message instead of misread.
 */
NT_MAP(nt_meta, BPF_MAP_TYPE_ARRAY, 1, __u32, __u32);

/*
 * Threshold actions in force (daemon/kernel/enforce.cpp). Not pinned: the daemon
 * re-applies them at start. nt_policy_kinds says which kinds of keys
 * nt_policy holds (NT_POLICY_KIND_*), so with no action in force the packet
 * path costs one load of this global and no lookup.
 */
__u32 nt_policy_kinds = 0;

NT_MAP(nt_policy, BPF_MAP_TYPE_HASH, NT_POLICY_MAX_ENTRIES, struct nt_policy_key,
       struct nt_policy_val);

/* lan interfaces whose root qdisc is fq: throttled egress is paced there (EDT). */
NT_MAP(nt_policy_edt, BPF_MAP_TYPE_HASH, NT_MAX_IFACES, __u32, __u8);

/*
 * Subscribers: the bindings (address or prefix -> user) and the per-user
 * counters. nt_users_on is set by nettallyd when subscribers are configured;
 * while it is 0 the packet path costs one load of it.
 */
__u32 nt_users_on = 0;
/* Moved on by nettallyd after every change of nt_bindings: see nt_host_val.user. */
__u32 nt_bind_serial = 0;

/* An LPM trie must be created without preallocation: NT_MAP has no flags. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NT_BIND_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nt_bind_key);
	__type(value, struct nt_bind_val);
} nt_bindings SEC(".maps");

NT_MAP(nt_user_counts, BPF_MAP_TYPE_PERCPU_HASH, NT_DEFAULT_MAX_USER_COUNTS, struct nt_user_key,
       struct nt_user_val);

/* Userspace only: user id -> name, pinned with the counters. */
NT_MAP(nt_user_names, BPF_MAP_TYPE_HASH, NT_BIND_MAX_ENTRIES, __u32, struct nt_user_name);

NT_MAP(nt_user_overflow, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct nt_user_val);

static __always_inline void add_counts(struct nt_counts *to, const struct nt_counts *c)
{
	to->packets += c->packets;
	to->l2 += c->l2;
	to->l3 += c->l3;
	to->l4 += c->l4;
	to->payload += c->payload;
}

static __always_inline struct nt_iface_val *iface_val(__u32 ifindex, __u32 dir)
{
	struct nt_iface_key key = {.ifindex = ifindex, .dir = dir};
	struct nt_iface_val *v = bpf_map_lookup_elem(&nt_ifaces, &key);

	if (v)
		return v;
	/* nettallyd creates the entry before attaching; this covers a race only. */
	struct nt_iface_val zero = {};

	bpf_map_update_elem(&nt_ifaces, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&nt_ifaces, &key);
}

/*
 * Returns 0 when counted in a flow, -1 when the flow map had no room. With
 * out, *out gets this CPU's value of the flow (for the class cache).
 */
static __always_inline int count_flow(const struct pkt *p, __u32 ifindex, __u32 dir, __u64 now,
				      struct nt_flow_val **out)
{
	struct nt_flow_key key = {
	    .ifindex = ifindex,
	    .dir = dir,
	    .proto = p->proto,
	    .family = p->family,
	    .sport = p->sport,
	    .dport = p->dport,
	};
	struct nt_flow_val *v;

	__builtin_memcpy(key.src, p->src, sizeof(key.src));
	__builtin_memcpy(key.dst, p->dst, sizeof(key.dst));

	v = bpf_map_lookup_elem(&nt_flows, &key);
	if (!v) {
		struct nt_flow_val init = {
		    .c = p->c,
		    .first_ns = now,
		    .last_ns = now,
		    .tcp_flags = p->tcp_flags,
		};
		long err = bpf_map_update_elem(&nt_flows, &key, &init, BPF_NOEXIST);

		if (err == 0) {
			if (out)
				*out = bpf_map_lookup_elem(&nt_flows, &key);
			return 0;
		}
		/* Another CPU created it in between: add to our slot below. */
		v = bpf_map_lookup_elem(&nt_flows, &key);
		if (!v)
			return -1;
	}
	add_counts(&v->c, &p->c);
	if (!v->first_ns)
		v->first_ns = now;
	v->last_ns = now;
	v->tcp_flags |= p->tcp_flags;
	if (out)
		*out = v;
	return 0;
}

/*
 * Returns 0 when counted, -1 when the host map had no room. *out: the host's
 * entry on this CPU when it existed before (NULL for a new one).
 */
static __always_inline int count_host(const struct pkt *p, __u32 ifindex, __u32 dir, __u64 now,
				      struct nt_host_val **out)
{
	struct nt_host_key key = {.ifindex = ifindex, .family = p->family};
	struct nt_host_val *v;

	if (dir == NT_DIR_INGRESS) {
		__builtin_memcpy(key.mac, p->smac, 6);
		__builtin_memcpy(key.addr, p->src, sizeof(key.addr));
	} else {
		if (p->dmac[0] & 1)
			return 0; /* multicast/broadcast: no single host received it */
		__builtin_memcpy(key.mac, p->dmac, 6);
		__builtin_memcpy(key.addr, p->dst, sizeof(key.addr));
	}

	v = bpf_map_lookup_elem(&nt_hosts, &key);
	if (!v) {
		struct nt_host_val init = {.first_ns = now, .last_ns = now};

		if (dir == NT_DIR_INGRESS)
			init.sent = p->c;
		else
			init.received = p->c;
		if (bpf_map_update_elem(&nt_hosts, &key, &init, BPF_NOEXIST) == 0)
			return 0;
		v = bpf_map_lookup_elem(&nt_hosts, &key);
		if (!v)
			return -1;
	}
	add_counts(dir == NT_DIR_INGRESS ? &v->sent : &v->received, &p->c);
	if (!v->first_ns)
		v->first_ns = now;
	v->last_ns = now;
	*out = v;
	return 0;
}

/*
 * The user bound to the packet's host address (source on ingress, destination
 * on egress) when it crossed the interface, NT_USER_UNBOUND when none is.
 */
static __always_inline __u32 user_of(const struct pkt *p, __u32 dir)
{
	struct nt_bind_key key = {.family = p->family};
	struct nt_bind_val *v;

	key.prefixlen = NT_BIND_KEY_BITS + (p->family == NT_AF_INET ? 32 : 128);
	__builtin_memcpy(key.addr, dir == NT_DIR_INGRESS ? p->src : p->dst, sizeof(key.addr));
	v = bpf_map_lookup_elem(&nt_bindings, &key);
	return v ? v->user : NT_USER_UNBOUND;
}

/*
 * Adds the packet to its user's counters on this interface (or to
 * nt_user_overflow); user: NT_USER_NONE when not looked up yet, then from the
 * host entry's cache (hv, may be NULL) while nt_bind_serial has not moved.
 */
static __always_inline void count_user(const struct pkt *p, __u32 ifindex, __u32 dir, __u32 user,
				       struct nt_host_val *hv)
{
	struct nt_user_key key = {.ifindex = ifindex, .user = user};
	struct nt_user_val *v;

	if (user == NT_USER_NONE) {
		/* Read before the trie: a change after this read moves it again. */
		__u32 serial = *(volatile __u32 *)&nt_bind_serial;

		if (hv && hv->bind_serial == serial) {
			key.user = hv->user;
		} else {
			key.user = user_of(p, dir);
			if (hv) {
				hv->user = key.user;
				hv->bind_serial = serial;
			}
		}
	}
	v = bpf_map_lookup_elem(&nt_user_counts, &key);

	if (!v) {
		struct nt_user_val init = {};

		if (dir == NT_DIR_INGRESS)
			init.sent = p->c;
		else
			init.received = p->c;
		if (bpf_map_update_elem(&nt_user_counts, &key, &init, BPF_NOEXIST) == 0)
			return;
		v = bpf_map_lookup_elem(&nt_user_counts, &key);
		if (!v) {
			__u32 zero = 0;

			v = bpf_map_lookup_elem(&nt_user_overflow, &zero);
			if (!v)
				return;
		}
	}
	add_counts(dir == NT_DIR_INGRESS ? &v->sent : &v->received, &p->c);
}

/* Adds the packet to its class on this interface (or to nt_cls_overflow). */
static __always_inline void count_class(const struct pkt *p, __u32 ifindex, __u32 dir,
					__u32 class_id)
{
	struct nt_cls_count_key key = {.ifindex = ifindex, .dir = dir, .class_id = class_id};
	struct nt_counts *v = bpf_map_lookup_elem(&nt_cls_counts, &key);
	__u32 zero = 0;

	if (!v) {
		/*
		 * The new entry's value from the per-CPU scratch: p is the argument
		 * of a global function (nt_count_classes), plain memory to the
		 * verifier, which Linux 6.1 refuses as a map helper's value (only the
		 * stack, a packet or a map value), and the stack has no room left
		 * (512 bytes for the caller's frame and this one together).
		 */
		struct nt_host_cls_scratch *s = bpf_map_lookup_elem(&nt_host_cls_scratch, &zero);

		if (!s)
			return;
		s->cls_init = p->c;
		if (bpf_map_update_elem(&nt_cls_counts, &key, &s->cls_init, BPF_NOEXIST) == 0)
			return;
		v = bpf_map_lookup_elem(&nt_cls_counts, &key);
		if (!v) {
			v = bpf_map_lookup_elem(&nt_cls_overflow, &zero);
			if (!v)
				return;
		}
	}
	add_counts(v, &p->c);
}

/* Notes whether count_host counted the packet (see nt_host_cls_scratch.pending). */
static __always_inline void host_class_pending(__u32 counted)
{
	__u32 zero = 0;
	struct nt_host_cls_scratch *s = bpf_map_lookup_elem(&nt_host_cls_scratch, &zero);

	if (s)
		s->pending = counted;
}

/*
 * Adds the packet to its host's entry for its class (or to
 * nt_host_cls_overflow) when count_host counted it (host_class_pending).
 */
static __always_inline void count_host_class(const struct pkt *p, __u32 ifindex, __u32 dir,
					     __u32 class_id)
{
	__u32 zero = 0;
	struct nt_host_cls_scratch *s = bpf_map_lookup_elem(&nt_host_cls_scratch, &zero);
	struct nt_host_cls_val *v;

	if (!s || !s->pending)
		return;
	__builtin_memset(s, 0, sizeof(*s));
	s->key.host.ifindex = ifindex;
	s->key.host.family = p->family;
	s->key.class_id = class_id;
	if (dir == NT_DIR_INGRESS) {
		__builtin_memcpy(s->key.host.mac, p->smac, 6);
		__builtin_memcpy(s->key.host.addr, p->src, sizeof(s->key.host.addr));
		s->init.sent = p->c;
	} else {
		__builtin_memcpy(s->key.host.mac, p->dmac, 6);
		__builtin_memcpy(s->key.host.addr, p->dst, sizeof(s->key.host.addr));
		s->init.received = p->c;
	}
	v = bpf_map_lookup_elem(&nt_host_cls, &s->key);
	if (!v) {
		if (bpf_map_update_elem(&nt_host_cls, &s->key, &s->init, BPF_NOEXIST) == 0)
			return;
		v = bpf_map_lookup_elem(&nt_host_cls, &s->key);
		if (!v) {
			v = bpf_map_lookup_elem(&nt_host_cls_overflow, &zero);
			if (!v)
				return;
		}
	}
	add_counts(dir == NT_DIR_INGRESS ? &v->sent : &v->received, &p->c);
}

/*
 * The packet's class counters: its interface and direction's (count_class)
 * and, with host set (an IP packet on a lan interface that counts hosts), its
 * host's (count_host_class). A global function: the verifier checks it once,
 * not once per state the classification before it ends in (the lan
 * programs' budget, tests/bpf/verifier_budget_test.cpp).
 */
__attribute__((noinline)) int nt_count_classes(const struct pkt *p, __u32 ifindex, __u32 dir,
					       __u32 class_id, __u32 host)
{
	if (!p)
		return 0;
	count_class(p, ifindex, dir, class_id);
	/* After the host's total: the daemon reads host classes, hosts, host classes. */
	if (host)
		count_host_class(p, ifindex, dir, class_id);
	return 0;
}

/*
 * Later fragments carry no ports: take them from the first fragment. Returns
 * 1 when the ports are known (a first fragment, or a later one whose first
 * fragment was seen), 0 otherwise.
 */
static __always_inline int track_fragment(struct pkt *p, __u32 ifindex, __u32 dir)
{
	struct nt_frag_key key = {
	    .ifindex = ifindex,
	    .family = p->family,
	    .proto = p->proto,
	    .dir = dir,
	    .id = p->frag_id,
	};

	__builtin_memcpy(key.src, p->src, sizeof(key.src));
	__builtin_memcpy(key.dst, p->dst, sizeof(key.dst));
	if (p->frag == 1) {
		struct nt_frag_val v = {.sport = p->sport, .dport = p->dport};

		bpf_map_update_elem(&nt_frags, &key, &v, BPF_ANY);
		return 1;
	}
	struct nt_frag_val *v = bpf_map_lookup_elem(&nt_frags, &key);

	if (!v)
		return 0;
	p->sport = v->sport;
	p->dport = v->dport;
	return 1;
}

/* What the policy decided for one packet. */
struct verdict {
	__u32 drop;
	__u64 tstamp; /* EDT departure time (CLOCK_MONOTONIC ns), 0 = leave as is */
};

/*
 * The verdict lives in this per-CPU scratch, not on the stack: what the
 * program reads of it after the class counters (tc_account, xdp_account) is
 * then an unknown value to the verifier. A known one (0 where no policy
 * applied) would be marked precise, and Linux < 6.3 cannot trace precision
 * back across the calls of nt_classify and nt_count_classes: it marks every
 * scalar precise instead, and then prunes almost no state (the lan programs
 * went past the complexity limit on 6.1).
 */
NT_MAP(nt_verdict, BPF_MAP_TYPE_PERCPU_ARRAY, 1, __u32, struct verdict);

/* This CPU's verdict, cleared for a new packet (NULL: never, the array has key 0). */
static __always_inline struct verdict *verdict_new(void)
{
	struct verdict *vd = bpf_map_lookup_elem(&nt_verdict, (void *)&nt_cls_key0);

	if (vd) {
		vd->drop = 0;
		vd->tstamp = 0;
	}
	return vd;
}

/* Of two entries in force for one packet: block beats throttle, the lower rate wins. */
static __always_inline struct nt_policy_val *stricter(struct nt_policy_val *a,
						      struct nt_policy_val *b)
{
	if (!a)
		return b;
	if (!b || a->action == NT_POLICY_BLOCK)
		return a;
	if (b->action == NT_POLICY_BLOCK || b->rate < a->rate)
		return b;
	return a;
}

/*
 * The policy entry of the packet's host on a lan interface: the source on
 * ingress (what the host sends), the destination on egress (what it receives),
 * by address, by MAC, and by the user bound to the address (*user, looked up
 * here when user keys exist so count_user need not look again; NT_USER_NONE
 * otherwise). Where several apply, the stricter one.
 */
static __always_inline struct nt_policy_val *policy_of(const struct pkt *p, __u32 dir, __u32 kinds,
						       __u32 *user)
{
	struct nt_policy_key key = {};
	struct nt_policy_val *v = NULL;

	if ((kinds & NT_POLICY_KIND_IP) && p->family) {
		key.family = p->family;
		__builtin_memcpy(key.addr, dir == NT_DIR_INGRESS ? p->src : p->dst,
				 sizeof(key.addr));
		v = bpf_map_lookup_elem(&nt_policy, &key);
	}
	if (kinds & NT_POLICY_KIND_MAC) {
		__builtin_memset(&key, 0, sizeof(key));
		key.family = NT_POLICY_MAC;
		__builtin_memcpy(key.addr, dir == NT_DIR_INGRESS ? p->smac : p->dmac, 6);
		v = stricter(v, bpf_map_lookup_elem(&nt_policy, &key));
	}
	if ((kinds & NT_POLICY_KIND_USER) && p->family) {
		*user = user_of(p, dir);
		if (*user != NT_USER_UNBOUND) {
			__builtin_memset(&key, 0, sizeof(key));
			key.family = NT_POLICY_USER;
			key.addr[0] = *user;
			v = stricter(v, bpf_map_lookup_elem(&nt_policy, &key));
		}
	}
	return v;
}

/*
 * Block drops. Throttle runs the GCRA schedule of nt_policy_val: as a
 * policer it drops a packet that would run the schedule more than burst_ns
 * ahead of now; on an egress interface with fq (EDT) it stamps the packet
 * with its departure time and drops only beyond horizon_ns. A packet is
 * charged its wire bytes (l2, every segment of a GSO/GRO packet).
 */
static __always_inline void enforce(struct nt_policy_val *v, const struct nt_counts *c,
				    const __u32 dir, __u32 ifindex, struct verdict *vd)
{
	__u32 d = dir & 1;
	__u64 now, t, cost, limit;
	int edt = 0;

	if (v->action == NT_POLICY_THROTTLE) {
		if (!v->rate)
			return;
		if (dir == NT_DIR_EGRESS && bpf_map_lookup_elem(&nt_policy_edt, &ifindex))
			edt = 1;
		now = bpf_ktime_get_ns();
		cost = c->l2 * NSEC_PER_SEC / v->rate;
		bpf_spin_lock(&v->lock);
		t = v->tat[d];
		if (t < now)
			t = now;
		limit = edt ? v->horizon_ns : v->burst_ns;
		if (t - now > limit) {
			vd->drop = 1;
			v->dropped_packets[d] += c->packets;
			v->dropped_bytes[d] += c->l2;
		} else {
			v->tat[d] = t + cost;
		}
		bpf_spin_unlock(&v->lock);
		if (edt && !vd->drop)
			vd->tstamp = t;
		return;
	}
	if (v->action == NT_POLICY_BLOCK) {
		vd->drop = 1;
		bpf_spin_lock(&v->lock);
		v->dropped_packets[d] += c->packets;
		v->dropped_bytes[d] += c->l2;
		bpf_spin_unlock(&v->lock);
	}
}

/*
 * vlan_fix: XDP mode's TC-ingress companion (see nt_tc_ingress_xdpfix_*).
 * Counts only the 4 bytes per segment of a VLAN tag that was held outside the
 * frame when XDP counted it, into the same interface, category and host.
 */
static __always_inline __u8 account(const struct pctx *c, __u32 dir, const int lan, const int xdp,
				    const int l3dev, const int vlan_fix, struct verdict *vd)
{
	struct pkt p = {};
	struct nt_iface_val *iv;
	__u32 cls_gen = cfg_classes ? *(volatile __u32 *)&nt_cls_gen : 0;
	struct nt_flow_val *fv = NULL;
	int ports_known = 1;
	int ip = 0;
	__u32 user = NT_USER_NONE;
	struct nt_host_val *hv = NULL;
	__u64 now;

	parse(c, &p, xdp, l3dev, 1);
	if (lan && !vlan_fix) {
		__u32 kinds = *(volatile __u32 *)&nt_policy_kinds;

		if (kinds) {
			struct nt_policy_val *pv = policy_of(&p, dir, kinds, &user);

			if (pv)
				enforce(pv, &p.c, dir, c->ifindex, vd);
			/*
			 * What is counted is what crossed the wire: a packet
			 * dropped on egress never left (a capture does not show
			 * it), one dropped on ingress did arrive (a capture
			 * shows it) and is counted below.
			 */
			if (vd->drop && dir == NT_DIR_EGRESS)
				return p.data_tags;
		}
	}
	if (vlan_fix) {
		__u64 segs = p.c.packets;

		/*
		 * The stack moves a tag from the frame into metadata before TC
		 * when none was there: then TC sees one tag fewer in the frame
		 * than XDP did, and XDP already counted it.
		 */
		if (p.data_tags != c->xdp_data_tags)
			return 0;
		p.c = (struct nt_counts){.l2 = 4 * segs};
		p.tcp_flags = 0;
	}

	iv = iface_val(c->ifindex, dir);
	if (!iv)
		return p.data_tags;
	add_counts(&iv->total, &p.c);

	if (p.bucket == NT_BUCKET_MAX) {
		ip = 1;
		if (p.frag)
			ports_known = track_fragment(&p, c->ifindex, dir);
		/*
		 * The stamps need poll resolution, not ns: the coarse clock is
		 * the tick's time, read without a clock-source access.
		 */
		now = bpf_ktime_get_coarse_ns();
		if (count_flow(&p, c->ifindex, dir, now, cls_gen && !p.frag ? &fv : NULL))
			p.bucket = NT_BUCKET_FLOW_OVERFLOW;
		if (lan && cfg_count_hosts) {
			int counted = 0;

			if (count_host(&p, c->ifindex, dir, now, &hv))
				iv->host_overflow += p.c.packets;
			else
				counted = dir == NT_DIR_INGRESS || !(p.dmac[0] & 1);
			if (cls_gen)
				host_class_pending(counted);
		}
		/* The packets a host is counted for: see count_host. */
		if (lan && *(volatile __u32 *)&nt_users_on &&
		    (dir == NT_DIR_INGRESS || !(p.dmac[0] & 1)))
			count_user(&p, c->ifindex, dir, user, hv);
	}
	if (p.bucket < NT_BUCKET_MAX)
		add_counts(&iv->bucket[p.bucket], &p.c);
	if (cls_gen) {
		/* Non-IP and unparsable frames are in class other: every packet has a class. */
		__u32 cls = NT_CLASS_OTHER;

		if (ip)
			cls = class_of(&p, c->ifindex, dir, lan && !l3dev,
				       ports_known &&
					   (p.proto == IPPROTO_TCP_ || p.proto == IPPROTO_UDP_),
				       cls_gen, fv);
		nt_count_classes(&p, c->ifindex, dir, cls, ip && lan && cfg_count_hosts);
	}
	return p.data_tags;
}

/* XDP leaves this in the packet's metadata: "counted at XDP, N tags in the frame". */
#define NT_XDP_MARK 0x4E540000u

static __always_inline int tc_account(struct __sk_buff *skb, __u32 dir, const int lan,
				      const int l3dev, const int vlan_fix)
{
	__u32 xdp_tags = 0;

	if (vlan_fix) {
		void *data = (void *)(long)skb->data;
		void *meta = (void *)(long)skb->data_meta;
		__u32 mark;

		if (!skb->vlan_present || meta + 4 > data)
			return TC_ACT_UNSPEC;
		mark = *(__u32 *)meta;
		if ((mark & 0xFFFF0000u) != NT_XDP_MARK)
			return TC_ACT_UNSPEC;
		xdp_tags = mark & 0xFF;
	}

	struct pctx c = {
	    .vlan_hw = skb->vlan_present ? 4 : 0,
	    .hw_tags = skb->vlan_present,
	    .vlan_tci = skb->vlan_present ? skb->vlan_tci : 0,
	    .ifindex = skb->ifindex,
	    .xdp_data_tags = xdp_tags,
	};
	struct verdict *vd = verdict_new();

	if (!vd)
		return TC_ACT_UNSPEC;
	pctx_from_skb(&c, skb);
	account(&c, dir, lan, 0, l3dev, vlan_fix, vd);
	if (vd->drop)
		return TC_ACT_SHOT;
	if (vd->tstamp)
		skb->tstamp = vd->tstamp; /* EDT: fq holds the packet until then */
	return TC_ACT_UNSPEC;
}

/*
 * XDP runs before GRO and before the stack moves VLAN tags to metadata, so every
 * frame is one wire packet with its headers in data; except a tag the NIC
 * (or a veth peer's tx-vlan offload) already holds outside the frame, which
 * XDP cannot see: the marker left in the XDP metadata lets the TC fix-up
 * (nt_tc_ingress_xdpfix_*) add those 4 bytes. Without xdp.frags
 * the frame is linear (veth even turns off the peer's GSO for such programs).
 */
static __always_inline int xdp_account(struct xdp_md *xdp, const int lan)
{
	struct pctx c = {
	    .ctx = xdp,
	    .len = xdp->data_end - xdp->data,
	    .segs = 1,
	    .ifindex = xdp->ingress_ifindex,
	};

	struct verdict *vd = verdict_new();
	__u8 tags;

	if (!vd)
		return XDP_PASS;
	tags = account(&c, NT_DIR_INGRESS, lan, 1, 0, 0, vd);
	if (vd->drop)
		return XDP_DROP;

	/*
	 * Leave the marker for the TC fix-up: a tag held outside the frame (NIC
	 * rx-vlan stripping, a veth peer's tx-vlan offload) is invisible here.
	 */
	if (bpf_xdp_adjust_meta(xdp, -(int)sizeof(__u32)) == 0) {
		void *data = (void *)(long)xdp->data;
		__u32 *meta = (void *)(long)xdp->data_meta;

		if ((void *)(meta + 1) <= data)
			*meta = NT_XDP_MARK | tags;
	}
	return XDP_PASS;
}

/*
 * The TC programs, one per attachment: direction, lan (host accounting and
 * actions), l3dev (no link-layer header: no MAC, so no host accounting) and
 * vlan_fix (XDP mode's TC ingress: the 4 bytes of a VLAN tag XDP could not see).
 * The skeleton names each program as written here.
 */
#define NT_TC_PROG(_name, _dir, _lan, _l3dev, _vlan_fix)                                           \
	SEC("tc") int _name(struct __sk_buff *skb)                                                 \
	{                                                                                          \
		return tc_account(skb, _dir, _lan, _l3dev, _vlan_fix);                             \
	}

NT_TC_PROG(nt_tc_ingress_lan, NT_DIR_INGRESS, 1, 0, 0)
NT_TC_PROG(nt_tc_egress_lan, NT_DIR_EGRESS, 1, 0, 0)
NT_TC_PROG(nt_tc_ingress_wan, NT_DIR_INGRESS, 0, 0, 0)
NT_TC_PROG(nt_tc_egress_wan, NT_DIR_EGRESS, 0, 0, 0)
NT_TC_PROG(nt_tc_ingress_l3, NT_DIR_INGRESS, 0, 1, 0)
NT_TC_PROG(nt_tc_egress_l3, NT_DIR_EGRESS, 0, 1, 0)
NT_TC_PROG(nt_tc_ingress_xdpfix_lan, NT_DIR_INGRESS, 1, 0, 1)
NT_TC_PROG(nt_tc_ingress_xdpfix_wan, NT_DIR_INGRESS, 0, 0, 1)

SEC("xdp")
int nt_xdp_ingress_lan(struct xdp_md *xdp) { return xdp_account(xdp, 1); }

SEC("xdp")
int nt_xdp_ingress_wan(struct xdp_md *xdp) { return xdp_account(xdp, 0); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
