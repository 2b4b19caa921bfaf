// Clocks: see clock.h.
#include "os/clock.h"

#include <ctime>

namespace nettally {
namespace {

uint64_t clock_us(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

} // namespace

uint64_t realtime_us() {
    return clock_us(CLOCK_REALTIME);
}
uint64_t monotonic_us() {
    return clock_us(CLOCK_MONOTONIC);
}
uint64_t kernel_stamp_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

} // namespace nettally
