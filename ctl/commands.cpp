// The org.nettally.Accounting1 commands: one call each, the reply converted and formatted.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "proxies.h"

namespace nettally::ctl {
namespace {

// Runs `body` with the Accounting1 proxy on a fresh connection (bus.h: errors, exit status).
template <class Body> int with_accounting(const Options& opt, Body body) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        AccountingProxy proxy(connection);
        return body(proxy);
    });
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
    return with_accounting(opt, [&](AccountingProxy& p) {
        const auto rows = from_wire(p.ListHosts(opt.sort, opt.top.value_or(kDefaultTop)));
        return opt.json ? dump(hosts_json(rows)) : hosts_text(rows, opt.sort);
    });
}

int run_flows(const Options& opt) {
    return with_accounting(opt, [&](AccountingProxy& p) {
        const auto rows = from_wire(p.ListFlows(opt.sort, opt.top.value_or(kDefaultTop)));
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
    return with_accounting(opt, [&](AccountingProxy& p) {
        const auto rows = from_wire(p.GetHistory(opt.period, opt.subject));
        return opt.json ? dump(history_json(opt.period, rows)) : history_text(rows);
    });
}

int run_reload(const Options& opt) {
    return with_accounting(opt, [&](AccountingProxy& p) {
        p.Reload();
        return opt.json ? dump(reload_json()) : reload_text();
    });
}

} // namespace nettally::ctl
