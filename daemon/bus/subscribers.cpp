// org.nettally.Accounting1.Subscribers: see subscribers.h and
// daemon/bus/org.nettally.Accounting1.Subscribers.xml for the contract.
#include "bus/subscribers.h"

#include "bus/names.h"

#include <algorithm>
#include <arpa/inet.h>
#include <spdlog/spdlog.h>

namespace nettally {

SubscribersService::SubscribersService(sdbus::IConnection& conn, const Collector& collector,
                                       SubscribersHooks hooks)
    : AdaptorInterfaces(conn, bus::kObjectPath), collector_(collector), hooks_(std::move(hooks)) {
    registerAdaptor();
}

SubscribersService::~SubscribersService() {
    unregisterAdaptor();
}

void SubscribersService::changed(const BindingChange& c) {
    // A signal that cannot be sent must not stop the binding change: log it and go on.
    try {
        emitSubscriberChanged(std::string(to_string(c.kind)), c.binding.user, c.binding.prefix.to_string(),
                              std::string(to_string(c.binding.source)), c.binding.session, c.binding.since_us,
                              c.binding.until_us);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: SubscriberChanged not sent: {}", e.getMessage());
    }
}

std::vector<
    sdbus::Struct<std::string, std::string, std::string, std::string, std::string, uint64_t, uint64_t, bool>>
SubscribersService::ListSubscribers() {
    const BindingTable& t = hooks_.table();
    const auto chosen = t.effective_bindings();
    std::vector<const Binding*> rows;
    for (const auto& b : t.bindings())
        if (b.open())
            rows.push_back(&b);
    for (const auto& b : t.bindings())
        if (!b.open())
            rows.push_back(&b);
    std::stable_sort(rows.begin(), rows.end(), [](const Binding* a, const Binding* b) {
        return a->open() != b->open() ? a->open() : a->since_us < b->since_us;
    });
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, uint64_t,
                              uint64_t, bool>>
        out;
    for (const Binding* b : rows) {
        auto c = chosen.find(b->prefix);
        out.emplace_back(b->user, b->prefix.to_string(), std::string(to_string(b->source)), b->session,
                         b->mac, b->since_us, b->until_us, c != chosen.end() && c->second == b);
    }
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, SubscribersService::C, SubscribersService::C>>
SubscribersService::ListUsers() {
    const auto to_dbus = [](const Counts& c) { return C(c.packets, c.l2, c.l3, c.l4, c.payload); };
    std::vector<sdbus::Struct<std::string, std::string, C, C>> out;
    for (const auto& [key, u] : collector_.users())
        out.emplace_back(u.interface, u.user, to_dbus(u.sent.total()), to_dbus(u.received.total()));
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>>
SubscribersService::ListHostUsers() {
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>> out;
    if (!hooks_.enabled())
        return out;
    for (const auto& [key, h] : collector_.hosts()) {
        uint32_t addr[4] = {};
        uint8_t family = 0;
        if (inet_pton(AF_INET, h.ip.c_str(), addr) == 1)
            family = NT_AF_INET;
        else if (inet_pton(AF_INET6, h.ip.c_str(), addr) == 1)
            family = NT_AF_INET6;
        out.emplace_back(h.interface, h.mac, h.ip, family ? hooks_.user_of(family, addr) : std::string());
    }
    return out;
}

} // namespace nettally
