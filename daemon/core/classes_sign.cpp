// Signed traffic class bundles (classes_sign.h): the trailer, Ed25519 through libsodium, and the
// key files. The file being verified comes from the network, so every length is checked against
// the buffer before it is used, and every refusal is one line.
#include "core/classes_sign.h"

#include "core/classes_bundle.h"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace nettally {
namespace fs = std::filesystem;
namespace {

// Where the header keeps the body size (classes_bundle.cpp: magic, format, header size, version,
// hash, then the body size).
constexpr size_t kBodySizeOffset = 4 + 2 + 2 + 8 + 8;
constexpr uint8_t kBundleMagic[4] = {'N', 'T', 'C', 'B'};

void init_sodium() {
    // Thread-safe and idempotent; fails only when the system has no random source.
    if (sodium_init() < 0)
        throw std::runtime_error("libsodium cannot be initialised");
}

uint32_t le32(std::span<const uint8_t> d, size_t at) {
    return uint32_t{d[at]} | uint32_t{d[at + 1]} << 8 | uint32_t{d[at + 2]} << 16 | uint32_t{d[at + 3]} << 24;
}

std::string to_base64(const uint8_t* data, size_t n) {
    std::string out(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_ORIGINAL);
    out.resize(std::strlen(out.c_str()));
    return out;
}

// Exactly `n` bytes from the one base64 line of `text`, or a reason.
std::string from_base64(const std::string& text, uint8_t* out, size_t n) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return "empty";
    const auto last = text.find_last_not_of(" \t\r\n");
    std::string line = text.substr(first, last - first + 1);
    if (line.find_first_of(" \t\r\n") != std::string::npos)
        return "more than one line or word (expected one line of base64)";
    // The decoder writes at most its capacity, so decode into room for one byte more than
    // wanted to tell "too long" from "just right".
    std::vector<uint8_t> buf(n + 1);
    size_t len = 0;
    const char* end = nullptr;
    std::string why;
    if (sodium_base642bin(buf.data(), buf.size(), line.c_str(), line.size(), nullptr, &len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != line.c_str() + line.size())
        why = line.size() > 4 * (n + 3) / 3 ? "not a key of this kind (too long)" : "not base64";
    else if (len != n)
        why =
            "not a key of this kind (" + std::to_string(len) + " bytes, expected " + std::to_string(n) + ")";
    else
        std::memcpy(out, buf.data(), n);
    // A secret key passes through here: leave no copy behind.
    sodium_memzero(buf.data(), buf.size());
    sodium_memzero(line.data(), line.size());
    return why;
}

std::string read_key_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw KeyError(path.string() + ": cannot read: " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    if (s.str().size() > 4096)
        throw KeyError(path.string() + ": not a key file (too large)");
    return s.str();
}

} // namespace

KeyPair generate_keypair() {
    init_sodium();
    KeyPair k;
    crypto_sign_keypair(k.pub.data(), k.secret.data());
    return k;
}

KeyId key_id(const PublicKey& pub) {
    KeyId id{};
    std::copy_n(pub.begin(), id.size(), id.begin());
    return id;
}

std::string key_id_text(const KeyId& id) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    for (const uint8_t b : id) {
        s += kHex[b >> 4];
        s += kHex[b & 15];
    }
    return s;
}

std::string public_key_text(const PublicKey& pub) {
    return to_base64(pub.data(), pub.size()) + "\n";
}

std::string secret_key_text(const SecretKey& secret) {
    return to_base64(secret.data(), secret.size()) + "\n";
}

PublicKey parse_public_key(const std::string& text, const std::string& what) {
    init_sodium();
    PublicKey k{};
    if (std::string why = from_base64(text, k.data(), k.size()); !why.empty())
        throw KeyError(what + ": not an Ed25519 public key: " + why);
    return k;
}

SecretKey parse_secret_key(const std::string& text, const std::string& what) {
    init_sodium();
    SecretKey k{};
    if (std::string why = from_base64(text, k.data(), k.size()); !why.empty())
        throw KeyError(what + ": not an Ed25519 secret key: " + why);
    // The second half is the public key of the first (the seed): a damaged file shows here.
    PublicKey pub{};
    SecretKey check{};
    crypto_sign_seed_keypair(pub.data(), check.data(), k.data());
    const bool ok = sodium_memcmp(check.data(), k.data(), k.size()) == 0;
    sodium_memzero(check.data(), check.size());
    if (!ok)
        throw KeyError(what + ": not an Ed25519 secret key: its public half does not match its seed");
    return k;
}

