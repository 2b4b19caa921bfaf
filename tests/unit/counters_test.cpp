// Unit tests for the counter logic: per-CPU folding, monotonic totals across
// kernel counter restarts, reconciliation outcomes, top-N ordering, and the
// Collector over an in-memory MapReader.
#include "core/collector.h"
#include "core/counters.h"
#include "core/history_feed.h"

#include <arpa/inet.h>
#include <cstring>
#include <gtest/gtest.h>

using namespace nettally;

namespace {

nt_counts nc(uint64_t p, uint64_t l2, uint64_t l3, uint64_t l4, uint64_t pl) {
    return {p, l2, l3, l4, pl};
}

TEST(Counts, AddAndCompare) {
    Counts a(1, 100, 80, 60, 40);
    Counts b(2, 200, 160, 120, 80);
    EXPECT_EQ(a + a, b);
    EXPECT_TRUE(a.all_le(b));
    EXPECT_FALSE(b.all_le(a));
    EXPECT_TRUE(a.all_le(a));
}

TEST(Fold, IfaceSumsEveryCpuAndBucket) {
    nt_iface_val v[3]{};
    v[0].total = nc(1, 60, 46, 26, 6);
    v[2].total = nc(2, 120, 0, 0, 0);
    v[2].bucket[NT_BUCKET_NON_IP] = nc(2, 120, 0, 0, 0);
    v[1].host_overflow = 5;
    IfaceCounters r = fold_percpu(std::span<const nt_iface_val>(v, 3));
    EXPECT_EQ(r.total, Counts(3, 180, 46, 26, 6));
    EXPECT_EQ(r.bucket[NT_BUCKET_NON_IP], Counts(2, 120, 0, 0, 0));
    EXPECT_EQ(r.bucket_sum(), Counts(2, 120, 0, 0, 0));
    EXPECT_EQ(r.host_overflow, 5u);
}

TEST(Fold, FlowTimesIgnoreCpusThatNeverSawIt) {
    nt_flow_key k{};
    nt_flow_val v[3]{};
    v[0].c = nc(1, 100, 86, 66, 46);
    v[0].first_ns = 500;
    v[0].last_ns = 900;
    v[0].tcp_flags = 0x02;
    v[2].c = nc(1, 100, 86, 66, 46);
    v[2].first_ns = 300;
    v[2].last_ns = 700;
    v[2].tcp_flags = 0x10;
    FlowEntry e = fold_percpu(k, std::span<const nt_flow_val>(v, 3));
    EXPECT_EQ(e.counts, Counts(2, 200, 172, 132, 92));
    EXPECT_EQ(e.first_ns, 300u); // CPU 1 (zero) is ignored
    EXPECT_EQ(e.last_ns, 900u);
    EXPECT_EQ(e.tcp_flags, 0x12);
}

// A flow's class: the class of the CPU whose value saw the latest packet, among the CPUs that
// classified one (cls_serial != 0).
TEST(Fold, FlowClassFromTheCpuWithTheLatestPacket) {
    nt_flow_key k{};
    nt_flow_val v[4]{};
    v[0].last_ns = 900;
    v[0].cls_id = 40;
    v[0].cls_serial = 7;
    v[1].last_ns = 950; // the latest packet, but never classified (a fragment): no class
    v[2].last_ns = 920;
    v[2].cls_id = 50;
    v[2].cls_serial = 8;
    v[3].last_ns = 910;
    v[3].cls_id = 60;
    v[3].cls_serial = 8;
    FlowEntry e = fold_percpu(k, std::span<const nt_flow_val>(v, 4));
    EXPECT_EQ(e.cls_id, 50);
    EXPECT_EQ(e.cls_serial, 8u);
    v[0].last_ns = 999;
    e = fold_percpu(k, std::span<const nt_flow_val>(v, 4));
    EXPECT_EQ(e.cls_id, 40);
    EXPECT_EQ(e.cls_serial, 7u);
    const nt_flow_val none[2]{};
    e = fold_percpu(k, std::span<const nt_flow_val>(none, 2));
    EXPECT_EQ(e.cls_serial, 0u) << "no CPU classified a packet";
}

TEST(Monotonic, FollowsRawAndSurvivesRestart) {
    MonotonicCounter c;
    EXPECT_EQ(c.observe(10), 10u);
    EXPECT_EQ(c.observe(25), 25u);
    EXPECT_EQ(c.observe(4), 29u); // kernel counter restarted at 0 and counted 4
    EXPECT_EQ(c.observe(6), 31u);
    EXPECT_EQ(c.observe(6), 31u);
}

TEST(Monotonic, RestoreContinuesFromSavedTotal) {
    MonotonicCounter c;
    c.restore(1000);
    EXPECT_EQ(c.total(), 1000u);
    EXPECT_EQ(c.observe(7), 1007u);
}

TEST(Monotonic, NearWrapStaysExact) {
    MonotonicCounter c;
    const uint64_t big = UINT64_MAX - 5;
    EXPECT_EQ(c.observe(big), big);
    EXPECT_EQ(c.observe(big + 3), big + 3);
}

TEST(Reconcile, QuietSnapshotMustBeExact) {
    ReconcileInput in;
    in.total_before = in.total_after = Counts(10, 1000, 800, 600, 400);
    in.flows = Counts(8, 900, 800, 600, 400);
    in.buckets_after = Counts(2, 100, 0, 0, 0);
    EXPECT_EQ(reconcile(in), ReconcileOutcome::Exact);
    in.buckets_after = Counts(1, 60, 0, 0, 0); // one packet lost
    EXPECT_EQ(reconcile(in), ReconcileOutcome::Violated);
}

TEST(Reconcile, BusySnapshotIsBracketed) {
    ReconcileInput in;
    in.total_before = Counts(10, 1000, 800, 600, 400);
    in.total_after = Counts(12, 1200, 960, 720, 480);
    in.flows = Counts(9, 1000, 880, 660, 440);
    in.buckets_after = Counts(2, 100, 0, 0, 0);
    EXPECT_EQ(reconcile(in), ReconcileOutcome::Bracketed);
    in.flows = Counts(11, 1200, 960, 720, 480); // categories above the later total
    EXPECT_EQ(reconcile(in), ReconcileOutcome::Violated);
    in.flows = Counts(5, 500, 400, 300, 200); // categories below the earlier total
    EXPECT_EQ(reconcile(in), ReconcileOutcome::Violated);
}

TEST(Sort, KeysAndTopN) {
    EXPECT_EQ(parse_sort_key("payload", false), SortKey::Payload);
    EXPECT_EQ(parse_sort_key("first_seen", false), std::nullopt);
    EXPECT_EQ(parse_sort_key("first_seen", true), SortKey::FirstSeen);
    EXPECT_EQ(parse_sort_key("bogus", true), std::nullopt);
    EXPECT_EQ(parse_sort_key("", true), std::nullopt);

    const uint64_t v[] = {5, 9, 1, 9, 7};
    auto idx = top_n(v, 3);
    ASSERT_EQ(idx.size(), 3u);
    EXPECT_EQ(idx[0], 1u); // ties keep index order
    EXPECT_EQ(idx[1], 3u);
    EXPECT_EQ(idx[2], 4u);
    EXPECT_EQ(top_n(v, 100).size(), 5u);
    EXPECT_TRUE(top_n(std::span<const uint64_t>(), 3).empty());
}

TEST(Format, MacAndAddresses) {
    const uint8_t mac[6] = {0x02, 0x00, 0xab, 0xcd, 0xef, 0x01};
    EXPECT_EQ(format_mac(mac), "02:00:ab:cd:ef:01");
    uint32_t a4[4]{};
    inet_pton(AF_INET, "198.18.1.2", a4);
    EXPECT_EQ(format_addr(NT_AF_INET, a4), "198.18.1.2");
    uint32_t a6[4]{};
    inet_pton(AF_INET6, "fd00:1::2", a6);
    EXPECT_EQ(format_addr(NT_AF_INET6, a6), "fd00:1::2");
}

// In-memory maps for the Collector: what a test writes is what a poll reads.
class FakeMaps : public MapReader {
public:
    IfaceSnapshot ifaces;
    std::vector<FlowEntry> flows;
    std::vector<HostEntry> hosts;
    IfaceSnapshot read_ifaces() override { return ifaces; }
    void read_flows(std::vector<FlowEntry>& out) override { out = flows; }
    std::vector<HostEntry> read_hosts() override { return hosts; }
    // Like the kernel: removes the flows and hands back their last values.
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>& keys) override {
        std::vector<FlowEntry> out;
        for (const auto& k : keys)
            for (auto it = flows.begin(); it != flows.end(); ++it)
                if (std::memcmp(&it->key, &k, sizeof(k)) == 0) {
                    out.push_back(*it);
                    flows.erase(it);
                    break;
                }
        return out;
    }
    // Like the pinned nt_evicted map: outlives the Collector that wrote it.
    std::map<IfaceKey, EvictedSums> evicted;
    std::map<IfaceKey, EvictedSums> read_evicted() override { return evicted; }
    void write_evicted(const IfaceKey& key, const EvictedSums& sums) override { evicted[key] = sums; }
};

