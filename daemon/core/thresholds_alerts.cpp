// Alert records of threshold events. See thresholds_alerts.h.
#include "core/thresholds_alerts.h"

#include <utility>

namespace nettally {

AlertRecord alert_record_of(const ThresholdEvent& e, const ThresholdDef* def) {
    using K = ThresholdEvent::Kind;
    AlertRecord a;
    a.time_us = e.time_us;
    a.name = e.name;
    static const std::pair<K, const char*> kEvents[] = {{K::StepCrossed, "step_crossed"},
                                                        {K::LimitReached, "limit_reached"},
                                                        {K::Burst, "burst"},
                                                        {K::RateExceeded, "rate_exceeded"},
                                                        {K::ActionApplied, "action_applied"},
                                                        {K::ActionLifted, "action_lifted"},
                                                        {K::ActionFailed, "action_failed"}};
    for (const auto& [k, text] : kEvents)
        if (k == e.kind)
            a.event = text;
    if (def) {
        a.subject_kind = std::string(to_string(def->subject.kind));
        a.subject = def->subject.value;
    } else if (const auto colon = e.subject.find(':'); colon != std::string::npos) {
        a.subject_kind = e.subject.substr(0, colon);
        a.subject = e.subject.substr(colon + 1);
    } else {
        a.subject = e.subject;
    }
    const std::string usage_metric =
        def ? std::string(to_string(def->layer)) + "_" + std::string(to_string(def->direction)) : "bytes";
    a.action = !e.action.empty() ? e.action : def ? std::string(to_string(def->action)) : "";
    switch (e.kind) {
    case K::StepCrossed:
        a.metric = usage_metric;
        a.value = e.usage;
        a.limit = def ? e.step_index * def->step : 0;
        a.message = "step " + std::to_string(e.step_index) + " crossed";
        if (e.value2)
            a.message += " (" + std::to_string(e.value2) + " steps skipped)";
        break;
    case K::LimitReached:
        a.metric = usage_metric;
        a.value = e.usage;
        a.limit = e.value;
        a.message = "limit reached";
        break;
    case K::Burst:
        a.metric = "interval_ms";
        a.value = e.value;
        a.limit = e.value2;
        a.message = "steps crossed " + std::to_string(e.value) + " ms apart";
        break;
    case K::RateExceeded:
        a.metric = "bytes_per_s";
        a.value = e.value;
        a.limit = e.value2;
        a.message = "rate above the set rate";
        break;
    case K::ActionApplied:
    case K::ActionLifted:
    case K::ActionFailed:
        a.metric = usage_metric;
        a.value = e.usage;
        a.message = e.reason;
        break;
    }
    return a;
}

} // namespace nettally
