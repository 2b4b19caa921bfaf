// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * nettally data plane: TC clsact programs that count every packet once per
 * interface and direction, by layer, into per-CPU maps.
 *
 * Each packet is parsed once into a struct pkt (figures + flow identity) and
 * then added to the interface total and to exactly one category: its flow, or
 * one unattributed bucket. The interface total is written first, the category
 * second, so a reader that reads categories and then the totals never sees
 * more in the categories than in the totals (see daemon/collector.cpp).
 *
 * The same parser serves TC (struct __sk_buff) and XDP (struct xdp_md): an
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
#include "nettally_proto.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define NSEC_PER_SEC 1000000000ull

/*
 * Parse budget: headers must start within the first 1024 bytes of the frame.
 * A header beyond (an IPv6 extension chain longer than that) fails closed into
 * the unparsable bucket. A wider window multiplies the verifier's states
 * (measured: 1024 -> 30k verified instructions, 65535 -> 570k).
 */
#define NT_MAX_HDR_OFF 1024

/* Start-up knobs, set by nettallyd through the skeleton's rodata before load. */
const volatile __u8 cfg_count_hosts = 1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NT_MAX_IFACES * NT_DIR_MAX);
	__type(key, struct nt_iface_key);
	__type(value, struct nt_iface_val);
} nt_ifaces SEC(".maps");

/* Userspace only (nettally_abi.h): created and pinned with the counters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NT_MAX_IFACES * NT_DIR_MAX);
	__type(key, struct nt_iface_key);
	__type(value, struct nt_evicted_val);
} nt_evicted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NT_DEFAULT_MAX_FLOWS);
	__type(key, struct nt_flow_key);
	__type(value, struct nt_flow_val);
} nt_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NT_DEFAULT_MAX_HOSTS);
	__type(key, struct nt_host_key);
	__type(value, struct nt_host_val);
} nt_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NT_MAX_FRAGS);
	__type(key, struct nt_frag_key);
	__type(value, struct nt_frag_val);
} nt_frags SEC(".maps");

/*
 * nt_meta[0] holds NT_ABI_VERSION, written by nettallyd when it creates the
 * maps. A later nettallyd reads it before reusing pinned maps, so a layout
 * change is refused with a message instead of misread.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nt_meta SEC(".maps");

/*
 * Threshold actions in force (daemon/enforcer.cpp). Not pinned: the daemon
 * re-applies them at start. nt_policy_kinds says which kinds of keys
 * nt_policy holds (NT_POLICY_KIND_*), so with no action in force the packet
 * path costs one load of this global and no lookup.
 */
__u32 nt_policy_kinds = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NT_POLICY_MAX_ENTRIES);
	__type(key, struct nt_policy_key);
	__type(value, struct nt_policy_val);
} nt_policy SEC(".maps");

/* lan interfaces whose root qdisc is fq: throttled egress is paced there (EDT). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NT_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u8);
} nt_policy_edt SEC(".maps");

/* The packet as the hook hands it over. */
struct pctx {
	void *ctx; /* struct __sk_buff * or struct xdp_md * */
	__u32 len; /* bytes of this (possibly aggregated) packet from the L2 header */
	__u32 vlan_hw; /* 4 when the outer VLAN tag sits in skb metadata, not in data */
	/*
	 * The same fact as a tag count, read separately: the budget check
	 * branches on this one, which is dead afterwards, so the verifier can
	 * still prune states that differ only in vlan_hw.
	 */
	__u32 hw_tags;
	__u32 segs; /* wire segments this packet stands for */
	__u32 gso_size; /* payload bytes per segment of a GSO packet, else 0 */
	__u32 segs_unknown; /* GSO packet whose gso_segs is not set (untrusted GSO: tap, virtio) */
	__u32 ifindex;
	__u16 l3_proto; /* skb->protocol (host order): what an L3 device carries */
	__u32 xdp_data_tags; /* vlan_fix: in-frame VLAN tags XDP saw (its marker) */
};

