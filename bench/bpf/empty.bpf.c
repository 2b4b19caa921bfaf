// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Baseline for the in-kernel cost bench (bench/kernel_cost.cpp): a TC program
 * that does nothing. BPF_PROG_TEST_RUN's own per-repeat cost (loop, timer,
 * program call) is what this measures, so "overhead over empty" is the cost
 * of the real program's body alone.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TC_ACT_UNSPEC (-1)

SEC("tc")
int nt_bench_empty(struct __sk_buff *skb) { return TC_ACT_UNSPEC; }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
