// The subscribers section of the config file (static bindings). See config_parser.h.
#include "core/config_parser.h"

#include "core/units.h"

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
             {"dhcp", [&](const Entry& e, const std::string& p) { sc.dhcp = lease_sources(e, p); }},
             {"radius", [&](const Entry& e, const std::string& p) { sc.radius = radius(e, p); }}});
}

// subscribers.radius: {listen: ADDRESS:PORT, clients: [...]}; both needed.
RadiusConfig ConfigParser::radius(const Entry& entry, const std::string& path) const {
    RadiusConfig rc;
    if (entry.value.IsNull())
        return rc;
    bool have_clients = false;
    section(entry, path,
            {{"listen",
              [&](const Entry& e, const std::string& p) {
                  const std::string t = scalar(e, p, "an address and port such as 198.18.0.1:1813");
                  std::string why;
                  const auto hp = parse_host_port(t, &why);
                  if (!hp)
                      fail(mark_of(e), p, "invalid listen address " + quote(t) + ": " + why);
                  rc.listen = hp->text();
              }},
             {"clients", [&](const Entry& e, const std::string& p) {
                  rc.clients = radius_clients(e, p);
                  have_clients = true;
              }}});
    if (rc.listen.empty())
        fail(mark_of(entry), path + ".listen",
             "missing: the address and port to listen on (e.g. 198.18.0.1:1813)");
    if (!have_clients || rc.clients.empty())
        fail(mark_of(entry), path + ".clients", "missing: at least one client {address, secret_file}");
    return rc;
}

std::vector<RadiusClient> ConfigParser::radius_clients(const Entry& entry, const std::string& path) const {
    if (!entry.value.IsSequence())
        fail(mark_of(entry), path,
             "expected a list of {address, secret_file} or {address, secret_credential}, got " +
                 kind_of(entry.value));
    if (entry.value.size() > config_limits::max_radius_clients)
        fail(mark_of(entry), path,
             "at most " + std::to_string(config_limits::max_radius_clients) + " RADIUS clients");
    std::vector<RadiusClient> out;
    std::set<Prefix> seen;
    size_t i = 0;
    for (const YAML::Node& item : entry.value) {
        const std::string ip = path + "[" + std::to_string(i++) + "]";
        RadiusClient c = radius_client(item, ip);
        if (!seen.insert(c.address).second)
            fail(item.Mark(), ip + ".address", "client " + quote(c.address.to_string()) + " listed twice");
        out.push_back(std::move(c));
    }
    return out;
}

// One client: {address: PREFIX, secret_file: PATH} or {address, secret_credential: NAME}. The
// secret is never in the config file itself (it would be in every backup and diff of it).
RadiusClient ConfigParser::radius_client(const YAML::Node& item, const std::string& ip) const {
    if (!item.IsMap())
        fail(item.Mark(), ip, "expected a map {address, secret_file}, got " + kind_of(item));
    RadiusClient c;
    bool have_address = false;
    walk_map(item, ip,
             {{"address",
               [&](const Entry& e, const std::string& p) {
                   const std::string t = scalar(e, p, "a NAS address or prefix such as 198.18.0.1");
                   std::string why;
                   const auto pf = Prefix::parse(t, &why);
                   if (!pf)
                       fail(mark_of(e), p, "invalid address " + quote(t) + ": " + why);
                   c.address = *pf;
                   have_address = true;
               }},
              {"secret_file",
               [&](const Entry& e, const std::string& p) {
                   const std::string t = scalar(e, p, "an absolute file path");
                   if (t.empty() || t[0] != '/')
                       fail(mark_of(e), p, "must be an absolute file path, got " + quote(t));
                   if (!c.secret_credential.empty())
                       fail(mark_of(e), p, "set secret_file or secret_credential, not both");
                   c.secret_file = t;
               }},
              {"secret_credential", [&](const Entry& e, const std::string& p) {
                   const std::string t = scalar(e, p, "a systemd credential name");
                   if (t.empty() || t == "." || t == ".." || t.find('/') != std::string::npos)
                       fail(mark_of(e), p, "invalid credential name " + quote(t) + " (a file name, no '/')");
                   if (!c.secret_file.empty())
                       fail(mark_of(e), p, "set secret_file or secret_credential, not both");
                   c.secret_credential = t;
               }}});
    if (!have_address)
        fail(item.Mark(), ip + ".address", "missing: the NAS address or prefix");
    if (c.secret_file.empty() && c.secret_credential.empty())
        fail(item.Mark(), ip, "missing: secret_file or secret_credential (the shared secret)");
    return c;
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
