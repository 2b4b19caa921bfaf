// IPFIX flow export in nettallyd (README "Flow export (IPFIX)"): finished flows and interim
// records from the collector's flows, through the tracker (core/export.h), to the collectors'
// sockets (io/export.h). Records made before the loop runs (the first poll) wait for start().
// The collectors come from the config, or from SetCollectors (D-Bus), saved in
// state_dir/export.json until the config's export.collectors changes.
#pragma once

#include "core/collector.h"
#include "core/export.h"
#include "core/status.h"
#include "io/export.h"

#include <systemd/sd-event.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nettally {

class FlowExport {
public:
    // Reads state_dir/export.json (a SetCollectors override) if there is one.
    FlowExport(const ExportConfig& cfg, const FlowTimeouts& flow_timeouts,
               const std::filesystem::path& state_dir);
    ~FlowExport();
    FlowExport(const FlowExport&) = delete;
    FlowExport& operator=(const FlowExport&) = delete;

    bool enabled() const { return !running_.collectors.empty(); }
    // A flow the collector finished (in its poll).
    void on_flow_finished(const FlowEntry& f, const Collector& c);
    // After each poll: interim records of long flows, then everything made since the last call goes
    // out.
    void poll(const Collector& c);
    // Opens the collectors' sockets on the loop (throws SysError).
    void start(sd_event* ev, const Collector& c);
    // Reload: a changed export section reopens the collectors (new streams, templates first).
    void apply(const ExportConfig& next, const FlowTimeouts& flow_timeouts);
    // SetCollectors: validated (std::invalid_argument, nothing changes), saved (SysError), applied.
    // Empty: back to the config's collectors.
    void set_collectors(const std::vector<std::string>& urls);
    // "config", "dbus" or "none".
    std::string source() const;
    void on_failed(IpfixExporter::Failed f) { on_failed_ = std::move(f); }
    // The NAT table whose translations the records carry (IEs 225-228).
    void set_nat(const NatTable* nat) { tracker_.set_nat(nat); }
    // Subscribers: the flow templates end with userName (IE 371), each record the user of the flow's
    // lan host (`user_of`); takes effect when the collectors are next opened (start, reload).
    void set_users(ExportTracker::UserOf user_of) {
        users_ = static_cast<bool>(user_of);
        tracker_.set_user_of(std::move(user_of));
    }
    // Traffic classes: `on` while a ruleset is in force, then the flow templates carry rulesVersion
    // and trafficClassId (other template ids), each record the flow's class (`class_of`). A change
    // reopens the collectors (templates first), keeping what TCP collectors still wait for.
    void set_class_of(ExportTracker::ClassOf class_of) { tracker_.set_class_of(std::move(class_of)); }
    void set_classes(bool on);
    void add_status(Status& m) const;
    std::vector<ExportCollectorStatus> status() const;
    // state_dir/export_flows.json: what has been reported of live flows (ExportTracker), read
    // back at the next start in the same boot.
    void save() const;

private:
    ExportConfig effective() const;
    void restart(); // running_ := effective(), exporter reopened when it changed
    void reopen();  // a new exporter for running_, with what the old one's TCP collectors held
    void save_override() const;
    void restore_tracker();

    ExportConfig file_cfg_;
    // SetCollectors: the collectors, and the config's collectors when they were set.
    std::optional<std::vector<std::string>> override_;
    std::vector<std::string> override_base_;
    std::filesystem::path path_;
    std::filesystem::path flows_path_;
    std::string boot_id_;
    ExportConfig running_;
    FlowTimeouts flow_timeouts_;
    ExportTracker tracker_;
    // Template ids for the daemon's lifetime: a reload that changes the layout gets new ones.
    ipfix::TemplateRegistry templates_;
    bool users_ = false;
    bool classes_ = false;
    std::vector<ipfix::FlowRecord> pending_;
    sd_event* ev_ = nullptr;
    const Collector* collector_ = nullptr;
    IpfixExporter::Failed on_failed_;
    std::unique_ptr<IpfixExporter> exporter_;
};

} // namespace nettally
