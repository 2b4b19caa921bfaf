// The metrics exposer, the textfile and the upload figures (metrics.h).
#include "io/metrics.h"

#include "os/error.h"
#include "os/fd.h"
#include "os/file.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <future>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace nettally {

namespace {

// A scrape waits this long for the loop (busy with a reload, stopping) before it answers empty.
constexpr std::chrono::seconds kLoopWait{10};

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

} // namespace

void add_upload_metrics(MetricFamilies& out, const Uploader::Status& s) {
    using prometheus::MetricType;
    struct Figure {
        const char* name;
        const char* help;
        MetricType type;
        uint64_t value;
    };
    const std::array<Figure, 9> figures{{
        {"nettally_upload_enabled", "1 if an upload target is set.", MetricType::Gauge, s.enabled ? 1u : 0u},
        {"nettally_upload_files_total", "Files uploaded.", MetricType::Counter, s.uploaded_files},
        {"nettally_upload_bytes_total", "Bytes of the files uploaded.", MetricType::Counter,
         s.uploaded_bytes},
        {"nettally_upload_failed_attempts_total", "Upload attempts that failed.", MetricType::Counter,
         s.failed_attempts},
        {"nettally_upload_consecutive_failures", "Failed attempts since the last success.", MetricType::Gauge,
         s.consecutive_failures},
        {"nettally_upload_dropped_files_total", "Spooled files deleted unsent (spool cap).",
         MetricType::Counter, s.dropped_files},
        {"nettally_upload_dropped_bytes_total", "Bytes of the files deleted unsent.", MetricType::Counter,
         s.dropped_bytes},
        {"nettally_upload_spool_files", "Files waiting in the spool.", MetricType::Gauge, s.spool_files},
        {"nettally_upload_spool_bytes", "Bytes waiting in the spool.", MetricType::Gauge, s.spool_bytes},
    }};
    for (const Figure& f : figures)
        add_single(out, f.name, f.help, f.type, static_cast<double>(f.value));
}

void write_metrics_textfile(const std::filesystem::path& dir, const MetricFamilies& families) {
    write_file_atomic(dir / "nettally.prom", metrics_text(families), 0644);
}

// Requests from the HTTP threads, served on the loop. Shared with the Endpoint, so a scrape that
// is still running when the exposer goes finds it alive (and stopped).
class MetricsExposer::Handoff {
public:
    explicit Handoff(Collect collect)
        : collect_(std::move(collect)), wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (!wake_)
            throw SysError(errno, "metrics: eventfd");
    }

    int fd() const { return wake_.get(); }

    // HTTP thread: the families as the loop builds them, or none (stopping, loop too busy).
    MetricFamilies request() {
        auto p = std::make_shared<std::promise<MetricFamilies>>();
        auto f = p->get_future();
        {
            std::lock_guard lock(mu_);
            if (stopping_)
                return {};
            pending_.push_back(p);
        }
        const uint64_t one = 1;
        if (write(wake_.get(), &one, sizeof one) != sizeof one)
            spdlog::warn("metrics: waking the loop: {}", std::strerror(errno));
        if (f.wait_for(kLoopWait) != std::future_status::ready) {
            spdlog::warn("metrics: the loop did not answer a scrape within {}s", kLoopWait.count());
            return {};
        }
        return f.get();
    }

    // Loop: one build serves every scrape waiting.
    void serve() {
        uint64_t n = 0;
        if (read(wake_.get(), &n, sizeof n) < 0 && errno != EAGAIN)
            spdlog::warn("metrics: reading the wake-up: {}", std::strerror(errno));
        std::vector<std::shared_ptr<std::promise<MetricFamilies>>> waiting;
        {
            std::lock_guard lock(mu_);
            waiting.swap(pending_);
        }
        if (waiting.empty())
            return;
        MetricFamilies families;
        const double start = thread_cpu_seconds();
        try {
            families = collect_();
        } catch (const std::exception& e) {
            spdlog::error("metrics: building the scrape failed: {}", e.what());
        }
        if (!families.empty())
            add_single(families, "nettally_scrape_collect_cpu_seconds",
                       "CPU time the event loop spent reading the totals for the previous scrape.",
                       prometheus::MetricType::Gauge, last_cpu_);
        last_cpu_ = thread_cpu_seconds() - start;
        for (auto& p : waiting)
            p->set_value(families);
    }

    // Scrapes that come from now on get nothing; those waiting are answered empty.
    void stop() {
        std::lock_guard lock(mu_);
        stopping_ = true;
        for (auto& p : pending_)
            p->set_value({});
        pending_.clear();
    }

