// The org.nettally.Accounting1.Subscribers interface on nettallyd's object: the generated
// adaptor's methods over the binding table and the collector's per-user totals, and the
// SubscriberChanged signal. Registers on construction, unregisters on destruction. Only converts.
#pragma once

#include "core/collector.h"
#include "core/subscribers.h"
#include "subscribers1_adaptor.h"

#include <functional>
#include <sdbus-c++/sdbus-c++.h>
#include <string>
#include <vector>

namespace nettally {

struct SubscribersHooks {
    std::function<const BindingTable&()> table;
    // The user an address is bound to now ("" when none).
    std::function<std::string(uint8_t family, const uint32_t addr[4])> user_of;
    std::function<bool()> enabled; // config subscribers present
};

class SubscribersService final
    : public sdbus::AdaptorInterfaces<org::nettally::Accounting1::Subscribers_adaptor> {
public:
    SubscribersService(sdbus::IConnection& conn, const Collector& collector, SubscribersHooks hooks);
    ~SubscribersService();
    SubscribersService(const SubscribersService&) = delete;
    SubscribersService& operator=(const SubscribersService&) = delete;

    void changed(const BindingChange& c);

private:
    using C = sdbus::Struct<uint64_t, uint64_t, uint64_t, uint64_t, uint64_t>;
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, uint64_t,
                              uint64_t, bool>>
    ListSubscribers() override;
    std::vector<sdbus::Struct<std::string, std::string, C, C>> ListUsers() override;
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string>> ListHostUsers() override;

    const Collector& collector_;
    SubscribersHooks hooks_;
};

} // namespace nettally
