// `nettallyctl cgroups` without a bus (ctl/format.h): the --json shape (flat and --tree), the "l2":
// null convention, the tables (flat paths and the drawn tree), and the argument rules for --tree.
#include "args.h"
#include "format.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace nettally::ctl {
namespace {

std::vector<std::string> keys_in_order(const Json& obj) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : obj.items())
        keys.push_back(k);
    return keys;
}

Counters4 c4(std::uint64_t p, std::uint64_t l3, std::uint64_t l4, std::uint64_t pl) {
    return Counters4{p, l3, l4, pl};
}

// "/" > "/system.slice" > {a.service, b.service (gone)}, and "/ntt" > "/ntt/x" > "/ntt/x/n".
std::vector<CgroupEntry> sample() {
    return {
        {"/", "-.slice", c4(10, 5000, 4000, 3000), c4(8, 4000, 3200, 2400), {}, {}, false},
        {"/ntt", "", c4(4, 2000, 1600, 1200), c4(4, 2000, 1600, 1200), {}, {}, false},
        {"/ntt/x", "", c4(4, 2000, 1600, 1200), c4(4, 2000, 1600, 1200), c4(1, 500, 400, 300),
         c4(1, 500, 400, 300), false},
        {"/ntt/x/n", "", c4(3, 1500, 1200, 900), c4(3, 1500, 1200, 900), c4(3, 1500, 1200, 900),
         c4(3, 1500, 1200, 900), false},
        {"/system.slice", "system.slice", c4(6, 3000, 2400, 1800), c4(4, 2000, 1600, 1200), {}, {}, false},
        {"/system.slice/a.service", "a.service", c4(5, 2500, 2000, 1500), c4(4, 2000, 1600, 1200),
         c4(5, 2500, 2000, 1500), c4(4, 2000, 1600, 1200), false},
        {"/system.slice/b.service", "b.service", c4(1, 500, 400, 300), {}, c4(1, 500, 400, 300), {}, true},
    };
}

CgroupBuckets buckets() {
    return {{"egress.overflow", {}}, {"ingress.untracked", c4(2, 200, 160, 120)}};
}

TEST(CgroupsJson, FlatShapeAndNullL2) {
    const Json j = cgroups_json(sample(), buckets(), false);
    EXPECT_EQ(keys_in_order(j), (std::vector<std::string>{"cgroups", "buckets"}));
    ASSERT_EQ(j["cgroups"].size(), 7u);
    const Json& a = j["cgroups"][5];
    EXPECT_EQ(keys_in_order(a),
              (std::vector<std::string>{"path", "unit", "ingress", "egress", "self", "gone"}));
    EXPECT_EQ(a["path"], "/system.slice/a.service");
    EXPECT_EQ(a["unit"], "a.service");
    EXPECT_EQ(keys_in_order(a["ingress"]), (std::vector<std::string>{"packets", "l2", "l3", "l4", "payload"}))
        << "the same keys, in the same order, as every other counter object";
    EXPECT_TRUE(a["ingress"]["l2"].is_null()) << "cgroup hooks never see layer 2";
    EXPECT_EQ(a["ingress"]["l3"], 2500);
    EXPECT_EQ(a["egress"]["payload"], 1200);
    EXPECT_EQ(keys_in_order(a["self"]), (std::vector<std::string>{"ingress", "egress"}));
    EXPECT_EQ(a["self"]["ingress"]["packets"], 5);
    EXPECT_EQ(a["gone"], false);
    EXPECT_EQ(j["cgroups"][6]["gone"], true);
    EXPECT_EQ(j["cgroups"][1]["unit"], "") << "a cgroup systemd does not manage";
    EXPECT_FALSE(a.contains("children")) << "only --tree nests";
    EXPECT_EQ(j["buckets"]["ingress.untracked"]["l4"], 160);
    EXPECT_TRUE(j["buckets"]["egress.overflow"]["l2"].is_null());
    EXPECT_EQ(cgroups_json({}, {}, false), Json::parse(R"({"cgroups": [], "buckets": {}})"));
}

TEST(CgroupsJson, TreeNestsChildren) {
    const Json j = cgroups_json(sample(), buckets(), true);
    ASSERT_EQ(j["cgroups"].size(), 1u) << "only the top entry";
    const Json& root = j["cgroups"][0];
    EXPECT_EQ(root["path"], "/");
    ASSERT_EQ(root["children"].size(), 2u);
    EXPECT_EQ(root["children"][0]["path"], "/ntt");
    EXPECT_EQ(root["children"][1]["path"], "/system.slice");
    EXPECT_EQ(root["children"][0]["children"][0]["children"][0]["path"], "/ntt/x/n");
    EXPECT_EQ(root["children"][0]["children"][0]["children"][0]["children"], Json::array());
    const Json& slice = root["children"][1];
    ASSERT_EQ(slice["children"].size(), 2u);
    EXPECT_EQ(slice["children"][0]["path"], "/system.slice/a.service");
    EXPECT_EQ(slice["children"][1]["path"], "/system.slice/b.service");
    EXPECT_EQ(slice["children"][1]["gone"], true);
    EXPECT_EQ(j["buckets"], cgroups_json(sample(), buckets(), false)["buckets"]);
    // Without "/" (a daemon that lists only subtrees): several top entries, still nested.
    auto rows = sample();
    rows.erase(rows.begin());
    const Json k = cgroups_json(rows, {}, true);
    ASSERT_EQ(k["cgroups"].size(), 2u);
    EXPECT_EQ(k["cgroups"][1]["children"].size(), 2u);
}

