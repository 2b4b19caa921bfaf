// The thresholds engine (core/thresholds.h) against a scripted usage source and a fake
// enforcer: steps, limit, burst, rate, rollover, rolling windows, validation, persistence,
// and when actions are applied and lifted.
#include "core/config.h"
#include "core/thresholds.h"
#include "core/thresholds_alerts.h"
#include "core/units.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <map>

namespace nettally {
namespace {

constexpr int64_t kS = 1000000;
// 2026-03-10 12:00:00 UTC
constexpr int64_t kT0 = 1773144000LL * kS;

struct FakeUsage : UsageSource {
    std::map<std::string, Counts> sent, received;
    std::vector<std::pair<FlowEntry, std::string>> flows;
    std::string refuse;

    std::optional<Counts> total(const Subject& s, UsageDirection d) const override {
        auto a = sent.find(s.value), b = received.find(s.value);
        if (a == sent.end() && b == received.end())
            return std::nullopt;
        Counts c;
        if (d != UsageDirection::Received && a != sent.end())
            c += a->second;
        if (d != UsageDirection::Sent && b != received.end())
            c += b->second;
        return c;
    }
    void for_each_flow(const std::function<void(const FlowEntry&, const std::string&)>& fn) const override {
        for (const auto& [f, i] : flows)
            fn(f, i);
    }
    std::string check(const Subject&, UsageLayer) const override { return refuse; }
    void add_sent(const std::string& who, uint64_t l3) {
        sent[who] += Counts(1, l3 + 14, l3, l3 - 20, l3 - 40);
    }
};

struct FakeEnforcer : ActionEnforcer {
    std::vector<std::string> log;
    std::map<std::string, ActionKind> on;
    bool fail = false;
    std::string check(const Subject&, ActionKind a, uint64_t) const override {
        return a == ActionKind::Block && fail ? "cannot block here" : "";
    }
    void apply(const std::string& id, const Subject&, ActionKind a, uint64_t) override {
        if (fail)
            throw std::runtime_error("kernel said no");
        log.push_back("apply " + id);
        on[id] = a;
    }
    void lift(const std::string& id) override {
        if (on.erase(id))
            log.push_back("lift " + id);
    }
    std::vector<std::string> active() const override {
        std::vector<std::string> v;
        for (const auto& [k, a] : on)
            v.push_back(k);
        return v;
    }
};

ThresholdDef def(const FieldMap& extra) {
    FieldMap f = {{"name", std::string("q")},
                  {"subject_kind", std::string("host")},
                  {"subject", std::string("198.18.1.2")},
                  {"direction", std::string("sent")},
                  {"period", std::string("since")},
                  {"step", std::string("1MB")}};
    for (const auto& [k, v] : extra)
        f[k] = v;
    return parse_threshold(f);
}

using K = ThresholdEvent::Kind;

std::vector<K> kinds(const std::vector<ThresholdEvent>& ev) {
    std::vector<K> k;
    for (const auto& e : ev)
        k.push_back(e.kind);
    return k;
}

size_t count(const std::vector<ThresholdEvent>& ev, K k) {
    return static_cast<size_t>(
        std::count_if(ev.begin(), ev.end(), [&](const auto& e) { return e.kind == k; }));
}

struct Thresholds : ::testing::Test {
    FakeUsage src;
    FakeEnforcer enf;
    ThresholdEngine eng{PeriodSpec{}, enf};
};

TEST(ThresholdSizes, ParseAndFormat) {
    EXPECT_EQ(parse_size("1MB"), 1000000u);
    EXPECT_EQ(parse_size("1MiB"), 1048576u);
    EXPECT_EQ(parse_size("5GB"), 5000000000u);
    EXPECT_EQ(parse_size("1.5kB"), 1500u);
    EXPECT_EQ(parse_size("0.5KiB"), 512u);
    EXPECT_EQ(parse_size("1234"), 1234u);
    EXPECT_EQ(parse_size("12B"), 12u);
    EXPECT_FALSE(parse_size("1.0001kB")); // not a whole byte
    EXPECT_FALSE(parse_size("-1MB"));
    EXPECT_FALSE(parse_size("1 MB"));
    EXPECT_FALSE(parse_size("1mb"));
    EXPECT_FALSE(parse_size("MB"));
    EXPECT_FALSE(parse_size("99999999999999999999"));
    EXPECT_FALSE(parse_size("20000000TB"));
    // The short binary units the records and upload keys use ("64M", "1G").
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("512K"), 512u << 10);
    EXPECT_EQ(parse_size("100M"), 100ull << 20);
    EXPECT_EQ(parse_size("2G"), 2ull << 30);
    EXPECT_EQ(parse_size("1.5M"), 3ull << 19);
    EXPECT_FALSE(parse_size("99999999999T"));
    EXPECT_FALSE(parse_size("2g"));
    EXPECT_EQ(format_size(5000000), "5 MB");
    EXPECT_EQ(format_size(1048576), "1 MiB");
    EXPECT_EQ(format_size(1001), "1001 B");
}

TEST(ThresholdDefs, ValidationTable) {
    struct Case {
        FieldMap fields;
        std::string error; // prefix of what()
    };
    const std::vector<Case> cases = {
        {{{"step", uint64_t{0}}}, "step: must be greater than 0"},
        {{{"step", int64_t{-5}}}, "step: must not be negative"},
        {{{"step", std::string("-5")}}, "step: must not be negative"},
        {{{"step", std::string("lots")}}, "step: expected a size"},
        {{{"step", std::string("2MB")}, {"limit", std::string("1MB")}},
         "step: step 2 MB is larger than the limit 1 MB"},
        {{{"rate_bps", std::string("fast")}}, "rate_bps: expected a size"},
        {{{"rate_window_s", uint64_t{0}}}, "rate_window_s: must be 1 .. 3600"},
        {{{"min_interval_ms", std::string("soon")}}, "min_interval_ms: expected milliseconds"},
        {{{"subject", std::string("300.1.1.1")}}, "subject: a host is a MAC"},
        {{{"subject_kind", std::string("router")}}, "subject_kind: unknown value 'router'"},
        {{{"direction", std::string("up")}}, "direction: unknown value"},
        {{{"layer", std::string("l7")}}, "layer: unknown value"},
        {{{"period", std::string("rolling")}}, "window_s: required for period rolling"},
        {{{"window_s", uint64_t{60}}}, "window_s: only for period rolling"},
        {{{"action", std::string("throttle")}, {"limit", std::string("5MB")}},
         "action_rate: throttle needs a rate"},
        {{{"action", std::string("block")}}, "action: acting on the limit needs a limit"},
        {{{"action", std::string("block")}, {"action_on", std::string("burst")}}, "action_on: burst needs"},
        {{{"action_rate", uint64_t{5}}}, "action_rate: only for action throttle"},
        {{{"colour", std::string("red")}}, "colour: unknown key"},
        {{{"name", std::string("a b")}}, "name: 1..64 characters"},
        {{{"name", uint64_t{7}}}, "name: expected a text value"},
        {{{"subject_kind", std::string("flow")}, {"subject", std::string("proto=tcp,dport=70000")}},
         "subject: dport=70000: a port is 0..65535"},
        {{{"subject_kind", std::string("flow")}, {"subject", std::string("colour=red")}},
         "subject: unknown flow filter key"},
        {{{"subject_kind", std::string("cgroup")},
          {"subject", std::string("/a")},
          {"layer", std::string("l2")}},
         "layer: cgroups are counted from the IP header"},
        {{{"subject_kind", std::string("user")}, {"subject", std::string("al ice")}},
         "subject: not a user name: 'al ice'"},
        {{{"subject_kind", std::string("user")}, {"subject", std::string("")}}, "subject: not a user name"},
    };
    for (const auto& c : cases) {
        try {
            def(c.fields);
            ADD_FAILURE() << "accepted; expected " << c.error;
        } catch (const ThresholdError& e) {
            EXPECT_EQ(std::string(e.what()).substr(0, c.error.size()), c.error) << e.what();
        }
    }
    EXPECT_THROW(parse_threshold({{"subject_kind", std::string("host")}}), ThresholdError); // no name
}

TEST(ThresholdDefs, CanonicalAndRoundTrip) {
    const ThresholdDef d = def({{"subject", std::string("FD00:1:0::2")},
                                {"limit", std::string("5MB")},
                                {"min_interval_ms", std::string("800ms")},
                                {"rate_bps", std::string("500kB")},
                                {"action", std::string("throttle")},
                                {"action_rate", std::string("1MiB")}});
    EXPECT_EQ(d.subject.value, "fd00:1::2");
    EXPECT_EQ(d.min_interval_ms, 800u);
    EXPECT_EQ(d.rate_bps, 500000u);
    EXPECT_EQ(d.action_rate, 1048576u);
    EXPECT_EQ(parse_threshold(threshold_fields(d)), d);
    const ThresholdDef user =
        def({{"subject_kind", std::string("user")}, {"subject", std::string("alice@isp")}});
    EXPECT_EQ(user.subject, (Subject{SubjectKind::User, "alice@isp"}));
    EXPECT_EQ(parse_threshold(threshold_fields(user)), user);
    const ThresholdDef mac = def({{"subject", std::string("02:00:C6:12:01:02")}});
    EXPECT_EQ(mac.subject.value, "02:00:c6:12:01:02");
    // Modify: switching away from throttle drops action_rate.
    const ThresholdDef m = parse_threshold({{"action", std::string("notify")}}, &d);
    EXPECT_EQ(m.action, ActionKind::Notify);
    EXPECT_EQ(m.action_rate, 0u);
}

TEST(FlowFilters, Match) {
    const FlowFilter f = FlowFilter::parse("iface=wan0,proto=tcp,net=198.18.2.0/24,port=443");
    FlowEntry e;
    e.key.family = NT_AF_INET;
    e.key.proto = 6;
    e.key.src[0] = htonl(0xC6120105); // 198.18.1.5
    e.key.dst[0] = htonl(0xC6120202); // 198.18.2.2
    e.key.sport = 40000;
    e.key.dport = 443;
    EXPECT_TRUE(f.matches(e, "wan0"));
    EXPECT_FALSE(f.matches(e, "lan0"));
    e.key.dport = 80;
    EXPECT_FALSE(f.matches(e, "wan0"));
    e.key.sport = 443;
    EXPECT_TRUE(f.matches(e, "wan0"));
    e.key.dst[0] = htonl(0xC6120302);
    EXPECT_FALSE(f.matches(e, "wan0"));
    EXPECT_THROW(FlowFilter::parse("proto=tcp,proto=udp"), ThresholdError);
    EXPECT_THROW(FlowFilter::parse("net=198.18.0.0/33"), ThresholdError);
    EXPECT_THROW(FlowFilter::parse(""), ThresholdError);
}

TEST_F(Thresholds, StepsAndOneLimitCountFromWhenSet) {
    src.add_sent("198.18.1.2", 50'000'000); // lifetime traffic before the threshold: never counts
    eng.add(def({{"limit", std::string("5MB")}}), src, kT0);
    eng.observe(src, kT0 + kS);
    EXPECT_TRUE(eng.take_events().empty());
    src.add_sent("198.18.1.2", 2'500'000);
    eng.observe(src, kT0 + 2 * kS);
    auto ev = eng.take_events();
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed, K::StepCrossed}));
    EXPECT_EQ(ev[0].step_index, 1u);
    EXPECT_EQ(ev[1].step_index, 2u);
    EXPECT_EQ(ev[1].usage, 2'500'000u);
    EXPECT_EQ(ev[0].subject, "host:198.18.1.2");
    src.add_sent("198.18.1.2", 3'600'000);
    eng.observe(src, kT0 + 3 * kS);
    ev = eng.take_events();
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed, K::StepCrossed, K::StepCrossed, K::StepCrossed,
                                         K::LimitReached}));
    EXPECT_EQ(ev[0].step_index, 3u);
    EXPECT_EQ(ev[3].step_index, 6u);
    EXPECT_EQ(ev[4].value, 5'000'000u);
    EXPECT_EQ(ev[4].usage, 6'100'000u);
    src.add_sent("198.18.1.2", 1'000'000);
    eng.observe(src, kT0 + 4 * kS);
    ev = eng.take_events();
    EXPECT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed})) << "the limit is signalled once per period";
    EXPECT_EQ(eng.find("q")->st.usage, 7'100'000u);
    EXPECT_TRUE(enf.log.empty()) << "notify never touches the kernel";
}

