// Which of the object's programs load, and when (see datapath.h): libbpf's log routing and the
// programs a Datapath loads after its maps, for an attachment the config did not ask for at start.
#include "kernel/datapath.h"

#include "nettally.skel.h"
#include "os/fd.h"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <chrono>
#include <cstdarg>
#include <fcntl.h>
#include <linux/bpf.h>
#include <memory>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

namespace nettally {
namespace {

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
    std::string msg(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
    while (!msg.empty() && msg.back() == '\n')
        msg.pop_back();
    switch (level) {
    case LIBBPF_WARN:
        spdlog::info("{}", msg);
        break;
    case LIBBPF_INFO:
        spdlog::debug("{}", msg);
        break;
    default:
        spdlog::trace("{}", msg);
        break;
    }
    return n;
}

} // namespace

void route_libbpf_logs() {
    libbpf_set_print(libbpf_print);
}

std::vector<bpf_program*> Datapath::programs_for(const AttachKind& k) const {
    const auto& p = skel_->progs;
    // In XDP mode the TC ingress slot holds the fix-up for VLAN tags XDP could not see (held
    // outside the frame); it counts nothing else.
    bpf_program* ingress = k.xdp   ? (k.lan ? p.nt_tc_ingress_xdpfix_lan : p.nt_tc_ingress_xdpfix_wan)
                           : k.l3  ? p.nt_tc_ingress_l3
                           : k.lan ? p.nt_tc_ingress_lan
                                   : p.nt_tc_ingress_wan;
    bpf_program* egress = k.l3 ? p.nt_tc_egress_l3 : k.lan ? p.nt_tc_egress_lan : p.nt_tc_egress_wan;
    if (k.xdp)
        return {ingress, egress, k.lan ? p.nt_xdp_ingress_lan : p.nt_xdp_ingress_wan};
    return {ingress, egress};
}

void Datapath::preload_only(const std::vector<AttachKind>& kinds) {
    std::vector<bpf_program*> wanted;
    for (const AttachKind& k : kinds) {
        if (k.xdp && !xdp_supported_)
            continue; // refused at attach, with the reason
        for (bpf_program* p : programs_for(k))
            wanted.push_back(p);
    }
    bpf_program* p;
    bpf_object__for_each_program(p, skel_->obj) {
        if (std::find(wanted.begin(), wanted.end(), p) == wanted.end())
            bpf_program__set_autoload(p, false);
    }
}

std::vector<int> Datapath::program_fds(const std::vector<bpf_program*>& progs) {
    std::vector<std::string> missing;
    for (const bpf_program* p : progs)
        if (bpf_program__fd(p) < 0 && !late_.contains(bpf_program__name(p)))
            missing.emplace_back(bpf_program__name(p));
    if (!missing.empty())
        load_late(missing);
    std::vector<int> fds;
    for (const bpf_program* p : progs) {
        const int fd = bpf_program__fd(p);
        fds.push_back(fd >= 0 ? fd : late_.at(bpf_program__name(p)).get());
    }
    return fds;
}

void Datapath::load_late(const std::vector<std::string>& names) {
    const auto started = std::chrono::steady_clock::now();
    std::string list;
    for (const std::string& n : names)
        list += (list.empty() ? "" : ", ") + n;
    const std::unique_ptr<nettally_bpf, void (*)(nettally_bpf*)> late(open_datapath_object(),
                                                                      nettally_bpf__destroy);
    if (!late)
        throw SysError(errno, "opening BPF object for " + list);
    bpf_program* p;
    bpf_object__for_each_program(p, late->obj) {
        bpf_program__set_autoload(p,
                                  std::find(names.begin(), names.end(), bpf_program__name(p)) != names.end());
    }
    // Every map of this Datapath, the global sections included: the programs count into the same
    // counters and read the same knobs (.rodata is frozen with this load's values).
    bpf_map* m;
    bpf_object__for_each_map(m, late->obj) {
        const bpf_map* ours = bpf_object__find_map_by_name(skel_->obj, bpf_map__name(m));
        const int fd = ours ? bpf_map__fd(ours) : -1;
        if (fd < 0)
            throw SysError(ENOENT, std::string("sharing map ") + bpf_map__name(m) + " with " + list);
        if (const int err = bpf_map__reuse_fd(m, fd))
            throw SysError(-err, std::string("sharing map ") + bpf_map__name(m) + " with " + list);
    }
    if (const int err = nettally_bpf__load(late.get()))
        throw SysError(-err, "loading BPF programs " + list);
    // The object goes; the programs stay, held by these fds (and by the hooks they attach to).
    for (const std::string& n : names) {
        const bpf_program* lp = bpf_object__find_program_by_name(late->obj, n.c_str());
        Fd fd{lp ? fcntl(bpf_program__fd(lp), F_DUPFD_CLOEXEC, 3) : -1};
        if (!fd)
            throw SysError(errno, "keeping BPF program " + n);
        late_.emplace(n, std::move(fd));
    }
    spdlog::info(
        "datapath: loaded {} for an attachment the config did not ask for at start ({} ms)", list,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count());
}

std::vector<std::string> Datapath::loaded_programs() const {
    std::vector<std::string> out;
    bpf_program* p;
    bpf_object__for_each_program(p, skel_->obj) {
        if (bpf_program__fd(p) >= 0)
            out.emplace_back(bpf_program__name(p));
    }
    for (const auto& entry : late_)
        out.push_back(entry.first);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace nettally
