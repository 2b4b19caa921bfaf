// The names and wire shapes of nettallyd's D-Bus API, shared by the daemon's adaptors and by
// nettallyctl: bus name, object path, interface names, and one alias per struct signature of
// the introspection XML files in this folder (the generated glue spells them out inline).
// nettallyctl converts each alias into a named struct in one place (ctl/convert.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <sdbus-c++/Types.h>

namespace nettally::bus {

inline constexpr const char* kBusName = "org.nettally.Accounting1";
inline constexpr const char* kObjectPath = "/org/nettally/Accounting1";
inline constexpr const char* kAccountingInterface = "org.nettally.Accounting1";
inline constexpr const char* kThresholdsInterface = "org.nettally.Accounting1.Thresholds";
inline constexpr const char* kRecordsInterface = "org.nettally.Accounting1.Records";
inline constexpr const char* kUploadInterface = "org.nettally.Accounting1.Upload";
inline constexpr const char* kRulesInterface = "org.nettally.Accounting1.Rules";

// org.nettally.Accounting1.xml
// C (ttttt): packets, l2, l3, l4, payload.
using WireCounters = sdbus::Struct<uint64_t, uint64_t, uint64_t, uint64_t, uint64_t>;
// C4 (tttt): packets, l3, l4, payload (cgroup hooks see no layer 2).
using WireCounters4 = sdbus::Struct<uint64_t, uint64_t, uint64_t, uint64_t>;
// ListInterfaces (ssuCCa{sC}CC): name, role, ifindex, ingress, egress, unattributed,
// finished_ingress, finished_egress.
using WireInterface = sdbus::Struct<std::string, std::string, uint32_t, WireCounters, WireCounters,
                                    std::map<std::string, WireCounters>, WireCounters, WireCounters>;
// ListHosts (sssCCttCC): mac, ip, interface, sent, received, first_seen, last_seen, wan_sent,
// wan_received.
using WireHost = sdbus::Struct<std::string, std::string, std::string, WireCounters, WireCounters, uint64_t,
                               uint64_t, WireCounters, WireCounters>;
// ListFlows (ssysqsqCttys): interface, direction, proto, src, sport, dst, dport, counters,
// first_seen, last_seen, tcp_flags, class.
using WireFlow = sdbus::Struct<std::string, std::string, uint8_t, std::string, uint16_t, std::string,
                               uint16_t, WireCounters, uint64_t, uint64_t, uint8_t, std::string>;
// ListCgroups entry (ssC4C4C4C4b): path, unit, ingress, egress, self_ingress, self_egress, gone.
using WireCgroup =
    sdbus::Struct<std::string, std::string, WireCounters4, WireCounters4, WireCounters4, WireCounters4, bool>;
// GetHistory (stta{sC}): label, start, end, totals by subject.
using WirePeriod = sdbus::Struct<std::string, uint64_t, uint64_t, std::map<std::string, WireCounters>>;

// org.nettally.Accounting1.Subscribers.xml
// ListSubscribers (sssssttb): user, prefix, source, session, mac, since, until, effective.
using WireSubscriber =
    sdbus::Struct<std::string, std::string, std::string, std::string, std::string, uint64_t, uint64_t, bool>;
// ListUsers (ssCC): interface, user ("" = unbound), sent, received.
using WireUser = sdbus::Struct<std::string, std::string, WireCounters, WireCounters>;
// ListHostUsers (ssss): interface, mac, ip, user.
using WireHostUser = sdbus::Struct<std::string, std::string, std::string, std::string>;

// org.nettally.Accounting1.Rules.xml
// ListClasses (ssusCb): interface, direction, class_id, class, counters, gone.
using WireClass = sdbus::Struct<std::string, std::string, uint32_t, std::string, WireCounters, bool>;
// ListHostClasses (sssusCCb): interface, mac, ip, class_id, class, sent, received, gone.
using WireHostClass = sdbus::Struct<std::string, std::string, std::string, uint32_t, std::string,
                                    WireCounters, WireCounters, bool>;

// org.nettally.Accounting1.Records.xml ListSpool (stst): name, size, type, created.
using WireRecordFile = sdbus::Struct<std::string, uint64_t, std::string, uint64_t>;
// org.nettally.Accounting1.Upload.xml ListSpool (sttsus): name, size, mtime, state, attempts,
// last_error.
using WireUploadFile = sdbus::Struct<std::string, uint64_t, uint64_t, std::string, uint32_t, std::string>;

// org.nettally.Accounting1.Thresholds.xml signals, in the order of core's ThresholdEvent::Kind:
// each one's arguments after name and subject (both s), and the event figure each carries
// (Action and Reason are s, the rest t).
enum class EventArg : uint8_t { None, Usage, StepIndex, Value, Value2, Time, Action, Reason };
struct SignalArg {
    std::string_view name;
    EventArg from = EventArg::None;
};
struct ThresholdSignal {
    std::string_view name;
    std::array<SignalArg, 4> args; // the unused tail has from == None
};
inline constexpr std::array<SignalArg, 4> kActionSignalArgs = {
    {{"action", EventArg::Action}, {"reason", EventArg::Reason}, {"time", EventArg::Time}}};
inline constexpr std::array<ThresholdSignal, 7> kThresholdSignals = {{
    {"StepCrossed",
     {{{"usage", EventArg::Usage},
       {"step_index", EventArg::StepIndex},
       {"time", EventArg::Time},
       {"skipped", EventArg::Value2}}}},
    {"LimitReached", {{{"usage", EventArg::Usage}, {"limit", EventArg::Value}, {"time", EventArg::Time}}}},
    {"Burst",
     {{{"interval_ms", EventArg::Value},
       {"min_interval_ms", EventArg::Value2},
       {"step_index", EventArg::StepIndex},
       {"time", EventArg::Time}}}},
    {"RateExceeded",
     {{{"rate_bps", EventArg::Value}, {"limit_bps", EventArg::Value2}, {"time", EventArg::Time}}}},
    {"ActionApplied", kActionSignalArgs},
    {"ActionLifted", kActionSignalArgs},
    {"ActionFailed", kActionSignalArgs},
}};

} // namespace nettally::bus
