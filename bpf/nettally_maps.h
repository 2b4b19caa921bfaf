/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one form of a map definition in nettally's BPF programs: libbpf's
 * BTF-defined map (section ".maps") of a type, a size and a key/value type.
 * NT_MAP(nt_flows, BPF_MAP_TYPE_PERCPU_HASH, N, struct nt_flow_key, struct nt_flow_val)
 * defines the map nt_flows, which the skeleton names the same.
 *
 * Include after vmlinux.h and bpf_helpers.h.
 */
#ifndef NETTALLY_MAPS_H
#define NETTALLY_MAPS_H

#define NT_MAP(_name, _type, _max_entries, _key, _value)                                           \
	struct {                                                                                   \
		__uint(type, _type);                                                               \
		__uint(max_entries, _max_entries);                                                 \
		__type(key, _key);                                                                 \
		__type(value, _value);                                                             \
	} _name SEC(".maps")

#endif /* NETTALLY_MAPS_H */
