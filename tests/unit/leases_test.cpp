// DHCP lease files (core/leases.h): dnsmasq's lease file and Kea's memfile CSV, good and broken,
// and the bindings of the leases in force (expiry, release, last line wins, MAC -> user map).
#include "core/leases.h"

#include <gtest/gtest.h>

namespace nettally {
namespace {

Prefix P(const std::string& s) {
    return *Prefix::parse(s);
}

TEST(DnsmasqLeases, IPv4AndIPv6) {
    const LeaseFile f =
        parse_dnsmasq_leases("1767225600 02:00:c6:12:01:02 198.18.1.50 laptop 01:02:00:c6:12:01:02\n"
                             "0 02:00:c6:12:01:03 198.18.1.51 * *\n"
                             "duid 00:01:00:01:2c:00:00:00:02:00:c6:12:01:01\n"
                             "1767225600 1234 fd00:1::50 phone 00:01:00:01:aa\n");
    EXPECT_TRUE(f.problems.empty());
    ASSERT_EQ(f.leases.size(), 3u);
    EXPECT_EQ(f.leases[0].prefix, P("198.18.1.50"));
    EXPECT_EQ(f.leases[0].mac, "02:00:c6:12:01:02");
    EXPECT_EQ(f.leases[0].hostname, "laptop");
    EXPECT_EQ(f.leases[0].expires_s, 1767225600u);
    EXPECT_EQ(f.leases[1].hostname, "");
    EXPECT_EQ(f.leases[1].client_id, "");
    EXPECT_EQ(f.leases[1].expires_s, 0u);
    EXPECT_EQ(f.leases[2].prefix, P("fd00:1::50"));
    EXPECT_EQ(f.leases[2].mac, "");
    EXPECT_EQ(f.leases[2].client_id, "00:01:00:01:aa");
}

TEST(DnsmasqLeases, BrokenLinesAreReportedAndSkipped) {
    const LeaseFile f =
        parse_dnsmasq_leases("1767225600 02:00:c6:12:01:02 198.18.1.50 laptop *\n"
                             "garbage\n"
                             "x 02:00:c6:12:01:02 198.18.1.52 a *\n"
                             "1767225600 02:00:c6:12:01 198.18.1.53 a *\n"
                             "1767225600 02:00:c6:12:01:04 198.18.1.300 a *\n"
                             "1767225600 02:00:c6:12:01:05 fd00:1::5 a *\n"
                             "1767225600 02:00:c6:12:01:06 198.18.1.0/24 a *\n"
                             "1767225600 02:00:c6:12:01:07 198.18.1.57 a *"); // no final newline
    ASSERT_EQ(f.leases.size(), 2u);
    EXPECT_EQ(f.leases[1].prefix, P("198.18.1.57"));
    ASSERT_EQ(f.problems.size(), 6u);
    EXPECT_EQ(f.problems[0].line, 2u);
    EXPECT_EQ(f.problems[0].what, "expected 5 fields (EXPIRY MAC|IAID ADDRESS HOSTNAME CLIENT-ID), got 1");
    EXPECT_EQ(f.problems[1].what, "bad expiry time 'x'");
    EXPECT_EQ(f.problems[2].what, "bad MAC address '02:00:c6:12:01'");
    EXPECT_EQ(f.problems[3].line, 5u);
    EXPECT_EQ(f.problems[4].what, "an IPv6 address before the duid line");
    EXPECT_EQ(f.problems[5].what, "an address, not a prefix, expected: '198.18.1.0/24'");
    EXPECT_TRUE(parse_dnsmasq_leases("").leases.empty());
    EXPECT_TRUE(parse_dnsmasq_leases("").problems.empty());
    EXPECT_EQ(parse_dnsmasq_leases(std::string("1 02:00:00:00:00:01 198.18.1.2 a\0b *\n", 37)).leases.size(),
              1u);
}

constexpr const char* kKea4Header = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_"
                                    "rev,hostname,state,user_context,pool_id\n";
constexpr const char* kKea6Header =
    "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,"
    "prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,"
    "hwtype,hwaddr_source,pool_id\n";

TEST(KeaLeases, Lease4RenewReleaseLastLineWins) {
    const std::string text = std::string(kKea4Header) +
                             "198.18.1.60,02:00:c6:12:01:02,01:02,3600,1767225600,1,0,0,host&#x2ca.,0,,0\n"
                             "198.18.1.61,02:00:c6:12:01:03,,3600,1767225600,1,0,0,,0,,0\n"
                             "198.18.1.61,02:00:c6:12:01:03,,0,1767222000,1,0,0,,0,,0\n"      // released
                             "198.18.1.62,02:00:c6:12:01:04,,3600,1767225600,1,0,0,b,2,,0\n"; // reclaimed
    const LeaseFile f = parse_kea_leases(text);
    EXPECT_TRUE(f.problems.empty()) << f.problems[0].what;
    ASSERT_EQ(f.leases.size(), 4u);
    EXPECT_EQ(f.leases[0].hostname, "host,a");
    EXPECT_EQ(f.leases[0].client_id, "01:02");
    EXPECT_FALSE(f.leases[0].released);
    EXPECT_TRUE(f.leases[2].released);
    EXPECT_TRUE(f.leases[3].released);
    const auto users = [](const std::string& mac) {
        return mac == "02:00:c6:12:01:03" ? std::string("carol") : "";
    };
    size_t skipped = 0;
    const auto b = lease_bindings(f.leases, 1767220000, users, &skipped);
    ASSERT_EQ(b.size(), 1u) << "198.18.1.61 released by its last line, .62 reclaimed";
    EXPECT_EQ(b[0].user, "host,a") << "hostname when the MAC has no user";
    EXPECT_EQ(skipped, 0u) << "'host,a' is a valid user name";
}

TEST(KeaLeases, Lease6AddressesAndDelegatedPrefixes) {
    const std::string text =
        std::string(kKea6Header) +
        "fd00:1::70,00:01:00:01:aa,3600,1767225600,1,1800,0,7,128,0,0,phone,02:00:c6:12:01:02,"
        "0,,1,2,0\n"
        "fd00:1:100::,00:01:00:01:aa,3600,1767225600,1,1800,2,8,56,0,0,,02:00:c6:12:01:02,"
        "0,,1,2,0\n";
    const LeaseFile f = parse_kea_leases(text);
    EXPECT_TRUE(f.problems.empty()) << f.problems[0].what;
    ASSERT_EQ(f.leases.size(), 2u);
    EXPECT_EQ(f.leases[0].prefix, P("fd00:1::70"));
    EXPECT_EQ(f.leases[1].prefix, P("fd00:1:100::/56"));
    EXPECT_EQ(f.leases[1].client_id, "00:01:00:01:aa");
    const auto b =
        lease_bindings(f.leases, 1767220000, [](const std::string&) { return std::string("dave"); });
    ASSERT_EQ(b.size(), 2u);
    EXPECT_EQ(b[0].user, "dave");
    EXPECT_EQ(b[1].session, "02:00:c6:12:01:02");
}

TEST(KeaLeases, BrokenFiles) {
    EXPECT_EQ(parse_kea_leases("address,hwaddr\n").problems.at(0).what,
              "the header has no 'valid_lifetime' column");
    // Found by the fuzzer: a column named twice left row fields unchecked.
    EXPECT_EQ(parse_kea_leases("address,duid,lease_type,lease_type\nfd00::1,1,2\n").problems.at(0).what,
              "the header names column 'lease_type' twice");
    const std::string text = std::string(kKea4Header) + "198.18.1.60,02:00:c6:12:01:02\n" +
                             "198.18.1.999,02:00:c6:12:01:02,,3600,1767225600,1,0,0,a,0,,0\n" +
                             "198.18.1.63,zz,,3600,1767225600,1,0,0,a,0,,0\n" +
                             "198.18.1.64,02:00:c6:12:01:02,,x,1767225600,1,0,0,a,0,,0\n" +
                             "fd00::1,02:00:c6:12:01:02,,3600,1767225600,1,0,0,a,0,,0\n" +
                             "198.18.1.65,02:00:c6:12:01:02,,3600,1767225600,1,0,0,ok,0,,0\n";
    const LeaseFile f = parse_kea_leases(text);
    ASSERT_EQ(f.leases.size(), 1u);
    ASSERT_EQ(f.problems.size(), 5u);
    EXPECT_EQ(f.problems[0].line, 2u);
    EXPECT_EQ(f.problems[0].what, "expected 12 fields, got 2");
    EXPECT_EQ(f.problems[2].what, "bad hwaddr 'zz'");
    EXPECT_EQ(f.problems[3].what, "valid_lifetime, expire and state must be numbers");
    EXPECT_EQ(f.problems[4].what, "an IPv6 address in a lease4 file");
}

TEST(LeaseBindings, ExpiryMacMapAndInvalidNames) {
    const LeaseFile f = parse_dnsmasq_leases("100 02:00:00:00:00:01 198.18.1.2 alice-laptop *\n"
                                             "300 02:00:00:00:00:02 198.18.1.3 * *\n"
                                             "300 02:00:00:00:00:03 198.18.1.4 bad|name *\n"
                                             "0 02:00:00:00:00:04 198.18.1.5 forever *\n");
    const auto users = [](const std::string& mac) {
        return mac == "02:00:00:00:00:02" ? std::string("bob") : "";
    };
    size_t skipped = 0;
    auto b = lease_bindings(f.leases, 99, users, &skipped);
    ASSERT_EQ(b.size(), 3u);
    EXPECT_EQ(b[0].user, "alice-laptop");
    EXPECT_EQ(b[0].session, "02:00:00:00:00:01");
    EXPECT_EQ(b[1].user, "bob") << "the MAC map wins over the (missing) hostname";
    EXPECT_EQ(b[2].user, "forever") << "expiry 0: infinite";
    EXPECT_EQ(skipped, 1u);
    b = lease_bindings(f.leases, 100, users);
    EXPECT_EQ(b.size(), 2u) << "a lease ends at its expiry time";
}

} // namespace
} // namespace nettally
