// parse_config and load_config (config.h): the top-level keys and the small sections of the config
// file, on the generic YAML walker (config_yaml.h); the larger sections are read in
// config_interfaces.cpp and config_records.cpp.
#include "core/config.h"

#include "core/config_parser.h"
#include "core/enum_names.h"
#include "core/metrics.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>
#include <utility>

namespace nettally {

namespace config_yaml {

Config ConfigParser::parse(const std::string& text) const {
    try {
        return parse_document(text);
    } catch (const YAML::Exception& e) {
        fail(e.mark, "yaml", e.msg);
    }
}

Config ConfigParser::parse_document(const std::string& text) const {
    const YAML::Node root = load_one_document(text);
    if (root.IsNull())
        fail(YAML::Mark::null_mark(), "document",
             "the config is empty; at least an 'interfaces' list is required");
    if (!root.IsMap())
        fail(root.Mark(), "document", "expected a map of settings at the top level, got " + kind_of(root));

    Config config;
    bool have_interfaces = false;
    bool active_timeout_set = false;
    walk_map(root, "", top_level_fields(config, have_interfaces, active_timeout_set));
    check_document(root, config, have_interfaces, active_timeout_set);
    return config;
}

std::vector<Field> ConfigParser::top_level_fields(Config& config, bool& have_interfaces,
                                                  bool& active_timeout_set) const {
    return {
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
        {"state_dir", [&](const Entry& e, const std::string& path) { config.state_dir = abs_dir(e, path); }},
        {"flows",
         [&](const Entry& e, const std::string& path) { read_flows(e, path, config, active_timeout_set); }},
        {"hosts", [&](const Entry& e, const std::string& path) { read_hosts(e, path, config); }},
        {"log_level",
         [&](const Entry& e, const std::string& path) {
             config.log_level = one_of(e, path, "log level", {"debug", "info", "warning", "error"});
         }},
        {"persist_interval",
         [&](const Entry& e, const std::string& path) {
             config.persist_interval =
                 duration(e, path, config_limits::min_persist_interval, config_limits::max_persist_interval);
         }},
        {"pin_dir", [&](const Entry& e, const std::string& path) { config.pin_dir = abs_dir(e, path); }},
        {"periods", [&](const Entry& e, const std::string& path) { read_periods(e, path, config); }},
        {"cgroups", [&](const Entry& e, const std::string& path) { read_cgroups(e, path, config); }},
        {"thresholds",
         [&](const Entry& e, const std::string& path) { config.thresholds = thresholds(e, path); }},
        {"upload", [&](const Entry& e, const std::string& path) { parse_upload(e, path, config.upload); }},
        {"records", [&](const Entry& e, const std::string& path) { parse_records(e, path, config.records); }},
        {"metrics", [&](const Entry& e, const std::string& path) { read_metrics(e, path, config.metrics); }},
        {"export", [&](const Entry& e, const std::string& path) { parse_export(e, path, config.exports); }},
        {"subscribers",
         [&](const Entry& e, const std::string& path) { parse_subscribers(e, path, config.subscribers); }},
        {"rules", [&](const Entry& e, const std::string& path) { parse_rules(e, path, config.rules); }},
    };
}

void ConfigParser::read_flows(const Entry& e, const std::string& path, Config& config,
                              bool& active_timeout_set) const {
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
                  config.flow_active_timeout = duration(sub, sub_path, config_limits::min_active_timeout,
                                                        config_limits::max_active_timeout);
              }}});
}

void ConfigParser::read_hosts(const Entry& e, const std::string& path, Config& config) const {
    section(e, path,
            {{"max_entries",
              [&](const Entry& sub, const std::string& sub_path) {
                  config.max_hosts =
                      number(sub, sub_path, config_limits::min_hosts, config_limits::max_hosts);
              }},
             {"enabled", [&](const Entry& sub, const std::string& sub_path) {
                  config.count_hosts = boolean(sub, sub_path);
              }}});
}

void ConfigParser::read_periods(const Entry& e, const std::string& path, Config& config) const {
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
}

