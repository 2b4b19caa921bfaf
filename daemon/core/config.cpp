// Parser and validator behind config.h. yaml-cpp only supplies the tree and node positions; types,
// ranges, unknown and duplicate keys are all checked here, so every error can name the position of
// the offending node and the key path leading to it. Errors are reported in file order: the first
// problem in the file is the one the operator sees.
#include "core/config.h"

#include <fnmatch.h>
#include <net/if.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <system_error>
#include <utility>

namespace nettally {

namespace {

// Control characters as \n, \t, \xNN, so a text stays on one line.
std::string escape_controls(std::string_view text) {
    std::string out;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// Every part is escaped, not only the values: yaml-cpp's own messages quote the offending
// character raw ("unknown escape character: " and a CR from a CRLF file), and the message must
// stay one line.
std::string format_message(const std::string& source, int line, int column, const std::string& key_path,
                           const std::string& problem) {
    std::string msg = source;
    if (line > 0)
        msg += ":" + std::to_string(line) + ":" + std::to_string(column);
    msg += ": ";
    if (!key_path.empty())
        msg += key_path + ": ";
    msg += problem;
    return escape_controls(msg);
}

// Values are echoed back inside one-line messages, and YAML can smuggle newlines into a scalar
// (block scalars, escapes), so control characters are escaped and long values are cut.
std::string escape(std::string_view text) {
    constexpr size_t max_len = 64;
    std::string out = escape_controls(text.substr(0, max_len));
    if (text.size() > max_len)
        out += "...";
    return out;
}

std::string quote(std::string_view text) {
    return "'" + escape(text) + "'";
}

std::string kind_of(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Map:
        return "a map";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Scalar:
        return "the value " + quote(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
}

std::string join_list(const std::vector<std::string_view>& items) {
    std::string out;
    for (const auto item : items) {
        if (!out.empty())
            out += ", ";
        out += item;
    }
    return out;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string format_duration(std::chrono::milliseconds d) {
    static constexpr std::pair<int64_t, std::string_view> units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    const int64_t ms = d.count();
    for (const auto& [factor, unit] : units) {
        if (ms != 0 && ms % factor == 0)
            return std::to_string(ms / factor) + std::string(unit);
    }
    return std::to_string(ms) + "ms";
}

bool glob_matches(const std::string& pattern, const std::string& name) {
    return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

// "*", "**", ...: matches every interface, so any rule after it is dead.
bool is_catch_all(std::string_view pattern) {
    return !pattern.empty() && pattern.find_first_not_of('*') == std::string_view::npos;
}

// fnmatch(3) silently treats an unclosed '[' as a literal, which turns a typo like "eth[0-9" into a
// rule that never matches; catch it here instead.
bool has_unterminated_bracket(std::string_view pattern) {
    for (size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\') {
            ++i;
            continue;
        }
        if (pattern[i] != '[')
            continue;
        size_t j = i + 1;
        if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^'))
            ++j;
        if (j < pattern.size() && pattern[j] == ']') // a leading ']' is a member, not the end
            ++j;
        const size_t close = pattern.find(']', j);
        if (close == std::string_view::npos)
            return true;
        i = close;
    }
    return false;
}

struct Entry {
    std::string key;
    YAML::Mark key_mark;
    YAML::Node value;
};

struct Field {
    std::string_view key;
    std::function<void(const Entry&, const std::string& key_path)> handle;
};

std::string join_path(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
}

// Records where each YAML document's first node is, and nothing else (Parser::parse_document).
class DocumentStarts : public YAML::EventHandler {
public:
    std::vector<YAML::Mark> marks;

    void OnDocumentStart(const YAML::Mark&) override { seen_node_ = false; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
        node(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        node(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(mark);
    }
    void OnMapEnd() override {}

private:
    void node(const YAML::Mark& mark) {
        if (!seen_node_)
            marks.push_back(mark);
        seen_node_ = true;
    }
    bool seen_node_ = false;
};

class Parser {
public:
    explicit Parser(const std::string& source) : source_(source.empty() ? "<config>" : source) {}

    Config parse(const std::string& text) const {
        try {
            return parse_document(text);
        } catch (const YAML::Exception& e) {
            fail(e.mark, "yaml", e.msg);
        }
    }

private:
    [[noreturn]] void fail(const YAML::Mark& mark, const std::string& key_path,
                           const std::string& problem) const {
        // yaml-cpp counts from 0; editors and compilers count from 1.
        const int line = mark.line >= 0 ? mark.line + 1 : 1;
        const int column = mark.column >= 0 ? mark.column + 1 : 1;
        throw ConfigError(source_, line, column, key_path, problem);
    }

    // yaml-cpp gives an empty value ("key:" with nothing after it) the position of the next token,
    // often on a later line; the key is where the operator has to look.
    static YAML::Mark mark_of(const Entry& entry) {
        if (entry.value.IsNull() || entry.value.Mark().is_null())
            return entry.key_mark;
        return entry.value.Mark();
    }

    Config parse_document(const std::string& text) const {
        // Not YAML::LoadAll: yaml-cpp 0.7 loops forever, allocating, on a document it cannot
        // start, e.g. a line beginning with ',' (fixed upstream in 0.8, jbeder/yaml-cpp#1319). A
        // pass over the events finds the documents' first nodes, stopping at the second one;
        // one that starts where the previous one did is that loop, reported as a syntax error.
        std::istringstream in(text);
        YAML::Parser parser(in);
        DocumentStarts starts;
        while (starts.marks.size() < 2 && parser.HandleNextDocument(starts)) {
        }
        if (starts.marks.size() > 1) {
            const YAML::Mark& second = starts.marks[1];
            if (second.pos == starts.marks[0].pos && second.pos >= 0 && size_t(second.pos) < text.size())
                fail(second, "yaml", "unexpected " + quote(text.substr(second.pos, 1)));
            fail(second, "document", "only one YAML document is allowed, found a second one");
        }
        const YAML::Node root = starts.marks.empty() ? YAML::Node() : YAML::Load(text);
        if (root.IsNull())
            fail(YAML::Mark::null_mark(), "document",
                 "the config is empty; at least an 'interfaces' list is required");
        if (!root.IsMap())
            fail(root.Mark(), "document",
                 "expected a map of settings at the top level, got " + kind_of(root));

        Config config;
        bool have_interfaces = false;
        bool active_timeout_set = false;
        const std::vector<Field> fields = {
            {"interfaces",
             [&](const Entry& e, const std::string& path) {
                 parse_interfaces(e, path, config);
                 have_interfaces = true;
             }},
            {"poll_interval",
             [&](const Entry& e, const std::string& path) {
                 config.poll_interval =
                     duration(e, path, config_limits::min_poll_interval, config_limits::max_poll_interval);
             }},
            {"state_dir",
             [&](const Entry& e, const std::string& path) { config.state_dir = state_dir(e, path); }},
            {"flows",
             [&](const Entry& e, const std::string& path) {
                 section(e, path,
                         {{"max_entries",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.max_flows =
                                   number(sub, sub_path, config_limits::min_flows, config_limits::max_flows);
                           }},
                          {"idle_timeout",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.flow_idle_timeout = duration(sub, sub_path, config_limits::min_idle_timeout,
                                                                   config_limits::max_idle_timeout);
                           }},
                          {"active_timeout", [&](const Entry& sub, const std::string& sub_path) {
                               active_timeout_set = true;
                               config.flow_active_timeout = duration(
                                   sub, sub_path, config_limits::min_active_timeout, config_limits::max_active_timeout);
                           }}});
             }},
            {"hosts",
             [&](const Entry& e, const std::string& path) {
                 section(e, path,
                         {{"max_entries",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.max_hosts =
                                   number(sub, sub_path, config_limits::min_hosts, config_limits::max_hosts);
                           }},
                          {"enabled", [&](const Entry& sub, const std::string& sub_path) {
                               config.count_hosts = boolean(sub, sub_path);
                           }}});
             }},
            {"log_level",
             [&](const Entry& e, const std::string& path) {
                 config.log_level = one_of(e, path, "log level", {"debug", "info", "warning", "error"});
             }},
            {"persist_interval",
             [&](const Entry& e, const std::string& path) {
                 config.persist_interval = duration(e, path, config_limits::min_persist_interval,
                                                    config_limits::max_persist_interval);
             }},
            {"pin_dir", [&](const Entry& e, const std::string& path) { config.pin_dir = state_dir(e, path); }},
            {"periods",
             [&](const Entry& e, const std::string& path) {
                 section(e, path,
                         {{"month_start_day",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.month_start_day = static_cast<int>(number(sub, sub_path, 1, 28));
                           }},
                          {"time_zone",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.time_zone = scalar(sub, sub_path, "a time zone such as UTC or Europe/Berlin");
                           }},
                          {"keep_days",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.keep_days = number(sub, sub_path, 1, 3660);
                           }},
                          {"keep_months", [&](const Entry& sub, const std::string& sub_path) {
                               config.keep_months = number(sub, sub_path, 1, 1200);
                           }}});
             }},
            {"cgroups",
             [&](const Entry& e, const std::string& path) {
                 section(e, path,
                         {{"enabled",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.cgroups.enabled = boolean(sub, sub_path);
                           }},
                          {"subtrees",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.cgroups.subtrees = cgroup_subtrees(sub, sub_path);
                           }},
                          {"max_entries",
                           [&](const Entry& sub, const std::string& sub_path) {
                               config.cgroups.max_entries = number(sub, sub_path, config_limits::min_cgroups,
                                                                   config_limits::max_cgroups);
                           }},
                          {"netns", [&](const Entry& sub, const std::string& sub_path) {
                               config.cgroups.all_netns = one_of(sub, sub_path, "netns", {"own", "all"}) == "all";
                           }}});
             }},
            {"thresholds", [&](const Entry& e, const std::string& path) { config.thresholds = thresholds(e, path); }},
            {"upload", [&](const Entry& e, const std::string& path) { parse_upload(e, path, config.upload); }},
            {"records", [&](const Entry& e, const std::string& path) { parse_records(e, path, config.records); }},
        };
        walk_map(root, "", fields);
        // An unset active timeout follows a longer idle timeout up.
        if (!active_timeout_set && config.flow_active_timeout < config.flow_idle_timeout)
            config.flow_active_timeout = config.flow_idle_timeout;
        if (config.flow_active_timeout < config.flow_idle_timeout)
            fail(root.Mark(), "flows.active_timeout",
                 "must not be shorter than flows.idle_timeout (" + format_duration(config.flow_idle_timeout) +
                     ")");
        if (!have_interfaces)
            fail(root.Mark(), "interfaces",
                 "required key is missing (list the interfaces to account, each with a name and a role)");
        return config;
    }

    // records.*: accounting record files (core/records.h). types is a list of names, or a map of
    // name to a format or to {enabled, format}; `format` is the default for types without one.
    void parse_records(const Entry& entry, const std::string& path, RecordsConfig& rc) const {
        std::optional<RecordFormat> default_format;
        std::array<bool, kRecordTypeCount> explicit_format{};
        YAML::Mark last_mark = entry.key_mark;
        std::string last_path = path;
        auto format_of = [&](const Entry& e, const std::string& p) {
            return *parse_record_format(one_of(e, p, "format", {"csv", "jsonl"}));
        };
        auto type_of = [&](const std::string& name, const YAML::Mark& mark, const std::string& p) {
            const auto t = parse_record_type(name);
            if (!t)
                fail(mark, p, "unknown record type " + quote(name) + " (valid: interface, host, cgroup, flow, alert)");
            return *t;
        };
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
                 {"format", [&](const Entry& e, const std::string& p) { default_format = format_of(e, p); }},
                 {"types",
                  [&](const Entry& e, const std::string& p) {
                      for (auto& t : rc.types)
                          t.enabled = false;
                      if (e.value.IsSequence()) {
                          size_t i = 0;
                          for (const YAML::Node& item : e.value) {
                              const std::string ip = p + "[" + std::to_string(i++) + "]";
                              if (!item.IsScalar())
                                  fail(item.Mark(), ip, "expected a record type name, got " + kind_of(item));
                              const RecordType t = type_of(item.Scalar(), item.Mark(), ip);
                              if (rc.type(t).enabled)
                                  fail(item.Mark(), ip, "record type " + quote(item.Scalar()) + " listed twice");
                              rc.type(t).enabled = true;
                          }
                          return;
                      }
                      if (!e.value.IsMap())
                          fail(mark_of(e), p, "expected a list of record types or a map of type to format, got " +
                                                  kind_of(e.value));
                      for (const auto& kv : e.value) {
                          const std::string name = kv.first.Scalar();
                          const std::string tp = p + "." + name;
                          const RecordType t = type_of(name, kv.first.Mark(), tp);
                          const Entry sub{name, kv.first.Mark(), kv.second};
                          auto& ts = rc.type(t);
                          if (kv.second.IsMap()) {
                              ts.enabled = true;
                              section(sub, tp,
                                      {{"enabled", [&](const Entry& se, const std::string& sp) { ts.enabled = boolean(se, sp); }},
                                       {"format", [&](const Entry& se, const std::string& sp) {
                                            ts.format = format_of(se, sp);
                                            explicit_format[static_cast<size_t>(t)] = true;
                                        }}});
                          } else {
                              ts.enabled = true;
                              ts.format = format_of(sub, tp);
                              explicit_format[static_cast<size_t>(t)] = true;
                          }
                      }
                  }},
                 {"max_file_size",
                  [&](const Entry& e, const std::string& p) {
                      const std::string t = scalar(e, p, "a size such as 64M");
                      const auto v = parse_size(t);
                      if (!v || *v < records_limits::min_file_size || *v > records_limits::max_file_size)
                          fail(mark_of(e), p, "invalid size " + quote(t) + " (512 .. 1T bytes: 64M, 64MiB, 100MB)");
                      rc.max_file_size = *v;
                  }},
                 {"max_records",
                  [&](const Entry& e, const std::string& p) { rc.max_records = number(e, p, 0, 4000000000u); }},
                 {"compress",
                  [&](const Entry& e, const std::string& p) {
                      rc.compress = one_of(e, p, "compression", {"none", "gzip"}) == "gzip";
                  }},
                 {"spool_dir", [&](const Entry& e, const std::string& p) { rc.spool_dir = state_dir(e, p); }}});
        if (default_format)
            for (size_t i = 0; i < kRecordTypeCount; i++)
                if (!explicit_format[i])
                    rc.types[i].format = *default_format;
        if (rc.interval > rc.period)
            fail(last_mark, last_path,
                 "records.interval (" + format_duration(rc.interval) + ") must not be longer than records.period (" +
                     format_duration(rc.period) + ")");
    }

    // upload.*: where spooled accounting files go. Cross-key rules are checked after the section
    // so each error points at the key that needs changing.
    void parse_upload(const Entry& entry, const std::string& path, UploadConfig& up) const {
        using std::chrono::milliseconds;
        YAML::Mark url_mark = entry.key_mark, sources_mark = entry.key_mark, retry_mark = entry.key_mark;
        std::vector<std::string> sources;
        auto text = [&](const Entry& e, const std::string& p, const std::string& what) {
            return scalar(e, p, what);
        };
        auto abs_path = [&](const Entry& e, const std::string& p) {
            const std::string t = text(e, p, "an absolute file path");
            if (t.empty() || t[0] != '/')
                fail(mark_of(e), p, "must be an absolute file path, got " + quote(t));
            return t;
        };
        auto size = [&](const Entry& e, const std::string& p) {
            const std::string t = text(e, p, "a size such as 100M");
            const auto v = parse_size(t);
            if (!v)
                fail(mark_of(e), p,
                     "invalid size " + quote(t) + " (bytes or with a unit: 512M, 2GB, 1GiB; 0 = no limit)");
            return *v;
        };
        section(entry, path,
                {{"url",
                  [&](const Entry& e, const std::string& p) {
                      const std::string t = text(e, p, "a URL such as sftp://host/dir/");
                      if (!t.empty()) {
                          std::string why;
                          const auto target = parse_upload_url(t, &why);
                          if (!target)
                              fail(mark_of(e), p, why);
                          up.url = target->url;
                      }
                      url_mark = mark_of(e);
                  }},
                 {"username", [&](const Entry& e, const std::string& p) { up.username = text(e, p, "a user name"); }},
                 {"password",
                  [&](const Entry& e, const std::string& p) {
                      // Never echoed back: a typo would print the secret into the journal.
                      if (e.value.IsNull() || !e.value.IsScalar())
                          fail(mark_of(e), p, "expected the password as a string");
                      up.password = e.value.Scalar();
                      sources.push_back("password");
                      sources_mark = mark_of(e);
                  }},
                 {"password_file",
                  [&](const Entry& e, const std::string& p) {
                      up.password_file = abs_path(e, p);
                      sources.push_back("password_file");
                      sources_mark = mark_of(e);
                  }},
                 {"password_credential",
                  [&](const Entry& e, const std::string& p) {
                      const std::string t = text(e, p, "a systemd credential name");
                      if (t.empty() || t == "." || t == ".." || t.find('/') != std::string::npos)
                          fail(mark_of(e), p, "invalid credential name " + quote(t) + " (a file name, no '/')");
                      up.password_credential = t;
                      sources.push_back("password_credential");
                      sources_mark = mark_of(e);
                  }},
                 {"retry_min",
                  [&](const Entry& e, const std::string& p) {
                      up.retry_min = duration(e, p, upload_limits::min_retry, upload_limits::max_retry);
                      retry_mark = mark_of(e);
                  }},
                 {"retry_max",
                  [&](const Entry& e, const std::string& p) {
                      up.retry_max = duration(e, p, upload_limits::min_retry, upload_limits::max_retry);
                      retry_mark = mark_of(e);
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
                 {"spool_max_bytes", [&](const Entry& e, const std::string& p) { up.spool_max_bytes = size(e, p); }},
                 {"spool_max_files",
                  [&](const Entry& e, const std::string& p) { up.spool_max_files = number(e, p, 0, 100000000); }},
                 {"ca_file", [&](const Entry& e, const std::string& p) { up.ca_file = abs_path(e, p); }},
                 {"ssh_host_key_sha256",
                  [&](const Entry& e, const std::string& p) {
                      std::string t = text(e, p, "the server's host key fingerprint (ssh-keygen -l -E sha256)");
                      if (t.rfind("SHA256:", 0) == 0)
                          t = t.substr(7);
                      while (!t.empty() && t.back() == '=')
                          t.pop_back();
                      const bool b64 = t.size() == 43 && std::all_of(t.begin(), t.end(), [](char c) {
                                           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
                                                  c == '+' || c == '/';
                                       });
                      if (!b64)
                          fail(mark_of(e), p,
                               "expected a SHA-256 host key fingerprint in base64 (43 characters, as "
                               "`ssh-keygen -l -E sha256 -f KEY.pub` prints after 'SHA256:'), got " + quote(t));
                      up.ssh_host_key_sha256 = t;
                  }},
                 {"ssh_known_hosts", [&](const Entry& e, const std::string& p) { up.ssh_known_hosts = abs_path(e, p); }},
                 {"insecure", [&](const Entry& e, const std::string& p) { up.insecure = boolean(e, p); }}});
        if (sources.size() > 1)
            fail(sources_mark, path + "." + sources.back(),
                 "set only one of password, password_file and password_credential (also " + sources.front() + ")");
        if (up.retry_max < up.retry_min)
            fail(retry_mark, path + ".retry_max",
                 "must not be shorter than upload.retry_min (" + format_duration(up.retry_min) + ")");
        if (up.url.rfind("sftp://", 0) == 0 && up.ssh_host_key_sha256.empty() && up.ssh_known_hosts.empty() &&
            !up.insecure)
            fail(url_mark, path + ".url",
                 "sftp needs the server's host key: set upload.ssh_host_key_sha256 or upload.ssh_known_hosts "
                 "(or insecure: true to skip the check)");
    }

    // Checks every key of `map` (plain name, known, not repeated) and hands each entry to its
    // field's handler in file order.
    void walk_map(const YAML::Node& map, const std::string& path, const std::vector<Field>& fields) const {
        std::vector<Entry> seen;
        // By value: yaml-cpp's iterator->first lives in a proxy that dies with the expression.
        for (const auto& pair : map) {
            const YAML::Node key = pair.first;
            if (!key.IsScalar())
                fail(key.Mark(), path.empty() ? "document" : path,
                     "keys must be plain names, got " + kind_of(key) + " as a key");
            Entry entry{key.Scalar(), key.Mark(), pair.second};
            const std::string key_path = join_path(path, escape(entry.key));
            const auto field = std::find_if(fields.begin(), fields.end(),
                                            [&](const Field& f) { return f.key == entry.key; });
            if (field == fields.end()) {
                std::vector<std::string_view> valid;
                for (const auto& f : fields)
                    valid.push_back(f.key);
                fail(entry.key_mark, key_path, "unknown key (valid keys: " + join_list(valid) + ")");
            }
            for (const auto& prev : seen) {
                if (prev.key == entry.key)
                    fail(entry.key_mark, key_path,
                         "duplicate key (first set at line " + std::to_string(prev.key_mark.line + 1) + ")");
            }
            field->handle(entry, key_path);
            seen.push_back(std::move(entry));
        }
    }

    // A sub-map such as `flows:`. An empty one ("flows:" with every child commented out) means
    // "all defaults", not an error.
    void section(const Entry& entry, const std::string& path, const std::vector<Field>& fields) const {
        if (entry.value.IsNull())
            return;
        if (!entry.value.IsMap())
            fail(mark_of(entry), path, "expected a map, got " + kind_of(entry.value));
        walk_map(entry.value, path, fields);
    }

    std::string scalar(const Entry& entry, const std::string& path, const std::string& expected) const {
        if (entry.value.IsNull())
            fail(entry.key_mark, path, "missing value (expected " + expected + ")");
        if (!entry.value.IsScalar())
            fail(mark_of(entry), path, "expected " + expected + ", got " + kind_of(entry.value));
        return entry.value.Scalar();
    }

    std::string one_of(const Entry& entry, const std::string& path, const std::string& what,
                       const std::vector<std::string_view>& valid) const {
        const std::string text = scalar(entry, path, "one of " + join_list(valid));
        if (std::find(valid.begin(), valid.end(), text) == valid.end())
            fail(mark_of(entry), path,
                 "unknown " + what + " " + quote(text) + " (valid: " + join_list(valid) + ")");
        return text;
    }

    std::chrono::milliseconds duration(const Entry& entry, const std::string& path,
                                       std::chrono::milliseconds min, std::chrono::milliseconds max) const {
        const std::string text = scalar(entry, path, "a duration such as 1s");
        const auto parsed = parse_duration(text);
        if (!parsed)
            fail(mark_of(entry), path,
                 "invalid duration " + quote(text) +
                     " (use a number with ms, s, m, h or d, e.g. 500ms, 1s, 5m)");
        if (*parsed < min || *parsed > max)
            fail(mark_of(entry), path,
                 "duration " + quote(text) + " is out of range (" + format_duration(min) + " .. " +
                     format_duration(max) + ")");
        return *parsed;
    }

    uint32_t number(const Entry& entry, const std::string& path, uint32_t min, uint32_t max) const {
        const std::string range = std::to_string(min) + " .. " + std::to_string(max);
        const std::string text = scalar(entry, path, "a whole number in " + range);
        // Digits only: no sign, hex, octal, exponent or YAML 1.1 underscores, whose meaning varies
        // between YAML libraries.
        if (text.empty() || !std::all_of(text.begin(), text.end(), is_digit))
            fail(mark_of(entry), path, "expected a whole number in " + range + ", got " + quote(text));
        uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
            fail(mark_of(entry), path, escape(text) + " is out of range (" + range + ")");
        return static_cast<uint32_t>(value);
    }

    // YAML 1.2 booleans only: YAML 1.1's yes/no/on/off are read differently by different tools.
    bool boolean(const Entry& entry, const std::string& path) const {
        const std::string text = scalar(entry, path, "true or false");
        if (text == "true" || text == "True" || text == "TRUE")
            return true;
        if (text == "false" || text == "False" || text == "FALSE")
            return false;
        fail(mark_of(entry), path, "expected true or false, got " + quote(text));
    }

    std::filesystem::path state_dir(const Entry& entry, const std::string& path) const {
        const std::string text = scalar(entry, path, "an absolute directory path");
        if (text.empty())
            fail(mark_of(entry), path, "must not be empty");
        const std::filesystem::path dir(text);
        if (!dir.is_absolute())
            fail(mark_of(entry), path, "must be an absolute path, got " + quote(text));
        // The daemon owns and expires files in this directory; "/" would be a disaster.
        if (dir.lexically_normal().relative_path().empty())
            fail(mark_of(entry), path, "must not be the root directory");
        return dir;
    }

    // thresholds: a list of maps with the keys of a threshold definition (core/thresholds.h),
    // every value a scalar (sizes "1MB", durations "800ms" or plain numbers).
    std::vector<ThresholdDef> thresholds(const Entry& entry, const std::string& path) const {
        std::vector<ThresholdDef> out;
        if (entry.value.IsNull())
            return out;
        if (!entry.value.IsSequence())
            fail(mark_of(entry), path, "expected a list of thresholds, got " + kind_of(entry.value));
        for (size_t i = 0; i < entry.value.size(); ++i) {
            const YAML::Node item = entry.value[i];
            const std::string item_path = path + "[" + std::to_string(i) + "]";
            if (!item.IsMap())
                fail(item.Mark(), item_path, "expected a map with name, subject_kind, subject, step..., got " +
                                                 kind_of(item));
            FieldMap fields;
            std::map<std::string, YAML::Mark> marks;
            for (const auto& pair : item) {
                const YAML::Node key = pair.first;
                const YAML::Node value = pair.second;
                if (!key.IsScalar())
                    fail(key.Mark(), item_path, "keys must be plain names, got " + kind_of(key));
                const std::string k = key.Scalar();
                if (marks.count(k))
                    fail(key.Mark(), item_path + "." + escape(k),
                         "duplicate key (first set at line " + std::to_string(marks[k].line + 1) + ")");
                if (!value.IsScalar())
                    fail(value.IsNull() ? key.Mark() : value.Mark(), item_path + "." + escape(k),
                         "expected a single value, got " + kind_of(value));
                marks[k] = value.Mark().is_null() ? key.Mark() : value.Mark();
                fields[k] = value.Scalar();
            }
            try {
                out.push_back(parse_threshold(fields));
            } catch (const ThresholdError& e) {
                // "key: problem" -> the key's position and path.
                const std::string msg = e.what();
                const size_t colon = msg.find(": ");
                const std::string key = colon == std::string::npos ? "" : msg.substr(0, colon);
                const auto m = marks.find(key);
                fail(m != marks.end() ? m->second : item.Mark(), key.empty() ? item_path : item_path + "." + key,
                     colon == std::string::npos ? msg : msg.substr(colon + 2));
            }
            for (size_t j = 0; j + 1 < out.size(); ++j)
                if (out[j].name == out.back().name)
                    fail(marks.count("name") ? marks["name"] : item.Mark(), item_path + ".name",
                         "duplicate threshold name " + quote(out.back().name) + " (first in " + path + "[" +
                             std::to_string(j) + "])");
        }
        return out;
    }

    void parse_interfaces(const Entry& entry, const std::string& path, Config& config) const {
        if (entry.value.IsNull())
            fail(entry.key_mark, path, "must list at least one interface");
        if (!entry.value.IsSequence())
            fail(mark_of(entry), path, "expected a list of interfaces, got " + kind_of(entry.value));
        if (entry.value.size() == 0)
            fail(mark_of(entry), path, "must list at least one interface");

        size_t index = 0;
        for (const YAML::Node& item : entry.value) {
            const std::string item_path = path + "[" + std::to_string(index++) + "]";
            YAML::Mark name_mark = item.Mark();
            InterfaceRule rule = parse_rule(item, item_path, name_mark);
            check_reachable(config.interfaces, rule, name_mark, item_path + ".name");
            config.interfaces.push_back(std::move(rule));
        }
    }

    InterfaceRule parse_rule(const YAML::Node& item, const std::string& path, YAML::Mark& name_mark) const {
        if (!item.IsMap())
            fail(item.Mark(), path, "expected a map with name, role and mode, got " + kind_of(item));
        InterfaceRule rule;
        rule.line = item.Mark().line + 1;
        bool have_name = false;
        bool have_role = false;
        walk_map(item, path,
                 {
                     {"name",
                      [&](const Entry& e, const std::string& p) {
                          rule.name = interface_name(e, p);
                          name_mark = mark_of(e);
                          have_name = true;
                      }},
                     {"role",
                      [&](const Entry& e, const std::string& p) {
                          rule.role = one_of(e, p, "role", {"lan", "wan"}) == "wan" ? Role::Wan : Role::Lan;
                          have_role = true;
                      }},
                     {"mode",
                      [&](const Entry& e, const std::string& p) {
                          rule.mode =
                              one_of(e, p, "mode", {"tc", "xdp"}) == "xdp" ? AttachMode::Xdp : AttachMode::Tc;
                      }},
                 });
        if (!have_name)
            fail(item.Mark(), path + ".name",
                 "required key is missing (an interface name or a glob such as eth*)");
        // No default role: guessing lan for an uplink would silently swap uplink and downlink.
        if (!have_role)
            fail(item.Mark(), path + ".role", "required key is missing (lan or wan)");
        return rule;
    }

    std::string interface_name(const Entry& entry, const std::string& path) const {
        const std::string name = scalar(entry, path, "an interface name or glob");
        if (name.empty())
            fail(mark_of(entry), path, "must not be empty");
        // What the kernel's dev_valid_name() refuses can never match a real interface.
        for (const char ch : name) {
            const auto c = static_cast<unsigned char>(ch);
            if (c == '/' || c == ':' || c == ' ' || c < 0x20 || c == 0x7f)
                fail(mark_of(entry), path,
                     quote(name) +
                         " is not a valid interface name (no '/', ':', spaces or control characters)");
        }
        if (interface_is_glob(name)) {
            if (has_unterminated_bracket(name))
                fail(mark_of(entry), path, "unterminated '[' in pattern " + quote(name));
        } else {
            if (name.size() >= IFNAMSIZ)
                fail(mark_of(entry), path,
                     quote(name) + " is longer than " + std::to_string(IFNAMSIZ - 1) +
                         " characters, the Linux limit for interface names");
            if (name == "." || name == "..")
                fail(mark_of(entry), path, quote(name) + " is not a valid interface name");
        }
        return name;
    }

    // cgroups.subtrees: absolute, normalized cgroup paths, none inside another (it would be counted
    // by both in the operator's head, and by one in the kernel).
    std::vector<std::string> cgroup_subtrees(const Entry& entry, const std::string& path) const {
        const std::string example = "a list of cgroup paths such as [\"/system.slice\"]";
        if (entry.value.IsNull())
            fail(entry.key_mark, path, "missing value (expected " + example + ")");
        if (!entry.value.IsSequence())
            fail(mark_of(entry), path, "expected " + example + ", got " + kind_of(entry.value));
        if (entry.value.size() == 0)
            fail(mark_of(entry), path, "must list at least one subtree (\"/\" tracks every cgroup)");
        std::vector<std::string> out;
        size_t index = 0;
        for (const YAML::Node& item : entry.value) {
            const std::string item_path = path + "[" + std::to_string(index++) + "]";
            if (!item.IsScalar())
                fail(item.Mark(), item_path, "expected a cgroup path such as /system.slice, got " + kind_of(item));
            const std::string text = item.Scalar();
            if (text.empty() || text[0] != '/')
                fail(item.Mark(), item_path,
                     quote(text) + " is not an absolute cgroup path (start it with '/', e.g. /system.slice)");
            size_t depth = 0;
            for (size_t i = 1; i < text.size();) {
                const size_t slash = text.find('/', i);
                const std::string part = text.substr(i, slash == std::string::npos ? std::string::npos : slash - i);
                if (part.empty() || part == "." || part == ".." || slash == text.size() - 1)
                    fail(item.Mark(), item_path,
                         quote(text) + " is not a normalized cgroup path (no empty, '.' or '..' components and no "
                                       "trailing '/')");
                if (part.size() > 255)
                    fail(item.Mark(), item_path, "a component of " + quote(text) + " is longer than 255 characters");
                for (const char ch : part) {
                    const auto c = static_cast<unsigned char>(ch);
                    if (c < 0x20 || c == 0x7f)
                        fail(item.Mark(), item_path, quote(text) + " contains a control character");
                }
                ++depth;
                i = slash == std::string::npos ? text.size() : slash + 1;
            }
            if (depth >= NT_CG_MAX_DEPTH)
                fail(item.Mark(), item_path,
                     quote(text) + " is " + std::to_string(depth) + " levels deep; subtree roots deeper than " +
                         std::to_string(NT_CG_MAX_DEPTH - 1) + " levels are not supported");
            for (size_t i = 0; i < out.size(); ++i) {
                const std::string& prev = out[i];
                const std::string where = path + "[" + std::to_string(i) + "]";
                const auto within = [](const std::string& p, const std::string& root) {
                    return root == "/" || p == root || (p.size() > root.size() && p.compare(0, root.size(), root) == 0 &&
                                                        p[root.size()] == '/');
                };
                if (prev == text)
                    fail(item.Mark(), item_path, "duplicate subtree " + quote(text) + " (already listed as " + where + ")");
                if (within(text, prev))
                    fail(item.Mark(), item_path,
                         quote(text) + " is inside " + quote(prev) + " (" + where + "), which already tracks it");
                if (within(prev, text))
                    fail(item.Mark(), item_path,
                         quote(text) + " contains " + quote(prev) + " (" + where + "); list only the outer one");
            }
            if (out.size() == NT_CG_MAX_SUBTREES)
                fail(item.Mark(), item_path,
                     "too many subtrees: at most " + std::to_string(NT_CG_MAX_SUBTREES) + " are supported");
            out.push_back(text);
        }
        return out;
    }

    // First match wins, so a rule hidden behind an earlier one is a config mistake that would
    // silently give the interface the earlier rule's role.
    void check_reachable(const std::vector<InterfaceRule>& earlier, const InterfaceRule& rule,
                         const YAML::Mark& name_mark, const std::string& path) const {
        for (size_t i = 0; i < earlier.size(); ++i) {
            const InterfaceRule& prev = earlier[i];
            const std::string where =
                "interfaces[" + std::to_string(i) + "] at line " + std::to_string(prev.line);
            if (prev.name == rule.name)
                fail(name_mark, path,
                     "duplicate interface " + quote(rule.name) + " (already listed as " + where + ")");
            const bool shadowed =
                is_catch_all(prev.name) || (interface_is_glob(prev.name) && !interface_is_glob(rule.name) &&
                                            glob_matches(prev.name, rule.name));
            if (shadowed)
                fail(name_mark, path,
                     "rule " + quote(rule.name) + " can never match: " + quote(prev.name) + " (" + where +
                         ") matches first; put more specific rules first");
        }
    }

    std::string source_;
};

} // namespace

