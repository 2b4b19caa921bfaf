// nettallyctl thresholds / watch: argument parsing, JSON shapes and lines (ctl/format_thresholds.h).
#include "args.h"
#include "format.h"
#include "format_thresholds.h"

#include <gtest/gtest.h>

namespace nettally::ctl {
namespace {

Options parse_ok(std::vector<std::string_view> args) {
    const ParseResult r = parse_args(args);
    if (const auto* e = std::get_if<UsageError>(&r)) {
        ADD_FAILURE() << e->message;
        return {};
    }
    return std::get<Options>(r);
}

std::string parse_err(std::vector<std::string_view> args) {
    const ParseResult r = parse_args(args);
    const auto* e = std::get_if<UsageError>(&r);
    return e ? e->message : "(accepted)";
}

TEST(FormatThresholds, ParseAdd) {
    const Options o =
        parse_ok({"--timeout", "3", "thresholds", "add", "q", "--host", "198.18.1.2", "--step", "1MB",
                  "--limit=5MB", "--min-interval", "800ms", "--direction", "sent", "--json"});
    EXPECT_EQ(o.command, Command::Thresholds);
    EXPECT_TRUE(o.json);
    EXPECT_EQ(o.timeout_sec, 3);
    EXPECT_EQ(o.thresholds.sub, "add");
    EXPECT_EQ(o.thresholds.name, "q");
    const std::map<std::string, std::string> want = {
        {"subject_kind", "host"}, {"subject", "198.18.1.2"},    {"step", "1MB"},
        {"limit", "5MB"},         {"min_interval_ms", "800ms"}, {"direction", "sent"}};
    EXPECT_EQ(o.thresholds.fields, want);
}

TEST(FormatThresholds, ParseOthers) {
    EXPECT_EQ(parse_ok({"thresholds", "list"}).thresholds.sub, "list");
    EXPECT_EQ(parse_ok({"thresholds", "usage"}).thresholds.name, "");
    EXPECT_EQ(parse_ok({"thresholds", "usage", "q"}).thresholds.name, "q");
    EXPECT_EQ(parse_ok({"thresholds", "modify", "q", "--step", "2MB"}).thresholds.fields.at("step"), "2MB");
    EXPECT_EQ(parse_ok({"thresholds", "remove", "q"}).thresholds.sub, "remove");
    EXPECT_EQ(parse_ok({"thresholds", "reset", "q"}).thresholds.sub, "reset");
    const Options w = parse_ok({"watch", "--json"});
    EXPECT_EQ(w.command, Command::Watch);
    EXPECT_TRUE(w.json);
}

TEST(FormatThresholds, UsageErrors) {
    EXPECT_EQ(parse_err({"thresholds"}),
              "thresholds needs a subcommand: list, usage, add, modify, remove or reset");
    EXPECT_EQ(parse_err({"thresholds", "frob"}),
              "unknown thresholds subcommand 'frob' (list, usage, add, modify, remove, reset)");
    EXPECT_EQ(parse_err({"thresholds", "remove"}), "thresholds remove needs a threshold NAME");
    EXPECT_EQ(parse_err({"thresholds", "add", "q", "--step", "1MB"}),
              "thresholds add needs a subject: --interface, --host, --cgroup, --flow, --user or --class");
    EXPECT_EQ(parse_err({"thresholds", "add", "q", "--host", "h"}), "thresholds add needs --step SIZE");
    EXPECT_EQ(parse_err({"thresholds", "add", "q", "--host", "h", "--interface", "lan0", "--step", "1"}),
              "give one subject (--interface, --host, --cgroup, --flow, --user or --class)");
    EXPECT_EQ(parse_err({"thresholds", "add", "q", "--host"}), "option '--host' needs a value");
    EXPECT_EQ(parse_err({"thresholds", "add", "q", "--colour", "red"}), "unknown option '--colour'");
    EXPECT_EQ(parse_err({"thresholds", "modify", "q"}),
              "thresholds modify needs at least one option to change");
    EXPECT_EQ(parse_err({"thresholds", "list", "--step", "1"}),
              "option '--step' is only valid with 'thresholds add' and 'thresholds modify'");
    EXPECT_EQ(parse_err({"watch", "extra"}), "unexpected argument 'extra'");
}

TEST(FormatThresholds, JsonAndTables) {
    const Dict d = {{"name", std::string("q")},
                    {"source", std::string("runtime")},
                    {"subject_kind", std::string("host")},
                    {"subject", std::string("198.18.1.2")},
                    {"direction", std::string("sent")},
                    {"layer", std::string("l3")},
                    {"period", std::string("since")},
                    {"step", std::uint64_t{1000000}},
                    {"limit", std::uint64_t{5000000}},
                    {"action", std::string("notify")},
                    {"set_at", std::uint64_t{0}}};
    const Json j = thresholds_json({d});
    EXPECT_EQ(j["thresholds"][0]["step"], 1000000);
    EXPECT_TRUE(j["thresholds"][0]["set_at"].is_null()) << "times as TIME, 0 = null";
    EXPECT_EQ(thresholds_text({d}),
              "NAME  SOURCE   SUBJECT          DIR   LAYER  PERIOD    STEP   LIMIT  ACTION\n"
              "q     runtime  host:198.18.1.2  sent  l3     since   1.0 MB  5.0 MB  notify\n");
    const Dict u = {{"name", std::string("q")},        {"subject", std::string("host:198.18.1.2")},
                    {"usage", std::uint64_t{2500000}}, {"step_index", std::uint64_t{2}},
                    {"limit", std::uint64_t{5000000}}, {"period_end", std::uint64_t{0}},
                    {"action", std::string("notify")}, {"updated_at", std::uint64_t{1773144000000000}}};
    EXPECT_EQ(usage_json({u})["usage"][0]["updated_at"], "2026-03-10T12:00:00.000000Z");
    EXPECT_EQ(usage_text({u}), "NAME  SUBJECT           USAGE  STEPS   LIMIT   USED  PERIOD END  ACTION\n"
                               "q     host:198.18.1.2  2.5 MB      2  5.0 MB  50.0%  -           notify\n");
}

TEST(FormatThresholds, WatchLines) {
    const WatchEvent e{"StepCrossed",
                       {{"name", std::string("q")},
                        {"subject", std::string("host:198.18.1.2")},
                        {"usage", std::uint64_t{3000000}},
                        {"step_index", std::uint64_t{3}},
                        {"skipped", std::uint64_t{0}},
                        {"time", std::uint64_t{1773144000000000}}}};
    EXPECT_EQ(watch_json_line(e),
              "{\"signal\":\"StepCrossed\",\"name\":\"q\",\"subject\":\"host:198.18.1.2\",\"usage\":3000000,"
              "\"step_index\":3,\"skipped\":0,\"time\":\"2026-03-10T12:00:00.000000Z\"}\n");
    EXPECT_EQ(watch_text_line(e),
              "2026-03-10 12:00:00 StepCrossed q host:198.18.1.2 usage=3.0 MB step_index=3\n");
}

} // namespace
} // namespace nettally::ctl
