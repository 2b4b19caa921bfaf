// Datapath: skeleton lifecycle, TC attach (legacy netlink API: libbpf 1.1
// has no TCX), and batched per-CPU map reads. See datapath.h.
#include "datapath.h"

#include "nettally.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cstdarg>
#include <linux/if_link.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <vector>

namespace nettally {
namespace {

// nettally's filters sit at a fixed priority and handle on clsact so a
// restart replaces its own filter and never touches anybody else's.
constexpr uint32_t kTcHandle = 0x4e54; // "NT"
constexpr uint32_t kTcPriority = 1;    // first: see every packet before others act on it

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
    std::string msg(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
    while (!msg.empty() && msg.back() == '\n')
        msg.pop_back();
    switch (level) {
    case LIBBPF_WARN:
        spdlog::info("libbpf: {}", msg);
        break;
    case LIBBPF_INFO:
        spdlog::debug("libbpf: {}", msg);
        break;
    default:
        spdlog::trace("libbpf: {}", msg);
        break;
    }
    return n;
}

// Reads a whole per-CPU hash map in batches. fn(key, span of per-CPU values).
template <typename K, typename V, typename Fn> void read_percpu_map(int fd, int ncpus, Fn&& fn) {
    constexpr uint32_t kChunk = 4096;
    static_assert(sizeof(V) % 8 == 0, "per-CPU values are laid out on 8-byte strides");
    std::vector<K> keys(kChunk);
    std::vector<V> vals(static_cast<size_t>(kChunk) * static_cast<size_t>(ncpus));
    uint64_t in_token = 0, out_token = 0;
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);

    for (;;) {
        uint32_t count = kChunk;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_token, &out_token, keys.data(), vals.data(),
                                       &count, &opts);
        if (err && err != -ENOENT)
            throw SysError(-err, "reading map fd " + std::to_string(fd));
        for (uint32_t i = 0; i < count; i++)
            fn(keys[i], std::span<const V>(&vals[static_cast<size_t>(i) * static_cast<size_t>(ncpus)],
                                           static_cast<size_t>(ncpus)));
        if (err == -ENOENT)
            return;
        in_token = out_token;
        first = false;
    }
}

} // namespace

void route_libbpf_logs() { libbpf_set_print(libbpf_print); }

Datapath::Datapath(const DatapathOptions& opts) : max_flows_(opts.max_flows), max_hosts_(opts.max_hosts) {
    ncpus_ = libbpf_num_possible_cpus();
    if (ncpus_ <= 0)
        throw SysError(-ncpus_, "counting possible CPUs");

    skel_ = nettally_bpf__open();
    if (!skel_)
        throw SysError(errno, "opening BPF object");
    skel_->rodata->cfg_count_hosts = opts.count_hosts ? 1 : 0;

    // XDP mode needs bpf_xdp_load_bytes (Linux 5.18). Probe once; without it
    // the XDP programs are not loaded and `mode: xdp` interfaces are refused.
    xdp_supported_ = libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_load_bytes, nullptr) == 1;
    if (!xdp_supported_) {
        spdlog::warn("datapath: kernel lacks bpf_xdp_load_bytes; XDP mode unavailable, TC only");
        bpf_program__set_autoload(skel_->progs.nt_xdp_ingress_lan, false);
        bpf_program__set_autoload(skel_->progs.nt_xdp_ingress_wan, false);
    }
    bpf_map__set_max_entries(skel_->maps.nt_flows, opts.max_flows);
    bpf_map__set_max_entries(skel_->maps.nt_hosts, opts.max_hosts);

    int err = nettally_bpf__load(skel_);
    if (err) {
        nettally_bpf__destroy(skel_);
        skel_ = nullptr;
        throw SysError(-err, "loading BPF programs");
    }
}

Datapath::~Datapath() {
    detach_all();
    nettally_bpf__destroy(skel_);
}

