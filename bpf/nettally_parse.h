/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one packet parser of nettally's BPF programs: TC and XDP
 * (nettally.bpf.c) and cgroup_skb (cgroup.bpf.c) count by these definitions
 * (DESIGN.md "Layers"): where the headers are, l3/l4/payload, and how many
 * wire segments a GSO/GRO packet stands for, each with its own headers.
 *
 * Where a packet starts is a compile-time choice of the caller, so the
 * verifier only ever walks the path the program takes:
 *   xdp:   headers are read with bpf_xdp_load_bytes (else bpf_skb_load_bytes);
 *   l3dev: the packet starts at the IP header and skb->protocol (l3_proto)
 *          says which: TC on interfaces without a link layer, and cgroup_skb,
 *          whose hooks see no L2 either;
 *   ident: fill the flow identity (addresses, ports, TCP flags, fragment id);
 *          a caller that counts without flows (cgroup_skb) passes 0 and skips
 *          the loads only the identity needs.
 * Otherwise the packet starts at an Ethernet header, with up to
 * NT_MAX_VLAN_TAGS 802.1Q/802.1ad tags and an optional PPPoE session header.
 *
 * Include after vmlinux.h, bpf_helpers.h and bpf_endian.h.
 */
#ifndef NETTALLY_PARSE_H
#define NETTALLY_PARSE_H

#include "nettally_abi.h"
#include "nettally_proto.h"

/*
 * Parse budget: headers must start within the first 1024 bytes of the packet.
 * A header beyond (an IPv6 extension chain longer than that) fails closed into
 * the unparsable bucket. A wider window multiplies the verifier's states
 * (measured: 1024 -> 30k verified instructions, 65535 -> 570k).
 */
#define NT_MAX_HDR_OFF 1024

/* The packet as the hook hands it over. */
struct pctx {
	void *ctx;     /* struct __sk_buff * or struct xdp_md * */
	__u32 len;     /* bytes of this (possibly aggregated) packet from its first header */
	__u32 vlan_hw; /* 4 when the outer VLAN tag sits in skb metadata, not in data */
	/*
	 * The same fact as a tag count, read separately: the budget check
	 * branches on this one, which is dead afterwards, so the verifier can
	 * still prune states that differ only in vlan_hw.
	 */
	__u32 hw_tags;
	__u32 segs;	    /* wire segments this packet stands for */
	__u32 gso_size;	    /* payload bytes per segment of a GSO packet, else 0 */
	__u32 segs_unknown; /* GSO packet whose gso_segs is not set (untrusted GSO: tap, virtio) */
	__u32 ifindex;
	__u16 l3_proto;	     /* skb->protocol (host order): what an L3 device carries */
	__u16 vlan_tci;	     /* the tag held in skb metadata (vlan_hw), host order */
	__u32 xdp_data_tags; /* vlan_fix: in-frame VLAN tags XDP saw (its marker) */
};

/*
 * What one parse yields: c holds the wire figures (l2 counts from the first
 * byte the hook sees; with l3dev that is the IP header, so l2 == l3).
 */
struct pkt {
	struct nt_counts c;
	__u32 bucket; /* NT_BUCKET_MAX when the packet belongs to a flow */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 dscp; /* ident only: the IP header's DSCP */
	__u16 sport;
	__u16 dport;
	__u32 src[4];
	__u32 dst[4];
	__u8 smac[6];
	__u8 dmac[6];
	__u8 frag;	/* 0 not a fragment, 1 first fragment, 2 later fragment */
	__u8 data_tags; /* VLAN tags found in the frame's bytes */
	__u16 vlan;	/* ident only: the outer tag's VLAN id, 0 untagged */
	__u32 frag_id;
};

/* Where the layers of one packet lie, from the hook's first byte. */
struct layers {
	__u32 off;	/* the IP header */
	__u32 l3;	/* the IP datagram (of the packet as handed over) */
	__u32 iphl;	/* IPv4 header with options, or IPv6 header with extension headers */
	__u32 l4hl;	/* transport header; 0 for other protocols and later fragments */
	int first_frag; /* not a fragment, or the first one: the transport header is here */
};

