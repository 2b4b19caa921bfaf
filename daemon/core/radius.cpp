// RADIUS accounting: see radius.h.
#include "core/radius.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <gcrypt.h>
#include <stdexcept>

namespace nettally::radius {
namespace {

constexpr uint64_t kEarliestTimestamp = 946684800; // 2000-01-01: older is a NAS clock never set
constexpr uint64_t kMaxAhead_s = 86400;            // a NAS clock a day ahead of ours is broken
constexpr uint32_t kMaxDelay_s = 7 * 86400;

struct Refusal {
    Reason reason;
    std::string detail;
};

uint32_t be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::string hex_bytes(const uint8_t* p, size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; i++) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

// Framed-IPv6-Prefix / Delegated-IPv6-Prefix (RFC 3162 2.3): reserved, prefix-length, prefix
// octets (only as many as the length needs may be sent). Bits past the length are cleared.
std::optional<Prefix> ipv6_prefix(const uint8_t* v, size_t n) {
    if (n < 2 || n > 18 || v[1] == 0 || v[1] > 128 || (n - 2) * 8 < v[1])
        return std::nullopt;
    Prefix p;
    p.family = NT_AF_INET6;
    p.len = v[1];
    uint8_t bytes[16] = {};
    std::memcpy(bytes, v + 2, n - 2);
    for (int bit = p.len; bit < 128; bit++)
        bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    std::memcpy(p.addr.data(), bytes, 16);
    return p;
}

bool single_valued(uint8_t type) {
    switch (type) {
    case UserName:
    case NasIpAddress:
    case FramedIpAddress:
    case NasIdentifier:
    case AcctStatusType:
    case AcctDelayTime:
    case AcctSessionId:
    case EventTimestamp:
    case NasIpv6Address:
        return true;
    default:
        return false;
    }
}

// A string attribute: 1..253 octets (RFC 2865 5: never empty).
std::optional<Refusal> text(std::string& out, const uint8_t* v, size_t n, const char* name) {
    if (n == 0)
        return Refusal{Reason::BadAttribute, std::string(name) + " is empty"};
    out.assign(reinterpret_cast<const char*>(v), n);
    return std::nullopt;
}

std::optional<Refusal> integer(uint32_t& out, const uint8_t* v, size_t n, const char* name) {
    if (n != 4)
        return Refusal{Reason::BadAttribute,
                       std::string(name) + " is " + std::to_string(n) + " octets, not 4"};
    out = be32(v);
    return std::nullopt;
}

std::optional<Refusal> address(std::string& out, const uint8_t* v, size_t n, int af, const char* name) {
    const size_t want = af == AF_INET ? 4 : 16;
    if (n != want)
        return Refusal{Reason::BadAttribute, std::string(name) + " is " + std::to_string(n) +
                                                 " octets, not " + std::to_string(want)};
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(af, v, buf, sizeof(buf));
    out = buf;
    return std::nullopt;
}

std::optional<Refusal> framed_ip(AccountingRequest& r, const uint8_t* v, size_t n) {
    std::string ignored;
    if (auto bad = address(ignored, v, n, AF_INET, "Framed-IP-Address"))
        return bad;
    const uint32_t host = be32(v);
    // 255.255.255.255 "the user may choose", 255.255.255.254 "the NAS selects from a pool": a
    // request, not an address; 0.0.0.0 likewise binds nothing.
    if (host == 0 || host >= 0xfffffffeu)
        return std::nullopt;
    Prefix p;
    p.family = NT_AF_INET;
    p.len = 32;
    std::memcpy(p.addr.data(), v, 4);
    r.framed_ip = p;
    return std::nullopt;
}

std::optional<Refusal> ipv6_attr(AccountingRequest& r, uint8_t type, const uint8_t* v, size_t n) {
    if (type == FramedIpv6Address) {
        if (n != 16)
            return Refusal{Reason::BadAttribute,
                           "Framed-IPv6-Address is " + std::to_string(n) + " octets, not 16"};
        Prefix p;
        p.family = NT_AF_INET6;
        p.len = 128;
        std::memcpy(p.addr.data(), v, 16);
        r.ipv6_prefixes.push_back(p);
        return std::nullopt;
    }
    const auto p = ipv6_prefix(v, n);
    if (!p)
        return Refusal{Reason::BadPrefix, std::string(type == FramedIpv6Prefix ? "Framed" : "Delegated") +
                                              "-IPv6-Prefix malformed (" + std::to_string(n) + " octets)"};
    r.ipv6_prefixes.push_back(*p);
    return std::nullopt;
}

std::optional<Refusal> status_type(AccountingRequest& r, const uint8_t* v, size_t n) {
    uint32_t s = 0;
    if (auto bad = integer(s, v, n, "Acct-Status-Type"))
        return bad;
    switch (static_cast<StatusType>(s)) {
    case StatusType::Start:
    case StatusType::Stop:
    case StatusType::InterimUpdate:
    case StatusType::AccountingOn:
    case StatusType::AccountingOff:
        r.status = static_cast<StatusType>(s);
        return std::nullopt;
    }
    return Refusal{Reason::UnknownStatusType, "Acct-Status-Type " + std::to_string(s)};
}

// One attribute's value into the request; other types are skipped.
std::optional<Refusal> attribute(AccountingRequest& r, uint8_t type, const uint8_t* v, size_t n) {
    switch (type) {
    case UserName:
        return text(r.user_name, v, n, "User-Name");
    case AcctSessionId:
        return text(r.session_id, v, n, "Acct-Session-Id");
    case NasIdentifier:
        return text(r.nas_identifier, v, n, "NAS-Identifier");
    case NasIpAddress:
        return address(r.nas_address, v, n, AF_INET, "NAS-IP-Address");
    case NasIpv6Address:
        return address(r.nas_address, v, n, AF_INET6, "NAS-IPv6-Address");
    case FramedIpAddress:
        return framed_ip(r, v, n);
    case FramedIpv6Prefix:
    case DelegatedIpv6Prefix:
    case FramedIpv6Address:
        return ipv6_attr(r, type, v, n);
    case AcctStatusType:
        return status_type(r, v, n);
    case AcctDelayTime:
        return integer(r.delay_s, v, n, "Acct-Delay-Time");
    case EventTimestamp: {
        uint32_t t = 0;
        if (auto bad = integer(t, v, n, "Event-Timestamp"))
            return bad;
        r.event_timestamp = t;
        return std::nullopt;
    }
    default:
        return std::nullopt;
    }
}

// The attribute list (after the header, up to len): walks it, decodes what nettally reads.
std::optional<Refusal> attributes(AccountingRequest& r, const uint8_t* data, size_t len) {
    std::array<bool, 256> seen{};
    for (size_t off = kHeaderLen; off < len;) {
        if (len - off < 2)
            return Refusal{Reason::AttributeTooShort,
                           "an attribute header cut at the end (offset " + std::to_string(off) + ")"};
        const uint8_t type = data[off], alen = data[off + 1];
        if (alen < 2)
            return Refusal{Reason::AttributeTooShort, "attribute " + std::to_string(type) + " has length " +
                                                          std::to_string(alen) + " (offset " +
                                                          std::to_string(off) + ")"};
        if (off + alen > len)
            return Refusal{Reason::AttributePastEnd, "attribute " + std::to_string(type) + " of length " +
                                                         std::to_string(alen) + " runs past the packet"};
        if (single_valued(type) && seen[type])
            return Refusal{Reason::DuplicateAttribute, "attribute " + std::to_string(type) + " given twice"};
        seen[type] = true;
        if (auto bad = attribute(r, type, data + off + 2, alen - 2u))
            return bad;
        off += alen;
    }
    if (!seen[AcctStatusType])
        return Refusal{Reason::NoStatusType, "no Acct-Status-Type"};
    return std::nullopt;
}

// What a status needs, and times that make sense.
std::optional<Refusal> semantics(const AccountingRequest& r, uint64_t now_s) {
    const bool session = r.status == StatusType::Start || r.status == StatusType::Stop ||
                         r.status == StatusType::InterimUpdate;
    if (session && r.session_id.empty())
        return Refusal{Reason::NoSessionId, std::string(to_string(r.status)) + " without Acct-Session-Id"};
    if ((r.status == StatusType::Start || r.status == StatusType::InterimUpdate) && r.user_name.empty())
        return Refusal{Reason::NoUserName, std::string(to_string(r.status)) + " without User-Name"};
    std::string why;
    if (!r.user_name.empty() && !valid_user_name(r.user_name, &why))
        return Refusal{Reason::BadUserName, why};
    if (r.event_timestamp &&
        (*r.event_timestamp < kEarliestTimestamp || *r.event_timestamp > now_s + kMaxAhead_s))
        return Refusal{Reason::BadTimestamp, "Event-Timestamp " + std::to_string(*r.event_timestamp) +
                                                 " (our clock: " + std::to_string(now_s) + ")"};
    if (r.delay_s > kMaxDelay_s)
        return Refusal{Reason::BadDelay, "Acct-Delay-Time " + std::to_string(r.delay_s) + " s"};
    return std::nullopt;
}

ParseResult refused(Reason r, std::string detail) {
    return ParseResult{std::nullopt, r, std::move(detail)};
}

} // namespace

std::string_view to_string(StatusType t) {
    switch (t) {
    case StatusType::Start:
        return "Start";
    case StatusType::Stop:
        return "Stop";
    case StatusType::InterimUpdate:
        return "Interim-Update";
    case StatusType::AccountingOn:
        return "Accounting-On";
    case StatusType::AccountingOff:
        return "Accounting-Off";
    }
    return "?";
}

std::string_view to_string(Reason r) {
    static constexpr std::array<std::string_view, kReasonCount> names = {
        "truncated",           "bad_length",          "length_past_datagram", "unknown_code",
        "bad_authenticator",   "attribute_too_short", "attribute_past_end",   "bad_attribute",
        "duplicate_attribute", "no_status_type",      "unknown_status_type",  "no_session_id",
        "no_user_name",        "bad_user_name",       "bad_prefix",           "bad_timestamp",
        "bad_delay",           "unknown_client"};
    const auto i = static_cast<size_t>(r);
    return i < names.size() ? names[i] : "?";
}

std::string_view to_string(Outcome o) {
    switch (o) {
    case Outcome::Opened:
        return "opened";
    case Outcome::Refreshed:
        return "refreshed";
    case Outcome::Closed:
        return "closed";
    case Outcome::NasReset:
        return "nas_reset";
    case Outcome::Unknown:
        return "unknown_session";
    case Outcome::NoAddress:
        return "no_address";
    case Outcome::Stale:
        return "stale";
    }
    return "?";
}

std::vector<Prefix> AccountingRequest::prefixes() const {
    std::vector<Prefix> out;
    if (framed_ip)
        out.push_back(*framed_ip);
    for (const auto& p : ipv6_prefixes)
        if (std::find(out.begin(), out.end(), p) == out.end())
            out.push_back(p);
    return out;
}

Authenticator md5(std::initializer_list<std::pair<const uint8_t*, size_t>> parts) {
    // libgcrypt wants its version check before first use; libsystemd initialises it the same way
    // (and skips that when it is done already), so whichever comes first, the other finds it done.
    static const bool ready = [] {
        if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
            return true;
        if (!gcry_check_version(GCRYPT_VERSION))
            return false;
        gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
        gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
        return true;
    }();
    std::vector<gcry_buffer_t> iov;
    iov.reserve(parts.size());
    for (const auto& [p, len] : parts)
        iov.push_back({.size = len, .off = 0, .len = len, .data = const_cast<uint8_t*>(p)});
    Authenticator out{};
    if (!ready || gcry_md_get_algo_dlen(GCRY_MD_MD5) != out.size() ||
        gcry_md_hash_buffers(GCRY_MD_MD5, 0, out.data(), iov.data(), static_cast<int>(iov.size())) != 0)
        throw std::runtime_error("MD5 unavailable in libgcrypt (FIPS mode?)");
    return out;
}

Authenticator request_authenticator(const uint8_t* packet, size_t size, std::string_view secret) {
    static constexpr uint8_t zero[16] = {};
    return md5({{packet, 4},
                {zero, 16},
                {packet + kHeaderLen, size - kHeaderLen},
                {reinterpret_cast<const uint8_t*>(secret.data()), secret.size()}});
}

std::vector<uint8_t> accounting_response(uint8_t identifier, const Authenticator& request_auth,
                                         std::string_view secret) {
    std::vector<uint8_t> out(kHeaderLen);
    out[0] = kAccountingResponse;
    out[1] = identifier;
    out[2] = 0;
    out[3] = kHeaderLen;
    const Authenticator a = md5({{out.data(), 4},
                                 {request_auth.data(), request_auth.size()},
                                 {reinterpret_cast<const uint8_t*>(secret.data()), secret.size()}});
    std::copy(a.begin(), a.end(), out.begin() + 4);
    return out;
}

ParseResult parse_accounting_request(const uint8_t* data, size_t size, std::string_view secret,
                                     uint64_t now_s) {
    if (size < kHeaderLen)
        return refused(Reason::Truncated, std::to_string(size) + " octets, the header alone is 20");
    const size_t len = (size_t{data[2]} << 8) | data[3];
    if (len < kHeaderLen || len > kMaxPacketLen)
        return refused(Reason::BadLength, "Length " + std::to_string(len) + " (20 .. 4096)");
    if (len > size)
        return refused(Reason::LengthPastDatagram, "Length " + std::to_string(len) + " in a datagram of " +
                                                       std::to_string(size) + " octets");
    if (data[0] != kAccountingRequest)
        return refused(Reason::UnknownCode,
                       "code " + std::to_string(data[0]) + ", not Accounting-Request (4)");
    const Authenticator want = request_authenticator(data, len, secret);
    if (std::memcmp(want.data(), data + 4, want.size()) != 0)
        return refused(Reason::BadAuthenticator, "Request Authenticator " + hex_bytes(data + 4, 16) +
                                                     " does not verify (wrong secret?)");
    AccountingRequest r;
    r.identifier = data[1];
    std::copy(data + 4, data + 20, r.authenticator.begin());
    if (auto bad = attributes(r, data, len))
        return refused(bad->reason, std::move(bad->detail));
    if (auto bad = semantics(r, now_s))
        return refused(bad->reason, std::move(bad->detail));
    return ParseResult{std::move(r), Reason::Truncated, {}};
}

const std::vector<uint8_t>* RecentRequests::find(const Key& k, uint64_t now_us) {
    expire(now_us);
    auto it = by_key_.find(k);
    return it == by_key_.end() ? nullptr : &it->second;
}

void RecentRequests::add(Key k, std::vector<uint8_t> response, uint64_t now_us) {
    expire(now_us);
    while (by_key_.size() >= capacity_ && !order_.empty()) {
        by_key_.erase(order_.front().second);
        order_.pop_front();
    }
    auto [it, fresh] = by_key_.insert_or_assign(k, std::move(response));
    if (fresh)
        order_.emplace_back(now_us, std::move(k));
}

void RecentRequests::expire(uint64_t now_us) {
    while (!order_.empty() && order_.front().first + keep_us_ < now_us) {
        by_key_.erase(order_.front().second);
        order_.pop_front();
    }
}

std::string RadiusSessions::nas_of(const AccountingRequest& r, const std::string& client_address) {
    if (!r.nas_identifier.empty())
        return r.nas_identifier;
    if (!r.nas_address.empty())
        return r.nas_address;
    return client_address;
}

Outcome RadiusSessions::apply(const AccountingRequest& r, const std::string& nas, BindingTable& table,
                              uint64_t now_us, std::vector<BindingChange>* changes) {
    const Key key{nas, r.session_id};
    switch (r.status) {
    case StatusType::Start:
    case StatusType::InterimUpdate:
        return start(r, key, table, now_us, changes);
    case StatusType::Stop:
        if (!open_.count(key))
            return Outcome::Unknown;
        end(key, table, now_us, changes);
        return Outcome::Closed;
    case StatusType::AccountingOn:
    case StatusType::AccountingOff: {
        std::vector<Key> of_nas;
        for (const auto& [k, s] : open_)
            if (k.first == nas)
                of_nas.push_back(k);
        for (const auto& k : of_nas)
            end(k, table, now_us, changes);
        // A NAS that restarts may count its session ids from the start again.
        std::erase_if(ended_, [&](const auto& e) { return e.first.first == nas; });
        return Outcome::NasReset;
    }
    }
    return Outcome::Unknown;
}

Outcome RadiusSessions::start(const AccountingRequest& r, const Key& key, BindingTable& table,
                              uint64_t now_us, std::vector<BindingChange>* changes) {
    // An Interim-Update of a session that has ended (late or reordered) opens nothing; a Start
    // begins the session again (a NAS may reuse ids).
    if (r.status == StatusType::InterimUpdate && ended_.count(key))
        return Outcome::Stale;
    ended_.erase(key);
    const std::vector<Prefix> want = r.prefixes();
    auto it = open_.find(key);
    if (want.empty() && it == open_.end())
        return Outcome::NoAddress;
    const bool fresh = it == open_.end();
    if (fresh)
        it = open_.emplace(key, Session{r.user_name, {}, now_us, now_us}).first;
    Session& s = it->second;
    // What the session no longer holds (or holds for another user now) closes; the rest opens or
    // stays (BindingTable::open is a no-op for a binding already open as wanted).
    for (const auto& p : s.prefixes)
        if (s.user != r.user_name || std::find(want.begin(), want.end(), p) == want.end()) {
            auto c = table.close(BindingSource::Radius, p, key.second, now_us);
            changes->insert(changes->end(), c.begin(), c.end());
        }
    for (const auto& p : want) {
        auto c = table.open(BindingSource::Radius, WantedBinding{r.user_name, p, key.second, ""}, now_us);
        changes->insert(changes->end(), c.begin(), c.end());
    }
    s.user = r.user_name;
    s.prefixes = want;
    s.updated_us = now_us;
    return fresh ? Outcome::Opened : Outcome::Refreshed;
}

void RadiusSessions::end(const Key& key, BindingTable& table, uint64_t now_us,
                         std::vector<BindingChange>* changes) {
    auto it = open_.find(key);
    if (it == open_.end())
        return;
    for (const auto& p : it->second.prefixes) {
        auto c = table.close(BindingSource::Radius, p, key.second, now_us);
        changes->insert(changes->end(), c.begin(), c.end());
    }
    open_.erase(it);
    ended_[key] = now_us;
}

void RadiusSessions::expire(uint64_t now_us, uint64_t keep_us) {
    std::erase_if(ended_, [&](const auto& e) { return e.second + keep_us < now_us; });
}

nlohmann::json RadiusSessions::to_json() const {
    nlohmann::json open = nlohmann::json::array(), ended = nlohmann::json::array();
    for (const auto& [k, s] : open_) {
        nlohmann::json prefixes = nlohmann::json::array();
        for (const auto& p : s.prefixes)
            prefixes.push_back(p.to_string());
        open.push_back({{"nas", k.first},
                        {"session", k.second},
                        {"user", s.user},
                        {"prefixes", prefixes},
                        {"since_us", s.since_us},
                        {"updated_us", s.updated_us}});
    }
    for (const auto& [k, t] : ended_)
        ended.push_back({{"nas", k.first}, {"session", k.second}, {"ended_us", t}});
    return {{"open", open}, {"ended", ended}};
}

RadiusSessions RadiusSessions::from_json(const nlohmann::json& j) {
    RadiusSessions out;
    for (const auto& sj : j.at("open")) {
        Session s;
        s.user = sj.at("user").get<std::string>();
        if (!valid_user_name(s.user))
            throw std::runtime_error("RADIUS session user invalid");
        for (const auto& pj : sj.at("prefixes")) {
            const auto p = Prefix::parse(pj.get<std::string>());
            if (!p)
                throw std::runtime_error("RADIUS session prefix invalid");
            s.prefixes.push_back(*p);
        }
        s.since_us = sj.at("since_us").get<uint64_t>();
        s.updated_us = sj.at("updated_us").get<uint64_t>();
        out.open_[{sj.at("nas").get<std::string>(), sj.at("session").get<std::string>()}] = std::move(s);
    }
    for (const auto& ej : j.at("ended"))
        out.ended_[{ej.at("nas").get<std::string>(), ej.at("session").get<std::string>()}] =
            ej.at("ended_us").get<uint64_t>();
    return out;
}

} // namespace nettally::radius
