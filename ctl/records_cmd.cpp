// See records_cmd.h.
#include "records_cmd.h"

#include "bus.h"
#include "format.h"
#include "records1_proxy.h"

#include <sdbus-c++/sdbus-c++.h>

#include <charconv>
#include <cmath>
#include <iostream>
#include <optional>

namespace nettally::ctl {
namespace {

constexpr const char* kBusName = "org.nettally.Accounting1";
constexpr const char* kObjectPath = "/org/nettally/Accounting1";

class RecordsProxy final : public sdbus::ProxyInterfaces<org::nettally::Accounting1::Records_proxy> {
public:
    explicit RecordsProxy(sdbus::IConnection& c) : ProxyInterfaces(c, kBusName, kObjectPath) { registerProxy(); }
    ~RecordsProxy() { unregisterProxy(); }

private:
    void onFileRotated(const std::string&, const std::string&, const uint64_t&, const uint64_t&,
                       const std::string&) override {}
};

int usage(const std::string& msg) {
    std::cerr << "nettallyctl: " << msg << "\nTry 'nettallyctl --help' for more information.\n";
    return kExitUsage;
}

Json value_json(const std::string& key, const sdbus::Variant& v) {
    const std::string sig = v.peekValueType();
    if (sig == "b")
        return v.get<bool>();
    if (sig == "t") {
        const uint64_t n = v.get<uint64_t>();
        if (key.size() > 3 && key.substr(key.size() - 3) == "_at")
            return time_json(n);
        return n;
    }
    if (sig == "s")
        return v.get<std::string>();
    if (sig == "as")
        return v.get<std::vector<std::string>>();
    return nullptr;
}

// KEY=VALUE as the variant SetSettings expects for that key; nullopt with *why on bad input.
std::optional<sdbus::Variant> setting_value(const std::string& key, const std::string& value, std::string* why) {
    if (key == "enabled" || key == "compress") {
        if (value == "true" || value == "yes" || value == "on")
            return sdbus::Variant(true);
        if (value == "false" || value == "no" || value == "off")
            return sdbus::Variant(false);
        *why = key + ": expected true or false, got '" + value + "'";
        return std::nullopt;
    }
    if (key == "max_file_size" || key == "max_records") {
        uint64_t n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
            *why = key + ": expected a whole number, got '" + value + "'";
            return std::nullopt;
        }
        return sdbus::Variant(n);
    }
    if (key == "period" || key == "interval" || key == "types")
        return sdbus::Variant(value);
    *why = "unknown setting '" + key + "' (enabled, period, interval, types, max_file_size, max_records, compress)";
    return std::nullopt;
}

} // namespace

int records_main(const std::vector<std::string_view>& args) {
    bool json = false;
    double timeout = kDefaultTimeoutSec;
    std::string sub;
    std::vector<std::string> rest;
    bool seen = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string_view a = args[i];
        if (a == "--json") {
            json = true;
        } else if (a == "--timeout" || a.rfind("--timeout=", 0) == 0) {
            std::optional<std::string> v;
            if (a == "--timeout") {
                if (i + 1 < args.size())
                    v = std::string(args[++i]);
            } else {
                v = std::string(a.substr(10));
            }
            const auto t = v ? parse_timeout(*v) : std::nullopt;
            if (!t)
                return usage("--timeout needs a number of seconds");
            timeout = *t;
        } else if (a.size() > 1 && a[0] == '-') {
            return usage("unknown option '" + std::string(a) + "'");
        } else if (!seen) {
            seen = true; // "records"
        } else if (sub.empty()) {
            sub = a;
        } else {
            rest.emplace_back(a);
        }
    }
    if (sub.empty())
        return usage("records: missing subcommand (status, set, reset, rotate, spool)");
    if (sub != "status" && sub != "set" && sub != "reset" && sub != "rotate" && sub != "spool")
        return usage("records: unknown subcommand '" + sub + "'");
    if (sub != "set" && !rest.empty())
        return usage("unexpected argument '" + rest.front() + "'");
    std::map<std::string, sdbus::Variant> settings;
    if (sub == "set") {
        if (rest.empty())
            return usage("records set: give at least one KEY=VALUE");
        for (const auto& kv : rest) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0)
                return usage("records set: expected KEY=VALUE, got '" + kv + "'");
            std::string why;
            auto v = setting_value(kv.substr(0, eq), kv.substr(eq + 1), &why);
            if (!v)
                return usage("records set: " + why);
            settings[kv.substr(0, eq)] = *v;
        }
    }
    if (sub == "reset")
        settings["reset"] = sdbus::Variant(true);

    return run_on_bus(timeout, [&](sdbus::IConnection& conn) {
        std::string out;
        RecordsProxy proxy(conn);
        auto status = [&] {
            Json j = Json::object();
            for (const auto& [k, v] : proxy.GetSettings())
                j[k] = value_json(k, v);
            if (json)
                return Json{{"records", j}}.dump(2) + "\n";
            std::string s;
            for (const auto& [k, v] : j.items())
                s += k + ": " + (v.is_string() ? (v.get<std::string>().empty() ? "-" : v.get<std::string>()) : v.dump()) +
                     "\n";
            return s;
        };
        if (sub == "status") {
            out = status();
        } else if (sub == "set" || sub == "reset") {
            proxy.SetSettings(settings);
            out = status();
        } else if (sub == "rotate") {
            const auto names = proxy.Rotate();
            if (json) {
                out = Json{{"closed", names}}.dump(2) + "\n";
            } else {
                for (const auto& n : names)
                    out += n + "\n";
                if (names.empty())
                    out = "no file was open\n";
            }
        } else {
            const auto files = proxy.ListSpool();
            if (json) {
                Json arr = Json::array();
                for (const auto& f : files)
                    arr.push_back(Json{{"name", std::get<0>(f)},
                                       {"size", std::get<1>(f)},
                                       {"type", std::get<2>(f)},
                                       {"created", time_json(std::get<3>(f))}});
                out = Json{{"spool", arr}}.dump(2) + "\n";
            } else {
                std::vector<std::vector<std::string>> rows;
                for (const auto& f : files)
                    rows.push_back({std::get<0>(f), std::to_string(std::get<1>(f)), std::get<2>(f),
                                    human_time(std::get<3>(f))});
                out = render_table({{"NAME"}, {"BYTES", Align::Right}, {"TYPE"}, {"CREATED"}}, rows);
            }
        }
        return out;
    });
}

std::string records_help_text() {
    return R"(RECORDS COMMANDS
    records status
                The accounting record settings in effect (GetSettings): enabled, period,
                interval, types (TYPE=FORMAT,...), max_file_size, max_records, compress,
                which keys were set over D-Bus, the spool directory and counts.
                JSON: {"records": {KEY: VALUE, ...}}.
    records set KEY=VALUE...
                Change settings (SetSettings), validated all together: enabled=true|false,
                period=5m, interval=1m, types=interface=csv,host=csv,flow=jsonl,
                max_file_size=BYTES, max_records=N (0: no limit), compress=true|false.
                Saved in nettallyd's state directory; they win over the config file.
                Root and group nettally only.
    records reset
                Drop every setting made with 'records set': the config's apply again.
    records rotate
                Write the usage up to now and close every open file into the spool
                (Rotate); prints the closed files. JSON: {"closed": [NAME, ...]}.
    records spool
                Closed files in the spool (ListSpool): NAME, BYTES, TYPE, CREATED.
                JSON: {"spool": [{"name", "size", "type", "created": TIME}]}.
)";
}

} // namespace nettally::ctl
