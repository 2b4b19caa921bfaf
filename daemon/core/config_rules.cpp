// The rules section of the config file (traffic classes: the bundle loaded at start, the keys that
// sign bundles, where bundles are pulled from). See config_parser.h.
#include "core/config_parser.h"

#include "core/units.h"

#include <algorithm>
#include <set>

namespace nettally::config_yaml {

namespace {

std::filesystem::path abs_file(const YamlReader& y, const Entry& e, const std::string& p) {
    const std::string t = y.scalar(e, p, "an absolute file path");
    if (t.empty() || t[0] != '/' || t.back() == '/')
        y.fail(YamlReader::mark_of(e), p, "must be an absolute file path, got " + quote(t));
    return std::filesystem::path(t).lexically_normal();
}

// rules.url: http(s)://HOST[:PORT]/PATH, printable, no spaces.
std::string rules_url(const YamlReader& y, const Entry& e, const std::string& p) {
    const std::string t = y.scalar(e, p, "a URL such as https://rules.example.net/nettally.bundle");
    const auto printable = std::all_of(t.begin(), t.end(), [](char c) { return c > ' ' && c < 0x7f; });
    std::string rest;
    if (t.rfind("https://", 0) == 0)
        rest = t.substr(8);
    else if (t.rfind("http://", 0) == 0)
        rest = t.substr(7);
    else
        y.fail(YamlReader::mark_of(e), p,
               "invalid URL " + quote(t) + ": the scheme must be https:// or http://");
    if (!printable || rest.empty() || rest[0] == '/')
        y.fail(YamlReader::mark_of(e), p,
               "invalid URL " + quote(t) +
                   ": expected a host after the scheme and no spaces or control characters");
    return t;
}

} // namespace

void ConfigParser::parse_rules(const Entry& entry, const std::string& path, RulesConfig& rc) const {
    rc.section = true;
    section(entry, path,
            {{"max_host_classes",
              [&](const Entry& e, const std::string& p) {
                  rc.max_host_classes =
                      number(e, p, config_limits::min_host_classes, config_limits::max_host_classes);
              }},
             {"bundle", [&](const Entry& e, const std::string& p) { rc.bundle = abs_file(*this, e, p); }},
             {"trusted_keys",
              [&](const Entry& e, const std::string& p) { rc.trusted_keys = trusted_keys(e, p); }},
             {"url", [&](const Entry& e, const std::string& p) { rc.url = rules_url(*this, e, p); }},
             {"refresh",
              [&](const Entry& e, const std::string& p) {
                  rc.refresh =
                      duration(e, p, config_limits::min_rules_refresh, config_limits::max_rules_refresh);
              }},
             {"ca_file", [&](const Entry& e, const std::string& p) { rc.ca_file = abs_file(*this, e, p); }},
             {"max_size", [&](const Entry& e, const std::string& p) {
                  const std::string t = scalar(e, p, "a size such as 16MiB");
                  const auto v = parse_size(t);
                  if (!v || *v < config_limits::min_rules_size || *v > config_limits::max_rules_size)
                      fail(mark_of(e), p, "invalid size " + quote(t) + " (1KiB .. 64MiB: 16MiB, 4M, 500kB)");
                  rc.max_size = *v;
              }}});
}

// rules.trusted_keys: a list of absolute paths of Ed25519 public key files, none twice. The keys
// are read when a bundle is checked (core/classes_sign.h).
std::vector<std::filesystem::path> ConfigParser::trusted_keys(const Entry& entry,
                                                              const std::string& path) const {
    if (!entry.value.IsSequence())
        fail(mark_of(entry), path, "expected a list of key file paths, got " + kind_of(entry.value));
    if (entry.value.size() > config_limits::max_trusted_keys)
        fail(mark_of(entry), path, "at most " + std::to_string(config_limits::max_trusted_keys) + " keys");
    std::vector<std::filesystem::path> out;
    std::set<std::filesystem::path> seen;
    size_t i = 0;
    for (const YAML::Node& item : entry.value) {
        const std::string ip = path + "[" + std::to_string(i++) + "]";
        if (!item.IsScalar())
            fail(item.Mark(), ip, "expected an absolute file path, got " + kind_of(item));
        const Entry e{"", item.Mark(), item};
        auto f = abs_file(*this, e, ip);
        if (!seen.insert(f).second)
            fail(item.Mark(), ip, "key file " + quote(f.string()) + " listed twice");
        out.push_back(std::move(f));
    }
    return out;
}

} // namespace nettally::config_yaml
