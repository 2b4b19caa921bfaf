// Fuzz target: the traffic class rule document (core/classes.h) and its compiler
// (core/classes_bundle.h). parse_rules may only throw ConfigError, with a one-line message;
// compile_rules only BundleError. An accepted document's bundle must read back, write the same
// bytes again and classify a packet like the document's plain meaning does.
#include "core/classes.h"
#include "core/classes_bundle.h"
#include "core/config.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    nettally::RuleSet rs;
    try {
        rs = nettally::parse_rules(text, "fuzz.yaml");
    } catch (const nettally::ConfigError& e) {
        if (std::strchr(e.what(), '\n'))
            std::abort();
        return 0;
    }
    nettally::Bundle b;
    try {
        b = nettally::compile_rules(rs);
    } catch (const nettally::BundleError&) {
        return 0;
    }
    const std::vector<uint8_t> bytes = nettally::write_bundle(b);
    nettally::Bundle back = nettally::read_bundle(bytes); // throws (a finding) if refused
    if (nettally::write_bundle(back) != bytes)
        std::abort();
    nettally::PacketFacts p;
    p.ifname = "lan0";
    p.lan = true;
    p.has_mac = true;
    p.family = NT_AF_INET;
    p.proto = 17;
    p.has_ports = true;
    p.dport = 53;
    if (nettally::classify(back, p) != nettally::classify_direct(rs, p))
        std::abort();
    return 0;
}
