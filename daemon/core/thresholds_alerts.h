// Alert records (records type "alert", README "Accounting records") from the threshold engine's
// events: what the recorder writes for each StepCrossed, LimitReached, Burst, RateExceeded and
// Action* event.
#pragma once

#include "core/records.h"
#include "core/thresholds.h"

namespace nettally {

// The alert record (records type "alert", README "Accounting records") of an event; `def` is the
// threshold's definition (nullptr when it is gone: the subject then comes from the event's text).
// metric/value/limit by event: step_crossed: "<layer>_<direction>" usage / the step boundary;
// limit_reached: the same usage / the limit; burst: "interval_ms" measured / min_interval_ms;
// rate_exceeded: "bytes_per_s" measured / rate_bps; action_*: the usage / 0.
AlertRecord alert_record_of(const ThresholdEvent& e, const ThresholdDef* def);

} // namespace nettally
