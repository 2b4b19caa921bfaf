// PacketBuilder: composes Ethernet frames layer by layer for the BPF parser fixtures
// (tests/bpf/parser_test.cpp), in the spirit of Katran's lib/testing PacketBuilder.
//
// Layers are appended outermost first. Each layer fills the "next protocol" field the
// layer before it left open (EtherType, PPP protocol or IP protocol / IPv6 next header),
// so a chain reads like the frame: eth().vlan().ipv4().tcp().payload(100).
// Length fields (IPv4 total length, IPv6 payload length, UDP length, PPPoE length) are
// computed in build() from the bytes that follow the header, unless overridden to make
// a malformed frame. pad_to() adds Ethernet padding after the datagram (not counted in
// any IP length), truncate_to() cuts the finished frame.
//
// Checksums are not valid except the IPv4 header checksum: the programs under test
// never look at them. Misuse (e.g. tcp() straight after eth()) throws std::logic_error.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace nettally::test {

using Mac = std::array<uint8_t, 6>;
using Ipv4Addr = std::array<uint8_t, 4>;
using Ipv6Addr = std::array<uint8_t, 16>;

// Text forms: "02:00:00:00:00:01", "192.0.2.1", "2001:db8::1". Throw on bad input.
Mac parse_mac(std::string_view text);
Ipv4Addr parse_ipv4(std::string_view text);
Ipv6Addr parse_ipv6(std::string_view text);

inline constexpr uint16_t kEthPIpv4 = 0x0800;
inline constexpr uint16_t kEthPArp = 0x0806;
inline constexpr uint16_t kEthP8021Q = 0x8100;
inline constexpr uint16_t kEthP8021AD = 0x88A8;
inline constexpr uint16_t kEthPIpv6 = 0x86DD;
inline constexpr uint16_t kEthPPppDisc = 0x8863;
inline constexpr uint16_t kEthPPppSes = 0x8864;
inline constexpr uint16_t kEthPLldp = 0x88CC;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

struct Ipv4Opts {
    Ipv4Addr src{};
    Ipv4Addr dst{};
    uint8_t ttl = 64;
    uint8_t tos = 0;
    uint16_t id = 0x1234;
    bool df = false;
    bool mf = false;
    uint16_t frag_offset = 0;        // in 8-byte units
    std::vector<uint8_t> options;    // padded with EOL (0) to a multiple of 4
    std::optional<uint8_t> ihl;      // override, in 32-bit words (header bytes stay as built)
    std::optional<uint16_t> tot_len; // override
    std::optional<uint8_t> protocol; // override; otherwise set by the next layer
};

struct Ipv6Opts {
    Ipv6Addr src{};
    Ipv6Addr dst{};
    uint8_t hop_limit = 64;
    uint8_t traffic_class = 0;
    uint32_t flow_label = 0;
    std::optional<uint16_t> payload_len; // override
    std::optional<uint8_t> next_header;  // override; otherwise set by the next layer
};

struct Ipv6FragOpts {
    uint16_t offset = 0; // in 8-byte units
    bool more = false;
    uint32_t id = 0x0000abcd;
    std::optional<uint8_t> next_header; // needed when raw bytes follow (non-first fragment)
};

struct TcpOpts {
    uint16_t sport = 0;
    uint16_t dport = 0;
    uint8_t flags = kTcpAck;
    uint32_t seq = 1;
    uint32_t ack = 1;
    uint16_t window = 65535;
    std::vector<uint8_t> options;       // padded with EOL (0) to a multiple of 4
    std::optional<uint8_t> data_offset; // override, in 32-bit words (header bytes stay as built)
};

struct UdpOpts {
    uint16_t sport = 0;
    uint16_t dport = 0;
    std::optional<uint16_t> length; // override (e.g. the whole datagram for a first fragment)
};

struct ArpOpts {
    uint16_t op = 1; // 1 request, 2 reply
    Mac sha{};
    Ipv4Addr spa{};
    Mac tha{};
    Ipv4Addr tpa{};
};

