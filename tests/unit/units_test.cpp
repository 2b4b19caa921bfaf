// Unit tests for daemon/core/units: the one syntax of counts, byte sizes, MAC and IP addresses that
// the config file, the D-Bus arguments and nettallyctl share. Edges: limits of uint64, fractions
// that are or are not whole bytes, unit case, and addresses inet_pton would half-accept.
// Durations are covered in config_test.cpp (ParseDuration).
#include "core/units.h"

#include "nettally_abi.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>

namespace nettally {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(ParseUint, DigitsOnlyUpTo64Bits) {
    EXPECT_EQ(parse_uint("0"), 0u);
    EXPECT_EQ(parse_uint("007"), 7u);
    EXPECT_EQ(parse_uint("18446744073709551615"), kMax);
    for (const char* bad : {"", "18446744073709551616", "+1", "-1", " 1", "1 ", "0x10", "1e3", "1_000"})
        EXPECT_FALSE(parse_uint(bad).has_value()) << "'" << bad << "'";
}

TEST(ParseSize, UnitsAreDecimalOrBinaryAsWritten) {
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("0B"), 0u);
    EXPECT_EQ(parse_size("1kB"), 1000u);
    EXPECT_EQ(parse_size("1KB"), 1000u);
    EXPECT_EQ(parse_size("1K"), 1024u);
    EXPECT_EQ(parse_size("1KiB"), 1024u);
    EXPECT_EQ(parse_size("2M"), 2u << 20);
    EXPECT_EQ(parse_size("3G"), 3ull << 30);
    EXPECT_EQ(parse_size("1T"), 1ull << 40);
    EXPECT_EQ(parse_size("1TB"), 1000000000000u);
    for (const char* bad : {"1k", "1kb", "1mb", "1Mb", "1mib", "1KIB", "1 MB", "1MB ", " 1MB", "1PB", "1EiB",
                            "MB", "-1", "+1", "1e6", "0x10", "1,5MB"})
        EXPECT_FALSE(parse_size(bad).has_value()) << "'" << bad << "'";
}

TEST(ParseSize, FractionsOnlyWhenWholeBytes) {
    EXPECT_EQ(parse_size("1.0"), 1u);
    EXPECT_EQ(parse_size("1.25kB"), 1250u);
    EXPECT_EQ(parse_size("0.5KiB"), 512u);
    EXPECT_EQ(parse_size("0.25M"), 1u << 18);
    EXPECT_EQ(parse_size("1.000000001GB"), 1000000001u); // nine fractional digits
    for (const char* bad : {"1.5", "0.5B", "1.0001kB", "0.3KiB", ".5kB", "1.kB", "1..5kB", "1.5.0kB",
                            "1.0000000001GB" /* ten fractional digits */})
        EXPECT_FALSE(parse_size(bad).has_value()) << "'" << bad << "'";
}

TEST(ParseSize, Uint64Limits) {
    EXPECT_EQ(parse_size("18446744073709551615"), kMax);
    EXPECT_EQ(parse_size("18446744073709551615B"), kMax);
    EXPECT_FALSE(parse_size("18446744073709551616").has_value());
    EXPECT_EQ(parse_size("16777215TiB"), (16777215ull) << 40);
    EXPECT_FALSE(parse_size("16777216TiB").has_value()); // 2^64
    EXPECT_EQ(parse_size("18446744073709551KB"), 18446744073709551000u);
    EXPECT_FALSE(parse_size("18446744073709552KB").has_value());
    // The fraction pushes a product that fits over the top.
    EXPECT_FALSE(parse_size("18446744073709551.616kB").has_value());
    EXPECT_EQ(parse_size("18446744073709551.615kB"), kMax);
}

