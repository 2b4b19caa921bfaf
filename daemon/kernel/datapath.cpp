// Datapath: skeleton lifecycle, TC attach (legacy netlink API: libbpf 1.1
// has no TCX), and batched per-CPU map reads. See datapath.h.
#include "kernel/datapath.h"

#include "kernel/bpffs.h"
#include "kernel/evict.h"
#include "kernel/percpu_map.h"
#include "nettally.skel.h"
#include "os/fd.h"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <random>
#include <spdlog/spdlog.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace nettally {
namespace {

// nettally's filters sit at a fixed priority and handle on clsact so a
// restart replaces its own filter and never touches anybody else's.
constexpr uint32_t kTcHandle = 0x4e54; // "NT"
constexpr uint32_t kTcPriority = 1;    // first: see every packet before others act on it

} // namespace

nettally_bpf* open_datapath_object() {
    nettally_bpf* skel = nettally_bpf__open();
    if (skel && !xdp_unavailable().empty()) {
        bpf_program__set_autoload(skel->progs.nt_xdp_ingress_lan, false);
        bpf_program__set_autoload(skel->progs.nt_xdp_ingress_wan, false);
    }
    return skel;
}

Datapath::Datapath(const DatapathOptions& opts) : max_flows_(opts.max_flows), max_hosts_(opts.max_hosts) {
    ncpus_ = possible_cpus();

    skel_ = open_datapath_object();
    if (!skel_)
        throw SysError(errno, "opening BPF object");
    skel_->rodata->cfg_count_hosts = opts.count_hosts ? 1 : 0;
    skel_->rodata->cfg_classes = opts.classes ? 1 : 0;

    // Without the XDP helpers the XDP programs are not loaded and `mode: xdp` interfaces are refused.
    xdp_supported_ = xdp_unavailable().empty();
    if (!xdp_supported_)
        spdlog::warn("datapath: XDP mode unavailable, TC only: {}", xdp_unavailable());
    if (opts.preload)
        preload_only(*opts.preload);
    bpf_map__set_max_entries(skel_->maps.nt_flows, opts.max_flows);
    bpf_map__set_max_entries(skel_->maps.nt_hosts, opts.max_hosts);
    bpf_map__set_max_entries(skel_->maps.nt_host_cls, std::max<uint32_t>(opts.max_host_classes, 1));
    if (!opts.pin_dir.empty()) {
        try {
            pin_maps(opts.pin_dir);
        } catch (...) {
            nettally_bpf__destroy(skel_);
            throw;
        }
    }

    int err = nettally_bpf__load(skel_);
    if (err) {
        nettally_bpf__destroy(skel_);
        skel_ = nullptr;
        throw SysError(-err, "loading BPF programs");
    }
    if (!reused_) {
        const uint32_t zero = 0, version = NT_ABI_VERSION;
        bpf_map_update_elem(bpf_map__fd(skel_->maps.nt_meta), &zero, &version, BPF_ANY);
    }
    try {
        if (opts.batched_eviction)
            evictor_ = std::make_unique<FlowEvictor>(bpf_map__fd(skel_->maps.nt_flows), ncpus_);
    } catch (const SysError& e) {
        spdlog::info("datapath: flows are finished one syscall each: {}", e.what());
    }
}

namespace {

struct MapShape {
    uint32_t type, key_size, value_size, max_entries;
};

// For a pin_dir this process may not use: who it runs as and how the directory is handed over.
std::string prepare_hint() {
    return " (nettallyd runs as uid " + std::to_string(geteuid()) +
           "; `nettallyd --prepare-pins USER`, as root, gives pin_dir to USER, as the unit's ExecStartPre "
           "does)";
}

// A pin in pin_dir, or an empty Fd when there is none. One this user may not open would read as
// "not pinned" and then fail as "exists": it is an error that says why (pins of root after the
// unit gained User=, or the other way round).
Fd open_pin(const std::string& path) {
    Fd fd{bpf_obj_get(path.c_str())};
    if (!fd && (errno == EACCES || errno == EPERM))
        throw SysError(errno, "pinned map " + path + prepare_hint());
    return fd;
}

MapShape shape_of(int fd) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len))
        throw SysError(errno, "reading pinned map info");
    return {info.type, info.key_size, info.value_size, info.max_entries};
}

} // namespace

