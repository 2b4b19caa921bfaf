// The records and upload sections of the config file. See config_parser.h.
#include "core/config_parser.h"

#include "core/units.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace nettally::config_yaml {

namespace {

RecordFormat record_format(const YamlReader& y, const Entry& e, const std::string& p) {
    return *parse_record_format(y.one_of(e, p, "format", {"csv", "jsonl"}));
}

RecordType record_type(const YamlReader& y, const std::string& name, const YAML::Mark& mark,
                       const std::string& p) {
    const auto t = parse_record_type(name);
    if (!t)
        y.fail(mark, p,
               "unknown record type " + quote(name) +
                   " (valid: interface, host, cgroup, flow, alert, class)");
    return *t;
}

} // namespace

// records.*: accounting record files (core/records.h). types is a list of names, or a map of
// name to a format or to {enabled, format}; `format` is the default for types without one.
void ConfigParser::parse_records(const Entry& entry, const std::string& path, RecordsConfig& rc) const {
    std::optional<RecordFormat> default_format;
    std::array<bool, kRecordTypeCount> explicit_format{};
    YAML::Mark last_mark = entry.key_mark;
    std::string last_path = path;
    section(entry, path,
            {{"enabled", [&](const Entry& e, const std::string& p) { rc.enabled = boolean(e, p); }},
             {"period",
              [&](const Entry& e, const std::string& p) {
                  rc.period = duration(e, p, records_limits::min_period, records_limits::max_period);
                  last_mark = mark_of(e);
                  last_path = p;
              }},
             {"interval",
              [&](const Entry& e, const std::string& p) {
                  rc.interval = duration(e, p, records_limits::min_interval, records_limits::max_period);
                  last_mark = mark_of(e);
                  last_path = p;
              }},
             {"format",
              [&](const Entry& e, const std::string& p) { default_format = record_format(*this, e, p); }},
             {"types",
              [&](const Entry& e, const std::string& p) { read_record_types(e, p, rc, explicit_format); }},
             {"max_file_size",
              [&](const Entry& e, const std::string& p) {
                  const std::string t = scalar(e, p, "a size such as 64M");
                  const auto v = parse_size(t);
                  if (!v || *v < records_limits::min_file_size || *v > records_limits::max_file_size)
                      fail(mark_of(e), p,
                           "invalid size " + quote(t) + " (512 .. 1T bytes: 64M, 64MiB, 100MB)");
                  rc.max_file_size = *v;
              }},
             {"max_records",
              [&](const Entry& e, const std::string& p) { rc.max_records = number(e, p, 0, 4000000000u); }},
             {"compress",
              [&](const Entry& e, const std::string& p) {
                  rc.compress = one_of(e, p, "compression", {"none", "gzip"}) == "gzip";
              }},
             {"spool_dir", [&](const Entry& e, const std::string& p) { rc.spool_dir = abs_dir(e, p); }}});
    if (default_format)
        for (size_t i = 0; i < kRecordTypeCount; i++)
            if (!explicit_format[i])
                rc.types[i].format = *default_format;
    if (rc.interval > rc.period)
        fail(last_mark, last_path,
             "records.interval (" + format_duration(rc.interval) +
                 ") must not be longer than records.period (" + format_duration(rc.period) + ")");
}

// records.types: every type off, then the listed ones on (with their formats, in the map form).
void ConfigParser::read_record_types(const Entry& e, const std::string& p, RecordsConfig& rc,
                                     std::array<bool, kRecordTypeCount>& explicit_format) const {
    for (auto& t : rc.types)
        t.enabled = false;
    if (e.value.IsSequence()) {
        size_t i = 0;
        for (const YAML::Node& item : e.value) {
            const std::string ip = p + "[" + std::to_string(i++) + "]";
            if (!item.IsScalar())
                fail(item.Mark(), ip, "expected a record type name, got " + kind_of(item));
            const RecordType t = record_type(*this, item.Scalar(), item.Mark(), ip);
            if (rc.type(t).enabled)
                fail(item.Mark(), ip, "record type " + quote(item.Scalar()) + " listed twice");
            rc.type(t).enabled = true;
        }
        return;
    }
    if (!e.value.IsMap())
        fail(mark_of(e), p,
             "expected a list of record types or a map of type to format, got " + kind_of(e.value));
    for (const auto& kv : e.value) {
        const std::string name = kv.first.Scalar();
        const std::string tp = p + "." + name;
        const RecordType t = record_type(*this, name, kv.first.Mark(), tp);
        const Entry sub{name, kv.first.Mark(), kv.second};
        auto& ts = rc.type(t);
        if (kv.second.IsMap()) {
            ts.enabled = true;
            section(
                sub, tp,
                {{"enabled", [&](const Entry& se, const std::string& sp) { ts.enabled = boolean(se, sp); }},
                 {"format", [&](const Entry& se, const std::string& sp) {
                      ts.format = record_format(*this, se, sp);
                      explicit_format[static_cast<size_t>(t)] = true;
                  }}});
        } else {
            ts.enabled = true;
            ts.format = record_format(*this, sub, tp);
            explicit_format[static_cast<size_t>(t)] = true;
        }
    }
}

