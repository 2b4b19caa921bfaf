// IPFIX flow export in nettallyd. See export.h.
#include "app/export.h"

#include "os/clock.h"
#include "os/file.h"
#include "os/system.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

namespace nettally {

namespace {

ExportTracker::ToUnixUs to_unix(const Collector& c) {
    return [&c](uint64_t stamp_ns) { return c.to_unix_us(stamp_ns); };
}

// The normalized URLs, or std::invalid_argument naming the first bad one.
std::vector<std::string> checked_urls(const std::vector<std::string>& urls) {
    if (urls.size() > export_limits::max_collectors)
        throw std::invalid_argument("at most " + std::to_string(export_limits::max_collectors) +
                                    " collectors");
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& text : urls) {
        std::string why;
        const auto u = parse_collector_url(text, &why);
        if (!u)
            throw std::invalid_argument("invalid collector URL '" + text + "': " + why);
        if (!seen.insert(u->text).second)
            throw std::invalid_argument("collector '" + u->text + "' listed twice");
        out.push_back(u->text);
    }
    return out;
}

} // namespace

FlowExport::FlowExport(const ExportConfig& cfg, const FlowTimeouts& flow_timeouts,
                       const std::filesystem::path& state_dir)
    : file_cfg_(cfg), path_(state_dir / "export.json"), flows_path_(state_dir / "export_flows.json"),
      boot_id_(read_boot_id()), flow_timeouts_(flow_timeouts) {
    std::ifstream in(path_);
    if (in) {
        try {
            const auto j = nlohmann::json::parse(in);
            const auto base = j.at("config_collectors").get<std::vector<std::string>>();
            if (base == cfg.collectors) {
                override_ = checked_urls(j.at("collectors").get<std::vector<std::string>>());
                override_base_ = base;
            } else {
                spdlog::info("export: the config's collectors changed since SetCollectors: they apply again");
                std::filesystem::remove(path_);
            }
        } catch (const std::exception& e) {
            spdlog::warn("export: ignoring {}: {}", path_.string(), e.what());
        }
    }
    running_ = effective();
    restore_tracker();
}

FlowExport::~FlowExport() = default;

void FlowExport::restore_tracker() {
    std::ifstream in(flows_path_);
    if (!in)
        return;
    try {
        const auto j = nlohmann::json::parse(in);
        if (j.at("boot_id").get<std::string>() == boot_id_ && enabled())
            tracker_.restore(j.at("flows"));
    } catch (const std::exception& e) {
        spdlog::warn("export: ignoring {}: {}", flows_path_.string(), e.what());
    }
}

void FlowExport::save() const {
    if (!enabled() && !std::filesystem::exists(flows_path_))
        return;
    const nlohmann::json j = {{"boot_id", boot_id_}, {"flows", tracker_.to_json()}};
    try {
        write_file_atomic(flows_path_, j.dump() + "\n", 0644);
    } catch (const std::exception& e) {
        spdlog::error("export: saving {}: {}", flows_path_.string(), e.what());
    }
}

ExportConfig FlowExport::effective() const {
    ExportConfig c = file_cfg_;
    if (override_)
        c.collectors = *override_;
    return c;
}

std::string FlowExport::source() const {
    if (override_)
        return "dbus";
    return file_cfg_.collectors.empty() ? "none" : "config";
}

void FlowExport::on_flow_finished(const FlowEntry& f, const Collector& c) {
    if (!enabled())
        return;
    if (auto r = tracker_.finished(f, end_reason(f, kernel_stamp_ns(), flow_timeouts_), to_unix(c)))
        pending_.push_back(*r);
}

void FlowExport::poll(const Collector& c) {
    if (!enabled())
        return;
    const auto interim = tracker_.interim(c.flows(), kernel_stamp_ns(), running_.active_timeout, to_unix(c));
    pending_.insert(pending_.end(), interim.begin(), interim.end());
    if (!exporter_)
        return;
    exporter_->send(pending_);
    pending_.clear();
}

void FlowExport::start(sd_event* ev, const Collector& c) {
    ev_ = ev;
    collector_ = &c;
    if (!enabled())
        return;
    exporter_ = std::make_unique<IpfixExporter>(
        ev, running_, templates_.ids(running_.enterprise, true, users_, classes_),
        [&c] {
            std::vector<ipfix::InterfaceName> table;
            for (const auto& [name, st] : c.interfaces())
                if (st.present)
                    table.push_back({st.info.ifindex, name});
            return table;
        },
        [this](const std::string& url, const std::string& error) {
            if (on_failed_)
                on_failed_(url, error);
        });
    exporter_->send(pending_);
    pending_.clear();
}

void FlowExport::restart() {
    const ExportConfig next = effective();
    if (next == running_)
        return;
    running_ = next;
    reopen();
}

void FlowExport::set_classes(bool on) {
    if (on == classes_)
        return;
    classes_ = on;
    if (!exporter_)
        return; // start() opens the collectors with the class templates
    spdlog::info("export: traffic classes {}: the collectors are reopened with the templates {}",
                 on ? "on" : "off", on ? "with rulesVersion and trafficClassId" : "without them");
    reopen();
}

void FlowExport::reopen() {
    // What a TCP collector still waits for goes to the same collector of the next exporter.
    auto waiting =
        exporter_ ? exporter_->take_waiting() : std::map<std::string, std::vector<ipfix::FlowRecord>>{};
    exporter_.reset();
    if (!enabled())
        tracker_.restore(nlohmann::json::array());
    if (ev_)
        start(ev_, *collector_);
    if (exporter_)
        for (const auto& [url, records] : waiting) {
            spdlog::info("export: {}: {} records kept across the change", url, records.size());
            exporter_->requeue(url, records); // in front of what start() handed over: older
        }
}

void FlowExport::apply(const ExportConfig& next, const FlowTimeouts& flow_timeouts) {
    flow_timeouts_ = flow_timeouts;
    file_cfg_ = next;
    if (override_ && override_base_ != next.collectors) {
        spdlog::info("export: the config's collectors changed: they replace the ones SetCollectors set");
        override_.reset();
        std::filesystem::remove(path_);
    }
    restart();
}

void FlowExport::set_collectors(const std::vector<std::string>& urls) {
    if (urls.empty()) {
        override_.reset();
        std::filesystem::remove(path_);
    } else {
        override_ = checked_urls(urls);
        override_base_ = file_cfg_.collectors;
        save_override();
    }
    restart();
    std::string list;
    for (const auto& u : running_.collectors)
        list += (list.empty() ? "" : ", ") + u;
    spdlog::info("export: collectors set over D-Bus ({}): {}", source(), list.empty() ? "none" : list);
}

void FlowExport::save_override() const {
    const nlohmann::json j = {{"collectors", *override_}, {"config_collectors", override_base_}};
    write_file_atomic(path_, j.dump() + "\n", 0644);
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
    m["export_collectors"] = static_cast<uint32_t>(running_.collectors.size());
    m["export_records"] = records;
    m["export_messages"] = messages;
    m["export_bytes"] = bytes;
    m["export_send_errors"] = errors;
    m["export_dropped"] = dropped;
    m["export_buffered"] = buffered;
    m["export_tracked_flows"] = static_cast<uint64_t>(tracker_.tracked());
}

} // namespace nettally
