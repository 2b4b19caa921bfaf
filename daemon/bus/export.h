// The org.nettally.Accounting1.Export interface on nettallyd's object: the generated adaptor's
// methods over hooks into the daemon's flow export (app/export.h), and its signal. Registers on
// construction, unregisters on destruction. Only converts and delegates.
#pragma once

#include "export1_adaptor.h"
#include "io/export.h"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <string>
#include <vector>

namespace nettally {

struct ExportHooks {
    std::function<std::string()> source;
    std::function<std::vector<ExportCollectorStatus>()> status;
    // Throws std::invalid_argument (bad URL) or SysError (not saved).
    std::function<void(const std::vector<std::string>&)> set_collectors;
};

class ExportService final : public sdbus::AdaptorInterfaces<org::nettally::Accounting1::Export_adaptor> {
public:
    ExportService(sdbus::IConnection& conn, ExportHooks hooks);
    ~ExportService();
    ExportService(const ExportService&) = delete;
    ExportService& operator=(const ExportService&) = delete;

    void failed(const std::string& url, const std::string& error);

private:
    using Row = sdbus::Struct<std::string, std::string, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                              uint64_t, uint64_t, std::string>;
    std::tuple<std::string, std::vector<Row>> GetExportStatus() override;
    void SetCollectors(const std::vector<std::string>& urls) override;

    ExportHooks hooks_;
};

} // namespace nettally
