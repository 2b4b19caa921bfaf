// nettallyctl's output contract without a bus: byte units, times, protocol and flag names,
// the exact --json key sets scripts rely on, table alignment, argument parsing and the
// D-Bus-error-to-exit-code mapping (ctl/format.h).
#include "args.h"
#include "format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace nettally::ctl {
namespace {

using json = Json;

std::set<std::string> keys_of(const json& obj) {
    std::set<std::string> keys;
    for (const auto& [k, v] : obj.items())
        keys.insert(k);
    return keys;
}

std::vector<std::string> key_order(const json& obj) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : obj.items())
        keys.push_back(k);
    return keys;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

const std::set<std::string> kCounterKeys = {"packets", "l2", "l3", "l4", "payload"};

// 2026-11-24T09:41:33.123456Z
constexpr MicrosSinceEpoch kInstant = 1795513293123456ULL;

// ---- human_bytes -----------------------------------------------------------------------

TEST(HumanBytes, Boundaries) {
    EXPECT_EQ(human_bytes(0), "0 B");
    EXPECT_EQ(human_bytes(3), "3 B");
    EXPECT_EQ(human_bytes(1023), "1023 B");
    EXPECT_EQ(human_bytes(1024), "1.0 KiB");
    EXPECT_EQ(human_bytes(1536), "1.5 KiB");
    EXPECT_EQ(human_bytes(12ULL << 20), "12.0 MiB");
    EXPECT_EQ(human_bytes(1ULL << 30), "1.0 GiB");
    EXPECT_EQ(human_bytes((1ULL << 30) - 1), "1.0 GiB") << "1023.999 MiB rounds up into the next unit";
    EXPECT_EQ(human_bytes(1ULL << 40), "1.0 TiB");
    EXPECT_EQ(human_bytes(std::numeric_limits<std::uint64_t>::max()), "16.0 EiB");
}

TEST(HumanBytes, RoundsHalfUpToOneDecimal) {
    EXPECT_EQ(human_bytes(1024 + 51), "1.0 KiB"); // 1.0498
    EXPECT_EQ(human_bytes(1024 + 52), "1.1 KiB"); // 1.0508
    EXPECT_EQ(human_bytes(2047), "2.0 KiB");      // 1.999 carries into the whole part
    EXPECT_EQ(human_bytes(1023 * 1024), "1023.0 KiB");
}

// ---- times -----------------------------------------------------------------------------

TEST(Times, Rfc3339WithMicroseconds) {
    EXPECT_EQ(rfc3339_utc(kInstant), "2026-11-24T09:41:33.123456Z");
    EXPECT_EQ(rfc3339_utc(1), "1970-01-01T00:00:00.000001Z");
    EXPECT_EQ(rfc3339_utc(951782400000000ULL), "2000-02-29T00:00:00.000000Z") << "leap day";
    EXPECT_EQ(rfc3339_utc(253402300799999999ULL), "9999-12-31T23:59:59.999999Z");
}

TEST(Times, ZeroIsNullInJsonAndDashInTables) {
    EXPECT_TRUE(time_json(0).is_null());
    EXPECT_EQ(time_json(kInstant), json("2026-11-24T09:41:33.123456Z"));
    EXPECT_EQ(human_time(0), "-");
    EXPECT_EQ(human_time(0, "never"), "never");
    EXPECT_EQ(human_time(kInstant), "2026-11-24 09:41:33");
}

TEST(Times, LargestValueDoesNotOverflow) {
    EXPECT_FALSE(rfc3339_utc(std::numeric_limits<std::uint64_t>::max()).empty());
}

// ---- protocols and flags ---------------------------------------------------------------

TEST(Proto, NamesAndNumbers) {
    EXPECT_EQ(proto_name(6), "tcp");
    EXPECT_EQ(proto_name(17), "udp");
    EXPECT_EQ(proto_name(1), "icmp");
    EXPECT_EQ(proto_name(58), "icmpv6");
    EXPECT_EQ(proto_name(47), "47");
    EXPECT_EQ(proto_name(0), "0");
    EXPECT_EQ(proto_name(255), "255");
}

