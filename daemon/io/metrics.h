// Where the Prometheus families (core/metrics.h) go: an HTTP exposer (prometheus-cpp pull, on
// metrics.listen) and the node_exporter textfile (metrics.textfile_dir), plus the upload
// figures, which live in this layer.
//
// IPv6: Debian's civetweb is built without IPv6 (mg_check_feature(8) == 0), so an IPv6 address
// is served by a minimal HTTP/1.1 responder of our own on one thread (GET /metrics only, one
// connection at a time, 5 s socket timeouts), with the same hand-off to the loop.
//
// Threads: the exposer answers on civetweb's threads, but the totals belong to the daemon's
// one sd-event loop. A scrape therefore asks the loop to build the families (an eventfd wakes
// it) and waits for them; the loop reads the totals between two of its other events, so a
// scrape never sees a half-done poll and no lock guards the counters. Serialising the text
// happens back on the HTTP thread, off the loop.
#pragma once

#include "core/metrics.h"
#include "io/upload.h"
#include "os/event.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Exposer;
}

namespace nettally {

// nettally_upload_*: the upload's counters and spool (Uploader::Status).
void add_upload_metrics(MetricFamilies& out, const Uploader::Status& s);

// The families in node_exporter's textfile format, replacing DIR/nettally.prom atomically
// (os/file.h; the temp file ".nettally.prom.tmp" is not a *.prom file, so the collector never
// reads a partial one). Throws SysError.
void write_metrics_textfile(const std::filesystem::path& dir, const MetricFamilies& families);

class MetricsExposer {
public:
    using Collect = std::function<MetricFamilies()>;

    // Serves GET /metrics on `listen` (core parse_listen_address form). `collect` runs on
    // `loop`'s thread. Throws std::runtime_error when it cannot listen (address in use, not
    // an address of this host).
    MetricsExposer(sd_event* loop, const std::string& listen, Collect collect);
    ~MetricsExposer();
    MetricsExposer(const MetricsExposer&) = delete;
    MetricsExposer& operator=(const MetricsExposer&) = delete;

    // The ports it listens on (civetweb's answer).
    std::vector<int> ports() const;

private:
    class Handoff;    // the requests of the HTTP threads, served by the loop
    class Endpoint;   // the prometheus::Collectable the exposer calls
    class Ipv6Server; // the IPv6 responder

    std::shared_ptr<Handoff> handoff_;
    EventSource wake_;
    std::shared_ptr<Endpoint> endpoint_;
    std::unique_ptr<prometheus::Exposer> exposer_; // IPv4
    std::unique_ptr<Ipv6Server> ipv6_;             // IPv6
};

} // namespace nettally