/*
 * The GSO facts of an skb, shared by TC and cgroup_skb. Untrusted GSO
 * (SKB_GSO_DODGY: tap, virtio-net) leaves gso_segs 0 until the stack segments
 * it; segs_unknown has seg_counts() derive the count as the stack will cut.
 */
static __always_inline void pctx_from_skb(struct pctx *c, struct __sk_buff *skb)
{
	c->ctx = skb;
	c->len = skb->len;
	c->segs = skb->gso_segs ? skb->gso_segs : 1;
	c->gso_size = skb->gso_size;
	c->segs_unknown = skb->gso_size && !skb->gso_segs;
	c->l3_proto = bpf_ntohs(skb->protocol);
}

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
 * Ethernet, VLAN tags (QinQ) and PPPoE session: sets *off to the network
 * header and *proto to its EtherType (ETH_P_PPP_SES for PPP that is not IP).
 * Returns -1 when the frame is unparsable.
 */
static __always_inline int parse_eth(const struct pctx *c, struct pkt *p, __u32 *off, __u16 *proto,
				     const int xdp)
{
	struct ethhdr eth;

	if (load_hdr(c, 0, &eth, sizeof(eth), xdp))
		return -1;
	__builtin_memcpy(p->smac, eth.h_source, 6);
	__builtin_memcpy(p->dmac, eth.h_dest, 6);
	*proto = bpf_ntohs(eth.h_proto);

#pragma unroll
	for (int i = 0; i < NT_MAX_VLAN_TAGS; i++) {
		__be16 inner[2];

		if (*proto != ETH_P_8021Q && *proto != ETH_P_8021AD)
			break;
		/* A tag the NIC moved into metadata counts against the budget. */
		if (i + c->hw_tags >= NT_MAX_VLAN_TAGS)
			return -1;
		if (load_hdr(c, *off, inner, sizeof(inner), xdp))
			return -1;
		*proto = bpf_ntohs(inner[1]);
		if (i == 0 && !c->hw_tags)
			p->vlan = bpf_ntohs(inner[0]) & 0xFFF;
		*off += 4;
		p->data_tags++;
	}
	if (*proto == ETH_P_8021Q || *proto == ETH_P_8021AD)
		return -1; /* more tags than the budget: fail closed */

	if (*proto == ETH_P_PPP_SES) {
		__u8 ses[8]; /* 6 bytes PPPoE header, 2 bytes PPP protocol */
		__u16 ppp;

		if (load_hdr(c, *off, ses, sizeof(ses), xdp))
			return -1;
		*off += sizeof(ses);
		ppp = (__u16)ses[6] << 8 | ses[7];
		if (ppp == PPP_IP)
			*proto = ETH_P_IP;
		else if (ppp == PPP_IPV6)
			*proto = ETH_P_IPV6;
		else
			*proto = ETH_P_PPP_SES; /* LCP, IPCP, ...: not IP */
	}
	return 0;
}

/* IPv4 header with options; fragments. Returns -1 when unparsable. */
static __always_inline int parse_ipv4(const struct pctx *c, struct pkt *p, struct layers *l,
				      const int xdp, const int ident)
{
	struct iphdr ip;
	__u16 frag;

	if (load_hdr(c, l->off, &ip, sizeof(ip), xdp))
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	l->iphl = ip.ihl * 4;
	l->l3 = bpf_ntohs(ip.tot_len);
	if (l->l3 == 0 && c->segs > 1) /* BIG TCP: length lives in the skb only */
		l->l3 = c->len - l->off;
	if (l->l3 < l->iphl || l->off + l->l3 > c->len)
		return -1;
	frag = bpf_ntohs(ip.frag_off);
	l->first_frag = (frag & IP_OFFSET_MASK) == 0;
	if (frag & (IP_OFFSET_MASK | IP_MF)) {
		p->frag = l->first_frag ? 1 : 2;
		if (ident)
			p->frag_id = bpf_ntohs(ip.id);
	}
	p->family = NT_AF_INET;
	p->proto = ip.protocol;
	if (ident) {
		p->dscp = ip.tos >> 2;
		p->src[0] = ip.saddr;
		p->dst[0] = ip.daddr;
	}
	return 0;
}

