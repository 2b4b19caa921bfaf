// Unit tests for daemon/core/config: duration syntax, interface matching, every class of config
// error (exact one-line messages, so a wrong line, column or key path fails), a full valid config
// and the shipped config/nettally.yaml.
#include "core/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include <unistd.h>

namespace nettally {
namespace {

using std::chrono::milliseconds;

// Every error test starts from this valid rule list so that only the line under test is wrong.
constexpr const char* valid_rules = "interfaces:\n"
                                    "  - name: eth0\n"
                                    "    role: lan\n";

// The one-line message of the ConfigError that `yaml` must raise.
std::string error_of(const std::string& yaml) {
    try {
        parse_config(yaml, "test.yaml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "accepted, but an error was expected:\n" << yaml;
    return "";
}

// ---- parse_duration -------------------------------------------------------------------------

TEST(ParseDuration, AcceptsEachUnitAndExactFractions) {
    const struct {
        const char* text;
        int64_t ms;
    } cases[] = {
        {"500ms", 500},
        {"1s", 1000},
        {"5m", 300000},
        {"2h", 7200000},
        {"1d", 86400000},
        {"0s", 0},
        {"0ms", 0},
        {"007s", 7000},
        {"1.5s", 1500},
        {"0.25m", 15000},
        {"1.0ms", 1},
        {"0.001s", 1},
        {"1.500000000s", 1500},
        {"9223372036854775807ms", std::numeric_limits<int64_t>::max()},
        {"106751991167d", 106751991167LL * 86400000LL},
    };
    for (const auto& c : cases) {
        const auto d = parse_duration(c.text);
        ASSERT_TRUE(d.has_value()) << c.text;
        EXPECT_EQ(d->count(), c.ms) << c.text;
    }
}

TEST(ParseDuration, RejectsEverythingElse) {
    const char* cases[] = {
        "",                      // empty
        "0",                     // bare number, even zero: the unit is mandatory
        "5",                     // bare number
        "abc",                   // garbage
        "ms",                    // unit without number
        "-1s",                   // negative
        "+1s",                   // explicit sign
        " 1s",                   // surrounding space
        "1s ",                   // trailing space
        "1 s",                   // space before unit
        "1S",                    // units are lowercase
        "1sec",                  // unknown unit
        "1us",                   // below millisecond resolution
        "1.s",                   // dot without fraction
        ".5s",                   // fraction without integer part
        "1..5s",                 // two dots
        "1.5ms",                 // not a whole number of milliseconds
        "0.0001s",               // 0.1 ms
        "1e3ms",                 // exponent
        "1,5s",                  // decimal comma
        "0x10s",                 // hex
        "1s1m",                  // compound durations are not supported
        "1.0000000001s",         // more than 9 significant fractional digits
        "9223372036854775808ms", // one past the largest millisecond count
        "106751991168d",         // overflows when scaled
        "99999999999999999999s", // overflows uint64 while parsing
    };
    for (const char* text : cases)
        EXPECT_FALSE(parse_duration(text).has_value()) << "'" << text << "'";
}

// ---- interface matching ---------------------------------------------------------------------

TEST(InterfaceGlob, DetectsMetacharacters) {
    EXPECT_FALSE(interface_is_glob("eth0"));
    EXPECT_FALSE(interface_is_glob(""));
    EXPECT_FALSE(interface_is_glob("br-lan.10"));
    EXPECT_TRUE(interface_is_glob("*"));
    EXPECT_TRUE(interface_is_glob("wan?"));
    EXPECT_TRUE(interface_is_glob("eth[0-3]"));
}

TEST(MatchInterface, FirstMatchingRuleWins) {
    const Config config = parse_config("interfaces:\n"
                                       "  - name: wan0\n" // line 2
                                       "    role: wan\n"
                                       "  - name: ppp*\n" // line 4
                                       "    role: wan\n"
                                       "  - name: eth[0-3]\n" // line 6
                                       "    role: lan\n"
                                       "    mode: xdp\n"
                                       "  - name: \"*\"\n" // line 9
                                       "    role: lan\n",
                                       "test.yaml");
    ASSERT_EQ(config.interfaces.size(), 4u);

    const InterfaceRule* r = match_interface(config, "wan0");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r, &config.interfaces[0]);
    EXPECT_EQ(r->role, Role::Wan);
    EXPECT_EQ(r->line, 2);

    r = match_interface(config, "ppp0");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r, &config.interfaces[1]);
    EXPECT_EQ(r->line, 4);

    r = match_interface(config, "eth2");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r, &config.interfaces[2]);
    EXPECT_EQ(r->mode, AttachMode::Xdp);

