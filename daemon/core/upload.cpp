// See upload.h. libcurl's header is included for its result codes only (no libcurl function is called).
#include "core/upload.h"

#include "core/enum_names.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

namespace nettally {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size())
            return std::nullopt;
        const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        const char c = static_cast<char>(hi * 16 + lo);
        if (c == '\0' || c == '/')
            return std::nullopt; // would change the path's meaning on the server
        out += c;
        i += 2;
    }
    return out;
}

// "<...>_<YYYYmmddTHHMMSSZ>_<seq>.<ext>[.gz]" -> (timestamp, seq).
std::optional<std::pair<std::string, uint64_t>> spool_key(std::string_view name) {
    const size_t last = name.rfind('_');
    if (last == std::string_view::npos || last == 0)
        return std::nullopt;
    const size_t prev = name.rfind('_', last - 1);
    if (prev == std::string_view::npos)
        return std::nullopt;
    const std::string_view stamp = name.substr(prev + 1, last - prev - 1);
    if (stamp.size() != 16 || stamp[8] != 'T' || stamp[15] != 'Z')
        return std::nullopt;
    for (size_t i = 0; i < 15; ++i)
        if (i != 8 && !is_digit(stamp[i]))
            return std::nullopt;
    std::string_view rest = name.substr(last + 1);
    size_t n = 0;
    while (n < rest.size() && is_digit(rest[n]))
        ++n;
    if (n == 0 || n > 19 || (n < rest.size() && rest[n] != '.'))
        return std::nullopt;
    uint64_t seq = 0;
    std::from_chars(rest.data(), rest.data() + n, seq);
    return std::make_pair(std::string(stamp), seq);
}

int month_index(std::string_view m) {
    static constexpr std::string_view names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i)
        if (names[i] == m)
            return i;
    return -1;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian); Howard Hinnant's algorithm.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<int> two_digits(std::string_view s) {
    if (s.size() != 2 || !is_digit(s[0]) || !is_digit(s[1]))
        return std::nullopt;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

} // namespace

std::string_view to_string(UploadScheme s) {
    constexpr std::array<std::string_view, 7> kNames{"ftp", "ftps", "ftpes", "sftp", "http", "https", "file"};
    return enum_name(kNames, s);
}

std::string_view to_string(UploadOutcome o) {
    constexpr std::array<std::string_view, 4> kNames{"success", "transient", "auth", "permanent"};
    return enum_name(kNames, o);
}

std::optional<UploadTarget> parse_upload_url(std::string_view url, std::string* why) {
    auto fail = [&](std::string w) -> std::optional<UploadTarget> {
        if (why)
            *why = std::move(w);
        return std::nullopt;
    };
    for (const char ch : url) {
        const auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c == 0x7f || c >= 0x80)
            return fail("the URL contains a space, a control or a non-ASCII character (percent-encode it)");
    }
    const size_t sep = url.find("://");
    if (sep == std::string_view::npos)
        return fail("not a URL (expected scheme://host/path/, e.g. sftp://backup.example/nettally/)");
    std::string scheme(url.substr(0, sep));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    UploadTarget t;
    const auto parsed =
        parse_enum(scheme, {UploadScheme::Ftp, UploadScheme::Ftps, UploadScheme::Ftpes, UploadScheme::Sftp,
                            UploadScheme::Http, UploadScheme::Https, UploadScheme::File});
    if (!parsed)
        return fail("unsupported scheme '" + scheme + "' (use ftp, ftps, ftpes, sftp, http, https or file)");
    t.scheme = *parsed;
    if (url.find_first_of("?#") != std::string_view::npos)
        return fail("the URL must not have a query or fragment ('?', '#')");
    const std::string_view rest = url.substr(sep + 3);
    const size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    const std::string_view path =
        slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    if (authority.find('@') != std::string_view::npos)
        return fail("credentials inside the URL are refused (they would show in logs and replies); "
                    "use upload.username and upload.password, password_file or password_credential");
    if (t.scheme == UploadScheme::File) {
        if (!authority.empty() && authority != "localhost")
            return fail("file:// URLs name a local directory (file:///path/ or file://localhost/path/)");
    } else {
        if (authority.empty() || authority[0] == ':')
            return fail("the URL has no host");
        if (authority.back() == ':')
            return fail("the URL has an empty port");
    }
    auto decoded = percent_decode(path);
    if (!decoded)
        return fail("bad percent-encoding in the path (or an encoded '/' or NUL)");
    std::string dir = *decoded;
    if (dir.empty() || dir[0] != '/')
        dir.insert(dir.begin(), '/');
    if (dir.back() != '/')
        dir += '/';
    for (size_t i = 1; i < dir.size();) {
        const size_t next = dir.find('/', i);
        const std::string_view seg = std::string_view(dir).substr(i, next - i);
        if (seg == "." || seg == "..")
            return fail("'.' and '..' path segments are not allowed");
        if (seg.empty() && next != dir.size() - 1 && i != dir.size())
            return fail("empty path segment ('//')");
        i = next + 1;
    }
    if (t.scheme == UploadScheme::Sftp && dir.size() > 1 && dir[1] == '~')
        return fail("sftp paths must be absolute (no '~'): the rename after the upload needs the full path");
    t.dir = dir;
    t.url = scheme + "://" + std::string(authority) + std::string(path);
    if (t.url.back() != '/')
        t.url += '/';
    return t;
}