TEST(TcpFlags, FixedWidthCeuaprsf) {
    EXPECT_EQ(tcp_flags_string(0), "........");
    EXPECT_EQ(tcp_flags_string(0x02), "......S.") << "SYN";
    EXPECT_EQ(tcp_flags_string(0x12), "...A..S.") << "SYN+ACK";
    EXPECT_EQ(tcp_flags_string(0x01), ".......F") << "FIN";
    EXPECT_EQ(tcp_flags_string(0x04), ".....R..") << "RST";
    EXPECT_EQ(tcp_flags_string(0x18), "...AP...") << "PSH+ACK";
    EXPECT_EQ(tcp_flags_string(0xFF), "CEUAPRSF");
}

// ---- JSON shapes -----------------------------------------------------------------------

TEST(Json, Counters) {
    const json c = counters_json({1, 2, 3, 4, 5});
    EXPECT_EQ(keys_of(c), kCounterKeys);
    EXPECT_EQ(c, json::parse(R"({"packets":1,"l2":2,"l3":3,"l4":4,"payload":5})"));
    const json big = counters_json({UINT64_MAX, 0, 0, 0, 0});
    EXPECT_TRUE(big["packets"].is_number_unsigned());
    EXPECT_EQ(big["packets"].get<std::uint64_t>(), UINT64_MAX) << "64-bit counters stay exact";
}

TEST(Json, Interfaces) {
    const std::vector<InterfaceRow> rows = {
        {"lan0",
         "lan",
         3,
         {10, 1000, 800, 600, 400},
         {20, 2000, 1600, 1200, 800},
         {{"ingress.non_ip", {1, 60, 0, 0, 0}}, {"egress.flow_overflow", {2, 200, 160, 120, 80}}}},
    };
    const json j = interfaces_json(rows);
    EXPECT_EQ(keys_of(j), std::set<std::string>{"interfaces"});
    ASSERT_TRUE(j["interfaces"].is_array());
    ASSERT_EQ(j["interfaces"].size(), 1U);
    const json& i = j["interfaces"][0];
    EXPECT_EQ(keys_of(i), (std::set<std::string>{"name", "role", "ifindex", "ingress", "egress",
                                                 "unattributed", "finished_flows"}));
    EXPECT_EQ(i["name"], "lan0");
    EXPECT_EQ(i["role"], "lan");
    EXPECT_EQ(i["ifindex"], 3);
    EXPECT_EQ(i["ingress"], counters_json({10, 1000, 800, 600, 400}));
    EXPECT_EQ(i["egress"], counters_json({20, 2000, 1600, 1200, 800}));
    EXPECT_EQ(keys_of(i["unattributed"]), (std::set<std::string>{"ingress.non_ip", "egress.flow_overflow"}));
    EXPECT_EQ(i["unattributed"]["ingress.non_ip"], counters_json({1, 60, 0, 0, 0}));
}

TEST(Json, EmptyListsAreArraysAndEmptyBucketsAnObject) {
    EXPECT_EQ(interfaces_json({}), json::parse(R"({"interfaces":[]})"));
    EXPECT_EQ(hosts_json({}), json::parse(R"({"hosts":[]})"));
    EXPECT_EQ(flows_json({}), json::parse(R"({"flows":[]})"));
    const json j = interfaces_json({InterfaceRow{"wan0", "wan", 2, {}, {}, {}}});
    EXPECT_TRUE(j["interfaces"][0]["unattributed"].is_object());
}

