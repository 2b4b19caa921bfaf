// The interfaces and cgroups.subtrees sections of the config file. See config_parser.h.
#include "core/config_parser.h"

#include <fnmatch.h>
#include <net/if.h>

#include <algorithm>
#include <utility>

namespace nettally {
namespace config_yaml {

namespace {

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

} // namespace

bool glob_matches(const std::string& pattern, const std::string& name) {
    return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

void ConfigParser::parse_interfaces(const Entry& entry, const std::string& path, Config& config) const {
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

InterfaceRule ConfigParser::parse_rule(const YAML::Node& item, const std::string& path,
                                       YAML::Mark& name_mark) const {
    if (!item.IsMap())
        fail(item.Mark(), path, "expected a map with name, role and mode, got " + kind_of(item));
    InterfaceRule rule;
    rule.line = item.Mark().line + 1;
    bool have_name = false;
    bool have_role = false;
    walk_map(
        item, path,
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
                 rule.mode = one_of(e, p, "mode", {"tc", "xdp"}) == "xdp" ? AttachMode::Xdp : AttachMode::Tc;
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

std::string ConfigParser::interface_name(const Entry& entry, const std::string& path) const {
    const std::string name = scalar(entry, path, "an interface name or glob");
    if (name.empty())
        fail(mark_of(entry), path, "must not be empty");
    // What the kernel's dev_valid_name() refuses can never match a real interface.
    for (const char ch : name) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '/' || c == ':' || c == ' ' || c < 0x20 || c == 0x7f)
            fail(mark_of(entry), path,
                 quote(name) + " is not a valid interface name (no '/', ':', spaces or control characters)");
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
std::vector<std::string> ConfigParser::cgroup_subtrees(const Entry& entry, const std::string& path) const {
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
            fail(item.Mark(), item_path,
                 "expected a cgroup path such as /system.slice, got " + kind_of(item));
        const std::string text = item.Scalar();
        if (text.empty() || text[0] != '/')
            fail(item.Mark(), item_path,
                 quote(text) + " is not an absolute cgroup path (start it with '/', e.g. /system.slice)");
        size_t depth = 0;
        for (size_t i = 1; i < text.size();) {
            const size_t slash = text.find('/', i);
            const std::string part =
                text.substr(i, slash == std::string::npos ? std::string::npos : slash - i);
            if (part.empty() || part == "." || part == ".." || slash == text.size() - 1)
                fail(item.Mark(), item_path,
                     quote(text) +
                         " is not a normalized cgroup path (no empty, '.' or '..' components and no "
                         "trailing '/')");
            if (part.size() > 255)
                fail(item.Mark(), item_path,
                     "a component of " + quote(text) + " is longer than 255 characters");
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
                return root == "/" || p == root ||
                       (p.size() > root.size() && p.compare(0, root.size(), root) == 0 &&
                        p[root.size()] == '/');
            };
            if (prev == text)
                fail(item.Mark(), item_path,
                     "duplicate subtree " + quote(text) + " (already listed as " + where + ")");
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
void ConfigParser::check_reachable(const std::vector<InterfaceRule>& earlier, const InterfaceRule& rule,
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

} // namespace config_yaml

bool interface_is_glob(std::string_view name) {
    return name.find_first_of("*?[") != std::string_view::npos;
}

const InterfaceRule* match_interface(const Config& config, std::string_view ifname) {
    // An embedded NUL would let fnmatch() see only a prefix of the name.
    if (ifname.find('\0') != std::string_view::npos)
        return nullptr;
    const std::string name(ifname);
    for (const InterfaceRule& rule : config.interfaces) {
        const bool matches =
            interface_is_glob(rule.name) ? config_yaml::glob_matches(rule.name, name) : rule.name == name;
        if (matches)
            return &rule;
    }
    return nullptr;
}

} // namespace nettally