    // eth7 is outside [0-3] and wan01 is not exactly wan0: both fall through to the catch-all.
    EXPECT_EQ(match_interface(config, "eth7"), &config.interfaces[3]);
    EXPECT_EQ(match_interface(config, "wan01"), &config.interfaces[3]);
    EXPECT_EQ(match_interface(config, "wan01")->role, Role::Lan);
}

TEST(MatchInterface, OrderDecidesEvenWhenRulesOverlap) {
    // Built by hand: the parser would reject the unreachable eth0 rule, but matching itself must
    // still be strictly first-match.
    Config config;
    config.interfaces = {{"eth*", Role::Wan, AttachMode::Tc, 1}, {"eth0", Role::Lan, AttachMode::Tc, 2}};
    EXPECT_EQ(match_interface(config, "eth0"), &config.interfaces[0]);
}

TEST(MatchInterface, NoMatchAndLiteralNamesAreExact) {
    const Config config = parse_config("interfaces:\n"
                                       "  - name: eth0\n"
                                       "    role: lan\n"
                                       "  - name: wan?\n"
                                       "    role: wan\n",
                                       "test.yaml");
    EXPECT_EQ(match_interface(config, "eth1"), nullptr);
    EXPECT_EQ(match_interface(config, "eth"), nullptr);
    EXPECT_EQ(match_interface(config, "eth00"), nullptr);
    EXPECT_EQ(match_interface(config, "wan10"), nullptr); // ? is exactly one character
    EXPECT_EQ(match_interface(config, "wan1"), &config.interfaces[1]);
    EXPECT_EQ(match_interface(config, std::string_view("eth0\0x", 6)), nullptr);
    EXPECT_EQ(match_interface(Config{}, "eth0"), nullptr);
}

// ---- valid configs --------------------------------------------------------------------------

TEST(ParseConfig, FullConfig) {
    const Config config = parse_config("# comment\n"
                                       "interfaces:\n"
                                       "  - name: wan0\n"
                                       "    role: wan\n"
                                       "    mode: xdp\n"
                                       "  - {name: \"br*\", role: lan, mode: tc}\n"
                                       "poll_interval: 2.5s\n"
                                       "state_dir: /srv/nettally\n"
                                       "flows:\n"
                                       "  max_entries: 1024\n"
                                       "hosts:\n"
                                       "  max_entries: 4194304\n"
                                       "  enabled: false\n"
                                       "log_level: debug\n",
                                       "full.yaml");
    EXPECT_EQ(config.path, "");
    ASSERT_EQ(config.interfaces.size(), 2u);
    EXPECT_EQ(config.interfaces[0].name, "wan0");
    EXPECT_EQ(config.interfaces[0].role, Role::Wan);
    EXPECT_EQ(config.interfaces[0].mode, AttachMode::Xdp);
    EXPECT_EQ(config.interfaces[0].line, 3);
    EXPECT_EQ(config.interfaces[1].name, "br*");
    EXPECT_EQ(config.interfaces[1].role, Role::Lan);
    EXPECT_EQ(config.interfaces[1].mode, AttachMode::Tc);
    EXPECT_EQ(config.interfaces[1].line, 6);
    EXPECT_EQ(config.poll_interval, milliseconds(2500));
    EXPECT_EQ(config.state_dir, std::filesystem::path("/srv/nettally"));
    EXPECT_EQ(config.max_flows, 1024u);
    EXPECT_EQ(config.max_hosts, 4194304u);
    EXPECT_FALSE(config.count_hosts);
    EXPECT_EQ(config.log_level, "debug");
}

TEST(ParseConfig, DefaultsComeFromTheAbi) {
    const Config config = parse_config(valid_rules, "test.yaml");
    ASSERT_EQ(config.interfaces.size(), 1u);
    EXPECT_EQ(config.interfaces[0].mode, AttachMode::Tc);
    EXPECT_EQ(config.poll_interval, milliseconds(1000));
    EXPECT_EQ(config.state_dir, std::filesystem::path("/var/lib/nettally"));
    EXPECT_EQ(config.max_flows, uint32_t{NT_DEFAULT_MAX_FLOWS});
    EXPECT_EQ(config.max_flows, 65536u);
    EXPECT_EQ(config.max_hosts, 16384u);
    EXPECT_TRUE(config.count_hosts);
    EXPECT_EQ(config.log_level, "info");
}

TEST(ParseConfig, RangeBoundsAreInclusive) {
    const Config low = parse_config(std::string(valid_rules) + "poll_interval: 100ms\n"
                                                               "flows: {max_entries: 1024}\n"
                                                               "hosts: {max_entries: 256}\n",
                                    "test.yaml");
    EXPECT_EQ(low.poll_interval, milliseconds(100));
    EXPECT_EQ(low.max_flows, 1024u);
    EXPECT_EQ(low.max_hosts, 256u);
    const Config high = parse_config(std::string(valid_rules) + "poll_interval: 1h\n"
                                                                "flows: {max_entries: 16777216}\n"
                                                                "hosts: {max_entries: 4194304}\n",
                                     "test.yaml");
    EXPECT_EQ(high.poll_interval, milliseconds(3600000));
    EXPECT_EQ(high.max_flows, 16777216u);
    EXPECT_EQ(high.max_hosts, 4194304u);
}

TEST(ParseConfig, EmptySectionMeansDefaults) {
    const Config config = parse_config(std::string(valid_rules) + "flows:\n"
                                                                  "  # max_entries: 2048\n"
                                                                  "hosts:\n",
                                       "test.yaml");
    EXPECT_EQ(config.max_flows, 65536u);
    EXPECT_EQ(config.max_hosts, 16384u);
}

TEST(ParseConfig, QuotedNumbersAndCapitalisedBooleans) {
    const Config config = parse_config(std::string(valid_rules) + "flows: {max_entries: \"2048\"}\n"
                                                                  "hosts: {enabled: FALSE}\n",
                                       "test.yaml");
    EXPECT_EQ(config.max_flows, 2048u);
    EXPECT_FALSE(config.count_hosts);
}

TEST(ToString, RoleAndMode) {
    EXPECT_EQ(to_string(Role::Lan), "lan");
    EXPECT_EQ(to_string(Role::Wan), "wan");
    EXPECT_EQ(to_string(AttachMode::Tc), "tc");
    EXPECT_EQ(to_string(AttachMode::Xdp), "xdp");
    EXPECT_EQ(static_cast<int>(Role::Wan), NT_ROLE_WAN);
}

// ---- errors ---------------------------------------------------------------------------------

TEST(ConfigErrors, ExposesItsParts) {
    try {
        parse_config(std::string(valid_rules) + "poll_interval: abc\n", "/etc/nettally/nettally.yaml");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(),
                     "/etc/nettally/nettally.yaml:4:16: poll_interval: invalid duration 'abc' (use a "
                     "number with ms, s, m, h or d, e.g. 500ms, 1s, 5m)");
        EXPECT_EQ(e.source(), "/etc/nettally/nettally.yaml");
        EXPECT_EQ(e.line(), 4);
        EXPECT_EQ(e.column(), 16);
        EXPECT_EQ(e.key_path(), "poll_interval");
        EXPECT_EQ(e.problem(),
                  "invalid duration 'abc' (use a number with ms, s, m, h or d, e.g. 500ms, 1s, 5m)");
    }
}

