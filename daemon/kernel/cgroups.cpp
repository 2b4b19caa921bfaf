// Per-cgroup accounting, OS-facing half: see cgroups.h.
#include "kernel/cgroups.h"

#include "kernel/percpu_map.h"
#include "kernel/probe.h"

#include "nettally_cg.skel.h"
#include "os/error.h"
#include "os/file.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace nettally {
namespace {

std::string read_file(const char* path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The cgroup id of dirfd/name ("" = dirfd itself): cgroup v2 encodes it as an 8-byte file handle.
std::optional<uint64_t> handle_id(int dirfd, const std::string& name) {
    constexpr size_t kMaxHandle = 64;
    alignas(file_handle) unsigned char buf[sizeof(file_handle) + kMaxHandle] = {};
    auto* fh = reinterpret_cast<file_handle*>(buf);
    fh->handle_bytes = kMaxHandle;
    int mount_id = 0;
    const int flags = name.empty() ? AT_EMPTY_PATH : 0;
    if (name_to_handle_at(dirfd, name.c_str(), fh, &mount_id, flags) != 0)
        return std::nullopt;
    if (fh->handle_bytes < sizeof(uint64_t))
        return std::nullopt;
    uint64_t id = 0;
    std::memcpy(&id, buf + sizeof(file_handle), sizeof(id));
    return id;
}

std::string join(const std::string& parent, const std::string& name) {
    return parent == "/" ? "/" + name : parent + "/" + name;
}

uint64_t own_netns_cookie() {
    const Fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return 0;
    uint64_t cookie = 0;
    socklen_t len = sizeof(cookie);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
        cookie = 0;
    return cookie;
}

} // namespace

CgroupAccounting::CgroupAccounting(const CgroupConfig& cfg)
    : max_entries_(cfg.max_entries), subtrees_(cfg.subtrees) {
    const auto mount = find_cgroup2_mount(read_file("/proc/self/mountinfo"));
    if (!mount)
        throw SysError(ENOENT, "cgroups: no cgroup v2 (cgroup2) mount in /proc/self/mountinfo");
    mount_ = *mount;
    ncpus_ = possible_cpus();

    skel_ = nettally_cg_bpf__open();
    if (!skel_)
        throw SysError(errno, "cgroups: opening BPF object");

    // Count this network namespace only, when the kernel can tell (bpf_get_netns_cookie in
    // cgroup_skb, Linux 6.15): the hooks see every namespace's sockets, and the others' traffic is
    // not on this gateway's interfaces.
    uint64_t cookie = 0;
    if (cfg.all_netns) {
        netns_mode_ = "all";
    } else {
        const std::string refused = netns_cookie_unavailable();
        cookie = refused.empty() ? own_netns_cookie() : 0;
        if (cookie) {
            netns_mode_ = "own";
        } else {
            netns_mode_ = "all (kernel cannot tell namespaces apart in cgroup_skb)";
            spdlog::warn("cgroups: this kernel cannot tell network namespaces apart in cgroup_skb programs "
                         "(bpf_get_netns_cookie, Linux 6.15: {}); sockets of every namespace are counted",
                         refused.empty() ? "no cookie for this namespace" : refused);
        }
    }
    skel_->rodata->cfg_netns_cookie = cookie;
    bpf_map__set_max_entries(skel_->maps.nt_cg_counts, cfg.max_entries);

    int err = nettally_cg_bpf__load(skel_);
    if (err) {
        nettally_cg_bpf__destroy(skel_);
        skel_ = nullptr;
        throw SysError(-err, "cgroups: loading BPF programs");
    }

    try {
        root_fd_ = open_directory(mount_.mount_point);
    } catch (const SysError& e) {
        nettally_cg_bpf__destroy(skel_);
        skel_ = nullptr;
        throw SysError(e.err(), "cgroups: opening the cgroup2 mount " + mount_.mount_point);
    }
    CgroupSource& source = *this;
    tracker_ = std::make_unique<CgroupTracker>(source, subtrees_,
                                               std::max<size_t>(2 * static_cast<size_t>(max_entries_), 1024));
    tracker_->on_violation(
        [](const std::string& m) { spdlog::error("cgroups: reconcile: invariant violated: {}", m); });
    // The subtree map is filled before the programs run, so no packet is "untracked" for lack of it.
    sync_subtree_map();
    try {
        attach();
    } catch (...) {
        root_fd_.reset();
        nettally_cg_bpf__destroy(skel_);
        skel_ = nullptr;
        throw;
    }
    std::string list;
    for (const auto& s : subtrees_)
        list += (list.empty() ? "" : ", ") + s;
    spdlog::info(
        "cgroups: accounting sockets by cgroup on {} ({}; namespaces: {}; subtrees: {}; up to {} cgroups)",
        mount_.mount_point, attach_mode_, netns_mode_, list, max_entries_);
}

CgroupAccounting::~CgroupAccounting() {
    detach();
    root_fd_.reset();
    nettally_cg_bpf__destroy(skel_);
}

// BPF links (Linux 5.7): always multi-attach, so systemd's own programs (IPAccounting=,
// IPAddressDeny=, attached with BPF_F_ALLOW_MULTI) keep running beside ours, and the kernel
// detaches ours when the last link fd closes, crash included. Without links, the legacy
// BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI does the same except for the crash.
void CgroupAccounting::attach() {
    bpf_program* progs[2] = {skel_->progs.nt_cg_ingress, skel_->progs.nt_cg_egress};
    const bpf_attach_type types[2] = {BPF_CGROUP_INET_INGRESS, BPF_CGROUP_INET_EGRESS};
    for (int i = 0; i < 2; ++i) {
        bpf_link* link = bpf_program__attach_cgroup(progs[i], root_fd_.get());
        if (link) {
            links_[i] = link;
            continue;
        }
        const int e = errno;
        if (e != EINVAL && e != EOPNOTSUPP && e != kENOTSUPP) {
            detach();
            throw SysError(e, std::string("cgroups: attaching ") + (i ? "egress" : "ingress") + " to " +
                                  mount_.mount_point);
        }
        if (bpf_prog_attach(bpf_program__fd(progs[i]), root_fd_.get(), types[i], BPF_F_ALLOW_MULTI) != 0) {
            const int e2 = errno;
            detach();
            throw SysError(e2, std::string("cgroups: attaching ") + (i ? "egress" : "ingress") + " to " +
                                   mount_.mount_point + " (legacy API)");
        }
        legacy_attached_ = true;
    }
    attach_mode_ = legacy_attached_ ? "legacy multi-attach" : "BPF links, multi-attach";
    if (legacy_attached_)
        spdlog::warn("cgroups: kernel lacks BPF links for cgroups; attached with the legacy API, so a "
                     "crashed nettallyd leaves its cgroup programs attached");
}

void CgroupAccounting::detach() {
    for (auto*& l : links_) {
        if (l)
            bpf_link__destroy(l);
        l = nullptr;
    }
    if (legacy_attached_ && skel_) {
        bpf_prog_detach2(bpf_program__fd(skel_->progs.nt_cg_ingress), root_fd_.get(),
                         BPF_CGROUP_INET_INGRESS);
        bpf_prog_detach2(bpf_program__fd(skel_->progs.nt_cg_egress), root_fd_.get(), BPF_CGROUP_INET_EGRESS);
        legacy_attached_ = false;
    }
}

std::optional<std::string> CgroupAccounting::relative(const std::string& path) const {
    if (!cgroup_within(path, mount_.root))
        return std::nullopt;
    if (mount_.root == "/")
        return path == "/" ? std::string() : path.substr(1);
    if (path == mount_.root)
        return std::string();
    return path.substr(mount_.root.size() + 1);
}

std::optional<uint64_t> CgroupAccounting::id_of(const std::string& path) {
    const auto rel = relative(path);
    if (!rel)
        return std::nullopt;
    return handle_id(root_fd_.get(), *rel);
}

std::map<uint64_t, std::string> CgroupAccounting::walk(const std::vector<std::string>& roots) {
    std::map<uint64_t, std::string> out;
    // Iterative, one directory fd open at a time: hierarchies can be deep.
    std::vector<std::string> todo;
    for (const auto& r : roots) {
        if (const auto id = id_of(r)) {
            out[*id] = r;
            todo.push_back(r);
        }
    }
    while (!todo.empty()) {
        const std::string path = std::move(todo.back());
        todo.pop_back();
        const auto rel = relative(path);
        if (!rel)
            continue;
        Fd fd(rel->empty() ? dup(root_fd_.get())
                           : openat(root_fd_.get(), rel->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd)
            continue; // removed while we walk
        DIR* dir = fdopendir(fd.get());
        if (!dir)
            continue;
        fd.release(); // the DIR owns it now
        // fdopendir on a dup shares the offset with root_fd_: start from the beginning.
        rewinddir(dir);
        while (const dirent* de = readdir(dir)) {
            if (de->d_type != DT_DIR || std::strcmp(de->d_name, ".") == 0 ||
                std::strcmp(de->d_name, "..") == 0)
                continue;
            const auto id = handle_id(dirfd(dir), de->d_name);
            if (!id)
                continue;
            std::string child = join(path, de->d_name);
            out[*id] = child;
            todo.push_back(std::move(child));
        }
        closedir(dir);
    }
    return out;
}

void CgroupAccounting::sync_subtree_map() {
    const int fd = bpf_map__fd(skel_->maps.nt_cg_subtrees);
    std::map<std::string, uint64_t> now;
    for (const auto& s : subtrees_) {
        if (const auto id = id_of(s)) {
            now[s] = *id;
            missing_warned_.erase(s);
        } else if (!missing_warned_[s]) {
            missing_warned_[s] = true;
            spdlog::warn(
                "cgroups: subtree {} does not exist (yet); its traffic counts as untracked until it does", s);
        }
    }
    // Add before removing, so a re-created subtree root never has a window without either id.
    const uint8_t one = 1;
    for (const auto& [path, id] : now)
        if (subtree_ids_.count(path) == 0 || subtree_ids_[path] != id)
            if (int err = bpf_map_update_elem(fd, &id, &one, BPF_ANY); err)
                spdlog::error("cgroups: tracking subtree {}: {}", path, std::strerror(-err));
    for (const auto& [path, id] : subtree_ids_) {
        bool still = false;
        for (const auto& [p, i] : now)
            still = still || i == id;
        if (!still)
            bpf_map_delete_elem(fd, &id);
    }
    subtree_ids_ = std::move(now);
}

void CgroupAccounting::set_subtrees(const std::vector<std::string>& subtrees) {
    if (subtrees == subtrees_)
        return;
    subtrees_ = subtrees;
    sync_subtree_map();
    tracker_->set_subtrees(subtrees_);
}

void CgroupAccounting::poll(uint64_t now_us) {
    sync_subtree_map();
    tracker_->poll(now_us);
}

CgroupKernelTotals CgroupAccounting::read_totals() {
    CgroupKernelTotals out{};
    std::vector<nt_cg_dir_val> vals(static_cast<size_t>(ncpus_));
    const int fd = bpf_map__fd(skel_->maps.nt_cg_totals);
    for (uint32_t d = 0; d < NT_DIR_MAX; ++d) {
        if (int err = bpf_map_lookup_elem(fd, &d, vals.data()); err)
            throw SysError(-err, "cgroups: reading totals");
        out[d] = fold_percpu(std::span<const nt_cg_dir_val>(vals));
    }
    return out;
}

uint64_t CgroupAccounting::in_flight() {
    std::vector<uint64_t> vals(static_cast<size_t>(ncpus_));
    const uint32_t zero = 0;
    if (int err = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nt_cg_busy), &zero, vals.data()); err)
        throw SysError(-err, "cgroups: reading the in-flight counter");
    uint64_t sum = 0;
    for (const uint64_t v : vals)
        sum += v;
    return sum;
}