TEST(Json, Hosts) {
    const std::vector<HostRow> rows = {
        {"aa:bb:cc:dd:ee:ff",
         "192.0.2.10",
         "lan0",
         {5, 500, 400, 300, 200},
         {6, 600, 480, 360, 240},
         kInstant,
         0},
    };
    const json j = hosts_json(rows);
    EXPECT_EQ(keys_of(j), std::set<std::string>{"hosts"});
    ASSERT_EQ(j["hosts"].size(), 1U);
    const json& h = j["hosts"][0];
    EXPECT_EQ(keys_of(h), (std::set<std::string>{"mac", "ip", "interface", "sent", "received", "first_seen",
                                                 "last_seen", "wan_sent", "wan_received"}));
    EXPECT_EQ(h["mac"], "aa:bb:cc:dd:ee:ff");
    EXPECT_EQ(h["ip"], "192.0.2.10");
    EXPECT_EQ(h["interface"], "lan0");
    EXPECT_EQ(h["sent"], counters_json({5, 500, 400, 300, 200}));
    EXPECT_EQ(h["received"], counters_json({6, 600, 480, 360, 240}));
    EXPECT_EQ(h["first_seen"], "2026-11-24T09:41:33.123456Z");
    EXPECT_TRUE(h["last_seen"].is_null());
}

TEST(Json, FlowsHaveFlatCounters) {
    const std::vector<FlowRow> rows = {
        {"wan0",
         "egress",
         6,
         "2001:db8::1",
         40000,
         "2001:db8::2",
         443,
         {7, 700, 560, 420, 280},
         kInstant,
         kInstant + 1,
         0x12},
    };
    const json j = flows_json(rows);
    EXPECT_EQ(keys_of(j), std::set<std::string>{"flows"});
    ASSERT_EQ(j["flows"].size(), 1U);
    const json& f = j["flows"][0];
    EXPECT_EQ(keys_of(f), (std::set<std::string>{"interface", "direction", "proto", "src", "sport", "dst",
                                                 "dport", "packets", "l2", "l3", "l4", "payload",
                                                 "first_seen", "last_seen", "tcp_flags", "class"}));
    EXPECT_EQ(f["interface"], "wan0");
    EXPECT_EQ(f["direction"], "egress");
    EXPECT_EQ(f["proto"], "tcp");
    EXPECT_EQ(f["src"], "2001:db8::1");
    EXPECT_EQ(f["sport"], 40000);
    EXPECT_EQ(f["dst"], "2001:db8::2");
    EXPECT_EQ(f["dport"], 443);
    EXPECT_EQ(f["packets"], 7);
    EXPECT_EQ(f["l2"], 700);
    EXPECT_EQ(f["l3"], 560);
    EXPECT_EQ(f["l4"], 420);
    EXPECT_EQ(f["payload"], 280);
    EXPECT_TRUE(f["packets"].is_number()) << "numbers, not strings";
    EXPECT_EQ(f["first_seen"], "2026-11-24T09:41:33.123456Z");
    EXPECT_EQ(f["last_seen"], "2026-11-24T09:41:33.123457Z");
    EXPECT_EQ(f["tcp_flags"], "...A..S.");
}

TEST(Format, FlowUsersOnlyWithSubscribers) {
    FlowRow bound{"lan0", "ingress", 17, "198.18.1.2", 40000, "198.18.2.2", 53, {1, 100, 86, 66, 46},
                  1,      2,         0};
    FlowRow unbound = bound;
    unbound.src = "198.18.1.3";
    std::vector<FlowRow> rows{bound, unbound};
    EXPECT_FALSE(flows_json(rows)["flows"][0].contains("user")) << "no subscribers: no user key";
    EXPECT_EQ(flows_text(rows).find("USER"), std::string::npos);
    rows[0].user = "alice";
    rows[1].user = "";
    const json j = flows_json(rows);
    EXPECT_EQ(j["flows"][0]["user"], "alice");
    EXPECT_TRUE(j["flows"][1]["user"].is_null());
    const std::string text = flows_text(rows);
    EXPECT_NE(text.find("USER"), std::string::npos);
    EXPECT_NE(text.find("alice"), std::string::npos);
}

