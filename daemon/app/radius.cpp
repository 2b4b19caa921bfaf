// The RADIUS accounting listener: see radius.h.
#include "app/radius.h"

#include "core/units.h"
#include "os/clock.h"
#include "os/error.h"
#include "os/file.h"
#include "os/system.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace nettally {
namespace {

// Datagrams read per wakeup before the loop serves its other sources again.
constexpr int kBatch = 256;

// The source of a datagram as family + address (an IPv4-mapped IPv6 address as IPv4, as an IPv4
// client of a "[::]:PORT" listener arrives), its text and port.
struct Source {
    uint8_t family = NT_AF_INET;
    uint32_t addr[4] = {};
    std::string text;
    uint16_t port = 0;
};

Source source_of(const sockaddr_storage& ss) {
    Source s;
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        s.port = ntohs(a->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            std::memcpy(s.addr, a->sin6_addr.s6_addr + 12, 4);
        } else {
            s.family = NT_AF_INET6;
            std::memcpy(s.addr, &a->sin6_addr, 16);
        }
    } else {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        s.port = ntohs(a->sin_port);
        std::memcpy(s.addr, &a->sin_addr, 4);
    }
    inet_ntop(s.family == NT_AF_INET ? AF_INET : AF_INET6, s.addr, buf, sizeof(buf));
    s.text = buf;
    return s;
}

std::string secret_of(const RadiusClient& c, size_t i) {
    const std::string key = "subscribers.radius.clients[" + std::to_string(i) + "]";
    if (!c.secret_file.empty())
        return read_secret(c.secret_file, key + ".secret_file");
    return read_secret(credential_path(c.secret_credential, key + ".secret_credential"),
                       key + ".secret_credential");
}

} // namespace

uint64_t RadiusStats::dropped_total() const {
    uint64_t n = 0;
    for (const uint64_t d : dropped)
        n += d;
    return n;
}

void RadiusStats::add_status(Status& m) const {
    m["radius_requests"] = requests;
    m["radius_responses"] = responses;
    m["radius_retransmissions"] = retransmissions;
    m["radius_send_errors"] = send_errors;
    m["radius_dropped"] = dropped_total();
    for (size_t i = 0; i < dropped.size(); i++)
        m["radius_dropped_" + std::string(to_string(static_cast<radius::Reason>(i)))] = dropped[i];
    for (const auto o : {radius::Outcome::Opened, radius::Outcome::Refreshed, radius::Outcome::Closed,
                         radius::Outcome::NasReset, radius::Outcome::Unknown, radius::Outcome::NoAddress,
                         radius::Outcome::Stale}) {
        const auto it = outcomes.find(o);
        m["radius_" + std::string(to_string(o))] = it == outcomes.end() ? uint64_t{0} : it->second;
    }
}

RadiusListener::RadiusListener(sd_event* ev, const RadiusConfig& cfg, RadiusStats& stats, Handler handler)
    : listen_(cfg.listen), stats_(stats), handler_(std::move(handler)) {
    for (size_t i = 0; i < cfg.clients.size(); i++)
        clients_.push_back(Client{cfg.clients[i].address, secret_of(cfg.clients[i], i)});
    std::stable_sort(clients_.begin(), clients_.end(),
                     [](const Client& a, const Client& b) { return a.address.len > b.address.len; });
    const auto hp = parse_host_port(cfg.listen);
    if (!hp)
        throw SysError(EINVAL, "subscribers.radius.listen " + cfg.listen);
    sockaddr_storage ss;
    const socklen_t len = socket_address(hp->family, hp->addr, hp->port, ss);
    sock_.reset(::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock_)
        throw SysError(errno, "subscribers: RADIUS socket");
    if (::bind(sock_.get(), reinterpret_cast<const sockaddr*>(&ss), len) < 0)
        throw SysError(errno, "subscribers: RADIUS listener on " + listen_);
    const int r = sd_event_add_io(ev, src_.put(), sock_.get(), EPOLLIN, on_readable, this);
    if (r < 0)
        throw SysError(-r, "subscribers: adding the RADIUS listener to the event loop");
}

int RadiusListener::on_readable(sd_event_source*, int fd, uint32_t, void* self) {
    auto* l = static_cast<RadiusListener*>(self);
    uint8_t buf[radius::kMaxPacketLen + 1];
    for (int i = 0; i < kBatch; i++) {
        sockaddr_storage from{};
        socklen_t from_len = sizeof(from);
        const ssize_t n =
            ::recvfrom(fd, buf, sizeof(buf), MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 0)
            break; // EAGAIN: all read; anything else: the next wakeup tries again
        // MSG_TRUNC: n is the datagram's real size; a longer one than the buffer is cut (and
        // refused by its Length check, bad_length).
        l->datagram(buf, std::min(static_cast<size_t>(n), sizeof(buf)), from, from_len);
    }
    return 0;
}

const RadiusListener::Client* RadiusListener::client_of(uint8_t family, const uint32_t addr[4]) const {
    for (const auto& c : clients_)
        if (c.address.contains(family, addr))
            return &c;
    return nullptr;
}

void RadiusListener::datagram(const uint8_t* data, size_t size, const sockaddr_storage& from,
                              socklen_t from_len) {
    stats_.requests++;
    const Source src = source_of(from);
    const Client* client = client_of(src.family, src.addr);
    if (!client) {
        drop(radius::Reason::UnknownClient, src.text,
             "no subscribers.radius.clients entry holds the address");
        return;
    }
    const uint64_t now = monotonic_us();
    if (size >= radius::kHeaderLen) {
        radius::RecentRequests::Key key{src.text, src.port, data[1], {}};
        std::copy(data + 4, data + 20, std::get<3>(key).begin());
        if (const auto* cached = recent_.find(key, now)) {
            stats_.retransmissions++;
            answer(*cached, from, from_len);
            return;
        }
    }
    auto res = radius::parse_accounting_request(data, size, client->secret, realtime_us() / 1000000);
    if (!res.request) {
        drop(res.reason, src.text, res.detail);
        return;
    }
    const radius::AccountingRequest& req = *res.request;
    const radius::Outcome o = handler_(req, radius::RadiusSessions::nas_of(req, src.text));
    stats_.outcomes[o]++;
    auto response = radius::accounting_response(req.identifier, req.authenticator, client->secret);
    answer(response, from, from_len);
    recent_.add({src.text, src.port, req.identifier, req.authenticator}, std::move(response), now);
}

void RadiusListener::answer(const std::vector<uint8_t>& response, const sockaddr_storage& to,
                            socklen_t to_len) {
    if (::sendto(sock_.get(), response.data(), response.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                 to_len) < 0) {
        stats_.send_errors++;
        if (const auto held = log_limit_.allow(monotonic_us()))
            spdlog::warn("subscribers: RADIUS answer not sent: {}{}", std::strerror(errno),
                         *held ? fmt::format(" ({} similar lines held back)", *held) : "");
        return;
    }
    stats_.responses++;
}

void RadiusListener::drop(radius::Reason reason, const std::string& client, const std::string& detail) {
    stats_.dropped[static_cast<size_t>(reason)]++;
    if (const auto held = log_limit_.allow(monotonic_us()))
        spdlog::warn("subscribers: RADIUS request from {} dropped: {}: {}{}", client, to_string(reason),
                     detail, *held ? fmt::format(" ({} similar lines held back)", *held) : "");
}

} // namespace nettally
