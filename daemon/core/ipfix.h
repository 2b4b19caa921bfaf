// IPFIX (RFC 7011) encoding of nettally's flows: message header, the two flow templates (IPv4,
// IPv6), the options template of the interface table (ingressInterface -> interfaceName) and their
// data sets, packed into messages no larger than the transport allows. Pure: bytes in, bytes out;
// the sockets are in io/export.h. One Stream per collector connection, because the header's
// sequence number counts the data records sent on that stream (RFC 7011 §3.1), not messages.
//
// Written here rather than with libfixbuf (Debian 2.4): the three fixed templates need ~300 lines,
// while libfixbuf brings GLib, its own session and transport model (blocking writers, its own
// template manager) that would have to be kept off the sd-event loop, and opaque buffering that
// would hide what the exporter counts (records, messages, bytes per collector).
#pragma once

#include "core/counters.h"

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace nettally::ipfix {

inline constexpr uint16_t kVersion = 10;
inline constexpr uint32_t kDefaultPen = 32473; // RFC 5612's documentation PEN
inline constexpr uint16_t kTemplateIpv4 = 256;
inline constexpr uint16_t kTemplateIpv6 = 257;
inline constexpr uint16_t kTemplateInterfaces = 258;
inline constexpr uint16_t kFirstTemplateId = 256; // RFC 7011 §3.4.1: 256 and up
inline constexpr uint16_t kTemplateSetId = 2;
inline constexpr uint16_t kOptionsTemplateSetId = 3;
inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kSetHeaderSize = 4;
// Enterprise-specific elements under the configured PEN.
inline constexpr uint16_t kIeL4Octets = 1;      // l4OctetDeltaCount: our l4 figure
inline constexpr uint16_t kIePayloadOctets = 2; // payloadOctetDeltaCount: our payload figure
// Traffic classes (unsigned64, unsigned32), in the flow templates of streams with classes
// (TemplateIds::classes, while a ruleset is in force), after the NAT fields and before userName.
inline constexpr uint16_t kIeRulesVersion = 3; // rulesVersion: the ruleset that gave the class
inline constexpr uint16_t kIeClassId = 4;      // trafficClassId: the flow's class (kNoClass: none)
inline constexpr uint32_t kNoClass = 0xFFFFFFFF;
// userName (IANA IE 371, string, variable length): the subscriber of the flow's lan host, in the
// flow templates of streams with users (TemplateIds::users). At most kMaxUserName bytes.
inline constexpr uint16_t kIeUserName = 371;
inline constexpr size_t kMaxUserName = 63;

// flowEndReason (IE 136), RFC 7012 / IANA values.
enum class EndReason : uint8_t { Idle = 1, Active = 2, EndDetected = 3, Forced = 4, LackOfResources = 5 };

using Bytes = std::vector<uint8_t>;

// One data record of a flow template. Addresses in network byte order (IPv4 in the first 4 bytes).
struct FlowRecord {
    bool ipv6 = false;
    uint8_t protocol = 0;
    std::array<uint8_t, 16> src{};
    std::array<uint8_t, 16> dst{};
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    uint32_t ingress_if = 0; // IE 10: the interface for ingress flows, else 0
    uint32_t egress_if = 0;  // IE 14: the interface for egress flows, else 0
    uint8_t direction = 0;   // IE 61: 0 ingress, 1 egress
    Counts counts;           // packets (2), l3 (1), l2 (352), l4 and payload (enterprise)
    uint64_t start_ms = 0;   // IE 152, ms since the epoch
    uint64_t end_ms = 0;     // IE 153
    EndReason reason = EndReason::Idle;
    uint16_t tcp_flags = 0;      // IE 6
    uint16_t icmp_type_code = 0; // IE 32 (IPv4) / 139 (IPv6): type * 256 + code
    // IPv4 flows translated by NAT after the observation point (core/nat.h): IEs 225-228, in
    // the template ids.ipv4_nat when the stream has one.
    bool nat = false;
    std::array<uint8_t, 4> post_src{}; // IE 225 postNATSourceIPv4Address
    std::array<uint8_t, 4> post_dst{}; // IE 226 postNATDestinationIPv4Address
    uint16_t post_sport = 0;           // IE 227 postNAPTSourceTransportPort
    uint16_t post_dport = 0;           // IE 228 postNAPTDestinationTransportPort
    // IE 371 userName, the last field of the templates with users ("" = no user bound; cut to
    // kMaxUserName bytes).
    std::string user;
    // The enterprise elements rulesVersion and trafficClassId, in the templates with classes: the
    // class of the flow's latest classified packet and the version of the ruleset that gave it
    // (class_id kNoClass: no packet classified; rules_version then the one in force, 0: none).
    uint64_t rules_version = 0;
    uint32_t class_id = kNoClass;
};

// The template ids a stream uses. ipv4_nat 0: no NAT template (NAT records go out without their
// post-NAT fields).
struct TemplateIds {
    uint16_t ipv4 = kTemplateIpv4;
    uint16_t ipv6 = kTemplateIpv6;
    uint16_t interfaces = kTemplateInterfaces;
    uint16_t ipv4_nat = 0;
    bool users = false;   // the flow templates end with userName (IE 371)
    bool classes = false; // the flow templates carry rulesVersion and trafficClassId
    bool operator==(const TemplateIds&) const = default;
};

// Template ids by layout, for the daemon's lifetime: a layout keeps its id, a changed layout (the
// enterprise PEN of the l4/payload elements) gets a new one, so that no id is ever redefined
// towards a collector that saw the old layout (RFC 7011 §8.1). The first layouts get 256
// (IPv4), 257 (IPv6), 258 (interface table), 259 (IPv4 with NAT). With users (subscribers
// configured) or classes (a ruleset in force) the flow templates are other layouts, so other ids.
class TemplateRegistry {
public:
    TemplateIds ids(uint32_t pen, bool nat, bool users = false, bool classes = false);

private:
    uint16_t id(int kind, uint32_t pen);
    std::vector<std::pair<std::pair<int, uint32_t>, uint16_t>> ids_;
    uint16_t next_ = kFirstTemplateId;
};

struct InterfaceName {
    uint32_t ifindex = 0;
    std::string name;
};

// The bytes one data record of the template takes (without userName; classes: with rulesVersion
// and trafficClassId).
size_t flow_record_size(bool ipv6, bool nat = false, bool classes = false);
// How many of the records, from the first, Stream::flows() puts into one message of `max` bytes
// (users: the stream's templates end with userName; classes: they carry the class elements).
size_t records_fitting(std::span<const FlowRecord> records, size_t max, bool users = false,
                       bool classes = false);
// The smallest max_message_size that can carry every record and the templates (with the NAT
// template: nat; with userName: users; with the class elements: classes).
size_t min_message_size(bool nat = false, bool users = false, bool classes = false);

class Stream {
public:
    // max_message: the largest message (UDP: the path's datagram budget). Throws
    // std::invalid_argument below min_message_size().
    Stream(uint32_t observation_domain, uint32_t pen, size_t max_message, TemplateIds ids = {});

    // One message with the template set (IPv4, IPv6, IPv4 with NAT if the ids have one) and the
    // options template set.
    Bytes templates(uint32_t export_time) const;
    // The interface table as data records of the options template, in as many messages as needed.
    std::vector<Bytes> interfaces(uint32_t export_time, std::span<const InterfaceName> names);
    // Flow data records, IPv4 and IPv6 sets, in as many messages as needed.
    std::vector<Bytes> flows(uint32_t export_time, std::span<const FlowRecord> records);

    // Data records sent on this stream so far, mod 2^32: the next message's sequence number.
    uint32_t sequence() const { return sequence_; }
    void set_sequence(uint32_t s) { sequence_ = s; }
    uint32_t observation_domain() const { return domain_; }
    size_t max_message() const { return max_message_; }
    const TemplateIds& ids() const { return ids_; }

private:
    uint32_t domain_;
    uint32_t pen_;
    size_t max_message_;
    TemplateIds ids_;
    uint32_t sequence_ = 0;
};

} // namespace nettally::ipfix
