// PacketBuilder implementation; see packet_builder.h for the model.
#include "packet_builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace nettally::test {

namespace {

constexpr uint8_t kIpprotoHopopts = 0;
constexpr uint8_t kIpprotoIcmp = 1;
constexpr uint8_t kIpprotoTcp = 6;
constexpr uint8_t kIpprotoUdp = 17;
constexpr uint8_t kIpprotoRouting = 43;
constexpr uint8_t kIpprotoFragment = 44;
constexpr uint8_t kIpprotoAh = 51;
constexpr uint8_t kIpprotoIcmpv6 = 58;
constexpr uint8_t kIpprotoDstopts = 60;

constexpr uint16_t kPppIpv4 = 0x0021;
constexpr uint16_t kPppIpv6 = 0x0057;
constexpr uint16_t kPppLcp = 0xC021;

void store16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
    b.at(off) = static_cast<uint8_t>(v >> 8);
    b.at(off + 1) = static_cast<uint8_t>(v);
}

uint16_t ipv4_checksum(const uint8_t* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += static_cast<uint32_t>(p[n - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> pad4(std::vector<uint8_t> v) {
    while (v.size() % 4)
        v.push_back(0);
    return v;
}

} // namespace

Mac parse_mac(std::string_view text) {
    Mac m{};
    unsigned b[6];
    const std::string s(text);
    char tail;
    if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
        throw std::invalid_argument("bad MAC: " + s);
    for (int i = 0; i < 6; i++) {
        if (b[i] > 0xFF)
            throw std::invalid_argument("bad MAC: " + s);
        m[i] = static_cast<uint8_t>(b[i]);
    }
    return m;
}

Ipv4Addr parse_ipv4(std::string_view text) {
    Ipv4Addr a{};
    const std::string s(text);
    if (inet_pton(AF_INET, s.c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IPv4 address: " + s);
    return a;
}

Ipv6Addr parse_ipv6(std::string_view text) {
    Ipv6Addr a{};
    const std::string s(text);
    if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1)
        throw std::invalid_argument("bad IPv6 address: " + s);
    return a;
}

std::vector<uint8_t> tcp_timestamp_option(uint32_t tsval, uint32_t tsecr) {
    std::vector<uint8_t> o{1, 1, 8, 10}; // NOP, NOP, kind 8 length 10
    for (uint32_t v : {tsval, tsecr})
        for (int shift = 24; shift >= 0; shift -= 8)
            o.push_back(static_cast<uint8_t>(v >> shift));
    return o;
}

std::vector<uint8_t> ipv4_record_route_option(unsigned slots) {
    std::vector<uint8_t> o{7, static_cast<uint8_t>(3 + 4 * slots), 4};
    o.resize(3 + 4 * slots, 0);
    return o;
}

std::vector<uint8_t> ipv4_router_alert_option() {
    return {0x94, 0x04, 0x00, 0x00};
}

void PacketBuilder::put16(uint16_t v) {
    put8(static_cast<uint8_t>(v >> 8));
    put8(static_cast<uint8_t>(v));
}

void PacketBuilder::put32(uint32_t v) {
    put16(static_cast<uint16_t>(v >> 16));
    put16(static_cast<uint16_t>(v));
}

void PacketBuilder::link(const Ids& ids) {
    if (!slot_)
        throw std::logic_error(std::string(ids.what) +
                               (buf_.empty() ? ": a frame starts with eth()"
                                             : ": the previous layer has no next-protocol field"));
    const Slot s = *slot_;
    slot_.reset();
    if (s.fixed)
        return;
    switch (s.kind) {
    case SlotKind::EtherType:
        if (!ids.ethertype)
            throw std::logic_error(std::string(ids.what) + " has no EtherType");
        store16(buf_, s.off, *ids.ethertype);
        break;
    case SlotKind::PppProto:
        if (!ids.ppp)
            throw std::logic_error(std::string(ids.what) + " has no PPP protocol number");
        store16(buf_, s.off, *ids.ppp);
        break;
    case SlotKind::IpProto:
        if (!ids.ipproto)
            throw std::logic_error(std::string(ids.what) + " has no IP protocol number");
        buf_.at(s.off) = *ids.ipproto;
        break;
    }
}

void PacketBuilder::open_slot(SlotKind kind, size_t off, std::optional<uint16_t> fixed_value) {
    if (fixed_value) {
        if (kind == SlotKind::IpProto)
            buf_.at(off) = static_cast<uint8_t>(*fixed_value);
        else
            store16(buf_, off, *fixed_value);
    }
    slot_ = Slot{kind, off, fixed_value.has_value()};
}

PacketBuilder& PacketBuilder::eth(const Mac& dst, const Mac& src) {
    if (!buf_.empty())
        throw std::logic_error("eth() must be the first layer");
    put(dst.data(), dst.size());
    put(src.data(), src.size());
    put16(0);
    open_slot(SlotKind::EtherType, 12, std::nullopt);
    return *this;
}

PacketBuilder& PacketBuilder::eth(const Mac& dst, const Mac& src, uint16_t ethertype) {
    eth(dst, src);
    open_slot(SlotKind::EtherType, 12, ethertype);
    return *this;
}

PacketBuilder& PacketBuilder::vlan(uint16_t vid, uint16_t tpid, uint8_t pcp) {
    link({"vlan", tpid, std::nullopt, std::nullopt});
    put16(static_cast<uint16_t>((pcp & 7) << 13 | (vid & 0x0FFF)));
    const size_t off = buf_.size();
    put16(0);
    open_slot(SlotKind::EtherType, off, std::nullopt);
    return *this;
}

PacketBuilder& PacketBuilder::pppoe_session(uint16_t session_id) {
    link({"pppoe_session", kEthPPppSes, std::nullopt, std::nullopt});
    const size_t hdr = buf_.size();
    put8(0x11); // version 1, type 1
    put8(0x00); // code: session data
    put16(session_id);
    put16(0); // length: PPP protocol field + PPP payload, set in build()
    fixups_.push_back({LenKind::PppoeLen, hdr, std::nullopt});
    const size_t off = buf_.size();
    put16(0);
    open_slot(SlotKind::PppProto, off, std::nullopt);
    return *this;
}

PacketBuilder& PacketBuilder::pppoe_discovery(uint8_t code, uint16_t session_id,
                                              const std::vector<uint8_t>& tags) {
    link({"pppoe_discovery", kEthPPppDisc, std::nullopt, std::nullopt});
    put8(0x11);
    put8(code);
    put16(session_id);
    put16(static_cast<uint16_t>(tags.size()));
    put(tags.data(), tags.size());
    return *this;
}

PacketBuilder& PacketBuilder::ppp_lcp(uint8_t code, uint8_t id, const std::vector<uint8_t>& data) {
    link({"ppp_lcp", std::nullopt, kPppLcp, std::nullopt});
    put8(code);
    put8(id);
    put16(static_cast<uint16_t>(4 + data.size()));
    put(data.data(), data.size());
    return *this;
}

PacketBuilder& PacketBuilder::arp(const ArpOpts& o) {
    link({"arp", kEthPArp, std::nullopt, std::nullopt});
    put16(1);      // hardware: Ethernet
    put16(0x0800); // protocol: IPv4
    put8(6);
    put8(4);
    put16(o.op);
    put(o.sha.data(), 6);
    put(o.spa.data(), 4);
    put(o.tha.data(), 6);
    put(o.tpa.data(), 4);
    return *this;
}

PacketBuilder& PacketBuilder::lldp(const Mac& chassis, uint16_t ttl) {
    link({"lldp", kEthPLldp, std::nullopt, std::nullopt});
    // TLV header: 7 bits type, 9 bits length.
    put16(1 << 9 | 7); // Chassis ID, subtype 4 (MAC)
    put8(4);
    put(chassis.data(), 6);
    put16(2 << 9 | 7); // Port ID, subtype 3 (MAC)
    put8(3);
    put(chassis.data(), 6);
    put16(3 << 9 | 2); // TTL
    put16(ttl);
    put16(0); // End of LLDPDU
    return *this;
}

PacketBuilder& PacketBuilder::ipv4(const Ipv4Opts& o) {
    link({"ipv4", kEthPIpv4, kPppIpv4, std::nullopt});
    const std::vector<uint8_t> opts = pad4(o.options);
    const size_t hdr = buf_.size();
    const size_t hlen = 20 + opts.size();
    const uint8_t ihl = o.ihl.value_or(static_cast<uint8_t>(hlen / 4));
    put8(static_cast<uint8_t>(4 << 4 | (ihl & 0x0F)));
    put8(o.tos);
    put16(0); // total length, set in build()
    fixups_.push_back({LenKind::Ipv4TotLen, hdr, o.tot_len});
    put16(o.id);
    put16(static_cast<uint16_t>((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | (o.frag_offset & 0x1FFF)));
    put8(o.ttl);
    put8(0);  // protocol
    put16(0); // header checksum, set in build()
    put(o.src.data(), 4);
    put(o.dst.data(), 4);
    put(opts.data(), opts.size());
    ipv4_hdrs_.emplace_back(hdr, hlen);
    open_slot(SlotKind::IpProto, hdr + 9, o.protocol);
    return *this;
}

PacketBuilder& PacketBuilder::ipv6(const Ipv6Opts& o) {
    link({"ipv6", kEthPIpv6, kPppIpv6, std::nullopt});
    const size_t hdr = buf_.size();
    put32(6u << 28 | static_cast<uint32_t>(o.traffic_class) << 20 | (o.flow_label & 0xFFFFF));
    put16(0); // payload length, set in build()
    fixups_.push_back({LenKind::Ipv6PayloadLen, hdr, o.payload_len});
    put8(0); // next header
    put8(o.hop_limit);
    put(o.src.data(), 16);
    put(o.dst.data(), 16);
    open_slot(SlotKind::IpProto, hdr + 6, o.next_header);
    return *this;
}

void PacketBuilder::ext_header_padn(uint8_t hdr_ext_len, uint8_t ipproto, const char* what) {
    link({what, std::nullopt, std::nullopt, ipproto});
    const size_t hdr = buf_.size();
    const size_t total = (static_cast<size_t>(hdr_ext_len) + 1) * 8;
    put8(0); // next header
    put8(hdr_ext_len);
    put8(1); // PadN covering the rest of the header
    put8(static_cast<uint8_t>(total - 4));
    buf_.resize(hdr + total, 0);
    open_slot(SlotKind::IpProto, hdr, std::nullopt);
}

PacketBuilder& PacketBuilder::ipv6_hop_by_hop(uint8_t hdr_ext_len) {
    ext_header_padn(hdr_ext_len, kIpprotoHopopts, "ipv6_hop_by_hop");
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_dest_opts(uint8_t hdr_ext_len) {
    ext_header_padn(hdr_ext_len, kIpprotoDstopts, "ipv6_dest_opts");
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_routing(unsigned segments) {
    link({"ipv6_routing", std::nullopt, std::nullopt, kIpprotoRouting});
    const size_t hdr = buf_.size();
    put8(0);                                                 // next header
    put8(static_cast<uint8_t>(2 * segments));                // hdr ext len: 8-octet units after the first 8
    put8(4);                                                 // routing type: segment routing header
    put8(static_cast<uint8_t>(segments ? segments - 1 : 0)); // segments left
    put8(static_cast<uint8_t>(segments ? segments - 1 : 0)); // last entry
    put8(0);                                                 // flags
    put16(0);                                                // tag
    for (unsigned i = 0; i < segments; i++) {
        Ipv6Addr seg = parse_ipv6("2001:db8:5e9::");
        seg[15] = static_cast<uint8_t>(i + 1);
        put(seg.data(), 16);
    }
    open_slot(SlotKind::IpProto, hdr, std::nullopt);
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_fragment(const Ipv6FragOpts& o) {
    link({"ipv6_fragment", std::nullopt, std::nullopt, kIpprotoFragment});
    const size_t hdr = buf_.size();
    put8(0); // next header
    put8(0); // reserved
    put16(static_cast<uint16_t>((o.offset & 0x1FFF) << 3 | (o.more ? 1 : 0)));
    put32(o.id);
    open_slot(SlotKind::IpProto, hdr, o.next_header);
    return *this;
}

PacketBuilder& PacketBuilder::ipv6_ah(unsigned icv_len) {
    link({"ipv6_ah", std::nullopt, std::nullopt, kIpprotoAh});
    const size_t hdr = buf_.size();
    const size_t total = 12 + icv_len;
    if (total % 8)
        throw std::logic_error("ipv6_ah: an IPv6 AH must be a multiple of 8 bytes");
    put8(0);                                   // next header
    put8(static_cast<uint8_t>(total / 4 - 2)); // payload len: 32-bit words minus 2
    put16(0);                                  // reserved
    put32(0x00001000);                         // SPI
    put32(1);                                  // sequence number
    buf_.resize(hdr + total, 0xAA);            // ICV
    open_slot(SlotKind::IpProto, hdr, std::nullopt);
    return *this;
}

PacketBuilder& PacketBuilder::tcp(const TcpOpts& o) {
    link({"tcp", std::nullopt, std::nullopt, kIpprotoTcp});
    const std::vector<uint8_t> opts = pad4(o.options);
    const uint8_t doff = o.data_offset.value_or(static_cast<uint8_t>((20 + opts.size()) / 4));
    put16(o.sport);
    put16(o.dport);
    put32(o.seq);
    put32(o.ack);
    put8(static_cast<uint8_t>((doff & 0x0F) << 4));
    put8(o.flags);
    put16(o.window);
    put16(0); // checksum (not checked by the programs)
    put16(0); // urgent pointer
    put(opts.data(), opts.size());
    return *this;
}

PacketBuilder& PacketBuilder::udp(const UdpOpts& o) {
    link({"udp", std::nullopt, std::nullopt, kIpprotoUdp});
    const size_t hdr = buf_.size();
    put16(o.sport);
    put16(o.dport);
    put16(0); // length, set in build()
    fixups_.push_back({LenKind::UdpLen, hdr, o.length});
    put16(0); // checksum
    return *this;
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
    link({"icmp", std::nullopt, std::nullopt, kIpprotoIcmp});
    put8(type);
    put8(code);
    put16(0);
    put16(id);
    put16(seq);
    return *this;
}

PacketBuilder& PacketBuilder::icmpv6(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
    link({"icmpv6", std::nullopt, std::nullopt, kIpprotoIcmpv6});
    put8(type);
    put8(code);
    put16(0);
    put16(id);
    put16(seq);
    return *this;
}

PacketBuilder& PacketBuilder::payload(size_t n) {
    for (size_t i = 0; i < n; i++)
        put8(static_cast<uint8_t>(i));
    return *this;
}

PacketBuilder& PacketBuilder::bytes(const std::vector<uint8_t>& b) {
    put(b.data(), b.size());
    return *this;
}

PacketBuilder& PacketBuilder::pad_to(size_t frame_len) {
    pad_to_ = frame_len;
    return *this;
}

PacketBuilder& PacketBuilder::truncate_to(size_t frame_len) {
    truncate_to_ = frame_len;
    return *this;
}

std::vector<uint8_t> PacketBuilder::build() const {
    if (slot_ && !slot_->fixed)
        throw std::logic_error("build(): the last header's next-protocol field was never set");
    std::vector<uint8_t> out = buf_;
    const size_t end = out.size(); // end of the datagram: padding is not part of any length
    for (const LenFixup& f : fixups_) {
        size_t len = end - f.hdr_off;
        if (f.kind == LenKind::Ipv6PayloadLen)
            len -= 40;
        else if (f.kind == LenKind::PppoeLen)
            len -= 6;
        const size_t field = f.kind == LenKind::Ipv6PayloadLen ? f.hdr_off + 4
                             : f.kind == LenKind::UdpLen       ? f.hdr_off + 4
                             : f.kind == LenKind::PppoeLen     ? f.hdr_off + 4
                                                               : f.hdr_off + 2;
        if (!f.value && len > 0xFFFF)
            throw std::logic_error("build(): length field overflows 16 bits; give an override");
        store16(out, field, f.value.value_or(static_cast<uint16_t>(len)));
    }
    for (const auto& [off, hlen] : ipv4_hdrs_) {
        store16(out, off + 10, 0);
        store16(out, off + 10, ipv4_checksum(out.data() + off, hlen));
    }
    if (out.size() < pad_to_)
        out.resize(pad_to_, 0);
    if (truncate_to_ && out.size() > *truncate_to_)
        out.resize(*truncate_to_);
    return out;
}

} // namespace nettally::test
