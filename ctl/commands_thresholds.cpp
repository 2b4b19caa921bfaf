// The org.nettally.Accounting1.Thresholds commands: thresholds list|usage|add|modify|remove|reset,
// and watch, which prints the interface's signals until SIGINT or SIGTERM.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "format_thresholds.h"
#include "proxies.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <iostream>

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace nettally::ctl {
namespace {

// Prints every signal it receives, one line each (format_thresholds.h).
class ThresholdsProxy final : public Proxy<org::nettally::Accounting1::Thresholds_proxy> {
public:
    ThresholdsProxy(sdbus::IConnection& connection, bool json) : Proxy(connection), json(json) {}

    const bool json;

private:
    // One line for the signal `name` (bus::kThresholdSignals): its arguments under their XML names.
    template <typename... A> void print(std::string_view signal, const A&... values) {
        const auto& spec = *std::find_if(bus::kThresholdSignals.begin(), bus::kThresholdSignals.end(),
                                         [&](const auto& s) { return s.name == signal; });
        std::vector<std::string_view> names = {"name", "subject"};
        for (const auto& arg : spec.args)
            if (arg.from != bus::EventArg::None)
                names.push_back(arg.name);
        WatchEvent e{std::string(signal), {}};
        std::size_t i = 0;
        (e.args.emplace_back(std::string(names.at(i++)), StatusValue(values)), ...);
        std::cout << (json ? watch_json_line(e) : watch_text_line(e)) << std::flush;
    }
    using S = std::string;
    using T = std::uint64_t;
    void onStepCrossed(const S& n, const S& s, const T& u, const T& i, const T& t, const T& k) override {
        print("StepCrossed", n, s, u, i, t, k);
    }
    void onLimitReached(const S& n, const S& s, const T& u, const T& l, const T& t) override {
        print("LimitReached", n, s, u, l, t);
    }
    void onBurst(const S& n, const S& s, const T& v, const T& m, const T& i, const T& t) override {
        print("Burst", n, s, v, m, i, t);
    }
    void onRateExceeded(const S& n, const S& s, const T& r, const T& l, const T& t) override {
        print("RateExceeded", n, s, r, l, t);
    }
    void onActionApplied(const S& n, const S& s, const S& a, const S& r, const T& t) override {
        print("ActionApplied", n, s, a, r, t);
    }
    void onActionLifted(const S& n, const S& s, const S& a, const S& r, const T& t) override {
        print("ActionLifted", n, s, a, r, t);
    }
    void onActionFailed(const S& n, const S& s, const S& a, const S& r, const T& t) override {
        print("ActionFailed", n, s, a, r, t);
    }
};

// poll(2)'s timeout for sd-bus's absolute CLOCK_MONOTONIC deadline (UINT64_MAX: none).
int poll_timeout_ms(uint64_t deadline_us) {
    if (deadline_us == UINT64_MAX)
        return -1;
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const uint64_t now_us =
        static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
    if (deadline_us <= now_us)
        return 0;
    return static_cast<int>(std::min<uint64_t>((deadline_us - now_us + 999) / 1000, 60000));
}

// Prints every Thresholds signal as it arrives until SIGINT or SIGTERM. One thread: the bus
// connection and a signalfd in one poll(2) loop.
int watch_loop(sdbus::IConnection& connection, bool json) {
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
    ThresholdsProxy proxy(connection, json);
    for (;;) {
        while (connection.processPendingRequest()) {
        }
        const auto pd = connection.getEventLoopPollData();
        pollfd fds[2] = {{pd.fd, static_cast<short>(pd.events), 0}, {sfd, POLLIN, 0}};
        if (poll(fds, 2, poll_timeout_ms(pd.timeout_usec)) < 0 && errno != EINTR)
            break;
        if (fds[1].revents & POLLIN)
            break;
    }
    close(sfd);
    return kExitOk;
}

// add, modify, remove, reset: the call, then the one-line confirmation.
void change(Proxy<org::nettally::Accounting1::Thresholds_proxy>& proxy, const ThresholdArgs& t) {
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
}

} // namespace

int run_thresholds(const Options& opt) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        ThresholdsProxy proxy(connection, opt.json);
        const ThresholdArgs& t = opt.thresholds;
        if (t.sub == "list") {
            const auto rows = from_wire(proxy.ListThresholds());
            return opt.json ? dump(thresholds_json(rows)) : thresholds_text(rows);
        }
        if (t.sub == "usage") {
            const auto rows = from_wire(proxy.GetUsage(t.name));
            return opt.json ? dump(usage_json(rows)) : usage_text(rows);
        }
        change(proxy, t);
        return opt.json ? dump(threshold_done_json(t.sub, t.name)) : threshold_done_text(t.sub, t.name);
    });
}

int run_watch(const Options& opt) {
    std::unique_ptr<sdbus::IConnection> connection;
    try {
        connection = connect_system_bus(timeout_of(opt));
    } catch (const sdbus::Error& e) {
        return report_dbus_error(e, true);
    }
    try {
        return watch_loop(*connection, opt.json);
    } catch (const sdbus::Error& e) {
        return report_dbus_error(e, false);
    }
}

} // namespace nettally::ctl
