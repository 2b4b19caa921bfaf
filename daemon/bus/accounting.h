// The org.nettally.Accounting1 object: the generated adaptor's methods,
// implemented over the daemon's Collector. Owned by the daemon; registers on
// construction and unregisters on destruction (sdbus-c++ RAII).
#pragma once

#include "accounting1_adaptor.h"
#include "bus/names.h"
#include "core/cgroups.h"
#include "core/collector.h"
#include "core/history.h"
#include "core/status.h"

#include <functional>
#include <map>
#include <sdbus-c++/sdbus-c++.h>
#include <string>

namespace nettally {

using bus::kBusName;
using bus::kObjectPath;
inline constexpr const char* kErrInvalidArgument = "org.nettally.Accounting1.Error.InvalidArgument";
inline constexpr const char* kErrInvalidConfig = "org.nettally.Accounting1.Error.InvalidConfig";
inline constexpr const char* kErrFailed = "org.nettally.Accounting1.Error.Failed";

// What the service needs from the daemon, beyond the collector.
struct ServiceHooks {
    std::function<Status()> status; // GetStatus: every subsystem's keys (core/status.h)
    std::function<void()> reload;   // throws ConfigError or SysError
    // The per-cgroup ledger; unset or nullptr when cgroup accounting is off.
    std::function<const CgroupLedger*()> cgroups;
    std::function<const History&()> history;
};

class AccountingService final : public sdbus::AdaptorInterfaces<org::nettally::Accounting1_adaptor> {
public:
    AccountingService(sdbus::IConnection& conn, const Collector& collector, ServiceHooks hooks);
    ~AccountingService();

private:
    using C = sdbus::Struct<uint64_t, uint64_t, uint64_t, uint64_t, uint64_t>;
    static C to_dbus(const Counts& c);

    std::map<std::string, sdbus::Variant> GetStatus() override;
    std::vector<bus::WireInterface> ListInterfaces() override;
    std::vector<sdbus::Struct<std::string, std::string, std::string, C, C, uint64_t, uint64_t, C, C>>
    ListHosts(const std::string& sort_key, const uint32_t& top) override;
    std::vector<sdbus::Struct<std::string, std::string, uint8_t, std::string, uint16_t, std::string, uint16_t,
                              C, uint64_t, uint64_t, uint8_t, std::string>>
    ListFlows(const std::string& sort_key, const uint32_t& top) override;
    using C4 = sdbus::Struct<uint64_t, uint64_t, uint64_t, uint64_t>;
    std::tuple<std::vector<sdbus::Struct<std::string, std::string, C4, C4, C4, C4, bool>>,
               std::map<std::string, C4>>
    ListCgroups() override;
    std::vector<sdbus::Struct<std::string, uint64_t, uint64_t, std::map<std::string, C>>>
    GetHistory(const std::string& period, const std::string& subject_prefix) override;
    void Reload() override;

    const Collector& collector_;
    ServiceHooks hooks_;
};

} // namespace nettally
