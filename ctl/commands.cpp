// The org.nettally.Accounting1 commands: one call each, the reply converted and formatted.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "format_graph.h"
#include "proxies.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sys/ioctl.h>
#include <unistd.h>

namespace nettally::ctl {
namespace {

// Runs `body` with the Accounting1 proxy on a fresh connection (bus.h: errors, exit status).
template <class Body> int with_accounting(const Options& opt, Body body) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        AccountingProxy proxy(connection);
        return body(proxy);
    });
}

// The terminal's width, or 80 when stdout is not a terminal.
std::size_t terminal_width() {
    winsize ws{};
    return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

} // namespace

int run_status(const Options& opt) {
    return with_accounting(opt, [&](AccountingProxy& p) {
        const StatusMap status = from_wire(p.GetStatus());
        return opt.json ? dump(status_json(status)) : status_text(status);
    });
}

int run_interfaces(const Options& opt) {
    return with_accounting(opt, [&](AccountingProxy& p) {
        const auto rows = from_wire(p.ListInterfaces());
        return opt.json ? dump(interfaces_json(rows)) : interfaces_text(rows);
    });
}

int run_hosts(const Options& opt) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        AccountingProxy p(connection);
        auto rows = from_wire(p.ListHosts(opt.sort, opt.top.value_or(kDefaultTop)));
        add_host_users(connection, rows);
        return opt.json ? dump(hosts_json(rows)) : hosts_text(rows, opt.sort);
    });
}

int run_flows(const Options& opt) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        AccountingProxy p(connection);
        auto rows = from_wire(p.ListFlows(opt.sort, opt.top.value_or(kDefaultTop)));
        add_flow_users(connection, rows);
        return opt.json ? dump(flows_json(rows)) : flows_text(rows);
    });
}

int run_cgroups(const Options& opt) {
    return with_accounting(opt, [&](AccountingProxy& p) {
        const auto [entries, wire_buckets] = p.ListCgroups();
        const auto rows = from_wire(entries);
        const CgroupBuckets buckets = from_wire(wire_buckets);
        return opt.json ? dump(cgroups_json(rows, buckets, opt.tree)) : cgroups_text(rows, buckets, opt.tree);
    });
}

int run_history(const Options& opt) {
    std::string write_error;
    const int rc = with_accounting(opt, [&](AccountingProxy& p) -> std::string {
        const auto rows = from_wire(p.GetHistory(opt.period, opt.subject));
        if (opt.json)
            return dump(history_json(opt.period, rows));
        if (!opt.graph)
            return history_text(rows);
        if (opt.output.empty())
            return history_graph_text(rows, opt.layer, terminal_width());
        std::ofstream f(opt.output, std::ios::trunc);
        f << history_graph_svg(rows, opt.layer, opt.period);
        f.close();
        if (!f)
            write_error = "nettallyctl: cannot write " + opt.output + ": " + std::strerror(errno);
        return {};
    });
    if (!write_error.empty()) {
        std::cerr << write_error << "\n";
        return kExitDaemonError;
    }
    return rc;
}

int run_reload(const Options& opt) {
    return with_accounting(opt, [&](AccountingProxy& p) {
        p.Reload();
        return opt.json ? dump(reload_json()) : reload_text();
    });
}

} // namespace nettally::ctl
