// The one clock: wall time for records, periods and GetStatus timestamps;
// monotonic time for intervals and for the kernel's flow and host stamps.
// Pure core code takes the time as a parameter.
#pragma once

#include <cstdint>

namespace nettally {

uint64_t realtime_us();  // CLOCK_REALTIME, µs since the epoch
uint64_t monotonic_us(); // CLOCK_MONOTONIC, µs
// The clock of the kernel's first/last stamps on flows and hosts, in ns: CLOCK_MONOTONIC, which
// the programs read at tick resolution with bpf_ktime_get_coarse_ns (no clock-source read per
// packet). A stamp is at most one tick (1-10 ms) behind this clock.
uint64_t kernel_stamp_ns();

} // namespace nettally
