// The org.nettally.Accounting1.Subscribers commands: bindings, per-user totals, hosts' users.
#include "commands.h"

#include "bus.h"
#include "convert.h"
#include "proxies.h"

#include <map>
#include <tuple>

namespace nettally::ctl {

void add_host_users(sdbus::IConnection& connection, std::vector<HostRow>& rows) {
    std::vector<bus::WireHostUser> users;
    try {
        SubscribersProxy p(connection);
        users = p.ListHostUsers();
    } catch (const sdbus::Error&) {
        return; // an older nettallyd: hosts without users
    }
    if (users.empty())
        return; // no subscribers configured
    std::map<std::tuple<std::string, std::string, std::string>, std::string> by_host;
    for (const auto& u : users)
        by_host[{std::get<0>(u), std::get<1>(u), std::get<2>(u)}] = std::get<3>(u);
    for (auto& r : rows) {
        auto it = by_host.find({r.interface, r.mac, r.ip});
        r.user = it == by_host.end() ? std::string() : it->second;
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
