// `nettallyctl upload ...`: the org.nettally.Accounting1.Upload interface from the command line.
//   upload status | spool | now | set-target URL [--user NAME] [--password-stdin | --password-file F]
//   | clear-target
// The password is read from stdin or a file, never from the command line (argv is visible to
// every user in /proc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nettally::ctl {

// Runs the command; returns the exit status (format.h ExitCode values).
int upload_main(const std::vector<std::string_view>& args);

// The help section for `nettallyctl --help`.
std::string upload_help_text();

} // namespace nettally::ctl
