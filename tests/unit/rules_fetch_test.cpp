// The rule bundle pull's pure half (core/rules_fetch.h): the refresh and backoff schedule, the
// jitter that only shortens it, and the header lines the ETag is read from.
#include "core/rules_fetch.h"

#include <gtest/gtest.h>

namespace nettally {
namespace {

using std::chrono::milliseconds;

TEST(RulesFetchSchedule, RefreshAfterSuccess) {
    EXPECT_EQ(rules_fetch_delay(milliseconds(300000), 0), milliseconds(300000));
    EXPECT_EQ(rules_fetch_delay(milliseconds(2000), 0), milliseconds(2000));
}

TEST(RulesFetchSchedule, BackoffDoublesFromAnEighthUpToRefresh) {
    const milliseconds refresh(300000);
    const milliseconds expected[] = {milliseconds(37500),  milliseconds(75000),  milliseconds(150000),
                                     milliseconds(300000), milliseconds(300000), milliseconds(300000)};
    for (uint32_t n = 1; n <= 6; ++n)
        EXPECT_EQ(rules_fetch_delay(refresh, n), expected[n - 1]) << n << " failures";
    EXPECT_EQ(rules_fetch_delay(refresh, UINT32_MAX), refresh);
    // The schedule the integration test follows (refresh 2s).
    EXPECT_EQ(rules_fetch_delay(milliseconds(2000), 1), milliseconds(250));
    EXPECT_EQ(rules_fetch_delay(milliseconds(2000), 2), milliseconds(500));
    EXPECT_EQ(rules_fetch_delay(milliseconds(2000), 3), milliseconds(1000));
    EXPECT_EQ(rules_fetch_delay(milliseconds(2000), 4), milliseconds(2000));
    EXPECT_EQ(rules_fetch_delay(milliseconds(2000), 5), milliseconds(2000));
}

TEST(RulesFetchSchedule, BackoffHasAFloor) {
    EXPECT_EQ(rules_fetch_delay(milliseconds(400), 1), milliseconds(100));
    EXPECT_EQ(rules_fetch_delay(milliseconds(400), 2), milliseconds(100));
    EXPECT_EQ(rules_fetch_delay(milliseconds(400), 3), milliseconds(200));
    EXPECT_EQ(rules_fetch_delay(milliseconds(400), 4), milliseconds(400));
    EXPECT_EQ(rules_fetch_delay(milliseconds(0), 0), milliseconds(100));
}

TEST(RulesFetchSchedule, JitterOnlyShortens) {
    const milliseconds refresh(60000);
    EXPECT_EQ(rules_fetch_delay(refresh, 0, 0.1, 0), refresh);
    EXPECT_EQ(rules_fetch_delay(refresh, 0, 0.1, 1), milliseconds(54000));
    EXPECT_EQ(rules_fetch_delay(refresh, 0, 0.1, 0.5), milliseconds(57000));
    EXPECT_EQ(rules_fetch_delay(refresh, 2, 0.1, 1), milliseconds(13500));
    // Clamped: jitter to 0.5, unit to [0, 1].
    EXPECT_EQ(rules_fetch_delay(refresh, 0, 3, 1), milliseconds(30000));
    EXPECT_EQ(rules_fetch_delay(refresh, 0, 0.1, 7), milliseconds(54000));
    EXPECT_EQ(rules_fetch_delay(refresh, 0, -1, 1), refresh);
    EXPECT_EQ(rules_fetch_delay(refresh, 0, 0.1, -1), refresh);
    for (uint32_t n = 0; n < 10; ++n)
        for (double u = 0; u <= 1; u += 0.125) {
            const milliseconds d = rules_fetch_delay(refresh, n, 0.2, u);
            EXPECT_LE(d, rules_fetch_delay(refresh, n));
            EXPECT_GE(d.count(), rules_fetch_delay(refresh, n).count() * 8 / 10);
        }
}

TEST(RulesFetchHeaders, ETagIsReadCaseInsensitively) {
    EXPECT_EQ(header_value("ETag: \"65a1-2b0\"\r\n", "etag"), "\"65a1-2b0\"");
    EXPECT_EQ(header_value("etag:W/\"x\"\r\n", "ETag"), "W/\"x\"");
    EXPECT_EQ(header_value("ETAG: \t abc \t\r\n", "etag"), "abc");
    EXPECT_EQ(header_value("ETag:\r\n", "etag"), "");
    EXPECT_EQ(header_value("X-ETag: \"1\"\r\n", "etag"), std::nullopt);
    EXPECT_EQ(header_value("ETags: \"1\"\r\n", "etag"), std::nullopt);
    EXPECT_EQ(header_value("HTTP/1.1 200 OK\r\n", "etag"), std::nullopt);
    EXPECT_EQ(header_value("\r\n", "etag"), std::nullopt);
    EXPECT_EQ(header_value("Content-Length: 12\r\n", "content-length"), "12");
}

} // namespace
} // namespace nettally