TEST(CgroupsText, FlatTable) {
    EXPECT_EQ(cgroups_text(sample(), buckets(), false),
              "PATH                     UNIT          IN PKTS    IN L3  IN PAYLOAD  OUT PKTS   OUT L3  OUT "
              "PAYLOAD  STATE\n"
              "/                        -.slice            10  4.9 KiB     2.9 KiB         8  3.9 KiB      "
              "2.3 KiB\n"
              "/ntt                     -                   4  2.0 KiB     1.2 KiB         4  2.0 KiB      "
              "1.2 KiB\n"
              "/ntt/x                   -                   4  2.0 KiB     1.2 KiB         4  2.0 KiB      "
              "1.2 KiB\n"
              "/ntt/x/n                 -                   3  1.5 KiB       900 B         3  1.5 KiB        "
              "900 B\n"
              "/system.slice            system.slice        6  2.9 KiB     1.8 KiB         4  2.0 KiB      "
              "1.2 KiB\n"
              "/system.slice/a.service  a.service           5  2.4 KiB     1.5 KiB         4  2.0 KiB      "
              "1.2 KiB\n"
              "/system.slice/b.service  b.service           1    500 B       300 B         0      0 B        "
              "  0 B  gone\n"
              "\n"
              "Not in any cgroup row (non-zero buckets):\n"
              "DIR      BUCKET     PACKETS     L3     L4  PAYLOAD\n"
              "ingress  untracked        2  200 B  160 B    120 B\n");
}

TEST(CgroupsText, TreeDrawsTheHierarchy) {
    // systemd-cgls style; columns line up by code points, not bytes.
    EXPECT_EQ(
        cgroups_text(sample(), {}, true),
        "CGROUP           UNIT          IN PKTS    IN L3  IN PAYLOAD  OUT PKTS   OUT L3  OUT PAYLOAD  STATE\n"
        "/                -.slice            10  4.9 KiB     2.9 KiB         8  3.9 KiB      2.3 KiB\n"
        "├─ ntt           -                   4  2.0 KiB     1.2 KiB         4  2.0 KiB      1.2 KiB\n"
        "│  └─ x          -                   4  2.0 KiB     1.2 KiB         4  2.0 KiB      1.2 KiB\n"
        "│     └─ n       -                   3  1.5 KiB       900 B         3  1.5 KiB        900 B\n"
        "└─ system.slice  system.slice        6  2.9 KiB     1.8 KiB         4  2.0 KiB      1.2 KiB\n"
        "   ├─ a.service  a.service           5  2.4 KiB     1.5 KiB         4  2.0 KiB      1.2 KiB\n"
        "   └─ b.service  b.service           1    500 B       300 B         0      0 B          0 B  gone\n")
        << "no buckets, no bucket table";
}

TEST(CgroupsArgs, TreeOnlyWithCgroups) {
    auto opts = [](std::vector<std::string_view> a) { return parse_args(a); };
    const auto ok = opts({"cgroups", "--tree", "--json"});
    ASSERT_TRUE(std::holds_alternative<Options>(ok));
    EXPECT_EQ(std::get<Options>(ok).command, Command::Cgroups);
    EXPECT_TRUE(std::get<Options>(ok).tree);
    EXPECT_TRUE(std::get<Options>(ok).json);
    const auto flat = opts({"--json", "cgroups"});
    ASSERT_TRUE(std::holds_alternative<Options>(flat));
    EXPECT_FALSE(std::get<Options>(flat).tree);
    const auto bad = opts({"flows", "--tree"});
    ASSERT_TRUE(std::holds_alternative<UsageError>(bad));
    EXPECT_EQ(std::get<UsageError>(bad).message, "--tree is only valid with 'cgroups', not 'flows'");
    const auto top = opts({"cgroups", "--top", "3"});
    ASSERT_TRUE(std::holds_alternative<UsageError>(top));
    EXPECT_EQ(std::get<UsageError>(top).message,
              "--top is only valid with 'hosts', 'flows' and 'top', not 'cgroups'");
    const std::string help = help_text("nettallyctl test");
    EXPECT_NE(help.find("cgroups [--tree]"), std::string::npos);
    EXPECT_NE(help.find("\"l2\": null"), std::string::npos);
}

} // namespace
} // namespace nettally::ctl