TEST(ConfigErrors, EmptySourceNameIsLabelled) {
    try {
        parse_config("", "");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(e.source(), "<config>");
    }
}

TEST(ConfigErrors, YamlSyntax) {
    EXPECT_EQ(error_of(std::string(valid_rules) + "poll_interval: [1s\n"),
              "test.yaml:5:1: yaml: end of sequence flow not found");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: lan\n"
                       "   mode: tc\n"),
              "test.yaml:4:4: yaml: end of sequence not found");
    EXPECT_EQ(error_of("poll_interval: 1s: 2s\n"), "test.yaml:1:18: yaml: illegal map value");
}

// yaml-cpp 0.7's LoadAll never returns (and keeps allocating) on a document that cannot start.
// Found by tests/fuzz (config target).
TEST(ConfigErrors, DocumentThatCannotStartIsAnErrorNotAHang) {
    EXPECT_EQ(error_of(",\n"), "test.yaml:1:1: yaml: unexpected ','");
    EXPECT_EQ(error_of(", a?[b ]\n: 1\n"), "test.yaml:1:1: yaml: unexpected ','");
}

// yaml-cpp quotes the offending character raw; the message must still be one line. Found by
// tests/fuzz (config target): a backslash before a control character in a quoted string.
TEST(ConfigErrors, YamlMessageStaysOnOneLine) {
    EXPECT_EQ(error_of(std::string(valid_rules) + "state_dir: \"a\\\r\"\n"),
              "test.yaml:4:16: yaml: unknown escape character: \\x0d");
    EXPECT_EQ(error_of(std::string(valid_rules) + "state_dir: \"a\\\x01\"\n"),
              "test.yaml:4:16: yaml: unknown escape character: \\x01");
}

