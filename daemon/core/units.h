// Text forms of the quantities nettally reads from people and programs: counts, byte sizes,
// durations, MAC and IP addresses. One syntax each, shared by the config file, the D-Bus
// arguments and nettallyctl, so "1MB" or "5m" means the same wherever it is written.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nettally {

// A run of decimal digits as a number; nullopt when empty, not all digits or above 2^64-1.
std::optional<uint64_t> parse_uint(std::string_view s);

// A byte count, the one size syntax of the config file, D-Bus arguments and nettallyctl: a bare
// number is bytes; units B, kB/KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB and the short
// K, M, G, T (powers of 1024, as systemd reads them), case as written here: "1MB" = 10^6,
// "1MiB" = "1M" = 2^20, "1.5kB" = 1500. A decimal fraction is allowed when the result is a whole
// number of bytes. nullopt when malformed or out of range.
std::optional<uint64_t> parse_size(std::string_view text);
// A byte count for people, parse_size's inverse: the largest unit (TB, GB, MB, kB, then TiB, GiB,
// MiB, KiB) the count is a whole number of, e.g. "5 MB", "1 MiB"; otherwise "1001 B".
std::string format_size(uint64_t bytes);

// "<number><unit>" with unit ms, s, m, h or d (lowercase), e.g. "500ms", "1s", "5m", "2h", "1d".
// A decimal fraction is allowed when the result is a whole number of milliseconds ("1.5s",
// "0.25m"; not "1.5ms"), with at most 9 significant fractional digits. The unit is mandatory,
// even for zero ("0" is rejected, "0s" is zero): a bare number is ambiguous. Rejected: empty,
// signs, spaces, exponents, other units or cases, and anything that overflows milliseconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// "aa:bb:cc:dd:ee:ff" (hex digits of either case, colons only); nullopt otherwise.
std::optional<std::array<uint8_t, 6>> parse_mac(std::string_view s);

// The canonical text of an IPv4 or IPv6 address (inet_ntop's form), or nullopt. `family` gets
// NT_AF_INET or NT_AF_INET6 and `out` the address in network order (4 words; IPv4 in the first).
std::optional<std::string> canonical_ip(std::string_view s, uint8_t* family = nullptr,
                                        uint32_t* out = nullptr);

// "ADDRESS:PORT" with an IPv4 address or "[ADDRESS]:PORT" with an IPv6 one, port 1 .. 65535;
// addresses only, never host names (resolving would block). The one form of metrics.listen and
// of an IPFIX collector's address. On nullopt `why` (if given) says what is wrong.
struct HostPort {
    uint8_t family = 0; // NT_AF_INET / NT_AF_INET6
    uint32_t addr[4]{}; // network order, IPv4 in the first word
    uint16_t port = 0;
    std::string address; // canonical_ip's text
    // "ADDRESS:PORT" / "[ADDRESS]:PORT" with the canonical address.
    std::string text() const;
};
std::optional<HostPort> parse_host_port(std::string_view s, std::string* why = nullptr);

} // namespace nettally
