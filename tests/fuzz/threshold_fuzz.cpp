// Fuzz target: threshold definitions as they arrive over D-Bus (an a{sv} decoded into a FieldMap).
// The input is decoded deterministically into one or two FieldMaps: the first is a new
// definition, the second (when the first was accepted) a modification of it. parse_threshold()
// must accept or throw ThresholdError; an accepted definition must survive threshold_fields()
// and parse_threshold() unchanged (the daemon persists and lists definitions that way).
#include "core/thresholds.h"
#include "fuzz_input.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using nettally::FieldMap;
using nettally::ThresholdDef;
using nettally::fuzz::FuzzInput;

// The keys parse_threshold knows (kThresholdKeys), so most fields reach a value check.
constexpr std::array<const char*, 15> kKeys = {
    "name",  "subject_kind",    "subject",  "direction",     "layer",  "period",      "window_s",  "step",
    "limit", "min_interval_ms", "rate_bps", "rate_window_s", "action", "action_rate", "action_on",
};

// Words the text fields accept, so the fuzzer gets past the enum checks quickly.
constexpr std::array<const char*, 30> kWords = {
    "host",
    "interface",
    "cgroup",
    "flow",
    "sent",
    "received",
    "both",
    "l2",
    "l3",
    "l4",
    "payload",
    "day",
    "month",
    "rolling",
    "since",
    "notify",
    "throttle",
    "block",
    "limit",
    "burst",
    "any",
    "198.18.1.2",
    "fe80::1",
    "lan0",
    "/system.slice/x.service",
    "proto=tcp,dport=443",
    "iface=wan0,net=198.18.0.0/15",
    "aa:bb:cc:dd:ee:ff",
    "1MB",
    "",
};

FieldMap decode_fields(FuzzInput& in) {
    FieldMap fields;
    const unsigned count = in.byte() % 16;
    for (unsigned i = 0; i < count && !in.empty(); ++i) {
        const uint8_t k = in.byte();
        const std::string key = k < 240 ? kKeys[k % kKeys.size()] : in.text(32);
        switch (in.byte() % 4) {
        case 0:
            fields[key] = in.u64();
            break;
        case 1:
            fields[key] = static_cast<int64_t>(in.u64());
            break;
        case 2:
            fields[key] = std::string(kWords[in.byte() % kWords.size()]);
            break;
        default:
            fields[key] = in.text();
            break;
        }
    }
    return fields;
}

void check_round_trip(const ThresholdDef& def) {
    if (nettally::parse_threshold(nettally::threshold_fields(def)) != def) {
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzInput in(data, size);
    const FieldMap first = decode_fields(in);
    const FieldMap second = decode_fields(in);
    try {
        const ThresholdDef def = nettally::parse_threshold(first);
        check_round_trip(def);
        const ThresholdDef modified = nettally::parse_threshold(second, &def);
        check_round_trip(modified);
    } catch (const nettally::ThresholdError&) {
    }
    return 0;
}