TEST(ConfigErrors, UnknownKeys) {
    EXPECT_EQ(
        error_of(std::string(valid_rules) + "pol_interval: 1s\n"),
        "test.yaml:4:1: pol_interval: unknown key (valid keys: interfaces, poll_interval, state_dir, flows, "
        "hosts, log_level, persist_interval, pin_dir, periods, cgroups, thresholds, upload, records, "
        "metrics, export, subscribers, rules)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "flows:\n"
                                                  "  max_entrys: 2048\n"),
              "test.yaml:5:3: flows.max_entrys: unknown key (valid keys: max_entries, idle_timeout, "
              "active_timeout)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "hosts: {enable: true}\n"),
              "test.yaml:4:9: hosts.enable: unknown key (valid keys: max_entries, enabled)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: lan\n"
                       "    direction: in\n"),
              "test.yaml:4:5: interfaces[0].direction: unknown key (valid keys: name, role, mode)");
}

TEST(ConfigErrors, DuplicateKeys) {
    EXPECT_EQ(error_of(std::string(valid_rules) + "poll_interval: 1s\n"
                                                  "poll_interval: 2s\n"),
              "test.yaml:5:1: poll_interval: duplicate key (first set at line 4)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: lan\n"
                       "    role: wan\n"),
              "test.yaml:4:5: interfaces[0].role: duplicate key (first set at line 3)");
}

TEST(ConfigErrors, BadDurations) {
    EXPECT_EQ(
        error_of(std::string(valid_rules) + "poll_interval: 1000\n"),
        "test.yaml:4:16: poll_interval: invalid duration '1000' (use a number with ms, s, m, h or d, e.g. "
        "500ms, 1s, 5m)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "poll_interval: 50ms\n"),
              "test.yaml:4:16: poll_interval: duration '50ms' is out of range (100ms .. 1h)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "poll_interval: 61m\n"),
              "test.yaml:4:16: poll_interval: duration '61m' is out of range (100ms .. 1h)");
    // Nothing after the colon: point at the key, not at whatever token yaml-cpp saw next.
    EXPECT_EQ(error_of("poll_interval:\n"
                       "state_dir: /x\n"),
              "test.yaml:1:1: poll_interval: missing value (expected a duration such as 1s)");
    // A block scalar carries a newline; the message must stay on one line.
    EXPECT_EQ(
        error_of(std::string(valid_rules) + "poll_interval: |\n"
                                            "  1s\n"),
        "test.yaml:4:16: poll_interval: invalid duration '1s\\n' (use a number with ms, s, m, h or d, e.g. "
        "500ms, 1s, 5m)");
}

