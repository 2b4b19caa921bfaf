// HistoryFeed turns the Collector's running totals into per-period history:
// at each poll it hands History the change since the previous poll for every
// subject. Subjects:
//   iface:<name>:<ingress|egress>              interface totals
//   host:<iface>|<mac>|<ip>:<sent|received>    hosts on lan interfaces
//   user:<name>:<sent|received>                subscribers: a user's totals over every lan
//                                              interface (the unbound rest is not a subject)
//   class:<name>@<iface>:<ingress|egress>      traffic classes (rules:) per interface and
//                                              direction, gone classes included
//   flow:<iface>:<ingress|egress>:<proto>/<port>  flow aggregates by protocol and service port
//                                              (the lower of the two ports; "icmp", "icmpv6",
//                                              or the protocol number for portless protocols)
// Pure: the caller passes the wall-clock time.
#pragma once

#include "core/collector.h"
#include "core/history.h"

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace nettally {

std::string flow_aggregate(const FlowEntry& f, const std::string& interface);

class HistoryFeed {
public:
    explicit HistoryFeed(History history) : history_(std::move(history)) {}

    // A flow the collector finished (evicted): its counts stay in its aggregate.
    void on_flow_finished(const FlowEntry& f, const std::string& interface);
    // Adds what changed since the last feed (or since the restored state).
    void feed(const Collector& c, int64_t now_us);

    const History& history() const { return history_; }
    // Replaces the History (new period settings), keeping the feed's baselines.
    void set_history(History h) { history_ = std::move(h); }

    nlohmann::json to_json() const;
    // Throws std::exception on malformed input; then nothing changed. same_counters: the
    // kernel's flow map is the one the state saw (pins reused, no reboot), so the flow
    // aggregates continue exactly; otherwise the live flows are gone and the aggregates count
    // on from their saved totals.
    void restore(const nlohmann::json& j, const PeriodSpec& spec, bool same_counters);

private:
    std::map<std::string, Counts> cumulative(const Collector& c);

    History history_;
    std::map<std::string, Counts> last_;             // cumulative per subject at the last feed
    std::map<std::string, Counts> finished_flows_;   // evicted flows per aggregate, cumulative
    std::map<std::string, MonotonicCounts> flowagg_; // live + finished per aggregate, monotonic
    std::map<std::string, std::string> labels_;      // a cumulative's key -> its subject, where they differ
    bool have_last_ = false;
};

} // namespace nettally