void Datapath::attach(uint32_t ifindex, bool lan, bool xdp) {
    if (xdp && !xdp_supported_)
        throw SysError(EOPNOTSUPP, "XDP mode on ifindex " + std::to_string(ifindex));
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

    // Re-attaching (role or mode changed) first removes what the old mode had,
    // so ingress is never counted at both XDP and TC.
    if (attached_.count(ifindex))
        detach(ifindex);
    Attachment a{lan, 0};

    struct {
        bpf_tc_attach_point point;
        bpf_program* prog;
    } const hooks[] = {
        {BPF_TC_INGRESS, lan ? skel_->progs.nt_tc_ingress_lan : skel_->progs.nt_tc_ingress_wan},
        {BPF_TC_EGRESS, lan ? skel_->progs.nt_tc_egress_lan : skel_->progs.nt_tc_egress_wan},
    };
    for (const auto& h : hooks) {
        if (xdp && h.point == BPF_TC_INGRESS)
            continue;
        hook.attach_point = h.point;
        LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = bpf_program__fd(h.prog), .flags = BPF_TC_F_REPLACE,
                    .handle = kTcHandle, .priority = kTcPriority);
        err = bpf_tc_attach(&hook, &tc);
        if (err) {
            detach(ifindex);
            throw SysError(-err, std::string("attaching TC ") +
                                     (h.point == BPF_TC_INGRESS ? "ingress" : "egress") + " on ifindex " +
                                     std::to_string(ifindex));
        }
    }
    attached_[ifindex] = a;
    if (xdp) {
        try {
            attach_xdp(ifindex, lan, attached_[ifindex]);
        } catch (...) {
            detach(ifindex);
            throw;
        }
    }
}

void Datapath::attach_xdp(uint32_t ifindex, bool lan, Attachment& a) {
    const int fd = bpf_program__fd(lan ? skel_->progs.nt_xdp_ingress_lan : skel_->progs.nt_xdp_ingress_wan);
    // Never replace somebody else's XDP program; replace only one of ours
    // (nt_xdp_*), e.g. left behind by a crashed run.
    uint32_t existing = 0;
    for (uint32_t mode : {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE}) {
        LIBBPF_OPTS(bpf_xdp_query_opts, q);
        if (bpf_xdp_query(static_cast<int>(ifindex), static_cast<int>(mode), &q) == 0) {
            existing = mode == XDP_FLAGS_DRV_MODE ? q.drv_prog_id : q.skb_prog_id;
            if (existing) {
                int efd = bpf_prog_get_fd_by_id(existing);
                bpf_prog_info info{};
                uint32_t len = sizeof(info);
                bool ours = efd >= 0 && bpf_obj_get_info_by_fd(efd, &info, &len) == 0 &&
                            std::string_view(info.name).starts_with("nt_xdp_");
                if (efd >= 0)
                    close(efd);
                if (!ours)
                    throw SysError(EBUSY, "ifindex " + std::to_string(ifindex) +
                                              " already runs another XDP program (id " +
                                              std::to_string(existing) + ")");
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

IfaceSnapshot Datapath::read_ifaces() {
    IfaceSnapshot snap;
    read_percpu_map<nt_iface_key, nt_iface_val>(
        bpf_map__fd(skel_->maps.nt_ifaces), ncpus_,
        [&](const nt_iface_key& k, std::span<const nt_iface_val> v) {
            snap[{k.ifindex, static_cast<uint8_t>(k.dir)}] = fold_percpu(v);
        });
    return snap;
}

std::vector<FlowEntry> Datapath::read_flows() {
    std::vector<FlowEntry> out;
    read_percpu_map<nt_flow_key, nt_flow_val>(
        bpf_map__fd(skel_->maps.nt_flows), ncpus_,
        [&](const nt_flow_key& k, std::span<const nt_flow_val> v) { out.push_back(fold_percpu(k, v)); });
    return out;
}

std::vector<HostEntry> Datapath::read_hosts() {
    std::vector<HostEntry> out;
    read_percpu_map<nt_host_key, nt_host_val>(
        bpf_map__fd(skel_->maps.nt_hosts), ncpus_,
        [&](const nt_host_key& k, std::span<const nt_host_val> v) { out.push_back(fold_percpu(k, v)); });
    return out;
}

} // namespace nettally
