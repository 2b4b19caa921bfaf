// Signed traffic class bundles (core/classes_sign.h): sign then verify; every changed byte of the
// bundle or of its trailer refused; unknown keys, unsigned bundles where keys are trusted,
// truncated and malformed trailers; the key files (format, damage, permissions).
#include "core/classes.h"
#include "core/classes_bundle.h"
#include "core/classes_sign.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

namespace nettally {
namespace {
namespace fs = std::filesystem;

const char* const kDoc = R"(name: home
version: 3
classes:
  - name: web
    id: 30
    match: {protocol: tcp, dport: [80, 443]}
  - name: dns
    id: 40
    match: {protocol: [udp, tcp], dport: 53}
)";

std::vector<uint8_t> plain_bundle() {
    Bundle b = compile_rules(parse_rules(kDoc, "rules.yaml"));
    return write_bundle(b);
}

std::string verify(const std::vector<uint8_t>& file, const std::vector<PublicKey>& keys,
                   std::span<const uint8_t>* out = nullptr) {
    return verify_bundle_signature(file, keys, out);
}

class TempDir {
public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "nt-sign-XXXXXX").string();
        path_ = mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    fs::path operator/(const std::string& name) const { return path_ / name; }

private:
    fs::path path_;
};

void write_file(const fs::path& p, const std::string& text, mode_t mode) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
    ASSERT_EQ(chmod(p.c_str(), mode), 0);
}

std::string key_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const KeyError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no KeyError";
    return "";
}

TEST(ClassesSign, SignedBundleVerifiesAndReadsBack) {
    const KeyPair k = generate_keypair();
    const std::vector<uint8_t> bundle = plain_bundle();
    const std::vector<uint8_t> signed_ = sign_bundle(bundle, k.secret);
    ASSERT_EQ(signed_.size(), bundle.size() + kSignTrailerSize);
    EXPECT_TRUE(std::equal(bundle.begin(), bundle.end(), signed_.begin()));
    EXPECT_EQ(std::string(signed_.begin() + static_cast<long>(bundle.size()),
                          signed_.begin() + static_cast<long>(bundle.size()) + 4),
              "NTSG");

    std::span<const uint8_t> out;
    EXPECT_EQ(verify(signed_, {k.pub}, &out), "");
    ASSERT_EQ(out.size(), bundle.size());
    EXPECT_TRUE(std::equal(out.begin(), out.end(), bundle.begin()));
    EXPECT_EQ(read_bundle(out).name, "home");

    // Among other trusted keys, too.
    const KeyPair other = generate_keypair();
    EXPECT_EQ(verify(signed_, {other.pub, k.pub}), "");

    const SignatureInfo info = signature_info(signed_);
    EXPECT_TRUE(info.signed_);
    EXPECT_EQ(info.key, key_id(k.pub));
    EXPECT_EQ(info.bundle_size, bundle.size());
    EXPECT_EQ(key_id_text(info.key).size(), 16u);
}

TEST(ClassesSign, SigningIsDeterministic) {
    const KeyPair k = generate_keypair();
    EXPECT_EQ(sign_bundle(plain_bundle(), k.secret), sign_bundle(plain_bundle(), k.secret));
}

TEST(ClassesSign, EveryFlippedByteIsRefused) {
    const KeyPair k = generate_keypair();
    const std::vector<uint8_t> signed_ = sign_bundle(plain_bundle(), k.secret);
    for (size_t i = 0; i < signed_.size(); i++)
        for (const uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
            std::vector<uint8_t> bad = signed_;
            bad[i] ^= flip;
            const std::string why = verify(bad, {k.pub});
            EXPECT_NE(why, "") << "byte " << i << " ^ " << int{flip} << " accepted";
            EXPECT_EQ(why.find('\n'), std::string::npos) << why;
        }
}

