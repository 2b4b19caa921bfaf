// nettallyd's configuration: the YAML file (/etc/nettally/nettally.yaml) validated into a typed
// Config. Parsing is pure (no I/O except load_config reading the named file) so reload can build a
// new Config, and only swap it in when this returned without throwing; a bad file never
// half-applies. Every rejection is a ConfigError whose what() is one line naming file, line, column
// and key path, because operators read it in `journalctl` or in a D-Bus reply, not in a debugger.
#pragma once

#include "core/export.h"
#include "core/leases.h"
#include "core/records.h"
#include "core/subscribers.h"
#include "core/thresholds_def.h"
#include "core/units.h"
#include "core/upload.h"
#include "nettally_abi.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// Same values as the ABI's enum nt_role, so a rule's role goes into the interface map unchanged.
enum class Role { Lan = NT_ROLE_LAN, Wan = NT_ROLE_WAN };
std::string_view to_string(Role role);

// How a matched interface is attached. Xdp is accepted here; the loader decides what it supports.
enum class AttachMode { Tc, Xdp };
std::string_view to_string(AttachMode mode);

struct InterfaceRule {
    std::string name; // an interface name or an fnmatch(3) glob (see interface_is_glob)
    Role role = Role::Lan;
    AttachMode mode = AttachMode::Tc;
    int line = 0; // 1-based line of the rule in the file, so logs can point at the rule that matched
};

// Per-cgroup accounting (key cgroups.*; README "Per-cgroup accounting").
struct CgroupConfig {
    bool enabled = false;                             // cgroups.enabled
    std::vector<std::string> subtrees{"/"};           // cgroups.subtrees: tracked subtree roots
    uint32_t max_entries = NT_CG_DEFAULT_MAX_ENTRIES; // cgroups.max_entries: kernel map capacity
    bool all_netns = false;                           // cgroups.netns: own (false) | all (true)
    bool operator==(const CgroupConfig&) const = default;
};

// Prometheus exposition (key metrics.*; README "Prometheus metrics"). Off unless listen or
// textfile_dir is set.
struct MetricsConfig {
    std::string listen;                 // metrics.listen: "ADDR:PORT" / "[ADDR6]:PORT" ("": no exposer)
    uint32_t max_hosts = 100;           // metrics.max_hosts: hosts with their own series
    std::filesystem::path textfile_dir; // metrics.textfile_dir: node_exporter textfile ("": none)
    std::chrono::milliseconds textfile_interval{std::chrono::seconds{15}}; // metrics.textfile_interval
    bool operator==(const MetricsConfig&) const = default;
};

// One entry of subscribers.static: a prefix bound to a user, or a MAC named as a user's device.
struct StaticSubscriber {
    std::string user;
    std::optional<Prefix> prefix; // exactly one of prefix and mac
    std::string mac;              // normalized "aa:bb:cc:dd:ee:ff"
    bool operator==(const StaticSubscriber&) const = default;
};

// One entry of subscribers.dhcp: a lease file to watch.
struct LeaseSource {
    LeaseFormat format = LeaseFormat::Dnsmasq;
    std::filesystem::path path; // absolute
    bool operator==(const LeaseSource&) const = default;
};

// One entry of subscribers.radius.clients: the NAS addresses it covers and where its shared
// secret is (never the secret itself: it is read when the listener opens, core/radius.h).
struct RadiusClient {
    Prefix address;                    // a host or a prefix of NAS addresses
    std::filesystem::path secret_file; // absolute; or
    std::string secret_credential;     // a systemd credential name ($CREDENTIALS_DIRECTORY/NAME)
    bool operator==(const RadiusClient&) const = default;
};

// subscribers.radius: the RADIUS accounting listener; off unless listen is set.
struct RadiusConfig {
    std::string listen;                // canonical "ADDRESS:PORT" / "[ADDRESS]:PORT"; "" = off
    std::vector<RadiusClient> clients; // the longest prefix containing the source address wins
    bool operator==(const RadiusConfig&) const = default;
};

