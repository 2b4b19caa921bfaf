/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one ABI between nettally's BPF programs and nettallyd: map keys, map
 * values, enums and limits. Both builds include this file; nothing here is
 * mirrored by hand anywhere else. The C++ side static_asserts the sizes in
 * daemon/core/abi.h so a layout change breaks the build, not the counts.
 *
 * Rules: fixed-width types only, explicit padding, no bitfields, no pointers.
 */
#ifndef NETTALLY_ABI_H
#define NETTALLY_ABI_H

#ifdef __bpf__
/* vmlinux.h already provided __u8 .. __u64 and struct bpf_spin_lock */
#else
#include <linux/bpf.h> /* struct bpf_spin_lock */
#include <linux/types.h>
#endif

/* Bumped whenever a pinned map's key or value layout changes. */
#define NT_ABI_VERSION 2

/* Default map capacities; the daemon may resize before load. */
#define NT_MAX_IFACES 256
#define NT_DEFAULT_MAX_FLOWS 65536
#define NT_DEFAULT_MAX_HOSTS 16384
#define NT_MAX_FRAGS 4096 /* datagrams in flight whose first fragment was seen */

/* Parser budgets: a walk that runs out of them fails closed into a bucket. */
#define NT_MAX_VLAN_TAGS 2
#define NT_MAX_IPV6_EXT_HDRS 8

enum nt_dir {
	NT_DIR_INGRESS = 0,
	NT_DIR_EGRESS = 1,
	NT_DIR_MAX = 2,
};

enum nt_role {
	NT_ROLE_LAN = 0,
	NT_ROLE_WAN = 1,
};

/*
 * Unattributed buckets: every packet lands in exactly one flow or exactly one
 * of these (the reconciliation invariant).
 */
enum nt_bucket {
	NT_BUCKET_NON_IP = 0,	     /* ARP, LLDP, PPPoE discovery, ... */
	NT_BUCKET_UNPARSABLE = 1,    /* truncated/invalid headers, budget exhausted */
	NT_BUCKET_FLOW_OVERFLOW = 2, /* valid IP but the flow map was full */
	NT_BUCKET_MAX = 3,
};

/* The five figures every counter carries (see DESIGN.md "Layers"). */
struct nt_counts {
	__u64 packets;
	__u64 l2;
	__u64 l3;
	__u64 l4;
	__u64 payload;
};

/* nt_ifaces: PERCPU_HASH, one entry per attached interface and direction. */
struct nt_iface_key {
	__u32 ifindex;
	__u32 dir; /* enum nt_dir */
};

struct nt_iface_val {
	struct nt_counts total;
	struct nt_counts bucket[NT_BUCKET_MAX];
	__u64 host_overflow; /* packets whose host entry could not be created */
};

/*
 * nt_evicted: HASH keyed like nt_ifaces, written by nettallyd only. What the
 * flows taken out of nt_flows (idle or too long) held, per interface and
 * direction, and how many flows: pinned with the counters, so a crash of the
 * daemon between two state saves does not lose the finished flows' share of
 * the reconciliation (total == buckets + live flows + evicted).
 */
struct nt_evicted_val {
	struct nt_counts counts;
	__u64 flows;
};

/* Address family tags used in keys (AF_INET / AF_INET6 values). */
#define NT_AF_INET 2
#define NT_AF_INET6 10

/*
 * nt_flows: PERCPU_HASH. Unidirectional 5-tuple + interface + direction.
 * IPv4 addresses live in addr[0], the rest zero. For ICMP/ICMPv6 sport is 0
 * and dport is (type << 8 | code), as NetFlow does. Protocols without ports
 * have both ports 0; later fragments carry their first fragment's ports
 * (nt_frags), or 0 when it was not seen.
 */
struct nt_flow_key {
	__u32 ifindex;
	__u8 dir;
	__u8 proto;
	__u8 family;
	__u8 pad;
	__u16 sport; /* host byte order */
	__u16 dport; /* host byte order */
	__u32 src[4];
	__u32 dst[4];
};

