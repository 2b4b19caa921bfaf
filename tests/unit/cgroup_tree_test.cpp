// Per-cgroup accounting without root (daemon/core/cgroups.h): cgroup paths and unit names,
// the cgroup2 mount lookup, the restart-safe counter, the ledger (roll-up to parents, totals kept
// after a cgroup is gone, renames, compaction, JSON save/restore) and the tracker's poll against a
// fake kernel + cgroup filesystem (reconciliation, retiring gone cgroups, unresolved ids, reload).
#include "core/cgroups.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nettally {
namespace {

Counts c4(uint64_t packets, uint64_t l3, uint64_t l4, uint64_t payload) {
    return Counts(packets, 0, l3, l4, payload);
}

CgroupCounts cc(uint64_t in_packets, uint64_t out_packets) {
    // Figures derived from packets so sums stay easy to check: l3 = 100/pkt, l4 = 80, payload = 60.
    return CgroupCounts{c4(in_packets, in_packets * 100, in_packets * 80, in_packets * 60),
                        c4(out_packets, out_packets * 100, out_packets * 80, out_packets * 60)};
}

const CgroupRow* find_row(const std::vector<CgroupRow>& rows, const std::string& path) {
    for (const auto& r : rows)
        if (r.path == path)
            return &r;
    return nullptr;
}

// ---- paths ---------------------------------------------------------------------------------

TEST(CgroupPath, Validity) {
    for (const char* ok : {"/", "/a", "/system.slice/foo.service", "/a b/c", "/.hidden"})
        EXPECT_TRUE(is_cgroup_path(ok)) << ok;
    for (const char* bad : {"", "a", "a/b", "/a/", "//", "/a//b", "/a/./b", "/a/../b", "/.."})
        EXPECT_FALSE(is_cgroup_path(bad)) << bad;
}

TEST(CgroupPath, ParentWithinDepthOrder) {
    EXPECT_EQ(cgroup_parent("/a/b"), "/a");
    EXPECT_EQ(cgroup_parent("/a"), "/");
    EXPECT_EQ(cgroup_parent("/"), "");
    EXPECT_TRUE(cgroup_within("/a/b", "/a"));
    EXPECT_TRUE(cgroup_within("/a", "/a"));
    EXPECT_TRUE(cgroup_within("/a", "/"));
    EXPECT_FALSE(cgroup_within("/ab", "/a")) << "a sibling with a common prefix is not inside";
    EXPECT_FALSE(cgroup_within("/a", "/a/b"));
    EXPECT_EQ(cgroup_depth("/"), 0u);
    EXPECT_EQ(cgroup_depth("/a/b/c"), 3u);
    // Tree order, which plain string order gets wrong ('-' < '/').
    EXPECT_TRUE(cgroup_less("/a", "/a/b"));
    EXPECT_TRUE(cgroup_less("/a/b", "/a-b"));
    EXPECT_FALSE(std::string("/a/b") < std::string("/a-b"));
    EXPECT_TRUE(cgroup_less("/", "/a"));
    EXPECT_FALSE(cgroup_less("/a", "/a"));
}

TEST(CgroupUnit, AsTheSystemManagerSeesIt) {
    const struct {
        const char* path;
        const char* unit;
    } cases[] = {
        {"/", "-.slice"},
        {"/system.slice", "system.slice"},
        {"/system.slice/foo.service", "foo.service"},
        {"/system.slice/foo.service/payload", "foo.service"}, // a delegated service's sub-cgroup
        {"/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service"},
        {"/system.slice/docker-0123abcd.scope", "docker-0123abcd.scope"},
        {"/user.slice/user-1000.slice/user@1000.service/app.slice/x.service", "user@1000.service"},
        {"/user.slice/user-1000.slice/session-4.scope", "session-4.scope"},
        {"/system.slice/dbus.socket", "dbus.socket"},
        {"/system.slice/_cpu.service", "cpu.service"}, // systemd's cg_escape prefix undone
        {"/system.slice/not-a-unit", "system.slice"},  // innermost slice owns an unmanaged directory
        {"/ntt-test/a", ""},                           // not managed by systemd at all
        {"/machine.slice/libpod-1.scope/container", "libpod-1.scope"},
        {"/system.slice/a@b@c.service", "system.slice"}, // two '@': not a unit name
        {"/system.slice/.service", "system.slice"},      // no name before the suffix
    };
    for (const auto& c : cases)
        EXPECT_EQ(cgroup_unit(c.path), c.unit) << c.path;
}

TEST(Cgroup2Mount, FromMountinfo) {
    // This machine's hybrid layout: v1 controllers plus cgroup2 at /sys/fs/cgroup/unified.
    const std::string hybrid = "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                               "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
                               "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    EXPECT_EQ(find_cgroup2_mount(hybrid), (Cgroup2Mount{"/sys/fs/cgroup/unified", "/"}));
    // Optional fields before the separator, an escaped space in the mount point.
    const std::string unified = "25 1 0:22 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
                                "60 25 0:22 / /mnt/my\\040cg rw shared:9 master:1 - cgroup2 cgroup2 rw\n";
    EXPECT_EQ(find_cgroup2_mount(unified), (Cgroup2Mount{"/sys/fs/cgroup", "/"}));
    // Only a mount of a subtree: still found, with its root.
    const std::string sub = "61 25 0:22 /ntt /mnt/ntt rw - cgroup2 cgroup2 rw\n";
    EXPECT_EQ(find_cgroup2_mount(sub), (Cgroup2Mount{"/mnt/ntt", "/ntt"}));
    // A whole-hierarchy mount wins over an earlier subtree mount.
    EXPECT_EQ(find_cgroup2_mount(sub + unified), (Cgroup2Mount{"/sys/fs/cgroup", "/"}));
    EXPECT_EQ(find_cgroup2_mount("31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
              std::nullopt);
    EXPECT_EQ(find_cgroup2_mount(""), std::nullopt);
    EXPECT_EQ(find_cgroup2_mount("garbage\n- cgroup2\n"), std::nullopt);
    EXPECT_EQ(cgroup_bucket_name(NT_CG_BUCKET_UNTRACKED), "untracked");
    EXPECT_EQ(cgroup_bucket_name(kCgroupBucketUnresolved), "unresolved");
}

// ---- counter -------------------------------------------------------------------------------

TEST(CgroupCounter, RestartAndRetireNeverGoBackwards) {
    CgroupCounter c;
    c.observe(cc(5, 3));
    c.observe(cc(7, 4));
    EXPECT_EQ(c.total(), cc(7, 4));
    c.observe(cc(2, 1)); // the kernel entry was deleted and created again
    EXPECT_EQ(c.total(), cc(9, 5));
    c.retire(cc(4, 1)); // deleted; its last value was 4/1
    EXPECT_EQ(c.total(), cc(11, 5));
    EXPECT_EQ(c.raw(), CgroupCounts{});
    c.observe(cc(1, 0)); // a new entry after the retirement starts from zero
    EXPECT_EQ(c.total(), cc(12, 5));
}

TEST(CgroupCounts, FoldPercpuIgnoresNothing) {
    nt_cg_val v[2] = {};
    v[0].dir[NT_DIR_INGRESS] = {1, 0, 100, 80, 60};
    v[1].dir[NT_DIR_INGRESS] = {2, 0, 200, 160, 120};
    v[1].dir[NT_DIR_EGRESS] = {3, 0, 300, 240, 180};
    EXPECT_EQ(fold_percpu(std::span<const nt_cg_val>(v, 2)), cc(3, 3));
    nt_cg_dir_val t[2] = {};
    t[0].total = {4, 0, 40, 30, 20};
    t[1].bucket[NT_CG_BUCKET_OVERFLOW] = {1, 0, 10, 5, 1};
    const CgroupDirTotals f = fold_percpu(std::span<const nt_cg_dir_val>(t, 2));
    EXPECT_EQ(f.total, c4(4, 40, 30, 20));
    EXPECT_EQ(f.bucket[NT_CG_BUCKET_OVERFLOW], c4(1, 10, 5, 1));
}

// ---- ledger --------------------------------------------------------------------------------

TEST(CgroupLedger, RollsLeavesUpToEveryAncestor) {
    CgroupLedger l;
    l.observe(10, "/system.slice/a.service", cc(3, 2), 1);
    l.observe(11, "/system.slice/b.service", cc(5, 0), 1);
    l.observe(12, "/ntt/x/nested", cc(1, 1), 1);
    l.observe(13, "/ntt/x", cc(2, 2), 1); // a process in a non-leaf cgroup
    l.set_present({"/system.slice/a.service", "/system.slice/b.service", "/ntt/x/nested"});
    const auto rows = l.rows();
    std::vector<std::string> order;
    for (const auto& r : rows)
        order.push_back(r.path);
    EXPECT_EQ(order, (std::vector<std::string>{"/", "/ntt", "/ntt/x", "/ntt/x/nested", "/system.slice",
                                               "/system.slice/a.service", "/system.slice/b.service"}));
    EXPECT_EQ(find_row(rows, "/system.slice")->total, cc(8, 2));
    EXPECT_EQ(find_row(rows, "/system.slice")->self, CgroupCounts{});
    EXPECT_EQ(find_row(rows, "/system.slice")->unit, "system.slice");
    EXPECT_EQ(find_row(rows, "/ntt/x")->total, cc(3, 3)) << "own 2/2 + nested 1/1";
    EXPECT_EQ(find_row(rows, "/ntt/x")->self, cc(2, 2));
    EXPECT_EQ(find_row(rows, "/")->total, cc(11, 5));
    EXPECT_EQ(l.attributed(), cc(11, 5));
    EXPECT_EQ(find_row(rows, "/system.slice/a.service")->unit, "a.service");
    for (const auto& r : rows)
        EXPECT_FALSE(r.gone) << r.path << " exists (it or something below it was seen)";
}

TEST(CgroupLedger, PresentIsWhatTheLastWalkFoundWithOrWithoutTraffic) {
    CgroupLedger l;
    l.observe(10, "/ntt/busy", cc(1, 1), 1);
    l.set_present({"/ntt", "/ntt/busy", "/ntt/quiet"});
    EXPECT_TRUE(l.present("/ntt/quiet")) << "no traffic yet, but it exists";
    EXPECT_TRUE(l.present("/ntt/busy"));
    EXPECT_FALSE(l.present("/ntt/other"));
    l.set_present({"/ntt", "/ntt/busy"});
    EXPECT_FALSE(l.present("/ntt/quiet")) << "removed since";
}

TEST(CgroupLedger, GoneCgroupKeepsItsTotalsUnderItsLastPath) {
    CgroupLedger l;
    l.observe(20, "/t/g", cc(4, 4), 1);
    l.observe(21, "/t/live", cc(1, 1), 1);
    l.set_present({"/t/g", "/t/live"});
    l.set_present({"/t/live"});         // /t/g was removed
    l.observe(20, "/t/g", cc(6, 4), 2); // a socket outlived it and sent a little more
    l.retire(20, cc(6, 5), 3);          // its kernel entry is deleted
    EXPECT_FALSE(l.knows(20));
    auto rows = l.rows();
    ASSERT_NE(find_row(rows, "/t/g"), nullptr);
    EXPECT_TRUE(find_row(rows, "/t/g")->gone);
    EXPECT_EQ(find_row(rows, "/t/g")->total, cc(6, 5));
    EXPECT_FALSE(find_row(rows, "/t")->gone) << "/t still has a live child";
    EXPECT_EQ(find_row(rows, "/t")->total, cc(7, 6));
    // The unit restarts: a new cgroup (new id) at the same path continues the same totals.
    l.observe(30, "/t/g", cc(2, 0), 4);
    l.set_present({"/t/live", "/t/g"});
    rows = l.rows();
    EXPECT_FALSE(find_row(rows, "/t/g")->gone);
    EXPECT_EQ(find_row(rows, "/t/g")->total, cc(8, 5));
}

TEST(CgroupLedger, RenamedCgroupTakesItsCountsAlong) {
    CgroupLedger l;
    l.observe(40, "/t/old", cc(3, 3), 1);
    l.observe(40, "/t/new", cc(4, 3), 2);
    const auto rows = l.rows();
    EXPECT_EQ(find_row(rows, "/t/new")->self, cc(4, 3));
    ASSERT_NE(find_row(rows, "/t/old"), nullptr);
    EXPECT_EQ(find_row(rows, "/t/old")->self, CgroupCounts{});
    EXPECT_EQ(find_row(rows, "/t")->total, cc(4, 3));
}

TEST(CgroupLedger, CompactionFoldsGoneLeavesIntoParentsExactly) {
    CgroupLedger l;
    for (uint64_t i = 0; i < 6; ++i) {
        const std::string p = "/user.slice/session-" + std::to_string(i) + ".scope";
        l.observe(100 + i, p, cc(i + 1, 1), 10 + i); // older sessions less recently active
        l.retire(100 + i, cc(i + 1, 1), 10 + i);
    }
    l.observe(200, "/user.slice/live.scope", cc(1, 0), 5); // alive, even if the oldest
    l.set_present({"/user.slice/live.scope"});
    const CgroupCounts before = find_row(l.rows(), "/user.slice")->total;
    EXPECT_EQ(l.paths(), 7u);
    // Folding creates "/user.slice" itself, which counts towards the limit too.
    EXPECT_EQ(l.compact(5), 3u);
    EXPECT_EQ(l.paths(), 5u); // "/user.slice" with the folded counts, 3 sessions, live
    const auto rows = l.rows();
    EXPECT_EQ(find_row(rows, "/user.slice")->total, before) << "slice totals stay exact";
    EXPECT_EQ(find_row(rows, "/user.slice")->self, cc(1 + 2 + 3, 3)) << "the three oldest sessions";
    EXPECT_EQ(find_row(rows, "/user.slice/session-0.scope"), nullptr);
    EXPECT_NE(find_row(rows, "/user.slice/session-5.scope"), nullptr);
    EXPECT_NE(find_row(rows, "/user.slice/live.scope"), nullptr);
    EXPECT_EQ(l.compact(100), 0u);
}

TEST(CgroupLedger, JsonRoundTripAndRestoreAdds) {
    CgroupLedger a;
    a.observe(1, "/system.slice/foo.service", cc(3, 2), 111);
    a.observe(2, "/system.slice/bar.service", cc(1, 1), 222);
    a.retire(2, cc(1, 1), 222);
    a.add_unresolved(cc(1, 0));
    CgroupKernelTotals k{};
    k[NT_DIR_INGRESS].total = c4(9, 900, 700, 500);
    k[NT_DIR_EGRESS].bucket[NT_CG_BUCKET_UNTRACKED] = c4(2, 200, 160, 120);
    a.observe_kernel(k);
    const nlohmann::json j = a.to_json();
    EXPECT_EQ(j["version"], 1);
    EXPECT_EQ(j["paths"]["/system.slice/foo.service"]["egress"]["l3"], 200);
    EXPECT_FALSE(j["paths"]["/system.slice/foo.service"]["egress"].contains("l2")) << "no l2 to save";
    EXPECT_EQ(j["paths"]["/system.slice/foo.service"]["last_active_us"], 111);
    EXPECT_EQ(j["buckets"]["untracked"]["egress"]["packets"], 2);
    EXPECT_EQ(j["buckets"]["unresolved"]["ingress"]["packets"], 1);

    // A new process: fresh kernel counters, the saved totals as the base.
    CgroupLedger b;
    b.restore(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(b.to_json(), j);
    auto rows = b.rows();
    EXPECT_TRUE(find_row(rows, "/system.slice/foo.service")->gone) << "not seen since the restart";
    b.observe(7, "/system.slice/foo.service", cc(1, 1), 300); // new boot, new id, same unit
    CgroupKernelTotals k2{};
    k2[NT_DIR_EGRESS].bucket[NT_CG_BUCKET_UNTRACKED] = c4(1, 100, 80, 60);
    b.observe_kernel(k2);
    rows = b.rows();
    EXPECT_EQ(find_row(rows, "/system.slice/foo.service")->total, cc(4, 3));
    EXPECT_EQ(find_row(rows, "/")->total, cc(5, 4));
    EXPECT_EQ(b.bucket(NT_CG_BUCKET_UNTRACKED).egress, c4(3, 300, 240, 180));
}

TEST(CgroupLedger, BadStateChangesNothing) {
    CgroupLedger l;
    l.observe(1, "/a", cc(1, 1), 1);
    const nlohmann::json before = l.to_json();
    nlohmann::json bad = before;
    bad["paths"]["/b"] = before["paths"]["/a"];
    bad["paths"]["relative/path"] = before["paths"]["/a"];
    EXPECT_ANY_THROW(l.restore(bad));
    nlohmann::json bad2 = before;
    bad2["paths"]["/a"]["ingress"]["l3"] = "many";
    EXPECT_ANY_THROW(l.restore(bad2));
    nlohmann::json bad3 = before;
    bad3["version"] = 99;
    EXPECT_ANY_THROW(l.restore(bad3));
    EXPECT_ANY_THROW(l.restore(nlohmann::json::object()));
    EXPECT_EQ(l.to_json(), before);
}

// ---- tracker -------------------------------------------------------------------------------

// A kernel map and a cgroup filesystem in memory. Packets are "sent" with send(): the total
// first, then the entry or a bucket, like the BPF program.
class FakeSource : public CgroupSource {
public:
    std::map<std::string, uint64_t> dirs; // path -> id
    std::map<uint64_t, CgroupCounts> entries;
    CgroupKernelTotals totals{};
    std::vector<std::string> tracked_roots;
    size_t capacity = 1000;
    int walks = 0;
    int lookups = 0;
    uint64_t busy = 0;

    void send(uint64_t id, const CgroupCounts& c) {
        totals[NT_DIR_INGRESS].total += c.ingress;
        totals[NT_DIR_EGRESS].total += c.egress;
        std::optional<std::string> path;
        for (const auto& [p, i] : dirs)
            if (i == id)
                path = p;
        const bool known = entries.count(id) != 0;
        bool tracked = known;
        if (!known && path)
            for (const auto& r : tracked_roots)
                tracked = tracked || cgroup_within(*path, r);
        size_t bucket = NT_CG_BUCKET_MAX;
        if (!tracked && path)
            bucket = NT_CG_BUCKET_UNTRACKED;
        else if (!known && entries.size() >= capacity)
            bucket = NT_CG_BUCKET_OVERFLOW;
        if (bucket < NT_CG_BUCKET_MAX) {
            totals[NT_DIR_INGRESS].bucket[bucket] += c.ingress;
            totals[NT_DIR_EGRESS].bucket[bucket] += c.egress;
        } else {
            entries[id] += c; // an id whose directory is gone was tracked when it was created
        }
    }

    CgroupKernelTotals read_totals() override { return totals; }
    uint64_t in_flight() override { return busy; }
    std::vector<std::pair<uint64_t, CgroupCounts>> read_entries() override {
        return {entries.begin(), entries.end()};
    }
    std::optional<CgroupCounts> take_entry(uint64_t id) override {
        auto it = entries.find(id);
        if (it == entries.end())
            return std::nullopt;
        const CgroupCounts c = it->second;
        entries.erase(it);
        return c;
    }
    std::optional<uint64_t> id_of(const std::string& path) override {
        ++lookups;
        auto it = dirs.find(path);
        return it == dirs.end() ? std::nullopt : std::optional<uint64_t>(it->second);
    }
    std::map<uint64_t, std::string> walk(const std::vector<std::string>& roots) override {
        ++walks;
        std::map<uint64_t, std::string> out;
        for (const auto& [p, id] : dirs)
            for (const auto& r : roots)
                if (cgroup_within(p, r))
                    out[id] = p;
        return out;
    }
};

TEST(CgroupTracker, CountsRollsUpAndReconcilesExactly) {
    FakeSource src;
    src.dirs = {{"/", 1}, {"/t", 5}, {"/t/a", 6}, {"/t/a/n", 7}, {"/t/b", 8}, {"/other", 9}};
    src.tracked_roots = {"/t"};
    CgroupTracker t(src, {"/t"}, 1024);
    src.send(6, cc(10, 5));
    src.send(7, cc(2, 2));
    src.send(8, cc(1, 3));
    src.send(9, cc(4, 4)); // untracked
    t.poll(1'000'000);
    const auto rows = t.ledger().rows();
    EXPECT_EQ(find_row(rows, "/t/a")->total, cc(12, 7)) << "the nested cgroup rolls up into its parent";
    EXPECT_EQ(find_row(rows, "/t/a")->self, cc(10, 5));
    EXPECT_EQ(find_row(rows, "/t")->total, cc(13, 10));
    EXPECT_EQ(find_row(rows, "/other"), nullptr);
    EXPECT_EQ(t.ledger().bucket(NT_CG_BUCKET_UNTRACKED), cc(4, 4));
    EXPECT_EQ(t.stats().reconcile_checks, 2u);
    EXPECT_EQ(t.stats().reconcile_exact, 2u);
    EXPECT_EQ(t.stats().reconcile_violations, 0u);
    EXPECT_EQ(t.stats().walks, 1u);
    // The "/" total plus the unattributed buckets is everything the hooks counted here.
    CgroupCounts sum = find_row(rows, "/")->total;
    for (size_t b = 0; b < kCgroupBucketCount; ++b)
        if (cgroup_bucket_is_unattributed(b))
            sum += t.ledger().bucket(b);
    EXPECT_EQ(sum, t.ledger().seen());

    // Known cgroups: one lookup each, no walk until something new shows up.
    src.send(6, cc(1, 1));
    t.poll(1'200'000);
    EXPECT_EQ(t.stats().walks, 1u);
    src.dirs["/t/c"] = 10;
    src.send(10, cc(1, 0));
    t.poll(1'400'000);
    EXPECT_EQ(t.stats().walks, 2u);
    EXPECT_EQ(find_row(t.ledger().rows(), "/t/c")->self, cc(1, 0));
    // And a walk every kWalkEveryUs regardless.
    t.poll(1'400'000 + CgroupTracker::kWalkEveryUs);
    EXPECT_EQ(t.stats().walks, 3u);
    EXPECT_EQ(t.stats().reconcile_violations, 0u);
}

TEST(CgroupTracker, RemovedCgroupIsRetiredAfterAQuietPollAndKeepsItsTotals) {
    FakeSource src;
    src.dirs = {{"/", 1}, {"/t", 5}, {"/t/g", 6}};
    src.tracked_roots = {"/t"};
    CgroupTracker t(src, {"/t"}, 1024);
    src.send(6, cc(5, 5));
    t.poll(1);
    src.dirs.erase("/t/g"); // rmdir
    src.send(6, cc(1, 0));  // a socket that outlived the cgroup
    t.poll(2);
    EXPECT_EQ(src.entries.count(6), 1u) << "not retired while it still counts";
    EXPECT_TRUE(find_row(t.ledger().rows(), "/t/g")->gone);
    t.poll(3); // quiet for a whole poll: retired
    EXPECT_EQ(src.entries.count(6), 0u);
    EXPECT_EQ(t.stats().retired, 1u);
    t.poll(4);
    const auto rows = t.ledger().rows();
    EXPECT_EQ(find_row(rows, "/t/g")->total, cc(6, 5));
    EXPECT_TRUE(find_row(rows, "/t/g")->gone);
    EXPECT_EQ(t.stats().reconcile_violations, 0u) << "retired counts still reconcile with the kernel total";
    // Late traffic from the same (dead) cgroup id: a new entry, still under its last path.
    src.send(6, cc(0, 2));
    t.poll(5);
    EXPECT_EQ(find_row(t.ledger().rows(), "/t/g")->total, cc(6, 7));
    EXPECT_EQ(t.stats().reconcile_violations, 0u);
}

TEST(CgroupTracker, UnresolvableIdsAndOverflowGoToBuckets) {
    FakeSource src;
    src.dirs = {{"/", 1}, {"/t", 5}, {"/t/a", 6}, {"/t/b", 7}};
    src.tracked_roots = {"/t"};
    src.capacity = 1;
    CgroupTracker t(src, {"/t"}, 1024);
    src.send(6, cc(1, 1));
    src.send(7, cc(2, 2));      // map full
    src.entries[99] = cc(3, 0); // a cgroup created and removed between polls
    src.totals[NT_DIR_INGRESS].total += cc(3, 0).ingress;
    t.poll(1);
    EXPECT_EQ(t.ledger().bucket(NT_CG_BUCKET_OVERFLOW), cc(2, 2));
    EXPECT_EQ(t.ledger().bucket(kCgroupBucketUnresolved), cc(3, 0));
    EXPECT_EQ(src.entries.count(99), 0u) << "its slot is given back at once";
    EXPECT_EQ(t.stats().reconcile_violations, 0u);
}

TEST(CgroupTracker, NarrowedSubtreesRetireWhatLeftThem) {
    FakeSource src;
    src.dirs = {{"/", 1}, {"/a", 2}, {"/a/x", 3}, {"/b", 4}, {"/b/y", 5}};
    src.tracked_roots = {"/a", "/b"};
    CgroupTracker t(src, {"/a", "/b"}, 1024);
    src.send(3, cc(1, 1));
    src.send(5, cc(2, 2));
    t.poll(1);
    t.set_subtrees({"/a"});
    src.tracked_roots = {"/a"};
    t.poll(2);
    EXPECT_EQ(src.entries.count(5), 0u) << "/b/y is no longer tracked: its entry is retired";
    EXPECT_EQ(src.entries.count(3), 1u);
    src.send(5, cc(1, 0)); // now untracked in the kernel
    t.poll(3);
    EXPECT_EQ(find_row(t.ledger().rows(), "/b/y")->total, cc(2, 2)) << "its totals so far are kept";
    EXPECT_EQ(t.ledger().bucket(NT_CG_BUCKET_UNTRACKED), cc(1, 0));
    EXPECT_EQ(t.stats().reconcile_violations, 0u);
}

TEST(CgroupTracker, AProgramInFlightIsNoViolation) {
    FakeSource src;
    src.dirs = {{"/", 1}, {"/t", 2}};
    src.tracked_roots = {"/t"};
    CgroupTracker t(src, {"/t"}, 1024);
    src.send(2, cc(3, 3));
    // A preempted program: the total is written, the category not yet.
    src.totals[NT_DIR_EGRESS].total += cc(0, 1).egress;
    src.busy = 1;
    t.poll(1);
    EXPECT_EQ(t.stats().reconcile_violations, 0u) << "categories may trail the total while busy";
    EXPECT_EQ(t.stats().reconcile_exact, 0u);
    src.entries[2] += cc(0, 1); // it finishes
    src.busy = 0;
    t.poll(2);
    EXPECT_EQ(t.stats().reconcile_violations, 0u);
    EXPECT_EQ(t.stats().reconcile_exact, 2u);
    // Categories above the total are wrong whatever is in flight.
    src.entries[2] += cc(1, 0);
    src.busy = 1;
    t.poll(3);
    EXPECT_EQ(t.stats().reconcile_violations, 1u);
}

TEST(CgroupTracker, ViolationIsReported) {
    FakeSource src;
    src.dirs = {{"/", 1}, {"/t", 2}};
    src.tracked_roots = {"/t"};
    CgroupTracker t(src, {"/t"}, 1024);
    std::vector<std::string> seen;
    t.on_violation([&](const std::string& m) { seen.push_back(m); });
    src.send(2, cc(1, 1));
    src.entries[2] = cc(0, 1); // the kernel lost a count (a category below its total)
    t.poll(1);
    EXPECT_EQ(t.stats().reconcile_violations, 1u);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].find("ingress"), std::string::npos) << seen[0];
}

} // namespace
} // namespace nettally
