// Process-wide logging: spdlog to stderr. Under systemd (stderr not a TTY)
// every line starts with its syslog priority, "<3>" .. "<7>", which journald
// turns into the entry's priority.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace nettally {
void setup_logging(bool journal_prefix);
// Returns false for an unknown level name.
bool set_log_level(std::string_view level);

// Bounds a log line that outside input can trigger at will (a flood of bad packets): at most
// `burst` lines per `interval_us`. allow() says whether this one may be logged and, when it
// may, how many were held back since the last one let through (to say so in the line).
class LogLimiter {
public:
    LogLimiter(unsigned burst, uint64_t interval_us) : burst_(burst), interval_us_(interval_us) {}
    std::optional<uint64_t> allow(uint64_t now_us);

private:
    unsigned burst_;
    uint64_t interval_us_;
    uint64_t window_start_us_ = 0;
    unsigned in_window_ = 0;
    uint64_t suppressed_ = 0;
    bool started_ = false;
};

} // namespace nettally
