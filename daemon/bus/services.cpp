// The bus bundle: see services.h. sd-bus is driven by the daemon's loop: an io
// source on the connection's fd, a timer for its next timeout, and a prepare
// callback that asks sd-bus what it waits for before the loop sleeps.
#include "bus/services.h"

#include "bus/records.h"
#include "bus/upload.h"
#include "io/upload.h"
#include "os/error.h"

#include <spdlog/spdlog.h>

namespace nettally {

std::unique_ptr<BusServices> BusServices::connect(sd_event* ev, BusParts parts) {
    std::unique_ptr<BusServices> b(new BusServices());
    try {
        b->conn_ = sdbus::createSystemBusConnection();
        b->accounting_ =
            std::make_unique<AccountingService>(*b->conn_, parts.collector, std::move(parts.accounting));
        b->thresholds_ = std::make_unique<ThresholdsService>(*b->conn_, std::move(parts.thresholds));
        b->upload_ = std::make_unique<UploadService>(*b->conn_, parts.uploader);
        if (parts.recorder)
            b->records_ = std::make_unique<RecordsService>(*b->conn_, *parts.recorder);
        b->export_ = std::make_unique<ExportService>(*b->conn_, std::move(parts.exports));
        b->subscribers_ =
            std::make_unique<SubscribersService>(*b->conn_, parts.collector, std::move(parts.subscribers));
        b->rules_ = std::make_unique<RulesService>(*b->conn_, parts.collector, std::move(parts.rules));
        b->conn_->requestName(kBusName);
    } catch (const sdbus::Error& e) {
        spdlog::warn("dbus: system bus not available ({}: {}); counting continues without the API",
                     e.getName(), e.getMessage());
        return nullptr;
    }
    b->attach(ev);
    spdlog::info("dbus: serving {} at {}", kBusName, kObjectPath);
    return b;
}

BusServices::~BusServices() {
    // Loop sources first (members, declared last), then adaptors before the connection they use.
    io_.reset();
    time_.reset();
    rules_.reset();
    subscribers_.reset();
    export_.reset();
    records_.reset();
    upload_.reset();
    thresholds_.reset();
    accounting_.reset();
}

void BusServices::attach(sd_event* ev) {
    const auto pd = conn_->getEventLoopPollData();
    int r = sd_event_add_io(ev, io_.put(), pd.fd, static_cast<uint32_t>(pd.events), on_io, this);
    if (r >= 0)
        r = sd_event_source_set_prepare(io_.get(), on_prepare);
    if (r >= 0)
        r = sd_event_add_time(ev, time_.put(), CLOCK_MONOTONIC, 0, 0, on_time, this);
    if (r < 0)
        throw SysError(-r, "adding the D-Bus connection to the event loop");
}

UploadEvents BusServices::upload_events() {
    return upload_->events();
}

void BusServices::file_rotated(const ClosedFile& f) {
    if (records_)
        records_->file_rotated(f);
}

void BusServices::process() {
    try {
        while (conn_->processPendingRequest()) {
        }
    } catch (const sdbus::Error& e) {
        spdlog::error("dbus: {}: {}", e.getName(), e.getMessage());
    }
}

int BusServices::on_io(sd_event_source*, int, uint32_t, void* self) {
    static_cast<BusServices*>(self)->process();
    return 0;
}

int BusServices::on_time(sd_event_source*, uint64_t, void* self) {
    static_cast<BusServices*>(self)->process();
    return 0;
}

// Before the loop sleeps: ask sd-bus what it waits for next.
int BusServices::on_prepare(sd_event_source*, void* self) {
    auto* b = static_cast<BusServices*>(self);
    const auto pd = b->conn_->getEventLoopPollData();
    sd_event_source_set_io_events(b->io_.get(), static_cast<uint32_t>(pd.events));
    if (pd.timeout_usec == UINT64_MAX) {
        sd_event_source_set_enabled(b->time_.get(), SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(b->time_.get(), pd.timeout_usec);
        sd_event_source_set_enabled(b->time_.get(), SD_EVENT_ONESHOT);
    }
    return 0;
}

} // namespace nettally