TEST(Format, FlowClassesOnlyWithARuleset) {
    FlowRow web{"lan0", "ingress", 6, "198.18.1.2", 40000, "198.18.2.2", 443, {1, 100, 86, 66, 46}, 1, 2, 0};
    FlowRow dns = web;
    dns.proto = 17;
    dns.dport = 53;
    std::vector<FlowRow> rows{web, dns};
    EXPECT_TRUE(flows_json(rows)["flows"][0]["class"].is_null()) << "no ruleset: class null";
    EXPECT_EQ(flows_text(rows).find("CLASS"), std::string::npos);
    rows[0].cls = "web";
    rows[1].user = "alice";
    const json j = flows_json(rows);
    EXPECT_EQ(j["flows"][0]["class"], "web");
    EXPECT_TRUE(j["flows"][1]["class"].is_null()) << "a flow without a class yet";
    const auto lines = lines_of(flows_text(rows));
    ASSERT_EQ(lines.size(), 3U);
    // USER, then CLASS, before the counters.
    EXPECT_LT(lines[0].find("USER"), lines[0].find("CLASS"));
    EXPECT_LT(lines[0].find("CLASS"), lines[0].find("PKTS"));
    EXPECT_NE(lines[1].find(" web "), std::string::npos);
    EXPECT_NE(lines[2].find(" - "), std::string::npos);
}

TEST(Json, NonTcpFlowsCarryNumericFlagsAndIcmpTypeCode) {
    const std::vector<FlowRow> rows = {
        {"lan0", "ingress", 17, "192.0.2.1", 53, "192.0.2.2", 5353, {1, 1, 1, 1, 1}, 1, 1, 0},
        {"lan0", "ingress", 1, "192.0.2.1", 0, "192.0.2.2", 8 * 256 + 0, {1, 1, 1, 1, 1}, 1, 1, 0},
        {"lan0", "egress", 58, "fe80::1", 0, "fe80::2", 1 * 256 + 4, {1, 1, 1, 1, 1}, 1, 1, 0},
        {"lan0", "egress", 47, "192.0.2.1", 0, "192.0.2.2", 0, {1, 1, 1, 1, 1}, 1, 1, 0},
    };
    const json j = flows_json(rows);
    const json& udp = j["flows"][0];
    EXPECT_EQ(udp["proto"], "udp");
    EXPECT_TRUE(udp["tcp_flags"].is_number());
    EXPECT_EQ(udp["tcp_flags"], 0);
    EXPECT_FALSE(udp.contains("icmp_type"));

    const json& ping = j["flows"][1];
    EXPECT_EQ(ping["proto"], "icmp");
    EXPECT_EQ(ping["dport"], 2048) << "dport keeps the API's packed value";
    EXPECT_EQ(ping["icmp_type"], 8);
    EXPECT_EQ(ping["icmp_code"], 0);

    const json& unreach6 = j["flows"][2];
    EXPECT_EQ(unreach6["proto"], "icmpv6");
    EXPECT_EQ(unreach6["icmp_type"], 1);
    EXPECT_EQ(unreach6["icmp_code"], 4);

    EXPECT_EQ(j["flows"][3]["proto"], "47");
}

TEST(Json, StatusKeepsNaturalTypesAndFormatsTimes) {
    const StatusMap status = {
        {"version", std::string("0.1.0")},
        {"pid", std::uint64_t{4242}},
        {"started_at", std::uint64_t{kInstant}},
        {"last_poll_at", std::uint64_t{0}},
        {"config_path", std::string("/etc/nettally/nettally.yaml")},
        {"poll_interval_ms", std::uint64_t{1000}},
        {"reconcile_violations", std::uint64_t{0}},
        {"future_flag", true},
        {"future_signed", std::int64_t{-5}},
        {"future_ratio", 0.5},
        {"future_list", std::vector<std::string>{"a", "b"}},
        {"future_dict", Unsupported{"a{su}"}},
    };
    const json j = status_json(status);
    EXPECT_EQ(keys_of(j), std::set<std::string>{"status"});
    const json& s = j["status"];
    EXPECT_EQ(s.size(), status.size()) << "every key is passed through";
    EXPECT_EQ(s["version"], "0.1.0");
    EXPECT_EQ(s["pid"], 4242);
    EXPECT_TRUE(s["pid"].is_number_unsigned());
    EXPECT_EQ(s["started_at"], "2026-11-24T09:41:33.123456Z");
    EXPECT_TRUE(s["last_poll_at"].is_null());
    EXPECT_EQ(s["poll_interval_ms"], 1000) << "only *_at keys are times";
    EXPECT_EQ(s["future_flag"], true);
    EXPECT_EQ(s["future_signed"], -5);
    EXPECT_EQ(s["future_ratio"], 0.5);
    EXPECT_EQ(s["future_list"], json::parse(R"(["a","b"])"));
    EXPECT_TRUE(s["future_dict"].is_null());
}

