// The one clock: wall time for records, periods and GetStatus timestamps;
// monotonic and boot time for intervals and the kernel's flow timestamps
// (bpf_ktime_get_boot_ns). Pure core code takes the time as a parameter.
#pragma once

#include <cstdint>

namespace nettally {

uint64_t realtime_us();  // CLOCK_REALTIME, µs since the epoch
uint64_t monotonic_us(); // CLOCK_MONOTONIC, µs
uint64_t boottime_us();  // CLOCK_BOOTTIME, µs (includes suspend, like the BPF timestamps)

} // namespace nettally