void Datapath::pin_maps(const std::string& dir) {
    namespace fs = std::filesystem;
    ensure_bpffs(dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
        throw SysError(ec.value(), "creating pin directory " + dir + prepare_hint());
    pin_dir_ = dir;
    // New pins are made here: a directory this user may not write is refused now, with the why.
    if (faccessat(AT_FDCWD, dir.c_str(), R_OK | W_OK | X_OK, AT_EACCESS) != 0)
        throw SysError(errno, "pin directory " + dir + prepare_hint());

    // An ABI change is refused before any map is touched.
    const std::string meta_path = dir + "/nt_meta";
    if (const Fd meta = open_pin(meta_path)) {
        uint32_t zero = 0, version = 0;
        bpf_map_lookup_elem(meta.get(), &zero, &version);
        if (version != NT_ABI_VERSION)
            throw PinMismatch("pinned maps in " + dir + " use map layout version " + std::to_string(version) +
                              ", this nettallyd uses " + std::to_string(NT_ABI_VERSION) +
                              ": run the old nettallyd with --detach (saves totals to the state file), "
                              "or `nettallyd --detach` to save what can be read and remove the pins");
    }

    bool any_pinned = false, all_pinned = true;
    for (bpf_map* m : pinned_maps()) {
        const std::string path = dir + "/" + bpf_map__name(m);
        if (const Fd fd = open_pin(path)) {
            const MapShape have = shape_of(fd.get());
            const MapShape want{static_cast<uint32_t>(bpf_map__type(m)), bpf_map__key_size(m),
                                bpf_map__value_size(m), bpf_map__max_entries(m)};
            if (have.type != want.type || have.key_size != want.key_size ||
                have.value_size != want.value_size)
                throw PinMismatch("pinned map " + path + " has a different layout (key " +
                                  std::to_string(have.key_size) + " B, value " +
                                  std::to_string(have.value_size) + " B; expected " +
                                  std::to_string(want.key_size) + " B, " + std::to_string(want.value_size) +
                                  " B): run `nettallyd --detach` to save the totals and remove the pins");
            if (have.max_entries != want.max_entries && m == skel_->maps.nt_host_cls) {
                // Sized by the rules section, which an operator adds or removes: a new empty map
                // rather than a refused start. The collector sees the counters restart (totals
                // continue from the saved state; what was counted since the last save is lost).
                spdlog::warn("datapath: pinned {} holds {} entries, the config asks for {}: it starts "
                             "again empty (the per host and class totals continue from the state file)",
                             path, have.max_entries, want.max_entries);
                if (unlink(path.c_str()) != 0)
                    throw SysError(errno, "removing the pin " + path);
            } else if (have.max_entries != want.max_entries)
                throw PinMismatch("pinned map " + path + " holds " + std::to_string(have.max_entries) +
                                  " entries but the config asks for " + std::to_string(want.max_entries) +
                                  ": the live counts are in the pinned map; run `nettallyd --detach` (saves "
                                  "totals to the state file and removes the pins), then start again");
            any_pinned = true;
        } else {
            all_pinned = false;
        }
        // libbpf reuses a compatible pinned map, or creates and pins a new one.
        int err = bpf_map__set_pin_path(m, path.c_str());
        if (err)
            throw SysError(-err, "setting pin path " + path);
    }
    if (any_pinned && !all_pinned)
        spdlog::warn("datapath: some pinned maps in {} were missing; missing ones start empty", dir);
    reused_ = any_pinned;
    if (reused_)
        spdlog::info("datapath: reusing pinned maps in {}: counting continued while nettallyd was down", dir);
}

std::vector<bpf_map*> Datapath::pinned_maps() const {
    return {skel_->maps.nt_ifaces,     skel_->maps.nt_flows,
            skel_->maps.nt_hosts,      skel_->maps.nt_frags,
            skel_->maps.nt_meta,       skel_->maps.nt_evicted,
            skel_->maps.nt_bindings,   skel_->maps.nt_user_counts,
            skel_->maps.nt_user_names, skel_->maps.nt_user_overflow,
            skel_->maps.nt_cls_counts, skel_->maps.nt_cls_overflow,
            skel_->maps.nt_host_cls,   skel_->maps.nt_host_cls_overflow};
}

void Datapath::remove_pins() {
    if (pin_dir_.empty())
        return;
    for (bpf_map* m : pinned_maps())
        bpf_map__unpin(m, nullptr);
    std::error_code ec;
    std::filesystem::remove(pin_dir_, ec);
    spdlog::info("datapath: removed pins in {}", pin_dir_);
}

Datapath::~Datapath() {
    // Filters and XDP programs stay attached and keep counting into the
    // pinned maps; only the process's own references go.
    nettally_bpf__destroy(skel_);
}

void Datapath::attach(uint32_t ifindex, bool lan, bool xdp, bool l3) {
    if (xdp && !xdp_supported_)
        throw SysError(EOPNOTSUPP,
                       "XDP mode on ifindex " + std::to_string(ifindex) + " (" + xdp_unavailable() + ")");
    // ingress, egress, and with xdp the XDP program; loaded now if the start did not load them.
    const std::vector<int> fds = program_fds(programs_for(AttachKind{lan, xdp, l3}));
    // Create the counter entries first so the first packet never races an insert.
    const nt_iface_val zero_val{};
    std::vector<nt_iface_val> zeros(static_cast<size_t>(ncpus_), zero_val);
    for (uint32_t dir = 0; dir < NT_DIR_MAX; dir++) {
        nt_iface_key key{ifindex, dir};
        int err = bpf_map_update_elem(bpf_map__fd(skel_->maps.nt_ifaces), &key, zeros.data(), BPF_NOEXIST);
        if (err && err != -EEXIST)
            throw SysError(-err, "creating counters for ifindex " + std::to_string(ifindex));
    }

    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        throw SysError(-err, "creating clsact qdisc on ifindex " + std::to_string(ifindex));

    // A role or mode change swaps programs in place (BPF_TC_F_REPLACE, XDP's
    // replace of our own program): no instant without a program. Moving
    // ingress between XDP and TC attaches the new hook before removing the
    // old one, so a packet in that instant may be counted twice, never lost.
    const auto prev = attached_.find(ifindex);
    const bool fresh = prev == attached_.end();
    const uint32_t prev_xdp = fresh ? 0 : prev->second.xdp_flags;
    Attachment a{lan, 0};

    if (xdp) {
        // XDP first: moving ingress from TC to XDP may count a packet twice
        // in that instant, never lose one.
        try {
            attach_xdp(ifindex, fds[2], a);
        } catch (...) {
            if (fresh)
                detach(ifindex);
            throw;
        }
    }
    for (const auto& [point, prog_fd] :
         {std::pair{BPF_TC_INGRESS, fds[0]}, std::pair{BPF_TC_EGRESS, fds[1]}}) {
        hook.attach_point = point;
        LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
                    .priority = kTcPriority);
        err = bpf_tc_attach(&hook, &tc);
        if (err) {
            if (fresh)
                detach(ifindex);
            throw SysError(-err, std::string("attaching TC ") +
                                     (point == BPF_TC_INGRESS ? "ingress" : "egress") + " on ifindex " +
                                     std::to_string(ifindex));
        }
    }
    if (!xdp && prev_xdp) {
        // Ingress moved from XDP to TC (attached above): the XDP program goes now.
        bpf_xdp_detach(static_cast<int>(ifindex), static_cast<int>(prev_xdp), nullptr);
    }
    attached_[ifindex] = a;
}