ConfigError::ConfigError(std::string source, int line, int column, std::string key_path, std::string problem)
    : std::runtime_error(format_message(source, line, column, key_path, problem)), source_(std::move(source)),
      line_(line), column_(column), key_path_(std::move(key_path)), problem_(std::move(problem)) {}

std::string_view to_string(Role role) {
    switch (role) {
    case Role::Lan:
        return "lan";
    case Role::Wan:
        return "wan";
    }
    return "?";
}

std::string_view to_string(AttachMode mode) {
    switch (mode) {
    case AttachMode::Tc:
        return "tc";
    case AttachMode::Xdp:
        return "xdp";
    }
    return "?";
}

Config parse_config(const std::string& text, const std::string& source_name) {
    return Parser(source_name).parse(text);
}

Config load_config(const std::filesystem::path& path) {
    const std::string name = path.string();
    struct FileCloser {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    const std::unique_ptr<std::FILE, FileCloser> file(std::fopen(name.c_str(), "rb"));
    if (!file) {
        const int err = errno;
        throw ConfigError(name, 0, 0, "", "cannot open: " + std::generic_category().message(err));
    }
    std::string text;
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, file.get())) > 0)
        text.append(buf, n);
    // fopen() succeeds on a directory; the read is what fails (EISDIR).
    if (std::ferror(file.get())) {
        const int err = errno;
        throw ConfigError(name, 0, 0, "", "cannot read: " + std::generic_category().message(err));
    }
    Config config = parse_config(text, name);
    config.path = name;
    return config;
}

bool interface_is_glob(std::string_view name) {
    return name.find_first_of("*?[") != std::string_view::npos;
}

const InterfaceRule* match_interface(const Config& config, std::string_view ifname) {
    // An embedded NUL would let fnmatch() see only a prefix of the name.
    if (ifname.find('\0') != std::string_view::npos)
        return nullptr;
    const std::string name(ifname);
    for (const InterfaceRule& rule : config.interfaces) {
        const bool matches = interface_is_glob(rule.name) ? glob_matches(rule.name, name) : rule.name == name;
        if (matches)
            return &rule;
    }
    return nullptr;
}

} // namespace nettally
