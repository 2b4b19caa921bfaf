// Traffic classes in the kernel: loads a compiled bundle (core/classes_bundle.h) into the
// nettally object's nt_cls_* maps (bpf/nettally_abi.h) and switches packets over to it with one
// store. The tables live in two slots; a load fills the slot packets do not use, then flips
// nt_cls_gen, so every packet is classified by exactly the old or exactly the new ruleset. The
// slot's bitmasks are an inner map of nt_cls_masks created per bundle; installing it makes the
// kernel wait for running programs, so the slot is never refilled under a packet still using it.
#pragma once

#include "core/classes_bundle.h"

#include <bpf/libbpf.h>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nettally {

class KernelClasses {
public:
    // The map fds of a loaded nettally object and its mmapped nt_cls_gen (the skeleton's .bss).
    struct Maps {
        int scalar = -1;
        int info = -1;
        int lpm = -1;
        int mac = -1;
        int iface = -1;
        int rule_class = -1;
        int masks = -1;
        uint32_t* gen = nullptr;

        // The maps of a loaded skeleton (nettally_bpf: the daemon, the BPF tests, the bench).
        template <typename Skel> static Maps of(Skel* s) {
            Maps m;
            m.scalar = bpf_map__fd(s->maps.nt_cls_scalar);
            m.info = bpf_map__fd(s->maps.nt_cls_info);
            m.lpm = bpf_map__fd(s->maps.nt_cls_lpm);
            m.mac = bpf_map__fd(s->maps.nt_cls_mac);
            m.iface = bpf_map__fd(s->maps.nt_cls_iface);
            m.rule_class = bpf_map__fd(s->maps.nt_cls_rule_class);
            m.masks = bpf_map__fd(s->maps.nt_cls_masks);
            m.gen = &s->bss->nt_cls_gen;
            return m;
        }
    };

    explicit KernelClasses(const Maps& maps);

    // Loads the bundle into the unused slot and switches packets to it. `ifaces` names the
    // interfaces (ifindex, name) the rules' globs are resolved against. Throws BundleError when
    // the bundle exceeds the kernel tables (NT_CLS_MAX_*), SysError when a map update fails;
    // either way the running ruleset stays.
    void load(const Bundle& bundle, const std::vector<std::pair<uint32_t, std::string>>& ifaces);
    // Stops classifying (nt_cls_gen = 0); the class counters keep their totals.
    void clear();
    // 0: no ruleset; 1 or 2: the slot in use plus one.
    uint32_t generation() const;
    // nt_cls_info.serial of the last load (what flows classified by it carry), 0 before one.
    uint32_t serial() const { return loaded_ ? serial_ : 0; }

private:
    Maps maps_;
    // nt_cls_info.serial of the next load: starts at a random value, so a flow entry that
    // outlived an earlier nettallyd (pinned nt_flows) never matches a new ruleset's serial.
    uint32_t serial_;
    bool loaded_ = false;
};

} // namespace nettally
