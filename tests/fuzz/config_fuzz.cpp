// Fuzz target: the config document. parse_config() reads operator-written YAML (the file, or the
// text of a D-Bus Reload); whatever the text, it must return a Config or throw ConfigError with a
// one-line message. Any other exception, a crash, UB or a leak is a finding.
#include "core/config.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        const nettally::Config config = nettally::parse_config(text, "fuzz.yaml");
        (void)config;
    } catch (const nettally::ConfigError& e) {
        // Operators read the message in journalctl or a D-Bus reply: one line (config.h).
        if (std::strchr(e.what(), '\n') != nullptr) {
            std::abort();
        }
    }
    return 0;
}
