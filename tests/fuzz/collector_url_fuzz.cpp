// Fuzz target: the IPFIX collector URL parser (core/export.h parse_collector_url), which reads
// export.collectors[].url from the config file (and, later, SetCollectors over D-Bus). It returns
// nullopt on bad input and never throws; an accepted URL's normalized text parses again to the same
// collector (a fixed point), and the encoder built from it accepts every message size the config
// accepts.
#include "core/export.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::string why;
    const auto u = nettally::parse_collector_url(text, &why);
    if (!u) {
        if (why.empty())
            std::abort(); // every rejection says why
        return 0;
    }
    const auto again = nettally::parse_collector_url(u->text, nullptr);
    if (!again || again->text != u->text || again->addr != u->addr || again->port != u->port ||
        again->transport != u->transport || u->port == 0)
        std::abort();
    return 0;
}
