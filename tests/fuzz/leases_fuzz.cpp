// Fuzz target: the DHCP lease file parsers (core/leases.h). The first byte picks dnsmasq or Kea,
// the rest is the file. Parsing never throws; every lease it accepts has a valid prefix and, when
// set, a normalized MAC; lease_bindings on the result only yields valid user names.
#include "core/leases.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0)
        return 0;
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto format = data[0] % 2 ? nettally::LeaseFormat::Kea : nettally::LeaseFormat::Dnsmasq;
    const nettally::LeaseFile f = nettally::parse_leases(format, text);
    for (const auto& l : f.leases) {
        const auto again = nettally::Prefix::parse(l.prefix.to_string());
        if (!again || *again != l.prefix)
            std::abort();
        if (!l.mac.empty() && nettally::normalize_mac(l.mac) != l.mac)
            std::abort();
    }
    for (const auto& p : f.problems)
        if (p.line == 0 || p.what.empty())
            std::abort();
    for (const auto& b : nettally::lease_bindings(f.leases, 1000, [](const std::string& mac) { return mac; }))
        if (!nettally::valid_user_name(b.user))
            std::abort();
    return 0;
}
