// The export section of the config file (IPFIX flow export). See config_parser.h.
#include "core/config_parser.h"

#include <set>

namespace nettally::config_yaml {

void ConfigParser::parse_export(const Entry& entry, const std::string& path, ExportConfig& ex) const {
    using std::chrono::milliseconds;
    namespace lim = export_limits;
    // Handlers that store one value: a duration or a whole number in a range.
    const auto dur = [this](milliseconds& out, milliseconds min, milliseconds max) {
        return
            [this, &out, min, max](const Entry& e, const std::string& p) { out = duration(e, p, min, max); };
    };
    const auto num = [this](uint32_t& out, uint32_t min, uint32_t max) {
        return [this, &out, min, max](const Entry& e, const std::string& p) { out = number(e, p, min, max); };
    };
    section(
        entry, path,
        {{"collectors",
          [&](const Entry& e, const std::string& p) { ex.collectors = export_collectors(e, p); }},
         {"observation_domain", num(ex.observation_domain, 0, 4294967295u)},
         {"active_timeout", dur(ex.active_timeout, lim::min_active_timeout, lim::max_active_timeout)},
         {"template_refresh", dur(ex.template_refresh, lim::min_template_refresh, lim::max_template_refresh)},
         {"template_messages", num(ex.template_messages, 0, 1000000)},
         {"max_message_size",
          [&](const Entry& e, const std::string& p) { ex.max_message_size = message_size(e, p); }},
         {"buffer_max", num(ex.buffer_max, 1, 100000000)},
         {"enterprise", num(ex.enterprise, 1, 4294967295u)}});
}

// export.max_message_size: the templates (with the NAT one, userName and the class elements) and the
// largest record must fit in one message, whatever subscribers: says and whether a ruleset comes
// into force.
uint32_t ConfigParser::message_size(const Entry& e, const std::string& p) const {
    const auto min = static_cast<uint32_t>(ipfix::min_message_size(true, true, true));
    const std::string t = scalar(e, p, "a message size in bytes");
    if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 6 ||
        std::stoul(t) < min || std::stoul(t) > 65535)
        fail(mark_of(e), p,
             "invalid message size " + quote(t) + " (" + std::to_string(min) +
                 " .. 65535 bytes: the templates, with the NAT one, userName and the class elements, and the "
                 "largest record, an IPv6 flow of " +
                 std::to_string(ipfix::flow_record_size(true, false, true) + 1 + ipfix::kMaxUserName) +
                 " bytes with the longest user name, must fit in one message)");
    return static_cast<uint32_t>(std::stoul(t));
}

// export.collectors: a list of {url: udp://ADDRESS:PORT | tcp://ADDRESS:PORT}, none twice.
std::vector<std::string> ConfigParser::export_collectors(const Entry& entry, const std::string& path) const {
    if (!entry.value.IsSequence())
        fail(mark_of(entry), path, "expected a list of {url: ...}, got " + kind_of(entry.value));
    if (entry.value.size() > export_limits::max_collectors)
        fail(mark_of(entry), path,
             "at most " + std::to_string(export_limits::max_collectors) + " collectors");
    std::vector<std::string> urls;
    std::set<std::string> seen;
    size_t i = 0;
    for (const YAML::Node& item : entry.value) {
        const std::string ip = path + "[" + std::to_string(i++) + "]";
        if (!item.IsMap())
            fail(item.Mark(), ip, "expected a map with a url, got " + kind_of(item));
        std::string url;
        walk_map(item, ip, {{"url", [&](const Entry& e, const std::string& p) {
                                 const std::string t = scalar(e, p, "a URL such as udp://198.18.2.2:4739");
                                 std::string why;
                                 const auto u = parse_collector_url(t, &why);
                                 if (!u)
                                     fail(mark_of(e), p, "invalid collector URL " + quote(t) + ": " + why);
                                 if (!seen.insert(u->text).second)
                                     fail(mark_of(e), p, "collector " + quote(u->text) + " listed twice");
                                 url = u->text;
                             }}});
        if (url.empty())
            fail(item.Mark(), ip + ".url", "missing: every collector needs a url");
        urls.push_back(url);
    }
    return urls;
}

} // namespace nettally::config_yaml
