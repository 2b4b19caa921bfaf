// Traffic classes in the daemon, the pure parts: the rules section of the config (defaults, every
// key, the rejections with their file:line:col: key: messages), the checks before a load (size,
// version order), and the collector's class totals (gone classes keep their totals, the
// reconciliation line Σ classes == interface total, restore across restarts).
#include "config_section_test.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/history_feed.h"
#include "core/rules_check.h"
#include "core/thresholds.h"
#include "core/thresholds_def.h"

#include <gtest/gtest.h>

#include <string>

namespace nettally {
namespace {

using config_test::error_of;
using config_test::parse;

// ---- config -------------------------------------------------------------------------------

TEST(ConfigRules, DefaultsOff) {
    for (const std::string tail : {"", "rules:\n"}) {
        const Config c = parse(tail);
        EXPECT_TRUE(c.rules.bundle.empty());
        EXPECT_TRUE(c.rules.trusted_keys.empty());
        EXPECT_TRUE(c.rules.url.empty());
        EXPECT_EQ(c.rules.refresh, std::chrono::minutes(5));
        EXPECT_TRUE(c.rules.ca_file.empty());
        EXPECT_EQ(c.rules.max_size, uint64_t{16} << 20);
    }
}

TEST(ConfigRules, EveryKey) {
    const Config c = parse("rules:\n"
                           "  bundle: /etc/nettally/classes.bundle\n"
                           "  trusted_keys:\n"
                           "    - /etc/nettally/keys/a.pub\n"
                           "    - /etc/nettally/keys/b.pub\n"
                           "  url: https://rules.example.net/gw/nettally.bundle\n"
                           "  refresh: 90s\n"
                           "  ca_file: /etc/ssl/rules-ca.pem\n"
                           "  max_size: 4MiB\n");
    EXPECT_EQ(c.rules.bundle, "/etc/nettally/classes.bundle");
    ASSERT_EQ(c.rules.trusted_keys.size(), 2u);
    EXPECT_EQ(c.rules.trusted_keys[1], "/etc/nettally/keys/b.pub");
    EXPECT_EQ(c.rules.url, "https://rules.example.net/gw/nettally.bundle");
    EXPECT_EQ(c.rules.refresh, std::chrono::seconds(90));
    EXPECT_EQ(c.rules.ca_file, "/etc/ssl/rules-ca.pem");
    EXPECT_EQ(c.rules.max_size, uint64_t{4} << 20);
}

TEST(ConfigRules, Rejections) {
    struct Case {
        const char* tail;
        const char* error;
    };
    const Case cases[] = {
        {"rules:\n  bundle: classes.bundle\n",
         "test.yaml:5:11: rules.bundle: must be an absolute file path, got 'classes.bundle'"},
        {"rules:\n  bundle: /etc/nettally/\n", "test.yaml:5:11: rules.bundle: must be an absolute file path"},
        {"rules:\n  trusted_keys: /etc/k.pub\n", "test.yaml:5:17: rules.trusted_keys: expected a list"},
        {"rules:\n  trusted_keys:\n    - /etc/k.pub\n    - /etc/k.pub\n",
         "test.yaml:7:7: rules.trusted_keys[1]: key file '/etc/k.pub' listed twice"},
        {"rules:\n  trusted_keys:\n    - k.pub\n",
         "test.yaml:6:7: rules.trusted_keys[0]: must be an absolute"},
        {"rules:\n  url: ftp://rules.example.net/b\n",
         "test.yaml:5:8: rules.url: invalid URL 'ftp://rules.example.net/b': the scheme must be https://"},
        {"rules:\n  url: https:///b\n",
         "test.yaml:5:8: rules.url: invalid URL 'https:///b': expected a host"},
        {"rules:\n  refresh: 1s\n", "test.yaml:5:12: rules.refresh:"},
        {"rules:\n  refresh: 2d\n", "test.yaml:5:12: rules.refresh:"},
        {"rules:\n  ca_file: ca.pem\n", "test.yaml:5:12: rules.ca_file: must be an absolute file path"},
        {"rules:\n  max_size: 100\n", "test.yaml:5:13: rules.max_size: invalid size '100' (1KiB .. 64MiB"},
        {"rules:\n  max_size: 65MiB\n", "test.yaml:5:13: rules.max_size: invalid size '65MiB'"},
        {"rules:\n  max_size: lots\n", "test.yaml:5:13: rules.max_size: invalid size 'lots'"},
        {"rules:\n  bundel: /x\n", "test.yaml:5:3: rules.bundel: unknown key"},
        {"rules: /etc/x.bundle\n", "test.yaml:4:8: rules:"},
    };
    for (const auto& c : cases) {
        const std::string err = error_of(c.tail);
        EXPECT_EQ(err.rfind(c.error, 0), 0u) << "input:\n" << c.tail << "got:\n" << err;
    }
}

// ---- checks before a load -----------------------------------------------------------------

Bundle bundle_of(uint64_t version, uint64_t hash) {
    Bundle b;
    b.version = version;
    b.hash = hash;
    return b;
}

TEST(RulesCheck, VersionMustGrow) {
    const Bundle five = bundle_of(5, 0xabc);
    EXPECT_EQ(version_refusal(nullptr, bundle_of(1, 1)), "");
    EXPECT_EQ(version_refusal(&five, bundle_of(6, 1)), "");
    EXPECT_EQ(version_refusal(&five, bundle_of(5, 0xabc)),
              "bundle version 5 (hash 0000000000000abc) is not newer than the active version 5 (hash "
              "0000000000000abc)");
    EXPECT_NE(version_refusal(&five, bundle_of(5, 0xdef)), ""); // same version, other tables
    EXPECT_NE(version_refusal(&five, bundle_of(4, 1)), "");
    EXPECT_NE(version_refusal(&five, bundle_of(1, 1)), "");
}

TEST(RulesCheck, Size) {
    EXPECT_EQ(size_refusal(1024, 1024), "");
    EXPECT_EQ(size_refusal(0, 1024), "");
    EXPECT_EQ(size_refusal(1025, 1024), "bundle is 1025 bytes, more than rules.max_size (1024 bytes)");
}

// ---- class totals in the collector --------------------------------------------------------

class ClassMaps : public MapReader {
public:
    IfaceSnapshot ifaces;
    std::vector<ClassEntry> classes;
    // Packets the "kernel" adds to a class between the collector's two class reads: the next
    // read_classes() after the interface totals sees them (a packet in flight at the poll).
    std::vector<ClassEntry> in_flight;
    int reads = 0;

