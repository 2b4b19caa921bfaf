// The decisions of the rule bundle pull (io/rules_fetch.h) that need no I/O: when to ask again
// (every `refresh`; after failures sooner at first, then backing off up to `refresh`), and what
// a response header line says. Unit-tested in tests/unit/rules_fetch_test.cpp.
//
// Backoff: after n consecutive failures the next attempt waits refresh/8 * 2^(n-1), at most
// refresh (refresh 5m: 37.5s, 75s, 150s, 5m, 5m ...), so a gateway that booted before its rule
// server, or lost it for a moment, gets its rules soon without hammering a server that is down.
// Jitter (a fraction j of the delay, drawn by the caller as unit in [0,1]) only shortens the
// wait, by up to j of it, so gateways started together drift apart and no wait exceeds the
// schedule.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nettally {

namespace rules_fetch_limits {
inline constexpr std::chrono::milliseconds min_refresh{1000};
inline constexpr std::chrono::milliseconds max_refresh{std::chrono::hours(24)};
inline constexpr std::chrono::milliseconds min_backoff{100};
} // namespace rules_fetch_limits

// The wait before the next attempt. failures: consecutive failed attempts so far (0: the last one
// succeeded or the server said 304). jitter: clamped to [0, 0.5]; unit: clamped to [0, 1].
std::chrono::milliseconds rules_fetch_delay(std::chrono::milliseconds refresh, uint32_t failures,
                                            double jitter = 0, double unit = 0);

// The value of header `name` (case-insensitive) in one raw header line ("ETag: \"abc\"\r\n"),
// without surrounding whitespace; nullopt when the line is another header.
std::optional<std::string> header_value(std::string_view line, std::string_view name);

} // namespace nettally