TEST_F(Thresholds, ReceivedAndBothDirections) {
    eng.add(def({{"name", std::string("r")}, {"direction", std::string("received")}}), src, kT0);
    eng.add(def({{"name", std::string("b")}, {"direction", std::string("both")}}), src, kT0);
    src.add_sent("198.18.1.2", 700'000);
    src.received["198.18.1.2"] += Counts(1, 0, 600'000, 0, 0);
    eng.observe(src, kT0 + kS);
    EXPECT_EQ(eng.find("r")->st.usage, 600'000u);
    EXPECT_EQ(eng.find("b")->st.usage, 1'300'000u);
    EXPECT_EQ(count(eng.take_events(), K::StepCrossed), 1u);
}

TEST_F(Thresholds, ManyStepsInOnePollAreCapped) {
    eng.add(def({{"step", uint64_t{1000}}}), src, kT0);
    src.add_sent("198.18.1.2", 1000 * (ThresholdEngine::kMaxStepEvents + 50));
    eng.observe(src, kT0 + kS);
    auto ev = eng.take_events();
    ASSERT_EQ(ev.size(), ThresholdEngine::kMaxStepEvents);
    EXPECT_EQ(ev.front().value2, 50u) << "the first one says how many were skipped";
    EXPECT_EQ(ev.front().step_index, 51u);
    EXPECT_EQ(ev.back().step_index, ThresholdEngine::kMaxStepEvents + 50);
}

TEST_F(Thresholds, FastStepsAreBurstsSlowOnesAreNot) {
    eng.add(def({{"step", std::string("200kB")}, {"min_interval_ms", uint64_t{800}}}), src, kT0);
    // 1 MB within one 200 ms poll: 5 steps, interpolated 40 ms apart: 4 bursts.
    src.add_sent("198.18.1.2", 1'000'000);
    eng.observe(src, kT0 + kS / 5);
    auto ev = eng.take_events();
    EXPECT_EQ(count(ev, K::StepCrossed), 5u);
    ASSERT_EQ(count(ev, K::Burst), 4u);
    for (const auto& e : ev)
        if (e.kind == K::Burst) {
            EXPECT_EQ(e.value, 40u);
            EXPECT_EQ(e.value2, 800u);
        }
    // Then one step per second: no burst.
    for (int i = 1; i <= 5; ++i) {
        src.add_sent("198.18.1.2", 200'000);
        eng.observe(src, kT0 + kS / 5 + i * kS);
    }
    ev = eng.take_events();
    EXPECT_EQ(count(ev, K::StepCrossed), 5u);
    EXPECT_EQ(count(ev, K::Burst), 0u);
}

TEST_F(Thresholds, RateOverSlidingWindowOncePerExcursion) {
    eng.add(def({{"step", std::string("1GB")},
                 {"rate_bps", std::string("100kB")},
                 {"rate_window_s", uint64_t{2}}}),
            src, kT0);
    int64_t t = kT0;
    auto tick = [&](uint64_t bytes) {
        t += kS / 2;
        src.add_sent("198.18.1.2", bytes);
        eng.observe(src, t);
        return eng.take_events();
    };
    for (int i = 0; i < 6; ++i)
        EXPECT_TRUE(tick(40'000).empty()) << "80 kB/s is below 100 kB/s";
    auto ev = tick(200'000); // window: 40+40+40+200 kB over 2 s = 160 kB/s
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::RateExceeded}));
    EXPECT_EQ(ev[0].value, 160'000u);
    EXPECT_EQ(ev[0].value2, 100'000u);
    EXPECT_TRUE(tick(100'000).empty()) << "still above: no second signal";
    for (int i = 0; i < 4; ++i)
        tick(0);
    EXPECT_EQ(eng.find("q")->rate_now(), 0u);
    EXPECT_EQ(kinds(tick(400'000)), (std::vector<K>{K::RateExceeded})) << "a new excursion";
}

TEST_F(Thresholds, DayRolloverRestartsUsageAndLiftsTheAction) {
    eng.add(def({{"period", std::string("day")},
                 {"limit", std::string("2MB")},
                 {"action", std::string("block")}}),
            src, kT0);
    EXPECT_EQ(eng.find("q")->st.period_end_us, kT0 + 12 * 3600 * kS);
    src.add_sent("198.18.1.2", 2'000'000);
    eng.observe(src, kT0 + kS);
    auto ev = eng.take_events();
    EXPECT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed, K::StepCrossed, K::LimitReached, K::ActionApplied}));
    EXPECT_EQ(enf.active(), std::vector<std::string>{"q"});
    // Next day (UTC midnight): usage restarts with what came after the last poll.
    src.add_sent("198.18.1.2", 300'000);
    eng.observe(src, kT0 + 12 * 3600 * kS + kS);
    ev = eng.take_events();
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::ActionLifted}));
    EXPECT_EQ(ev[0].reason, "rollover");
    EXPECT_TRUE(enf.active().empty());
    EXPECT_EQ(eng.find("q")->st.usage, 300'000u);
    EXPECT_EQ(eng.find("q")->st.step_index, 0u);
    EXPECT_EQ(eng.find("q")->st.period_start_us, kT0 + 12 * 3600 * kS);
}

TEST_F(Thresholds, RollingWindowGoesDownAndSignalsAgain) {
    eng.add(def({{"period", std::string("rolling")},
                 {"window_s", std::string("10s")},
                 {"limit", std::string("3MB")}}),
            src, kT0);
    src.add_sent("198.18.1.2", 3'000'000);
    eng.observe(src, kT0 + kS);
    EXPECT_EQ(count(eng.take_events(), K::LimitReached), 1u);
    for (int i = 2; i <= 12; ++i)
        eng.observe(src, kT0 + i * kS);
    EXPECT_EQ(eng.find("q")->st.usage, 0u) << "the traffic left the window";
    EXPECT_FALSE(eng.find("q")->st.limit_reached);
    eng.take_events();
    src.add_sent("198.18.1.2", 3'000'000);
    eng.observe(src, kT0 + 13 * kS);
    auto ev = eng.take_events();
    EXPECT_EQ(count(ev, K::StepCrossed), 3u);
    EXPECT_EQ(count(ev, K::LimitReached), 1u);
}

TEST_F(Thresholds, ResetAndRemoveLiftTheAction) {
    eng.add(def({{"limit", std::string("1MB")},
                 {"action", std::string("throttle")},
                 {"action_rate", uint64_t{1000}}}),
            src, kT0);
    src.add_sent("198.18.1.2", 1'000'000);
    eng.observe(src, kT0 + kS);
    EXPECT_EQ(enf.log, (std::vector<std::string>{"apply q"}));
    eng.take_events();
    eng.reset("q", src, kT0 + 2 * kS);
    EXPECT_EQ(kinds(eng.take_events()), (std::vector<K>{K::ActionLifted}));
    EXPECT_EQ(eng.find("q")->st.usage, 0u);
    src.add_sent("198.18.1.2", 1'000'000);
    eng.observe(src, kT0 + 3 * kS);
    EXPECT_EQ(count(eng.take_events(), K::LimitReached), 1u) << "a reset period signals again";
    eng.remove("q");
    EXPECT_EQ(enf.log, (std::vector<std::string>{"apply q", "lift q", "apply q", "lift q"}));
    EXPECT_EQ(eng.find("q"), nullptr);
    EXPECT_THROW(eng.remove("q"), ThresholdError);
}

TEST_F(Thresholds, BurstCanTriggerTheAction) {
    eng.add(def({{"step", std::string("100kB")},
                 {"min_interval_ms", uint64_t{1000}},
                 {"action", std::string("block")},
                 {"action_on", std::string("burst")}}),
            src, kT0);
    src.add_sent("198.18.1.2", 250'000);
    eng.observe(src, kT0 + kS);
    auto ev = eng.take_events();
    EXPECT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed, K::StepCrossed, K::Burst, K::ActionApplied}));
    EXPECT_EQ(ev.back().reason, "burst");
}

TEST_F(Thresholds, FailedActionIsReportedAndCountingGoesOn) {
    eng.add(def({{"limit", std::string("1MB")},
                 {"action", std::string("throttle")},
                 {"action_rate", uint64_t{10}}}),
            src, kT0);
    enf.fail = true;
    src.add_sent("198.18.1.2", 1'500'000);
    eng.observe(src, kT0 + kS);
    auto ev = eng.take_events();
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed, K::LimitReached, K::ActionFailed}));
    EXPECT_NE(ev.back().reason.find("kernel said no"), std::string::npos);
    EXPECT_FALSE(eng.find("q")->st.action_active);
}

TEST_F(Thresholds, RefusedRequestsChangeNothing) {
    eng.add(def({}), src, kT0);
    EXPECT_THROW(eng.add(def({}), src, kT0), ThresholdError) << "duplicate name";
    src.refuse = "unknown interface 'eth9'";
    try {
        eng.add(def({{"name", std::string("x")}}), src, kT0);
        ADD_FAILURE();
    } catch (const ThresholdError& e) {
        EXPECT_STREQ(e.what(), "subject: unknown interface 'eth9'");
    }
    src.refuse = "";
    enf.fail = true;
    EXPECT_THROW(eng.add(def({{"name", std::string("x")},
                              {"limit", std::string("1MB")},
                              {"action", std::string("block")}}),
                         src, kT0),
                 ThresholdError);
    EXPECT_THROW(eng.modify("q", {{"step", std::string("2MB")}, {"limit", std::string("1MB")}}, src, kT0),
                 ThresholdError);
    EXPECT_THROW(eng.modify("q", {{"name", std::string("other")}}, src, kT0), ThresholdError);
    EXPECT_EQ(eng.thresholds().size(), 1u);
    EXPECT_EQ(eng.find("q")->def, def({}));
}

TEST_F(Thresholds, ModifyKeepsUsageWithoutResignalling) {
    eng.add(def({}), src, kT0);
    src.add_sent("198.18.1.2", 3'500'000);
    eng.observe(src, kT0 + kS);
    EXPECT_EQ(count(eng.take_events(), K::StepCrossed), 3u);
    eng.modify("q", {{"step", std::string("500kB")}}, src, kT0 + 2 * kS);
    EXPECT_EQ(eng.find("q")->st.step_index, 7u);
    src.add_sent("198.18.1.2", 500'000);
    eng.observe(src, kT0 + 3 * kS);
    auto ev = eng.take_events();
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::StepCrossed}));
    EXPECT_EQ(ev[0].step_index, 8u);
    eng.modify("q", {{"limit", std::string("3MB")}}, src, kT0 + 4 * kS);
    eng.observe(src, kT0 + 5 * kS);
    EXPECT_EQ(kinds(eng.take_events()), (std::vector<K>{K::LimitReached}))
        << "a lowered limit already passed";
    eng.modify("q", {{"direction", std::string("both")}}, src, kT0 + 6 * kS);
    EXPECT_EQ(eng.find("q")->st.usage, 0u) << "a different watch starts afresh";
}

