// Threshold definitions: what a threshold watches and when it fires, as written in the config file
// (thresholds:), sent over D-Bus (AddThreshold's a{sv}) and kept in thresholds.json. parse_threshold
// checks every field of a FieldMap and builds a ThresholdDef; threshold_fields is its inverse. The
// engine that runs definitions is core/thresholds.h; flow-aggregate subjects are core/flow_filter.h.
//
// A threshold watches one subject (core/actions.h Subject) in one direction
// (sent | received | both) at one layer (l2 | l3 | l4 | payload) over a period:
//   day, month  calendar periods in the configured time zone and month_start_day
//               (the History period rules, core/history.h); usage restarts at 0
//               when the period rolls over;
//   rolling     the last window_s seconds, so usage drops as old traffic leaves the window;
//   since       from the moment the threshold was set (or reset) on, never rolls.
// Sizes ("1GB", "5MiB") and durations ("90s", "800ms") use the core/units.h syntax.
#pragma once

#include "core/actions.h"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

namespace nettally {

// A rejected definition or request; what() is one line naming the key.
class ThresholdError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// The messages of ThresholdError, shared by the parsers of definitions and flow filters.
namespace threshold_errors {
// Throws ThresholdError "key: problem".
[[noreturn]] void fail(const std::string& key, const std::string& problem);
// text in single quotes, as messages name a value.
std::string quote(std::string_view text);
} // namespace threshold_errors

enum class UsageDirection { Sent, Received, Both };
enum class UsageLayer { L2, L3, L4, Payload };
enum class ThresholdPeriod { Day, Month, Rolling, Since };
enum class ActionTrigger { Limit, Burst, Any };

std::string_view to_string(UsageDirection d);
std::string_view to_string(UsageLayer l);
std::string_view to_string(ThresholdPeriod p);
std::string_view to_string(ActionTrigger t);
// "host:198.18.1.2", "interface:lan0", "cgroup:/system.slice/x.service", "flow:proto=tcp,dport=443"
std::string subject_text(const Subject& s);

struct ThresholdDef {
    std::string name;
    Subject subject;
    UsageDirection direction = UsageDirection::Both;
    UsageLayer layer = UsageLayer::L3;
    ThresholdPeriod period = ThresholdPeriod::Month;
    uint64_t window_s = 0;        // rolling only
    uint64_t step = 0;            // bytes, > 0
    uint64_t limit = 0;           // bytes, 0 = none
    uint64_t min_interval_ms = 0; // 0 = no burst alert
    uint64_t rate_bps = 0;        // bytes per second, 0 = no rate alert
    uint64_t rate_window_s = 10;
    ActionKind action = ActionKind::Notify;
    uint64_t action_rate = 0; // bytes per second, throttle only
    ActionTrigger action_on = ActionTrigger::Limit;
    bool operator==(const ThresholdDef&) const = default;
};

// A definition's fields as they arrive (D-Bus a{sv}, config YAML): a number or a text.
using FieldValue = std::variant<uint64_t, int64_t, std::string>;
using FieldMap = std::map<std::string, FieldValue>;

inline constexpr const char* kThresholdKeys =
    "name, subject_kind, subject, direction, layer, period, window_s, step, limit, min_interval_ms, "
    "rate_bps, rate_window_s, action, action_rate, action_on";

// Builds a definition from fields, every value checked (unknown keys, missing step, zero or
// negative numbers, step > limit, bad rate...). `base`: the definition being modified (only
// the given fields change), or nullptr for a new one. Throws ThresholdError naming the key.
ThresholdDef parse_threshold(const FieldMap& fields, const ThresholdDef* base = nullptr);
// The definition as fields (numbers as uint64, enums as their names), the inverse of parse.
FieldMap threshold_fields(const ThresholdDef& def);
// The text of a field; ThresholdError "key: expected a text value" for a number.
std::string field_text(const std::string& key, const FieldValue& v);

// FieldMaps in thresholds.json: numbers stay numbers (unsigned or signed), texts stay texts.
nlohmann::json fields_to_json(const FieldMap& fields);
FieldMap fields_from_json(const nlohmann::json& j);

} // namespace nettally
