// nettallyctl: the command-line client of nettallyd's D-Bus API (org.nettally.Accounting1).
// This file is the thin, bus-facing half: open the system bus, make one call through the
// generated proxy, turn sdbus types into format.h's structs and map errors to exit codes.
// Output is built completely before anything is written, so a failed call leaves stdout empty.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "accounting1_proxy.h"
#include "bus.h"
#include "format.h"
#include "format_thresholds.h"
#include "thresholds1_proxy.h"

#include <csignal>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include "records_cmd.h"
#include "upload_cmd.h"

#ifndef NT_VERSION
#error "NT_VERSION must be defined by the build"
#endif

namespace nettally::ctl {
namespace {

constexpr const char* kBusName = "org.nettally.Accounting1";
constexpr const char* kObjectPath = "/org/nettally/Accounting1";

// The generated interface class is abstract until joined with the proxy object holder.
class AccountingProxy final : public sdbus::ProxyInterfaces<org::nettally::Accounting1_proxy> {
public:
    explicit AccountingProxy(sdbus::IConnection& connection)
        : ProxyInterfaces(connection, kBusName, kObjectPath) {
        registerProxy();
    }
    ~AccountingProxy() { unregisterProxy(); }
    AccountingProxy(const AccountingProxy&) = delete;
    AccountingProxy& operator=(const AccountingProxy&) = delete;
};

class ThresholdsProxy final : public sdbus::ProxyInterfaces<org::nettally::Accounting1::Thresholds_proxy> {
public:
    explicit ThresholdsProxy(sdbus::IConnection& connection) : ProxyInterfaces(connection, kBusName, kObjectPath) {
        registerProxy();
    }
    ~ThresholdsProxy() { unregisterProxy(); }
    ThresholdsProxy(const ThresholdsProxy&) = delete;
    ThresholdsProxy& operator=(const ThresholdsProxy&) = delete;