bool spool_name_ok(std::string_view name) {
    if (name.empty() || name.size() > 200 || name[0] == '.')
        return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
                        c == '_' || c == '-' || c == '+';
        if (!ok)
            return false;
    }
    auto ends_with = [&](std::string_view s) {
        return name.size() >= s.size() && name.substr(name.size() - s.size()) == s;
    };
    return !ends_with(kPartSuffix) && !ends_with(".tmp");
}

bool spool_older(std::string_view a, std::string_view b) {
    const auto ka = spool_key(a), kb = spool_key(b);
    if (ka && kb) {
        if (ka->first != kb->first)
            return ka->first < kb->first;
        if (ka->second != kb->second)
            return ka->second < kb->second;
        return a < b;
    }
    if (ka != kb)
        return ka.has_value(); // named ones first
    return a < b;
}

RemotePlan plan_remote(const UploadTarget& target, std::string_view name) {
    RemotePlan p;
    const std::string part = std::string(name) + std::string(kPartSuffix);
    // spool_name_ok() names need no percent-encoding.
    p.final_url = target.url + std::string(name);
    p.temp_url = target.url + part;
    if (target.scheme == UploadScheme::Ftpes) // curl knows it as ftp:// with TLS required
        p.temp_url = "ftp" + p.temp_url.substr(std::string_view("ftpes").size());
    switch (target.scheme) {
    case UploadScheme::Ftp:
    case UploadScheme::Ftps:
    case UploadScheme::Ftpes:
        // curl has changed into the target directory: bare names.
        p.postquote = {"RNFR " + part, "RNTO " + std::string(name)};
        break;
    case UploadScheme::Sftp:
        // SFTP v3 rename fails onto an existing file (left by an attempt whose confirmation was
        // lost): remove it first; '*' lets curl go on when there is nothing to remove.
        p.postquote = {"*rm \"" + target.dir + std::string(name) + "\"",
                       "rename \"" + target.dir + part + "\" \"" + target.dir + std::string(name) + "\""};
        break;
    case UploadScheme::Http:
    case UploadScheme::Https:
        p.move_destination = p.final_url;
        break;
    case UploadScheme::File:
        break;
    }
    return p;
}

std::chrono::milliseconds backoff_delay(std::chrono::milliseconds min, std::chrono::milliseconds max,
                                        uint32_t failures, double unit) {
    if (max < min)
        max = min;
    double cap = static_cast<double>(min.count());
    for (uint32_t i = 1; i < failures && cap < static_cast<double>(max.count()); ++i)
        cap *= 2;
    cap = std::min(cap, static_cast<double>(max.count()));
    unit = std::clamp(unit, 0.0, 1.0);
    return std::chrono::milliseconds{static_cast<int64_t>(std::llround(cap * unit))};
}