TEST(Json, KeysComeInDocumentedOrder) {
    using V = std::vector<std::string>;
    EXPECT_EQ(key_order(counters_json({})), (V{"packets", "l2", "l3", "l4", "payload"}));
    EXPECT_EQ(key_order(interfaces_json({InterfaceRow{}})["interfaces"][0]),
              (V{"name", "role", "ifindex", "ingress", "egress", "unattributed", "finished_flows"}));
    EXPECT_EQ(key_order(hosts_json({HostRow{}})["hosts"][0]),
              (V{"mac", "ip", "interface", "sent", "received", "wan_sent", "wan_received", "first_seen",
                 "last_seen"}));
    EXPECT_EQ(key_order(flows_json({FlowRow{}})["flows"][0]),
              (V{"interface", "direction", "proto", "src", "sport", "dst", "dport", "packets", "l2", "l3",
                 "l4", "payload", "first_seen", "last_seen", "tcp_flags", "class"}));
}

TEST(Json, Reload) {
    EXPECT_EQ(reload_json(), json::parse(R"({"reloaded":true})"));
}

// ---- tables ----------------------------------------------------------------------------

TEST(Table, AlignsLeftAndRightAndTrimsTrailingBlanks) {
    const std::string t = render_table({{"NAME"}, {"BYTES", Align::Right}, {"NOTE"}},
                                       {{"a", "1 B", ""}, {"longer", "12.0 MiB", "x"}});
    EXPECT_EQ(t, "NAME       BYTES  NOTE\n"
                 "a            1 B\n"
                 "longer  12.0 MiB  x\n");
}

TEST(Table, Utf8CellsCountAsCodePoints) {
    const std::string t =
        render_table({{"N"}, {"V", Align::Right}}, {{"\xc3\xa9t\xc3\xa9", "1"}, {"abc", "22"}});
    EXPECT_EQ(t, "N     V\n"
                 "\xc3\xa9t\xc3\xa9   1\n"
                 "abc  22\n");
}

// Every column boundary in a rendered table: right-aligned columns end at the same offset
// on every line, left-aligned ones start at the same offset.
TEST(Table, InterfacesColumnsLineUp) {
    const std::vector<InterfaceRow> rows = {
        {"lan0", "lan", 3, {10, 1536, 1024, 1023, 3}, {123456, 12ULL << 20, 1ULL << 30, 0, 0}, {}},
        {"wan-uplink0", "wan", 12, {1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}, {}},
    };
    const auto lines = lines_of(interfaces_text(rows));
    ASSERT_EQ(lines.size(), 5U) << "header + one row per direction";
    EXPECT_EQ(lines[0].substr(0, 4), "NAME");
    const std::size_t role = lines[0].find("ROLE");
    const std::size_t dir = lines[0].find("DIR");
    const std::size_t packets_end = lines[0].find("PACKETS") + 7;
    const std::size_t payload_end = lines[0].find("PAYLOAD") + 7;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        EXPECT_NE(lines[i][role], ' ') << "line " << i << ": " << lines[i];
        EXPECT_EQ(lines[i][role - 1], ' ') << "line " << i;
        EXPECT_NE(lines[i][dir], ' ') << "line " << i;
        EXPECT_NE(lines[i][packets_end - 1], ' ') << "line " << i;
        EXPECT_EQ(lines[i][packets_end], ' ') << "line " << i;
        EXPECT_EQ(lines[i].size(), payload_end) << "line " << i << ": PAYLOAD is right-aligned and last";
    }
    EXPECT_NE(lines[1].find("ingress"), std::string::npos);
    EXPECT_NE(lines[1].find("1.5 KiB"), std::string::npos);
    EXPECT_NE(lines[1].find("1023 B"), std::string::npos);
    EXPECT_NE(lines[2].find("egress"), std::string::npos);
    EXPECT_NE(lines[2].find("123456"), std::string::npos) << "packets are plain integers";
    EXPECT_NE(lines[2].find("1.0 GiB"), std::string::npos);
}

