// The cgroups section of the config (daemon/core/config.h CgroupConfig): defaults, a full section,
// and every rejection as its exact one-line message (file, line, column, key path, problem).
#include "config_section_test.h"
#include "core/config.h"

#include <gtest/gtest.h>

#include <string>

namespace nettally {
namespace {

using config_test::error_of;
using config_test::parse;
using config_test::rules;

TEST(ConfigCgroups, DefaultsWhenAbsentOrEmpty) {
    for (const std::string tail : {"", "cgroups:\n", "cgroups:\n  # everything commented out\n"}) {
        const Config c = parse_config(std::string(rules) + tail, "test.yaml");
        EXPECT_FALSE(c.cgroups.enabled) << tail;
        EXPECT_EQ(c.cgroups.subtrees, std::vector<std::string>{"/"}) << tail;
        EXPECT_EQ(c.cgroups.max_entries, static_cast<uint32_t>(NT_CG_DEFAULT_MAX_ENTRIES)) << tail;
        EXPECT_FALSE(c.cgroups.all_netns) << tail;
    }
}

TEST(ConfigCgroups, FullSection) {
    const Config c = parse_config(std::string(rules) + "cgroups:\n"
                                                       "  enabled: true\n"
                                                       "  subtrees: [\"/system.slice\", \"/ntt-test\"]\n"
                                                       "  max_entries: 16\n"
                                                       "  netns: all\n",
                                  "test.yaml");
    EXPECT_TRUE(c.cgroups.enabled);
    EXPECT_EQ(c.cgroups.subtrees, (std::vector<std::string>{"/system.slice", "/ntt-test"}));
    EXPECT_EQ(c.cgroups.max_entries, 16u);
    EXPECT_TRUE(c.cgroups.all_netns);

    const Config block = parse_config(std::string(rules) + "cgroups:\n"
                                                           "  subtrees:\n"
                                                           "    - /\n",
                                      "test.yaml");
    EXPECT_EQ(block.cgroups.subtrees, std::vector<std::string>{"/"});
    const Config own = parse_config(std::string(rules) + "cgroups:\n  netns: own\n", "test.yaml");
    EXPECT_FALSE(own.cgroups.all_netns);
    const Config deep = parse_config(
        std::string(rules) + "cgroups:\n  subtrees: [/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15]\n", "test.yaml");
    EXPECT_EQ(deep.cgroups.subtrees.size(), 1u) << "15 levels is the deepest root the kernel side can match";
}

TEST(ConfigCgroups, Errors) {
    const struct {
        std::string tail;
        std::string message;
    } cases[] = {
        {"cgroups: yes\n", "test.yaml:4:10: cgroups: expected a map, got the value 'yes'"},
        {"cgroups:\n  enabled: yes\n", "test.yaml:5:12: cgroups.enabled: expected true or false, got 'yes'"},
        {"cgroups:\n  enable: true\n",
         "test.yaml:5:3: cgroups.enable: unknown key (valid keys: enabled, subtrees, max_entries, netns)"},
        {"cgroups:\n  subtrees: /system.slice\n", "test.yaml:5:13: cgroups.subtrees: expected a list of "
                                                  "cgroup paths such as [\"/system.slice\"], got the "
                                                  "value '/system.slice'"},
        {"cgroups:\n  subtrees:\n",
         "test.yaml:5:3: cgroups.subtrees: missing value (expected a list of cgroup paths such as "
         "[\"/system.slice\"])"},
        {"cgroups:\n  subtrees: []\n",
         "test.yaml:5:13: cgroups.subtrees: must list at least one subtree (\"/\" tracks every cgroup)"},
        {"cgroups:\n  subtrees: [system.slice]\n", "test.yaml:5:14: cgroups.subtrees[0]: 'system.slice' is "
                                                   "not an absolute cgroup path (start it with '/', "
                                                   "e.g. /system.slice)"},
        {"cgroups:\n  subtrees: [\"/a\", \"/b/\"]\n",
         "test.yaml:5:20: cgroups.subtrees[1]: '/b/' is not a normalized cgroup path (no empty, '.' or '..' "
         "components and no trailing '/')"},
        {"cgroups:\n  subtrees: [/a//b]\n", "test.yaml:5:14: cgroups.subtrees[0]: '/a//b' is not a "
                                            "normalized cgroup path (no empty, '.' or '..' "
                                            "components and no trailing '/')"},
        {"cgroups:\n  subtrees: [/a/../b]\n", "test.yaml:5:14: cgroups.subtrees[0]: '/a/../b' is not a "
                                              "normalized cgroup path (no empty, '.' or '..' "
                                              "components and no trailing '/')"},
        {"cgroups:\n  subtrees: [[/a]]\n",
         "test.yaml:5:14: cgroups.subtrees[0]: expected a cgroup path such as /system.slice, got a list"},
        {"cgroups:\n  subtrees: [/a, /b, /a]\n", "test.yaml:5:22: cgroups.subtrees[2]: duplicate subtree "
                                                 "'/a' (already listed as cgroups.subtrees[0])"},
        {"cgroups:\n  subtrees: [/system.slice, /system.slice/foo.service]\n",
         "test.yaml:5:29: cgroups.subtrees[1]: '/system.slice/foo.service' is inside '/system.slice' "
         "(cgroups.subtrees[0]), which already tracks it"},
        {"cgroups:\n  subtrees: [/system.slice/foo.service, /]\n",
         "test.yaml:5:41: cgroups.subtrees[1]: '/' contains '/system.slice/foo.service' "
         "(cgroups.subtrees[0]); "
         "list only the outer one"},
        {"cgroups:\n  subtrees: [/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16]\n",
         "test.yaml:5:14: cgroups.subtrees[0]: '/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16' is 16 levels deep; "
         "subtree roots deeper than 15 levels are not supported"},
        {"cgroups:\n  subtrees: [/a0, /a1, /a2, /a3, /a4, /a5, /a6, /a7, /a8, /a9, /b0, /b1, /b2, /b3, /b4, "
         "/b5, "
         "/b6]\n",
         "test.yaml:5:94: cgroups.subtrees[16]: too many subtrees: at most 16 are supported"},
        {"cgroups:\n  max_entries: 0\n",
         "test.yaml:5:16: cgroups.max_entries: 0 is out of range (1 .. 1048576)"},
        {"cgroups:\n  max_entries: 2000000\n",
         "test.yaml:5:16: cgroups.max_entries: 2000000 is out of range (1 .. 1048576)"},
        {"cgroups:\n  netns: mine\n",
         "test.yaml:5:10: cgroups.netns: unknown netns 'mine' (valid: own, all)"},
    };
    for (const auto& c : cases)
        EXPECT_EQ(error_of(c.tail), c.message) << c.tail;
}

} // namespace
} // namespace nettally
