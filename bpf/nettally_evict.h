/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Flow eviction in one pass (bpf/evict.bpf.c, daemon/kernel/evict.cpp): what nettallyd and
 * the eviction program share. Shared by BPF and C++; no kernel-only types.
 */
#ifndef NETTALLY_EVICT_H
#define NETTALLY_EVICT_H

#include "nettally_abi.h"

/* Flows one run takes (the slots of nt_evict); more flows take more runs. */
#define NT_EVICT_BATCH 8192

/* Bound of the per-CPU loop for the verifier; the loaded program runs cfg_ncpus times. */
#define NT_EVICT_MAX_CPUS 1024

/*
 * One slot of nt_evict: nettallyd writes the key, the program the flow's per-CPU values
 * summed, and found = 1 when the flow was there (and is now deleted).
 */
struct nt_evict_rec {
	struct nt_flow_key key;
	__u8 tcp_flags;
	__u8 found;
	__u16 cls_id; /* the class of the CPU with the latest last_ns among those with a class */
	struct nt_counts c;
	__u64 first_ns;	  /* the earliest non-zero first_ns of the CPUs */
	__u64 last_ns;	  /* the latest last_ns of the CPUs */
	__u32 cls_serial; /* its ruleset's serial (0: no class) */
	__u32 pad;
};

#endif /* NETTALLY_EVICT_H */
