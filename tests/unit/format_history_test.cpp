// nettallyctl's history command and the finished_flows key of the interfaces JSON.
#include "args.h"
#include "format.h"

#include <gtest/gtest.h>

using namespace nettally::ctl;

namespace {

TEST(HistoryJson, ShapeAndValues) {
    std::vector<HistoryRow> rows = {{"2026-11-24",
                                     1795478400000000,
                                     1795564800000000,
                                     {{"iface:lan0:ingress", Counters{3, 300, 240, 180, 120}}}}};
    const auto j = history_json("day", rows);
    EXPECT_EQ(j["history"]["period"], "day");
    ASSERT_EQ(j["history"]["periods"].size(), 1u);
    const auto& p = j["history"]["periods"][0];
    EXPECT_EQ(p["label"], "2026-11-24");
    EXPECT_EQ(p["start"], "2026-11-24T00:00:00.000000Z");
    EXPECT_EQ(p["end"], "2026-11-25T00:00:00.000000Z");
    EXPECT_EQ(p["totals"]["iface:lan0:ingress"]["payload"], 120u);
    EXPECT_EQ(p["totals"]["iface:lan0:ingress"]["packets"], 3u);
}

TEST(HistoryText, OneRowPerSubject) {
    std::vector<HistoryRow> rows = {{"2026-11",
                                     0,
                                     0,
                                     {{"iface:lan0:egress", Counters{1, 2048, 0, 0, 0}},
                                      {"iface:lan0:ingress", Counters{2, 100, 0, 0, 0}}}}};
    const std::string t = history_text(rows);
    EXPECT_NE(t.find("PERIOD"), std::string::npos) << t;
    EXPECT_NE(t.find("2026-11  iface:lan0:egress"), std::string::npos) << t;
    EXPECT_NE(t.find("2.0 KiB"), std::string::npos) << t;
}

TEST(HistoryArgs, PeriodAndSubjectOnlyWithHistory) {
    auto ok = parse_args({"history", "--period", "month", "--subject=iface:wan0", "--json"});
    ASSERT_TRUE(std::holds_alternative<Options>(ok));
    const auto& o = std::get<Options>(ok);
    EXPECT_EQ(o.command, Command::History);
    EXPECT_EQ(o.period, "month");
    EXPECT_EQ(o.subject, "iface:wan0");
    EXPECT_TRUE(o.json);
    auto bad = parse_args({"flows", "--period", "day"});
    ASSERT_TRUE(std::holds_alternative<UsageError>(bad));
    EXPECT_EQ(std::get<UsageError>(bad).message, "--period is only valid with 'history', not 'flows'");
}

TEST(InterfacesJson, FinishedFlowsGetTheirOwnKey) {
    InterfaceRow r{"lan0", "lan", 3, Counters{5, 500, 0, 0, 0}, Counters{}, {}, Counters{4, 440, 0, 0, 0},
                   {}};
    r.unattributed.emplace("ingress.non_ip", Counters{1, 60, 0, 0, 0});
    const auto j = interfaces_json({r});
    const auto& e = j["interfaces"][0];
    EXPECT_TRUE(e["unattributed"].contains("ingress.non_ip"));
    EXPECT_EQ(e["unattributed"].size(), 1u) << "finished flows are not a bucket";
    EXPECT_EQ(e["finished_flows"]["ingress"]["packets"], 4u);
    EXPECT_EQ(e["finished_flows"]["ingress"]["l2"], 440u);
    EXPECT_EQ(e["finished_flows"]["egress"]["packets"], 0u);
}

} // namespace
