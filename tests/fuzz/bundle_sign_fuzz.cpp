// Fuzz target: the signature trailer of bundles (core/classes_sign.h), which a gateway checks on
// every bundle it pulls. verify_bundle_signature never throws; a refusal is one line; an accepted
// file's bundle part is a prefix of it, the same with and without trusted keys, and read_bundle
// may only throw BundleError on it. The input is checked as it is (against the fuzz key, a
// stranger's key and no key), and a plain bundle is also signed by the fuzz key so that
// mutations of the bundle part reach an accepted signature.
#include "core/classes_bundle.h"
#include "core/classes_sign.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace {

// A key made for this target (nettallyctl rules keygen): the committed corpus is signed with it.
const nettally::SecretKey& fuzz_secret() {
    static const nettally::SecretKey k = nettally::parse_secret_key(
        "rsgi/R913FpqjPPcV/BL4OkKyBc3PTQTRG3reOyQcQgrHfqvbBG0hIljYIyJgtcVc/SZv2L+YwQHhjwg7iHQ/w==",
        "fuzz key");
    return k;
}
const nettally::PublicKey& fuzz_public() {
    static const nettally::PublicKey k =
        nettally::parse_public_key("Kx36r2wRtISJY2CMiYLXFXP0mb9i/mMEB4Y8IO4h0P8=", "fuzz key");
    return k;
}
// Shares the fuzz key's id: a signature must be checked, not just its key id looked up.
const nettally::PublicKey& twin_public() {
    static const nettally::PublicKey k = [] {
        nettally::PublicKey t = fuzz_public();
        t[31] ^= 1;
        return t;
    }();
    return k;
}

// The reason, checked to be one line; *out set when accepted.
std::string verify(std::span<const uint8_t> file, const std::vector<nettally::PublicKey>& keys,
                   std::span<const uint8_t>& out) {
    out = {};
    const std::string why = nettally::verify_bundle_signature(file, keys, &out);
    if (why.find('\n') != std::string::npos)
        std::abort();
    if (why.empty() && (out.data() != file.data() || out.size() > file.size()))
        std::abort();
    return why;
}

void check(std::span<const uint8_t> file) {
    std::span<const uint8_t> open_part;
    std::span<const uint8_t> keyed_part;
    const std::string open = verify(file, {}, open_part);
    const std::string keyed = verify(file, {fuzz_public()}, keyed_part);
    std::span<const uint8_t> ignored;
    const std::string twin = verify(file, {twin_public()}, ignored);
    // Accepted with the key: accepted without it too, the same bundle part; the twin key (same
    // id, other key) never verifies it.
    if (keyed.empty() &&
        (!open.empty() || keyed_part.size() != open_part.size() || twin.rfind("bad signature", 0) != 0))
        std::abort();
    if (!open.empty())
        return;
    try {
        nettally::read_bundle(open_part);
    } catch (const nettally::BundleError& e) {
        if (std::strchr(e.what(), '\n'))
            std::abort();
    }
    const nettally::SignatureInfo info = nettally::signature_info(file);
    if (info.signed_ || file.size() < nettally::kBundleHeaderSize)
        return;
    uint32_t body = 0;
    std::memcpy(&body, file.data() + 24, 4); // little-endian hosts only, as the fuzzers run
    if (std::memcmp(file.data(), "NTCB", 4) != 0 ||
        nettally::kBundleHeaderSize + uint64_t{body} != file.size())
        return;
    // A whole bundle: signed by the fuzz key it verifies, and gives back exactly itself.
    const std::vector<uint8_t> s = nettally::sign_bundle(file, fuzz_secret());
    std::span<const uint8_t> part;
    if (!verify(s, {fuzz_public()}, part).empty() || part.size() != file.size())
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check(std::span<const uint8_t>(data, size));
    return 0;
}