TEST(ClassesSign, ReasonsNameTheProblem) {
    const KeyPair k = generate_keypair();
    const KeyPair stranger = generate_keypair();
    const std::vector<uint8_t> bundle = plain_bundle();
    const std::vector<uint8_t> signed_ = sign_bundle(bundle, k.secret);

    EXPECT_EQ(verify(signed_, {stranger.pub}), "signature by unknown key " + key_id_text(key_id(k.pub)));
    EXPECT_EQ(verify(bundle, {k.pub}), "unsigned bundle but rules.trusted_keys is set");

    std::vector<uint8_t> bad_sig = signed_;
    bad_sig.back() ^= 1;
    EXPECT_EQ(verify(bad_sig, {k.pub}), "bad signature (key " + key_id_text(key_id(k.pub)) + ")");
    // A changed rule byte (past the header) with the header's hash left alone.
    std::vector<uint8_t> bad_body = signed_;
    bad_body[kBundleHeaderSize + 2] ^= 1;
    EXPECT_EQ(verify(bad_body, {k.pub}).rfind("bad signature", 0), 0u);

    // A key id shared by two keys: the one whose signature fits wins.
    PublicKey twin = stranger.pub;
    std::copy_n(k.pub.begin(), 8, twin.begin());
    EXPECT_EQ(verify(signed_, {twin, k.pub}), "");
    EXPECT_EQ(verify(signed_, {twin}).rfind("bad signature", 0), 0u);
}

TEST(ClassesSign, TruncatedAndMalformedTrailers) {
    const KeyPair k = generate_keypair();
    const std::vector<uint8_t> bundle = plain_bundle();
    const std::vector<uint8_t> signed_ = sign_bundle(bundle, k.secret);
    for (size_t cut = 1; cut < kSignTrailerSize; cut++) {
        const std::vector<uint8_t> t(signed_.begin(), signed_.end() - static_cast<long>(cut));
        const std::string why = verify(t, {k.pub});
        EXPECT_NE(why, "") << "cut " << cut;
        // Refused also where no key is trusted: the trailer's form is always checked.
        EXPECT_EQ(verify(t, {}), why) << "cut " << cut;
        if (cut <= kSignTrailerSize - 8) {
            EXPECT_EQ(why, "truncated signature trailer (" + std::to_string(kSignTrailerSize - cut) +
                               " of 80 bytes)");
        } else if (cut <= kSignTrailerSize - 4) {
            EXPECT_EQ(why, "truncated signature trailer (" + std::to_string(kSignTrailerSize - cut) +
                               " bytes after the bundle)");
        }
    }
    std::vector<uint8_t> longer = signed_;
    longer.push_back(0);
    EXPECT_EQ(verify(longer, {k.pub}), "1 bytes after the signature trailer");
    std::vector<uint8_t> wrong_len = signed_;
    wrong_len[bundle.size() + 4] = 81;
    EXPECT_EQ(verify(wrong_len, {}), "signature trailer length 81, expected 80");
    std::vector<uint8_t> junk = bundle;
    junk.insert(junk.end(), {'j', 'u', 'n', 'k', 0, 0, 0, 0});
    EXPECT_EQ(verify(junk, {}), "8 bytes after the bundle that are not a signature trailer");
}

TEST(ClassesSign, WithoutTrustedKeysTheTrailerIsStripped) {
    const KeyPair k = generate_keypair();
    const std::vector<uint8_t> bundle = plain_bundle();
    std::vector<uint8_t> signed_ = sign_bundle(bundle, k.secret);
    std::span<const uint8_t> out;
    EXPECT_EQ(verify(bundle, {}, &out), "");
    EXPECT_EQ(out.size(), bundle.size());
    // The signature is not checked: a damaged one passes, its trailer removed.
    signed_.back() ^= 1;
    EXPECT_EQ(verify(signed_, {}, &out), "");
    EXPECT_EQ(out.size(), bundle.size());
    EXPECT_NO_THROW(read_bundle(out));
    // A plain bundle given whole to read_bundle is refused once a trailer is on it.
    EXPECT_THROW(read_bundle(signed_), BundleError);
    // Not a bundle: passed on whole, for read_bundle to say why.
    const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
    EXPECT_EQ(verify(text, {}, &out), "");
    EXPECT_EQ(out.size(), text.size());
    EXPECT_EQ(verify(text, {k.pub}), "unsigned bundle but rules.trusted_keys is set");
    EXPECT_EQ(verify({}, {k.pub}), "unsigned bundle but rules.trusted_keys is set");
}