namespace {

std::string abs_file(const YamlReader& y, const Entry& e, const std::string& p) {
    const std::string t = y.scalar(e, p, "an absolute file path");
    if (t.empty() || t[0] != '/')
        y.fail(YamlReader::mark_of(e), p, "must be an absolute file path, got " + quote(t));
    return t;
}

uint64_t spool_size(const YamlReader& y, const Entry& e, const std::string& p) {
    const std::string t = y.scalar(e, p, "a size such as 100M");
    const auto v = parse_size(t);
    if (!v)
        y.fail(YamlReader::mark_of(e), p,
               "invalid size " + quote(t) + " (bytes or with a unit: 512M, 2GB, 1GiB; 0 = no limit)");
    return *v;
}

// upload.ssh_host_key_sha256: "SHA256:" and base64 padding optional.
std::string host_key_fingerprint(const YamlReader& y, const Entry& e, const std::string& p) {
    std::string t = y.scalar(e, p, "the server's host key fingerprint (ssh-keygen -l -E sha256)");
    if (t.rfind("SHA256:", 0) == 0)
        t = t.substr(7);
    while (!t.empty() && t.back() == '=')
        t.pop_back();
    const bool b64 =
        t.size() == 43 && std::all_of(t.begin(), t.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' || c == '/';
        });
    if (!b64)
        y.fail(YamlReader::mark_of(e), p,
               "expected a SHA-256 host key fingerprint in base64 (43 characters, as "
               "`ssh-keygen -l -E sha256 -f KEY.pub` prints after 'SHA256:'), got " +
                   quote(t));
    return t;
}

} // namespace

// Where the keys that cross-key rules name were set, for the errors after the section.
struct ConfigParser::UploadSeen {
    YAML::Mark url_mark, sources_mark, retry_mark;
    std::vector<std::string> sources; // password sources in file order
};

// upload.*: where spooled accounting files go. Cross-key rules are checked after the section
// so each error points at the key that needs changing.
void ConfigParser::parse_upload(const Entry& entry, const std::string& path, UploadConfig& up) const {
    UploadSeen seen{entry.key_mark, entry.key_mark, entry.key_mark, {}};
    // One table in the order the keys are listed in errors ("valid keys: ...").
    std::vector<Field> fields = upload_login_fields(up, seen);
    for (std::vector<Field> more : {upload_timing_fields(up, seen), upload_server_fields(up, seen)})
        std::move(more.begin(), more.end(), std::back_inserter(fields));
    section(entry, path, fields);
    if (seen.sources.size() > 1)
        fail(seen.sources_mark, path + "." + seen.sources.back(),
             "set only one of password, password_file and password_credential (also " + seen.sources.front() +
                 ")");
    if (up.retry_max < up.retry_min)
        fail(seen.retry_mark, path + ".retry_max",
             "must not be shorter than upload.retry_min (" + format_duration(up.retry_min) + ")");
    if (up.url.rfind("sftp://", 0) == 0 && up.ssh_host_key_sha256.empty() && up.ssh_known_hosts.empty() &&
        !up.insecure)
        fail(seen.url_mark, path + ".url",
             "sftp needs the server's host key: set upload.ssh_host_key_sha256 or upload.ssh_known_hosts "
             "(or insecure: true to skip the check)");
}

