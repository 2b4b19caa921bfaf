// The YAML walker and typed getters of the config parser. See config_yaml.h.
#include "core/config_yaml.h"

#include "core/config.h"
#include "core/units.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <sstream>
#include <utility>

namespace nettally {

namespace {

std::string format_message(const std::string& source, int line, int column, const std::string& key_path,
                           const std::string& problem) {
    std::string msg = source;
    if (line > 0)
        msg += ":" + std::to_string(line) + ":" + std::to_string(column);
    msg += ": ";
    if (!key_path.empty())
        msg += key_path + ": ";
    msg += problem;
    // Every part is escaped, not only the values: yaml-cpp's own messages quote the offending
    // character raw ("unknown escape character: " and a CR from a CRLF file), and the message
    // must stay one line.
    return config_yaml::escape_controls(msg);
}

// Records where each YAML document's first node is, and nothing else (parse_document).
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
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
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

} // namespace

ConfigError::ConfigError(std::string source, int line, int column, std::string key_path, std::string problem)
    : std::runtime_error(format_message(source, line, column, key_path, problem)), source_(std::move(source)),
      line_(line), column_(column), key_path_(std::move(key_path)), problem_(std::move(problem)) {}

namespace config_yaml {

namespace {

std::string join_path(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
}

} // namespace

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

void YamlReader::fail(const YAML::Mark& mark, const std::string& key_path, const std::string& problem) const {
    // yaml-cpp counts from 0; editors and compilers count from 1.
    const int line = mark.line >= 0 ? mark.line + 1 : 1;
    const int column = mark.column >= 0 ? mark.column + 1 : 1;
    throw ConfigError(source_, line, column, key_path, problem);
}

// yaml-cpp gives an empty value ("key:" with nothing after it) the position of the next token,
// often on a later line; the key is where the operator has to look.
YAML::Mark YamlReader::mark_of(const Entry& entry) {
    if (entry.value.IsNull() || entry.value.Mark().is_null())
        return entry.key_mark;
    return entry.value.Mark();
}

// Checks every key of `map` (plain name, known, not repeated) and hands each entry to its
// field's handler in file order.
void YamlReader::walk_map(const YAML::Node& map, const std::string& path,
                          const std::vector<Field>& fields) const {
    std::vector<Entry> seen;
    // By value: yaml-cpp's iterator->first lives in a proxy that dies with the expression.
    for (const auto& pair : map) {
        const YAML::Node key = pair.first;
        if (!key.IsScalar())
            fail(key.Mark(), path.empty() ? "document" : path,
                 "keys must be plain names, got " + kind_of(key) + " as a key");
        Entry entry{key.Scalar(), key.Mark(), pair.second};
        const std::string key_path = join_path(path, escape(entry.key));
        const auto field =
            std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == entry.key; });
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
void YamlReader::section(const Entry& entry, const std::string& path,
                         const std::vector<Field>& fields) const {
    if (entry.value.IsNull())
        return;
    if (!entry.value.IsMap())
        fail(mark_of(entry), path, "expected a map, got " + kind_of(entry.value));
    walk_map(entry.value, path, fields);
}

std::string YamlReader::scalar(const Entry& entry, const std::string& path,
                               const std::string& expected) const {
    if (entry.value.IsNull())
        fail(entry.key_mark, path, "missing value (expected " + expected + ")");
    if (!entry.value.IsScalar())
        fail(mark_of(entry), path, "expected " + expected + ", got " + kind_of(entry.value));
    return entry.value.Scalar();
}

std::string YamlReader::one_of(const Entry& entry, const std::string& path, const std::string& what,
                               const std::vector<std::string_view>& valid) const {
    const std::string text = scalar(entry, path, "one of " + join_list(valid));
    if (std::find(valid.begin(), valid.end(), text) == valid.end())
        fail(mark_of(entry), path,
             "unknown " + what + " " + quote(text) + " (valid: " + join_list(valid) + ")");
    return text;
}

std::chrono::milliseconds YamlReader::duration(const Entry& entry, const std::string& path,
                                               std::chrono::milliseconds min,
                                               std::chrono::milliseconds max) const {
    const std::string text = scalar(entry, path, "a duration such as 1s");
    const auto parsed = parse_duration(text);
    if (!parsed)
        fail(mark_of(entry), path,
             "invalid duration " + quote(text) + " (use a number with ms, s, m, h or d, e.g. 500ms, 1s, 5m)");
    if (*parsed < min || *parsed > max)
        fail(mark_of(entry), path,
             "duration " + quote(text) + " is out of range (" + format_duration(min) + " .. " +
                 format_duration(max) + ")");
    return *parsed;
}

uint32_t YamlReader::number(const Entry& entry, const std::string& path, uint32_t min, uint32_t max) const {
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
bool YamlReader::boolean(const Entry& entry, const std::string& path) const {
    const std::string text = scalar(entry, path, "true or false");
    if (text == "true" || text == "True" || text == "TRUE")
        return true;
    if (text == "false" || text == "False" || text == "FALSE")
        return false;
    fail(mark_of(entry), path, "expected true or false, got " + quote(text));
}

std::filesystem::path YamlReader::abs_dir(const Entry& entry, const std::string& path) const {
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

// One YAML document, or a null node for an empty text.
YAML::Node YamlReader::load_one_document(const std::string& text) const {
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
    return starts.marks.empty() ? YAML::Node() : YAML::Load(text);
}

} // namespace config_yaml
} // namespace nettally
