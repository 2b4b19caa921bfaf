// `nettallyctl top`: rates between two readings of the daemon's totals (interfaces, hosts, flows),
// the busiest first, as a screen that fits the terminal or as JSON. Pure: the readings come from
// commands_top.cpp; unit-tested in tests/unit/format_top_test.cpp.
#pragma once

#include "format.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace nettally::ctl {

// Everything top reads at once; poll_us is the daemon's last_poll_at, so two readings of the
// same poll are recognised and rates use the time between the polls, not between the calls.
struct TopReading {
    std::uint64_t poll_us = 0;
    std::vector<InterfaceRow> interfaces;
    std::vector<HostRow> hosts;
    std::vector<FlowRow> flows;
};

// Per second: packets, and bytes at the frame's layer.
struct Rate {
    double packets = 0;
    double bytes = 0;
};

struct TopInterface {
    std::string name;
    Rate ingress;
    Rate egress;
};

struct TopHost {
    std::string interface;
    std::string mac;
    std::string ip;
    Rate sent;
    Rate received;
};

struct TopFlow {
    FlowRow flow; // the newer reading's row
    Rate rate;
};

struct TopFrame {
    double seconds = 0;      // between the two readings' polls
    std::string layer;       // of the byte rates: the sort key, or l2 for "packets"
    bool by_packets = false; // sorted by packets rather than bytes
    std::vector<TopInterface> interfaces;
    std::vector<TopHost> hosts; // busiest first (sent + received), only those with traffic
    std::vector<TopFlow> flows; // busiest first, only those with traffic
};

// The keys top sorts by.
bool top_sort_key(std::string_view key);

// Rates from `before` to `after` (after.poll_us > before.poll_us). A host or flow not in
// `before` counts from zero (it is new); one missing from `after` is left out (it finished).
TopFrame top_frame(const TopReading& before, const TopReading& after, std::string_view sort);

Json top_json(const TopFrame& f, std::size_t max_rows);
// The screen: a title, the interfaces, then hosts and flows in the lines left, each line cut to
// `width` (0: no limit), at most `height` lines (0: no limit; at most max_rows hosts and flows).
std::string top_text(const TopFrame& f, std::size_t width, std::size_t height, std::size_t max_rows);

// "12.3 Mbit/s" for bytes per second; "1.2 kpkt/s" for packets per second.
std::string bit_rate(double bytes_per_s);
std::string packet_rate(double per_s);

} // namespace nettally::ctl
