// history (GetHistory): the JSON shape and the table, one row per period and subject.
#include "format.h"

#include <algorithm>

namespace nettally::ctl {

Json history_json(std::string_view period, const std::vector<HistoryRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows) {
        list.push_back(Json{{"label", r.label},
                            {"start", time_json(r.start)},
                            {"end", time_json(r.end)},
                            {"totals", object_json(r.totals, counters_json)}});
    }
    return Json{{"history", Json{{"period", std::string(period)}, {"periods", std::move(list)}}}};
}

std::string history_text(const std::vector<HistoryRow>& rows) {
    const std::vector<Column> cols = {{"PERIOD"},  {"SUBJECT"}, right("PACKETS"), right("L2"),
                                      right("L3"), right("L4"), right("PAYLOAD")};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows)
        for (const auto& [subject, c] : r.totals) {
            std::vector<std::string> row = {r.label, subject};
            auto nums = counter_cells(c);
            row.insert(row.end(), nums.begin(), nums.end());
            cells.push_back(std::move(row));
        }
    return render_table(cols, cells);
}

} // namespace nettally::ctl