/* What one parse yields. */
struct pkt {
	struct nt_counts c;
	__u32 bucket; /* NT_BUCKET_MAX when the packet belongs to a flow */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u32 src[4];
	__u32 dst[4];
	__u8 smac[6];
	__u8 dmac[6];
	__u8 frag; /* 0 not a fragment, 1 first fragment, 2 later fragment */
	__u8 data_tags; /* VLAN tags found in the frame's bytes */
	__u32 frag_id;
};

/*
 * Copy len bytes at off from the packet into the stack. One helper call on
 * every path: it reads linear and paged data alike (GRO/GSO skbs), and a
 * single path per header keeps the verifier's state count flat where a
 * direct-access fast path with a helper fallback doubled it at every header.
 */
static __always_inline int load_hdr(const struct pctx *c, __u32 off, void *to, const __u32 len,
				    const int xdp)
{
	if (off > NT_MAX_HDR_OFF)
		return -1;
	if (xdp)
		return bpf_xdp_load_bytes(c->ctx, off, to, len);
	return bpf_skb_load_bytes(c->ctx, off, to, len);
}

static __always_inline int is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_FRAGMENT_ ||
	       nh == IPPROTO_DSTOPTS_ || nh == IPPROTO_AH_ || nh == IPPROTO_MH_;
}

/*
 * Parse the frame. Fills p->c with the wire figures and either the flow
 * identity (p->bucket == NT_BUCKET_MAX) or the bucket the packet falls into.
 */
/*
 * l3dev: the interface has no link-layer header (ppp, wireguard, tun): the
 * packet starts at the IP header, skb->protocol says which, and l2 == l3 as
 * in a capture on such an interface.
 */
