// Datapath: skeleton lifecycle, TC attach (legacy netlink API: libbpf 1.1
// has no TCX), and batched per-CPU map reads. See datapath.h.
#include "datapath.h"

#include "nettally.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cstdarg>
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

void Datapath::attach(uint32_t ifindex, bool lan) {
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

    struct {
        bpf_tc_attach_point point;
        bpf_program* prog;
    } const hooks[] = {
        {BPF_TC_INGRESS, lan ? skel_->progs.nt_tc_ingress_lan : skel_->progs.nt_tc_ingress_wan},
        {BPF_TC_EGRESS, lan ? skel_->progs.nt_tc_egress_lan : skel_->progs.nt_tc_egress_wan},
    };
    for (const auto& h : hooks) {
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
    attached_[ifindex] = lan;
}

void Datapath::detach(uint32_t ifindex) {
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