struct nt_flow_val {
	struct nt_counts c;
	__u64 first_ns; /* CLOCK_MONOTONIC at tick resolution; 0 = never on this CPU */
	__u64 last_ns;
	__u8 tcp_flags; /* OR of the TCP flags byte */
	__u8 pad;
	/*
	 * Traffic classes: the class of this CPU's latest classified packet of
	 * the flow, under the ruleset with this serial (nt_cls_info.serial; 0:
	 * none yet); reused while the serial matches and the ruleset tests
	 * nothing that varies per packet (NT_CLS_PER_PACKET). nettallyd takes
	 * the class of the CPU with the latest last_ns.
	 */
	__u16 cls_id;
	__u32 cls_serial;
};

/*
 * nt_hosts: PERCPU_HASH, filled on lan-role interfaces only. A host is the
 * source of ingress packets (sent) and the destination of unicast egress
 * packets (received).
 */
struct nt_host_key {
	__u32 ifindex;
	__u8 family;
	__u8 pad;
	__u8 mac[6];
	__u32 addr[4];
};

struct nt_host_val {
	struct nt_counts sent;
	struct nt_counts received;
	__u64 first_ns;
	__u64 last_ns;
	/*
	 * Subscribers: the user bound to the host's address (nt_bindings) as
	 * looked up on this CPU while the .bss global nt_bind_serial was
	 * bind_serial. Reused while the serial is unchanged, so a host's packets
	 * cost one trie walk per binding change, not one each; nettallyd moves
	 * the serial on after every change of nt_bindings.
	 */
	__u32 user;
	__u32 bind_serial;
};

/*
 * nt_frags: LRU_HASH shared by all CPUs (fragments of one datagram may be
 * handled on different CPUs). The first fragment records the ports so the
 * later fragments join the same flow. A later fragment whose first fragment
 * was not seen (lost, reordered, evicted) goes to the flow with ports 0 for
 * the same addresses and protocol: still a flow, so the invariant holds.
 */
struct nt_frag_key {
	__u32 ifindex;
	__u8 family;
	__u8 proto;
	__u8 dir;
	__u8 pad;
	__u32 id; /* IPv4 identification or IPv6 fragment id */
	__u32 src[4];
	__u32 dst[4];
};

struct nt_frag_val {
	__u16 sport;
	__u16 dport;
	__u32 pad;
};

/*
 * ---- Enforcement of threshold actions (daemon/kernel/enforce.h) ----------------
 * nt_policy: HASH, not pinned (the daemon re-applies actions at start), filled
 * only while a threshold's action is in force. Consulted on lan-role
 * interfaces for a host as source (ingress) and as destination (egress), and
 * only when nt_policy_kinds (.bss) says entries of that kind exist, so the
 * no-action path costs one load of a global.
 */
#define NT_POLICY_MAX_ENTRIES 4096

enum nt_policy_action {
	NT_POLICY_THROTTLE = 1, /* police (or pace, EDT) to rate bytes/s of l2 */
	NT_POLICY_BLOCK = 2,	/* drop every packet */
};

/*
 * Family tags of a MAC key and of a user key (IP keys use NT_AF_INET /
 * NT_AF_INET6). A user key holds the user id (nt_user_names) in addr[0]: the
 * action applies to every address bound to that user (nt_bindings).
 */
#define NT_POLICY_MAC 1
#define NT_POLICY_USER 3

/* Bits of the .bss global nt_policy_kinds. */
#define NT_POLICY_KIND_IP 1
#define NT_POLICY_KIND_MAC 2
#define NT_POLICY_KIND_USER 4

struct nt_policy_key {
	__u8 family; /* NT_AF_INET, NT_AF_INET6, NT_POLICY_MAC or NT_POLICY_USER */
	__u8 pad[3];
	__u32 addr[4]; /* IPv4 or user id in addr[0]; a MAC in the first 6 bytes; rest zero */
};

/*
 * The throttle schedule is a GCRA ("theoretical arrival time") per host
 * direction, CLOCK_MONOTONIC ns: a packet of n bytes may pass when
 * tat - now <= burst_ns and then moves tat = max(tat, now) + n * 1e9 / rate.
 * As a policer it drops what does not fit; as EDT (egress with fq) it stamps
 * skb->tstamp = max(tat, now) and drops only beyond horizon_ns.
 */
