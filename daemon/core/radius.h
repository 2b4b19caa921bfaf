// RADIUS accounting (RFC 2866 over the RFC 2865 packet format) as an identity source for
// subscribers (core/subscribers.h). Three pure parts:
//   - the packet: parse_accounting_request verifies the Request Authenticator and decodes the
//     attributes nettally uses; every malformation is refused with a Reason (the daemon counts
//     them by reason); accounting_response builds the answer with its Response Authenticator;
//   - RecentRequests: the answers to recent requests, so a retransmission (same client,
//     identifier and authenticator) is answered again with no second effect;
//   - RadiusSessions: the accounting sessions (NAS, Acct-Session-Id) and the bindings each holds
//     in the BindingTable: Start / Interim-Update open or refresh them, Stop closes them,
//     Accounting-On / Off closes every session of the NAS.
// The small parser is ours (README "Subscribers"): the RADIUS client libraries are written for
// the NAS side, not for a server that verifies requests. MD5 is libgcrypt's (libsystemd maps it anyway).
#pragma once

#include "core/subscribers.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace nettally::radius {

constexpr size_t kHeaderLen = 20; // code, identifier, length, authenticator
constexpr size_t kMaxPacketLen = 4096;
constexpr uint8_t kAccountingRequest = 4;
constexpr uint8_t kAccountingResponse = 5;

// Attribute types nettally reads (RFC 2865, 2866, 3162, 4818, 6911).
enum Attr : uint8_t {
    UserName = 1,
    NasIpAddress = 4,
    FramedIpAddress = 8,
    NasIdentifier = 32,
    AcctStatusType = 40,
    AcctDelayTime = 41,
    AcctSessionId = 44,
    EventTimestamp = 55,
    NasIpv6Address = 95,
    FramedIpv6Prefix = 97,
    DelegatedIpv6Prefix = 123,
    FramedIpv6Address = 168,
};

enum class StatusType : uint32_t {
    Start = 1,
    Stop = 2,
    InterimUpdate = 3,
    AccountingOn = 7,
    AccountingOff = 8
};
std::string_view to_string(StatusType t);

// Why a datagram was dropped (no answer). The names are the counters' and the corpus files'.
enum class Reason : uint8_t {
    Truncated,          // shorter than the 20-octet header
    BadLength,          // Length field below 20 or above 4096
    LengthPastDatagram, // Length field beyond the datagram
    UnknownCode,        // not an Accounting-Request (code 4)
    BadAuthenticator,   // Request Authenticator does not verify with the client's secret
    AttributeTooShort,  // attribute length 0 or 1
    AttributePastEnd,   // attribute runs past the packet's Length
    BadAttribute,       // a value of the wrong size or form (integer not 4 octets, empty string...)
    DuplicateAttribute, // a single-valued attribute given twice
    NoStatusType,       // Acct-Status-Type missing
    UnknownStatusType,  // a status nettally does not act on (Tunnel-*, Failed, ...)
    NoSessionId,        // Start / Interim / Stop without Acct-Session-Id
    NoUserName,         // Start / Interim without User-Name
    BadUserName,        // a User-Name that is no valid nettally user name (subscribers.h)
    BadPrefix,          // Framed-IPv6-Prefix / Delegated-IPv6-Prefix malformed
    BadTimestamp,       // Event-Timestamp before 2000 or more than a day ahead of our clock
    BadDelay,           // Acct-Delay-Time over a week
    UnknownClient,      // the source address is no configured client (daemon, not the parser)
    Count
};
constexpr size_t kReasonCount = static_cast<size_t>(Reason::Count);
std::string_view to_string(Reason r);

using Authenticator = std::array<uint8_t, 16>;

struct AccountingRequest {
    uint8_t identifier = 0;
    Authenticator authenticator{};
    StatusType status = StatusType::Start;
    std::string user_name;
    std::string session_id;
    std::string nas_identifier;      // "" when absent
    std::string nas_address;         // NAS-IP-Address or NAS-IPv6-Address as text, "" when absent
    std::optional<Prefix> framed_ip; // a /32; absent for 0.0.0.0, 255.255.255.254/255 (pool markers)
    std::vector<Prefix>
        ipv6_prefixes; // Framed-IPv6-Prefix, Delegated-IPv6-Prefix, Framed-IPv6-Address (/128)
    std::optional<uint32_t> event_timestamp; // Unix seconds
    uint32_t delay_s = 0;                    // Acct-Delay-Time