// url, username and the password sources.
std::vector<Field> ConfigParser::upload_login_fields(UploadConfig& up, UploadSeen& seen) const {
    return {{"url",
             [&](const Entry& e, const std::string& p) {
                 const std::string t = scalar(e, p, "a URL such as sftp://host/dir/");
                 if (!t.empty()) {
                     std::string why;
                     const auto target = parse_upload_url(t, &why);
                     if (!target)
                         fail(mark_of(e), p, why);
                     up.url = target->url;
                 }
                 seen.url_mark = mark_of(e);
             }},
            {"username",
             [&](const Entry& e, const std::string& p) { up.username = scalar(e, p, "a user name"); }},
            {"password",
             [&](const Entry& e, const std::string& p) {
                 // Never echoed back: a typo would print the secret into the journal.
                 if (e.value.IsNull() || !e.value.IsScalar())
                     fail(mark_of(e), p, "expected the password as a string");
                 up.password = e.value.Scalar();
                 seen.sources.push_back("password");
                 seen.sources_mark = mark_of(e);
             }},
            {"password_file",
             [&](const Entry& e, const std::string& p) {
                 up.password_file = abs_file(*this, e, p);
                 seen.sources.push_back("password_file");
                 seen.sources_mark = mark_of(e);
             }},
            {"password_credential", [&](const Entry& e, const std::string& p) {
                 const std::string t = scalar(e, p, "a systemd credential name");
                 if (t.empty() || t == "." || t == ".." || t.find('/') != std::string::npos)
                     fail(mark_of(e), p, "invalid credential name " + quote(t) + " (a file name, no '/')");
                 up.password_credential = t;
                 seen.sources.push_back("password_credential");
                 seen.sources_mark = mark_of(e);
             }}};
}

// Retries, timeouts and the spool's bounds.
std::vector<Field> ConfigParser::upload_timing_fields(UploadConfig& up, UploadSeen& seen) const {
    using std::chrono::milliseconds;
    return {{"retry_min",
             [&](const Entry& e, const std::string& p) {
                 up.retry_min = duration(e, p, upload_limits::min_retry, upload_limits::max_retry);
                 seen.retry_mark = mark_of(e);
             }},
            {"retry_max",
             [&](const Entry& e, const std::string& p) {
                 up.retry_max = duration(e, p, upload_limits::min_retry, upload_limits::max_retry);
                 seen.retry_mark = mark_of(e);
             }},
            {"auth_retry",
             [&](const Entry& e, const std::string& p) {
                 up.auth_retry = duration(e, p, milliseconds{1000}, upload_limits::max_retry);
             }},
            {"connect_timeout",
             [&](const Entry& e, const std::string& p) {
                 up.connect_timeout = duration(e, p, milliseconds{100}, milliseconds{600000});
             }},
            {"stall_timeout",
             [&](const Entry& e, const std::string& p) {
                 up.stall_timeout = duration(e, p, milliseconds{1000}, milliseconds{3600000});
             }},
            {"transfer_timeout",
             [&](const Entry& e, const std::string& p) {
                 up.transfer_timeout = duration(e, p, milliseconds{1000}, milliseconds{86400000});
             }},
            {"spool_max_bytes",
             [&](const Entry& e, const std::string& p) { up.spool_max_bytes = spool_size(*this, e, p); }},
            {"spool_max_files",
             [&](const Entry& e, const std::string& p) { up.spool_max_files = number(e, p, 0, 100000000); }}};
}

// How the server is trusted: CA file, SSH host key, or not at all.
std::vector<Field> ConfigParser::upload_server_fields(UploadConfig& up, UploadSeen&) const {
    return {{"ca_file", [&](const Entry& e, const std::string& p) { up.ca_file = abs_file(*this, e, p); }},
            {"ssh_host_key_sha256",
             [&](const Entry& e, const std::string& p) {
                 up.ssh_host_key_sha256 = host_key_fingerprint(*this, e, p);
             }},
            {"ssh_known_hosts",
             [&](const Entry& e, const std::string& p) { up.ssh_known_hosts = abs_file(*this, e, p); }},
            {"insecure", [&](const Entry& e, const std::string& p) { up.insecure = boolean(e, p); }}};
}

} // namespace nettally::config_yaml
