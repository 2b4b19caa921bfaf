// See upload_cmd.h.
#include "upload_cmd.h"

#include "bus.h"
#include "format.h"
#include "upload1_proxy.h"

#include <sdbus-c++/sdbus-c++.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

namespace nettally::ctl {
namespace {

constexpr const char* kBusName = "org.nettally.Accounting1";
constexpr const char* kObjectPath = "/org/nettally/Accounting1";

class UploadProxy final : public sdbus::ProxyInterfaces<org::nettally::Accounting1::Upload_proxy> {
public:
    explicit UploadProxy(sdbus::IConnection& c) : ProxyInterfaces(c, kBusName, kObjectPath) { registerProxy(); }
    ~UploadProxy() { unregisterProxy(); }

private:
    void onUploadSucceeded(const std::string&, const std::string&, const uint64_t&) override {}
    void onUploadFailed(const std::string&, const std::string&, const std::string&, const uint32_t&,
                        const uint64_t&) override {}
    void onSpoolDropped(const std::vector<std::string>&, const uint64_t&, const std::string&) override {}
};

struct UploadOptions {
    std::string sub;
    bool json = false;
    double timeout = kDefaultTimeoutSec;
    std::string url;
    bool url_given = false;
    std::string user;
    bool password_stdin = false;
    std::string password_file;
};

Json value_json(const std::string& key, const sdbus::Variant& v) {
    const std::string sig = v.peekValueType();
    if (sig == "b")
        return v.get<bool>();
    if (sig == "u")
        return v.get<uint32_t>();
    if (sig == "t") {
        const uint64_t n = v.get<uint64_t>();
        if (key.size() > 3 && key.substr(key.size() - 3) == "_at")
            return time_json(n);
        return n;
    }
    if (sig == "s")
        return v.get<std::string>();
    return nullptr;
}

std::string value_text(const Json& j) {
    if (j.is_string())
        return j.get<std::string>().empty() ? "-" : j.get<std::string>();
    if (j.is_null())
        return "-";
    return j.dump();
}

std::string strip_newline(std::string s) {
    if (!s.empty() && s.back() == '\n')
        s.pop_back();
    if (!s.empty() && s.back() == '\r')
        s.pop_back();
    return s;
}

int usage(const std::string& msg) {
    std::cerr << "nettallyctl: " << msg << "\nTry 'nettallyctl --help' for more information.\n";
    return kExitUsage;
}

} // namespace

int upload_main(const std::vector<std::string_view>& args) {
    UploadOptions o;
    bool seen_upload = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string_view a = args[i];
        auto value = [&](std::string_view name) -> std::optional<std::string> {
            if (a == name) {
                if (i + 1 >= args.size())
                    return std::nullopt;
                return std::string(args[++i]);
            }
            return std::string(a.substr(name.size() + 1));
        };
        auto is_opt = [&](std::string_view name) {
            return a == name || (a.size() > name.size() && a.substr(0, name.size()) == name && a[name.size()] == '=');
        };
        if (a == "--json") {
            o.json = true;
        } else if (is_opt("--timeout")) {
            const auto v = value("--timeout");
            const auto t = v ? parse_timeout(*v) : std::nullopt;
            if (!t)
                return usage("--timeout needs a number of seconds");
            o.timeout = *t;
        } else if (is_opt("--user")) {
            const auto v = value("--user");
            if (!v)
                return usage("option '--user' needs a value");
            o.user = *v;
        } else if (is_opt("--password-file")) {
            const auto v = value("--password-file");
            if (!v)
                return usage("option '--password-file' needs a value");
            o.password_file = *v;
        } else if (a == "--password-stdin") {
            o.password_stdin = true;
        } else if (a == "--password" || a.rfind("--password=", 0) == 0) {
            return usage("the password is not accepted on the command line (other users can read it there); "
                         "use --password-stdin or --password-file FILE");
        } else if (a.size() > 1 && a[0] == '-') {
            return usage("unknown option '" + std::string(a) + "'");
        } else if (!seen_upload) {
            seen_upload = true; // "upload"
        } else if (o.sub.empty()) {
            o.sub = a;
        } else if (o.sub == "set-target" && !o.url_given) {
            o.url = a;
            o.url_given = true;
        } else {
            return usage("unexpected argument '" + std::string(a) + "'");
        }
    }
    if (o.sub.empty())
        return usage("upload: missing subcommand (status, spool, now, set-target, clear-target)");
    if (o.sub != "status" && o.sub != "spool" && o.sub != "now" && o.sub != "set-target" && o.sub != "clear-target")
        return usage("upload: unknown subcommand '" + o.sub + "'");
    const bool setting = o.sub == "set-target";
    if (!setting && (!o.user.empty() || o.password_stdin || !o.password_file.empty()))
        return usage("--user, --password-stdin and --password-file are only valid with 'upload set-target'");
    if (setting && !o.url_given)
        return usage("upload set-target: missing URL");
    if (o.password_stdin && !o.password_file.empty())
        return usage("use either --password-stdin or --password-file");

