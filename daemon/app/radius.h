// The RADIUS accounting listener (subscribers.radius; README "Subscribers"): a non-blocking UDP
// socket on the daemon's loop, open only when configured. Each datagram: the client is the
// longest configured prefix holding its source address (else dropped, unknown_client); a
// retransmission (same client address and port, identifier and authenticator) is answered
// again from the recent-request cache with no second effect; otherwise the packet is verified
// and parsed (core/radius.h) with that client's secret, handed to the session handler, and
// answered. Nothing that fails is answered; every drop is counted by reason and logged at a
// bounded rate. Secrets are read from files or systemd credentials when the listener opens and
// are never logged.
#pragma once

#include "core/config.h"
#include "core/radius.h"
#include "core/status.h"
#include "os/event.h"
#include "os/fd.h"
#include "os/logging.h"

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace nettally {

// The listener's counters; they outlive a listener re-opened by a reload.
struct RadiusStats {
    uint64_t requests = 0;        // datagrams received
    uint64_t responses = 0;       // Accounting-Responses sent (retransmissions' included)
    uint64_t retransmissions = 0; // requests answered from the cache
    uint64_t send_errors = 0;
    std::array<uint64_t, radius::kReasonCount> dropped{};
    std::map<radius::Outcome, uint64_t> outcomes; // what accepted requests did

    uint64_t dropped_total() const;
    void add_status(Status& m) const; // radius_* keys (README "Subscribers")
};

class RadiusListener {
public:
    // What an accepted request does to the sessions (Subscribers::radius).
    using Handler = std::function<radius::Outcome(const radius::AccountingRequest&, const std::string& nas)>;

    // Binds cfg.listen and reads every client's secret. Throws SysError (socket) and
    // std::runtime_error (a secret that cannot be read: the message names the key and file).
    RadiusListener(sd_event* ev, const RadiusConfig& cfg, RadiusStats& stats, Handler handler);
    RadiusListener(const RadiusListener&) = delete;
    RadiusListener& operator=(const RadiusListener&) = delete;

    const std::string& address() const { return listen_; }

private:
    struct Client {
        Prefix address;
        std::string secret;
    };
    static int on_readable(sd_event_source*, int fd, uint32_t, void* self);
    void datagram(const uint8_t* data, size_t size, const sockaddr_storage& from, socklen_t from_len);
    const Client* client_of(uint8_t family, const uint32_t addr[4]) const;
    void drop(radius::Reason reason, const std::string& client, const std::string& detail);
    void answer(const std::vector<uint8_t>& response, const sockaddr_storage& to, socklen_t to_len);

    std::string listen_;
    std::vector<Client> clients_; // longest prefix first
    RadiusStats& stats_;
    Handler handler_;
    radius::RecentRequests recent_;
    LogLimiter log_limit_{10, 60'000'000};
    Fd sock_;
    EventSource src_;
};

} // namespace nettally
