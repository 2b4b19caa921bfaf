// `nettallyctl top`: reads the totals every --interval and shows the rates since the previous
// reading (format_top.h). On a terminal it is a live screen (the alternate screen, redrawn to the
// terminal's size, q or Ctrl-C quits and restores the terminal); --once prints one frame and
// exits; --json prints each frame as one JSON line (--once: one object).
#include "bus.h"
#include "commands.h"
#include "convert.h"
#include "format_top.h"
#include "proxies.h"

#include <csignal>
#include <cstdio>
#include <iostream>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

namespace nettally::ctl {
namespace {

volatile std::sig_atomic_t g_quit = 0;
volatile std::sig_atomic_t g_resized = 0;

// Hosts and flows read per reading: ListHosts/ListFlows' upper limit.
constexpr std::uint32_t kReadAll = 100000;

TopReading read_totals(AccountingProxy& p) {
    TopReading r;
    const StatusMap status = from_wire(p.GetStatus());
    if (const auto it = status.find("last_poll_at"); it != status.end())
        if (const auto* v = std::get_if<std::uint64_t>(&it->second))
            r.poll_us = *v;
    r.interfaces = from_wire(p.ListInterfaces());
    r.hosts = from_wire(p.ListHosts("l2", kReadAll));
    r.flows = from_wire(p.ListFlows("l2", kReadAll));
    return r;
}

// The terminal of a live screen: no echo, no line buffering, the alternate screen and no cursor
// while it lives; restored however the command ends.
class LiveTerminal {
public:
    LiveTerminal() {
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0) {
            termios raw = saved_;
            raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
            raw.c_cc[VMIN] = 0;
            raw.c_cc[VTIME] = 0;
            restore_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        }
        std::cout << "\x1b[?1049h\x1b[?25l" << std::flush;
    }
    ~LiveTerminal() {
        std::cout << "\x1b[?25h\x1b[?1049l" << std::flush;
        if (restore_)
            tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
    LiveTerminal(const LiveTerminal&) = delete;
    LiveTerminal& operator=(const LiveTerminal&) = delete;

    static std::pair<std::size_t, std::size_t> size() {
        winsize ws{};
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0)
            return {ws.ws_col, ws.ws_row};
        return {80, 24};
    }

    // Waits up to `ms` for a key; true when it is q (or Ctrl-C arrived).
    static bool wait_for_quit(int ms) {
        pollfd p{STDIN_FILENO, POLLIN, 0};
        if (poll(&p, 1, ms) > 0) {
            // Everything typed so far at once: a q behind other keys or escape sequences counts.
            char buf[64];
            const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] == 'q' || buf[i] == 'Q')
                    return true;
        }
        return g_quit != 0;
    }

private:
    termios saved_{};
    bool restore_ = false;
};

void on_signal(int sig) {
    (sig == SIGWINCH ? g_resized : g_quit) = 1;
}

void install_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal; // no SA_RESTART: poll() returns at once
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGWINCH, &sa, nullptr);
}

// A reading of a newer poll than `before`, at least `interval_ms` later.
TopReading next_reading(AccountingProxy& p, const TopReading& before, int interval_ms, bool live) {
    int wait = interval_ms;
    for (;;) {
        if (live ? LiveTerminal::wait_for_quit(wait) : (poll(nullptr, 0, wait), g_quit != 0))
            return before;
        TopReading r = read_totals(p);
        if (r.poll_us > before.poll_us)
            return r;
        wait = 100; // the daemon has not polled since: look again shortly
    }
}

std::string run_live(AccountingProxy& p, const Options& opt) {
    const LiveTerminal term;
    TopReading before = read_totals(p);
    std::cout << "\x1b[H\x1b[2Jnettally top: first reading, rates after " << opt.interval_ms
              << " ms; q quits\n"
              << std::flush;
    while (!g_quit) {
        TopReading after = next_reading(p, before, static_cast<int>(opt.interval_ms), true);
        if (after.poll_us == before.poll_us)
            break; // q or a signal
        const auto [cols, rows] = LiveTerminal::size();
        g_resized = 0;
        const TopFrame f = top_frame(before, after, opt.sort);
        std::cout << "\x1b[H\x1b[2J" << top_text(f, cols, rows - 1, opt.top.value_or(rows)) << std::flush;
        before = std::move(after);
    }
    return {};
}

} // namespace

int run_top(const Options& opt) {
    if (!top_sort_key(opt.sort))
        return report_usage_error("top --sort: '" + opt.sort +
                                  "' is not one of packets, l2, l3, l4, payload");
    install_handlers();
    const bool live = !opt.once && !opt.json && isatty(STDOUT_FILENO);
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) -> std::string {
        AccountingProxy p(connection);
        if (live)
            return run_live(p, opt);
        const std::size_t rows = opt.top.value_or(kDefaultTop);
        TopReading before = read_totals(p);
        while (!g_quit) {
            TopReading after = next_reading(p, before, static_cast<int>(opt.interval_ms), false);
            if (after.poll_us == before.poll_us)
                break;
            const TopFrame f = top_frame(before, after, opt.sort);
            if (opt.once)
                return opt.json ? dump(top_json(f, rows)) : top_text(f, 0, 0, rows);
            // One frame a line (JSON lines), or frames separated by a blank line.
            std::cout << (opt.json ? top_json(f, rows).dump(-1, ' ', false, Json::error_handler_t::replace)
                                   : top_text(f, 0, 0, rows))
                      << "\n"
                      << std::flush;
            before = std::move(after);
        }
        return {};
    });
}

} // namespace nettally::ctl