struct nt_policy_val {
	struct bpf_spin_lock lock; /* guards tat and the drop counters */
	__u32 action;		   /* enum nt_policy_action */
	__u64 rate;		   /* bytes per second (throttle) */
	__u64 burst_ns;
	__u64 horizon_ns;      /* EDT: how far ahead a packet may be scheduled */
	__u64 tat[NT_DIR_MAX]; /* indexed by the interface direction */
	__u64 dropped_packets[NT_DIR_MAX];
	__u64 dropped_bytes[NT_DIR_MAX]; /* l2 */
};

/* nt_policy_edt: HASH ifindex (__u32) -> __u8: lan interfaces with fq as root qdisc. */

/*
 * ---- Per-cgroup accounting (bpf/cgroup.bpf.c) ----------------------------
 * cgroup_skb ingress/egress programs on the cgroup v2 root count the traffic
 * of the gateway's own sockets by the socket's cgroup. The hooks start at the
 * IP header, so l2 is never known: every nt_counts written by these programs
 * has l2 == 0. Every packet a hook sees lands in the per-direction total and
 * in exactly one category: one cgroup's entry, or one of these buckets.
 */
#define NT_CG_DEFAULT_MAX_ENTRIES 4096
#define NT_CG_MAX_SUBTREES 16 /* tracked subtree roots (config cgroups.subtrees) */
#define NT_CG_MAX_DEPTH 16    /* subtree roots deeper than this are never matched */

enum nt_cg_bucket {
	NT_CG_BUCKET_OTHER_NETNS = 0, /* a socket of another network namespace */
	NT_CG_BUCKET_LOOPBACK = 1,    /* on lo: not traffic of any interface */
	NT_CG_BUCKET_UNPARSABLE = 2,  /* truncated/invalid headers, budget exhausted */
	NT_CG_BUCKET_UNTRACKED = 3,   /* a cgroup outside every tracked subtree */
	NT_CG_BUCKET_OVERFLOW = 4,    /* tracked, but nt_cg_counts was full */
	NT_CG_BUCKET_MAX = 5,
};

/* nt_cg_counts: PERCPU_HASH, key: cgroup v2 id (__u64, the cgroup directory's inode). */
struct nt_cg_val {
	struct nt_counts dir[NT_DIR_MAX]; /* indexed by enum nt_dir; l2 always 0 */
};

/* nt_cg_totals: PERCPU_ARRAY, index: enum nt_dir. */
struct nt_cg_dir_val {
	struct nt_counts total; /* everything the hook saw (l2 always 0) */
	struct nt_counts bucket[NT_CG_BUCKET_MAX];
};

/*
 * nt_cg_subtrees: HASH, key: cgroup id of a tracked subtree root, value: __u8
 * (unused). A cgroup is tracked when it or one of its ancestors is a key.
 * nt_cg_busy: PERCPU_ARRAY of one __u64: programs between their total and
 * their category (egress programs run preemptible, in process context).
 */

/*
 * ---- Subscribers (daemon/core/subscribers.h) --------------------------------
 * nt_bindings: LPM_TRIE, pinned, written by nettallyd only: address or prefix
 * -> user id. The data compared is family (8 bits) + pad (24 bits) + address,
 * so an entry's prefixlen is 32 + the prefix length, and a lookup uses 32 + 32
 * (IPv4, addr[0]) or 32 + 128 (IPv6). Consulted on lan-role interfaces where
 * the host is counted (source on ingress, unicast destination on egress) and
 * only while the .bss global nt_users_on is non-zero.
 */
#define NT_BIND_MAX_ENTRIES 65536
#define NT_BIND_KEY_BITS 32 /* the family + pad in front of the address */

struct nt_bind_key {
	__u32 prefixlen; /* NT_BIND_KEY_BITS + prefix length */
	__u8 family;	 /* NT_AF_INET or NT_AF_INET6 */
	__u8 pad[3];
	__u32 addr[4]; /* IPv4 in addr[0] */
};

struct nt_bind_val {
	__u32 user; /* id in nt_user_names; never 0 */
	__u32 pad;
};

