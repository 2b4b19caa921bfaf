// Thresholds in nettallyd: see thresholds.h.
#include "app/thresholds.h"

#include "app/accounting.h"
#include "core/thresholds_alerts.h"
#include "io/records.h"
#include "kernel/enforce.h"
#include "os/error.h"

#include <spdlog/spdlog.h>

namespace nettally {

Thresholds::Thresholds(Datapath& dp, const Config& cfg, const LedgerUsage& usage, int64_t now_us,
                       UserIdOf user_id)
    : enforcer_(make_kernel_enforcer(dp, std::move(user_id))),
      engine_(std::make_unique<ThresholdEngine>(period_spec(cfg), *enforcer_)),
      file_(cfg.state_dir, "thresholds.json") {
    try {
        engine_->set_config(cfg.thresholds, usage, now_us);
    } catch (const ThresholdError& e) {
        throw ConfigError(cfg.path, 0, 0, "thresholds", e.what());
    }
    restore(now_us);
}

Thresholds::~Thresholds() = default;

void Thresholds::restore(int64_t now_us) {
    std::vector<std::string> problems;
    auto loaded = file_.read(&problems);
    for (const auto& p : problems)
        spdlog::error("thresholds: {}: skipped", p);
    if (!loaded)
        return;
    try {
        problems.clear();
        engine_->restore(nlohmann::json::parse(loaded->content), now_us, &problems);
        for (const auto& p : problems)
            spdlog::error("thresholds: {}", p);
        spdlog::info("thresholds: restored {} threshold(s) from {}", engine_->thresholds().size(),
                     loaded->from);
    } catch (const std::exception& e) {
        spdlog::error("thresholds: {} unusable ({}); runtime thresholds are lost", loaded->from, e.what());
    }
}

void Thresholds::save() {
    try {
        file_.write(engine_->to_json().dump());
    } catch (const SysError& e) {
        spdlog::error("thresholds: saving failed: {}", e.what());
    }
}

void Thresholds::bus_tried(Emit emit) {
    bus_tried_ = true;
    emit_ = std::move(emit);
    auto waiting = std::exchange(pending_, {});
    if (emit_)
        emit_(waiting);
}

void Thresholds::observe(const LedgerUsage& usage, int64_t now_us) {
    engine_->observe(usage, now_us);
    flush_events();
}

void Thresholds::flush_events() {
    auto events = engine_->take_events();
    for (const auto& e : events)
        spdlog::info("thresholds: {} {} {} usage {} step {}{}{}", to_string(e.kind), e.name, e.subject,
                     e.usage, e.step_index, e.reason.empty() ? "" : " ", e.reason);
    if (recorder_) {
        std::vector<AlertRecord> alerts;
        for (const auto& e : events) {
            const Threshold* t = engine_->find(e.name);
            alerts.push_back(alert_record_of(e, t ? &t->def : nullptr));
        }
        recorder_->add_alerts(alerts);
    }
    if (emit_)
        emit_(events);
    else if (!bus_tried_)
        pending_.insert(pending_.end(), events.begin(), events.end());
}

void Thresholds::check_reload(const Config& next, const LedgerUsage& usage) const {
    try {
        engine_->check_config(next.thresholds, usage);
    } catch (const ThresholdError& e) {
        throw ConfigError(next.path, 0, 0, "thresholds", e.what());
    }
}

void Thresholds::apply_reload(const Config& next, const LedgerUsage& usage, int64_t now_us) {
    engine_->set_config(next.thresholds, usage, now_us);
    engine_->set_period_spec(period_spec(next));
    flush_events();
    save();
}

void Thresholds::add_status(Status& m) const {
    enforcer_->add_status(m);
    m["thresholds"] = static_cast<uint32_t>(engine_->thresholds().size());
}

} // namespace nettally