private:
    Collect collect_;
    Fd wake_;
    std::mutex mu_;
    bool stopping_ = false;
    std::vector<std::shared_ptr<std::promise<MetricFamilies>>> pending_;
    double last_cpu_ = 0; // loop only
};

class MetricsExposer::Endpoint : public prometheus::Collectable {
public:
    explicit Endpoint(std::shared_ptr<Handoff> h) : handoff_(std::move(h)) {}
    std::vector<prometheus::MetricFamily> Collect() const override { return handoff_->request(); }

private:
    std::shared_ptr<Handoff> handoff_;
};

// GET /metrics on an IPv6 address, on a thread of its own (see metrics.h). A slow client holds
// the next one back for at most the socket timeouts.
class MetricsExposer::Ipv6Server {
public:
    Ipv6Server(const std::string& listen, std::shared_ptr<Handoff> h)
        : handoff_(std::move(h)), stop_(eventfd(0, EFD_CLOEXEC)) {
        const size_t close = listen.rfind("]:");
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        if (close == std::string::npos ||
            inet_pton(AF_INET6, listen.substr(1, close - 1).c_str(), &a.sin6_addr) != 1)
            throw std::runtime_error("not an IPv6 address: " + listen);
        a.sin6_port = htons(static_cast<uint16_t>(std::stoul(listen.substr(close + 2))));
        sock_ = Fd(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const int one = 1;
        if (!sock_ || !stop_ || setsockopt(sock_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            setsockopt(sock_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0 ||
            bind(sock_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(sock_.get(), 16) < 0)
            throw std::runtime_error(std::string("binding: ") + std::strerror(errno));
        port_ = ntohs(a.sin6_port);
        thread_ = std::thread([this] { run(); });
    }
    ~Ipv6Server() {
        const uint64_t one = 1;
        if (write(stop_.get(), &one, sizeof one) != sizeof one)
            spdlog::warn("metrics: stopping the IPv6 server: {}", std::strerror(errno));
        thread_.join();
    }
    Ipv6Server(const Ipv6Server&) = delete;
    Ipv6Server& operator=(const Ipv6Server&) = delete;
    int port() const { return port_; }

private:
    void run() {
        for (;;) {
            std::array<pollfd, 2> p{{{sock_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
            if (poll(p.data(), p.size(), -1) < 0 && errno != EINTR)
                return;
            if (p[1].revents)
                return;
            if (p[0].revents) {
                const Fd c(accept4(sock_.get(), nullptr, nullptr, SOCK_CLOEXEC));
                if (c)
                    serve(c.get());
            }
        }
    }

    void serve(int fd) const {
        const timeval timeout{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        std::string req;
        std::array<char, 4096> buf{};
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
            const ssize_t n = read(fd, buf.data(), buf.size());
            if (n <= 0)
                return;
            req.append(buf.data(), static_cast<size_t>(n));
        }
        const bool metrics = req.rfind("GET /metrics ", 0) == 0 || req.rfind("GET /metrics?", 0) == 0;
        const std::string body = metrics ? metrics_text(handoff_->request()) : "not found\n";
        std::string reply = std::string("HTTP/1.1 ") + (metrics ? "200 OK" : "404 Not Found") +
                            "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        for (size_t off = 0; off < reply.size();) {
            const ssize_t n = write(fd, reply.data() + off, reply.size() - off);
            if (n <= 0)
                return;
            off += static_cast<size_t>(n);
        }
    }

    std::shared_ptr<Handoff> handoff_;
    Fd stop_;
    Fd sock_;
    int port_ = 0;
    std::thread thread_;
};

MetricsExposer::MetricsExposer(sd_event* loop, const std::string& listen, Collect collect)
    : handoff_(std::make_shared<Handoff>(std::move(collect))),
      endpoint_(std::make_shared<Endpoint>(handoff_)) {
    const int r = sd_event_add_io(
        loop, wake_.put(), handoff_->fd(), EPOLLIN,
        [](sd_event_source*, int, uint32_t, void* h) {
            static_cast<Handoff*>(h)->serve();
            return 0;
        },
        handoff_.get());
    if (r < 0)
        throw SysError(-r, "metrics: adding the wake-up source");
    try {
        if (listen.starts_with("[")) {
            ipv6_ = std::make_unique<Ipv6Server>(listen, handoff_);
            return;
        }
        exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot listen on " + listen + ": " + e.what());
    }
    exposer_->RegisterCollectable(endpoint_);
}

MetricsExposer::~MetricsExposer() {
    handoff_->stop(); // before the HTTP threads are joined: none of them may wait for this loop
    exposer_.reset();
    ipv6_.reset();
}

std::vector<int> MetricsExposer::ports() const {
    return exposer_ ? exposer_->GetListeningPorts() : std::vector<int>{ipv6_->port()};
}

} // namespace nettally
