// `nettallyctl records ...`: the org.nettally.Accounting1.Records interface from the command line.
//   records status | set KEY=VALUE... | reset | rotate | spool
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nettally::ctl {

// Runs the command; returns the exit status (format.h ExitCode values).
int records_main(const std::vector<std::string_view>& args);

// The help section for `nettallyctl --help`.
std::string records_help_text();

} // namespace nettally::ctl