/*
 * The IPv6 extension-header chain after the fixed header (l->iphl == 40 on
 * entry, the whole chain on return). Sets p->proto to the upper-layer
 * protocol. Returns -1 when unparsable or longer than the budget.
 */
static __always_inline int ipv6_ext_walk(const struct pctx *c, struct pkt *p, struct layers *l,
					 __u8 nh, const int xdp, const int ident)
{
	/* A bounded loop, not unrolled: the verifier walks it per iteration. */
	for (int i = 0; i < NT_MAX_IPV6_EXT_HDRS; i++) {
		__u8 ext[4];
		__u32 elen;

		if (!is_ipv6_ext(nh))
			break;
		if (load_hdr(c, l->off + l->iphl, ext, sizeof(ext), xdp))
			return -1;
		if (nh == IPPROTO_FRAGMENT_) {
			__u16 fo = (__u16)ext[2] << 8 | ext[3];
			__be32 id;

			if (ident) {
				if (load_hdr(c, l->off + l->iphl + 4, &id, sizeof(id), xdp))
					return -1;
				p->frag_id = bpf_ntohl(id);
			}
			l->first_frag = (fo & 0xFFF8) == 0;
			p->frag = l->first_frag ? 1 : 2;
			elen = 8;
		} else if (nh == IPPROTO_AH_) {
			elen = ((__u32)ext[1] + 2) * 4;
		} else {
			elen = ((__u32)ext[1] + 1) * 8;
		}
		nh = ext[0];
		l->iphl += elen;
		if (l->iphl > l->l3)
			return -1;
	}
	if (is_ipv6_ext(nh))
		return -1; /* chain longer than the budget: fail closed */
	p->family = NT_AF_INET6;
	p->proto = nh;
	return 0;
}

/* IPv6 header and its extension headers. Returns -1 when unparsable. */
static __always_inline int parse_ipv6(const struct pctx *c, struct pkt *p, struct layers *l,
				      const int xdp, const int ident)
{
	struct ipv6hdr ip6;

	if (load_hdr(c, l->off, &ip6, sizeof(ip6), xdp))
		return -1;
	if (ip6.version != 6)
		return -1;
	l->l3 = 40 + bpf_ntohs(ip6.payload_len);
	if (l->l3 == 40 && c->segs > 1) /* BIG TCP */
		l->l3 = c->len - l->off;
	if (l->off + l->l3 > c->len)
		return -1;
	l->iphl = 40;
	if (ident) {
		p->dscp = (__u8)((ip6.priority << 4 | ip6.flow_lbl[0] >> 4) >> 2);
		__builtin_memcpy(p->src, &ip6.saddr, 16);
		__builtin_memcpy(p->dst, &ip6.daddr, 16);
	}
	return ipv6_ext_walk(c, p, l, ip6.nexthdr, xdp, ident);
}

/*
 * Transport header of a first fragment (or unfragmented datagram): TCP with
 * options, UDP 8, ICMP/ICMPv6 8, other protocols 0. Returns -1 when it does
 * not fit the datagram.
 */
