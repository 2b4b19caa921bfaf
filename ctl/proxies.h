// The generated proxies joined with their object, at nettallyd's name and path (bus/names.h).
// Each registers on construction and unregisters on destruction. Signals nettallyctl does not
// print are ignored; `watch` subclasses ThresholdsProxy to print its signals.
#pragma once

#include "accounting1_proxy.h"
#include "bus/names.h"
#include "export1_proxy.h"
#include "records1_proxy.h"
#include "rules1_proxy.h"
#include "subscribers1_proxy.h"
#include "thresholds1_proxy.h"
#include "upload1_proxy.h"

#include <sdbus-c++/sdbus-c++.h>

namespace nettally::ctl {

template <class Interface> class Proxy : public sdbus::ProxyInterfaces<Interface> {
public:
    explicit Proxy(sdbus::IConnection& connection)
        : sdbus::ProxyInterfaces<Interface>(connection, bus::kBusName, bus::kObjectPath) {
        this->registerProxy();
    }
    ~Proxy() { this->unregisterProxy(); }
    Proxy(const Proxy&) = delete;
    Proxy& operator=(const Proxy&) = delete;
};

using AccountingProxy = Proxy<org::nettally::Accounting1_proxy>;

class RecordsProxy final : public Proxy<org::nettally::Accounting1::Records_proxy> {
public:
    using Proxy::Proxy;

private:
    void onFileRotated(const std::string&, const std::string&, const uint64_t&, const uint64_t&,
                       const std::string&) override {}
};

class UploadProxy final : public Proxy<org::nettally::Accounting1::Upload_proxy> {
public:
    using Proxy::Proxy;

private:
    void onUploadSucceeded(const std::string&, const std::string&, const uint64_t&) override {}
    void onUploadFailed(const std::string&, const std::string&, const std::string&, const uint32_t&,
                        const uint64_t&) override {}
    void onSpoolDropped(const std::vector<std::string>&, const uint64_t&, const std::string&) override {}
};

class ExportProxy final : public Proxy<org::nettally::Accounting1::Export_proxy> {
public:
    using Proxy::Proxy;

private:
    void onExportFailed(const std::string&, const std::string&) override {}
};

class SubscribersProxy final : public Proxy<org::nettally::Accounting1::Subscribers_proxy> {
public:
    using Proxy::Proxy;

private:
    void onSubscriberChanged(const std::string&, const std::string&, const std::string&, const std::string&,
                             const std::string&, const uint64_t&, const uint64_t&) override {}
};

class RulesProxy final : public Proxy<org::nettally::Accounting1::Rules_proxy> {
public:
    using Proxy::Proxy;

private:
    void onRulesApplied(const uint64_t&, const std::string&) override {}
    void onRulesRejected(const std::string&) override {}
};

} // namespace nettally::ctl