TEST(ConfigErrors, RoleAndMode) {
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: uplink\n"),
              "test.yaml:3:11: interfaces[0].role: unknown role 'uplink' (valid: lan, wan)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: lan\n"
                       "  - name: eth1\n"
                       "    role: LAN\n"),
              "test.yaml:5:11: interfaces[1].role: unknown role 'LAN' (valid: lan, wan)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: lan\n"
                       "    mode: af_xdp\n"),
              "test.yaml:4:11: interfaces[0].mode: unknown mode 'af_xdp' (valid: tc, xdp)");
}

TEST(ConfigErrors, MissingOrEmptyInterfaces) {
    EXPECT_EQ(
        error_of("poll_interval: 1s\n"),
        "test.yaml:1:1: interfaces: required key is missing (list the interfaces to account, each with a "
        "name and a role)");
    EXPECT_EQ(error_of("interfaces: []\n"), "test.yaml:1:13: interfaces: must list at least one interface");
    EXPECT_EQ(error_of("poll_interval: 1s\n"
                       "interfaces:\n"
                       "log_level: info\n"),
              "test.yaml:2:1: interfaces: must list at least one interface");
}

TEST(ConfigErrors, RuleRequiredKeys) {
    EXPECT_EQ(
        error_of("interfaces:\n"
                 "  - role: lan\n"),
        "test.yaml:2:5: interfaces[0].name: required key is missing (an interface name or a glob such as "
        "eth*)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth0\n"
                       "    role: wan\n"
                       "  - name: eth1\n"
                       "    mode: xdp\n"),
              "test.yaml:4:5: interfaces[1].role: required key is missing (lan or wan)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: \"\"\n"
                       "    role: lan\n"),
              "test.yaml:2:11: interfaces[0].name: must not be empty");
}

TEST(ConfigErrors, DuplicateAndUnreachableRules) {
    EXPECT_EQ(
        error_of("interfaces:\n"
                 "  - name: eth0\n"
                 "    role: lan\n"
                 "  - name: eth1\n"
                 "    role: lan\n"
                 "  - name: eth0\n"
                 "    role: wan\n"),
        "test.yaml:6:11: interfaces[2].name: duplicate interface 'eth0' (already listed as interfaces[0] at "
        "line 2)");
    EXPECT_EQ(
        error_of("interfaces:\n"
                 "  - name: \"*\"\n"
                 "    role: lan\n"
                 "  - name: \"wan*\"\n"
                 "    role: wan\n"),
        "test.yaml:4:11: interfaces[1].name: rule 'wan*' can never match: '*' (interfaces[0] at line 2) "
        "matches first; put more specific rules first");
    EXPECT_EQ(
        error_of("interfaces:\n"
                 "  - name: ppp*\n"
                 "    role: wan\n"
                 "  - name: ppp0\n"
                 "    role: lan\n"),
        "test.yaml:4:11: interfaces[1].name: rule 'ppp0' can never match: 'ppp*' (interfaces[0] at line 2) "
        "matches first; put more specific rules first");
}

TEST(ConfigErrors, InvalidInterfaceNames) {
    EXPECT_EQ(
        error_of("interfaces:\n"
                 "  - name: averyverylongname0\n"
                 "    role: lan\n"),
        "test.yaml:2:11: interfaces[0].name: 'averyverylongname0' is longer than 15 characters, the Linux "
        "limit for interface names");
    EXPECT_EQ(
        error_of("interfaces:\n"
                 "  - name: eth0/1\n"
                 "    role: lan\n"),
        "test.yaml:2:11: interfaces[0].name: 'eth0/1' is not a valid interface name (no '/', ':', spaces or "
        "control characters)");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: eth[0-9\n"
                       "    role: lan\n"),
              "test.yaml:2:11: interfaces[0].name: unterminated '[' in pattern 'eth[0-9'");
}

