// C++ view of bpf/nettally_abi.h. The asserts pin every shared struct's size
// and the offsets userspace relies on: a layout change in the ABI header fails
// the build here (bump NT_ABI_VERSION then) instead of silently misreading maps.
#pragma once

#include <cstddef>

extern "C" {
#include "nettally_abi.h"
}

static_assert(sizeof(nt_counts) == 40);
static_assert(sizeof(nt_iface_key) == 8);
static_assert(sizeof(nt_iface_val) == 40 + 40 * NT_BUCKET_MAX + 8);
static_assert(sizeof(nt_flow_key) == 44);
static_assert(offsetof(nt_flow_key, src) == 12);
static_assert(sizeof(nt_flow_val) == 64);
static_assert(sizeof(nt_host_key) == 28);
static_assert(offsetof(nt_host_key, addr) == 12);
static_assert(sizeof(nt_host_val) == 104); // ABI 2: + the user cache (user, bind_serial)
static_assert(sizeof(nt_evicted_val) == sizeof(nt_counts) + 8);
static_assert(sizeof(nt_cg_val) == 2 * sizeof(nt_counts));
static_assert(sizeof(nt_cg_dir_val) == sizeof(nt_counts) * (1 + NT_CG_BUCKET_MAX));
// Subscribers (new maps: the existing layouts, and so NT_ABI_VERSION, are unchanged).
static_assert(sizeof(nt_bind_key) == 24);
static_assert(offsetof(nt_bind_key, addr) == 8);
static_assert(sizeof(nt_bind_val) == 8);
static_assert(sizeof(nt_user_key) == 8);
static_assert(sizeof(nt_user_val) == 2 * sizeof(nt_counts));
static_assert(sizeof(nt_user_name) == NT_USER_NAME_LEN);
// Not pinned (no ABI version bump for these): the enforcer's policy map.
static_assert(sizeof(nt_policy_key) == 20);
static_assert(sizeof(nt_policy_val) == 8 + 8 * 3 + 8 * 3 * NT_DIR_MAX);
static_assert(offsetof(nt_policy_val, rate) == 8);
// Traffic classes (new maps, not pinned: nettallyd loads the ruleset again at start).
static_assert(sizeof(nt_cls_info) == 16 + 8 * NT_CLS_DIMS);
static_assert(offsetof(nt_flow_val, cls_serial) == 60);
static_assert(sizeof(nt_cls_lpm_key) == 24);
static_assert(offsetof(nt_cls_lpm_key, addr) == 8);
static_assert(sizeof(nt_cls_mac_key) == 8);
static_assert(sizeof(nt_cls_iface_key) == 8);
static_assert(sizeof(nt_cls_count_key) == 16);
static_assert(NT_CLS_SCALAR_SPAN == 2 + 256 + 65536 * 2 + 64 + 4096);
// Per host and class (a new pinned map: the existing layouts are unchanged).
static_assert(sizeof(nt_host_cls_key) == sizeof(nt_host_key) + 4);
static_assert(offsetof(nt_host_cls_key, class_id) == 28);
static_assert(sizeof(nt_host_cls_val) == 2 * sizeof(nt_counts));
static_assert(NT_ABI_VERSION == 2, "update the asserts above with the ABI version");
