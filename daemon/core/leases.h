// DHCP lease files as an identity source for subscribers (core/subscribers.h): dnsmasq's lease
// file and Kea's memfile CSV (DHCPv4 and DHCPv6), parsed into leases, and the leases in force at
// a time turned into the bindings the DHCP source wants. Pure: the daemon reads the files
// (app/leases.h); malformed lines are reported with their line number and skipped, never fatal.
#pragma once

#include "core/subscribers.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

enum class LeaseFormat { Dnsmasq, Kea };
std::string_view to_string(LeaseFormat f);

struct Lease {
    Prefix prefix;          // the leased address (a host), or a delegated prefix (Kea IA_PD)
    std::string mac;        // normalized MAC, "" when the file has none (dnsmasq DHCPv6)
    std::string hostname;   // "" when none
    std::string client_id;  // dnsmasq client-id, Kea client_id / DUID; "" when none
    uint64_t expires_s = 0; // Unix seconds; 0 = never (dnsmasq's infinite leases)
    bool released = false;  // Kea: a released, declined or reclaimed lease (state != 0, lifetime 0)
    bool operator==(const Lease&) const = default;
};

struct LeaseProblem {
    size_t line = 0; // 1-based
    std::string what;
};

struct LeaseFile {
    std::vector<Lease> leases; // in file order
    std::vector<LeaseProblem> problems;
};

// dnsmasq: "EXPIRY MAC IP HOSTNAME CLIENT-ID" per IPv4 lease; after a "duid DUID" line, IPv6
// leases "EXPIRY IAID IP HOSTNAME CLIENT-ID" ("*" = none). EXPIRY 0 = infinite.
LeaseFile parse_dnsmasq_leases(std::string_view text);
// Kea memfile: a header naming the columns (lease4: address, hwaddr, client_id, valid_lifetime,
// expire, ..., hostname, state; lease6: address, duid, valid_lifetime, expire, ..., lease_type,
// iaid, prefix_len, ..., hostname, hwaddr, state). Append-only: a later line for the same address
// replaces the earlier one. Hostnames with commas are escaped as "&#x2c".
LeaseFile parse_kea_leases(std::string_view text);
LeaseFile parse_leases(LeaseFormat format, std::string_view text);

// The bindings of the leases in force at now_s (not expired, not released; the last line per
// address wins). user: the MAC -> user map when it knows the lease's MAC, else the hostname; a
// lease with neither (or a name that is no valid user name) binds nothing and is counted in
// *skipped. session: the MAC, else the client id.
std::vector<WantedBinding>
lease_bindings(const std::vector<Lease>& leases, uint64_t now_s,
               const std::function<std::string(const std::string& mac)>& user_of_mac,
               size_t* skipped = nullptr);

} // namespace nettally