static __always_inline void parse(const struct pctx *c, struct pkt *p, const int xdp, const int l3dev)
{
	__u32 len = c->len;
	__u32 vlan_hw = c->vlan_hw;
	__u32 segs = c->segs;
	__u32 off = ETH_HLEN;
	__u32 l3 = 0, iphl = 0, l4hl = 0;
	int first_frag = 1;
	struct ethhdr eth;
	__u16 proto;

	p->c.packets = segs;
	p->c.l2 = len + vlan_hw;
	p->bucket = NT_BUCKET_UNPARSABLE;

	if (l3dev) {
		off = 0;
		proto = c->l3_proto;
		goto network;
	}
	if (load_hdr(c, 0, &eth, sizeof(eth), xdp))
		return;
	__builtin_memcpy(p->smac, eth.h_source, 6);
	__builtin_memcpy(p->dmac, eth.h_dest, 6);
	proto = bpf_ntohs(eth.h_proto);

#pragma unroll
	for (int i = 0; i < NT_MAX_VLAN_TAGS; i++) {
		__be16 inner[2];

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		/* A tag the NIC moved into metadata counts against the budget. */
		if (i + c->hw_tags >= NT_MAX_VLAN_TAGS)
			return;
		if (load_hdr(c, off, inner, sizeof(inner), xdp))
			return;
		proto = bpf_ntohs(inner[1]);
		off += 4;
		p->data_tags++;
	}
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		return; /* more tags than the budget: fail closed */

	if (proto == ETH_P_PPP_SES) {
		__u8 ses[8]; /* 6 bytes PPPoE header, 2 bytes PPP protocol */
		__u16 ppp;

		if (load_hdr(c, off, ses, sizeof(ses), xdp))
			return;
		off += sizeof(ses);
		ppp = (__u16)ses[6] << 8 | ses[7];
		if (ppp == PPP_IP)
			proto = ETH_P_IP;
		else if (ppp == PPP_IPV6)
			proto = ETH_P_IPV6;
		else
			proto = ETH_P_PPP_SES; /* LCP, IPCP, ...: not IP */
	}

network:
	if (proto == ETH_P_IP) {
		struct iphdr ip;
		__u16 frag;

		if (load_hdr(c, off, &ip, sizeof(ip), xdp))
			return;
		if (ip.version != 4 || ip.ihl < 5)
			return;
		iphl = ip.ihl * 4;
		l3 = bpf_ntohs(ip.tot_len);
		if (l3 == 0 && segs > 1) /* BIG TCP: length lives in the skb only */
			l3 = len - off;
		if (l3 < iphl || off + l3 > len)
			return;
		frag = bpf_ntohs(ip.frag_off);
		first_frag = (frag & IP_OFFSET_MASK) == 0;
		if (frag & (IP_OFFSET_MASK | IP_MF)) {
			p->frag = first_frag ? 1 : 2;
			p->frag_id = bpf_ntohs(ip.id);
		}
		p->family = NT_AF_INET;
		p->proto = ip.protocol;
		p->src[0] = ip.saddr;
		p->dst[0] = ip.daddr;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		__u8 nh;

		if (load_hdr(c, off, &ip6, sizeof(ip6), xdp))
			return;
		if (ip6.version != 6)
			return;
		l3 = 40 + bpf_ntohs(ip6.payload_len);
		if (l3 == 40 && segs > 1) /* BIG TCP */
			l3 = len - off;
		if (off + l3 > len)
			return;
		iphl = 40;
		nh = ip6.nexthdr;
		__builtin_memcpy(p->src, &ip6.saddr, 16);
		__builtin_memcpy(p->dst, &ip6.daddr, 16);
		/* A bounded loop, not unrolled: the verifier walks it per iteration. */
		for (int i = 0; i < NT_MAX_IPV6_EXT_HDRS; i++) {
			__u8 ext[4];
			__u32 elen;

			if (!is_ipv6_ext(nh))
				break;
			if (load_hdr(c, off + iphl, ext, sizeof(ext), xdp))
				return;
			if (nh == IPPROTO_FRAGMENT_) {
				__u16 fo = (__u16)ext[2] << 8 | ext[3];
				__be32 id;

				if (load_hdr(c, off + iphl + 4, &id, sizeof(id), xdp))
					return;
				first_frag = (fo & 0xFFF8) == 0;
				p->frag = first_frag ? 1 : 2;
				p->frag_id = bpf_ntohl(id);
				elen = 8;
			} else if (nh == IPPROTO_AH_) {
				elen = ((__u32)ext[1] + 2) * 4;
			} else {
				elen = ((__u32)ext[1] + 1) * 8;
			}
			nh = ext[0];
			iphl += elen;
			if (iphl > l3)
				return;
		}
		if (is_ipv6_ext(nh))
			return; /* chain longer than the budget: fail closed */
		p->family = NT_AF_INET6;
		p->proto = nh;
	} else {
		p->bucket = NT_BUCKET_NON_IP;
		return;
	}

	/* Transport header: only the first fragment carries it. */
	if (first_frag) {
		__u32 l4off = off + iphl;

		if (p->proto == IPPROTO_TCP_) {
			struct tcphdr tcp;

			if (load_hdr(c, l4off, &tcp, sizeof(tcp), xdp))
				return;
			l4hl = tcp.doff * 4;
			if (l4hl < sizeof(tcp))
				return;
			p->sport = bpf_ntohs(tcp.source);
			p->dport = bpf_ntohs(tcp.dest);
			p->tcp_flags = ((__u8 *)&tcp)[13];
		} else if (p->proto == IPPROTO_UDP_) {
			struct udphdr udp;

			if (load_hdr(c, l4off, &udp, sizeof(udp), xdp))
				return;
			l4hl = sizeof(udp);
			p->sport = bpf_ntohs(udp.source);
			p->dport = bpf_ntohs(udp.dest);
		} else if (p->proto == IPPROTO_ICMP_ || p->proto == IPPROTO_ICMPV6_) {
			__u8 tc[2];

			if (load_hdr(c, l4off, tc, sizeof(tc), xdp))
				return;
			l4hl = 8;
			p->dport = (__u16)tc[0] << 8 | tc[1];
		}
		if (iphl + l4hl > l3)
			return;
	}

	if (c->segs_unknown) {
		/*
		 * GSO from an untrusted source (SKB_GSO_DODGY: tap, virtio-net)
		 * leaves gso_segs 0 until the stack segments it: derive the
		 * count the same way, from the payload and gso_size.
		 */
		__u32 data = len - (off + iphl + l4hl);

		segs = (data + c->gso_size - 1) / c->gso_size;
		if (!segs)
			segs = 1;
		p->c.packets = segs;
	}
	if (segs > 1) {
		/* Each wire segment repeats the L2, IP and transport headers. */
		__u32 hdrs = off + iphl + l4hl;

		p->c.l2 = len + (segs - 1) * hdrs + segs * vlan_hw;
		l3 = (len - off) + (segs - 1) * (iphl + l4hl);
	}
	p->c.l3 = l3;
	p->c.l4 = l3 - segs * iphl;
	p->c.payload = p->c.l4 - segs * l4hl;
	p->bucket = NT_BUCKET_MAX;
}

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
	struct nt_iface_key key = { .ifindex = ifindex, .dir = dir };
	struct nt_iface_val *v = bpf_map_lookup_elem(&nt_ifaces, &key);

	if (v)
		return v;
	/* nettallyd creates the entry before attaching; this covers a race only. */
	struct nt_iface_val zero = {};

	bpf_map_update_elem(&nt_ifaces, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&nt_ifaces, &key);
}

