// The org.nettally.Accounting1.Subscribers commands: bindings, per-user totals, hosts' users.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "proxies.h"

#include <map>
#include <tuple>

namespace nettally::ctl {

namespace {

// ListHostUsers, or nothing (an older nettallyd, or no subscribers configured).
std::vector<bus::WireHostUser> host_users(sdbus::IConnection& connection) {
    try {
        SubscribersProxy p(connection);
        return p.ListHostUsers();
    } catch (const sdbus::Error&) {
        return {};
    }
}

} // namespace

void add_host_users(sdbus::IConnection& connection, std::vector<HostRow>& rows) {
    const auto users = host_users(connection);
    if (users.empty())
        return;
    std::map<std::tuple<std::string, std::string, std::string>, std::string> by_host;
    for (const auto& u : users)
        by_host[{std::get<0>(u), std::get<1>(u), std::get<2>(u)}] = std::get<3>(u);
    for (auto& r : rows) {
        auto it = by_host.find({r.interface, r.mac, r.ip});
        r.user = it == by_host.end() ? std::string() : it->second;
    }
}

void add_flow_users(sdbus::IConnection& connection, std::vector<FlowRow>& rows) {
    const auto users = host_users(connection);
    if (users.empty())
        return;
    // Hosts are lan hosts only, so a wan flow finds none and stays "".
    std::map<std::pair<std::string, std::string>, std::string> by_addr;
    for (const auto& u : users)
        by_addr[{std::get<0>(u), std::get<2>(u)}] = std::get<3>(u);
    for (auto& r : rows) {
        auto it = by_addr.find({r.interface, r.direction == "ingress" ? r.src : r.dst});
        r.user = it == by_addr.end() ? std::string() : it->second;
    }
}

int run_subscribers(const Options& opt) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        SubscribersProxy p(connection);
        const auto rows = from_wire(p.ListSubscribers());
        if (!opt.json)
            return subscribers_text(rows);
        Json out = subscribers_json(rows);
        AccountingProxy a(connection);
        out["radius"] = radius_json(from_wire(a.GetStatus()));
        return dump(out);
    });
}

int run_users(const Options& opt) {
    return run_on_bus(timeout_of(opt), [&](sdbus::IConnection& connection) {
        SubscribersProxy p(connection);
        const auto rows = from_wire(p.ListUsers());
        return opt.json ? dump(users_json(rows)) : users_text(rows);
    });
}

} // namespace nettally::ctl
