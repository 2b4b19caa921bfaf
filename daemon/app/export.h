// IPFIX flow export in nettallyd (README "Flow export (IPFIX)"): finished flows and interim
// records from the collector's flows, through the tracker (core/export.h), to the collectors'
// sockets (io/export.h). Records made before the loop runs (the first poll) wait for start().
#pragma once

#include "core/collector.h"
#include "core/export.h"
#include "core/status.h"
#include "io/export.h"

#include <systemd/sd-event.h>

#include <memory>
#include <vector>

namespace nettally {

class FlowExport {
public:
    FlowExport(const ExportConfig& cfg, const FlowTimeouts& flow_timeouts);
    ~FlowExport();
    FlowExport(const FlowExport&) = delete;
    FlowExport& operator=(const FlowExport&) = delete;

    bool enabled() const { return !cfg_.collectors.empty(); }
    // A flow the collector finished (in its poll).
    void on_flow_finished(const FlowEntry& f, const Collector& c);
    // After each poll: interim records of long flows, then everything made since the last call goes
    // out.
    void poll(const Collector& c);
    // Opens the collectors' sockets on the loop (throws SysError).
    void start(sd_event* ev, const Collector& c);
    // Reload: a changed export section reopens the collectors (new streams, templates first).
    void apply(const ExportConfig& next, const FlowTimeouts& flow_timeouts, sd_event* ev, const Collector& c);
    void add_status(Status& m) const;
    std::vector<ExportCollectorStatus> status() const;

private:
    ExportConfig cfg_;
    FlowTimeouts flow_timeouts_;
    ExportTracker tracker_;
    std::vector<ipfix::FlowRecord> pending_;
    std::unique_ptr<IpfixExporter> exporter_;
};

} // namespace nettally
