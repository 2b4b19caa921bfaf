// IPFIX export sockets. See export.h.
#include "io/export.h"

#include "os/clock.h"
#include "os/error.h"
#include "os/fd.h"
#include "os/system.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <deque>

namespace nettally {

namespace {

constexpr uint64_t kRetryMinUs = 1000000;
constexpr uint64_t kRetryMaxUs = 60000000;

uint32_t export_time() {
    return static_cast<uint32_t>(realtime_us() / 1000000);
}

} // namespace

class IpfixExporter::Connection {
public:
    Connection(sd_event* ev, CollectorUrl url, const ExportConfig& cfg, const InterfaceTable& table,
               const Failed& failed, const ipfix::TemplateIds& ids)
        : ev_(ev), url_(std::move(url)), cfg_(cfg), table_(table), failed_(failed),
          stream_(cfg.observation_domain, cfg.enterprise, cfg.max_message_size, ids) {
        status_.url = url_.text;
        retry_.attach(ev_, CLOCK_MONOTONIC, [this] { open(); });
        open();
    }

    bool udp() const { return url_.transport == ExportTransport::Udp; }

    void send(const std::vector<ipfix::FlowRecord>& records) {
        if (udp()) {
            send_udp(records);
            return;
        }
        for (const auto& r : records) {
            if (pending_.size() >= cfg_.buffer_max) {
                pending_.pop_front();
                status_.dropped++;
                if (!dropping_) {
                    dropping_ = true;
                    spdlog::warn("export: {}: buffer full ({} records): dropping the oldest records",
                                 url_.text, cfg_.buffer_max);
                }
            }
            pending_.push_back(r);
        }
        pump();
    }

    const std::string& url() const { return url_.text; }

    std::vector<ipfix::FlowRecord> take_waiting() {
        std::vector<ipfix::FlowRecord> out(in_flight_.begin(), in_flight_.end());
        out.insert(out.end(), pending_.begin(), pending_.end());
        in_flight_.clear();
        pending_.clear();
        return out;
    }

    void requeue(const std::vector<ipfix::FlowRecord>& records) {
        if (udp())
            return;
        pending_.insert(pending_.begin(), records.begin(), records.end());
        while (pending_.size() > cfg_.buffer_max) { // the oldest go, as send() drops them
            pending_.pop_front();
            status_.dropped++;
        }
        pump();
    }

    // The templates and the interface table (UDP: now; TCP: only at connect).
    void send_templates() {
        if (!udp())
            return;
        std::vector<ipfix::Bytes> msgs{stream_.templates(export_time())};
        for (auto& m : stream_.interfaces(export_time(), table_()))
            msgs.push_back(std::move(m));
        for (const auto& m : msgs)
            send_datagram(m, 0);
        since_templates_ = 0;
        status_.last_template_us = realtime_us();
    }

    ExportCollectorStatus status() const {
        ExportCollectorStatus s = status_;
        s.state = udp() ? "sending" : state_;
        s.buffered = pending_.size() + in_flight_.size();
        return s;
    }

private:
    void open() {
        sockaddr_storage ss;
        const socklen_t len = socket_address(url_.family, url_.addr.data(), url_.port, ss);
        const int type = (udp() ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
        Fd fd(::socket(ss.ss_family, type, 0));
        if (!fd)
            throw SysError(errno, "export: socket for " + url_.text);
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) < 0 && errno != EINPROGRESS) {
            if (udp())
                throw SysError(errno, "export: " + url_.text);
            fd_ = std::move(fd);
            fail(errno);
            return;
        }
        fd_ = std::move(fd);
        if (udp()) {
            send_templates();
            return;
        }
        state_ = "connecting";
        const int r =
            sd_event_add_io(ev_, io_.put(), fd_.get(), EPOLLOUT | EPOLLIN | EPOLLRDHUP, on_io, this);
        if (r < 0)
            throw SysError(-r, "export: adding " + url_.text + " to the event loop");
    }