void Datapath::attach_xdp(uint32_t ifindex, int fd, Attachment& a) {
    // Never replace somebody else's XDP program; replace only one of ours
    // (nt_xdp_*), e.g. left behind by a crashed run.
    uint32_t existing = 0;
    for (uint32_t mode : {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE}) {
        LIBBPF_OPTS(bpf_xdp_query_opts, q);
        if (bpf_xdp_query(static_cast<int>(ifindex), static_cast<int>(mode), &q) == 0) {
            existing = mode == XDP_FLAGS_DRV_MODE ? q.drv_prog_id : q.skb_prog_id;
            if (existing) {
                const Fd efd(bpf_prog_get_fd_by_id(existing));
                bpf_prog_info info{};
                uint32_t len = sizeof(info);
                const bool ours = efd && bpf_obj_get_info_by_fd(efd.get(), &info, &len) == 0 &&
                                  std::string_view(info.name).starts_with("nt_xdp_");
                if (!ours)
                    throw SysError(EBUSY, "ifindex " + std::to_string(ifindex) +
                                              " already runs another XDP program (id " +
                                              std::to_string(existing) + ")");
                // Ours from an earlier run: swap in place, no window without a program.
                const Fd old_fd(bpf_prog_get_fd_by_id(existing));
                LIBBPF_OPTS(bpf_xdp_attach_opts, xo, .old_prog_fd = old_fd.get());
                int err = bpf_xdp_attach(static_cast<int>(ifindex), fd, XDP_FLAGS_REPLACE | mode, &xo);
                if (err == 0) {
                    a.xdp_flags = mode;
                    return;
                }
                bpf_xdp_detach(static_cast<int>(ifindex), static_cast<int>(mode), nullptr);
            }
        }
    }
    int err = bpf_xdp_attach(static_cast<int>(ifindex), fd, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE,
                             nullptr);
    if (err == 0) {
        a.xdp_flags = XDP_FLAGS_DRV_MODE;
        return;
    }
    spdlog::warn("datapath: native XDP refused on ifindex {} ({}); using generic XDP, which runs later "
                 "in the stack and costs more",
                 ifindex, std::strerror(-err));
    err = bpf_xdp_attach(static_cast<int>(ifindex), fd, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE,
                         nullptr);
    if (err)
        throw SysError(-err, "attaching XDP on ifindex " + std::to_string(ifindex));
    a.xdp_flags = XDP_FLAGS_SKB_MODE;
}