TEST_F(Thresholds, FlowAggregateKeepsFinishedFlows) {
    FlowEntry f;
    f.key.family = NT_AF_INET;
    f.key.proto = 17;
    f.key.dport = 53;
    f.key.dir = NT_DIR_EGRESS;
    f.counts = Counts(1, 0, 100, 0, 0);
    src.flows = {{f, "wan0"}};
    eng.add(def({{"subject_kind", std::string("flow")},
                 {"subject", std::string("iface=wan0,proto=udp,dport=53")},
                 {"step", uint64_t{1000}}}),
            src, kT0);
    src.flows[0].first.counts = Counts(5, 0, 900, 0, 0);
    eng.observe(src, kT0 + kS);
    EXPECT_EQ(eng.find("q")->st.usage, 800u);
    // Evicted: its counts move from the live list to the finished total; nothing jumps.
    eng.on_flow_finished(src.flows[0].first, "wan0");
    src.flows.clear();
    eng.observe(src, kT0 + 2 * kS);
    EXPECT_EQ(eng.find("q")->st.usage, 800u);
    FlowEntry g = f;
    g.key.sport = 999;
    g.counts = Counts(1, 0, 300, 0, 0);
    src.flows = {{g, "wan0"}, {g, "lan0"}};
    eng.observe(src, kT0 + 3 * kS);
    EXPECT_EQ(eng.find("q")->st.usage, 1100u);
    EXPECT_EQ(count(eng.take_events(), K::StepCrossed), 1u);
}

