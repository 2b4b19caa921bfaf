// nettallyctl top: rates between two readings (new hosts and flows count from zero, finished
// ones are left out, a reset counter counts from zero), the order by the sort key, the screen
// cut to the terminal, the JSON shape; and its arguments.
#include "args.h"
#include "format_graph.h"
#include "format_top.h"

#include <gtest/gtest.h>

#include <sstream>

namespace nettally::ctl {
namespace {

Counters c(std::uint64_t packets, std::uint64_t l2) {
    return Counters{packets, l2, l2 - 14 * packets, l2 - 34 * packets, l2 - 42 * packets};
}

FlowRow flow(std::uint16_t sport, Counters counters) {
    FlowRow f;
    f.interface = "lan0";
    f.direction = "ingress";
    f.proto = 17;
    f.src = "198.18.1.2";
    f.sport = sport;
    f.dst = "198.18.2.2";
    f.dport = 5001;
    f.counters = counters;
    return f;
}

TopReading reading(std::uint64_t poll_us, Counters lan_in, std::vector<FlowRow> flows) {
    TopReading r;
    r.poll_us = poll_us;
    InterfaceRow lan;
    lan.name = "lan0";
    lan.ingress = lan_in;
    lan.egress = c(1, 100);
    r.interfaces = {lan};
    HostRow h;
    h.interface = "lan0";
    h.mac = "02:00:c6:12:01:02";
    h.ip = "198.18.1.2";
    h.sent = lan_in;
    r.hosts = {h};
    r.flows = std::move(flows);
    return r;
}

TEST(Top, RatesOverTheTimeBetweenPolls) {
    const TopReading a = reading(1'000'000, c(10, 10'000), {flow(1, c(5, 5000)), flow(2, c(5, 5000))});
    // 2 s later: flow 1 grew by 100 packets / 100 kB, flow 2 finished, flow 3 is new.
    const TopReading b =
        reading(3'000'000, c(310, 310'000), {flow(1, c(105, 105'000)), flow(3, c(200, 200'000))});
    const TopFrame f = top_frame(a, b, "l2");
    EXPECT_DOUBLE_EQ(f.seconds, 2.0);
    ASSERT_EQ(f.interfaces.size(), 1u);
    EXPECT_DOUBLE_EQ(f.interfaces[0].ingress.packets, 150.0);
    EXPECT_DOUBLE_EQ(f.interfaces[0].ingress.bytes, 150'000.0);
    EXPECT_DOUBLE_EQ(f.interfaces[0].egress.packets, 0.0);
    ASSERT_EQ(f.hosts.size(), 1u);
    EXPECT_DOUBLE_EQ(f.hosts[0].sent.bytes, 150'000.0);
    ASSERT_EQ(f.flows.size(), 2u);       // flow 2 finished: not listed
    EXPECT_EQ(f.flows[0].flow.sport, 3); // new: counted from zero, 100 kB/s, the busiest
    EXPECT_DOUBLE_EQ(f.flows[0].rate.bytes, 100'000.0);
    EXPECT_EQ(f.flows[1].flow.sport, 1);
    EXPECT_DOUBLE_EQ(f.flows[1].rate.packets, 50.0);
}

TEST(Top, SortKeyChoosesLayerAndOrder) {
    const TopReading a = reading(0, c(0, 0), {});
    // Flow 1: few large packets; flow 2: many small ones.
    const TopReading b = reading(1'000'000, c(0, 0), {flow(1, c(10, 15'000)), flow(2, c(100, 6400))});
    EXPECT_EQ(top_frame(a, b, "l2").flows[0].flow.sport, 1);
    EXPECT_EQ(top_frame(a, b, "packets").flows[0].flow.sport, 2);
    const TopFrame l3 = top_frame(a, b, "l3");
    EXPECT_EQ(l3.layer, "l3");
    EXPECT_DOUBLE_EQ(l3.flows[0].rate.bytes, 15'000.0 - 140);
    EXPECT_TRUE(top_sort_key("payload"));
    EXPECT_FALSE(top_sort_key("first_seen"));
}

TEST(Top, ResetCounterCountsFromZero) {
    const TopReading a = reading(0, c(1000, 1'000'000), {});
    const TopReading b = reading(1'000'000, c(10, 10'000), {});
    EXPECT_DOUBLE_EQ(top_frame(a, b, "l2").interfaces[0].ingress.bytes, 10'000.0);
}

TEST(Top, ScreenFitsTheTerminal) {
    std::vector<FlowRow> before, after;
    for (std::uint16_t i = 1; i <= 50; i++) {
        before.push_back(flow(i, c(1, 100)));
        after.push_back(flow(i, c(1 + i, 100 + 1000u * i)));
    }
    const TopFrame f = top_frame(reading(0, c(0, 0), before), reading(1'000'000, c(50, 50'000), after), "l2");
    for (const auto& [width, height] : {std::pair<std::size_t, std::size_t>{40, 10}, {100, 30}, {20, 5}}) {
        const std::string text = top_text(f, width, height, 1000);
        std::istringstream in(text);
        std::size_t lines = 0;
        for (std::string l; std::getline(in, l); lines++)
            EXPECT_LE(l.size(), width) << l;
        EXPECT_LE(lines, height);
        EXPECT_GE(lines, std::min<std::size_t>(height, 4)) << text;
    }
    // Unlimited: every flow, the busiest (sport 50) first.
    const std::string all = top_text(f, 0, 0, 1000);
    EXPECT_NE(all.find("198.18.1.2:50 > 198.18.2.2:5001"), std::string::npos);
    EXPECT_LT(all.find(":50 >"), all.find(":49 >"));
    EXPECT_EQ(bit_rate(125'000), "1.0 Mbit/s");
    EXPECT_EQ(packet_rate(1500), "1.5 kpkt/s");
}

TEST(Top, JsonShape) {
    const TopFrame f =
        top_frame(reading(0, c(0, 0), {}), reading(500'000, c(5, 5000), {flow(9, c(5, 5000))}), "l2");
    const Json j = top_json(f, 20);
    EXPECT_DOUBLE_EQ(j["interval_s"].get<double>(), 0.5);
    EXPECT_EQ(j["layer"], "l2");
    EXPECT_DOUBLE_EQ(j["interfaces"][0]["ingress"]["bytes_per_s"].get<double>(), 10'000.0);
    EXPECT_DOUBLE_EQ(j["hosts"][0]["sent"]["packets_per_s"].get<double>(), 10.0);
    EXPECT_EQ(j["flows"][0]["sport"], 9);
    EXPECT_DOUBLE_EQ(j["flows"][0]["rate"]["packets_per_s"].get<double>(), 10.0);
    EXPECT_EQ(top_json(f, 0)["flows"].size(), 0u);
}

TEST(Top, Arguments) {
    const ParseResult r =
        parse_args({"top", "--once", "--interval", "250ms", "--sort", "packets", "--top", "5"});
    ASSERT_TRUE(std::holds_alternative<Options>(r));
    const Options& o = std::get<Options>(r);
    EXPECT_EQ(o.command, Command::Top);
    EXPECT_TRUE(o.once);
    EXPECT_EQ(o.interval_ms, 250u);
    EXPECT_EQ(o.sort, "packets");
    EXPECT_EQ(o.top, 5u);
    for (const char* bad : {"50ms", "2h", "1", "x"}) {
        const ParseResult e = parse_args({"top", "--interval", bad});
        ASSERT_TRUE(std::holds_alternative<UsageError>(e)) << bad;
        EXPECT_NE(std::get<UsageError>(e).message.find("--interval"), std::string::npos);
    }
    EXPECT_TRUE(std::holds_alternative<UsageError>(parse_args({"hosts", "--once"})));
}

} // namespace
} // namespace nettally::ctl

namespace nettally::ctl {
namespace {

std::vector<HistoryRow> history() {
    HistoryRow d1{
        "2026-12-01", 0, 0, {{"iface:wan0:egress", c(10, 1000)}, {"iface:wan0:ingress", c(40, 4000)}}};
    HistoryRow d2{"2026-12-02", 0, 0, {{"iface:wan0:ingress", c(20, 2000)}}};
    return {d1, d2};
}

TEST(HistoryGraph, BarsScaledWithExactValues) {
    const std::string text = history_graph_text(history(), "l2", 80);
    std::istringstream in(text);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);)
        lines.push_back(l);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0].rfind("2026-12-01", 0), 0u);
    EXPECT_NE(lines[0].find(" 1000 B "), std::string::npos);
    EXPECT_NE(lines[1].find(" 4000 B "), std::string::npos);
    EXPECT_EQ(lines[2].rfind("2026-12-02", 0), 0u);
    const auto bar = [](const std::string& l) {
        std::size_t n = 0;
        for (std::size_t p = l.find("\u2588"); p != std::string::npos; p = l.find("\u2588", p + 1))
            n++;
        return n;
    };
    // 4000 is the largest: the full bar; 2000 half of it, 1000 a quarter.
    EXPECT_EQ(bar(lines[2]) * 2, bar(lines[1]));
    EXPECT_EQ(bar(lines[0]) * 4, bar(lines[1]));
    EXPECT_NE(history_graph_text(history(), "packets", 80).find(" 40 packets"), std::string::npos);
    EXPECT_TRUE(history_graph_text({}, "l2", 80).empty());
}

TEST(HistoryGraph, SvgBarsCarryTheValues) {
    const std::string svg = history_graph_svg(history(), "l3", "day");
    EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
    for (const char* v : {"data-value=\"860\"", "data-value=\"3440\"", "data-value=\"1720\""})
        EXPECT_NE(svg.find(v), std::string::npos) << v;
    EXPECT_NE(svg.find("data-period=\"2026-12-02\" data-subject=\"iface:wan0:ingress\""), std::string::npos);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    EXPECT_TRUE(graph_layer("payload"));
    EXPECT_FALSE(graph_layer("bytes"));
}

} // namespace
} // namespace nettally::ctl
