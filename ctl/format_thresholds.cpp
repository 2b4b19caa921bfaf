// See format_thresholds.h.
#include "format_thresholds.h"

#include <algorithm>

namespace nettally::ctl {
namespace {

bool is_time_key(std::string_view k) {
    return k == "set_at" || k == "period_start" || k == "period_end" || k == "last_crossing" ||
           k == "updated_at" || k == "time";
}

Json value_json(std::string_view key, const StatusValue& v) {
    return std::visit(
        [&](const auto& x) -> Json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, Unsupported>)
                return Json{{"unsupported_type", x.signature}};
            else if constexpr (std::is_same_v<T, std::uint64_t>)
                return is_time_key(key) ? time_json(x) : Json(x);
            else
                return Json(x);
        },
        v);
}

std::string value_text(const StatusValue& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>)
                return x;
            else if constexpr (std::is_same_v<T, bool>)
                return x ? "yes" : "no";
            else if constexpr (std::is_same_v<T, std::uint64_t> || std::is_same_v<T, std::int64_t>)
                return std::to_string(x);
            else
                return "?";
        },
        v);
}

std::uint64_t num(const Dict& d, const std::string& k) {
    auto it = d.find(k);
    if (it == d.end())
        return 0;
    if (const auto* u = std::get_if<std::uint64_t>(&it->second))
        return *u;
    return 0;
}

std::string str(const Dict& d, const std::string& k) {
    auto it = d.find(k);
    return it == d.end() ? std::string() : value_text(it->second);
}

// Decimal units for thresholds (1 MB = 10^6, as the definitions are written).
std::string si_bytes(std::uint64_t b) {
    static const std::pair<const char*, std::uint64_t> kUnits[] = {
        {"TB", 1000000000000ull}, {"GB", 1000000000ull}, {"MB", 1000000ull}, {"kB", 1000ull}};
    for (const auto& [name, m] : kUnits)
        if (b >= m) {
            char buf[48];
            std::snprintf(buf, sizeof(buf), "%.1f %s", static_cast<double>(b) / static_cast<double>(m), name);
            return buf;
        }
    return std::to_string(b) + " B";
}

} // namespace

Json dict_json(const Dict& d) {
    return object_json(d, value_json);
}

Json thresholds_json(const std::vector<Dict>& rows) {
    Json a = Json::array();
    for (const auto& r : rows)
        a.push_back(dict_json(r));
    return Json{{"thresholds", a}};
}

Json usage_json(const std::vector<Dict>& rows) {
    Json a = Json::array();
    for (const auto& r : rows)
        a.push_back(dict_json(r));
    return Json{{"usage", a}};
}

std::string thresholds_text(const std::vector<Dict>& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        std::string period = str(r, "period");
        if (period == "rolling")
            period += " " + std::to_string(num(r, "window_s")) + "s";
        std::string action = str(r, "action");
        if (action == "throttle")
            action += " " + si_bytes(num(r, "action_rate")) + "/s";
        if (action != "notify")
            action += " on " + str(r, "action_on");
        cells.push_back({str(r, "name"), str(r, "source"), str(r, "subject_kind") + ":" + str(r, "subject"),
                         str(r, "direction"), str(r, "layer"), period, si_bytes(num(r, "step")),
                         num(r, "limit") ? si_bytes(num(r, "limit")) : "-", action});
    }
    return render_table({{"NAME"},
                         {"SOURCE"},
                         {"SUBJECT"},
                         {"DIR"},
                         {"LAYER"},
                         {"PERIOD"},
                         right("STEP"),
                         right("LIMIT"),
                         {"ACTION"}},
                        cells);
}

std::string usage_text(const std::vector<Dict>& rows) {
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        const std::uint64_t limit = num(r, "limit");
        std::string used = "-";
        if (limit) {
            char buf[32];
            std::snprintf(buf, sizeof(buf), "%.1f%%",
                          100.0 * static_cast<double>(num(r, "usage")) / static_cast<double>(limit));
            used = buf;
        }
        std::string action = str(r, "action");
        if (action != "notify")
            action += num(r, "action_active") || str(r, "action_active") == "yes" ? " (active)" : "";
        cells.push_back({str(r, "name"), str(r, "subject"), si_bytes(num(r, "usage")),
                         std::to_string(num(r, "step_index")), limit ? si_bytes(limit) : "-", used,
                         human_time(num(r, "period_end")), action});
    }
    return render_table({{"NAME"},
                         {"SUBJECT"},
                         right("USAGE"),
                         right("STEPS"),
                         right("LIMIT"),
                         right("USED"),
                         {"PERIOD END"},
                         {"ACTION"}},
                        cells);
}

std::string threshold_done_text(std::string_view sub, std::string_view name) {
    static const std::pair<std::string_view, std::string_view> kDone[] = {
        {"add", "added"}, {"modify", "modified"}, {"remove", "removed"}, {"reset", "period reset"}};
    for (const auto& [s, d] : kDone)
        if (s == sub)
            return "threshold " + std::string(name) + ": " + std::string(d) + "\n";
    return "";
}

Json threshold_done_json(std::string_view sub, std::string_view name) {
    return Json{{"threshold", std::string(name)}, {"done", std::string(sub)}};
}

std::string watch_json_line(const WatchEvent& e) {
    Json o = Json::object();
    o["signal"] = e.signal;
    for (const auto& [k, v] : e.args)
        o[k] = value_json(k, v);
    return o.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string watch_text_line(const WatchEvent& e) {
    std::string time = "-", rest;
    for (const auto& [k, v] : e.args) {
        if (k == "time") {
            if (const auto* u = std::get_if<std::uint64_t>(&v))
                time = human_time(*u);
            continue;
        }
        if (k == "name" || k == "subject" || k == "action" || k == "reason") {
            rest += " " + value_text(v);
            continue;
        }
        const auto* u = std::get_if<std::uint64_t>(&v);
        if (u && (k == "usage" || k == "limit"))
            rest += " " + k + "=" + si_bytes(*u);
        else if (u && (k == "rate_bps" || k == "limit_bps"))
            rest += " " + k + "=" + si_bytes(*u) + "/s";
        else if (!(k == "skipped" && u && *u == 0))
            rest += " " + k + "=" + value_text(v);
    }
    return time + " " + e.signal + rest + "\n";
}

} // namespace nettally::ctl
