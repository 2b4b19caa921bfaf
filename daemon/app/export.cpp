// IPFIX flow export in nettallyd. See export.h.
#include "app/export.h"

#include "os/clock.h"

namespace nettally {

namespace {

ExportTracker::ToUnixUs to_unix(const Collector& c) {
    return [&c](uint64_t boot_ns) { return c.to_unix_us(boot_ns); };
}

uint64_t boot_ns() {
    return boottime_us() * 1000;
}

} // namespace

FlowExport::FlowExport(const ExportConfig& cfg, const FlowTimeouts& flow_timeouts)
    : cfg_(cfg), flow_timeouts_(flow_timeouts) {}

FlowExport::~FlowExport() = default;

void FlowExport::on_flow_finished(const FlowEntry& f, const Collector& c) {
    if (!enabled())
        return;
    if (auto r = tracker_.finished(f, end_reason(f, boot_ns(), flow_timeouts_), to_unix(c)))
        pending_.push_back(*r);
}

void FlowExport::poll(const Collector& c) {
    if (!enabled())
        return;
    const auto interim = tracker_.interim(c.flows(), boot_ns(), cfg_.active_timeout, to_unix(c));
    pending_.insert(pending_.end(), interim.begin(), interim.end());
    if (!exporter_)
        return;
    exporter_->send(pending_);
    pending_.clear();
}

void FlowExport::start(sd_event* ev, const Collector& c) {
    if (!enabled())
        return;
    exporter_ = std::make_unique<IpfixExporter>(ev, cfg_, [&c] {
        std::vector<ipfix::InterfaceName> table;
        for (const auto& [name, st] : c.interfaces())
            if (st.present)
                table.push_back({st.info.ifindex, name});
        return table;
    });
    exporter_->send(pending_);
    pending_.clear();
}

void FlowExport::apply(const ExportConfig& next, const FlowTimeouts& flow_timeouts, sd_event* ev,
                       const Collector& c) {
    flow_timeouts_ = flow_timeouts;
    if (next == cfg_)
        return;
    exporter_.reset();
    cfg_ = next;
    if (!enabled())
        tracker_ = ExportTracker{};
    if (ev)
        start(ev, c);
}

std::vector<ExportCollectorStatus> FlowExport::status() const {
    return exporter_ ? exporter_->status() : std::vector<ExportCollectorStatus>{};
}

void FlowExport::add_status(Status& m) const {
    uint64_t records = 0, messages = 0, bytes = 0, errors = 0, dropped = 0, buffered = 0;
    for (const auto& s : status()) {
        records += s.records;
        messages += s.messages;
        bytes += s.bytes;
        errors += s.send_errors;
        dropped += s.dropped;
        buffered += s.buffered;
    }
    m["export_collectors"] = static_cast<uint32_t>(cfg_.collectors.size());
    m["export_records"] = records;
    m["export_messages"] = messages;
    m["export_bytes"] = bytes;
    m["export_send_errors"] = errors;
    m["export_dropped"] = dropped;
    m["export_buffered"] = buffered;
    m["export_tracked_flows"] = static_cast<uint64_t>(tracker_.tracked());
}

} // namespace nettally