TEST(ClassesSign, KeyFilesRoundTrip) {
    TempDir dir;
    const KeyPair k = generate_keypair();
    write_file(dir / "k.pub", public_key_text(k.pub), 0644);
    write_file(dir / "k.key", secret_key_text(k.secret), 0600);
    EXPECT_EQ(public_key_text(k.pub).size(), 45u); // 44 base64 characters and the newline
    EXPECT_EQ(secret_key_text(k.secret).size(), 89u);
    EXPECT_EQ(read_public_key(dir / "k.pub"), k.pub);
    EXPECT_EQ(read_secret_key(dir / "k.key"), k.secret);
    // Surrounding whitespace and CRLF are fine.
    write_file(dir / "crlf.pub", "  " + public_key_text(k.pub).substr(0, 44) + "\r\n\n", 0644);
    EXPECT_EQ(read_public_key(dir / "crlf.pub"), k.pub);
    // What was read signs as the original does.
    const std::vector<uint8_t> s = sign_bundle(plain_bundle(), read_secret_key(dir / "k.key"));
    EXPECT_EQ(verify(s, {read_public_key(dir / "k.pub")}), "");
}

TEST(ClassesSign, KeyFileErrorsNameTheFile) {
    TempDir dir;
    const KeyPair k = generate_keypair();
    const std::string missing = (dir / "none.pub").string();
    EXPECT_EQ(key_error([&] { read_public_key(missing); }),
              missing + ": cannot read: No such file or directory");
    EXPECT_EQ(
        key_error([&] { read_secret_key(dir / "none.key"); }).rfind((dir / "none.key").string() + ": ", 0),
        0u);

    // One kind of key where the other is wanted: told apart by length.
    write_file(dir / "k.pub", public_key_text(k.pub), 0600);
    write_file(dir / "k.key", secret_key_text(k.secret), 0600);
    EXPECT_EQ(key_error([&] { read_secret_key(dir / "k.pub"); }),
              (dir / "k.pub").string() +
                  ": not an Ed25519 secret key: not a key of this kind (32 bytes, expected 64)");
    EXPECT_EQ(key_error([&] { read_public_key(dir / "k.key"); }),
              (dir / "k.key").string() + ": not an Ed25519 public key: not a key of this kind (too long)");

    write_file(dir / "empty.pub", "\n", 0644);
    EXPECT_EQ(key_error([&] { read_public_key(dir / "empty.pub"); }),
              (dir / "empty.pub").string() + ": not an Ed25519 public key: empty");
    write_file(dir / "junk.pub", "not base64 at all!\n", 0644);
    EXPECT_NE(key_error([&] { read_public_key(dir / "junk.pub"); }).find("more than one line or word"),
              std::string::npos);
    write_file(dir / "bad.pub", "%%%%" + public_key_text(k.pub).substr(4), 0644);
    EXPECT_EQ(key_error([&] { read_public_key(dir / "bad.pub"); }),
              (dir / "bad.pub").string() + ": not an Ed25519 public key: not base64");
    write_file(dir / "two.pub", public_key_text(k.pub) + public_key_text(k.pub), 0644);
    EXPECT_NE(key_error([&] { read_public_key(dir / "two.pub"); }).find("more than one line"),
              std::string::npos);

    // A secret key whose public half was damaged.
    SecretKey damaged = k.secret;
    damaged[40] ^= 1;
    write_file(dir / "damaged.key", secret_key_text(damaged), 0600);
    EXPECT_EQ(key_error([&] { read_secret_key(dir / "damaged.key"); }),
              (dir / "damaged.key").string() +
                  ": not an Ed25519 secret key: its public half does not match its seed");
    EXPECT_EQ(key_error([&] { read_secret_key(dir.operator/("")); }).find("not a regular file") !=
                  std::string::npos,
              true);
}

TEST(ClassesSign, SecretKeyReadableByOthersIsRefused) {
    TempDir dir;
    const KeyPair k = generate_keypair();
    const fs::path p = dir / "k.key";
    for (const mode_t mode : {0640, 0604, 0620, 0602, 0660, 0644}) {
        write_file(p, secret_key_text(k.secret), mode);
        char m[8];
        std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(mode));
        EXPECT_EQ(key_error([&] { read_secret_key(p); }),
                  p.string() + ": secret key readable by group or others (mode " + m + "); chmod 600 it");
    }
    for (const mode_t mode : {0600, 0400}) {
        write_file(p, secret_key_text(k.secret), mode);
        EXPECT_EQ(read_secret_key(p), k.secret) << mode;
    }
    // The public key file may be read by anyone.
    write_file(dir / "k.pub", public_key_text(k.pub), 0644);
    EXPECT_EQ(read_public_key(dir / "k.pub"), k.pub);
}

} // namespace
} // namespace nettally