TEST_F(Thresholds, PersistenceRoundTripWithoutResignalling) {
    eng.add(def({{"limit", std::string("2MB")},
                 {"action", std::string("block")},
                 {"min_interval_ms", uint64_t{100}},
                 {"rate_bps", uint64_t{1000}}}),
            src, kT0);
    src.add_sent("198.18.1.2", 2'200'000);
    eng.observe(src, kT0 + kS);
    eng.take_events();
    const auto saved = eng.to_json();

    FakeEnforcer enf2;
    ThresholdEngine again(PeriodSpec{}, enf2);
    std::vector<std::string> problems;
    again.restore(nlohmann::json::parse(saved.dump()), kT0 + 5 * kS, &problems);
    EXPECT_TRUE(problems.empty());
    ASSERT_NE(again.find("q"), nullptr);
    EXPECT_EQ(again.find("q")->def, eng.find("q")->def);
    EXPECT_EQ(again.find("q")->st.usage, 2'200'000u);
    EXPECT_EQ(again.find("q")->st.step_index, 2u);
    EXPECT_EQ(again.to_json()["thresholds"][0]["state"], saved["thresholds"][0]["state"]);
    EXPECT_EQ(enf2.log, (std::vector<std::string>{"apply q"}))
        << "the action is enforced again after a restart";
    auto ev = again.take_events();
    ASSERT_EQ(kinds(ev), (std::vector<K>{K::ActionApplied}));
    EXPECT_EQ(ev[0].reason, "restart");
    again.observe(src, kT0 + 6 * kS);
    EXPECT_TRUE(again.take_events().empty()) << "no step or limit signalled twice";
    src.add_sent("198.18.1.2", 1'000'000);
    again.observe(src, kT0 + 7 * kS);
    ev = again.take_events();
    ASSERT_EQ(count(ev, K::StepCrossed), 1u);
    EXPECT_EQ(ev[0].step_index, 3u);

    EXPECT_THROW(again.restore(nlohmann::json{{"version", 2}}, kT0, nullptr), std::exception);
    EXPECT_NE(again.find("q"), nullptr) << "a bad file changes nothing";
}

