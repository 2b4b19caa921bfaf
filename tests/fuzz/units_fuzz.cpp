// Fuzz target: the text parsers shared by the config file, D-Bus arguments and nettallyctl
// (core/units.h) and the flow-aggregate filter (FlowFilter::parse). The first byte picks the
// parser, the rest is its text. The units parsers return nullopt on bad input and never throw;
// FlowFilter::parse throws only ThresholdError. Accepted addresses are checked to be canonical
// (parsing the canonical text gives the same text and bytes).
#include "core/thresholds.h"
#include "core/units.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 6) {
    case 0:
        (void)nettally::parse_uint(text);
        break;
    case 1:
        (void)nettally::parse_size(text);
        break;
    case 2:
        (void)nettally::parse_duration(text);
        break;
    case 3:
        (void)nettally::parse_mac(text);
        break;
    case 4: {
        uint8_t family = 0;
        std::array<uint32_t, 4> addr{};
        const auto canonical = nettally::canonical_ip(text, &family, addr.data());
        if (canonical) {
            uint8_t family2 = 0;
            std::array<uint32_t, 4> addr2{};
            const auto again = nettally::canonical_ip(*canonical, &family2, addr2.data());
            if (!again || *again != *canonical || family2 != family || addr2 != addr) {
                std::abort();
            }
        }
        break;
    }
    default:
        try {
            (void)nettally::FlowFilter::parse(text);
        } catch (const nettally::ThresholdError&) {
        }
        break;
    }
    return 0;
}
