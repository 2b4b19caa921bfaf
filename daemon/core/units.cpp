// See units.h.
#include "core/units.h"

#include "nettally_abi.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <numeric>

namespace nettally {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

} // namespace

std::optional<uint64_t> parse_uint(std::string_view s) {
    uint64_t v = 0;
    if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size())
        return std::nullopt;
    return v;
}

std::optional<uint64_t> parse_size(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
        ++i;
    if (i == 0)
        return std::nullopt;
    std::string_view whole = text.substr(0, i), frac;
    if (i < text.size() && text[i] == '.') {
        size_t j = i + 1;
        while (j < text.size() && text[j] >= '0' && text[j] <= '9')
            ++j;
        frac = text.substr(i + 1, j - i - 1);
        if (frac.empty() || frac.size() > 9)
            return std::nullopt;
        i = j;
    }
    const std::string_view unit = text.substr(i);
    static const std::pair<std::string_view, uint64_t> kUnits[] = {{"", 1},
                                                                   {"B", 1},
                                                                   {"kB", 1000},
                                                                   {"KB", 1000},
                                                                   {"MB", 1000000},
                                                                   {"GB", 1000000000},
                                                                   {"TB", 1000000000000},
                                                                   {"KiB", 1ull << 10},
                                                                   {"MiB", 1ull << 20},
                                                                   {"GiB", 1ull << 30},
                                                                   {"TiB", 1ull << 40},
                                                                   {"K", 1ull << 10},
                                                                   {"M", 1ull << 20},
                                                                   {"G", 1ull << 30},
                                                                   {"T", 1ull << 40}};
    const auto u =
        std::find_if(std::begin(kUnits), std::end(kUnits), [&](const auto& p) { return p.first == unit; });
    if (u == std::end(kUnits))
        return std::nullopt;
    const auto w = parse_uint(whole);
    if (!w)
        return std::nullopt;
    const uint64_t mult = u->second;
    if (*w > std::numeric_limits<uint64_t>::max() / mult)
        return std::nullopt;
    uint64_t value = *w * mult;
    if (!frac.empty()) {
        const uint64_t f = *parse_uint(frac);
        uint64_t denom = 1;
        for (size_t k = 0; k < frac.size(); ++k)
            denom *= 10;
        // f * mult / denom must be whole; f < denom, so the result is below mult (no overflow).
        const uint64_t g = std::gcd(mult, denom);
        if (f % (denom / g) != 0)
            return std::nullopt;
        const uint64_t add = f / (denom / g) * (mult / g);
        if (add > std::numeric_limits<uint64_t>::max() - value)
            return std::nullopt;
        value += add;
    }
    return value;
}

