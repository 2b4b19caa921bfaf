// Fuzz target: the bundle reader (core/classes_bundle.h), which reads what the network and
// D-Bus callers send. read_bundle may only throw BundleError, with a one-line message. A bundle
// it accepts writes back to the same bytes, and classifying packets from it stays inside its
// tables (ASan would see a stray id). The input is read twice: as it is, and with the header's
// hash made to fit the body, so mutations reach the section readers instead of stopping at the
// hash check.
#include "core/classes_bundle.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

namespace {

void check(std::span<const uint8_t> data) {
    nettally::Bundle b;
    try {
        b = nettally::read_bundle(data);
    } catch (const nettally::BundleError& e) {
        if (std::strchr(e.what(), '\n'))
            std::abort();
        return;
    }
    nettally::Bundle copy = b;
    const std::vector<uint8_t> again = nettally::write_bundle(copy);
    if (again.size() != data.size() || std::memcmp(again.data(), data.data(), data.size()) != 0)
        std::abort();
    nettally::PacketFacts p;
    for (uint8_t family : {NT_AF_INET, NT_AF_INET6})
        for (int i = 0; i < 4; i++) {
            p.ifname = i % 2 ? "lan0" : "wan0";
            p.lan = i % 2;
            p.has_mac = true;
            p.family = family;
            p.dir = static_cast<uint8_t>(i % 2);
            p.proto = static_cast<uint8_t>(i * 7);
            p.has_ports = i > 1;
            p.sport = static_cast<uint16_t>(i * 1000);
            p.dport = static_cast<uint16_t>(65535 - i);
            p.dscp = static_cast<uint8_t>(i * 15);
            p.vlan = static_cast<uint16_t>(i * 1000);
            const uint32_t id = nettally::classify(b, p);
            if (id != nettally::kClassOther && nettally::class_name(b, id).empty())
                std::abort();
        }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check(std::span<const uint8_t>(data, size));
    if (size < nettally::kBundleHeaderSize)
        return 0;
    std::vector<uint8_t> fixed(data, data + size);
    const uint64_t h =
        nettally::fnv1a64(std::span<const uint8_t>(fixed).subspan(nettally::kBundleHeaderSize));
    for (size_t i = 0; i < 8; i++)
        fixed[16 + i] = static_cast<uint8_t>(h >> (8 * i));
    check(fixed);
    return 0;
}
