// Per-cgroup accounting, the pure half: cgroup paths and the systemd units they belong to, the
// durable per-path ledger (rolled up to parents, kept after a cgroup is gone, saved and restored as
// JSON), and the poll logic that turns the kernel's per-cgroup-id counters into that ledger. The
// kernel map and the cgroup filesystem are injected (CgroupSource), so all of it is unit-tested
// without root (tests/unit/cgroup_tree_test.cpp). daemon/cgroups.cpp is the OS-facing half.
//
// Why totals are kept by path, not by cgroup id: an id (the cgroup directory's inode) lives for one
// cgroup's life within one boot; a unit restarted, or the machine rebooted, gets a new one. The
// operator's question is "how much did foo.service send", so its totals continue under
// /system.slice/foo.service across restarts and reboots.
#pragma once

#include "core/counters.h"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nettally {

// ---- cgroup paths --------------------------------------------------------------------------
// A path is as the daemon's cgroup namespace shows it (/proc/self/cgroup): "/" or "/a/b", with no
// empty, "." or ".." components and no trailing '/'.

bool is_cgroup_path(std::string_view path);
// "/a/b" -> "/a", "/a" -> "/", "/" -> "".
std::string_view cgroup_parent(std::string_view path);
// True when path is root or lies below it.
bool cgroup_within(std::string_view path, std::string_view root);
// "/" -> 0, "/a" -> 1, "/a/b" -> 2 (the level bpf_skb_ancestor_cgroup_id() counts).
size_t cgroup_depth(std::string_view path);
// Tree order: a parent before its children, siblings by name ("/a", "/a/b", "/a-b"), which plain
// string order gets wrong ('-' sorts before '/').
bool cgroup_less(std::string_view a, std::string_view b);

// The systemd unit a cgroup belongs to, as the system manager sees it: the first non-slice unit on
// the path (.service, .scope, .socket, .mount, .swap; "/system.slice/foo.service/sub" belongs to
// foo.service, a user's services to their user@UID.service), else the innermost slice
// ("/system.slice" -> "system.slice", "/" -> "-.slice"), else "" (a cgroup systemd does not manage,
// such as "/ntt-test/a"). systemd's escaping of directory names (a leading '_') is undone.
std::string cgroup_unit(std::string_view path);

// The cgroup v2 mount in /proc/self/mountinfo text: the first "cgroup2" mount, preferring one whose
// root is "/". mount_point is unescaped (\040 and friends); root is the cgroup path the mount shows
// at its top (normally "/"). nullopt when there is none.
struct Cgroup2Mount {
    std::string mount_point;
    std::string root;
    bool operator==(const Cgroup2Mount&) const = default;
};
std::optional<Cgroup2Mount> find_cgroup2_mount(std::string_view mountinfo);

// ---- counters ------------------------------------------------------------------------------

// One cgroup's (or bucket's) figures per direction. cgroup hooks start at the IP header, so l2 is
// never known and stays 0.
struct CgroupCounts {
    Counts ingress;
    Counts egress;

    CgroupCounts& operator+=(const CgroupCounts& o);
    friend CgroupCounts operator+(CgroupCounts a, const CgroupCounts& b) { return a += b; }
    bool operator==(const CgroupCounts&) const = default;
    bool all_le(const CgroupCounts& o) const;
    bool empty() const { return *this == CgroupCounts{}; }
};

CgroupCounts fold_percpu(std::span<const nt_cg_val> per_cpu);

// One direction of nt_cg_totals, folded over CPUs.
struct CgroupDirTotals {
    Counts total;
    std::array<Counts, NT_CG_BUCKET_MAX> bucket{};
    bool operator==(const CgroupDirTotals&) const = default;
};
using CgroupKernelTotals = std::array<CgroupDirTotals, NT_DIR_MAX>;
CgroupDirTotals fold_percpu(std::span<const nt_cg_dir_val> per_cpu);

// The ledger's buckets: the kernel's (enum nt_cg_bucket) and "unresolved" (a cgroup that was
// created and removed between two polls, so its path was never learnt).
inline constexpr size_t kCgroupBucketUnresolved = NT_CG_BUCKET_MAX;
inline constexpr size_t kCgroupBucketCount = NT_CG_BUCKET_MAX + 1;
// other_netns, loopback, unparsable, untracked, overflow, unresolved.
std::string_view cgroup_bucket_name(size_t bucket);
// Buckets of interface traffic without a cgroup row: unparsable, untracked, overflow, unresolved.
// (other_netns and loopback are not traffic of this namespace's interfaces.)
bool cgroup_bucket_is_unattributed(size_t bucket);