std::string format_size(uint64_t bytes) {
    static const std::pair<const char*, uint64_t> kUnits[] = {
        {"TB", 1000000000000}, {"GB", 1000000000},  {"MB", 1000000},     {"kB", 1000},
        {"TiB", 1ull << 40},   {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
    if (bytes > 0)
        for (const auto& [name, m] : kUnits)
            if (bytes % m == 0)
                return std::to_string(bytes / m) + " " + name;
    return std::to_string(bytes) + " B";
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    const auto digits_end = [&](size_t from) {
        while (from < text.size() && is_digit(text[from]))
            ++from;
        return from;
    };
    const size_t int_end = digits_end(0);
    if (int_end == 0)
        return std::nullopt;
    std::string_view frac = {};
    size_t pos = int_end;
    if (pos < text.size() && text[pos] == '.') {
        const size_t frac_end = digits_end(pos + 1);
        if (frac_end == pos + 1)
            return std::nullopt;
        frac = text.substr(pos + 1, frac_end - pos - 1);
        pos = frac_end;
    }
    const std::string_view unit = text.substr(pos);
    int64_t factor = 0;
    if (unit == "ms")
        factor = 1;
    else if (unit == "s")
        factor = 1000;
    else if (unit == "m")
        factor = 60 * 1000;
    else if (unit == "h")
        factor = 60 * 60 * 1000;
    else if (unit == "d")
        factor = 24 * 60 * 60 * 1000;
    else
        return std::nullopt;

    using Rep = std::chrono::milliseconds::rep;
    constexpr auto max = static_cast<uint64_t>(std::numeric_limits<Rep>::max());
    uint64_t whole = 0;
    if (std::from_chars(text.data(), text.data() + int_end, whole).ec != std::errc{})
        return std::nullopt;
    if (whole > max / static_cast<uint64_t>(factor))
        return std::nullopt;
    uint64_t ms = whole * static_cast<uint64_t>(factor);

    while (!frac.empty() && frac.back() == '0')
        frac.remove_suffix(1);
    if (!frac.empty()) {
        // 9 digits keep frac * factor below 2^63; finer fractions are never whole milliseconds
        // in practice.
        if (frac.size() > 9)
            return std::nullopt;
        uint64_t numerator = 0;
        std::from_chars(frac.data(), frac.data() + frac.size(), numerator);
        uint64_t scale = 1;
        for (size_t i = 0; i < frac.size(); ++i)
            scale *= 10;
        numerator *= static_cast<uint64_t>(factor);
        if (numerator % scale != 0)
            return std::nullopt;
        const uint64_t extra = numerator / scale;
        if (extra > max - ms)
            return std::nullopt;
        ms += extra;
    }
    return std::chrono::milliseconds{static_cast<Rep>(ms)};
}

std::optional<std::array<uint8_t, 6>> parse_mac(std::string_view s) {
    if (s.size() != 17)
        return std::nullopt;
    std::array<uint8_t, 6> mac{};
    for (size_t i = 0; i < 6; ++i) {
        if (i > 0 && s[i * 3 - 1] != ':')
            return std::nullopt;
        unsigned v = 0;
        const char* b = s.data() + i * 3;
        auto [p, ec] = std::from_chars(b, b + 2, v, 16);
        if (ec != std::errc{} || p != b + 2)
            return std::nullopt;
        mac[i] = static_cast<uint8_t>(v);
    }
    return mac;
}

std::optional<std::string> canonical_ip(std::string_view s, uint8_t* family, uint32_t* out) {
    const std::string text(s);
    uint32_t a[4]{};
    char buf[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, text.c_str(), a) == 1) {
        if (family)
            *family = NT_AF_INET;
        if (out)
            std::memcpy(out, a, sizeof(a));
        return inet_ntop(AF_INET, a, buf, sizeof(buf)) ? std::optional<std::string>(buf) : std::nullopt;
    }
    if (text.find(':') != std::string::npos && inet_pton(AF_INET6, text.c_str(), a) == 1) {
        if (family)
            *family = NT_AF_INET6;
        if (out)
            std::memcpy(out, a, sizeof(a));
        return inet_ntop(AF_INET6, a, buf, sizeof(buf)) ? std::optional<std::string>(buf) : std::nullopt;
    }
    return std::nullopt;
}

namespace {

std::nullopt_t fail_host_port(std::string* why, std::string text) {
    if (why)
        *why = std::move(text);
    return std::nullopt;
}

} // namespace

std::string HostPort::text() const {
    return (family == NT_AF_INET6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

std::optional<HostPort> parse_host_port(std::string_view s, std::string* why) {
    HostPort hp;
    std::string_view host, port;
    const bool v6 = !s.empty() && s.front() == '[';
    if (v6) {
        const size_t close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
            return fail_host_port(why, "expected [IPv6]:PORT");
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        const size_t colon = s.rfind(':');
        if (colon == std::string_view::npos)
            return fail_host_port(why, "missing :PORT");
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    auto address = canonical_ip(host, &hp.family, hp.addr);
    if (!address || (hp.family == NT_AF_INET6) != v6)
        return fail_host_port(why, v6 ? "not an IPv6 address: '" + std::string(host) + "'"
                                      : "not an IPv4 address: '" + std::string(host) +
                                            "' (use an address, not a host name; IPv6 in brackets)");
    const auto n = parse_uint(port);
    if (!n)
        return fail_host_port(why, "invalid port '" + std::string(port) + "'");
    if (*n == 0 || *n > 65535)
        return fail_host_port(why, "port must be 1 .. 65535, got " + std::string(port));
    hp.port = static_cast<uint16_t>(*n);
    hp.address = std::move(*address);
    return hp;
}

} // namespace nettally