std::vector<std::pair<uint64_t, CgroupCounts>> CgroupAccounting::read_entries() {
    std::vector<std::pair<uint64_t, CgroupCounts>> out;
    read_percpu_map<uint64_t, nt_cg_val>(
        bpf_map__fd(skel_->maps.nt_cg_counts), ncpus_, "cgroups: reading per-cgroup counters",
        [&](uint64_t id, std::span<const nt_cg_val> v) { out.emplace_back(id, fold_percpu(v)); }, 1024);
    return out;
}

std::optional<CgroupCounts> CgroupAccounting::take_entry(uint64_t id) {
    std::vector<nt_cg_val> vals(static_cast<size_t>(ncpus_));
    const bool was_atomic = lookup_and_delete_ok_;
    const int err =
        take_percpu_entry(bpf_map__fd(skel_->maps.nt_cg_counts), &id, vals.data(), lookup_and_delete_ok_);
    if (was_atomic && !lookup_and_delete_ok_)
        spdlog::warn("cgroups: kernel lacks lookup-and-delete for hash maps; retiring a gone cgroup's "
                     "entry may lose a packet that arrives during it");
    if (err)
        return std::nullopt;
    return fold_percpu(std::span<const nt_cg_val>(vals));
}

void CgroupAccounting::restore(const nlohmann::json& j) {
    try {
        tracker_->ledger().restore(j);
        spdlog::info("cgroups: restored totals of {} cgroup path(s)", tracker_->ledger().paths());
    } catch (const std::exception& e) {
        spdlog::error("cgroups: saved cgroup totals unusable ({}); they start from zero", e.what());
    }
}

