// org.nettally.Accounting1.Export: see export.h and
// daemon/bus/org.nettally.Accounting1.Export.xml for the contract.
#include "bus/export.h"

#include "bus/access.h"
#include "bus/accounting.h"
#include "os/error.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace nettally {

ExportService::ExportService(sdbus::IConnection& conn, ExportHooks hooks)
    : AdaptorInterfaces(conn, kObjectPath), hooks_(std::move(hooks)) {
    registerAdaptor();
}

ExportService::~ExportService() {
    unregisterAdaptor();
}

void ExportService::failed(const std::string& url, const std::string& error) {
    // A signal that cannot be sent must not stop the export: log it and go on.
    try {
        emitExportFailed(url, error);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: ExportFailed not sent: {}", e.getMessage());
    }
}

std::tuple<std::string, std::vector<ExportService::Row>> ExportService::GetExportStatus() {
    std::vector<Row> rows;
    for (const auto& s : hooks_.status())
        rows.emplace_back(s.url, s.state, s.records, s.messages, s.bytes, s.send_errors, s.dropped,
                          s.buffered, s.last_template_us, s.last_error);
    return {hooks_.source(), rows};
}

void ExportService::SetCollectors(const std::vector<std::string>& urls) {
    require_privileged(getObject(), "SetCollectors");
    try {
        hooks_.set_collectors(urls);
    } catch (const std::invalid_argument& e) {
        throw sdbus::Error(kErrInvalidArgument, e.what());
    } catch (const std::exception& e) {
        throw sdbus::Error(kErrFailed, std::string("cannot set the collectors: ") + e.what());
    }
}

} // namespace nettally
