// The rule bundle pull (rules_fetch.h): one libcurl easy transfer per attempt on a worker
// thread, its result handed to the loop through an eventfd; the schedule is core/rules_fetch.h's.
#include "io/rules_fetch.h"

#include "core/rules_fetch.h"
#include "io/curl_api.h"
#include "os/error.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace nettally {

struct RulesFetcher::Result {
    int curl_code = 0;
    long http_status = 0;
    std::string curl_error;
    std::vector<uint8_t> body;
    std::string etag;
    bool too_large = false;
    bool aborted = false;
};

namespace {

struct Transfer {
    std::vector<uint8_t>* body;
    std::string* etag;
    uint64_t max_size;
    bool* too_large;
    const std::atomic<bool>* abort;
};

size_t on_body(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const size_t len = size * n;
    if (t->body->size() + len > t->max_size) {
        *t->too_large = true;
        return 0; // CURLE_WRITE_ERROR: the rest is not read
    }
    t->body->insert(t->body->end(), data, data + len);
    return len;
}

size_t on_header(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const std::string_view line(data, size * n);
    // Each response (a redirect's or a 100 Continue's too) starts with its status line.
    if (line.starts_with("HTTP/"))
        t->etag->clear();
    else if (auto v = header_value(line, "etag"))
        *t->etag = *v;
    return size * n;
}

int on_progress(void* userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<Transfer*>(userp)->abort->load() ? 1 : 0;
}

// The worker thread's whole job.
void perform(const RulesFetchOptions& opt, const std::string& etag, const std::atomic<bool>& abort,
             RulesFetcher::Result& r) {
    // libcurl comes with the first pull (io/curl_api.h); without it the attempt fails like any other.
    if (std::string why; !curl_load(&why)) {
        r.curl_code = CURLE_FAILED_INIT;
        r.curl_error = why;
        return;
    }
    CURL* e = curl_easy_init();
    if (!e) {
        r.curl_code = CURLE_FAILED_INIT;
        r.curl_error = "curl_easy_init failed";
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = {};
    Transfer t{&r.body, &r.etag, opt.max_size, &r.too_large, &abort};
    curl_slist* headers = nullptr;
    if (!etag.empty())
        headers = curl_slist_append(headers, ("If-None-Match: " + etag).c_str());
    curl_easy_setopt(e, CURLOPT_URL, opt.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(opt.transfer_timeout.count()));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt.max_size));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
    if (headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (!opt.ca_file.empty())
        curl_easy_setopt(e, CURLOPT_CAINFO, opt.ca_file.c_str());
    const CURLcode code = curl_easy_perform(e);
    r.curl_code = code;
    r.aborted = code == CURLE_ABORTED_BY_CALLBACK;
    if (code == CURLE_FILESIZE_EXCEEDED)
        r.too_large = true;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.http_status);
    r.curl_error = errbuf[0] ? errbuf : curl_easy_strerror(code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(e);
}

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r')
            c = ' ';
    while (!s.empty() && s.back() == ' ')
        s.pop_back();
    return s;
}

} // namespace

RulesFetcher::RulesFetcher(sd_event* ev, RulesFetchOptions opt, OnBundle on_bundle, OnAttempt on_attempt)
    : ev_(ev), opt_(std::move(opt)), on_bundle_(std::move(on_bundle)), on_attempt_(std::move(on_attempt)),
      etag_(opt_.etag), rng_(std::random_device{}()) {
    if (!opt_.url.starts_with("http://") && !opt_.url.starts_with("https://"))
        throw std::invalid_argument("rules.url: '" + opt_.url + "' is not an http:// or https:// URL");
    if (opt_.refresh < rules_fetch_limits::min_refresh || opt_.refresh > rules_fetch_limits::max_refresh)
        throw std::invalid_argument("rules.refresh: out of range (1s..24h)");
    st_.url = opt_.url;
    done_fd_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!done_fd_)
        throw SysError(errno, "rules fetch: eventfd");
    int r = sd_event_add_io(ev_, done_src_.put(), done_fd_.get(), EPOLLIN, on_done, this);
    if (r < 0)
        throw SysError(-r, "rules fetch: watching the eventfd");
    // Accuracy 1 ms (sd-event's default of 250 ms would blur the backoff's first steps).
    r = sd_event_add_time(ev_, timer_.put(), CLOCK_MONOTONIC, 0, 1000, on_timer, this);
    if (r < 0)
        throw SysError(-r, "rules fetch: timer");
    // The first request as soon as the loop runs.
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

