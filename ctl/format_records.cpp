// records and upload (org.nettally.Accounting1.Records and .Upload): settings and status as
// "key: value" lines or one JSON object, the two spools, and the one-line answers.
#include "format.h"

namespace nettally::ctl {
namespace {

Json dict_object(const Dict& d) {
    return object_json(d, status_value_json);
}

} // namespace

Json records_settings_json(const Dict& d) {
    return Json{{"records", dict_object(d)}};
}

Json upload_status_json(const Dict& d) {
    return Json{{"upload", dict_object(d)}};
}

std::string settings_text(const Dict& d) {
    std::string out;
    const Json j = dict_object(d);
    for (const auto& [key, v] : j.items()) {
        std::string text = v.is_string() ? v.get<std::string>() : (v.is_null() ? "" : v.dump());
        out += key + ": " + (text.empty() ? "-" : text) + "\n";
    }
    return out;
}

Json rotated_json(const std::vector<std::string>& names) {
    return Json{{"closed", names}};
}

std::string rotated_text(const std::vector<std::string>& names) {
    if (names.empty())
        return "no file was open\n";
    std::string out;
    for (const auto& n : names)
        out += n + "\n";
    return out;
}

Json record_spool_json(const std::vector<RecordFile>& files) {
    Json list = Json::array();
    for (const auto& f : files)
        list.push_back(
            Json{{"name", f.name}, {"size", f.size}, {"type", f.type}, {"created", time_json(f.created)}});
    return Json{{"spool", std::move(list)}};
}

std::string record_spool_text(const std::vector<RecordFile>& files) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : files)
        rows.push_back({f.name, std::to_string(f.size), f.type, human_time(f.created)});
    return render_table({{"NAME"}, right("BYTES"), {"TYPE"}, {"CREATED"}}, rows);
}

Json upload_spool_json(const std::vector<UploadFile>& files) {
    Json list = Json::array();
    for (const auto& f : files)
        list.push_back(Json{{"name", f.name},
                            {"size", f.size},
                            {"mtime", time_json(f.mtime)},
                            {"state", f.state},
                            {"attempts", f.attempts},
                            {"last_error", f.last_error}});
    return Json{{"spool", std::move(list)}};
}

std::string upload_spool_text(const std::vector<UploadFile>& files) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : files)
        rows.push_back({f.name, std::to_string(f.size), human_time(f.mtime), f.state,
                        std::to_string(f.attempts), f.last_error.empty() ? "-" : f.last_error});
    return render_table(
        {{"NAME"}, right("BYTES"), {"MODIFIED"}, {"STATE"}, right("ATTEMPTS"), {"LAST ERROR"}}, rows);
}

std::string upload_now_output(bool json) {
    return json ? "{\"upload_now\": true}\n" : "upload started\n";
}

std::string target_output(const std::string& url, bool json) {
    if (json)
        return Json{{"target", url}}.dump() + "\n";
    return url.empty() ? "target cleared: the config's upload target applies\n" : "target set: " + url + "\n";
}

} // namespace nettally::ctl