// Option blobs.
std::vector<uint8_t> tcp_timestamp_option(uint32_t tsval, uint32_t tsecr); // NOP NOP TS: 12 bytes
std::vector<uint8_t> ipv4_record_route_option(unsigned slots);             // 3 + 4 * slots bytes
std::vector<uint8_t> ipv4_router_alert_option();                           // 4 bytes

class PacketBuilder {
public:
    // L2
    PacketBuilder& eth(const Mac& dst, const Mac& src);
    PacketBuilder& eth(const Mac& dst, const Mac& src, uint16_t ethertype); // EtherType fixed
    PacketBuilder& vlan(uint16_t vid, uint16_t tpid = kEthP8021Q, uint8_t pcp = 0);
    PacketBuilder& pppoe_session(uint16_t session_id); // PPP protocol set by the next layer
    PacketBuilder& pppoe_discovery(uint8_t code, uint16_t session_id, const std::vector<uint8_t>& tags);
    PacketBuilder& ppp_lcp(uint8_t code, uint8_t id, const std::vector<uint8_t>& data);
    PacketBuilder& arp(const ArpOpts& o);
    PacketBuilder& lldp(const Mac& chassis, uint16_t ttl = 120);

    // L3
    PacketBuilder& ipv4(const Ipv4Opts& o);
    PacketBuilder& ipv6(const Ipv6Opts& o);
    PacketBuilder& ipv6_hop_by_hop(uint8_t hdr_ext_len = 0); // (n + 1) * 8 bytes of PadN
    PacketBuilder& ipv6_dest_opts(uint8_t hdr_ext_len = 0);  // (n + 1) * 8 bytes of PadN
    PacketBuilder& ipv6_routing(unsigned segments);          // SRH (type 4): 8 + 16 * segments
    PacketBuilder& ipv6_fragment(const Ipv6FragOpts& o);     // 8 bytes
    PacketBuilder& ipv6_ah(unsigned icv_len = 12);           // 12 + icv_len bytes

    // L4
    PacketBuilder& tcp(const TcpOpts& o);
    PacketBuilder& udp(const UdpOpts& o);
    PacketBuilder& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0);   // 8 bytes
    PacketBuilder& icmpv6(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0); // 8 bytes

    // Raw bytes after the last header: n bytes of a counting pattern, or given bytes.
    PacketBuilder& payload(size_t n);
    PacketBuilder& bytes(const std::vector<uint8_t>& b);

    // Whole frame.
    PacketBuilder& pad_to(size_t frame_len);      // zero padding after the datagram, if shorter
    PacketBuilder& truncate_to(size_t frame_len); // cut the finished frame, if longer

    std::vector<uint8_t> build() const;

private:
    enum class SlotKind { EtherType, PppProto, IpProto };
    struct Slot {
        SlotKind kind;
        size_t off;
        bool fixed; // value given explicitly: the next layer does not overwrite it
    };
    enum class LenKind { Ipv4TotLen, Ipv6PayloadLen, UdpLen, PppoeLen };
    struct LenFixup {
        LenKind kind;
        size_t hdr_off;
        std::optional<uint16_t> value;
    };
    // What a layer is called in each kind of "next protocol" field (absent: it cannot go there).
    struct Ids {
        const char* what;
        std::optional<uint16_t> ethertype;
        std::optional<uint16_t> ppp;
        std::optional<uint8_t> ipproto;
    };

    void link(const Ids& ids);
    void open_slot(SlotKind kind, size_t off, std::optional<uint16_t> fixed_value);
    void put8(uint8_t v) { buf_.push_back(v); }
    void put16(uint16_t v);
    void put32(uint32_t v);
    void put(const uint8_t* p, size_t n) { buf_.insert(buf_.end(), p, p + n); }
    void ext_header_padn(uint8_t hdr_ext_len, uint8_t ipproto, const char* what);

    std::vector<uint8_t> buf_;
    std::optional<Slot> slot_;
    std::vector<LenFixup> fixups_;
    std::vector<std::pair<size_t, size_t>> ipv4_hdrs_; // offset, header bytes
    size_t pad_to_ = 0;
    std::optional<size_t> truncate_to_;
};

} // namespace nettally::test