FlowEntry flow(uint32_t ifindex, uint8_t dir, Counts c, uint16_t sport = 1000, uint64_t first_ns = 0,
               uint64_t last_ns = 0) {
    FlowEntry f;
    f.key.ifindex = ifindex;
    f.key.dir = dir;
    f.key.sport = sport;
    f.counts = c;
    f.first_ns = first_ns;
    f.last_ns = last_ns;
    return f;
}

TEST(Collector, TotalsByNameAndReconciliation) {
    FakeMaps maps;
    Collector col(maps);
    std::vector<std::string> violations;
    col.on_violation([&](const std::string& m) { violations.push_back(m); });
    col.set_interfaces({{"lan0", "lan", 3}, {"wan0", "wan", 4}});

    IfaceCounters in;
    in.total = Counts(3, 300, 200, 150, 100);
    in.bucket[NT_BUCKET_NON_IP] = Counts(1, 60, 0, 0, 0);
    maps.ifaces[{3, NT_DIR_INGRESS}] = in;
    maps.flows.push_back(
        flow(3, NT_DIR_INGRESS, Counts(2, 240, 200, 150, 100), 1000, 4'000'000'000, 4'900'000'000));
    col.poll({1'000'000, 5'000'000'000});

    EXPECT_EQ(col.stats().polls, 1u);
    EXPECT_EQ(col.stats().reconcile_checks, 1u);
    EXPECT_EQ(col.stats().reconcile_exact, 1u);
    EXPECT_EQ(col.stats().reconcile_violations, 0u);
    const auto& lan = col.interfaces().at("lan0");
    EXPECT_EQ(lan.dir[NT_DIR_INGRESS].total.total(), Counts(3, 300, 200, 150, 100));
    EXPECT_EQ(lan.dir[NT_DIR_INGRESS].bucket[NT_BUCKET_NON_IP].total(), Counts(1, 60, 0, 0, 0));
    EXPECT_EQ(col.name_of(3), "lan0");
    EXPECT_EQ(col.name_of(99), "");

    // A packet in the total but in no flow or category for one poll only: in flight between the
    // program's two adds when the maps were read (its flow shows at the next poll). Not a violation.
    maps.ifaces[{3, NT_DIR_INGRESS}].total += Counts(1, 60, 46, 26, 6);
    col.poll({2'000'000, 6'000'000'000});
    EXPECT_EQ(col.stats().reconcile_violations, 0u);
    maps.flows.back().counts += Counts(1, 60, 46, 26, 6);
    col.poll({3'000'000, 7'000'000'000});
    EXPECT_EQ(col.stats().reconcile_violations, 0u);
    EXPECT_TRUE(violations.empty());

    // One that stays missing is a violation, at the second poll that misses it.
    maps.ifaces[{3, NT_DIR_INGRESS}].total += Counts(1, 60, 46, 26, 6);
    col.poll({4'000'000, 8'000'000'000});
    EXPECT_EQ(col.stats().reconcile_violations, 0u);
    col.poll({5'000'000, 9'000'000'000});
    EXPECT_EQ(col.stats().reconcile_violations, 1u);
    ASSERT_EQ(violations.size(), 1u);
    EXPECT_NE(violations[0].find("ifindex 3 ingress"), std::string::npos) << violations[0];
}

TEST(Collector, InterfaceTotalsSurviveAKernelReset) {
    FakeMaps maps;
    Collector col(maps);
    col.set_interfaces({{"lan0", "lan", 3}});
    IfaceCounters c;
    c.total = Counts(5, 500, 0, 0, 0);
    c.bucket[NT_BUCKET_NON_IP] = c.total;
    maps.ifaces[{3, NT_DIR_EGRESS}] = c;
    col.poll({1, 1});
    // The interface came back with a new ifindex and fresh kernel counters.
    col.set_interfaces({{"lan0", "lan", 7}});
    c.total = Counts(1, 100, 0, 0, 0);
    c.bucket[NT_BUCKET_NON_IP] = c.total;
    maps.ifaces.clear();
    maps.ifaces[{7, NT_DIR_EGRESS}] = c;
    col.poll({2, 2});
    EXPECT_EQ(col.interfaces().at("lan0").dir[NT_DIR_EGRESS].total.total(), Counts(6, 600, 0, 0, 0));
}

TEST(Collector, BootTimeToWallClock) {
    FakeMaps maps;
    Collector col(maps);
    col.poll({1'700'000'000'000'000, 10'000'000'000}); // boot clock at 10 s
    EXPECT_EQ(col.to_unix_us(0), 0u);
    EXPECT_EQ(col.to_unix_us(9'000'000'000), 1'700'000'000'000'000u - 1'000'000u);
}

TEST(Collector, EvictsIdleAndLongFlowsAndKeepsThemInTheInvariant) {
    FakeMaps maps;
    Collector col(maps);
    col.set_interfaces({{"lan0", "lan", 3}});
    col.set_flow_timeouts({std::chrono::seconds(15), std::chrono::seconds(60)});
    std::vector<std::string> finished;
    col.on_flow_finished([&](const FlowEntry& f, const std::string& iface) {
        finished.push_back(iface + ":" + std::to_string(f.key.sport));
    });
    const uint64_t s = 1'000'000'000;
    IfaceCounters c;
    c.total = Counts(6, 600, 500, 400, 300);
    maps.ifaces[{3, NT_DIR_EGRESS}] = c;
    maps.flows = {flow(3, NT_DIR_EGRESS, Counts(2, 200, 100, 100, 100), 1, 190 * s, 195 * s),  // fresh
                  flow(3, NT_DIR_EGRESS, Counts(2, 200, 200, 150, 100), 2, 100 * s, 184 * s),  // idle 16 s
                  flow(3, NT_DIR_EGRESS, Counts(2, 200, 200, 150, 100), 3, 130 * s, 199 * s)}; // active 70 s
    col.poll({1, 200 * s});
    EXPECT_EQ(col.stats().flows_evicted, 2u);
    ASSERT_EQ(finished.size(), 2u);
    EXPECT_EQ(finished[0], "lan0:2");
    EXPECT_EQ(finished[1], "lan0:3");
    ASSERT_EQ(col.flows().size(), 1u);
    EXPECT_EQ(maps.flows.size(), 1u);
    EXPECT_EQ(col.evicted().at({3, NT_DIR_EGRESS}).counts, Counts(4, 400, 400, 300, 200));
    // Next poll: live + evicted still reconcile with the total, exactly.
    col.poll({2, 201 * s});
    EXPECT_EQ(col.stats().reconcile_violations, 0u);
    EXPECT_EQ(col.stats().reconcile_exact, 2u);
}

TEST(Collector, FlowsEvictedAfterTheLastSaveSurviveACrash) {
    FakeMaps maps;
    const uint64_t s = 1'000'000'000;
    IfaceCounters c;
    auto start = [&](Collector& col) {
        col.set_interfaces({{"lan0", "lan", 3}});
        col.set_flow_timeouts({std::chrono::seconds(15), std::chrono::seconds(60)});
    };
    Collector col(maps);
    start(col);
    // Flow 1 finishes, the state is saved; flow 2 finishes, then the daemon is killed.
    c.total = Counts(2, 200, 180, 160, 100);
    maps.ifaces[{3, NT_DIR_EGRESS}] = c;
    maps.flows = {flow(3, NT_DIR_EGRESS, c.total, 1, 100 * s, 100 * s)};
    col.poll({1, 120 * s});
    const auto saved = col.to_json();
    c.total += Counts(3, 300, 270, 240, 150);
    maps.ifaces[{3, NT_DIR_EGRESS}] = c;
    maps.flows = {flow(3, NT_DIR_EGRESS, Counts(3, 300, 270, 240, 150), 2, 121 * s, 121 * s)};
    col.poll({2, 140 * s});
    EXPECT_EQ(col.stats().flows_evicted, 2u);
    EXPECT_EQ(maps.evicted.at({3, NT_DIR_EGRESS}).counts, c.total) << "written beside the counters at once";
    EXPECT_EQ(maps.evicted.at({3, NT_DIR_EGRESS}).flows, 2u);

    // Restart on the same (pinned) maps from the older state: flow 2 is not lost.
    Collector after(maps);
    start(after);
    after.restore(saved, true);
    EXPECT_EQ(after.restored_late_flows(), 1u);
    after.poll({3, 141 * s});
    EXPECT_EQ(after.stats().reconcile_violations, 0u);
    EXPECT_EQ(after.stats().reconcile_exact, 1u);
    EXPECT_EQ(after.evicted().at({3, NT_DIR_EGRESS}).counts, c.total);
    EXPECT_EQ(after.finished("lan0", NT_DIR_EGRESS), c.total);
    EXPECT_EQ(after.stats().flows_evicted, 2u);
    // Saved again and restarted cleanly: nothing is added twice.
    Collector again(maps);
    start(again);
    again.restore(after.to_json(), true);
    EXPECT_EQ(again.restored_late_flows(), 0u);
    EXPECT_EQ(again.finished("lan0", NT_DIR_EGRESS), c.total);

    // Pins from before the evicted sums were kept (none there): the state's figures are used
    // and written beside the counters.
    maps.evicted.clear();
    Collector old_pins(maps);
    start(old_pins);
    old_pins.restore(saved, true);
    EXPECT_EQ(old_pins.restored_late_flows(), 0u);
    EXPECT_EQ(old_pins.evicted().at({3, NT_DIR_EGRESS}).counts, Counts(2, 200, 180, 160, 100));
    EXPECT_EQ(maps.evicted.at({3, NT_DIR_EGRESS}).counts, Counts(2, 200, 180, 160, 100));

    // New counters (reboot): the pinned sums are not consulted.
    FakeMaps fresh;
    fresh.evicted[{3, NT_DIR_EGRESS}] = {Counts(9, 900, 0, 0, 0), 9};
    Collector rebooted(fresh);
    start(rebooted);
    rebooted.restore(saved, false);
    EXPECT_EQ(rebooted.restored_late_flows(), 0u);
    EXPECT_TRUE(rebooted.evicted().empty());
    EXPECT_EQ(rebooted.finished("lan0", NT_DIR_EGRESS), Counts(2, 200, 180, 160, 100));
}

TEST(Collector, OverflowEpisodeReportedOnce) {
    FakeMaps maps;
    Collector col(maps);
    col.set_interfaces({{"lan0", "lan", 3}});
    std::vector<std::string> notes;
    col.on_overflow([&](const std::string& m) { notes.push_back(m); });
    IfaceCounters c;
    for (uint64_t p : {0, 5, 9, 9, 12}) {
        c.total = Counts(p, p * 100, 0, 0, 0);
        c.bucket[NT_BUCKET_FLOW_OVERFLOW] = c.total;
        maps.ifaces[{3, NT_DIR_INGRESS}] = c;
        col.poll({1, 1});
    }
    // Two episodes: 0 -> 5 -> 9 (one), quiet at 9, then 12 (another).
    EXPECT_EQ(notes.size(), 2u);
    EXPECT_EQ(col.stats().overflow_episodes, 2u);
    EXPECT_TRUE(col.stats().flow_map_full);
}

TEST(Collector, StateRoundTripSameAndNewCounters) {
    FakeMaps maps;
    Collector col(maps);
    col.set_interfaces({{"lan0", "lan", 3}});
    IfaceCounters c;
    c.total = Counts(10, 1000, 800, 600, 400);
    c.bucket[NT_BUCKET_NON_IP] = c.total;
    maps.ifaces[{3, NT_DIR_INGRESS}] = c;
    HostEntry h;
    h.key.ifindex = 3;
    h.key.family = NT_AF_INET;
    inet_pton(AF_INET, "198.18.1.2", h.key.addr);
    h.key.mac[0] = 2;
    h.sent = Counts(4, 400, 300, 200, 100);
    maps.hosts.push_back(h);
    col.poll({1, 1});
    const auto saved = col.to_json();

    // Restart, same kernel counters (pinned maps reused): continue exactly.
    c.total = Counts(12, 1200, 800, 600, 400);
    c.bucket[NT_BUCKET_NON_IP] = c.total;
    FakeMaps same;
    same.ifaces[{3, NT_DIR_INGRESS}] = c;
    same.hosts.push_back(h);
    Collector a(same);
    a.set_interfaces({{"lan0", "lan", 3}});
    a.restore(saved, true);
    a.poll({2, 2});
    EXPECT_EQ(a.interfaces().at("lan0").dir[NT_DIR_INGRESS].total.total(), Counts(12, 1200, 800, 600, 400));
    EXPECT_EQ(a.hosts().begin()->second.sent.total(), Counts(4, 400, 300, 200, 100));

    // Reboot: fresh kernel counters start at zero and add to the saved totals.
    c.total = Counts(1, 100, 0, 0, 0);
    c.bucket[NT_BUCKET_NON_IP] = c.total;
    FakeMaps fresh;
    fresh.ifaces[{5, NT_DIR_INGRESS}] = c;
    Collector b(fresh);
    b.set_interfaces({{"lan0", "lan", 5}});
    b.restore(saved, false);
    b.poll({3, 3});
    EXPECT_EQ(b.interfaces().at("lan0").dir[NT_DIR_INGRESS].total.total(), Counts(11, 1100, 800, 600, 400));
    EXPECT_EQ(b.hosts().begin()->second.sent.total(), Counts(4, 400, 300, 200, 100));

    // A broken state is refused whole.
    Collector broken(fresh);
    auto bad = saved;
    bad["interfaces"]["lan0"]["dirs"]["ingress"]["total"] = "garbage";
    EXPECT_ANY_THROW(broken.restore(bad, false));
}

TEST(Collector, RenameMovesTotals) {
    FakeMaps maps;
    Collector col(maps);
    col.set_interfaces({{"eth1", "lan", 4}});
    IfaceCounters c;
    c.total = Counts(3, 300, 0, 0, 0);
    c.bucket[NT_BUCKET_NON_IP] = c.total;
    maps.ifaces[{4, NT_DIR_EGRESS}] = c;
    col.poll({1, 1});
    HostEntry h;
    h.key.ifindex = 4;
    h.key.family = NT_AF_INET;
    h.sent = Counts(1, 100, 0, 0, 0);
    maps.hosts.push_back(h);
    col.poll({2, 2});
    col.set_interfaces({{"lan1", "lan", 4}});
    col.poll({3, 3});
    ASSERT_EQ(col.hosts().size(), 1u); // the host moved with the interface, not duplicated
    EXPECT_EQ(col.hosts().begin()->second.interface, "lan1");
    EXPECT_EQ(col.interfaces().count("eth1"), 0u);
    EXPECT_EQ(col.interfaces().at("lan1").dir[NT_DIR_EGRESS].total.total(), Counts(3, 300, 0, 0, 0));
}

} // namespace

// ---- flow aggregates in the history across restarts ----

namespace {

// What the day history holds for one subject, over every kept day.
Counts history_of(const HistoryFeed& feed, const std::string& subject) {
    Counts sum;
    for (const auto& p : feed.history().periods(PeriodKind::Day))
        if (auto it = p.totals.find(subject); it != p.totals.end())
            sum += it->second;
    return sum;
}

FlowEntry udp_flow(uint16_t sport, Counts c, uint64_t last_ns) {
    FlowEntry f = flow(3, NT_DIR_EGRESS, c, sport, last_ns, last_ns);
    f.key.proto = 17;
    f.key.dport = 53;
    return f;
}

} // namespace

// One run of the daemon's accounting: the collector on the maps, feeding the history.
struct FeedRun {
    Collector col;
    HistoryFeed feed{History(PeriodSpec{})};
    explicit FeedRun(MapReader& maps) : col(maps) {
        col.set_interfaces({{"lan0", "lan", 3}});
        col.set_flow_timeouts({std::chrono::seconds(15), std::chrono::seconds(60)});
        col.on_flow_finished(
            [this](const FlowEntry& f, const std::string& i) { feed.on_flow_finished(f, i); });
    }
    FeedRun(MapReader& maps, const nlohmann::json& col_state, const nlohmann::json& feed_state, bool same)
        : FeedRun(maps) {
        col.restore(col_state, same);
        feed.restore(feed_state, PeriodSpec{}, same);
    }
    void poll(uint64_t boot_s, int64_t unix_us, bool feed_it = true) {
        col.poll({static_cast<uint64_t>(unix_us), boot_s * 1'000'000'000});
        if (feed_it)
            feed.feed(col, unix_us);
    }
};

TEST(HistoryFeed, FlowAggregatesContinueAcrossRestartsWithoutCountingTwice) {
    const int64_t day = 1'700'000'000'000'000;
    const uint64_t s = 1'000'000'000;
    const std::string agg = "flow:lan0:egress:udp/53";
    const Counts more(1, 100, 90, 80, 50);
    FakeMaps maps;
    FeedRun run(maps);
    run.poll(1, day);
    // Flow 1 finishes (idle), flow 2 is live when the daemon stops.
    maps.flows = {udp_flow(1000, Counts(2, 200, 180, 160, 100), 2 * s)};
    run.poll(3, day + 1);
    run.poll(30, day + 2, false); // flow 1 idle 28 s: evicted
    maps.flows.push_back(udp_flow(1001, Counts(3, 300, 270, 240, 150), 29 * s));
    run.poll(31, day + 3);
    const Counts before = history_of(run.feed, agg);
    ASSERT_EQ(before, Counts(5, 500, 450, 400, 250));
    const auto col_state = run.col.to_json();
    const auto feed_state = run.feed.to_json();

    // Clean restart on the same flow map: nothing again; then flow 2's growth only.
    {
        FeedRun again(maps, col_state, feed_state, true);
        again.poll(32, day + 4);
        EXPECT_EQ(history_of(again.feed, agg), before) << "a restart added the aggregate again";
        maps.flows.back().counts += more;
        again.poll(33, day + 5);
        EXPECT_EQ(history_of(again.feed, agg), before + more);
        maps.flows.back().counts = Counts(3, 300, 270, 240, 150);
    }
    // Killed after flow 2 finished unseen (gone from the map, not in the saved state): the
    // aggregate keeps its total, nothing counted twice.
    {
        FakeMaps gone = maps;
        gone.flows.clear();
        FeedRun killed(gone, col_state, feed_state, true);
        killed.poll(34, day + 6);
        EXPECT_EQ(history_of(killed.feed, agg), before);
        gone.flows = {udp_flow(1002, more, 34 * s)};
        killed.poll(35, day + 7);
        EXPECT_EQ(history_of(killed.feed, agg), before + more);
    }
    // Reboot (new flow map): the saved totals stay, new flows add to them.
    {
        FakeMaps fresh;
        fresh.flows = {udp_flow(2000, more, 1 * s)};
        FeedRun rebooted(fresh, col_state, feed_state, false);
        rebooted.poll(2, day + 8);
        EXPECT_EQ(history_of(rebooted.feed, agg), before + more);
    }
}
