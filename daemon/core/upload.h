// Upload of spooled accounting files: every decision that needs no I/O. The target URL's
// validation (scheme whitelist, no credentials inside it), remote names and the commands that
// rename a finished upload into place, exponential backoff with full jitter (the random draw is
// injected), the classification of a transfer's result into success / transient / auth /
// permanent, Retry-After, which spool files the cap drops, and the fingerprint that tells whether
// the config's upload section changed. daemon/io/upload.cpp does the transfers with libcurl.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// Ftps: implicit TLS (TLS from the first byte, port 990 by default), as curl reads ftps://.
// Ftpes: explicit TLS (plain connect, then AUTH TLS; required for login and data), written
// ftpes:// as lftp and FileZilla do; curl is given ftp:// with TLS required.
enum class UploadScheme { Ftp, Ftps, Ftpes, Sftp, Http, Https, File };
std::string_view to_string(UploadScheme s);

// Key upload.* of the config (README "Uploading accounting files").
struct UploadConfig {
    std::string url;      // "" = uploads off; a directory URL (ends with '/')
    std::string username; // upload.username
    // At most one of these three is set (the parser refuses more).
    std::string password;            // upload.password (inline)
    std::string password_file;       // upload.password_file (absolute path)
    std::string password_credential; // upload.password_credential ($CREDENTIALS_DIRECTORY/<name>)
    std::chrono::milliseconds retry_min{std::chrono::seconds{5}};
    std::chrono::milliseconds retry_max{std::chrono::minutes{10}};
    std::chrono::milliseconds auth_retry{std::chrono::hours{1}};
    std::chrono::milliseconds connect_timeout{std::chrono::seconds{10}};
    std::chrono::milliseconds stall_timeout{std::chrono::seconds{30}}; // below 1 byte/s this long
    std::chrono::milliseconds transfer_timeout{std::chrono::minutes{10}};
    uint64_t spool_max_bytes = 1ull << 30; // 0: no limit
    uint64_t spool_max_files = 10000;      // 0: no limit
    std::string ca_file;                   // ftps/https: CA bundle (default: the system's)
    std::string ssh_host_key_sha256;       // sftp: base64 SHA-256 of the server's host key
    std::string ssh_known_hosts;           // sftp: an OpenSSH known_hosts file
    bool insecure = false;                 // no TLS peer / SSH host key verification
    bool operator==(const UploadConfig&) const = default;
};

namespace upload_limits {
inline constexpr std::chrono::milliseconds min_retry{std::chrono::milliseconds{50}};
inline constexpr std::chrono::milliseconds max_retry{std::chrono::hours{24}};
inline constexpr std::chrono::milliseconds max_retry_after{std::chrono::hours{24}};
} // namespace upload_limits

struct UploadTarget {
    UploadScheme scheme = UploadScheme::File;
    std::string url; // normalized: scheme://authority/path/ (always ends with '/')
    std::string dir; // the decoded directory path on the server, ends with '/'
};

// nullopt with *why set when `url` is not acceptable. Refused: other schemes, user info
// ("user:pass@"; credentials go in upload.username/password), query, fragment, control
// characters or spaces, a missing host (except file://), "." or ".." path segments, and an sftp
// "~" path. A missing trailing '/' is added: the URL names a directory.
std::optional<UploadTarget> parse_upload_url(std::string_view url, std::string* why);

// Spool file names the uploader accepts: [A-Za-z0-9._+-], at most 200 bytes, not starting with
// '.', not ending in ".part" or ".tmp" (files being written).
bool spool_name_ok(std::string_view name);
// Oldest first: by the "<host>_<type>_<YYYYmmddTHHMMSSZ>_<seq>.<ext>[.gz]" timestamp and
// sequence read from the right; names without them sort by name after those with them.
bool spool_older(std::string_view a, std::string_view b);

inline constexpr std::string_view kPartSuffix = ".part";

// Where a file goes, and how it is put in place without a torn file ever carrying the final name.
struct RemotePlan {
    std::string temp_url;               // upload here first (the URL curl is given)
    std::string final_url;              // what it is called once confirmed (as configured)
    std::vector<std::string> postquote; // ftp/sftp commands after the upload (the rename)
    std::string move_destination;       // http: MOVE temp_url with this Destination
};
RemotePlan plan_remote(const UploadTarget& target, std::string_view name);

// Full jitter: a uniform draw in [0, min(max, min * 2^(failures-1))]; `unit` in [0, 1).
std::chrono::milliseconds backoff_delay(std::chrono::milliseconds min, std::chrono::milliseconds max,
                                        uint32_t failures, double unit);

enum class UploadOutcome { Success, Transient, Auth, Permanent };
std::string_view to_string(UploadOutcome o);

struct TransferResult {
    int curl_code = 0;      // CURLcode
    long response_code = 0; // last HTTP status or FTP reply code (0: none)
    std::string curl_error; // curl's error buffer
    std::string code_text;  // curl_easy_strerror(curl_code), from io/ (the core calls no libcurl)
};
struct Classified {
    UploadOutcome outcome = UploadOutcome::Transient;
    std::string reason; // one line for logs, signals and D-Bus
};
// `step` names the request ("upload", "rename") for the message.
Classified classify_transfer(UploadScheme scheme, const TransferResult& r, std::string_view step);

// "120" or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), relative to now (Unix seconds).
// Clamped to [0, upload_limits::max_retry_after]; nullopt when unparsable.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, int64_t now_unix);

struct SpoolFile {
    std::string name;
    uint64_t size = 0;
};
// Which files the cap removes, oldest first, so that the rest fit max_bytes and max_files (0:
// no limit). `keep` (the file being sent, "" for none) is never chosen.
std::vector<std::string> spool_overflow(std::vector<SpoolFile> files, uint64_t max_bytes, uint64_t max_files,
                                        std::string_view keep);

// A stable 64-bit fingerprint (FNV-1a) of the config's upload target and credentials' source: the
// D-Bus SetTarget override lasts until this changes.
uint64_t upload_config_fingerprint(const UploadConfig& c);

} // namespace nettally
