// The subscribers section of the config file (static bindings). See config_parser.h.
#include "core/config_parser.h"

#include <set>

namespace nettally::config_yaml {

void ConfigParser::parse_subscribers(const Entry& entry, const std::string& path,
                                     SubscribersConfig& sc) const {
    sc.configured = true;
    section(entry, path,
            {{"keep_closed",
              [&](const Entry& e, const std::string& p) {
                  sc.keep_closed =
                      duration(e, p, std::chrono::milliseconds{0}, config_limits::max_keep_closed);
              }},
             {"static", [&](const Entry& e, const std::string& p) { sc.statics = static_subscribers(e, p); }},
             {"dhcp", [&](const Entry& e, const std::string& p) { sc.dhcp = lease_sources(e, p); }}});
}

// subscribers.dhcp: a list of {format: dnsmasq|kea, path: FILE}; no file twice.
std::vector<LeaseSource> ConfigParser::lease_sources(const Entry& entry, const std::string& path) const {
    if (entry.value.IsNull())
        return {};
    if (!entry.value.IsSequence())
        fail(mark_of(entry), path, "expected a list of {format, path}, got " + kind_of(entry.value));
    std::vector<LeaseSource> out;
    std::set<std::filesystem::path> seen;
    size_t i = 0;
    for (const YAML::Node& item : entry.value) {
        const std::string ip = path + "[" + std::to_string(i++) + "]";
        if (!item.IsMap())
            fail(item.Mark(), ip, "expected a map {format, path}, got " + kind_of(item));
        LeaseSource s;
        bool have_format = false;
        walk_map(item, ip,
                 {{"format",
                   [&](const Entry& e, const std::string& p) {
                       s.format = one_of(e, p, "lease file format", {"dnsmasq", "kea"}) == "kea"
                                      ? LeaseFormat::Kea
                                      : LeaseFormat::Dnsmasq;
                       have_format = true;
                   }},
                  {"path", [&](const Entry& e, const std::string& p) {
                       const std::string t = scalar(e, p, "an absolute file path");
                       const std::filesystem::path f = std::filesystem::path(t).lexically_normal();
                       if (t.empty() || !f.is_absolute() || !f.has_filename())
                           fail(mark_of(e), p, "expected an absolute file path, got " + quote(t));
                       if (!seen.insert(f).second)
                           fail(mark_of(e), p, "lease file " + quote(f.string()) + " listed twice");
                       s.path = f;
                   }}});
        if (!have_format)
            fail(item.Mark(), ip + ".format", "missing: dnsmasq or kea");
        if (s.path.empty())
            fail(item.Mark(), ip + ".path", "missing: the lease file");
        out.push_back(std::move(s));
    }
    return out;
}

// subscribers.static: a list of {user, prefix} and {user, mac}; no prefix or MAC twice.
std::vector<StaticSubscriber> ConfigParser::static_subscribers(const Entry& entry,
                                                               const std::string& path) const {
    if (entry.value.IsNull())
        return {};
    if (!entry.value.IsSequence())
        fail(mark_of(entry), path,
             "expected a list of {user, prefix} or {user, mac}, got " + kind_of(entry.value));
    if (entry.value.size() > config_limits::max_static_subscribers)
        fail(mark_of(entry), path,
             "at most " + std::to_string(config_limits::max_static_subscribers) + " static entries");
    std::vector<StaticSubscriber> out;
    std::set<Prefix> prefixes;
    std::set<std::string> macs;
    size_t i = 0;
    for (const YAML::Node& item : entry.value) {
        const std::string ip = path + "[" + std::to_string(i++) + "]";
        if (!item.IsMap())
            fail(item.Mark(), ip, "expected a map {user, prefix} or {user, mac}, got " + kind_of(item));
        StaticSubscriber s;
        bool have_user = false;
        walk_map(item, ip,
                 {{"user",
                   [&](const Entry& e, const std::string& p) {
                       s.user = scalar(e, p, "a user name");
                       std::string why;
                       if (!valid_user_name(s.user, &why))
                           fail(mark_of(e), p, "invalid user name " + quote(s.user) + ": " + why);
                       have_user = true;
                   }},
                  {"prefix",
                   [&](const Entry& e, const std::string& p) {
                       if (!s.mac.empty())
                           fail(mark_of(e), p, "an entry has a prefix or a mac, not both");
                       const std::string t =
                           scalar(e, p, "an address or prefix such as 198.18.1.2 or fd00:1::/64");
                       std::string why;
                       s.prefix = Prefix::parse(t, &why);
                       if (!s.prefix)
                           fail(mark_of(e), p, "invalid prefix " + quote(t) + ": " + why);
                       if (!prefixes.insert(*s.prefix).second)
                           fail(mark_of(e), p, "prefix " + quote(s.prefix->to_string()) + " listed twice");
                   }},
                  {"mac", [&](const Entry& e, const std::string& p) {
                       if (s.prefix)
                           fail(mark_of(e), p, "an entry has a prefix or a mac, not both");
                       const std::string t = scalar(e, p, "a MAC address such as 02:00:00:00:00:01");
                       const auto mac = normalize_mac(t);
                       if (!mac)
                           fail(mark_of(e), p,
                                "invalid MAC address " + quote(t) + " (expected aa:bb:cc:dd:ee:ff)");
                       if (!macs.insert(*mac).second)
                           fail(mark_of(e), p, "MAC " + quote(*mac) + " listed twice");
                       s.mac = *mac;
                   }}});
        if (!have_user)
            fail(item.Mark(), ip + ".user", "missing: every entry needs a user");
        if (!s.prefix && s.mac.empty())
            fail(item.Mark(), ip, "missing: every entry needs a prefix or a mac");
        out.push_back(std::move(s));
    }
    return out;
}

} // namespace nettally::config_yaml