    IfaceSnapshot read_ifaces() override { return ifaces; }
    void read_flows(std::vector<FlowEntry>& out) override { out.clear(); }
    std::vector<HostEntry> read_hosts() override { return {}; }
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>&) override { return {}; }
    std::map<IfaceKey, EvictedSums> read_evicted() override { return {}; }
    void write_evicted(const IfaceKey&, const EvictedSums&) override {}
    std::vector<ClassEntry> read_classes() override {
        reads++;
        return classes;
    }

    // A packet of `c` on ifindex/dir in class id: the interface total and the class, as the
    // programs count it.
    void count(uint32_t ifindex, uint8_t dir, uint32_t id, const Counts& c, bool classified = true) {
        ifaces[{ifindex, dir}].total += c;
        if (!classified)
            return;
        for (auto& e : classes)
            if (e.key.ifindex == ifindex && e.key.dir == dir && e.key.class_id == id) {
                e.counts += c;
                return;
            }
        ClassEntry e;
        e.key.ifindex = ifindex;
        e.key.dir = dir;
        e.key.class_id = id;
        e.counts = c;
        classes.push_back(e);
    }
};

const Counts kPkt(1, 100, 86, 66, 40);

struct ClassFixture : ::testing::Test {
    ClassMaps maps;
    Collector col{maps};
    std::vector<std::string> violations;