void Datapath::detach(uint32_t ifindex) {
    auto it = attached_.find(ifindex);
    if (it != attached_.end() && it->second.xdp_flags) {
        int err = bpf_xdp_detach(static_cast<int>(ifindex), static_cast<int>(it->second.xdp_flags), nullptr);
        if (err && err != -ENODEV)
            spdlog::warn("datapath: detaching XDP from ifindex {}: {}", ifindex, std::strerror(-err));
    }
    for (auto point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = point);
        LIBBPF_OPTS(bpf_tc_opts, tc, .handle = kTcHandle, .priority = kTcPriority);
        int err = bpf_tc_detach(&hook, &tc);
        // ENOENT: never attached here, or the interface is gone with its filters.
        if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
            spdlog::warn("datapath: detaching from ifindex {}: {}", ifindex, std::strerror(-err));
    }
    attached_.erase(ifindex);
}

void Datapath::detach_all() {
    while (!attached_.empty())
        detach(attached_.begin()->first);
}

std::vector<std::string> Datapath::detach_stale(const std::vector<uint32_t>& keep) {
    std::vector<std::string> out;
    struct if_nameindex* ifs = if_nameindex();
    if (!ifs)
        return out;
    for (auto* i = ifs; i->if_index != 0; i++) {
        if (std::find(keep.begin(), keep.end(), i->if_index) != keep.end())
            continue;
        bool found = false;
        for (auto point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
            LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(i->if_index), .attach_point = point);
            LIBBPF_OPTS(bpf_tc_opts, tc, .handle = kTcHandle, .priority = kTcPriority);
            if (bpf_tc_query(&hook, &tc) == 0) {
                LIBBPF_OPTS(bpf_tc_opts, del, .handle = kTcHandle, .priority = kTcPriority);
                bpf_tc_detach(&hook, &del);
                found = true;
            }
        }
        for (uint32_t mode : {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE}) {
            LIBBPF_OPTS(bpf_xdp_query_opts, q);
            if (bpf_xdp_query(static_cast<int>(i->if_index), static_cast<int>(mode), &q) != 0)
                continue;
            const uint32_t id = mode == XDP_FLAGS_DRV_MODE ? q.drv_prog_id : q.skb_prog_id;
            const Fd pfd(id ? bpf_prog_get_fd_by_id(id) : -1);
            if (!pfd)
                continue;
            bpf_prog_info info{};
            uint32_t len = sizeof(info);
            if (bpf_obj_get_info_by_fd(pfd.get(), &info, &len) == 0 &&
                std::string_view(info.name).starts_with("nt_xdp_")) {
                bpf_xdp_detach(static_cast<int>(i->if_index), static_cast<int>(mode), nullptr);
                found = true;
            }
        }
        if (found)
            out.emplace_back(i->if_name);
    }
    if_freenameindex(ifs);
    return out;
}

