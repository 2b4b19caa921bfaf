// The org.nettally.Accounting1.Records and .Upload commands: records status|set|reset|rotate|
// spool and upload status|spool|now|set-target|clear-target. The upload password is read from
// stdin or a file, never from the command line (argv is visible to every user in /proc).
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "proxies.h"

#include <fstream>
#include <iostream>
#include <sstream>

namespace nettally::ctl {
namespace {

std::string strip_newline(std::string s) {
    if (!s.empty() && s.back() == '\n')
        s.pop_back();
    if (!s.empty() && s.back() == '\r')
        s.pop_back();
    return s;
}

std::string settings_output(RecordsProxy& proxy, bool json) {
    const Dict settings = from_wire(proxy.GetSettings());
    return json ? dump(records_settings_json(settings)) : settings_text(settings);
}

} // namespace

int run_records(const Options& opt) {
    const RecordsArgs& r = opt.records;
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        RecordsProxy proxy(connection);
        if (r.sub == "set" || r.sub == "reset") {
            std::map<std::string, sdbus::Variant> settings;
            for (const auto& [key, value] : r.settings)
                settings[key] = to_variant(value);
            if (r.sub == "reset")
                settings["reset"] = sdbus::Variant(true);
            proxy.SetSettings(settings);
        }
        if (r.sub == "rotate") {
            const auto names = proxy.Rotate();
            return opt.json ? dump(rotated_json(names)) : rotated_text(names);
        }
        if (r.sub == "spool") {
            const auto files = from_wire(proxy.ListSpool());
            return opt.json ? dump(record_spool_json(files)) : record_spool_text(files);
        }
        return settings_output(proxy, opt.json);
    });
}

int run_upload(const Options& opt) {
    const UploadArgs& u = opt.upload;
    std::string password;
    if (u.password_stdin) {
        std::getline(std::cin, password);
        password = strip_newline(password);
    } else if (!u.password_file.empty()) {
        std::ifstream in(u.password_file, std::ios::binary);
        if (!in)
            return report_usage_error("cannot read --password-file " + u.password_file);
        std::stringstream ss;
        ss << in.rdbuf();
        password = strip_newline(ss.str());
    }
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        UploadProxy proxy(connection);
        if (u.sub == "status") {
            const Dict status = from_wire(proxy.GetUploadStatus());
            return opt.json ? dump(upload_status_json(status)) : settings_text(status);
        }
        if (u.sub == "spool") {
            const auto files = from_wire(proxy.ListSpool());
            return opt.json ? dump(upload_spool_json(files)) : upload_spool_text(files);
        }
        if (u.sub == "now") {
            proxy.UploadNow();
            return upload_now_output(opt.json);
        }
        const std::string url = u.sub == "clear-target" ? "" : u.url;
        proxy.SetTarget(url, u.user, password);
        return target_output(url, opt.json);
    });
}

} // namespace nettally::ctl