// Follows one kernel counter set that may restart from zero (its map entry deleted and created
// again): total == base + the latest raw reading, and it never goes backwards.
class CgroupCounter {
public:
    void observe(const CgroupCounts& raw);
    // The kernel entry was deleted and raw was its last value: fold it into the base.
    void retire(const CgroupCounts& final_raw);
    void add_base(const CgroupCounts& c) { base_ += c; }
    CgroupCounts total() const { return base_ + raw_; }
    const CgroupCounts& raw() const { return raw_; }

private:
    CgroupCounts base_;
    CgroupCounts raw_;
};

// ---- the ledger ----------------------------------------------------------------------------

struct CgroupRow {
    std::string path;
    std::string unit;
    CgroupCounts total; // this cgroup and every cgroup below it
    CgroupCounts self;  // sockets created in this cgroup itself
    bool gone = false;  // no cgroup exists at this path now (totals kept)
};

// Durable totals by cgroup path. Kernel entries (by cgroup id) are observed into it every poll;
// an id's counts belong to the path it has now (a renamed cgroup takes them along), and stay under
// its last path when it is removed.
class CgroupLedger {
public:
    // The kernel entry of cgroup `id` reads `raw`; path is where the cgroup is, or was last.
    void observe(uint64_t id, const std::string& path, const CgroupCounts& raw, uint64_t now_us);
    // The kernel entry of `id` was deleted; final_raw was its last value.
    void retire(uint64_t id, const CgroupCounts& final_raw, uint64_t now_us);
    // Counts of a deleted kernel entry whose cgroup path was never learnt.
    void add_unresolved(const CgroupCounts& c);
    // The kernel's per-direction totals and buckets (nt_cg_totals).
    void observe_kernel(const CgroupKernelTotals& raw);
    // Paths that exist now (from the last walk of the tracked subtrees); others are gone.
    void set_present(std::set<std::string> paths) { present_ = std::move(paths); }
    // `path` was in the tracked subtrees at the last walk (with or without traffic).
    bool present(const std::string& path) const { return present_.count(path) != 0; }

    // Every path with counts and all its ancestors up to "/", in tree order (cgroup_less).
    std::vector<CgroupRow> rows() const;
    // Sum of every path's own counts (== the "/" row's total).
    CgroupCounts attributed() const;
    CgroupCounts bucket(size_t b) const;
    // Everything the hooks saw, in every namespace (nt_cg_totals' total).
    CgroupCounts seen() const { return seen_.total(); }
    size_t paths() const { return paths_.size(); }
    bool knows(uint64_t id) const { return ids_.count(id) != 0; }
    // The raw reading last observed for a live kernel entry.
    std::optional<CgroupCounts> last_raw(uint64_t id) const;

    // Keeps at most max_paths paths: the gone leaves least recently active are folded into their
    // parent's own counts, so every slice total stays exact while transient scopes come and go.
    // Returns how many paths were folded.
    size_t compact(size_t max_paths);

    // {"version": 1, "paths": {PATH: {"ingress": C4, "egress": C4, "last_active_us": N}},
    //  "buckets": {NAME: {"ingress": C4, "egress": C4}}, "seen": {"ingress": C4, "egress": C4}}
    // with C4 = {"packets", "l3", "l4", "payload"}. Totals, not kernel readings: restore() adds them
    // to whatever this ledger holds, for kernel maps that start from zero (a new daemon process).
    nlohmann::json to_json() const;
    void restore(const nlohmann::json& j); // throws std::exception on bad input, changing nothing

private:
    struct PathEntry {
        CgroupCounts base; // retired kernel entries and restored totals
        uint64_t last_active_us = 0;
    };
    struct IdEntry {
        std::string path;
        CgroupCounter counter;
    };
    std::map<std::string, CgroupCounts> self_counts() const;

    std::map<std::string, PathEntry> paths_;
    std::map<uint64_t, IdEntry> ids_;
    std::array<CgroupCounter, kCgroupBucketCount> buckets_{};
    CgroupCounter seen_;
    std::set<std::string> present_;
};