    bool json = false;

private:
    void print(WatchEvent e) {
        std::cout << (json ? watch_json_line(e) : watch_text_line(e)) << std::flush;
    }
    static StatusValue u(std::uint64_t v) { return v; }
    void onStepCrossed(const std::string& name, const std::string& subject, const uint64_t& usage,
                       const uint64_t& step_index, const uint64_t& time, const uint64_t& skipped) override {
        print({"StepCrossed", {{"name", name}, {"subject", subject}, {"usage", u(usage)},
                               {"step_index", u(step_index)}, {"skipped", u(skipped)}, {"time", u(time)}}});
    }
    void onLimitReached(const std::string& name, const std::string& subject, const uint64_t& usage,
                        const uint64_t& limit, const uint64_t& time) override {
        print({"LimitReached",
               {{"name", name}, {"subject", subject}, {"usage", u(usage)}, {"limit", u(limit)}, {"time", u(time)}}});
    }
    void onBurst(const std::string& name, const std::string& subject, const uint64_t& interval_ms,
                 const uint64_t& min_interval_ms, const uint64_t& step_index, const uint64_t& time) override {
        print({"Burst", {{"name", name}, {"subject", subject}, {"interval_ms", u(interval_ms)},
                         {"min_interval_ms", u(min_interval_ms)}, {"step_index", u(step_index)}, {"time", u(time)}}});
    }
    void onRateExceeded(const std::string& name, const std::string& subject, const uint64_t& rate_bps,
                        const uint64_t& limit_bps, const uint64_t& time) override {
        print({"RateExceeded", {{"name", name}, {"subject", subject}, {"rate_bps", u(rate_bps)},
                                {"limit_bps", u(limit_bps)}, {"time", u(time)}}});
    }
    void action(const char* sig, const std::string& name, const std::string& subject, const std::string& action,
                const std::string& reason, uint64_t time) {
        print({sig, {{"name", name}, {"subject", subject}, {"action", action}, {"reason", reason}, {"time", u(time)}}});
    }
    void onActionApplied(const std::string& n, const std::string& s, const std::string& a, const std::string& r,
                         const uint64_t& t) override {
        action("ActionApplied", n, s, a, r, t);
    }
    void onActionLifted(const std::string& n, const std::string& s, const std::string& a, const std::string& r,
                        const uint64_t& t) override {
        action("ActionLifted", n, s, a, r, t);
    }
    void onActionFailed(const std::string& n, const std::string& s, const std::string& a, const std::string& r,
                        const uint64_t& t) override {
        action("ActionFailed", n, s, a, r, t);
    }
};

using DbusCounters = sdbus::Struct<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t>;

Counters to_counters(const DbusCounters& c) {
    return Counters{std::get<0>(c), std::get<1>(c), std::get<2>(c), std::get<3>(c), std::get<4>(c)};
}

using DbusCounters4 = sdbus::Struct<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t>;

Counters4 to_counters4(const DbusCounters4& c) {
    return Counters4{std::get<0>(c), std::get<1>(c), std::get<2>(c), std::get<3>(c)};
}

StatusValue to_status_value(const sdbus::Variant& v) {
    const std::string sig = v.peekValueType();
    if (sig == "b")
        return v.get<bool>();
    if (sig == "y")
        return std::uint64_t{v.get<std::uint8_t>()};
    if (sig == "q")
        return std::uint64_t{v.get<std::uint16_t>()};
    if (sig == "u")
        return std::uint64_t{v.get<std::uint32_t>()};
    if (sig == "t")
        return v.get<std::uint64_t>();
    if (sig == "n")
        return std::int64_t{v.get<std::int16_t>()};
    if (sig == "i")
        return std::int64_t{v.get<std::int32_t>()};
    if (sig == "x")
        return v.get<std::int64_t>();
    if (sig == "d")
        return v.get<double>();
    if (sig == "s")
        return v.get<std::string>();
    if (sig == "o")
        return std::string(v.get<sdbus::ObjectPath>());
    if (sig == "g")
        return std::string(v.get<sdbus::Signature>());
    if (sig == "as")
        return v.get<std::vector<std::string>>();
    return Unsupported{sig};
}

std::string dump(const Json& j) {
    // D-Bus strings are valid UTF-8 already; replace rather than throw if one ever is not.
    return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::vector<Dict> to_dicts(const std::vector<std::map<std::string, sdbus::Variant>>& in) {
    std::vector<Dict> out;
    for (const auto& m : in) {
        Dict d;
        for (const auto& [k, v] : m)
            d.emplace(k, to_status_value(v));
        out.push_back(std::move(d));
    }
    return out;
}

std::string run_thresholds(ThresholdsProxy& proxy, const Options& opt) {
    const ThresholdArgs& t = opt.thresholds;
    if (t.sub == "list") {
        const auto rows = to_dicts(proxy.ListThresholds());
        return opt.json ? dump(thresholds_json(rows)) : thresholds_text(rows);
    }
    if (t.sub == "usage") {
        const auto rows = to_dicts(proxy.GetUsage(t.name));
        return opt.json ? dump(usage_json(rows)) : usage_text(rows);
    }
    std::map<std::string, sdbus::Variant> fields;
    for (const auto& [k, v] : t.fields)
        fields[k] = sdbus::Variant(v);
    if (t.sub == "add") {
        fields["name"] = sdbus::Variant(t.name);
        proxy.AddThreshold(fields);
    } else if (t.sub == "modify") {
        proxy.ModifyThreshold(t.name, fields);
    } else if (t.sub == "remove") {
        proxy.RemoveThreshold(t.name);
    } else if (t.sub == "reset") {
        proxy.ResetPeriod(t.name);
    }
    return opt.json ? dump(threshold_done_json(t.sub, t.name)) : threshold_done_text(t.sub, t.name);
}

// Prints every Thresholds signal as it arrives until SIGINT or SIGTERM. One thread: the bus
// connection and a signalfd in one poll(2) loop.
int watch(sdbus::IConnection& connection, bool json) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    const int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        std::cerr << "nettallyctl: signalfd failed\n";
        return kExitDaemonError;
    }
    ThresholdsProxy proxy(connection);
    proxy.json = json;
    for (;;) {
        while (connection.processPendingRequest()) {
        }
        const auto pd = connection.getEventLoopPollData();
        pollfd fds[2] = {{pd.fd, static_cast<short>(pd.events), 0}, {sfd, POLLIN, 0}};
        int timeout = -1;
        if (pd.timeout_usec != UINT64_MAX) {
            timespec now{};
            clock_gettime(CLOCK_MONOTONIC, &now);
            const uint64_t now_us = static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
            timeout = pd.timeout_usec <= now_us ? 0 : static_cast<int>(std::min<uint64_t>((pd.timeout_usec - now_us + 999) / 1000, 60000));
        }
        if (poll(fds, 2, timeout) < 0 && errno != EINTR)
            break;
        if (fds[1].revents & POLLIN)
            break;
    }
    close(sfd);
    return kExitOk;
}

// Makes the one call the options ask for and returns the complete text for stdout.
std::string run(AccountingProxy& proxy, const Options& opt) {
    switch (opt.command) {
    case Command::Status: {
        StatusMap status;
        for (const auto& [key, value] : proxy.GetStatus())
            status.emplace(key, to_status_value(value));
        return opt.json ? dump(status_json(status)) : status_text(status);
    }
    case Command::Interfaces: {
        std::vector<InterfaceRow> rows;
        for (const auto& e : proxy.ListInterfaces()) {
            InterfaceRow r{std::get<0>(e),
                           std::get<1>(e),
                           std::get<2>(e),
                           to_counters(std::get<3>(e)),
                           to_counters(std::get<4>(e)),
                           {}};
            for (const auto& [bucket, c] : std::get<5>(e))
                r.unattributed.emplace(bucket, to_counters(c));
            rows.push_back(std::move(r));
        }
        return opt.json ? dump(interfaces_json(rows)) : interfaces_text(rows);
    }
    case Command::Hosts: {
        std::vector<HostRow> rows;
        for (const auto& e : proxy.ListHosts(opt.sort, opt.top.value_or(kDefaultTop)))
            rows.push_back(HostRow{std::get<0>(e), std::get<1>(e), std::get<2>(e),
                                   to_counters(std::get<3>(e)), to_counters(std::get<4>(e)), std::get<5>(e),
                                   std::get<6>(e)});
        return opt.json ? dump(hosts_json(rows)) : hosts_text(rows, opt.sort);
    }
    case Command::Flows: {
        std::vector<FlowRow> rows;
        for (const auto& e : proxy.ListFlows(opt.sort, opt.top.value_or(kDefaultTop)))
            rows.push_back(FlowRow{std::get<0>(e), std::get<1>(e), std::get<2>(e), std::get<3>(e),
                                   std::get<4>(e), std::get<5>(e), std::get<6>(e),
                                   to_counters(std::get<7>(e)), std::get<8>(e), std::get<9>(e),
                                   std::get<10>(e)});
        return opt.json ? dump(flows_json(rows)) : flows_text(rows);
    }
    case Command::Cgroups: {
        const auto [entries, dbus_buckets] = proxy.ListCgroups();
        std::vector<CgroupEntry> rows;
        for (const auto& e : entries)
            rows.push_back(CgroupEntry{std::get<0>(e), std::get<1>(e), to_counters4(std::get<2>(e)),
                                       to_counters4(std::get<3>(e)), to_counters4(std::get<4>(e)),
                                       to_counters4(std::get<5>(e)), std::get<6>(e)});
        CgroupBuckets buckets;
        for (const auto& [key, c] : dbus_buckets)
            buckets.emplace(key, to_counters4(c));
        return opt.json ? dump(cgroups_json(rows, buckets, opt.tree)) : cgroups_text(rows, buckets, opt.tree);
    }
    case Command::History: {
        std::vector<HistoryRow> rows;
        for (const auto& e : proxy.GetHistory(opt.period, opt.subject)) {
            HistoryRow r{std::get<0>(e), std::get<1>(e), std::get<2>(e), {}};
            for (const auto& [subject, c] : std::get<3>(e))
                r.totals.emplace(subject, to_counters(c));
            rows.push_back(std::move(r));
        }
        return opt.json ? dump(history_json(opt.period, rows)) : history_text(rows);
    }
    case Command::Reload:
        proxy.Reload();
        return opt.json ? dump(reload_json()) : reload_text();
    case Command::Thresholds:
    case Command::Watch:
    case Command::Help:
    case Command::Version:
        break;
    }
    return {};
}

int main_impl(int argc, char** argv) {
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    const bool help = std::find(args.begin(), args.end(), std::string_view("--help")) != args.end();
    if (command_word(args) == "upload" && !help)
        return upload_main(args);
    if (command_word(args) == "records" && !help)
        return records_main(args);
    const ParseResult parsed = parse_args(args);
    if (const auto* err = std::get_if<UsageError>(&parsed)) {
        std::cerr << "nettallyctl: " << err->message << "\nTry 'nettallyctl --help' for more information.\n";
        return kExitUsage;
    }
    const Options& opt = std::get<Options>(parsed);
    if (opt.command == Command::Help) {
        std::cout << help_text("nettallyctl " NT_VERSION) << "\n" << upload_help_text() << "\n" << records_help_text();
        return kExitOk;
    }
    if (opt.command == Command::Version) {
        std::cout << "nettallyctl " NT_VERSION "\n";
        return kExitOk;
    }

    std::unique_ptr<sdbus::IConnection> connection;
    try {
        connection = connect_system_bus(opt.timeout_sec > 0 ? opt.timeout_sec : kDefaultTimeoutSec);
    } catch (const sdbus::Error& e) {
        return report_dbus_error(e, true);
    }

    std::string out;
    try {
        if (opt.command == Command::Watch)
            return watch(*connection, opt.json);
        if (opt.command == Command::Thresholds) {
            ThresholdsProxy proxy(*connection);
            out = run_thresholds(proxy, opt);
            std::cout << out << std::flush;
            return kExitOk;
        }
        AccountingProxy proxy(*connection);
        out = run(proxy, opt);
    } catch (const sdbus::Error& e) {
        return report_dbus_error(e, false);
    }
    std::cout << out << std::flush;
    return kExitOk;
}

} // namespace
} // namespace nettally::ctl

int main(int argc, char** argv) {
    try {
        return nettally::ctl::main_impl(argc, argv);
    } catch (const std::exception& e) {
        // Anything not sdbus::Error (bad_alloc, a reply that does not deserialize into the
        // generated types) happened after the daemon answered.
        std::cerr << "nettallyctl: " << e.what() << "\n";
        return nettally::ctl::kExitDaemonError;
    }
}