    void SetUp() override {
        col.set_interfaces({{"lan0", "lan", 3, false, false}});
        // The flow line (total == flows + buckets) breaks here: these maps hold no flows.
        col.on_violation([this](const std::string& m) {
            if (m.rfind("classes: ", 0) == 0)
                violations.push_back(m);
        });
    }
    const ClassTotals* find(uint32_t id, uint8_t dir = NT_DIR_INGRESS) const {
        for (const auto& [key, c] : col.classes())
            if (c.id == id && c.dir == dir && c.interface == "lan0")
                return &c;
        return nullptr;
    }
};

TEST_F(ClassFixture, TotalsNamesAndGone) {
    col.set_classes({{0, "other"}, {40, "dns"}, {50, "web"}});
    col.classes_started();
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    maps.count(3, NT_DIR_INGRESS, 50, kPkt);
    col.poll({1, 1});
    ASSERT_NE(find(40), nullptr);
    EXPECT_EQ(find(40)->name, "dns");
    EXPECT_FALSE(find(40)->gone);
    EXPECT_EQ(find(40)->counts.total(), kPkt);

    // A new ruleset without dns: its totals stay, marked gone; web goes on.
    col.set_classes({{0, "other"}, {50, "web"}, {60, "voip"}});
    maps.count(3, NT_DIR_INGRESS, 50, kPkt);
    col.poll({2, 2});
    EXPECT_TRUE(find(40)->gone);
    EXPECT_EQ(find(40)->name, "dns");
    EXPECT_EQ(find(40)->counts.total(), kPkt);
    EXPECT_FALSE(find(50)->gone);
    EXPECT_EQ(find(50)->counts.total(), kPkt + kPkt);

    // Back to a ruleset with dns (a rollback): no longer gone, the totals continue.
    col.set_classes({{0, "other"}, {40, "dns"}, {50, "web"}});
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    col.poll({3, 3});
    EXPECT_FALSE(find(40)->gone);
    EXPECT_EQ(find(40)->counts.total(), kPkt + kPkt);
    EXPECT_TRUE(violations.empty());
}

// A flow's class named by the collector: nothing without a ruleset; the version of the load whose
// serial the flow carries; the active version for an unknown serial or an unclassified flow; a
// gone class keeps its last name.
TEST_F(ClassFixture, FlowClassNamesAndVersions) {
    FlowEntry f;
    f.cls_id = 40;
    f.cls_serial = 1000;
    EXPECT_FALSE(col.flow_class(f).classified) << "no ruleset";
    EXPECT_EQ(col.flow_class(f).name, "");
    EXPECT_EQ(col.flow_class(f).version, 0u);
    EXPECT_EQ(col.rules_version(), 0u);

    col.set_classes({{0, "other"}, {40, "dns"}, {50, "web"}}, 3, 1000);
    EXPECT_EQ(col.rules_version(), 3u);
    auto c = col.flow_class(f);
    EXPECT_TRUE(c.classified);
    EXPECT_EQ(c.id, 40u);
    EXPECT_EQ(c.name, "dns");
    EXPECT_EQ(c.version, 3u);

    // Version 4 drops dns; the flow's last packet was classified under version 3.
    col.set_classes({{0, "other"}, {50, "web"}}, 4, 1001);
    c = col.flow_class(f);
    EXPECT_EQ(c.name, "dns");
    EXPECT_EQ(c.version, 3u);
    f.cls_id = 50;
    f.cls_serial = 1001;
    EXPECT_EQ(col.flow_class(f).name, "web");
    EXPECT_EQ(col.flow_class(f).version, 4u);
    // The same version loaded again (interfaces changed): a new serial, the same version.
    col.set_classes({{0, "other"}, {50, "web"}}, 4, 1002);
    EXPECT_EQ(col.flow_class(f).version, 4u);
    f.cls_serial = 77; // from before a restart
    EXPECT_EQ(col.flow_class(f).version, 4u);
    f.cls_id = 99;
    EXPECT_EQ(col.flow_class(f).name, "class 99");
    f.cls_serial = 0;
    c = col.flow_class(f);
    EXPECT_FALSE(c.classified) << "no packet classified";
    EXPECT_EQ(c.name, "");
    EXPECT_EQ(c.version, 4u);
    col.set_classes({});
    EXPECT_EQ(col.rules_version(), 0u);
}

TEST_F(ClassFixture, ReconciliationHoldsAndCatchesALostPacket) {
    // Traffic before any ruleset: counted in the interface total only (the offset).
    maps.count(3, NT_DIR_INGRESS, 0, kPkt, false);
    col.poll({1, 1});
    col.set_classes({{0, "other"}, {40, "dns"}});
    col.classes_started();
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    col.poll({2, 2}); // captures the offset
    EXPECT_EQ(col.stats().class_reconcile_checks, 0u);
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    maps.count(3, NT_DIR_INGRESS, 0, kPkt);
    col.poll({3, 3});
    EXPECT_EQ(col.stats().class_reconcile_checks, 1u);
    EXPECT_EQ(col.stats().class_reconcile_exact, 1u);
    EXPECT_TRUE(violations.empty());

    // A packet in the interface total but in no class: the line breaks.
    maps.count(3, NT_DIR_INGRESS, 40, kPkt, false);
    col.poll({4, 4});
    EXPECT_EQ(col.stats().class_reconcile_violations, 1u);
    ASSERT_EQ(violations.size(), 1u);
    EXPECT_NE(violations[0].find("classes: ifindex 3 ingress"), std::string::npos) << violations[0];
}

TEST_F(ClassFixture, NoRulesetNoCheck) {
    maps.count(3, NT_DIR_INGRESS, 0, kPkt, false);
    col.poll({1, 1});
    col.poll({2, 2});
    EXPECT_EQ(col.stats().class_reconcile_checks, 0u);
    EXPECT_TRUE(col.classes().empty());
}

// History per class: one subject per class, interface and direction, kept by the class's id (a
// renamed class continues; its past traffic is not recorded again under the new name).
TEST_F(ClassFixture, HistoryPerClassAndDirection) {
    col.set_interfaces({{"lan0", "lan", 3, false, false}, {"wan0", "wan", 4, false, false}});
    col.set_classes({{0, "other"}, {40, "dns"}, {50, "web"}});
    col.classes_started();
    HistoryFeed feed{History(PeriodSpec{})};
    const int64_t t0 = 1'800'000'000'000'000;
    col.poll({1, 1});
    feed.feed(col, t0);
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    maps.count(4, NT_DIR_EGRESS, 40, kPkt);
    maps.count(3, NT_DIR_EGRESS, 50, kPkt + kPkt);
    col.poll({2, 2});
    feed.feed(col, t0 + 1'000'000);
    col.set_classes({{0, "other"}, {40, "names"}, {50, "web"}});
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    col.poll({3, 3});
    feed.feed(col, t0 + 2'000'000);
    std::map<std::string, Counts> sum;
    for (const auto& p : feed.history().periods(PeriodKind::Day))
        for (const auto& [subject, c] : p.totals)
            if (subject.starts_with("class:"))
                sum[subject] += c;
    const std::map<std::string, Counts> want{{"class:dns@lan0:ingress", kPkt},
                                             {"class:dns@wan0:egress", kPkt},
                                             {"class:names@lan0:ingress", kPkt},
                                             {"class:web@lan0:egress", kPkt + kPkt}};
    EXPECT_EQ(sum, want);
}

// A class as a threshold subject: "NAME" on the lan interfaces (sent = lan ingress), "NAME@IFACE"
// in that interface's terms (sent = egress); unknown classes and interfaces are refused.
TEST_F(ClassFixture, ThresholdUsagePerClass) {
    col.set_interfaces({{"lan0", "lan", 3, false, false}, {"wan0", "wan", 4, false, false}});
    const LedgerUsage usage(col, nullptr);
    const Subject web{SubjectKind::Class, "web"};
    EXPECT_NE(usage.check(web, UsageLayer::L3).find("no traffic classes are active"), std::string::npos);
    col.set_classes({{0, "other"}, {40, "dns"}, {50, "web"}});
    col.classes_started();
    maps.count(3, NT_DIR_INGRESS, 50, kPkt);       // from a lan host
    maps.count(3, NT_DIR_EGRESS, 50, kPkt + kPkt); // to it
    maps.count(4, NT_DIR_EGRESS, 50, kPkt);        // the same upload leaving on wan
    maps.count(4, NT_DIR_INGRESS, 40, kPkt);
    col.poll({1, 1});
    EXPECT_EQ(usage.check(web, UsageLayer::L3), "");
    EXPECT_EQ(usage.total(web, UsageDirection::Sent), kPkt);
    EXPECT_EQ(usage.total(web, UsageDirection::Received), kPkt + kPkt);
    EXPECT_EQ(usage.total(web, UsageDirection::Both), kPkt + kPkt + kPkt);
    const Subject web_wan{SubjectKind::Class, "web@wan0"};
    EXPECT_EQ(usage.check(web_wan, UsageLayer::L3), "");
    EXPECT_EQ(usage.total(web_wan, UsageDirection::Sent), kPkt);
    EXPECT_EQ(usage.total(web_wan, UsageDirection::Received), Counts{});
    EXPECT_EQ(usage.total(Subject{SubjectKind::Class, "dns"}, UsageDirection::Both), Counts{});
    EXPECT_EQ(usage.total(Subject{SubjectKind::Class, "dns@wan0"}, UsageDirection::Received), kPkt);
    EXPECT_NE(usage.check(Subject{SubjectKind::Class, "voip"}, UsageLayer::L3)
                  .find("unknown class 'voip' (active: other, dns, web)"),
              std::string::npos);
    EXPECT_NE(
        usage.check(Subject{SubjectKind::Class, "web@eth9"}, UsageLayer::L3).find("unknown interface 'eth9'"),
        std::string::npos);
    Collector wan_only{maps};
    wan_only.set_interfaces({{"wan0", "wan", 4, false, false}});
    wan_only.set_classes({{0, "other"}, {50, "web"}});
    EXPECT_NE(LedgerUsage(wan_only, nullptr).check(web, UsageLayer::L3).find("name the interface: web@IFACE"),
              std::string::npos);
}

TEST(ThresholdDefs, ClassSubjects) {
    for (const std::string ok : {"web", "web@lan0", "iptv.multicast@br-lan"}) {
        ThresholdDef d = parse_threshold({{"name", std::string("q")},
                                          {"subject_kind", std::string("class")},
                                          {"subject", ok},
                                          {"step", uint64_t{1000}}});
        EXPECT_EQ(d.subject.kind, SubjectKind::Class);
        EXPECT_EQ(d.subject.value, ok);
    }
    for (const std::string bad : {"Web", "web@", "web@a/b", "@lan0", "web@lan0@x", ""}) {
        EXPECT_THROW(parse_threshold({{"name", std::string("q")},
                                      {"subject_kind", std::string("class")},
                                      {"subject", bad},
                                      {"step", uint64_t{1000}}}),
                     ThresholdError)
            << bad;
    }
}

TEST(ReconcileClasses, Outcomes) {
    const Counts two = kPkt + kPkt;
    ClassReconcileInput in;
    in.offset = kPkt;
    in.total = kPkt + two;
    in.classes_low = two;
    in.classes_high = two;
    EXPECT_EQ(reconcile_classes(in), ReconcileOutcome::Exact);
    in.classes_low = kPkt; // a packet moved between the reads: bracketed
    EXPECT_EQ(reconcile_classes(in), ReconcileOutcome::Bracketed);
    in.classes_low = two + kPkt; // more in the classes than the total ever had
    in.classes_high = two + kPkt;
    EXPECT_EQ(reconcile_classes(in), ReconcileOutcome::Violated);
    in.offset = two + two; // more offset than total
    EXPECT_EQ(reconcile_classes(in), ReconcileOutcome::Violated);
}

TEST_F(ClassFixture, RestoreContinuesExactlyAndKeepsGone) {
    col.set_classes({{0, "other"}, {40, "dns"}});
    col.classes_started();
    maps.count(3, NT_DIR_INGRESS, 40, kPkt);
    col.poll({1, 1});
    col.set_classes({{0, "other"}});
    maps.count(3, NT_DIR_INGRESS, 0, kPkt);
    col.poll({2, 2});
    const nlohmann::json saved = col.to_json();

    // Same kernel counters (pins reused): the totals continue from the raw readings, and
    // packets counted while the daemon was down are in them.
    maps.count(3, NT_DIR_INGRESS, 0, kPkt);
    Collector again(maps);
    again.set_interfaces({{"lan0", "lan", 3, false, false}});
    again.restore(saved, true);
    again.set_classes({{0, "other"}});
    again.poll({3, 3});
    const ClassTotals* dns = nullptr;
    const ClassTotals* other = nullptr;
    for (const auto& [key, c] : again.classes())
        (c.id == 40 ? dns : other) = &c;
    ASSERT_NE(dns, nullptr);
    ASSERT_NE(other, nullptr);
    EXPECT_TRUE(dns->gone);
    EXPECT_EQ(dns->counts.total(), kPkt);
    EXPECT_EQ(other->counts.total(), kPkt + kPkt);
    EXPECT_EQ(again.stats().class_reconcile_violations, 0u);
    EXPECT_EQ(again.stats().class_reconcile_exact, 1u); // the saved offset holds across the restart

    // New counters (a reboot): the totals go on from the saved ones.
    ClassMaps fresh;
    Collector rebooted(fresh);
    rebooted.set_interfaces({{"lan0", "lan", 3, false, false}});
    rebooted.restore(saved, false);
    rebooted.set_classes({{0, "other"}});
    fresh.count(3, NT_DIR_INGRESS, 0, kPkt);
    rebooted.poll({4, 4});
    for (const auto& [key, c] : rebooted.classes())
        EXPECT_EQ(c.counts.total(), c.id == 40 ? kPkt : kPkt + kPkt) << c.id;
}

TEST_F(ClassFixture, RenamedInterfaceTakesItsClasses) {
    col.set_classes({{0, "other"}});
    maps.count(3, NT_DIR_INGRESS, 0, kPkt);
    col.poll({1, 1});
    col.set_interfaces({{"lan9", "lan", 3, false, false}});
    ASSERT_EQ(col.classes().size(), 1u);
    EXPECT_EQ(col.classes().begin()->second.interface, "lan9");
}

} // namespace
} // namespace nettally