/* User id 0: a packet of no bound address (the "unbound" pseudo-user). */
#define NT_USER_UNBOUND 0
/* Not an id: "not looked up yet" inside the BPF program. */
#define NT_USER_NONE 0xffffffffu
#define NT_DEFAULT_MAX_USER_COUNTS 16384
#define NT_USER_NAME_LEN 64

/*
 * nt_user_counts: PERCPU_HASH, pinned: the five figures per lan interface and
 * user, sent (ingress source) and received (egress unicast destination), the
 * same packets the host counters see. Per interface and direction,
 * sum over users (unbound included) == sum over hosts, as long as neither
 * map overflowed (nt_user_overflow counts what found no entry).
 */
struct nt_user_key {
	__u32 ifindex;
	__u32 user;
};

struct nt_user_val {
	struct nt_counts sent;
	struct nt_counts received;
};

/*
 * nt_user_names: HASH, pinned, written by nettallyd only: user id -> name, so
 * a daemon started after a crash reads the ids the kernel counts under.
 * nt_user_overflow: PERCPU_ARRAY of one struct nt_user_val: packets whose
 * user entry could not be created (map full).
 */
struct nt_user_name {
	char name[NT_USER_NAME_LEN]; /* NUL-terminated */
};

/*
 * ---- Traffic classes (daemon/core/classes_bundle.h, daemon/kernel/classes.h) ----
 * A ruleset is compiled into per-dimension tables: each dimension of a packet
 * maps its value to an equivalence id, each id has a bitmask of the rules that
 * accept it (u64 words, bit i = rule i); the AND over the dimensions' masks
 * has the first matching rule as its lowest set bit. Two generations of the
 * tables live side by side (slot 0 and 1); the .bss global nt_cls_gen says
 * which one packets use (0: no ruleset, the packet path costs one load of it;
 * 1: slot 0; 2: slot 1). nettallyd fills the other slot and flips nt_cls_gen
 * with one store, so a packet reads it once and is classified by exactly the
 * old or exactly the new ruleset. The slot's bitmasks sit in an inner map of
 * nt_cls_masks (map-in-map): replacing it makes the kernel wait for running
 * programs (synchronize_rcu), so a slot is never refilled under a packet that
 * still uses it.
 */
#define NT_CLS_SLOTS 2
#define NT_CLS_MAX_WORDS 256 /* 16,384 rules: every ruleset a bundle can hold */
#define NT_CLS_MAX_RULES (NT_CLS_MAX_WORDS * 64)
/*
 * The bitmasks in the slot's masks map come in chunks of NT_CLS_CHUNK_WORDS
 * words (256 rules, struct nt_cls_chunk: one map lookup each). A ruleset of
 * more than one chunk stores, per dimension and equivalence id, a summary
 * chunk first: bit c of its word 0 is set when chunk c of the id's mask is not
 * all zero. The AND of the packet's summaries names the only chunks that can
 * hold a matching rule (at most NT_CLS_MAX_CHUNKS = 64, one bit each), so a
 * packet no rule matches costs one lookup per dimension, not one per word.
 * An id's entries: chunks = (words + 3) / 4, stride = chunks == 1 ? 1 :
 * chunks + 1; the summary at base + eq * stride, chunk c at base + eq *
 * stride + (stride - chunks) + c.
 */
#define NT_CLS_CHUNK_WORDS 4
#define NT_CLS_MAX_CHUNKS (NT_CLS_MAX_WORDS / NT_CLS_CHUNK_WORDS)
struct nt_cls_chunk {
	__u64 w[NT_CLS_CHUNK_WORDS];
};
#define NT_CLS_MAX_PREFIXES 65536
#define NT_CLS_MAX_MACS 4096
#define NT_CLASS_OTHER 0

enum nt_cls_dim {
	NT_CLS_IFACE = 0,
	NT_CLS_DIR = 1,
	NT_CLS_PROTO = 2,
	NT_CLS_SPORT = 3,
	NT_CLS_DPORT = 4,
	NT_CLS_DSCP = 5,
	NT_CLS_VLAN = 6,
	NT_CLS_SRC = 7,
	NT_CLS_DST = 8,
	NT_CLS_MAC = 9,
	NT_CLS_DIMS = 10,
};