TEST(ConfigErrors, OutOfRangeNumbers) {
    EXPECT_EQ(error_of(std::string(valid_rules) + "flows:\n"
                                                  "  max_entries: 1023\n"),
              "test.yaml:5:16: flows.max_entries: 1023 is out of range (1024 .. 16777216)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "flows:\n"
                                                  "  max_entries: 16777217\n"),
              "test.yaml:5:16: flows.max_entries: 16777217 is out of range (1024 .. 16777216)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "hosts:\n"
                                                  "  max_entries: 255\n"),
              "test.yaml:5:16: hosts.max_entries: 255 is out of range (256 .. 4194304)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "hosts:\n"
                                                  "  max_entries: 99999999999999999999999\n"),
              "test.yaml:5:16: hosts.max_entries: 99999999999999999999999 is out of range (256 .. 4194304)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "flows:\n"
                                                  "  max_entries: -2048\n"),
              "test.yaml:5:16: flows.max_entries: expected a whole number in 1024 .. 16777216, got '-2048'");
    EXPECT_EQ(error_of(std::string(valid_rules) + "flows:\n"
                                                  "  max_entries: 0x1000\n"),
              "test.yaml:5:16: flows.max_entries: expected a whole number in 1024 .. 16777216, got '0x1000'");
}

TEST(ConfigErrors, WrongTypes) {
    EXPECT_EQ(error_of(std::string(valid_rules) + "poll_interval: {seconds: 1}\n"),
              "test.yaml:4:16: poll_interval: expected a duration such as 1s, got a map");
    EXPECT_EQ(error_of("interfaces: eth0\n"),
              "test.yaml:1:13: interfaces: expected a list of interfaces, got the value 'eth0'");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - eth0\n"),
              "test.yaml:2:5: interfaces[0]: expected a map with name, role and mode, got the value 'eth0'");
    EXPECT_EQ(error_of("interfaces:\n"
                       "  - name: [eth0, eth1]\n"
                       "    role: lan\n"),
              "test.yaml:2:11: interfaces[0].name: expected an interface name or glob, got a list");
    EXPECT_EQ(error_of(std::string(valid_rules) + "flows: 2048\n"),
              "test.yaml:4:8: flows: expected a map, got the value '2048'");
    EXPECT_EQ(error_of(std::string(valid_rules) + "hosts:\n"
                                                  "  enabled: yes\n"),
              "test.yaml:5:12: hosts.enabled: expected true or false, got 'yes'");
    EXPECT_EQ(error_of(std::string(valid_rules) + "state_dir: var/lib/nettally\n"),
              "test.yaml:4:12: state_dir: must be an absolute path, got 'var/lib/nettally'");
    EXPECT_EQ(error_of(std::string(valid_rules) + "state_dir: /\n"),
              "test.yaml:4:12: state_dir: must not be the root directory");
    EXPECT_EQ(error_of(std::string(valid_rules) + "log_level: warn\n"),
              "test.yaml:4:12: log_level: unknown log level 'warn' (valid: debug, info, warning, error)");
    EXPECT_EQ(error_of(std::string(valid_rules) + "? [a, b]\n"
                                                  ": 1\n"),
              "test.yaml:4:3: document: keys must be plain names, got a list as a key");
}

TEST(ConfigErrors, EmptyOrNonMapDocument) {
    const std::string empty =
        "test.yaml:1:1: document: the config is empty; at least an 'interfaces' list is "
        "required";
    EXPECT_EQ(error_of(""), empty);
    EXPECT_EQ(error_of("# nothing but a comment\n\n"), empty);
    EXPECT_EQ(error_of("---\n"), empty);
    EXPECT_EQ(error_of("- name: eth0\n"
                       "  role: lan\n"),
              "test.yaml:1:1: document: expected a map of settings at the top level, got a list");
    EXPECT_EQ(error_of("eth0\n"),
              "test.yaml:1:1: document: expected a map of settings at the top level, got the value 'eth0'");
    EXPECT_EQ(error_of(std::string(valid_rules) + "---\n"
                                                  "log_level: debug\n"),
              "test.yaml:5:1: document: only one YAML document is allowed, found a second one");
}

