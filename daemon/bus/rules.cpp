// org.nettally.Accounting1.Rules: see rules.h and
// daemon/bus/org.nettally.Accounting1.Rules.xml for the contract.
#include "bus/rules.h"

#include "bus/access.h"
#include "bus/accounting.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace nettally {

RulesService::RulesService(sdbus::IConnection& conn, const Collector& collector, RulesHooks hooks)
    : AdaptorInterfaces(conn, kObjectPath), collector_(collector), hooks_(std::move(hooks)) {
    registerAdaptor();
}

RulesService::~RulesService() {
    unregisterAdaptor();
}

void RulesService::applied(uint64_t version, const std::string& hash) {
    // A signal that cannot be sent must not undo the load: log it and go on.
    try {
        emitRulesApplied(version, hash);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: RulesApplied not sent: {}", e.getMessage());
    }
}

void RulesService::rejected(const std::string& reason) {
    try {
        emitRulesRejected(reason);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: RulesRejected not sent: {}", e.getMessage());
    }
}

namespace {

template <typename F> std::tuple<uint64_t, std::string> call(F&& f) {
    try {
        auto [version, hash] = f();
        return {version, hash};
    } catch (const std::invalid_argument& e) {
        throw sdbus::Error(kErrInvalidArgument, e.what());
    } catch (const std::exception& e) {
        throw sdbus::Error(kErrFailed, e.what());
    }
}

} // namespace

std::tuple<uint64_t, std::string> RulesService::LoadRules(const std::vector<uint8_t>& bundle) {
    require_privileged(getObject(), "LoadRules");
    return call([&] { return hooks_.load(bundle); });
}

std::tuple<uint64_t, std::string> RulesService::RollbackRules() {
    require_privileged(getObject(), "RollbackRules");
    return call([&] { return hooks_.rollback(); });
}

std::map<std::string, sdbus::Variant> RulesService::GetRulesStatus() {
    std::map<std::string, sdbus::Variant> out;
    for (const auto& [key, value] : hooks_.status())
        out.emplace(key, std::visit([](const auto& v) { return sdbus::Variant(v); }, value));
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, uint32_t, std::string, RulesService::C, bool>>
RulesService::ListClasses() {
    std::vector<sdbus::Struct<std::string, std::string, uint32_t, std::string, C, bool>> out;
    for (const auto& [key, c] : collector_.classes()) {
        const Counts& t = c.counts.total();
        out.emplace_back(c.interface, std::string(to_string(static_cast<Direction>(c.dir))), c.id, c.name,
                         C(t.packets, t.l2, t.l3, t.l4, t.payload), c.gone);
    }
    return out;
}

std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t, std::string, RulesService::C,
                          RulesService::C, bool>>
RulesService::ListHostClasses(const std::string& iface) {
    std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t, std::string, C, C, bool>> out;
    const auto wire = [](const Counts& t) { return C(t.packets, t.l2, t.l3, t.l4, t.payload); };
    for (const auto& [key, c] : collector_.host_classes())
        if (iface.empty() || c.interface == iface)
            out.emplace_back(c.interface, c.mac, c.ip, c.id, c.name, wire(c.sent.total()),
                             wire(c.received.total()), c.gone);
    return out;
}

} // namespace nettally
