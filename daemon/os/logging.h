// Process-wide logging: spdlog to stderr. Under systemd (stderr not a TTY)
// every line starts with its syslog priority, "<3>" .. "<7>", which journald
// turns into the entry's priority.
#pragma once

#include <string_view>

namespace nettally {
void setup_logging(bool journal_prefix);
// Returns false for an unknown level name.
bool set_log_level(std::string_view level);
} // namespace nettally