// ---- files ----------------------------------------------------------------------------------

TEST(LoadConfig, ShippedConfigAccountsEveryInterfaceAsLan) {
    const std::string path = std::string(NT_SOURCE_DIR) + "/config/nettally.yaml";
    const Config config = load_config(path);
    EXPECT_EQ(config.path, path);
    ASSERT_EQ(config.interfaces.size(), 1u);
    EXPECT_EQ(config.interfaces[0].name, "*");
    EXPECT_EQ(config.interfaces[0].role, Role::Lan);
    EXPECT_EQ(config.interfaces[0].mode, AttachMode::Tc);
    EXPECT_EQ(match_interface(config, "eth0"), &config.interfaces[0]);
    EXPECT_EQ(match_interface(config, "wlan0"), &config.interfaces[0]);
    EXPECT_EQ(config.poll_interval, milliseconds(1000));
    EXPECT_EQ(config.state_dir, std::filesystem::path("/var/lib/nettally"));
    EXPECT_EQ(config.max_flows, 65536u);
    EXPECT_EQ(config.max_hosts, 16384u);
    EXPECT_TRUE(config.count_hosts);
    EXPECT_EQ(config.log_level, "info");
}

class LoadConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::path(::testing::TempDir()) /
               ("nettally_config_test_" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path write(const std::string& name, const std::string& text) {
        const auto path = dir_ / name;
        std::ofstream(path) << text;
        return path;
    }

    std::filesystem::path dir_;
};

TEST_F(LoadConfigFile, ReadsTheFileAndNamesItInErrors) {
    const auto good = write("good.yaml", std::string(valid_rules) + "log_level: error\n");
    const Config config = load_config(good);
    EXPECT_EQ(config.path, good.string());
    EXPECT_EQ(config.log_level, "error");

    const auto bad = write("bad.yaml", std::string(valid_rules) + "log_level: loud\n");
    try {
        load_config(bad);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  bad.string() +
                      ":4:12: log_level: unknown log level 'loud' (valid: debug, info, warning, error)");
    }
}

TEST_F(LoadConfigFile, UnreadableFileNamesFileAndReason) {
    const auto missing = dir_ / "missing.yaml";
    try {
        load_config(missing);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), missing.string() + ": cannot open: No such file or directory");
        EXPECT_EQ(e.line(), 0);
    }
    try {
        load_config(dir_);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), dir_.string() + ": cannot read: Is a directory");
    }
}

} // namespace
} // namespace nettally

// Durability and period keys (issue: counts that survive).
TEST(ConfigDurability, DefaultsAndParsedValues) {
    const nettally::Config d =
        nettally::parse_config("interfaces:\n  - name: lan0\n    role: lan\n", "t.yaml");
    EXPECT_EQ(d.persist_interval, std::chrono::minutes(5));
    EXPECT_EQ(d.pin_dir, "/sys/fs/bpf/nettally");
    EXPECT_EQ(d.flow_idle_timeout, std::chrono::seconds(15));
    EXPECT_EQ(d.flow_active_timeout, std::chrono::minutes(30));
    EXPECT_EQ(d.month_start_day, 1);
    EXPECT_EQ(d.time_zone, "UTC");

    const nettally::Config c =
        nettally::parse_config("interfaces:\n  - name: lan0\n    role: lan\n"
                               "persist_interval: 30s\n"
                               "pin_dir: /sys/fs/bpf/nt-test\n"
                               "flows:\n  idle_timeout: 5s\n  active_timeout: 2m\n"
                               "periods:\n  month_start_day: 15\n  time_zone: Europe/Berlin\n"
                               "  keep_days: 10\n  keep_months: 3\n",
                               "t.yaml");
    EXPECT_EQ(c.persist_interval, std::chrono::seconds(30));
    EXPECT_EQ(c.pin_dir, "/sys/fs/bpf/nt-test");
    EXPECT_EQ(c.flow_idle_timeout, std::chrono::seconds(5));
    EXPECT_EQ(c.flow_active_timeout, std::chrono::minutes(2));
    EXPECT_EQ(c.month_start_day, 15);
    EXPECT_EQ(c.time_zone, "Europe/Berlin");
    EXPECT_EQ(c.keep_days, 10u);
    EXPECT_EQ(c.keep_months, 3u);
}

