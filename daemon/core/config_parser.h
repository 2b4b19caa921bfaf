// The config parser's section readers: what each top-level key of the config file holds
// (interfaces, flows, hosts, periods, cgroups, thresholds, records, upload) and the checks across
// keys, on top of the generic YAML walker (core/config_yaml.h). Internal to parse_config.
#pragma once

#include "core/config.h"
#include "core/config_yaml.h"

#include <array>
#include <string>
#include <vector>

namespace nettally::config_yaml {

// fnmatch(3) of an interface name against a glob rule.
bool glob_matches(const std::string& pattern, const std::string& name);

class ConfigParser : public YamlReader {
public:
    using YamlReader::YamlReader;

    // Every yaml-cpp exception becomes a ConfigError at its mark.
    Config parse(const std::string& text) const;

private:
    Config parse_document(const std::string& text) const;
    // The key tables of the top-level map and of its small sections (config.cpp).
    std::vector<Field> top_level_fields(Config& config, bool& have_interfaces,
                                        bool& active_timeout_set) const;
    void read_flows(const Entry& e, const std::string& path, Config& config, bool& active_timeout_set) const;
    void read_hosts(const Entry& e, const std::string& path, Config& config) const;
    void read_periods(const Entry& e, const std::string& path, Config& config) const;
    void read_cgroups(const Entry& e, const std::string& path, Config& config) const;
    void read_metrics(const Entry& e, const std::string& path, MetricsConfig& mc) const;
    // Checks across sections, after the walk.
    void check_document(const YAML::Node& root, Config& config, bool have_interfaces,
                        bool active_timeout_set) const;
    // thresholds: a list of maps with the keys of a threshold definition (core/thresholds.h),
    // every value a scalar (sizes "1MB", durations "800ms" or plain numbers).
    std::vector<ThresholdDef> thresholds(const Entry& entry, const std::string& path) const;

    // records.* and upload.* (config_records.cpp).
    // records.*: accounting record files (core/records.h). types is a list of names, or a map of
    // name to a format or to {enabled, format}; `format` is the default for types without one.
    void parse_records(const Entry& entry, const std::string& path, RecordsConfig& rc) const;
    void read_record_types(const Entry& e, const std::string& p, RecordsConfig& rc,
                           std::array<bool, kRecordTypeCount>& explicit_format) const;
    // upload.*: where spooled accounting files go. Cross-key rules are checked after the section
    // so each error points at the key that needs changing.
    void parse_upload(const Entry& entry, const std::string& path, UploadConfig& up) const;
    struct UploadSeen;
    std::vector<Field> upload_login_fields(UploadConfig& up, UploadSeen& seen) const;
    std::vector<Field> upload_timing_fields(UploadConfig& up, UploadSeen& seen) const;
    std::vector<Field> upload_server_fields(UploadConfig& up, UploadSeen& seen) const;

    // export.*: IPFIX flow export (config_export.cpp).
    void parse_export(const Entry& entry, const std::string& path, ExportConfig& ex) const;
    std::vector<std::string> export_collectors(const Entry& entry, const std::string& path) const;
    uint32_t message_size(const Entry& e, const std::string& p) const;

    // subscribers.* (config_subscribers.cpp).
    void parse_subscribers(const Entry& entry, const std::string& path, SubscribersConfig& sc) const;
    std::vector<StaticSubscriber> static_subscribers(const Entry& entry, const std::string& path) const;
    std::vector<LeaseSource> lease_sources(const Entry& entry, const std::string& path) const;
    RadiusConfig radius(const Entry& entry, const std::string& path) const;
    std::vector<RadiusClient> radius_clients(const Entry& entry, const std::string& path) const;
    RadiusClient radius_client(const YAML::Node& item, const std::string& path) const;

    // rules.* (config_rules.cpp): traffic classes.
    void parse_rules(const Entry& entry, const std::string& path, RulesConfig& rc) const;
    std::vector<std::filesystem::path> trusted_keys(const Entry& entry, const std::string& path) const;

    // interfaces and cgroups.subtrees (config_interfaces.cpp).
    void parse_interfaces(const Entry& entry, const std::string& path, Config& config) const;
    InterfaceRule parse_rule(const YAML::Node& item, const std::string& path, YAML::Mark& name_mark) const;
    std::string interface_name(const Entry& entry, const std::string& path) const;
    // cgroups.subtrees: absolute, normalized cgroup paths, none inside another (it would be counted
    // by both in the operator's head, and by one in the kernel).
    std::vector<std::string> cgroup_subtrees(const Entry& entry, const std::string& path) const;
    // First match wins, so a rule hidden behind an earlier one is a config mistake that would
    // silently give the interface the earlier rule's role.
    void check_reachable(const std::vector<InterfaceRule>& earlier, const InterfaceRule& rule,
                         const YAML::Mark& name_mark, const std::string& path) const;
};

} // namespace nettally::config_yaml