void CgroupAccounting::add_status(Status& m) const {
    const CgroupStats& s = tracker_->stats();
    const CgroupLedger& l = tracker_->ledger();
    auto packets = [&](size_t b) {
        const CgroupCounts c = l.bucket(b);
        return c.ingress.packets + c.egress.packets;
    };
    m["cgroups_enabled"] = StatusValue(true);
    m["cgroup_mount"] = StatusValue(mount_.mount_point);
    m["cgroup_netns"] = StatusValue(netns_mode_);
    m["cgroup_attach"] = StatusValue(attach_mode_);
    m["cgroup_paths"] = StatusValue(static_cast<uint32_t>(l.paths()));
    m["cgroup_entries"] = StatusValue(static_cast<uint32_t>(s.live_entries));
    m["cgroup_capacity"] = StatusValue(max_entries_);
    m["cgroup_overflow_packets"] = StatusValue(packets(NT_CG_BUCKET_OVERFLOW));
    m["cgroup_untracked_packets"] = StatusValue(packets(NT_CG_BUCKET_UNTRACKED));
    m["cgroup_retired"] = StatusValue(s.retired);
    m["cgroup_reconcile_checks"] = StatusValue(s.reconcile_checks);
    m["cgroup_reconcile_exact"] = StatusValue(s.reconcile_exact);
    m["cgroup_reconcile_violations"] = StatusValue(s.reconcile_violations);
}

} // namespace nettally
