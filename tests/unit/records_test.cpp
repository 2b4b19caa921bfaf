// Accounting records, pure logic (daemon/core/records.h): encoders (CSV quoting, JSON Lines),
// timestamps, rotation decisions, period boundaries, file names, settings overrides.
#include "core/records.h"

#include <gtest/gtest.h>

namespace nettally {
namespace {

constexpr int64_t kT = 1714564800250000; // 2024-05-01T12:00:00.250Z

TEST(Records, Rfc3339AndCompact) {
    EXPECT_EQ(rfc3339(kT), "2024-05-01T12:00:00.250Z");
    EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(compact_utc(kT), "20240501T120000Z");
}

TEST(Records, InterfaceCsvAndJsonl) {
    const Record r =
        interface_record(kT, kT + 1000000, "lan0", "lan", "ingress", Counts(3, 300, 258, 198, 174));
    EXPECT_EQ(header_line(RecordType::Interface, RecordFormat::Csv),
              "start,end,interface,role,direction,packets,l2_bytes,l3_bytes,l4_bytes,payload_bytes,"
              "rules_version\n");
    EXPECT_EQ(header_line(RecordType::Interface, RecordFormat::Jsonl), "");
    EXPECT_EQ(encode(r, RecordFormat::Csv),
              "2024-05-01T12:00:00.250Z,2024-05-01T12:00:01.250Z,lan0,lan,ingress,3,300,258,198,174,0\n");
    EXPECT_EQ(
        encode(r, RecordFormat::Jsonl),
        "{\"start\":\"2024-05-01T12:00:00.250Z\",\"end\":\"2024-05-01T12:00:01.250Z\",\"interface\":\"lan0\","
        "\"role\":\"lan\",\"direction\":\"ingress\",\"packets\":3,\"l2_bytes\":300,\"l3_bytes\":258,"
        "\"l4_bytes\":198,\"payload_bytes\":174,\"rules_version\":0}\n");
    EXPECT_EQ(encode(interface_record(kT, kT + 1000000, "lan0", "lan", "ingress",
                                      Counts(3, 300, 258, 198, 174), 42),
                     RecordFormat::Csv),
              "2024-05-01T12:00:00.250Z,2024-05-01T12:00:01.250Z,lan0,lan,ingress,3,300,258,198,174,42\n");
}

// Records type class: one per interface, direction and class per interval, the five figures, the
// class's id, name and gone flag (a JSON boolean), and the ruleset version.
TEST(Records, ClassCsvAndJsonl) {
    const Record r = class_record(kT, kT + 60000000, {"lan0", "egress", 7, "iptv, multicast", false},
                                  Counts(5, 6900, 6830, 6670, 6430), 3);
    EXPECT_EQ(header_line(RecordType::Class, RecordFormat::Csv),
              "start,end,interface,direction,class_id,class,gone,packets,l2_bytes,l3_bytes,l4_bytes,"
              "payload_bytes,rules_version\n");
    EXPECT_EQ(encode(r, RecordFormat::Csv),
              "2024-05-01T12:00:00.250Z,2024-05-01T12:01:00.250Z,lan0,egress,7,\"iptv, multicast\",false,"
              "5,6900,6830,6670,6430,3\n");
    EXPECT_EQ(encode(r, RecordFormat::Jsonl),
              "{\"start\":\"2024-05-01T12:00:00.250Z\",\"end\":\"2024-05-01T12:01:00.250Z\",\"interface\":"
              "\"lan0\",\"direction\":\"egress\",\"class_id\":7,\"class\":\"iptv, multicast\",\"gone\":false,"
              "\"packets\":5,\"l2_bytes\":6900,\"l3_bytes\":6830,\"l4_bytes\":6670,\"payload_bytes\":6430,"
              "\"rules_version\":3}\n");
    const auto gone = nlohmann::json::parse(
        encode(class_record(kT, kT, {"wan0", "ingress", 0, "other", true}, Counts(1, 2, 3, 4, 5), 4),
               RecordFormat::Jsonl));
    EXPECT_EQ(gone.at("gone"), true);
    EXPECT_EQ(gone.at("class_id"), 0);
    EXPECT_EQ(parse_record_type("class"), RecordType::Class);
    EXPECT_EQ(to_string(RecordType::Class), "class");
}

TEST(Records, CsvQuotingRoundTrips) {
    AlertRecord a;
    a.time_us = kT;
    a.name = "quota, \"monthly\"";
    a.event = "crossed";
    a.subject_kind = "host";
    a.subject = "198.18.1.2";
    a.metric = "l3";
    a.value = 1001;
    a.limit = 1000;
    a.action = "notify";
    a.message = "line1\nline2";
    const std::string line = encode(alert_record(a), RecordFormat::Csv);
    EXPECT_EQ(
        line,
        "2024-05-01T12:00:00.250Z,\"quota, \"\"monthly\"\"\",crossed,host,198.18.1.2,l3,1001,1000,notify,"
        "\"line1\nline2\",0\n");
    const auto back = parse_csv_line(std::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(back);
    ASSERT_EQ(back->size(), fields(RecordType::Alert).size());
    EXPECT_EQ((*back)[1], a.name);
    EXPECT_EQ((*back)[9], a.message);
    const auto j = nlohmann::json::parse(encode(alert_record(a), RecordFormat::Jsonl));
    EXPECT_EQ(j.at("name"), a.name);
    EXPECT_EQ(j.at("value"), 1001);
    EXPECT_FALSE(parse_csv_line("a,\"b"));
    EXPECT_FALSE(parse_csv_line("a,b\"c"));
}

TEST(Records, EveryTypeHasMatchingFields) {
    FlowRecordIn f;
    f.first_us = kT;
    f.last_us = kT;
    f.interface = "wan0";
    f.direction = "egress";
    f.family = "ipv6";
    f.proto = 17;
    f.src = "fd00:1::2";
    f.sport = 40000;
    f.dst = "fd00:2::2";
    f.dport = 53;
    f.counts = Counts(1, 100, 86, 46, 38);
    const std::vector<Record> all{
        interface_record(kT, kT, "lan0", "lan", "egress", Counts{}),
        host_record(kT, kT, {"lan0", "02:00:00:00:00:01", "198.18.1.2", "alice"}, "sent", Counts{}),
        cgroup_record(kT, kT, "/system.slice/a.service", "ingress", Counts{}),
        flow_record(f),
        alert_record(AlertRecord{}),
        class_record(kT, kT, {"lan0", "ingress", 1, "web", false}, Counts{}, 1)};
    ASSERT_EQ(all.size(), kRecordTypeCount);
    for (const auto& r : all) {
        EXPECT_EQ(r.values.size(), fields(r.type).size()) << to_string(r.type);
        EXPECT_STREQ(fields(r.type).back().name, "rules_version") << to_string(r.type);
        EXPECT_NO_THROW(encode(r, RecordFormat::Csv));
        EXPECT_NO_THROW(nlohmann::json::parse(encode(r, RecordFormat::Jsonl)));
    }
    EXPECT_EQ(encode(flow_record(f), RecordFormat::Csv),
              "2024-05-01T12:00:00.250Z,2024-05-01T12:00:00.250Z,"
              "wan0,egress,ipv6,17,fd00:1::2,40000,fd00:2::2,53,0,,,"
              "1,100,86,46,38,0\n");
    f.user = "bob";
    EXPECT_EQ(nlohmann::json::parse(encode(flow_record(f), RecordFormat::Jsonl)).at("user"), "bob");
    // A flow's class and the version of the ruleset that gave it.
    f.cls = "dns";
    f.rules_version = 12;
    EXPECT_EQ(encode(flow_record(f), RecordFormat::Csv),
              "2024-05-01T12:00:00.250Z,2024-05-01T12:00:00.250Z,"
              "wan0,egress,ipv6,17,fd00:1::2,40000,fd00:2::2,53,0,bob,dns,"
              "1,100,86,46,38,12\n");
    const auto fj = nlohmann::json::parse(encode(flow_record(f), RecordFormat::Jsonl));
    EXPECT_EQ(fj.at("class"), "dns");
    EXPECT_EQ(fj.at("rules_version"), 12);
    EXPECT_EQ(header_line(RecordType::Host, RecordFormat::Csv),
              "start,end,interface,mac,ip,user,direction,packets,l2_bytes,l3_bytes,l4_bytes,payload_bytes,"
              "rules_version\n");
    // Cgroup counts have no l2.
    EXPECT_EQ(header_line(RecordType::Cgroup, RecordFormat::Csv),
              "start,end,cgroup,direction,packets,l3_bytes,l4_bytes,payload_bytes,rules_version\n");
}

TEST(Records, PeriodEndAlignedToTheClock) {
    using namespace std::chrono;
    const int64_t t = 1714564987000000; // 12:03:07
    EXPECT_EQ(rfc3339(period_end(t, minutes(5))), "2024-05-01T12:05:00.000Z");
    EXPECT_EQ(rfc3339(period_end(t, hours(1))), "2024-05-01T13:00:00.000Z");
    EXPECT_EQ(rfc3339(period_end(t, days(1))), "2024-05-02T00:00:00.000Z");
    // On a boundary: the next one.
    EXPECT_EQ(period_end(1714564800000000, minutes(5)), 1714564800000000 + 300000000);
}

TEST(Records, FullBefore) {
    RecordsConfig c;
    c.max_file_size = 1000;
    c.max_records = 3;
    EXPECT_FALSE(full_before({100, 0}, 5000, c)) << "an empty file takes its first record";
    EXPECT_FALSE(full_before({900, 1}, 100, c)) << "exactly the limit fits";
    EXPECT_TRUE(full_before({900, 1}, 101, c));
    EXPECT_FALSE(full_before({100, 2}, 10, c));
    EXPECT_TRUE(full_before({100, 3}, 10, c));
    c.max_records = 0;
    EXPECT_FALSE(full_before({100, 1000000}, 10, c)) << "0 records = no limit";
}

TEST(Records, FileNames) {
    const std::string n = file_name("gw_1.example", RecordType::Flow, kT, 42, RecordFormat::Jsonl, true);
    EXPECT_EQ(n, "gw-1.example_flow_20240501T120000Z_000042.jsonl.gz");
    const auto p = parse_file_name(n);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->host, "gw-1.example");
    EXPECT_EQ(p->type, RecordType::Flow);
    EXPECT_EQ(p->start, "20240501T120000Z");
    EXPECT_EQ(p->seq, 42u);
    EXPECT_EQ(p->format, RecordFormat::Jsonl);
    EXPECT_TRUE(p->gz);
    EXPECT_EQ(file_name("", RecordType::Host, kT, 1234567, RecordFormat::Csv, false),
              "host_host_20240501T120000Z_1234567.csv");
    EXPECT_FALSE(parse_file_name("gw_flow_20240501T120000Z_000042.txt"));
    EXPECT_FALSE(parse_file_name("gw_bogus_20240501T120000Z_000042.csv"));
    EXPECT_FALSE(parse_file_name(".gw_flow_20240501T120000Z_000042.csv.tmp"));
    EXPECT_FALSE(parse_file_name("gw_flow_20240501T120000Z_42.csv"));
}

TEST(Records, OverridesValidatedAllOrNothing) {
    RecordsConfig base;
    base.enabled = true;
    const auto c =
        apply_overrides(base, {{"period", "5m"}, {"types", "interface=jsonl,flow"}, {"max_records", 10}});
    EXPECT_EQ(c.period, std::chrono::minutes(5));
    EXPECT_EQ(types_to_string(c), "interface=jsonl,flow=csv");
    EXPECT_EQ(c.max_records, 10u);
    EXPECT_EQ(settings_to_json(c).at("period"), "5m");
    auto msg = [&](const nlohmann::json& o) {
        try {
            apply_overrides(base, o);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(msg({{"period", "soon"}}), "period: 'soon' is not a duration (number with ms, s, m, h or d)");
    EXPECT_EQ(msg({{"period", "2s"}}), "records.interval: must be between 1s and records.period (2s)");
    EXPECT_EQ(msg({{"types", "interface,interface"}}), "types: 'interface' named twice");
    EXPECT_EQ(msg({{"types", "flow=xml"}}), "types: unknown format 'xml' for flow (csv or jsonl)");
    EXPECT_EQ(msg({{"enabled", "yes"}}), "enabled: expected a boolean");
    EXPECT_EQ(msg({{"max_file_size", 10}}),
              "records.max_file_size: must be between 512 and 1099511627776 bytes");
    EXPECT_EQ(msg({{"spool_dir", "/x"}}), "unknown setting 'spool_dir' (enabled, period, interval, types, "
                                          "max_file_size, max_records, compress)");
}

} // namespace
} // namespace nettally