namespace {

// A transfer curl finished: an HTTP status decides; other protocols succeeded.
Classified classify_reply(bool http, long rc, const std::string& what) {
    if (!http || (rc >= 200 && rc < 300))
        return {UploadOutcome::Success, ""};
    const std::string status = what + "HTTP " + std::to_string(rc);
    if (rc == 401 || rc == 403 || rc == 407)
        return {UploadOutcome::Auth,
                status + ": authentication failed (check upload.username and the password)"};
    if (rc == 408 || rc == 425 || rc == 429 || rc >= 500 || rc == 0)
        return {UploadOutcome::Transient, status + " (server busy or failing; will retry)"};
    return {UploadOutcome::Permanent, status + " (refused by the server)"};
}

// The server's identity could not be verified. curl's own text for these codes names
// certificates and keys at once; say which setting applies.
std::string unverified_identity(UploadScheme scheme, const TransferResult& r, const std::string& detail) {
    if (scheme == UploadScheme::Sftp) {
        const std::string why = r.curl_error.empty() ? "its host key is not the one configured" : detail;
        return "the server's identity could not be verified (" + why +
               "); check upload.ssh_host_key_sha256 or upload.ssh_known_hosts";
    }
    return "the server's identity could not be verified (" + detail +
           "); check upload.ca_file (the CA that signed the server's certificate)";
}

// Codes whose meaning does not depend on the server's last reply, or nullopt.
std::optional<UploadOutcome> outcome_of_code(CURLcode code) {
    switch (code) {
    case CURLE_LOGIN_DENIED:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return UploadOutcome::Auth;
    case CURLE_USE_SSL_FAILED: // ftpes: the server does not offer AUTH TLS; never sent in the clear
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FILESIZE_EXCEEDED:
        return UploadOutcome::Permanent;
    default:
        return std::nullopt;
    }
}

// A failed transfer whose outcome depends on the code and the server's last reply.
UploadOutcome outcome_of_failure(CURLcode code, bool ftp, long rc) {
    switch (code) {
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_UPLOAD_FAILED:
    case CURLE_QUOTE_ERROR:
    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_FTP_COULDNT_RETR_FILE:
        // FTP 4xx is "try again later" by definition; 5xx means the server refuses.
        if (ftp && rc >= 400 && rc < 500)
            return UploadOutcome::Transient;
        if (ftp && rc >= 500)
            return UploadOutcome::Permanent;
        return code == CURLE_REMOTE_ACCESS_DENIED || code == CURLE_REMOTE_FILE_NOT_FOUND
                   ? UploadOutcome::Permanent
                   : UploadOutcome::Transient;
    default:
        // Connection refused or cut, timeouts, resolver, TLS handshake, weird replies.
        return UploadOutcome::Transient;
    }
}

} // namespace