TEST(Table, InterfacesListsOnlyNonZeroBuckets) {
    const std::vector<InterfaceRow> rows = {
        {"lan0", "lan", 3, {}, {}, {{"ingress.non_ip", {3, 180, 0, 0, 0}}, {"egress.unparsable", {}}}},
    };
    const std::string text = interfaces_text(rows);
    EXPECT_NE(text.find("Unattributed"), std::string::npos);
    EXPECT_NE(text.find("non_ip"), std::string::npos);
    EXPECT_EQ(text.find("unparsable"), std::string::npos);
    EXPECT_EQ(interfaces_text({InterfaceRow{"lan0", "lan", 3, {}, {}, {{"ingress.non_ip", {}}}}})
                  .find("Unattributed"),
              std::string::npos);
}

TEST(Table, FlowsHeaderAndIcmpTypeCode) {
    const std::vector<FlowRow> rows = {
        {"wan0",
         "egress",
         6,
         "2001:db8:1234:5678:9abc:def0:1234:5678",
         40000,
         "192.0.2.2",
         443,
         {7, 700, 560, 420, 280},
         kInstant,
         kInstant,
         0x12},
        {"lan0", "ingress", 1, "192.0.2.1", 0, "192.0.2.2", 3 * 256 + 1, {1, 84, 84, 64, 56}, 1, 0, 0},
    };
    const auto lines = lines_of(flows_text(rows));
    ASSERT_EQ(lines.size(), 3U);
    const std::vector<std::string> headers = {"IFACE", "DIR", "PROTO", "SRC", "SPORT",   "DST",      "DPORT",
                                              "PKTS",  "L2",  "L3",    "L4",  "PAYLOAD", "LAST SEEN"};
    std::size_t pos = 0;
    for (const auto& h : headers) {
        const std::size_t at = lines[0].find(h, pos);
        ASSERT_NE(at, std::string::npos) << h;
        pos = at + h.size();
    }
    const std::size_t dport_end = lines[0].find("DPORT") + 5;
    EXPECT_EQ(lines[1].substr(dport_end - 3, 3), "443");
    EXPECT_EQ(lines[2].substr(dport_end - 3, 3), "3/1") << "ICMP shows TYPE/CODE";
    const std::size_t last_seen = lines[0].find("LAST SEEN");
    EXPECT_EQ(lines[1].substr(last_seen), "2026-11-24 09:41:33");
    EXPECT_EQ(lines[2].substr(last_seen), "-") << "never seen";
    EXPECT_NE(lines[1].find("tcp"), std::string::npos);
    EXPECT_NE(lines[2].find("icmp"), std::string::npos);
}