PublicKey read_public_key(const fs::path& path) {
    return parse_public_key(read_key_file(path), path.string());
}

SecretKey read_secret_key(const fs::path& path) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec)
        throw KeyError(path.string() + ": cannot read: " + ec.message());
    if (!fs::is_regular_file(st))
        throw KeyError(path.string() + ": not a regular file");
    const fs::perms p = st.permissions();
    constexpr fs::perms kOthers = fs::perms::group_all | fs::perms::others_all;
    if ((p & kOthers) != fs::perms::none) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(p & fs::perms::mask));
        throw KeyError(path.string() + ": secret key readable by group or others (mode " + mode +
                       "); chmod 600 it");
    }
    std::string text = read_key_file(path);
    SecretKey k = parse_secret_key(text, path.string());
    sodium_memzero(text.data(), text.size());
    return k;
}

std::vector<uint8_t> sign_bundle(std::span<const uint8_t> bundle, const SecretKey& secret) {
    init_sodium();
    PublicKey pub{};
    crypto_sign_ed25519_sk_to_pk(pub.data(), secret.data());
    std::vector<uint8_t> out(bundle.begin(), bundle.end());
    out.insert(out.end(), std::begin(kSignMagic), std::end(kSignMagic));
    for (int i = 0; i < 4; i++)
        out.push_back(static_cast<uint8_t>(kSignTrailerSize >> (8 * i)));
    const KeyId id = key_id(pub);
    out.insert(out.end(), id.begin(), id.end());
    std::array<uint8_t, crypto_sign_BYTES> sig{};
    crypto_sign_detached(sig.data(), nullptr, bundle.data(), bundle.size(), secret.data());
    out.insert(out.end(), sig.begin(), sig.end());
    return out;
}

SignatureInfo signature_info(std::span<const uint8_t> file) {
    SignatureInfo info;
    info.bundle_size = file.size();
    // Not a bundle header: nothing to split; read_bundle says what is wrong with it.
    if (file.size() < kBundleHeaderSize || std::memcmp(file.data(), kBundleMagic, 4) != 0)
        return info;
    const uint64_t bundle_size = kBundleHeaderSize + uint64_t{le32(file, kBodySizeOffset)};
    if (bundle_size >= file.size())
        return info; // unsigned (or truncated: read_bundle says so)
    info.bundle_size = static_cast<size_t>(bundle_size);
    const std::span<const uint8_t> t = file.subspan(info.bundle_size);
    if (t.size() < 8 || std::memcmp(t.data(), kSignMagic, 4) != 0) {
        info.error =
            t.size() >= 4 && std::memcmp(t.data(), kSignMagic, 4) == 0
                ? "truncated signature trailer (" + std::to_string(t.size()) + " bytes after the bundle)"
                : std::to_string(t.size()) + " bytes after the bundle that are not a signature trailer";
        return info;
    }
    const uint32_t len = le32(t, 4);
    if (len != kSignTrailerSize)
        info.error = "signature trailer length " + std::to_string(len) + ", expected " +
                     std::to_string(kSignTrailerSize);
    else if (t.size() < kSignTrailerSize)
        info.error = "truncated signature trailer (" + std::to_string(t.size()) + " of " +
                     std::to_string(kSignTrailerSize) + " bytes)";
    else if (t.size() > kSignTrailerSize)
        info.error = std::to_string(t.size() - kSignTrailerSize) + " bytes after the signature trailer";
    if (!info.error.empty())
        return info;
    info.signed_ = true;
    std::copy_n(t.begin() + 8, info.key.size(), info.key.begin());
    return info;
}

std::string verify_bundle_signature(std::span<const uint8_t> file, const std::vector<PublicKey>& trusted_keys,
                                    std::span<const uint8_t>* bundle_out) {
    const SignatureInfo info = signature_info(file);
    if (!info.error.empty())
        return info.error;
    const std::span<const uint8_t> bundle = file.first(info.bundle_size);
    if (bundle_out)
        *bundle_out = bundle;
    if (trusted_keys.empty())
        return "";
    if (!info.signed_)
        return "unsigned bundle but rules.trusted_keys is set";
    init_sodium();
    const uint8_t* sig = file.data() + info.bundle_size + 16;
    bool known = false;
    for (const PublicKey& k : trusted_keys) {
        if (key_id(k) != info.key)
            continue;
        known = true;
        if (crypto_sign_verify_detached(sig, bundle.data(), bundle.size(), k.data()) == 0)
            return "";
    }
    if (!known)
        return "signature by unknown key " + key_id_text(info.key);
    return "bad signature (key " + key_id_text(info.key) + ")";
}

} // namespace nettally
