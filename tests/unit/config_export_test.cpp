// The export section of the config (core/export.h ExportConfig): defaults, every key, and the
// rejections the issue names (bad URL, port 0, unknown scheme, message size below the largest
// record) with their file:line:col: key: messages; and the collector URL parser on its own.
#include "config_section_test.h"
#include "core/config.h"

#include <gtest/gtest.h>

#include <string>

namespace nettally {
namespace {

using config_test::error_of;
using config_test::parse;
using config_test::rules;

TEST(ConfigExport, DefaultsOff) {
    for (const std::string tail : {"", "export:\n"}) {
        const Config c = parse(tail);
        EXPECT_TRUE(c.exports.collectors.empty());
        EXPECT_EQ(c.exports.observation_domain, 0u);
        EXPECT_EQ(c.exports.active_timeout, std::chrono::minutes(1));
        EXPECT_EQ(c.exports.template_refresh, std::chrono::seconds(60));
        EXPECT_EQ(c.exports.template_messages, 1000u);
        EXPECT_EQ(c.exports.max_message_size, 1400u);
        EXPECT_EQ(c.exports.buffer_max, 100000u);
        EXPECT_EQ(c.exports.enterprise, 32473u);
    }
}

TEST(ConfigExport, EveryKey) {
    const Config c = parse("export:\n"
                           "  collectors:\n"
                           "    - url: udp://198.18.2.2:4739\n"
                           "    - url: tcp://[fd00:2::2]:4740/\n"
                           "  observation_domain: 4294967295\n"
                           "  active_timeout: 30s\n"
                           "  template_refresh: 5s\n"
                           "  template_messages: 0\n"
                           "  max_message_size: 9000\n"
                           "  buffer_max: 10\n"
                           "  enterprise: 12345\n");
    EXPECT_EQ(c.exports.collectors,
              (std::vector<std::string>{"udp://198.18.2.2:4739", "tcp://[fd00:2::2]:4740"}));
    EXPECT_EQ(c.exports.observation_domain, 4294967295u);
    EXPECT_EQ(c.exports.active_timeout, std::chrono::seconds(30));
    EXPECT_EQ(c.exports.template_refresh, std::chrono::seconds(5));
    EXPECT_EQ(c.exports.template_messages, 0u);
    EXPECT_EQ(c.exports.max_message_size, 9000u);
    EXPECT_EQ(c.exports.buffer_max, 10u);
    EXPECT_EQ(c.exports.enterprise, 12345u);
}

TEST(ConfigExport, Rejections) {
    EXPECT_EQ(error_of("export:\n  collectors:\n    - url: udp://198.18.2.2:0\n"),
              "test.yaml:6:12: export.collectors[0].url: invalid collector URL 'udp://198.18.2.2:0': port "
              "must be 1 .. 65535, got 0");
    EXPECT_EQ(error_of("export:\n  collectors:\n    - url: sctp://198.18.2.2:4739\n"),
              "test.yaml:6:12: export.collectors[0].url: invalid collector URL 'sctp://198.18.2.2:4739': "
              "unknown scheme 'sctp' (valid: udp, tcp)");
    EXPECT_EQ(error_of("export:\n  collectors:\n    - url: udp://collector.example:4739\n"),
              "test.yaml:6:12: export.collectors[0].url: invalid collector URL "
              "'udp://collector.example:4739': not an IPv4 address: 'collector.example' (use an address, "
              "not a host name; IPv6 in brackets)");
    EXPECT_EQ(error_of("export:\n  collectors:\n    - url: udp://198.18.2.2\n"),
              "test.yaml:6:12: export.collectors[0].url: invalid collector URL 'udp://198.18.2.2': missing "
              ":PORT (IPFIX collectors listen on 4739)");
    EXPECT_EQ(error_of("export:\n  collectors:\n    - url: udp://198.18.2.2:4739\n"
                       "    - url: udp://198.18.2.2:4739/\n"),
              "test.yaml:7:12: export.collectors[1].url: collector 'udp://198.18.2.2:4739' listed twice");
    EXPECT_EQ(error_of("export:\n  collectors:\n    - host: 198.18.2.2\n"),
              "test.yaml:6:7: export.collectors[0].host: unknown key (valid keys: url)");
    EXPECT_EQ(error_of("export:\n  max_message_size: 200\n"),
              "test.yaml:5:21: export.max_message_size: invalid message size '200' (366 .. 65535 bytes: the "
              "templates, with the NAT one, userName and the class elements, and the largest record, an IPv6 "
              "flow of 183 bytes with the longest user name, must fit in one message)");
    EXPECT_EQ(error_of("export:\n  active_timeout: 500ms\n"),
              "test.yaml:5:19: export.active_timeout: duration '500ms' is out of range (1s .. 1d)");
}

TEST(CollectorUrl, Parses) {
    std::string why;
    auto u = parse_collector_url("tcp://[fd00::1]:4739", &why);
    ASSERT_TRUE(u) << why;
    EXPECT_EQ(u->transport, ExportTransport::Tcp);
    EXPECT_EQ(u->family, NT_AF_INET6);
    EXPECT_EQ(u->port, 4739);
    EXPECT_EQ(u->addr[0], 0xfd);
    EXPECT_EQ(u->addr[15], 1);
    for (const char* bad : {"", "udp://", "udp://:4739", "udp://[fd00::1]4739", "udp://[fd00::1:4739",
                            "udp://198.18.2.2:65536", "udp://198.18.2.2:-1", "udp://198.18.2.2:4739/x",
                            "udp://u@198.18.2.2:4739", "udp://198.18.2.2:123456", "udp://[198.18.2.2]:1"})
        EXPECT_FALSE(parse_collector_url(bad, nullptr)) << bad;
}

} // namespace
} // namespace nettally