TEST(ConfigDurability, Errors) {
    auto err = [](const std::string& extra) {
        try {
            nettally::parse_config("interfaces:\n  - name: lan0\n    role: lan\n" + extra, "t.yaml");
        } catch (const nettally::ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(err("periods:\n  month_start_day: 29\n"),
              "t.yaml:5:20: periods.month_start_day: 29 is out of range (1 .. 28)");
    EXPECT_EQ(err("persist_interval: 0s\n"),
              "t.yaml:4:19: persist_interval: duration '0s' is out of range (1s .. 1d)");
    EXPECT_EQ(err("pin_dir: bpf\n"), "t.yaml:4:10: pin_dir: must be an absolute path, got 'bpf'");
    EXPECT_NE(err("flows:\n  idle_timeout: 10m\n  active_timeout: 1m\n")
                  .find("flows.active_timeout: must not be shorter than flows.idle_timeout"),
              std::string::npos);
}

namespace nettally {
namespace {

TEST(ConfigThresholds, ParsedAndCheckedWithPositions) {
    const Config c = parse_config(std::string(valid_rules) + "thresholds:\n"
                                                             "  - name: cli\n"
                                                             "    subject_kind: host\n"
                                                             "    subject: 198.18.1.2\n"
                                                             "    step: 1MB\n"
                                                             "    limit: 5MB\n"
                                                             "    min_interval_ms: 800ms\n",
                                  "test.yaml");
    ASSERT_EQ(c.thresholds.size(), 1u);
    EXPECT_EQ(c.thresholds[0].name, "cli");
    EXPECT_EQ(c.thresholds[0].limit, 5000000u);
    EXPECT_EQ(c.thresholds[0].min_interval_ms, 800u);
    EXPECT_EQ(error_of(std::string(valid_rules) + "thresholds:\n"
                                                  "  - name: cli\n"
                                                  "    subject_kind: host\n"
                                                  "    subject: 198.18.1.2\n"
                                                  "    step: 0\n"),
              "test.yaml:8:11: thresholds[0].step: must be greater than 0");
    EXPECT_EQ(error_of(std::string(valid_rules) + "thresholds:\n"
                                                  "  - name: a\n"
                                                  "    subject_kind: interface\n"
                                                  "    subject: lan0\n"
                                                  "    step: 1MB\n"
                                                  "  - name: a\n"
                                                  "    subject_kind: interface\n"
                                                  "    subject: lan0\n"
                                                  "    step: 1MB\n"),
              "test.yaml:9:11: thresholds[1].name: duplicate threshold name 'a' (first in thresholds[0])");
    EXPECT_EQ(error_of(std::string(valid_rules) + "thresholds: 5\n"),
              "test.yaml:4:13: thresholds: expected a list of thresholds, got the value '5'");
}

TEST(InternetFeatures, NamesEveryConfiguredFeatureThatOpensInternetSockets) {
    Config config;
    EXPECT_TRUE(internet_features(config).empty()) << "the default config needs no internet socket";
    config.metrics.textfile_dir = "/var/lib/prometheus/node-exporter";
    EXPECT_TRUE(internet_features(config).empty()) << "the textfile is a file";
    config.upload.url = "ftp://198.18.0.9/acct/";
    config.metrics.listen = "127.0.0.1:9847";
    config.exports.collectors = {"udp://198.18.2.2:4739"};
    config.subscribers.radius.listen = "0.0.0.0:1813";
    config.rules.url = "https://198.18.0.9/rules.bundle";
    EXPECT_EQ(internet_features(config),
              (std::vector<std::string>{"upload.url", "metrics.listen", "export.collectors",
                                        "subscribers.radius.listen", "rules.url"}));
}

} // namespace
} // namespace nettally