TEST_F(Thresholds, ConfigThresholdsAreReadOnlyAndReplacedWhole) {
    eng.add(def({{"name", std::string("rt")}}), src, kT0);
    eng.set_config({def({{"name", std::string("c1")}}), def({{"name", std::string("c2")}})}, src, kT0);
    EXPECT_EQ(eng.thresholds().size(), 3u);
    EXPECT_THROW(eng.remove("c1"), ThresholdError);
    EXPECT_THROW(eng.modify("c1", {{"step", uint64_t{5}}}, src, kT0), ThresholdError);
    // A clash with a runtime threshold refuses the whole set.
    EXPECT_THROW(
        eng.set_config({def({{"name", std::string("c3")}}), def({{"name", std::string("rt")}})}, src, kT0),
        ThresholdError);
    EXPECT_NE(eng.find("c1"), nullptr);
    EXPECT_EQ(eng.find("c3"), nullptr);
    src.add_sent("198.18.1.2", 1'500'000);
    eng.observe(src, kT0 + kS);
    eng.set_config({def({{"name", std::string("c1")}})}, src, kT0 + 2 * kS);
    EXPECT_EQ(eng.find("c2"), nullptr);
    EXPECT_EQ(eng.find("c1")->st.usage, 1'500'000u) << "an unchanged config threshold keeps its state";
    // Restore brings back the runtime one, and the config one's state only if unchanged.
    const auto saved = eng.to_json();
    FakeEnforcer enf2;
    ThresholdEngine again(PeriodSpec{}, enf2);
    again.set_config({def({{"name", std::string("c1")}, {"step", std::string("2MB")}})}, src, kT0);
    again.restore(saved, kT0, nullptr);
    EXPECT_NE(again.find("rt"), nullptr);
    EXPECT_EQ(again.find("c1")->st.usage, 0u);
}