/*
 * nt_cls_scalar: ARRAY __u32 -> __u32 equivalence id. Slot s's value v of a
 * scalar dimension is at s * NT_CLS_SCALAR_SPAN + NT_CLS_OFF_<dim> + v.
 */
#define NT_CLS_OFF_DIR 0
#define NT_CLS_OFF_PROTO (NT_CLS_OFF_DIR + 2)
#define NT_CLS_OFF_SPORT (NT_CLS_OFF_PROTO + 256)
#define NT_CLS_OFF_DPORT (NT_CLS_OFF_SPORT + 65536)
#define NT_CLS_OFF_DSCP (NT_CLS_OFF_DPORT + 65536)
#define NT_CLS_OFF_VLAN (NT_CLS_OFF_DSCP + 64)
#define NT_CLS_SCALAR_SPAN (NT_CLS_OFF_VLAN + 4096)

/* nt_cls_info: ARRAY indexed by slot. */
#define NT_CLS_PER_PACKET 1 /* nt_cls_info.flags: the rules test DSCP, VLAN or MAC */
struct nt_cls_info {
	__u32 words; /* u64 words of every bitmask, 1 .. NT_CLS_MAX_WORDS */
	__u32 rules;
	__u32 serial; /* never 0, differs from load to load (nt_flow_val.cls_serial) */
	__u32 flags;
	/* where each dimension's entries start in the slot's masks map (chunks) */
	__u32 base[NT_CLS_DIMS];
	/* no value: no ports, no MAC, an interface no rule names */
	__u32 none_eq[NT_CLS_DIMS];
};

/*
 * nt_cls_lpm: LPM_TRIE; the data compared is slot, dimension (NT_CLS_SRC or
 * NT_CLS_DST), family and pad (32 bits) + the address, so prefixlen is
 * 32 + the prefix length. Every slot holds a /0 entry per family and dimension.
 */
#define NT_CLS_LPM_KEY_BITS 32
struct nt_cls_lpm_key {
	__u32 prefixlen;
	__u8 slot;
	__u8 dim;
	__u8 family;
	__u8 pad;
	__u32 addr[4];
};

/* nt_cls_mac: HASH {slot, MAC} -> __u32 equivalence id. */
struct nt_cls_mac_key {
	__u8 slot;
	__u8 pad;
	__u8 mac[6];
};

/* nt_cls_iface: HASH {slot, ifindex} -> __u32 equivalence id (globs resolved by nettallyd). */
struct nt_cls_iface_key {
	__u32 slot;
	__u32 ifindex;
};

/* nt_cls_rule_class: ARRAY, slot * NT_CLS_MAX_RULES + rule -> class id (__u32). */

/*
 * nt_cls_counts: PERCPU_HASH, the five figures per interface, direction and
 * stable class id. Every packet counted in the interface total is counted in
 * exactly one class while a ruleset is loaded (non-IP and unparsable frames in
 * NT_CLASS_OTHER), or in nt_cls_overflow when the map is full.
 */
#define NT_CLS_MAX_COUNTS 16384
struct nt_cls_count_key {
	__u32 ifindex;
	__u32 dir;
	__u32 class_id;
	__u32 pad;
};

/*
 * nt_host_cls: PERCPU_HASH, pinned: the five figures per lan host (the key of
 * nt_hosts) and stable class id, sent and received: exactly the packets
 * nt_hosts counts (source of ingress, unicast destination of egress), under
 * the class the packet got, while a ruleset is loaded. Per host, the classes
 * grow by what the host grows by. nettallyd sizes it (rules.max_host_classes;
 * one entry when the config has no rules section). nt_host_cls_overflow:
 * PERCPU_ARRAY of one struct nt_host_cls_val: packets whose entry could not be
 * created (map full).
 */
#define NT_DEFAULT_MAX_HOST_CLASSES 65536
struct nt_host_cls_key {
	struct nt_host_key host;
	__u32 class_id;
};

struct nt_host_cls_val {
	struct nt_counts sent;
	struct nt_counts received;
};

#endif /* NETTALLY_ABI_H */