TEST(FormatSize, LargestWholeUnitDecimalFirst) {
    EXPECT_EQ(format_size(0), "0 B");
    EXPECT_EQ(format_size(1), "1 B");
    EXPECT_EQ(format_size(1000), "1 kB");
    EXPECT_EQ(format_size(1024), "1 KiB");
    EXPECT_EQ(format_size(1536), "1536 B");
    EXPECT_EQ(format_size(1024000), "1024 kB");
    EXPECT_EQ(format_size(3000000000000), "3 TB");
    EXPECT_EQ(format_size(1ull << 40), "1 TiB");
    EXPECT_EQ(format_size(kMax), "18446744073709551615 B");
}

TEST(FormatSize, ReadsBackThroughParseSize) {
    for (uint64_t v :
         {uint64_t{0}, uint64_t{1}, uint64_t{999}, uint64_t{1000}, uint64_t{4096}, uint64_t{1536},
          uint64_t{5000000}, uint64_t{1} << 30, uint64_t{7} << 40, uint64_t{12345678901234}, kMax}) {
        std::string text = format_size(v);
        text.erase(text.find(' '), 1); // "5 MB" -> "5MB"
        EXPECT_EQ(parse_size(text), v) << text;
    }
}

TEST(ParseMac, SixHexPairsWithColons) {
    const auto mac = parse_mac("02:aB:cd:EF:00:9f");
    ASSERT_TRUE(mac.has_value());
    const std::array<uint8_t, 6> want = {0x02, 0xab, 0xcd, 0xef, 0x00, 0x9f};
    EXPECT_EQ(*mac, want);
    for (const char* bad :
         {"", "02:ab:cd:ef:00", "02:ab:cd:ef:00:9f:", "02-ab-cd-ef-00-9f", "02:ab:cd:ef:00:9g",
          "02:ab:cd:ef:009f:", " 2:ab:cd:ef:00:9f", "+2:ab:cd:ef:00:9f", "02:ab:cd:ef:00:9f ",
          "0x:ab:cd:ef:00:9f", "02ab:cd:ef:00:9f:0"})
        EXPECT_FALSE(parse_mac(bad).has_value()) << "'" << bad << "'";
}

TEST(CanonicalIp, Ipv4) {
    uint8_t family = 0;
    uint32_t addr[4] = {1, 2, 3, 4};
    EXPECT_EQ(canonical_ip("198.18.0.1", &family, addr), "198.18.0.1");
    EXPECT_EQ(family, NT_AF_INET);
    const uint8_t want[4] = {198, 18, 0, 1}; // network order in the first word, the rest zero
    EXPECT_EQ(std::memcmp(addr, want, 4), 0);
    EXPECT_EQ(addr[1] | addr[2] | addr[3], 0u);
    for (const char* bad : {"", "198.18.0.256", "198.18.1", "198.18.0.1 ", " 198.18.0.1", "198.18.0.1/32",
                            "198.18.0.1.5", "localhost"})
        EXPECT_FALSE(canonical_ip(bad).has_value()) << "'" << bad << "'";
}

TEST(CanonicalIp, Ipv6CanonicalForm) {
    uint8_t family = 0;
    uint32_t addr[4]{};
    EXPECT_EQ(canonical_ip("2001:0DB8:0000:0000:0000:0000:0000:0001", &family, addr), "2001:db8::1");
    EXPECT_EQ(family, NT_AF_INET6);
    const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    EXPECT_EQ(std::memcmp(addr, want, 16), 0);
    EXPECT_EQ(canonical_ip("::"), "::");
    EXPECT_EQ(canonical_ip("::FFFF:198.18.0.1"), "::ffff:198.18.0.1");
    EXPECT_EQ(canonical_ip("fe80:0:0:0:0:0:0:1"), "fe80::1");
    for (const char* bad : {"fe80::1%eth0", "2001:db8::1::2", "2001:db8:::1", "2001:db8::g", "[2001:db8::1]",
                            "2001:db8::1/64", "1:2:3:4:5:6:7:8:9"})
        EXPECT_FALSE(canonical_ip(bad).has_value()) << "'" << bad << "'";
}

} // namespace
} // namespace nettally