void Datapath::forget_interface(uint32_t ifindex) {
    for (uint32_t dir = 0; dir < NT_DIR_MAX; dir++) {
        nt_iface_key key{ifindex, dir};
        bpf_map_delete_elem(bpf_map__fd(skel_->maps.nt_ifaces), &key);
        bpf_map_delete_elem(bpf_map__fd(skel_->maps.nt_evicted), &key);
    }
    // Its class counters too (the totals stay by name in the collector).
    const int fd = bpf_map__fd(skel_->maps.nt_cls_counts);
    std::vector<nt_cls_count_key> doomed;
    nt_cls_count_key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (next.ifindex == ifindex)
            doomed.push_back(next);
        key = next;
        prev = &key;
    }
    for (const auto& k : doomed)
        bpf_map_delete_elem(fd, &k);
}

std::map<IfaceKey, EvictedSums> Datapath::read_evicted() {
    std::map<IfaceKey, EvictedSums> out;
    const int fd = bpf_map__fd(skel_->maps.nt_evicted);
    nt_iface_key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        nt_evicted_val v{};
        if (bpf_map_lookup_elem(fd, &next, &v) == 0 && next.dir < NT_DIR_MAX)
            out[{next.ifindex, static_cast<uint8_t>(next.dir)}] = {Counts(v.counts), v.flows};
        key = next;
        prev = &key;
    }
    return out;
}

void Datapath::write_evicted(const IfaceKey& key, const EvictedSums& sums) {
    const nt_iface_key k{key.first, key.second};
    nt_evicted_val v{};
    v.counts = {sums.counts.packets, sums.counts.l2, sums.counts.l3, sums.counts.l4, sums.counts.payload};
    v.flows = sums.flows;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nt_evicted), &k, &v, BPF_ANY))
        spdlog::warn("datapath: keeping the evicted flows' sums of ifindex {} {} beside the counters: {} "
                     "(until the next state save a crash would lose them from finished_flows)",
                     key.first, to_string(static_cast<Direction>(key.second)), std::strerror(errno));
}

std::vector<FlowEntry> Datapath::evict_flows(const std::vector<nt_flow_key>& keys) {
    // Below this many keys one syscall per flow costs less than an iterator pass (which
    // visits every slot of its key array).
    constexpr size_t kIteratorMinKeys = 64;
    std::vector<FlowEntry> out;
    out.reserve(keys.size());
    if (evictor_ && keys.size() >= kIteratorMinKeys) {
        try {
            evictor_->take(keys, out);
            return out;
        } catch (const SysError& e) {
            // The flows whose records came back are gone from the map: the loop below skips
            // them (no entry) and takes the rest one by one.
            spdlog::warn("datapath: finishing flows through the iterator failed ({}); one syscall per "
                         "flow from now on",
                         e.what());
            evictor_.reset();
        }
    }
    const int fd = bpf_map__fd(skel_->maps.nt_flows);
    std::vector<nt_flow_val> vals(static_cast<size_t>(ncpus_));
    for (const auto& k : keys) {
        const bool was_atomic = lookup_and_delete_ok_;
        const int err = take_percpu_entry(fd, &k, vals.data(), lookup_and_delete_ok_);
        if (was_atomic && !lookup_and_delete_ok_)
            spdlog::warn("datapath: kernel lacks lookup-and-delete for hash maps; flow eviction may "
                         "lose packets that arrive during it");
        if (err == 0)
            out.push_back(fold_percpu(k, std::span<const nt_flow_val>(vals)));
    }
    return out;
}

void Datapath::policy_put(const nt_policy_key& key, const nt_policy_val& val) {
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nt_policy), &key, &val, BPF_ANY))
        throw SysError(errno, "writing the policy map");
}

void Datapath::policy_remove(const nt_policy_key& key) {
    if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.nt_policy), &key) && errno != ENOENT)
        spdlog::warn("datapath: removing a policy entry: {}", std::strerror(errno));
}