TEST(Table, HostsByteColumnsFollowSortLayer) {
    const std::vector<HostRow> rows = {
        {"aa:bb:cc:dd:ee:ff",
         "192.0.2.10",
         "lan0",
         {5, 2048, 1024, 512, 256},
         {6, 4096, 0, 0, 0},
         1,
         kInstant},
    };
    const auto l2 = lines_of(hosts_text(rows, "l2"));
    ASSERT_EQ(l2.size(), 2U);
    EXPECT_NE(l2[0].find("SENT L2"), std::string::npos);
    EXPECT_NE(l2[0].find("RECV L2"), std::string::npos);
    EXPECT_NE(l2[1].find("2.0 KiB"), std::string::npos);
    EXPECT_NE(l2[1].find("4.0 KiB"), std::string::npos);
    const auto payload = lines_of(hosts_text(rows, "payload"));
    EXPECT_NE(payload[0].find("SENT PAYLOAD"), std::string::npos);
    EXPECT_NE(payload[1].find("256 B"), std::string::npos);
    EXPECT_NE(lines_of(hosts_text(rows, "last_seen"))[0].find("SENT L2"), std::string::npos);
    EXPECT_EQ(lines_of(hosts_text({}, "l2")).size(), 1U) << "no hosts: header only";
}

TEST(Table, StatusKeyValueLinesInDocumentedOrder) {
    const StatusMap status = {
        {"zz_new", std::string("x")},       {"pid", std::uint64_t{42}},
        {"version", std::string("0.1.0")},  {"started_at", std::uint64_t{kInstant}},
        {"last_poll_at", std::uint64_t{0}},
    };
    EXPECT_EQ(status_text(status), "version: 0.1.0\n"
                                   "pid: 42\n"
                                   "started_at: 2026-11-24 09:41:33 UTC\n"
                                   "last_poll_at: never\n"
                                   "zz_new: x\n");
}

// ---- command line ----------------------------------------------------------------------

Options parse_ok(const std::vector<std::string_view>& args) {
    const ParseResult r = parse_args(args);
    if (const auto* e = std::get_if<UsageError>(&r)) {
        ADD_FAILURE() << "unexpected usage error: " << e->message;
        return {};
    }
    return std::get<Options>(r);
}

bool is_usage_error(const std::vector<std::string_view>& args) {
    return std::holds_alternative<UsageError>(parse_args(args));
}

TEST(Args, JsonBeforeOrAfterCommand) {
    EXPECT_TRUE(parse_ok({"--json", "status"}).json);
    EXPECT_TRUE(parse_ok({"status", "--json"}).json);
    EXPECT_FALSE(parse_ok({"status"}).json);
    EXPECT_EQ(parse_ok({"interfaces"}).command, Command::Interfaces);
    EXPECT_EQ(parse_ok({"reload", "--json"}).command, Command::Reload);
}

TEST(Args, ListingDefaultsAndOverrides) {
    const Options h = parse_ok({"hosts"});
    EXPECT_EQ(h.command, Command::Hosts);
    EXPECT_EQ(h.sort, "l2");
    EXPECT_FALSE(h.top.has_value());
    const Options f = parse_ok({"--json", "flows", "--top", "5", "--sort=last_seen"});
    EXPECT_EQ(f.command, Command::Flows);
    EXPECT_EQ(f.top, 5U);
    EXPECT_EQ(f.sort, "last_seen");
    EXPECT_EQ(parse_ok({"hosts", "--top=7"}).top, 7U);
}

TEST(Args, SortKeysAndRangesAreTheDaemonsCall) {
    EXPECT_EQ(parse_ok({"hosts", "--sort", "foo"}).sort, "foo");
    EXPECT_EQ(parse_ok({"flows", "--top", "200000"}).top, 200000U);
}

TEST(Args, TopMustBeAPositiveInteger) {
    for (std::string_view bad :
         {"0", "-1", "abc", "1.5", "", "+3", " 3", "4294967296", "99999999999999999999"})
        EXPECT_TRUE(is_usage_error({"hosts", "--top", bad})) << "'" << bad << "'";
    EXPECT_EQ(parse_top("4294967295"), 4294967295U);
    EXPECT_TRUE(is_usage_error({"hosts", "--top"})) << "missing value";
}