// Subscribers (key subscribers.*; README "Subscribers"). Per-user counting runs when the section
// is present.
struct SubscribersConfig {
    bool configured = false;                                       // the section is present
    std::chrono::milliseconds keep_closed{std::chrono::hours{24}}; // subscribers.keep_closed
    std::vector<StaticSubscriber> statics;                         // subscribers.static
    std::vector<LeaseSource> dhcp;                                 // subscribers.dhcp
    RadiusConfig radius;                                           // subscribers.radius
    bool operator==(const SubscribersConfig&) const = default;
};

// Traffic classes (key rules.*; README "Traffic classes"). Nothing is loaded unless rules.bundle
// is set or a bundle comes over D-Bus (LoadRules).
struct RulesConfig {
    std::filesystem::path bundle;                    // rules.bundle: loaded at start ("": none)
    std::vector<std::filesystem::path> trusted_keys; // rules.trusted_keys: Ed25519 public key files
    std::string url;                                 // rules.url: where bundles are pulled from ("": none)
    std::chrono::milliseconds refresh{std::chrono::minutes{5}}; // rules.refresh
    std::filesystem::path ca_file;                              // rules.ca_file: for the pull ("": system)
    uint64_t max_size = uint64_t{16} << 20;                     // rules.max_size: largest bundle file
    bool section = false; // the config has a rules section (sizes the per host and class map)
    uint32_t max_host_classes = NT_DEFAULT_MAX_HOST_CLASSES; // rules.max_host_classes
    // Entries of the per host and class map: 1 (nothing worth counting) without a rules section.
    uint32_t host_class_entries() const { return section ? max_host_classes : 1; }
    bool operator==(const RulesConfig&) const = default;
};

struct Config {
    std::string path;                      // file it came from ("" when parsed from text)
    std::vector<InterfaceRule> interfaces; // order matters: the first matching rule wins
    std::chrono::milliseconds poll_interval{1000};
    std::filesystem::path state_dir{"/var/lib/nettally"};
    uint32_t max_flows = NT_DEFAULT_MAX_FLOWS; // key flows.max_entries
    uint32_t max_hosts = NT_DEFAULT_MAX_HOSTS; // key hosts.max_entries
    bool count_hosts = true;                   // key hosts.enabled
    std::string log_level = "info";            // key log_level: debug | info | warning | error

    // Durability (see README "Counts that survive").
    std::chrono::milliseconds persist_interval{std::chrono::minutes{5}};     // key persist_interval
    std::filesystem::path pin_dir{"/sys/fs/bpf/nettally"};                   // key pin_dir (inside a bpffs)
    std::chrono::milliseconds flow_idle_timeout{std::chrono::seconds{15}};   // key flows.idle_timeout
    std::chrono::milliseconds flow_active_timeout{std::chrono::minutes{30}}; // key flows.active_timeout

    // Accounting periods (key periods.*).
    int month_start_day = 1;       // 1 .. 28
    std::string time_zone = "UTC"; // periods.time_zone
    uint32_t keep_days = 62;       // periods.keep_days
    uint32_t keep_months = 24;     // periods.keep_months

    CgroupConfig cgroups;

    // Thresholds from the file (key thresholds: a list of definitions, core/thresholds.h keys).
    std::vector<ThresholdDef> thresholds;
    UploadConfig upload;           // key upload.* (README "Uploading accounting files")
    RecordsConfig records;         // key records.* (README "Accounting records")
    MetricsConfig metrics;         // key metrics.* (README "Prometheus metrics")
    ExportConfig exports;          // key export.* (README "Flow export (IPFIX)")
    SubscribersConfig subscribers; // key subscribers.* (README "Subscribers")
    RulesConfig rules;             // key rules.* (README "Traffic classes")
};

