// The pull's schedule and header parsing (rules_fetch.h).
#include "core/rules_fetch.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace nettally {

std::chrono::milliseconds rules_fetch_delay(std::chrono::milliseconds refresh, uint32_t failures,
                                            double jitter, double unit) {
    refresh = std::max(refresh, rules_fetch_limits::min_backoff);
    double delay = static_cast<double>(refresh.count());
    if (failures > 0) {
        delay /= 8;
        for (uint32_t i = 1; i < failures && delay < static_cast<double>(refresh.count()); ++i)
            delay *= 2;
        delay = std::clamp(delay, static_cast<double>(rules_fetch_limits::min_backoff.count()),
                           static_cast<double>(refresh.count()));
    }
    jitter = std::clamp(jitter, 0.0, 0.5);
    unit = std::clamp(unit, 0.0, 1.0);
    delay *= 1 - jitter * unit;
    return std::chrono::milliseconds{static_cast<int64_t>(std::llround(delay))};
}

std::optional<std::string> header_value(std::string_view line, std::string_view name) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon != name.size())
        return std::nullopt;
    for (size_t i = 0; i < name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) !=
            std::tolower(static_cast<unsigned char>(name[i])))
            return std::nullopt;
    std::string_view v = line.substr(colon + 1);
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!v.empty() && space(v.front()))
        v.remove_prefix(1);
    while (!v.empty() && space(v.back()))
        v.remove_suffix(1);
    return std::string(v);
}

} // namespace nettally