    // Every address and prefix the session holds (IPv4 first), without repeats.
    std::vector<Prefix> prefixes() const;
};

struct ParseResult {
    std::optional<AccountingRequest> request; // set when accepted
    Reason reason = Reason::Truncated;        // when refused
    std::string detail;                       // when refused: what exactly (no secret, no user data)
};

// Parses and verifies one datagram from a client with `secret`. now_s (Unix seconds) bounds the
// Event-Timestamp. Octets after the Length field are padding and ignored (RFC 2865 3).
ParseResult parse_accounting_request(const uint8_t* data, size_t size, std::string_view secret,
                                     uint64_t now_s);

// MD5 of the concatenated parts (libgcrypt; throws where MD5 is refused, as in FIPS mode).
Authenticator md5(std::initializer_list<std::pair<const uint8_t*, size_t>> parts);
// The Request Authenticator a NAS puts in an Accounting-Request (RFC 2866 3): packet is the whole
// request, its authenticator field taken as 16 zero octets.
Authenticator request_authenticator(const uint8_t* packet, size_t size, std::string_view secret);
// The Accounting-Response (code 5, no attributes) to a request with this identifier and
// authenticator: Response Authenticator = MD5(Code+Identifier+Length+RequestAuth+Secret).
std::vector<uint8_t> accounting_response(uint8_t identifier, const Authenticator& request_auth,
                                         std::string_view secret);

// The answers sent recently, by (client address, client port, identifier, authenticator); at most
// `capacity`, each for `keep_us`.
class RecentRequests {
public:
    explicit RecentRequests(size_t capacity = 8192, uint64_t keep_us = 60'000'000)
        : capacity_(capacity), keep_us_(keep_us) {}
    using Key = std::tuple<std::string, uint16_t, uint8_t, Authenticator>;
    const std::vector<uint8_t>* find(const Key& k, uint64_t now_us);
    void add(Key k, std::vector<uint8_t> response, uint64_t now_us);
    size_t size() const { return by_key_.size(); }

private:
    void expire(uint64_t now_us);
    size_t capacity_;
    uint64_t keep_us_;
    std::map<Key, std::vector<uint8_t>> by_key_;
    std::deque<std::pair<uint64_t, Key>> order_; // insertion time, oldest first
};

// What a request did to the sessions (for the counters and the log).
enum class Outcome { Opened, Refreshed, Closed, NasReset, Unknown, NoAddress, Stale };
std::string_view to_string(Outcome o);

// The accounting sessions. A session is (nas, Acct-Session-Id); nas is the NAS-Identifier, else
// the NAS address, else the client's address: what Accounting-On / Off name to end them all.
class RadiusSessions {
public:
    struct Session {
        std::string user;
        std::vector<Prefix> prefixes;
        uint64_t since_us = 0;
        uint64_t updated_us = 0;
        bool operator==(const Session&) const = default;
    };
    using Key = std::pair<std::string, std::string>; // nas, session id

    // The NAS name of a request from client_address (see above).
    static std::string nas_of(const AccountingRequest& r, const std::string& client_address);

    // Applies one accepted request at now_us to the sessions and the table's RADIUS bindings;
    // the binding changes are appended to *changes.
    Outcome apply(const AccountingRequest& r, const std::string& nas, BindingTable& table, uint64_t now_us,
                  std::vector<BindingChange>* changes);
    // Forgets the record of ended sessions older than keep_us (they keep a late Interim-Update
    // from opening a stopped session again).
    void expire(uint64_t now_us, uint64_t keep_us);

    const std::map<Key, Session>& open() const { return open_; }
    nlohmann::json to_json() const;
    static RadiusSessions from_json(const nlohmann::json& j); // throws std::exception on bad input

private:
    Outcome start(const AccountingRequest& r, const Key& key, BindingTable& table, uint64_t now_us,
                  std::vector<BindingChange>* changes);
    void end(const Key& key, BindingTable& table, uint64_t now_us, std::vector<BindingChange>* changes);

    std::map<Key, Session> open_;
    std::map<Key, uint64_t> ended_; // session -> when it ended
};

} // namespace nettally::radius