// Accepted ranges; the shipped config/nettally.yaml documents the same numbers.
namespace config_limits {
inline constexpr std::chrono::milliseconds min_poll_interval{100};
inline constexpr std::chrono::milliseconds max_poll_interval{std::chrono::hours{1}};
inline constexpr uint32_t min_flows = 1024;
inline constexpr uint32_t max_flows = 16777216;
inline constexpr uint32_t min_hosts = 256;
inline constexpr uint32_t max_hosts = 4194304;
inline constexpr std::chrono::milliseconds min_persist_interval{std::chrono::seconds{1}};
inline constexpr std::chrono::milliseconds max_persist_interval{std::chrono::hours{24}};
inline constexpr std::chrono::milliseconds min_idle_timeout{std::chrono::seconds{1}};
inline constexpr std::chrono::milliseconds max_idle_timeout{std::chrono::hours{1}};
inline constexpr std::chrono::milliseconds min_active_timeout{std::chrono::seconds{10}};
inline constexpr std::chrono::milliseconds max_active_timeout{std::chrono::hours{24}};
inline constexpr uint32_t min_cgroups = 1;
inline constexpr uint32_t max_cgroups = 1048576;
inline constexpr uint32_t max_metrics_hosts = 100000;
inline constexpr std::chrono::milliseconds min_textfile_interval{std::chrono::seconds{1}};
inline constexpr std::chrono::milliseconds max_textfile_interval{std::chrono::hours{1}};
inline constexpr std::chrono::milliseconds max_keep_closed{std::chrono::hours{24 * 366}};
inline constexpr size_t max_static_subscribers = NT_BIND_MAX_ENTRIES;
inline constexpr size_t max_radius_clients = 1024;
inline constexpr std::chrono::milliseconds min_rules_refresh{std::chrono::seconds{10}};
inline constexpr std::chrono::milliseconds max_rules_refresh{std::chrono::hours{24}};
inline constexpr uint64_t min_rules_size = 1024;
inline constexpr uint32_t min_host_classes = 256;
inline constexpr uint32_t max_host_classes = 4194304;
inline constexpr uint64_t max_rules_size = uint64_t{64} << 20; // kBundleMaxSize
inline constexpr size_t max_trusted_keys = 64;
} // namespace config_limits

// what() is the whole one-line message: "<file>:<line>:<col>: <key path>: <problem>", or
// "<file>: <problem>" when there is no position (the file could not be read). The parts are kept
// so a D-Bus reload reply can return them as fields.
class ConfigError : public std::runtime_error {
public:
    // line and column are 1-based; line 0 means "no position".
    ConfigError(std::string source, int line, int column, std::string key_path, std::string problem);

    const std::string& source() const { return source_; }
    int line() const { return line_; }
    int column() const { return column_; }
    const std::string& key_path() const { return key_path_; }
    const std::string& problem() const { return problem_; }

private:
    std::string source_;
    int line_;
    int column_;
    std::string key_path_;
    std::string problem_;
};

// Parses and validates YAML text; source_name only labels error messages (Config::path stays "").
// Key paths in errors index lists from 0: interfaces[0] is the first rule.
Config parse_config(const std::string& text, const std::string& source_name);

// Reads the file and parses it; Config::path is set to `path`. An unreadable file is a
// ConfigError too ("<file>: cannot read: <strerror>").
Config load_config(const std::filesystem::path& path);

// The configured features that open internet (AF_INET/AF_INET6) sockets, by their config key:
// upload.url, metrics.listen, export.collectors, subscribers.radius.listen, rules.url. Empty when
// nettallyd needs none (the systemd unit denies those families unless a drop-in allows them).
std::vector<std::string> internet_features(const Config& config);

// True if the name contains a glob metacharacter (* ? [); such names are matched with fnmatch(3),
// all others compare exactly.
bool interface_is_glob(std::string_view name);

// The first rule matching ifname, in file order, or nullptr if none does.
const InterfaceRule* match_interface(const Config& config, std::string_view ifname);

} // namespace nettally