    static int on_io(sd_event_source*, int, uint32_t events, void* self) {
        static_cast<Connection*>(self)->io(events);
        return 0;
    }

    void io(uint32_t events) {
        if (state_ == "connecting") {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &l);
            if (err || (events & (EPOLLERR | EPOLLHUP))) {
                fail(err ? err : ECONNREFUSED);
                return;
            }
            connected();
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            char buf[512];
            const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (events & (EPOLLHUP | EPOLLERR))) {
                fail(n == 0 ? ECONNRESET : errno);
                return;
            }
        }
        pump();
    }

    void connected() {
        state_ = "connected";
        retry_us_ = 0;
        spdlog::info("export: {}: connected; {} records waiting", url_.text, pending_.size());
        control_.push_back(stream_.templates(export_time()));
        for (auto& m : stream_.interfaces(export_time(), table_()))
            control_.push_back(std::move(m));
        status_.last_template_us = realtime_us();
    }

    // Writes what the socket takes: the message being sent, then control messages, then data.
    void pump() {
        while (state_ == "connected") {
            if (out_.empty() && !next_message())
                break;
            const ssize_t n = ::send(fd_.get(), out_.data() + off_, out_.size() - off_, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                status_.send_errors++;
                fail(errno);
                return;
            }
            off_ += static_cast<size_t>(n);
            if (off_ == out_.size())
                message_sent();
        }
        const uint32_t want = EPOLLIN | EPOLLRDHUP | (out_.empty() ? 0u : uint32_t{EPOLLOUT});
        if (io_ && state_ != "connecting")
            sd_event_source_set_io_events(io_.get(), want);
    }

    bool next_message() {
        off_ = 0;
        if (!control_.empty()) {
            out_ = std::move(control_.front());
            control_.pop_front();
            return true;
        }
        if (pending_.empty()) {
            if (dropping_)
                spdlog::info("export: {}: buffer drained; {} records dropped in all", url_.text,
                             status_.dropped);
            dropping_ = false;
            return false;
        }
        const std::vector<ipfix::FlowRecord> batch(pending_.begin(), pending_.end());
        const size_t k =
            ipfix::records_fitting(batch, cfg_.max_message_size, stream_.ids().users, stream_.ids().classes);
        in_flight_.assign(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(k));
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(k));
        in_flight_seq_ = stream_.sequence();
        out_ = stream_.flows(export_time(), in_flight_).front();
        return true;
    }

    void message_sent() {
        status_.messages++;
        status_.bytes += out_.size();
        status_.records += in_flight_.size();
        in_flight_.clear();
        out_.clear();
        off_ = 0;
    }

    void send_udp(const std::vector<ipfix::FlowRecord>& records) {
        size_t done = 0;
        while (done < records.size()) {
            if (cfg_.template_messages && since_templates_ >= cfg_.template_messages)
                send_templates();
            const std::span<const ipfix::FlowRecord> rest(records.data() + done, records.size() - done);
            const size_t k = ipfix::records_fitting(rest, cfg_.max_message_size, stream_.ids().users,
                                                    stream_.ids().classes);
            send_datagram(stream_.flows(export_time(), rest.subspan(0, k)).front(), k);
            since_templates_++;
            done += k;
        }
    }

    void send_datagram(const ipfix::Bytes& m, size_t records) {
        if (::send(fd_.get(), m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            status_.send_errors++;
            if (status_.last_error.empty() || !erroring_) {
                spdlog::warn("export: {}: send failed: {} (counting errors, sending on)", url_.text,
                             std::strerror(errno));
                if (failed_)
                    failed_(url_.text, std::strerror(errno));
            }
            status_.last_error = std::strerror(errno);
            erroring_ = true;
            return;
        }
        erroring_ = false;
        status_.messages++;
        status_.bytes += m.size();
        status_.records += records;
    }

    // The connection is lost: what was being sent goes back in front of the queue, with its
    // sequence numbers, and a new connection is tried after the backoff.
    void fail(int err) {
        io_.reset();
        fd_.reset();
        if (!in_flight_.empty()) {
            pending_.insert(pending_.begin(), in_flight_.begin(), in_flight_.end());
            stream_.set_sequence(in_flight_seq_);
            in_flight_.clear();
        }
        out_.clear();
        control_.clear();
        off_ = 0;
        const bool first = state_ != "down";
        state_ = "down";
        status_.last_error = std::strerror(err);
        retry_us_ = retry_us_ ? std::min(retry_us_ * 2, kRetryMaxUs) : kRetryMinUs;
        if (first) {
            spdlog::warn("export: {}: {}; reconnecting with backoff, buffering up to {} records", url_.text,
                         std::strerror(err), cfg_.buffer_max);
            if (failed_)
                failed_(url_.text, std::strerror(err));
        }
        retry_.arm_in(retry_us_);
    }

    sd_event* ev_;
    CollectorUrl url_;
    const ExportConfig& cfg_;
    const InterfaceTable& table_;
    const Failed& failed_;
    ipfix::Stream stream_;
    ExportCollectorStatus status_;
    std::string state_ = "connecting";
    Fd fd_;
    std::deque<ipfix::FlowRecord> pending_;
    std::vector<ipfix::FlowRecord> in_flight_;
    uint32_t in_flight_seq_ = 0;
    std::deque<ipfix::Bytes> control_;
    ipfix::Bytes out_;
    size_t off_ = 0;
    uint64_t retry_us_ = 0;
    uint32_t since_templates_ = 0;
    bool dropping_ = false;
    bool erroring_ = false;
    Timer retry_;
    EventSource io_;
};

