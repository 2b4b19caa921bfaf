// Per-cgroup accounting, the OS-facing half: finds the cgroup v2 mount in /proc/self/mountinfo,
// owns the cgroup_skb skeleton (bpf/cgroup.bpf.c) and its attachment to the hierarchy's root,
// keeps the tracked-subtree map in step with the config, reads the counters, and maps cgroup ids
// to paths by walking the hierarchy (a cgroup v2 id is the 64-bit inode number that
// name_to_handle_at() returns as the directory's file handle). The logic on top is CgroupTracker
// (core/cgroups.h).
//
// Lifetime: the programs are attached through BPF links owned by this object, so they go away with
// the daemon even when it crashes. Unlike the TC filters they do not keep counting while nettallyd
// is down: a program on the host's root cgroup runs for every socket of every namespace, and one
// left behind by a dead daemon would tax every packet for nobody. Totals survive through the state
// file (to_json / restore).
#pragma once

#include "core/cgroups.h"
#include "core/config.h"
#include "core/status.h"
#include "os/fd.h"

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

struct nettally_cg_bpf;
struct bpf_link;

namespace nettally {

class CgroupAccounting final : private CgroupSource {
public:
    // Loads and attaches; throws SysError (no cgroup2 mount, load or attach refused).
    explicit CgroupAccounting(const CgroupConfig& cfg);
    ~CgroupAccounting() override; // detaches
    CgroupAccounting(const CgroupAccounting&) = delete;
    CgroupAccounting& operator=(const CgroupAccounting&) = delete;

    void poll(uint64_t now_us);
    // Reload: the new subtrees apply at the next poll, without reloading the programs.
    void set_subtrees(const std::vector<std::string>& subtrees);
    // Removes the programs (idempotent); counting stops.
    void detach();

    const CgroupLedger& ledger() const { return tracker_->ledger(); }
    const CgroupStats& stats() const { return tracker_->stats(); }
    // The cgroup_* keys of GetStatus.
    void add_status(Status& m) const;

    // For the state file. restore() adds saved totals (the kernel maps of a new process start at
    // zero); bad input is logged and ignored.
    nlohmann::json to_json() const { return tracker_->ledger().to_json(); }
    void restore(const nlohmann::json& j);

private:
    CgroupKernelTotals read_totals() override;
    uint64_t in_flight() override;
    std::vector<std::pair<uint64_t, CgroupCounts>> read_entries() override;
    std::optional<CgroupCounts> take_entry(uint64_t id) override;
    std::optional<uint64_t> id_of(const std::string& path) override;
    std::map<uint64_t, std::string> walk(const std::vector<std::string>& roots) override;

    void attach();
    void sync_subtree_map();
    // The path relative to the mount ("" for its top), nullopt when it lies outside the mount.
    std::optional<std::string> relative(const std::string& path) const;

    nettally_cg_bpf* skel_ = nullptr;
    bpf_link* links_[2] = {nullptr, nullptr};
    bool legacy_attached_ = false;
    Fd root_fd_;
    Cgroup2Mount mount_;
    int ncpus_ = 0;
    uint32_t max_entries_ = 0;
    std::string netns_mode_;
    std::string attach_mode_;
    bool lookup_and_delete_ok_ = true;
    std::vector<std::string> subtrees_;
    std::map<std::string, uint64_t> subtree_ids_; // what nt_cg_subtrees holds
    std::map<std::string, bool> missing_warned_;
    std::unique_ptr<CgroupTracker> tracker_;
};

} // namespace nettally
