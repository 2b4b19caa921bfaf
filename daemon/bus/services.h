// Everything nettallyd has on the system bus, owned in one place: the
// connection, the adaptors of org.nettally.Accounting1 and its Thresholds,
// Upload, Records, Export, Subscribers and Rules interfaces, the bus name, and the connection's place in
// the sd-event loop. connect() builds it all in order, or nothing; the
// destructor takes it down in reverse (loop sources, adaptors, connection).
// The rest of the daemon hands in plain references and hooks; no D-Bus type
// leaves this folder.
#pragma once

#include "bus/accounting.h"
#include "bus/export.h"
#include "bus/rules.h"
#include "bus/subscribers.h"
#include "bus/thresholds.h"
#include "os/event.h"

#include <memory>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-event.h>

namespace nettally {

class Recorder;
class RecordsService;
class Uploader;
class UploadService;
struct UploadEvents;
struct ClosedFile;

// What the adaptors serve.
struct BusParts {
    const Collector& collector;
    ServiceHooks accounting;
    ThresholdsHooks thresholds;
    Uploader* uploader = nullptr; // null: the Upload interface answers "disabled"
    Recorder* recorder = nullptr; // null: no Records interface
    ExportHooks exports;
    SubscribersHooks subscribers;
    RulesHooks rules;
};

class BusServices {
public:
    // Connects to the system bus, registers every interface and takes the bus
    // name. Without a system bus: a warning, and nullptr (counting goes on).
    // Throws SysError only if the loop cannot take the connection.
    static std::unique_ptr<BusServices> connect(sd_event* ev, BusParts parts);
    ~BusServices();
    BusServices(const BusServices&) = delete;
    BusServices& operator=(const BusServices&) = delete;

    ThresholdsService& thresholds() { return *thresholds_; }
    // Signals of the Upload and Records interfaces.
    UploadEvents upload_events();
    void file_rotated(const ClosedFile& f);
    void export_failed(const std::string& url, const std::string& error) { export_->failed(url, error); }
    void subscriber_changed(const BindingChange& c) { subscribers_->changed(c); }
    void rules_applied(uint64_t version, const std::string& hash) { rules_->applied(version, hash); }
    void rules_rejected(const std::string& reason) { rules_->rejected(reason); }

private:
    BusServices() = default;
    void attach(sd_event* ev); // throws SysError
    void process();
    static int on_io(sd_event_source*, int, uint32_t, void* self);
    static int on_time(sd_event_source*, uint64_t, void* self);
    static int on_prepare(sd_event_source*, void* self);

    std::unique_ptr<sdbus::IConnection> conn_;
    std::unique_ptr<AccountingService> accounting_;
    std::unique_ptr<ThresholdsService> thresholds_;
    std::unique_ptr<UploadService> upload_;
    std::unique_ptr<RecordsService> records_;
    std::unique_ptr<ExportService> export_;
    std::unique_ptr<SubscribersService> subscribers_;
    std::unique_ptr<RulesService> rules_;
    EventSource io_, time_; // the connection's fd and its timeout on the daemon's loop
};

} // namespace nettally
