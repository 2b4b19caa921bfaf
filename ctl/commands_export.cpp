// The org.nettally.Accounting1.Export commands: export status|set|clear.
#include "commands.h"

#include "bus.h"
#include "format.h"
#include "proxies.h"

namespace nettally::ctl {
namespace {

using Row = sdbus::Struct<std::string, std::string, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                          uint64_t, uint64_t, std::string>;

Json status_json(const std::string& source, const std::vector<Row>& rows) {
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"url", r.get<0>()},
                            {"state", r.get<1>()},
                            {"records", r.get<2>()},
                            {"messages", r.get<3>()},
                            {"bytes", r.get<4>()},
                            {"send_errors", r.get<5>()},
                            {"dropped", r.get<6>()},
                            {"buffered", r.get<7>()},
                            {"last_template_at", time_json(r.get<8>())},
                            {"last_error", r.get<9>()}});
    return Json{{"export", Json{{"source", source}, {"collectors", list}}}};
}

std::string status_text(const std::string& source, const std::vector<Row>& rows) {
    std::vector<std::vector<std::string>> table;
    for (const auto& r : rows)
        table.push_back({r.get<0>(), r.get<1>(), std::to_string(r.get<2>()), std::to_string(r.get<3>()),
                         std::to_string(r.get<4>()), std::to_string(r.get<5>()), std::to_string(r.get<6>()),
                         std::to_string(r.get<7>()), human_time(r.get<8>()),
                         r.get<9>().empty() ? "-" : r.get<9>()});
    // URL and STATE, six counts (right-aligned), the last template time and error.
    std::vector<Column> columns{{"URL"}, {"STATE"}};
    for (const char* h : {"RECORDS", "MESSAGES", "BYTES", "ERRORS", "DROPPED", "BUFFERED"})
        columns.push_back({h, Align::Right});
    columns.insert(columns.end(), {{"LAST TEMPLATE"}, {"LAST ERROR"}});
    return "collectors from: " + source + "\n" + render_table(columns, table);
}

} // namespace

int run_export(const Options& opt) {
    const ExportArgs& a = opt.exports;
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        ExportProxy proxy(connection);
        if (a.sub == "status") {
            const auto [source, rows] = proxy.GetExportStatus();
            return opt.json ? dump(status_json(source, rows)) : status_text(source, rows);
        }
        const std::vector<std::string> urls = a.sub == "clear" ? std::vector<std::string>{} : a.urls;
        proxy.SetCollectors(urls);
        if (opt.json)
            return dump(Json{{"collectors", urls}});
        return urls.empty() ? std::string("collectors cleared: the config's export.collectors apply\n")
                            : "collectors set: " + std::to_string(urls.size()) + "\n";
    });
}

} // namespace nettally::ctl
