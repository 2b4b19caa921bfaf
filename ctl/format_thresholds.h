// nettallyctl's thresholds and watch commands, pure half: the --json shapes and the tables of
// ListThresholds / GetUsage, and one line per signal for `watch` (arguments: args.h).
// Unit-tested in tests/unit/format_thresholds_test.cpp; nettallyctl.cpp does the D-Bus calls.
#pragma once

#include "format.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally::ctl {

// The a{sv} dictionaries of ListThresholds and GetUsage, values reduced like GetStatus's.
Json dict_json(const Dict& d);
// {"thresholds": [D...]} / {"usage": [U...]}: the dictionaries as they come, times as TIME.
Json thresholds_json(const std::vector<Dict>& rows);
Json usage_json(const std::vector<Dict>& rows);
// NAME SOURCE SUBJECT DIR LAYER PERIOD STEP LIMIT ACTION
std::string thresholds_text(const std::vector<Dict>& rows);
// NAME SUBJECT USAGE STEPS LIMIT USED PERIOD-END ACTION
std::string usage_text(const std::vector<Dict>& rows);
std::string threshold_done_text(std::string_view sub, std::string_view name);
Json threshold_done_json(std::string_view sub, std::string_view name);

// One signal of org.nettally.Accounting1.Thresholds as it arrived.
struct WatchEvent {
    std::string signal;                                    // "StepCrossed", ...
    std::vector<std::pair<std::string, StatusValue>> args; // in the signal's order, "time" included
};
// {"signal": NAME, ARG: VALUE...} on one line, "time" as TIME.
std::string watch_json_line(const WatchEvent& e);
// "2026-11-24 09:41:33 StepCrossed cli-quota host:198.18.1.2 usage=3.0 MB step_index=3"
std::string watch_text_line(const WatchEvent& e);

} // namespace nettally::ctl