IpfixExporter::IpfixExporter(sd_event* ev, const ExportConfig& cfg, const ipfix::TemplateIds& ids,
                             InterfaceTable table, Failed failed)
    : cfg_(cfg), table_(std::move(table)), failed_(std::move(failed)), refresh_(cfg.template_refresh) {
    for (const auto& text : cfg_.collectors) {
        std::string why;
        const auto url = parse_collector_url(text, &why);
        if (!url)
            throw std::invalid_argument("export: " + text + ": " + why);
        conns_.push_back(std::make_unique<Connection>(ev, *url, cfg_, table_, failed_, ids));
        spdlog::info("export: IPFIX to {} (observation domain {}, templates {} {} {} {})", url->text,
                     cfg_.observation_domain, ids.ipv4, ids.ipv6, ids.ipv4_nat, ids.interfaces);
    }
    template_timer_.attach(ev, CLOCK_MONOTONIC, [this] {
        send_templates();
        template_timer_.arm_in(static_cast<uint64_t>(refresh_.count()) * 1000u);
    });
    template_timer_.arm_in(static_cast<uint64_t>(refresh_.count()) * 1000u);
}

IpfixExporter::~IpfixExporter() = default;

std::map<std::string, std::vector<ipfix::FlowRecord>> IpfixExporter::take_waiting() {
    std::map<std::string, std::vector<ipfix::FlowRecord>> out;
    for (auto& c : conns_)
        if (!c->udp())
            if (auto w = c->take_waiting(); !w.empty())
                out[c->url()] = std::move(w);
    return out;
}

void IpfixExporter::requeue(const std::string& url, const std::vector<ipfix::FlowRecord>& records) {
    for (auto& c : conns_)
        if (c->url() == url)
            c->requeue(records);
}

void IpfixExporter::send(const std::vector<ipfix::FlowRecord>& records) {
    if (records.empty())
        return;
    for (auto& c : conns_)
        c->send(records);
}

void IpfixExporter::send_templates() {
    for (auto& c : conns_)
        c->send_templates();
}

std::vector<ExportCollectorStatus> IpfixExporter::status() const {
    std::vector<ExportCollectorStatus> out;
    for (const auto& c : conns_)
        out.push_back(c->status());
    return out;
}

} // namespace nettally
