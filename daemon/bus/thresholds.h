// The org.nettally.Accounting1.Thresholds interface on nettallyd's object: the generated
// adaptor's methods over the daemon's ThresholdEngine (core/thresholds.h), and the engine's
// events sent out as signals. Registers on construction, unregisters on destruction.
#pragma once

#include "core/thresholds.h"
#include "thresholds1_adaptor.h"

#include <functional>
#include <map>
#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <vector>

namespace nettally {

class CgroupLedger;

// What the service needs from the daemon.
struct ThresholdsHooks {
    std::function<ThresholdEngine&()> engine;
    std::function<LedgerUsage()> usage;
    std::function<const CgroupLedger*()> cgroups; // nullptr when cgroup accounting is off
    std::function<int64_t()> now_us;              // the last poll's wall-clock time
    std::function<void()> changed;                // after a successful change: persist, send events
};

class ThresholdsService final
    : public sdbus::AdaptorInterfaces<org::nettally::Accounting1::Thresholds_adaptor> {
public:
    ThresholdsService(sdbus::IConnection& conn, ThresholdsHooks hooks);
    ~ThresholdsService();
    ThresholdsService(const ThresholdsService&) = delete;
    ThresholdsService& operator=(const ThresholdsService&) = delete;

    void emit(const std::vector<ThresholdEvent>& events);

private:
    std::vector<std::map<std::string, sdbus::Variant>> ListThresholds() override;
    std::vector<std::map<std::string, sdbus::Variant>> GetUsage(const std::string& name) override;
    void AddThreshold(const std::map<std::string, sdbus::Variant>& definition) override;
    void ModifyThreshold(const std::string& name,
                         const std::map<std::string, sdbus::Variant>& changes) override;
    void RemoveThreshold(const std::string& name) override;
    void ResetPeriod(const std::string& name) override;

    FieldMap fields(const std::map<std::string, sdbus::Variant>& dict) const;

    ThresholdsHooks hooks_;
};

} // namespace nettally