TEST(Args, Timeout) {
    EXPECT_EQ(parse_ok({"--timeout", "2.5", "status"}).timeout_sec, 2.5);
    EXPECT_EQ(parse_ok({"status", "--timeout=3"}).timeout_sec, 3.0);
    EXPECT_EQ(parse_ok({"status"}).timeout_sec, 0.0) << "0 means the default";
    for (std::string_view bad : {"0", "0.0", "-1", "abc", "inf", "nan", "1e3", ".", "86401", ""})
        EXPECT_TRUE(is_usage_error({"--timeout", bad, "status"})) << "'" << bad << "'";
}

TEST(Args, UsageErrors) {
    EXPECT_TRUE(is_usage_error({}));
    EXPECT_TRUE(is_usage_error({"--json"}));
    EXPECT_TRUE(is_usage_error({"bogus"}));
    EXPECT_TRUE(is_usage_error({"status", "extra"}));
    EXPECT_TRUE(is_usage_error({"status", "--bogus"}));
    EXPECT_TRUE(is_usage_error({"status", "--top", "3"})) << "--top belongs to hosts/flows";
    EXPECT_TRUE(is_usage_error({"reload", "--sort", "l2"}));
    const auto r = parse_args({"frobnicate"});
    ASSERT_TRUE(std::holds_alternative<UsageError>(r));
    EXPECT_NE(std::get<UsageError>(r).message.find("frobnicate"), std::string::npos);
}

TEST(Args, HelpAndVersion) {
    EXPECT_EQ(parse_ok({"help"}).command, Command::Help);
    EXPECT_EQ(parse_ok({"--help"}).command, Command::Help);
    EXPECT_EQ(parse_ok({"-h"}).command, Command::Help);
    EXPECT_EQ(parse_ok({"hosts", "--top", "abc", "--help"}).command, Command::Help) << "--help wins";
    EXPECT_EQ(parse_ok({"--version"}).command, Command::Version);
}

TEST(Help, DocumentsEverySection) {
    const std::string h = help_text("nettallyctl 9.9.9");
    for (const char* s : {"NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "JSON OUTPUT", "EXIT STATUS",
                          "ENVIRONMENT", "DBUS_SYSTEM_BUS_ADDRESS", "status", "interfaces", "hosts", "flows",
                          "reload", "--json", "--timeout", "--top", "--sort", "nettallyctl 9.9.9"})
        EXPECT_NE(h.find(s), std::string::npos) << s;
    for (const auto& line : lines_of(h))
        EXPECT_LE(line.size(), 100U) << line;
}

// ---- exit status -----------------------------------------------------------------------

TEST(ExitStatus, DaemonErrorsAreOne) {
    EXPECT_EQ(classify_dbus_error("org.nettally.Accounting1.Error.InvalidArgument", false), kExitDaemonError);
    EXPECT_EQ(classify_dbus_error("org.nettally.Accounting1.Error.InvalidConfig", false), kExitDaemonError);
    EXPECT_EQ(classify_dbus_error("org.nettally.Accounting1.Error.Failed", false), kExitDaemonError);
    EXPECT_EQ(classify_dbus_error("org.freedesktop.DBus.Error.AccessDenied", false), kExitDaemonError);
    EXPECT_EQ(classify_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", false), kExitDaemonError);
    EXPECT_EQ(classify_dbus_error("org.freedesktop.DBus.Error.InvalidArgs", false), kExitDaemonError);
}

TEST(ExitStatus, UnreachableIsThree) {
    for (std::string_view n :
         {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
          "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout",
          "org.freedesktop.DBus.Error.Disconnected", "org.freedesktop.DBus.Error.Spawn.Failed",
          "System.Error.ECONNREFUSED"})
        EXPECT_EQ(classify_dbus_error(n, false), kExitUnreachable) << n;
    EXPECT_EQ(classify_dbus_error("org.freedesktop.DBus.Error.AccessDenied", true), kExitUnreachable)
        << "failing to open the bus is always unreachable";
}

} // namespace
} // namespace nettally::ctl
