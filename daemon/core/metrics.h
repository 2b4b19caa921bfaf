// The Prometheus view of nettallyd's totals (README "Prometheus metrics"), built at scrape time
// from what the daemon holds (the collector, GetStatus, the cgroup ledger, the thresholds): no
// second copy of any counter is kept up to date. Pure: the exposer and the textfile writer
// (io/metrics.h) decide where the families go. Names and labels follow the Prometheus naming
// rules and node_exporter's network metrics (bytes and packets as `_total` counters, the
// direction a label).
#pragma once

#include "core/collector.h"
#include "core/status.h"

#include <prometheus/metric_family.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

class CgroupLedger;
class ThresholdEngine;

using MetricFamilies = std::vector<prometheus::MetricFamily>;

// metrics.listen: "ADDRESS:PORT" with an IPv4 address, or "[ADDRESS]:PORT" with an IPv6 one.
// Returns the canonical form (the one civetweb's listening_ports takes), or nullopt.
std::optional<std::string> parse_listen_address(std::string_view text);

// A new, empty family (name, help, counter or gauge). Built as a value and moved into the
// result when complete: a reference into a growing MetricFamilies would dangle.
prometheus::MetricFamily make_family(std::string name, std::string help, prometheus::MetricType type);
// A family with one sample and no labels, at the end of `out`.
void add_single(MetricFamilies& out, std::string name, std::string help, prometheus::MetricType type,
                double value);
// One sample of a counter or gauge family.
void add_sample(prometheus::MetricFamily& family, std::vector<prometheus::ClientMetric::Label> labels,
                double value);

// The hosts with the largest volume (l2 bytes sent + received), at most `n`, largest first; ties
// in key order, so the selection is stable between scrapes when nothing changes.
std::vector<const HostTotals*> top_hosts(const std::map<std::string, HostTotals>& hosts, size_t n);

// What one scrape reads. cgroups and thresholds may be null (not enabled / none).
struct MetricsSources {
    const Collector& collector;
    const Status& status;
    const CgroupLedger* cgroups = nullptr;
    const ThresholdEngine* thresholds = nullptr;
    size_t max_hosts = 0;
    std::string version;
};

MetricFamilies build_metrics(const MetricsSources& src);

// The text exposition format (version 0.0.4), as node_exporter's textfile collector reads it.
std::string metrics_text(const MetricFamilies& families);

} // namespace nettally