/* Returns 0 when counted in a flow, -1 when the flow map had no room. */
static __always_inline int count_flow(const struct pkt *p, __u32 ifindex, __u32 dir, __u64 now)
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

		if (err == 0)
			return 0;
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
	return 0;
}

/* Returns 0 when counted, -1 when the host map had no room. */
static __always_inline int count_host(const struct pkt *p, __u32 ifindex, __u32 dir, __u64 now)
{
	struct nt_host_key key = { .ifindex = ifindex, .family = p->family };
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
		struct nt_host_val init = { .first_ns = now, .last_ns = now };

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
	return 0;
}

/* Later fragments carry no ports: take them from the first fragment. */
static __always_inline void track_fragment(struct pkt *p, __u32 ifindex, __u32 dir)
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
		struct nt_frag_val v = { .sport = p->sport, .dport = p->dport };

		bpf_map_update_elem(&nt_frags, &key, &v, BPF_ANY);
	} else {
		struct nt_frag_val *v = bpf_map_lookup_elem(&nt_frags, &key);

		if (v) {
			p->sport = v->sport;
			p->dport = v->dport;
		}
	}
}

/* What the policy decided for one packet. */
struct verdict {
	__u32 drop;
	__u64 tstamp; /* EDT departure time (CLOCK_MONOTONIC ns), 0 = leave as is */
};

/*
 * The policy entry of the packet's host on a lan interface: the source on
 * ingress (what the host sends), the destination on egress (what it receives).
 */