static __always_inline int parse_l4(const struct pctx *c, struct pkt *p, struct layers *l,
				    const int xdp, const int ident)
{
	__u32 l4off = l->off + l->iphl;

	if (p->proto == IPPROTO_TCP_) {
		struct tcphdr tcp;

		if (load_hdr(c, l4off, &tcp, sizeof(tcp), xdp))
			return -1;
		l->l4hl = tcp.doff * 4;
		if (l->l4hl < sizeof(tcp))
			return -1;
		if (ident) {
			p->sport = bpf_ntohs(tcp.source);
			p->dport = bpf_ntohs(tcp.dest);
			p->tcp_flags = ((__u8 *)&tcp)[13];
		}
	} else if (p->proto == IPPROTO_UDP_) {
		struct udphdr udp;

		if (load_hdr(c, l4off, &udp, sizeof(udp), xdp))
			return -1;
		l->l4hl = sizeof(udp);
		if (ident) {
			p->sport = bpf_ntohs(udp.source);
			p->dport = bpf_ntohs(udp.dest);
		}
	} else if (p->proto == IPPROTO_ICMP_ || p->proto == IPPROTO_ICMPV6_) {
		__u8 tc[2];

		if (load_hdr(c, l4off, tc, sizeof(tc), xdp))
			return -1;
		l->l4hl = 8;
		if (ident)
			p->dport = (__u16)tc[0] << 8 | tc[1];
	}
	if (l->iphl + l->l4hl > l->l3)
		return -1;
	return 0;
}

/*
 * The wire figures of a parsed packet: a GSO/GRO packet stands for segs wire
 * segments, each repeating the L2 (and a hardware VLAN tag), IP and transport
 * headers.
 */
static __always_inline void seg_counts(const struct pctx *c, struct pkt *p, const struct layers *l)
{
	__u32 segs = c->segs;
	__u32 l3 = l->l3;

	if (c->segs_unknown) {
		/*
		 * GSO from an untrusted source (SKB_GSO_DODGY: tap, virtio-net)
		 * leaves gso_segs 0 until the stack segments it: derive the
		 * count the same way, from the payload and gso_size.
		 */
		__u32 data = c->len - (l->off + l->iphl + l->l4hl);

		segs = (data + c->gso_size - 1) / c->gso_size;
		if (!segs)
			segs = 1;
		p->c.packets = segs;
	}
	if (segs > 1) {
		__u32 hdrs = l->off + l->iphl + l->l4hl;

		p->c.l2 = c->len + (segs - 1) * hdrs + segs * c->vlan_hw;
		l3 = (c->len - l->off) + (segs - 1) * (l->iphl + l->l4hl);
	}
	p->c.l3 = l3;
	p->c.l4 = l3 - segs * l->iphl;
	p->c.payload = p->c.l4 - segs * l->l4hl;
}

/*
 * Parse the packet. Fills p->c with the wire figures and either the flow
 * identity (p->bucket == NT_BUCKET_MAX) or the bucket the packet falls into
 * (NT_BUCKET_NON_IP, NT_BUCKET_UNPARSABLE). An unparsable packet counts its
 * packets and l2 only: what is certain.
 */
static __always_inline void parse(const struct pctx *c, struct pkt *p, const int xdp,
				  const int l3dev, const int ident)
{
	struct layers l = {.off = ETH_HLEN, .first_frag = 1};
	__u16 proto;

	p->c.packets = c->segs;
	p->c.l2 = c->len + c->vlan_hw;
	p->bucket = NT_BUCKET_UNPARSABLE;
	if (ident && c->hw_tags)
		p->vlan = c->vlan_tci & 0xFFF;

	if (l3dev) {
		l.off = 0;
		proto = c->l3_proto;
	} else if (parse_eth(c, p, &l.off, &proto, xdp)) {
		return;
	}

	if (proto == ETH_P_IP) {
		if (parse_ipv4(c, p, &l, xdp, ident))
			return;
	} else if (proto == ETH_P_IPV6) {
		if (parse_ipv6(c, p, &l, xdp, ident))
			return;
	} else {
		p->bucket = NT_BUCKET_NON_IP;
		return;
	}

	/* Transport header: only the first fragment carries it. */
	if (l.first_frag && parse_l4(c, p, &l, xdp, ident))
		return;

	seg_counts(c, p, &l);
	p->bucket = NT_BUCKET_MAX;
}

#endif /* NETTALLY_PARSE_H */
