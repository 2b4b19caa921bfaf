// The rule bundle pull: GETs rules.url every rules.refresh and hands a changed bundle to the
// daemon. Conditional requests (If-None-Match with the last ETag; the daemon may persist it
// through etag()/set_etag() and restore it after a restart), a size cap (max_size: a larger
// answer is aborted, by Content-Length or while it arrives), timeouts, https with an optional CA
// file, and backoff after failures (core/rules_fetch.h: refresh/8 doubling up to refresh).
// 200 -> on_bundle(bytes, etag); 304 -> nothing but a count; redirects are not followed (a 3xx
// is a failure: the URL should name the bundle). The bytes are what the server sent: the daemon
// checks the signature (core/classes_sign.h) and the bundle itself.
//
// Threading: each transfer runs curl_easy_perform on a worker thread of its own, and posts its
// result back to the sd-event loop through an eventfd; everything else (timer, counters, the
// callbacks) stays on the loop thread. Why not curl multi on sd-event as io/upload does: one
// small request every few minutes needs none of its concurrency, and the multi glue (socket and
// timer callbacks) is Uploader's own, tied to its one transfer; a thread that the loop only
// joins after its eventfd fired is a few lines with nothing to get out of step, and the loop
// never waits on the network (the metrics exposer hands work over the same way). The transfer
// checks an abort flag in curl's progress callback, so the destructor's join is prompt.
#pragma once

#include "os/event.h"
#include "os/fd.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <systemd/sd-event.h>
#include <thread>
#include <vector>

namespace nettally {

// The config's rules.url, rules.refresh, rules.ca_file, rules.max_size (the daemon fills it in).
struct RulesFetchOptions {
    std::string url; // http:// or https://
    std::chrono::milliseconds refresh{std::chrono::minutes(5)};
    std::string ca_file;             // https: the CA bundle to trust instead of the system's
    uint64_t max_size = 64ull << 20; // bytes; a larger answer is aborted and counted as a failure
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds transfer_timeout{std::chrono::seconds(60)};
    double jitter = 0.1; // shorten each wait by up to this fraction (0: exact schedule)
    std::string etag;    // the ETag of the bundle already loaded ("" for none)
};

struct RulesFetchStatus {
    std::string url;
    std::string etag;
    uint64_t attempts = 0;             // requests finished (any outcome)
    uint64_t fetches = 0;              // 200: a bundle handed over
    uint64_t not_modified = 0;         // 304
    uint64_t failures = 0;             // everything else (connection, TLS, HTTP status, size, timeout)
    uint32_t consecutive_failures = 0; // since the last 200 or 304
    std::string last_error;            // one line; "" once a request succeeds
    uint64_t last_success_us = 0;      // CLOCK_REALTIME of the last 200 or 304 (0: none yet)
    uint64_t next_attempt_us = 0;      // CLOCK_REALTIME of the next request (0: one is in flight)
    bool in_flight = false;
};

class RulesFetcher {
public:
    using OnBundle = std::function<void(std::vector<uint8_t> bytes, std::string etag)>;
    using OnAttempt = std::function<void(const RulesFetchStatus&)>;

    // Starts at once: the first request is made when the loop runs. on_attempt (optional) sees
    // the status after every finished request (logging, tests). Throws SysError (event sources)
    // and std::invalid_argument (url not http(s), refresh out of range).
    RulesFetcher(sd_event* ev, RulesFetchOptions opt, OnBundle on_bundle, OnAttempt on_attempt = {});
    // Aborts a transfer in flight and waits for its thread.
    ~RulesFetcher();
    RulesFetcher(const RulesFetcher&) = delete;
    RulesFetcher& operator=(const RulesFetcher&) = delete;

    // Ask now (ends a wait or a backoff); nothing when a request is in flight.
    void fetch_now();
    // The ETag sent as If-None-Match. set_etag("") makes the next 200 certain (e.g. after the
    // daemon refused a bundle for a reason that a reload may have changed).
    const std::string& etag() const { return etag_; }
    void set_etag(std::string etag) { etag_ = std::move(etag); }
    RulesFetchStatus status() const;

    struct Result; // a finished transfer, built on the worker thread

private:
    void start();
    void schedule(std::chrono::milliseconds delay);
    void finish(Result& r);
    uint64_t now_us(clockid_t clock) const;
    static int on_timer(sd_event_source* s, uint64_t usec, void* userp);
    static int on_done(sd_event_source* s, int fd, uint32_t revents, void* userp);

    sd_event* ev_;
    RulesFetchOptions opt_;
    OnBundle on_bundle_;
    OnAttempt on_attempt_;
    std::string etag_;
    Fd done_fd_; // eventfd: the worker's "finished"
    EventSource done_src_;
    EventSource timer_;
    std::thread worker_;
    std::atomic<bool> abort_{false};
    std::unique_ptr<Result> result_; // written by the worker before it signals, read after join
    RulesFetchStatus st_;
    uint64_t next_mono_us_ = 0;
    std::mt19937_64 rng_;
};

} // namespace nettally
