// `nettallyctl history --graph`: the history's figures as bars, one per period and subject, in
// the terminal (as `vnstat -d` draws them) or as an SVG file for reports. Pure; unit-tested in
// tests/unit/format_top_test.cpp.
#pragma once

#include "format.h"

#include <string>
#include <string_view>

namespace nettally::ctl {

// The figure a graph draws: packets, l2 (default), l3, l4 or payload.
bool graph_layer(std::string_view layer);
std::uint64_t figure(const Counters& c, std::string_view layer);

// PERIOD SUBJECT BAR EXACT (HUMAN): bars scaled to the largest value, at most `width` columns.
std::string history_graph_text(const std::vector<HistoryRow>& rows, std::string_view layer,
                               std::size_t width);

// A standalone SVG bar chart: one group of bars per period, one colour per subject, a legend.
// Every bar carries its exact value (data-value, and a <title> tooltip).
std::string history_graph_svg(const std::vector<HistoryRow>& rows, std::string_view layer,
                              std::string_view period);

} // namespace nettally::ctl
