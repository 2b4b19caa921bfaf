// Signed traffic class bundles: Ed25519 (libsodium) over the bundle bytes, so a gateway that
// pulls its rules from a server (io/rules_fetch.h) or is handed a bundle loads only what a
// trusted key signed.
//
// A signed bundle is the bundle (classes_bundle.h: 48-byte header + body) followed by one
// trailer, little-endian:
//   "NTSG" | u32 trailer length (80) | 8-byte key id | 64-byte Ed25519 detached signature
// The key id is the first 8 bytes of the signer's public key; the signature covers every byte
// before the trailer. The header's body size says where the bundle ends, so read_bundle reads the
// bundle part as it always did, and a reader that strips the trailer needs nothing else.
//
// Key files are text, one line of standard base64 (RFC 4648, with padding) and a newline:
//   PREFIX.pub  the 32-byte public key (44 characters)
//   PREFIX.key  the 64-byte libsodium secret key, seed then public key (88 characters); mode
//               0600, a key file group or others can read is refused.
// The lengths differ, so one file cannot be taken for the other.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace nettally {

using PublicKey = std::array<uint8_t, 32>;
using SecretKey = std::array<uint8_t, 64>;
using KeyId = std::array<uint8_t, 8>;

inline constexpr uint8_t kSignMagic[4] = {'N', 'T', 'S', 'G'};
inline constexpr size_t kSignTrailerSize = 4 + 4 + 8 + 64;

// A key file that cannot be read or is not a key; what() is one line naming the file.
class KeyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct KeyPair {
    PublicKey pub{};
    SecretKey secret{};
};

// A fresh key pair from the system's random source.
KeyPair generate_keypair();

KeyId key_id(const PublicKey& pub);
// 16 lowercase hex digits.
std::string key_id_text(const KeyId& id);

// The key files' text: the base64 line and "\n".
std::string public_key_text(const PublicKey& pub);
std::string secret_key_text(const SecretKey& secret);
// Parse one key from text (surrounding whitespace ignored); `what` names the source in errors.
PublicKey parse_public_key(const std::string& text, const std::string& what);
SecretKey parse_secret_key(const std::string& text, const std::string& what);
// Throw KeyError. read_secret_key refuses a file group or others may read (or write).
PublicKey read_public_key(const std::filesystem::path& path);
SecretKey read_secret_key(const std::filesystem::path& path);

// The bundle bytes followed by the signature trailer. Throws KeyError for a secret key whose
// two halves do not belong together.
std::vector<uint8_t> sign_bundle(std::span<const uint8_t> bundle, const SecretKey& secret);

// What the trailer of a file says, without checking the signature. signed_ false: no trailer
// (or not a bundle at all); error non-empty: the trailer is malformed.
struct SignatureInfo {
    bool signed_ = false;
    KeyId key{};
    size_t bundle_size = 0;
    std::string error;
};
SignatureInfo signature_info(std::span<const uint8_t> file);

// "" when the file may be loaded, else a one-line reason. trusted_keys empty: unsigned and signed
// files are both accepted (the signature not checked, a malformed trailer still refused);
// otherwise the file must carry a valid signature by one of the keys. *bundle_out (when given):
// the bundle bytes without the trailer, for read_bundle.
std::string verify_bundle_signature(std::span<const uint8_t> file, const std::vector<PublicKey>& trusted_keys,
                                    std::span<const uint8_t>* bundle_out);

} // namespace nettally