Classified classify_transfer(UploadScheme scheme, const TransferResult& r, std::string_view step) {
    const auto code = static_cast<CURLcode>(r.curl_code);
    const long rc = r.response_code;
    const bool ftp =
        scheme == UploadScheme::Ftp || scheme == UploadScheme::Ftps || scheme == UploadScheme::Ftpes;
    const bool http = scheme == UploadScheme::Http || scheme == UploadScheme::Https;
    const std::string what = std::string(step) + ": ";
    auto make = [&](UploadOutcome o, std::string text) { return Classified{o, what + text}; };
    const std::string detail = !r.curl_error.empty()  ? r.curl_error
                               : !r.code_text.empty() ? r.code_text
                                                      : "curl error " + std::to_string(r.curl_code);

    if (code == CURLE_OK)
        return classify_reply(http, rc, what);
    if (code == CURLE_LOGIN_DENIED)
        return make(UploadOutcome::Auth, "login denied" +
                                             (rc ? " (" + std::to_string(rc) + ")" : std::string()) +
                                             ": check upload.username and the password");
    if (const auto o = outcome_of_code(code))
        return make(*o, *o == UploadOutcome::Auth ? unverified_identity(scheme, r, detail) : detail);
    if (ftp && rc == 530)
        return make(UploadOutcome::Auth, "FTP 530 not logged in: check upload.username and the password");
    // The last reply was 331 (user name accepted, password asked): the transfer ended while the
    // server weighed the password. Servers delay a refused login on purpose (vsftpd's
    // delay_failed_login, pure-ftpd, fail2ban-guarded hosts) and some hang up instead of saying
    // 530; a timeout or hang-up here is a refused password far more often than a network fault,
    // and retrying it on the transient schedule is a login storm that can lock the account.
    if (ftp && rc == 331)
        return make(UploadOutcome::Auth, "FTP server gave no answer to the password (" + detail +
                                             " after reply 331): a refused login is usually answered "
                                             "late or not at all; check upload.username and the password");
    const std::string with_code =
        detail + (rc ? " (server reply " + std::to_string(rc) + ")" : std::string());
    return make(outcome_of_failure(code, ftp, rc), with_code);
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v, int64_t now_unix) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r' || v.back() == '\n'))
        v.remove_suffix(1);
    if (v.empty())
        return std::nullopt;
    const auto cap = upload_limits::max_retry_after;
    if (std::all_of(v.begin(), v.end(), is_digit)) {
        if (v.size() > 12)
            return cap;
        int64_t s = 0;
        std::from_chars(v.data(), v.data() + v.size(), s);
        return std::min(std::chrono::milliseconds{s * 1000}, cap);
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (the only form RFC 9110 requires senders to use).
    if (v.size() != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v[19] != ':' || v[22] != ':' || v[25] != ' ' || v.substr(26) != "GMT")
        return std::nullopt;
    const auto day = two_digits(v.substr(5, 2)), hh = two_digits(v.substr(17, 2)),
               mm = two_digits(v.substr(20, 2)), ss = two_digits(v.substr(23, 2));
    const int mon = month_index(v.substr(8, 3));
    int year = 0;
    const auto yr = v.substr(12, 4);
    if (!day || !hh || !mm || !ss || mon < 0 || !std::all_of(yr.begin(), yr.end(), is_digit) || *day < 1 ||
        *day > 31 || *hh > 23 || *mm > 59 || *ss > 60)
        return std::nullopt;
    std::from_chars(yr.data(), yr.data() + 4, year);
    const int64_t at =
        days_from_civil(year, static_cast<unsigned>(mon + 1), static_cast<unsigned>(*day)) * 86400 +
        *hh * 3600 + *mm * 60 + *ss;
    if (at <= now_unix)
        return std::chrono::milliseconds{0};
    return std::min(std::chrono::milliseconds{(at - now_unix) * 1000}, cap);
}

std::vector<std::string> spool_overflow(std::vector<SpoolFile> files, uint64_t max_bytes, uint64_t max_files,
                                        std::string_view keep) {
    std::sort(files.begin(), files.end(),
              [](const SpoolFile& a, const SpoolFile& b) { return spool_older(a.name, b.name); });
    uint64_t bytes = 0;
    for (const auto& f : files)
        bytes += f.size;
    uint64_t count = files.size();
    std::vector<std::string> drop;
    for (const auto& f : files) {
        const bool over = (max_bytes && bytes > max_bytes) || (max_files && count > max_files);
        if (!over)
            break;
        if (!keep.empty() && f.name == keep)
            continue;
        drop.push_back(f.name);
        bytes -= f.size;
        --count;
    }
    return drop;
}

uint64_t upload_config_fingerprint(const UploadConfig& c) {
    uint64_t h = 14695981039346656037ull;
    auto mix = [&](std::string_view s) {
        for (const char ch : s) {
            h ^= static_cast<unsigned char>(ch);
            h *= 1099511628211ull;
        }
        h ^= 0xff; // field separator
        h *= 1099511628211ull;
    };
    mix(c.url);
    mix(c.username);
    mix(c.password);
    mix(c.password_file);
    mix(c.password_credential);
    return h;
}

} // namespace nettally