static __always_inline struct nt_policy_val *policy_of(const struct pkt *p, __u32 dir, __u32 kinds)
{
	struct nt_policy_key key = {};
	struct nt_policy_val *v = NULL;

	if ((kinds & NT_POLICY_KIND_IP) && p->family) {
		key.family = p->family;
		__builtin_memcpy(key.addr, dir == NT_DIR_INGRESS ? p->src : p->dst, sizeof(key.addr));
		v = bpf_map_lookup_elem(&nt_policy, &key);
	}
	if (!v && (kinds & NT_POLICY_KIND_MAC)) {
		__builtin_memset(&key, 0, sizeof(key));
		key.family = NT_POLICY_MAC;
		__builtin_memcpy(key.addr, dir == NT_DIR_INGRESS ? p->smac : p->dmac, 6);
		v = bpf_map_lookup_elem(&nt_policy, &key);
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
static __always_inline void enforce(struct nt_policy_val *v, const struct nt_counts *c, const __u32 dir,
				    __u32 ifindex, struct verdict *vd)
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
	__u64 now;

	parse(c, &p, xdp, l3dev);
	if (lan && !vlan_fix) {
		__u32 kinds = *(volatile __u32 *)&nt_policy_kinds;

		if (kinds) {
			struct nt_policy_val *pv = policy_of(&p, dir, kinds);

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
		p.c = (struct nt_counts){ .l2 = 4 * segs };
		p.tcp_flags = 0;
	}

	iv = iface_val(c->ifindex, dir);
	if (!iv)
		return p.data_tags;
	add_counts(&iv->total, &p.c);

	if (p.bucket == NT_BUCKET_MAX) {
		if (p.frag)
			track_fragment(&p, c->ifindex, dir);
		now = bpf_ktime_get_boot_ns();
		if (count_flow(&p, c->ifindex, dir, now))
			p.bucket = NT_BUCKET_FLOW_OVERFLOW;
		if (lan && cfg_count_hosts && count_host(&p, c->ifindex, dir, now))
			iv->host_overflow += p.c.packets;
	}
	if (p.bucket < NT_BUCKET_MAX)
		add_counts(&iv->bucket[p.bucket], &p.c);
	return p.data_tags;
}

/* XDP leaves this in the packet's metadata: "counted at XDP, N tags in the frame". */
#define NT_XDP_MARK 0x4E540000u

static __always_inline int tc_account(struct __sk_buff *skb, __u32 dir, const int lan, const int l3dev,
				      const int vlan_fix)
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
		.ctx = skb,
		.len = skb->len,
		.vlan_hw = skb->vlan_present ? 4 : 0,
		.hw_tags = skb->vlan_present,
		.segs = skb->gso_segs ? skb->gso_segs : 1,
		.gso_size = skb->gso_size,
		.segs_unknown = skb->gso_size && !skb->gso_segs,
		.ifindex = skb->ifindex,
		.l3_proto = bpf_ntohs(skb->protocol),
		.xdp_data_tags = xdp_tags,
	};
	struct verdict vd = {};

	account(&c, dir, lan, 0, l3dev, vlan_fix, &vd);
	if (vd.drop)
		return TC_ACT_SHOT;
	if (vd.tstamp)
		skb->tstamp = vd.tstamp; /* EDT: fq holds the packet until then */
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

	struct verdict vd = {};
	__u8 tags = account(&c, NT_DIR_INGRESS, lan, 1, 0, 0, &vd);

	if (vd.drop)
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

SEC("tc")
int nt_tc_ingress_lan(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_INGRESS, 1, 0, 0);
}

SEC("tc")
int nt_tc_egress_lan(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_EGRESS, 1, 0, 0);
}

SEC("tc")
int nt_tc_ingress_wan(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_INGRESS, 0, 0, 0);
}

SEC("tc")
int nt_tc_egress_wan(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_EGRESS, 0, 0, 0);
}

/* Interfaces without a link-layer header: no MAC, so no host accounting. */
SEC("tc")
int nt_tc_ingress_l3(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_INGRESS, 0, 1, 0);
}

SEC("tc")
int nt_tc_egress_l3(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_EGRESS, 0, 1, 0);
}

/* XDP mode's TC ingress: the 4 bytes of a VLAN tag XDP could not see. */
SEC("tc")
int nt_tc_ingress_xdpfix_lan(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_INGRESS, 1, 0, 1);
}

SEC("tc")
int nt_tc_ingress_xdpfix_wan(struct __sk_buff *skb)
{
	return tc_account(skb, NT_DIR_INGRESS, 0, 0, 1);
}

SEC("xdp")
int nt_xdp_ingress_lan(struct xdp_md *xdp)
{
	return xdp_account(xdp, 1);
}

SEC("xdp")
int nt_xdp_ingress_wan(struct xdp_md *xdp)
{
	return xdp_account(xdp, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