// ---- the poll ------------------------------------------------------------------------------

// What the tracker needs from the kernel and the cgroup filesystem. daemon/cgroups.cpp implements
// it over the BPF maps and the cgroup2 mount; the unit tests fake it.
class CgroupSource {
public:
    virtual ~CgroupSource() = default;
    virtual CgroupKernelTotals read_totals() = 0;
    // Programs that have written a packet's total but maybe not its category yet (nt_cg_busy).
    virtual uint64_t in_flight() = 0;
    virtual std::vector<std::pair<uint64_t, CgroupCounts>> read_entries() = 0;
    // Deletes the kernel entry and returns its last value; nullopt if it was not there.
    virtual std::optional<CgroupCounts> take_entry(uint64_t id) = 0;
    // The id of the cgroup at `path` now; nullopt if there is none.
    virtual std::optional<uint64_t> id_of(const std::string& path) = 0;
    // Every cgroup at or below the roots, id -> path.
    virtual std::map<uint64_t, std::string> walk(const std::vector<std::string>& roots) = 0;
};

struct CgroupStats : PollStats {
    uint64_t walks = 0;   // full walks of the tracked subtrees
    uint64_t retired = 0; // kernel entries deleted after their cgroup was gone (or untracked)
    size_t live_entries = 0;
};

class CgroupTracker {
public:
    using Notify = std::function<void(const std::string&)>;
    // How often the tracked subtrees are walked even when nothing asks for it, to notice paths
    // removed while idle (a new or moved cgroup with traffic triggers a walk at once).
    static constexpr uint64_t kWalkEveryUs = 10'000'000;

    CgroupTracker(CgroupSource& source, std::vector<std::string> subtrees, size_t max_paths)
        : source_(source), subtrees_(std::move(subtrees)), max_paths_(max_paths) {}

    // Applies at the next poll; kernel entries of cgroups outside the new subtrees are retired then.
    void set_subtrees(std::vector<std::string> subtrees);
    const std::vector<std::string>& subtrees() const { return subtrees_; }
    void on_violation(Notify n) { on_violation_ = std::move(n); }

    // Reads the kernel (totals, programs in flight, entries, totals again), resolves new ids to
    // paths, updates the ledger, checks the reconciliation invariant for each direction, and
    // retires the kernel entries of cgroups that are gone and were quiet for a whole poll interval.
    //
    // The invariant: total == every entry read + every entry retired + buckets. The programs can
    // be preempted between a packet's total and its category, so the check uses only what holds
    // whatever they do: categories (with the buckets read first) never exceed the total read
    // after them; and when no program was in flight just after the first total was read, the
    // categories (with the buckets read last) reach that total. Equal on a quiet snapshot.
    void poll(uint64_t now_us);

    const CgroupLedger& ledger() const { return ledger_; }
    CgroupLedger& ledger() { return ledger_; }
    const CgroupStats& stats() const { return stats_; }

private:
    struct Known {
        std::string path;
        bool present = false;
    };
    void walk(uint64_t now_us);
    bool tracked(const std::string& path) const;
    void check(const CgroupKernelTotals& before, const CgroupKernelTotals& after, bool settled,
               const std::vector<std::pair<uint64_t, CgroupCounts>>& entries);
    void retire(uint64_t id, uint64_t now_us, bool resolved);
    void prune_known(const std::vector<std::pair<uint64_t, CgroupCounts>>& entries);

    CgroupSource& source_;
    std::vector<std::string> subtrees_;
    size_t max_paths_;
    bool subtrees_changed_ = false;
    Notify on_violation_;
    CgroupLedger ledger_;
    std::map<uint64_t, Known> known_;
    std::map<uint64_t, CgroupCounts> quiet_; // gone cgroups' readings at the last poll
    CgroupCounts retired_raw_;               // every deleted kernel entry's last value, this process
    uint64_t last_walk_us_ = 0;
    bool walked_ = false;
    CgroupStats stats_;
};

// A cgroup subject given by unit name ("backup.service") stands for the cgroup
// the ledger knows that unit at; a path, an unknown unit or no ledger (cgroup
// accounting off) is returned unchanged.
std::string cgroup_subject_path(const CgroupLedger* ledger, const std::string& subject);

} // namespace nettally