std::optional<nt_policy_val> Datapath::policy_get(const nt_policy_key& key) const {
    nt_policy_val v{};
    if (bpf_map_lookup_elem_flags(bpf_map__fd(skel_->maps.nt_policy), &key, &v, BPF_F_LOCK))
        return std::nullopt;
    return v;
}

void Datapath::set_policy_kinds(uint32_t kinds) {
    // .bss is memory-mapped: the programs see the store at once.
    __atomic_store_n(&skel_->bss->nt_policy_kinds, kinds, __ATOMIC_RELEASE);
}

void Datapath::set_edt_interface(uint32_t ifindex, bool on) {
    const int fd = bpf_map__fd(skel_->maps.nt_policy_edt);
    const uint8_t one = 1;
    if (on && bpf_map_update_elem(fd, &ifindex, &one, BPF_ANY))
        throw SysError(errno, "marking ifindex " + std::to_string(ifindex) + " for EDT");
    if (!on)
        bpf_map_delete_elem(fd, &ifindex);
}

std::vector<uint32_t> Datapath::lan_interfaces() const {
    std::vector<uint32_t> out;
    for (const auto& [ifindex, a] : attached_)
        if (a.lan)
            out.push_back(ifindex);
    return out;
}

IfaceSnapshot Datapath::read_ifaces() {
    IfaceSnapshot snap;
    read_percpu_map<nt_iface_key, nt_iface_val>(
        bpf_map__fd(skel_->maps.nt_ifaces), ncpus_, "reading interface counters",
        [&](const nt_iface_key& k, std::span<const nt_iface_val> v) {
            snap[{k.ifindex, static_cast<uint8_t>(k.dir)}] = fold_percpu(v);
        });
    return snap;
}

namespace {

// Every entry of a per-CPU map, its values folded into one entry per key.
template <typename Entry, typename K, typename V>
std::vector<Entry> read_folded(int fd, int ncpus, const char* what) {
    std::vector<Entry> out;
    read_percpu_map<K, V>(fd, ncpus, what,
                          [&](const K& k, std::span<const V> v) { out.push_back(fold_percpu(k, v)); });
    return out;
}

} // namespace

void Datapath::read_flows(std::vector<FlowEntry>& out) {
    // Room for a full map from the start: address space only until written, and the table
    // never moves (growing by doubling would hold the old and the new copy at once).
    out.clear();
    out.reserve(max_flows_);
    read_percpu_map<nt_flow_key, nt_flow_val>(
        bpf_map__fd(skel_->maps.nt_flows), ncpus_, "reading flows",
        [&](const nt_flow_key& k, std::span<const nt_flow_val> v) { out.push_back(fold_percpu(k, v)); });
}

std::vector<HostEntry> Datapath::read_hosts() {
    return read_folded<HostEntry, nt_host_key, nt_host_val>(bpf_map__fd(skel_->maps.nt_hosts), ncpus_,
                                                            "reading hosts");
}

} // namespace nettally

namespace nettally {

std::vector<UserEntry> Datapath::read_users() {
    return read_folded<UserEntry, nt_user_key, nt_user_val>(bpf_map__fd(skel_->maps.nt_user_counts), ncpus_,
                                                            "reading user counters");
}

UserEntry Datapath::read_user_overflow() {
    std::vector<nt_user_val> vals(static_cast<size_t>(ncpus_));
    const uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nt_user_overflow), &zero, vals.data()))
        throw SysError(errno, "reading the user overflow counter");
    return fold_percpu(nt_user_key{}, std::span<const nt_user_val>(vals));
}

std::vector<ClassEntry> Datapath::read_classes() {
    return read_folded<ClassEntry, nt_cls_count_key, nt_counts>(bpf_map__fd(skel_->maps.nt_cls_counts),
                                                                ncpus_, "reading class counters");
}

Counts Datapath::read_class_overflow() {
    std::vector<nt_counts> vals(static_cast<size_t>(ncpus_));
    const uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nt_cls_overflow), &zero, vals.data()))
        throw SysError(errno, "reading the class overflow counter");
    Counts sum;
    for (const auto& v : vals)
        sum += Counts(v);
    return sum;
}

