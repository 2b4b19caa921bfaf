// The generic half of the config parser: walks a yaml-cpp tree and reads typed values, every
// problem a ConfigError "file:line:col: key.path: problem" pointing at the offending node. It knows
// no config keys; the section readers (core/config_parser.h) give it tables of keys and handlers.
// yaml-cpp only supplies the tree and node positions; types, ranges, unknown and duplicate keys are
// all checked here, and handlers run in file order, so the first problem in the file is reported.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally::config_yaml {

// One key of a map: its name, where the key is, and its value node.
struct Entry {
    std::string key;
    YAML::Mark key_mark;
    YAML::Node value;
};

// A known key and what reading it does; key_path is the dotted path shown in errors.
struct Field {
    std::string_view key;
    std::function<void(const Entry&, const std::string& key_path)> handle;
};

// Control characters as \\n, \\t, \\xNN, so a text stays on one line.
std::string escape_controls(std::string_view text);
// Values echoed back in one-line messages: control characters escaped, long values cut.
std::string escape(std::string_view text);
// escape() in single quotes.
std::string quote(std::string_view text);
// "a map", "a list", "the value 'x'" or "nothing".
std::string kind_of(const YAML::Node& node);
std::string join_list(const std::vector<std::string_view>& items);
// The largest whole unit: "2h", "90s", "1500ms".
std::string format_duration(std::chrono::milliseconds d);
bool is_digit(char c);

class YamlReader {
public:
    // source: the file name shown in errors ("<config>" when empty).
    explicit YamlReader(const std::string& source) : source_(source.empty() ? "<config>" : source) {}

    // Throws ConfigError at mark (yaml-cpp counts from 0; the message from 1).
    // The text's one YAML document (a null node when it is empty). Not YAML::LoadAll, whose
    // yaml-cpp 0.7 loops forever on some inputs; a second document is an error at its start.
    YAML::Node load_one_document(const std::string& text) const;
    [[noreturn]] void fail(const YAML::Mark& mark, const std::string& key_path,
                           const std::string& problem) const;
    // yaml-cpp gives an empty value ("key:" with nothing after it) the position of the next token,
    // often on a later line; the key is where the operator has to look.
    static YAML::Mark mark_of(const Entry& entry);
    // Checks every key of `map` (plain name, known, not repeated) and hands each entry to its
    // field's handler in file order.
    void walk_map(const YAML::Node& map, const std::string& path, const std::vector<Field>& fields) const;
    // A sub-map such as `flows:`. An empty one ("flows:" with every child commented out) means
    // "all defaults", not an error.
    void section(const Entry& entry, const std::string& path, const std::vector<Field>& fields) const;
    std::string scalar(const Entry& entry, const std::string& path, const std::string& expected) const;
    std::string one_of(const Entry& entry, const std::string& path, const std::string& what,
                       const std::vector<std::string_view>& valid) const;
    std::chrono::milliseconds duration(const Entry& entry, const std::string& path,
                                       std::chrono::milliseconds min, std::chrono::milliseconds max) const;
    uint32_t number(const Entry& entry, const std::string& path, uint32_t min, uint32_t max) const;
    // YAML 1.2 booleans only: YAML 1.1's yes/no/on/off are read differently by different tools.
    bool boolean(const Entry& entry, const std::string& path) const;
    // An absolute directory path other than "/".
    std::filesystem::path abs_dir(const Entry& entry, const std::string& path) const;

private:
    std::string source_;
};

} // namespace nettally::config_yaml
