// The org.nettally.Accounting1.Rules interface on nettallyd's object: the generated adaptor's
// methods over hooks into the daemon's traffic classes (app/rules.h) and the collector's class
// totals, and the RulesApplied / RulesRejected signals. Registers on construction, unregisters on
// destruction. Only converts and delegates.
#pragma once

#include "core/collector.h"
#include "core/status.h"
#include "rules1_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace nettally {

struct RulesHooks {
    // Both return the version and hash in force; they throw std::invalid_argument (refused: the
    // one-line reason) or std::runtime_error (failed).
    std::function<std::pair<uint64_t, std::string>(std::span<const uint8_t>)> load;
    std::function<std::pair<uint64_t, std::string>()> rollback;
    std::function<Status()> status; // GetRulesStatus's keys
};

class RulesService final : public sdbus::AdaptorInterfaces<org::nettally::Accounting1::Rules_adaptor> {
public:
    RulesService(sdbus::IConnection& conn, const Collector& collector, RulesHooks hooks);
    ~RulesService();
    RulesService(const RulesService&) = delete;
    RulesService& operator=(const RulesService&) = delete;

    void applied(uint64_t version, const std::string& hash);
    void rejected(const std::string& reason);

private:
    using C = sdbus::Struct<uint64_t, uint64_t, uint64_t, uint64_t, uint64_t>;
    std::tuple<uint64_t, std::string> LoadRules(const std::vector<uint8_t>& bundle) override;
    std::tuple<uint64_t, std::string> RollbackRules() override;
    std::map<std::string, sdbus::Variant> GetRulesStatus() override;
    std::vector<sdbus::Struct<std::string, std::string, uint32_t, std::string, C, bool>>
    ListClasses() override;
    std::vector<sdbus::Struct<std::string, std::string, std::string, uint32_t, std::string, C, C, bool>>
    ListHostClasses(const std::string& iface) override;

    const Collector& collector_;
    RulesHooks hooks_;
};

} // namespace nettally
