// Helpers of the config section tests: a section's text after one interface rule, parsed, or the
// one-line error it gives (file "test.yaml").
#pragma once

#include "core/config.h"

#include <gtest/gtest.h>

#include <string>

namespace nettally::config_test {

inline constexpr const char* rules = "interfaces:\n"
                                     "  - name: eth0\n"
                                     "    role: lan\n";

inline Config parse(const std::string& tail) {
    return parse_config(std::string(rules) + tail, "test.yaml");
}

inline std::string error_of(const std::string& tail) {
    try {
        parse(tail);
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "accepted, but an error was expected:\n" << tail;
    return "";
}

} // namespace nettally::config_test