    std::string password;
    if (o.password_stdin) {
        std::getline(std::cin, password);
        password = strip_newline(password);
    } else if (!o.password_file.empty()) {
        std::ifstream in(o.password_file, std::ios::binary);
        if (!in)
            return usage("cannot read --password-file " + o.password_file);
        std::stringstream ss;
        ss << in.rdbuf();
        password = strip_newline(ss.str());
    }

    return run_on_bus(o.timeout, [&](sdbus::IConnection& conn) {
        std::string out;
        UploadProxy proxy(conn);
        if (o.sub == "status") {
            Json j = Json::object();
            for (const auto& [k, v] : proxy.GetUploadStatus())
                j[k] = value_json(k, v);
            if (o.json) {
                out = Json{{"upload", j}}.dump(2) + "\n";
            } else {
                for (const auto& [k, v] : j.items())
                    out += k + ": " + value_text(v) + "\n";
            }
        } else if (o.sub == "spool") {
            const auto files = proxy.ListSpool();
            if (o.json) {
                Json arr = Json::array();
                for (const auto& f : files)
                    arr.push_back(Json{{"name", std::get<0>(f)},
                                       {"size", std::get<1>(f)},
                                       {"mtime", time_json(std::get<2>(f))},
                                       {"state", std::get<3>(f)},
                                       {"attempts", std::get<4>(f)},
                                       {"last_error", std::get<5>(f)}});
                out = Json{{"spool", arr}}.dump(2) + "\n";
            } else {
                std::vector<std::vector<std::string>> rows;
                for (const auto& f : files)
                    rows.push_back({std::get<0>(f), std::to_string(std::get<1>(f)), human_time(std::get<2>(f)),
                                    std::get<3>(f), std::to_string(std::get<4>(f)),
                                    std::get<5>(f).empty() ? "-" : std::get<5>(f)});
                out = render_table({{"NAME"}, {"BYTES", Align::Right}, {"MODIFIED"}, {"STATE"},
                                    {"ATTEMPTS", Align::Right}, {"LAST ERROR"}},
                                   rows);
            }
        } else if (o.sub == "now") {
            proxy.UploadNow();
            out = o.json ? "{\"upload_now\": true}\n" : "upload started\n";
        } else {
            const std::string url = o.sub == "clear-target" ? "" : o.url;
            proxy.SetTarget(url, o.user, password);
            out = o.json ? Json{{"target", url}}.dump() + "\n"
                         : (url.empty() ? "target cleared: the config's upload target applies\n"
                                        : "target set: " + url + "\n");
        }
        return out;
    });
}

std::string upload_help_text() {
    return R"(UPLOAD COMMANDS
    upload status
                The uploader (GetUploadStatus): target URL, user, whether a password is
                set (never the password), state (idle, uploading, waiting, auth_failed,
                disabled), last error, counts of uploaded, failed and dropped files, and
                the spool's size and cap. JSON: {"upload": {KEY: VALUE, ...}}.
    upload spool
                Files waiting in the spool, oldest first (ListSpool): NAME, BYTES,
                MODIFIED, STATE (uploading, queued, waiting, paused), ATTEMPTS, LAST ERROR.
                JSON: {"spool": [{"name", "size", "mtime": TIME, "state", "attempts",
                "last_error"}]}.
    upload now  Send now, ending a backoff or an authentication pause (UploadNow).
    upload set-target URL [--user NAME] [--password-stdin | --password-file FILE]
                Upload to URL as NAME (SetTarget); the password is read from the first
                line of stdin or from FILE, never from the command line. Kept in
                nettallyd's state directory until the config's upload target or
                credentials change. Root and group nettally only.
    upload clear-target
                Drop the target set with set-target: the config's applies again.
)";
}

} // namespace nettally::ctl