RulesFetcher::~RulesFetcher() {
    abort_ = true;
    if (worker_.joinable())
        worker_.join();
}

uint64_t RulesFetcher::now_us(clockid_t clock) const {
    uint64_t t = 0;
    sd_event_now(ev_, clock, &t);
    return t;
}

void RulesFetcher::fetch_now() {
    if (st_.in_flight)
        return;
    schedule(std::chrono::milliseconds(0));
}

void RulesFetcher::schedule(std::chrono::milliseconds delay) {
    next_mono_us_ = now_us(CLOCK_MONOTONIC) + static_cast<uint64_t>(delay.count()) * 1000;
    st_.next_attempt_us = now_us(CLOCK_REALTIME) + static_cast<uint64_t>(delay.count()) * 1000;
    sd_event_source_set_time(timer_.get(), next_mono_us_);
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

int RulesFetcher::on_timer(sd_event_source*, uint64_t, void* userp) {
    static_cast<RulesFetcher*>(userp)->start();
    return 0;
}

void RulesFetcher::start() {
    if (st_.in_flight)
        return;
    st_.in_flight = true;
    st_.next_attempt_us = 0;
    result_ = std::make_unique<Result>();
    // The worker gets its own copies; it touches nothing else of this object but result_ (read
    // only after the join) and abort_.
    worker_ = std::thread([this, opt = opt_, etag = etag_, r = result_.get()] {
        perform(opt, etag, abort_, *r);
        const uint64_t one = 1;
        if (write(done_fd_.get(), &one, sizeof one) != sizeof one)
            spdlog::error("rules fetch: waking the loop: {}", std::strerror(errno));
    });
}

int RulesFetcher::on_done(sd_event_source*, int fd, uint32_t, void* userp) {
    auto* f = static_cast<RulesFetcher*>(userp);
    uint64_t n = 0;
    if (read(fd, &n, sizeof n) < 0 || !f->st_.in_flight)
        return 0;
    f->worker_.join();
    f->st_.in_flight = false;
    const std::unique_ptr<Result> r = std::move(f->result_);
    f->finish(*r);
    return 0;
}

void RulesFetcher::finish(Result& r) {
    st_.attempts++;
    std::string error;
    bool changed = false;
    if (r.too_large)
        error = "larger than rules.max_size (" + std::to_string(opt_.max_size) + " bytes)";
    else if (r.curl_code != CURLE_OK)
        error = one_line(r.curl_error);
    else if (r.http_status == 200)
        changed = true;
    else if (r.http_status != 304)
        error = "HTTP " + std::to_string(r.http_status);

    if (!error.empty()) {
        st_.failures++;
        st_.consecutive_failures++;
        st_.last_error = error;
        spdlog::warn("rules fetch: {}: {} (failure {} in a row)", opt_.url, error, st_.consecutive_failures);
    } else {
        st_.consecutive_failures = 0;
        st_.last_error.clear();
        st_.last_success_us = now_us(CLOCK_REALTIME);
        if (changed)
            st_.fetches++;
        else
            st_.not_modified++;
    }
    std::uniform_real_distribution<double> unit(0, 1);
    schedule(rules_fetch_delay(opt_.refresh, st_.consecutive_failures, opt_.jitter, unit(rng_)));
    if (changed) {
        etag_ = r.etag;
        st_.etag = etag_;
        spdlog::info("rules fetch: {}: {} bytes{}", opt_.url, r.body.size(), // before the move below
                     r.etag.empty() ? "" : ", ETag " + r.etag);
        try {
            on_bundle_(std::move(r.body), r.etag);
        } catch (const std::exception& e) {
            spdlog::error("rules fetch: handling the bundle: {}", e.what());
        }
    }
    st_.etag = etag_;
    if (on_attempt_)
        on_attempt_(status());
}

RulesFetchStatus RulesFetcher::status() const {
    RulesFetchStatus s = st_;
    s.etag = etag_;
    return s;
}

} // namespace nettally