void ConfigParser::read_metrics(const Entry& e, const std::string& path, MetricsConfig& mc) const {
    section(e, path,
            {{"listen",
              [&](const Entry& sub, const std::string& sub_path) {
                  const std::string text = scalar(sub, sub_path, "ADDRESS:PORT or [IPV6-ADDRESS]:PORT");
                  const auto addr = parse_listen_address(text);
                  if (!addr)
                      fail(mark_of(sub), sub_path,
                           "expected ADDRESS:PORT or [IPV6-ADDRESS]:PORT (port 1-65535), got " + quote(text));
                  mc.listen = *addr;
              }},
             {"max_hosts",
              [&](const Entry& sub, const std::string& sub_path) {
                  mc.max_hosts = number(sub, sub_path, 0, config_limits::max_metrics_hosts);
              }},
             {"textfile_dir", [&](const Entry& sub,
                                  const std::string& sub_path) { mc.textfile_dir = abs_dir(sub, sub_path); }},
             {"textfile_interval", [&](const Entry& sub, const std::string& sub_path) {
                  mc.textfile_interval = duration(sub, sub_path, config_limits::min_textfile_interval,
                                                  config_limits::max_textfile_interval);
              }}});
}

void ConfigParser::read_cgroups(const Entry& e, const std::string& path, Config& config) const {
    section(
        e, path,
        {{"enabled", [&](const Entry& sub,
                         const std::string& sub_path) { config.cgroups.enabled = boolean(sub, sub_path); }},
         {"subtrees",
          [&](const Entry& sub, const std::string& sub_path) {
              config.cgroups.subtrees = cgroup_subtrees(sub, sub_path);
          }},
         {"max_entries",
          [&](const Entry& sub, const std::string& sub_path) {
              config.cgroups.max_entries =
                  number(sub, sub_path, config_limits::min_cgroups, config_limits::max_cgroups);
          }},
         {"netns", [&](const Entry& sub, const std::string& sub_path) {
              config.cgroups.all_netns = one_of(sub, sub_path, "netns", {"own", "all"}) == "all";
          }}});
}

void ConfigParser::check_document(const YAML::Node& root, Config& config, bool have_interfaces,
                                  bool active_timeout_set) const {
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
}

// thresholds: a list of maps with the keys of a threshold definition (core/thresholds.h),
// every value a scalar (sizes "1MB", durations "800ms" or plain numbers).
std::vector<ThresholdDef> ConfigParser::thresholds(const Entry& entry, const std::string& path) const {
    std::vector<ThresholdDef> out;
    if (entry.value.IsNull())
        return out;
    if (!entry.value.IsSequence())
        fail(mark_of(entry), path, "expected a list of thresholds, got " + kind_of(entry.value));
    for (size_t i = 0; i < entry.value.size(); ++i) {
        const YAML::Node item = entry.value[i];
        const std::string item_path = path + "[" + std::to_string(i) + "]";
        if (!item.IsMap())
            fail(item.Mark(), item_path,
                 "expected a map with name, subject_kind, subject, step..., got " + kind_of(item));
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

} // namespace config_yaml

std::string_view to_string(Role role) {
    constexpr std::array<std::string_view, 2> kNames{"lan", "wan"};
    return enum_name(kNames, role);
}

std::string_view to_string(AttachMode mode) {
    constexpr std::array<std::string_view, 2> kNames{"tc", "xdp"};
    return enum_name(kNames, mode);
}

Config parse_config(const std::string& text, const std::string& source_name) {
    return config_yaml::ConfigParser(source_name).parse(text);
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

std::vector<std::string> internet_features(const Config& config) {
    std::vector<std::string> used;
    if (!config.upload.url.empty())
        used.emplace_back("upload.url");
    if (!config.metrics.listen.empty())
        used.emplace_back("metrics.listen");
    if (!config.exports.collectors.empty())
        used.emplace_back("export.collectors");
    if (!config.subscribers.radius.listen.empty())
        used.emplace_back("subscribers.radius.listen");
    if (!config.rules.url.empty())
        used.emplace_back("rules.url");
    return used;
}

} // namespace nettally