TEST(ThresholdAlertRecords, EachEventMapsToItsFigures) {
    ThresholdDef def;
    def.name = "q";
    def.subject = {SubjectKind::Host, "198.18.1.2"};
    def.direction = UsageDirection::Sent;
    def.layer = UsageLayer::L3;
    def.step = 1000000;
    def.action = ActionKind::Throttle;

    ThresholdEvent step{K::StepCrossed, "q", "host:198.18.1.2", 3000123, 3, 0, 0, 1700000000000000, "", ""};
    const AlertRecord a = alert_record_of(step, &def);
    EXPECT_EQ(a.event, "step_crossed");
    EXPECT_EQ(a.subject_kind, "host");
    EXPECT_EQ(a.subject, "198.18.1.2");
    EXPECT_EQ(a.metric, "l3_sent");
    EXPECT_EQ(a.value, 3000123u);
    EXPECT_EQ(a.limit, 3000000u);
    EXPECT_EQ(a.action, "throttle");
    EXPECT_EQ(a.time_us, 1700000000000000);

    ThresholdEvent limit{K::LimitReached, "q", "host:198.18.1.2", 5000100, 5, 5000000, 0, 1, "", ""};
    const AlertRecord l = alert_record_of(limit, &def);
    EXPECT_EQ(std::make_tuple(l.event, l.value, l.limit),
              std::make_tuple(std::string("limit_reached"), 5000100ull, 5000000ull));

    ThresholdEvent burst{K::Burst, "q", "host:198.18.1.2", 0, 4, 30, 800, 1, "", ""};
    const AlertRecord b = alert_record_of(burst, &def);
    EXPECT_EQ(std::make_tuple(b.event, b.metric, b.value, b.limit),
              std::make_tuple(std::string("burst"), std::string("interval_ms"), 30ull, 800ull));

    ThresholdEvent rate{K::RateExceeded, "q", "host:198.18.1.2", 0, 0, 2071642, 500000, 1, "", ""};
    const AlertRecord r = alert_record_of(rate, &def);
    EXPECT_EQ(
        std::make_tuple(r.event, r.metric, r.value, r.limit),
        std::make_tuple(std::string("rate_exceeded"), std::string("bytes_per_s"), 2071642ull, 500000ull));

    // A removed threshold's last event (ActionLifted "removed") still names its subject.
    ThresholdEvent lifted{K::ActionLifted, "q", "host:198.18.1.2", 42, 0, 0, 0, 1, "throttle", "removed"};
    const AlertRecord x = alert_record_of(lifted, nullptr);
    EXPECT_EQ(std::make_tuple(x.event, x.subject_kind, x.subject, x.action, x.message),
              std::make_tuple(std::string("action_lifted"), std::string("host"), std::string("198.18.1.2"),
                              std::string("throttle"), std::string("removed")));
}

} // namespace
} // namespace nettally