std::vector<HostClassEntry> Datapath::read_host_classes() {
    return read_folded<HostClassEntry, nt_host_cls_key, nt_host_cls_val>(
        bpf_map__fd(skel_->maps.nt_host_cls), ncpus_, "reading host-class counters");
}

HostClassEntry Datapath::read_host_class_overflow() {
    std::vector<nt_host_cls_val> vals(static_cast<size_t>(ncpus_));
    const uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nt_host_cls_overflow), &zero, vals.data()))
        throw SysError(errno, "reading the host-class overflow counter");
    return fold_percpu(nt_host_cls_key{}, std::span<const nt_host_cls_val>(vals));
}

KernelClasses::Maps Datapath::class_maps() const {
    return KernelClasses::Maps::of(skel_);
}

void Datapath::sync_bindings(const std::map<Prefix, uint32_t>& want) {
    const int fd = bpf_map__fd(skel_->maps.nt_bindings);
    std::vector<nt_bind_key> have;
    nt_bind_key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        have.push_back(next);
        key = next;
        prev = &key;
    }
    std::vector<nt_bind_key> wanted;
    for (const auto& [prefix, id] : want) {
        const nt_bind_key k = prefix.kernel_key();
        nt_bind_val cur{}, v{};
        v.user = id;
        wanted.push_back(k);
        if (bpf_map_lookup_elem(fd, &k, &cur) == 0 && cur.user == id)
            continue;
        if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
            throw SysError(errno, "binding " + prefix.to_string() + " in the kernel");
    }
    for (const auto& k : have)
        if (std::none_of(wanted.begin(), wanted.end(),
                         [&](const nt_bind_key& w) { return std::memcmp(&w, &k, sizeof(k)) == 0; }))
            if (bpf_map_delete_elem(fd, &k) && errno != ENOENT)
                throw SysError(errno, "removing a binding from the kernel");
    next_bind_serial();
}

void Datapath::set_binding(const Prefix& prefix, uint32_t id) {
    const nt_bind_key k = prefix.kernel_key();
    nt_bind_val v{};
    v.user = id;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nt_bindings), &k, &v, BPF_ANY))
        throw SysError(errno, "binding " + prefix.to_string() + " in the kernel");
    next_bind_serial();
}

void Datapath::remove_binding(const Prefix& prefix) {
    const nt_bind_key k = prefix.kernel_key();
    const int rc = bpf_map_delete_elem(bpf_map__fd(skel_->maps.nt_bindings), &k);
    if (rc && errno != ENOENT)
        throw SysError(errno, "removing the binding of " + prefix.to_string() + " from the kernel");
    if (rc == 0)
        next_bind_serial();
}

void Datapath::next_bind_serial() {
    uint32_t s = __atomic_load_n(&skel_->bss->nt_bind_serial, __ATOMIC_RELAXED);
    if (s == 0)
        s = std::random_device{}();
    if (++s == 0) // 0 is a fresh entry's serial: never current
        s = 1;
    __atomic_store_n(&skel_->bss->nt_bind_serial, s, __ATOMIC_RELEASE);
}

std::map<uint32_t, std::string> Datapath::read_user_names() const {
    std::map<uint32_t, std::string> out;
    const int fd = bpf_map__fd(skel_->maps.nt_user_names);
    uint32_t key = 0, next = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        nt_user_name n{};
        if (bpf_map_lookup_elem(fd, &next, &n) == 0)
            out[next] = std::string(n.name, strnlen(n.name, sizeof(n.name)));
        key = next;
        prev = &key;
    }
    return out;
}

void Datapath::write_user_name(uint32_t id, const std::string& name) {
    nt_user_name n{};
    std::memcpy(n.name, name.data(), std::min(name.size(), sizeof(n.name) - 1));
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.nt_user_names), &id, &n, BPF_ANY))
        throw SysError(errno, "recording user " + name + " in the kernel");
}

void Datapath::set_users_on(bool on) {
    next_bind_serial(); // the caches of a run with counting off are not trusted either
    __atomic_store_n(&skel_->bss->nt_users_on, on ? 1u : 0u, __ATOMIC_RELEASE);
}

} // namespace nettally
