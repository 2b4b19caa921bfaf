// The records section of the config (daemon/core/records.h RecordsConfig): defaults, the list and
// map forms of types, the default format, and rejections with their exact messages.
#include "config_section_test.h"
#include "core/config.h"

#include <gtest/gtest.h>

#include <string>

namespace nettally {
namespace {

using config_test::error_of;
using config_test::parse;
using config_test::rules;

TEST(ConfigRecords, Defaults) {
    for (const std::string tail : {"", "records:\n"}) {
        const Config c = parse(tail);
        EXPECT_FALSE(c.records.enabled);
        EXPECT_EQ(c.records.period, std::chrono::hours(1));
        EXPECT_EQ(c.records.interval, std::chrono::minutes(1));
        EXPECT_EQ(c.records.max_file_size, 64ull << 20);
        EXPECT_EQ(c.records.max_records, 1000000u);
        EXPECT_FALSE(c.records.compress);
        EXPECT_TRUE(c.records.spool_dir.empty());
        for (auto t : kRecordTypes) {
            EXPECT_TRUE(c.records.type(t).enabled);
            EXPECT_EQ(c.records.type(t).format, RecordFormat::Csv);
        }
    }
}

TEST(ConfigRecords, ListOfTypesWithDefaultFormat) {
    const Config c = parse("records:\n"
                           "  enabled: true\n"
                           "  period: 5m\n"
                           "  interval: 30s\n"
                           "  format: jsonl\n"
                           "  types: [interface, flow]\n"
                           "  max_file_size: 10M\n"
                           "  max_records: 0\n"
                           "  compress: gzip\n"
                           "  spool_dir: /var/spool/nettally\n");
    EXPECT_TRUE(c.records.enabled);
    EXPECT_EQ(c.records.period, std::chrono::minutes(5));
    EXPECT_EQ(c.records.interval, std::chrono::seconds(30));
    EXPECT_EQ(types_to_string(c.records), "interface=jsonl,flow=jsonl");
    EXPECT_EQ(c.records.max_file_size, 10ull << 20);
    EXPECT_EQ(c.records.max_records, 0u);
    EXPECT_TRUE(c.records.compress);
    EXPECT_EQ(c.records.spool_dir, "/var/spool/nettally");
}

TEST(ConfigRecords, MapOfTypes) {
    const Config c = parse("records:\n"
                           "  format: jsonl\n"
                           "  types:\n"
                           "    interface: csv\n"
                           "    host: {format: csv}\n"
                           "    alert: {}\n"
                           "    flow: {enabled: false, format: csv}\n");
    EXPECT_EQ(types_to_string(c.records), "interface=csv,host=csv,alert=jsonl");
}

TEST(ConfigRecords, Rejections) {
    EXPECT_EQ(
        error_of("records:\n  types: [interface, packets]\n"),
        "test.yaml:5:22: records.types[1]: unknown record type 'packets' (valid: interface, host, cgroup, "
        "flow, alert, class)");
    EXPECT_EQ(error_of("records:\n  types: [host, host]\n"),
              "test.yaml:5:17: records.types[1]: record type 'host' listed twice");
    EXPECT_EQ(error_of("records:\n  types:\n    flow: xml\n"),
              "test.yaml:6:11: records.types.flow: unknown format 'xml' (valid: csv, jsonl)");
    EXPECT_EQ(error_of("records:\n  period: 500ms\n"),
              "test.yaml:5:11: records.period: duration '500ms' is out of range (1s .. 7d)");
    EXPECT_EQ(error_of("records:\n  period: 1m\n  interval: 5m\n"),
              "test.yaml:6:13: records.interval: records.interval (5m) must not be longer than "
              "records.period (1m)");
    EXPECT_EQ(
        error_of("records:\n  max_file_size: 100\n"),
        "test.yaml:5:18: records.max_file_size: invalid size '100' (512 .. 1T bytes: 64M, 64MiB, 100MB)");
    EXPECT_EQ(error_of("records:\n  compress: zstd\n"),
              "test.yaml:5:13: records.compress: unknown compression 'zstd' (valid: none, gzip)");
    EXPECT_EQ(error_of("records:\n  spool_dir: spool\n"),
              "test.yaml:5:14: records.spool_dir: must be an absolute path, got 'spool'");
    EXPECT_EQ(
        error_of("records:\n  enable: true\n"),
        "test.yaml:5:3: records.enable: unknown key (valid keys: enabled, period, interval, format, types, "
        "max_file_size, max_records, compress, spool_dir)");
}

} // namespace
} // namespace nettally
