// IPFIX encoding (RFC 7011). See ipfix.h.
#include "core/ipfix.h"

#include <algorithm>
#include <stdexcept>

namespace nettally::ipfix {

namespace {

constexpr uint16_t kEnterpriseBit = 0x8000;
constexpr uint16_t kVariableLength = 65535;

// An information element of a template: id, length, enterprise-specific or not.
struct Field {
    uint16_t id;
    uint16_t length;
    bool enterprise = false;
};

// The flow templates' fields, in record order (field_values() gives the values in this order; the
// NAT template adds the post-NAT fields after them).
const std::vector<Field>& base_flow_fields(bool ipv6, bool nat) {
    static const std::vector<Field> v4 = {{8, 4},
                                          {12, 4},
                                          {7, 2},
                                          {11, 2},
                                          {4, 1},
                                          {10, 4},
                                          {14, 4},
                                          {61, 1},
                                          {2, 8},
                                          {1, 8},
                                          {352, 8},
                                          {152, 8},
                                          {153, 8},
                                          {136, 1},
                                          {6, 2},
                                          {32, 2},
                                          {kIeL4Octets, 8, true},
                                          {kIePayloadOctets, 8, true}};
    static const std::vector<Field> v6 = [] {
        std::vector<Field> f = v4;
        f[0] = {27, 16};
        f[1] = {28, 16};
        f[15] = {139, 2};
        return f;
    }();
    static const std::vector<Field> v4_nat = [] {
        std::vector<Field> f = v4;
        f.insert(f.end(), {{225, 4}, {226, 4}, {227, 2}, {228, 2}});
        return f;
    }();
    if (ipv6)
        return v6;
    return nat ? v4_nat : v4;
}

// With classes: the same fields, then rulesVersion and trafficClassId; with users: userName last.
const std::vector<Field>& flow_fields(bool ipv6, bool nat = false, bool users = false, bool classes = false) {
    // Indexed by layout (0 IPv4, 1 IPv6, 2 IPv4 with NAT) + 3 * users + 6 * classes.
    static const std::array<std::vector<Field>, 12> all = [] {
        std::array<std::vector<Field>, 12> a;
        for (size_t k = 0; k < a.size(); k++) {
            const size_t layout = k % 3;
            a[k] = base_flow_fields(layout == 1, layout == 2);
            if (k >= 6)
                a[k].insert(a[k].end(), {{kIeRulesVersion, 8, true}, {kIeClassId, 4, true}});
            if (k % 6 >= 3)
                a[k].push_back({kIeUserName, kVariableLength});
        }
        return a;
    }();
    const size_t layout = ipv6 ? 1 : nat ? 2 : 0;
    return all[layout + (users ? 3 : 0) + (classes ? 6 : 0)];
}

constexpr size_t kBaseFields = 18; // the fields every flow template has

class Writer {
public:
    explicit Writer(Bytes& out) : out_(out) {}
    void u8(uint8_t v) { out_.push_back(v); }
    void u16(uint16_t v) {
        u8(static_cast<uint8_t>(v >> 8));
        u8(static_cast<uint8_t>(v));
    }
    void u32(uint32_t v) {
        u16(static_cast<uint16_t>(v >> 16));
        u16(static_cast<uint16_t>(v));
    }
    void u64(uint64_t v) {
        u32(static_cast<uint32_t>(v >> 32));
        u32(static_cast<uint32_t>(v));
    }
    void raw(const uint8_t* p, size_t n) { out_.insert(out_.end(), p, p + n); }
    void set_u16(size_t at, uint16_t v) {
        out_[at] = static_cast<uint8_t>(v >> 8);
        out_[at + 1] = static_cast<uint8_t>(v);
    }
    size_t size() const { return out_.size(); }

private:
    Bytes& out_;
};

void write_field_spec(Writer& w, const Field& f, uint32_t pen) {
    w.u16(static_cast<uint16_t>(f.enterprise ? (f.id | kEnterpriseBit) : f.id));
    w.u16(f.length);
    if (f.enterprise)
        w.u32(pen);
}

size_t field_spec_size(const Field& f) {
    return f.enterprise ? 8 : 4;
}

// The values of a record's non-address fields, in the templates' field order (the first two
// fields are the addresses).
std::array<uint64_t, kBaseFields> field_values(const FlowRecord& r) {
    const Counts& c = r.counts;
    return {0,           0,
            r.src_port,  r.dst_port,
            r.protocol,  r.ingress_if,
            r.egress_if, r.direction,
            c.packets,   c.l3,
            c.l2,        r.start_ms,
            r.end_ms,    static_cast<uint8_t>(r.reason),
            r.tcp_flags, r.icmp_type_code,
            c.l4,        c.payload};
}

size_t user_length(const FlowRecord& r) {
    return std::min(r.user.size(), kMaxUserName);
}

void write_record(Writer& w, const std::vector<Field>& fields, const FlowRecord& r, bool nat, bool users,
                  bool classes) {
    const auto values = field_values(r);
    w.raw(r.src.data(), fields[0].length);
    w.raw(r.dst.data(), fields[1].length);
    for (size_t i = 2; i < kBaseFields; i++)
        for (int b = fields[i].length - 1; b >= 0; b--)
            w.u8(static_cast<uint8_t>(values[i] >> (8 * b)));
    if (nat) {
        w.raw(r.post_src.data(), r.post_src.size());
        w.raw(r.post_dst.data(), r.post_dst.size());
        w.u16(r.post_sport);
        w.u16(r.post_dport);
    }
    if (classes) {
        w.u64(r.rules_version);
        w.u32(r.class_id);
    }
    if (users) {
        const size_t n = user_length(r); // < 255: one length byte
        w.u8(static_cast<uint8_t>(n));
        w.raw(reinterpret_cast<const uint8_t*>(r.user.data()), n);
    }
}

// The record goes out in the NAT template (if the stream has one).
bool nat_layout(const FlowRecord& r) {
    return r.nat && !r.ipv6;
}

// Variable-length encoding (RFC 7011 §7): one length byte below 255, else 255 and two bytes.
size_t varlen_size(size_t n) {
    return n < 255 ? 1 + n : 3 + n;
}

// Builds messages of at most `max` bytes, each a header and sets of one kind of record.
class Packer {
public:
    Packer(uint32_t domain, uint32_t export_time, size_t max, uint32_t& sequence)
        : domain_(domain), time_(export_time), max_(max), sequence_(sequence) {}

    // Room for a record of `size` bytes in a set `set_id`, starting a message or set as needed.
    Writer record(uint16_t set_id, size_t size) {
        const size_t need = size + (set_id == set_id_ ? 0 : kSetHeaderSize);
        if (!msg_.empty() && msg_.size() + need > max_)
            finish();
        if (msg_.empty())
            start();
        if (set_id != set_id_) {
            close_set();
            set_start_ = msg_.size();
            set_id_ = set_id;
            Writer w(msg_);
            w.u16(set_id);
            w.u16(0);
        }
        records_++;
        return Writer(msg_);
    }

    std::vector<Bytes> done() {
        if (!msg_.empty())
            finish();
        return std::move(out_);
    }

private:
    void start() {
        Writer w(msg_);
        w.u16(kVersion);
        w.u16(0);
        w.u32(time_);
        w.u32(sequence_);
        w.u32(domain_);
        records_ = 0;
    }
    void close_set() {
        if (set_id_ != 0)
            Writer(msg_).set_u16(set_start_ + 2, static_cast<uint16_t>(msg_.size() - set_start_));
        set_id_ = 0;
    }
    void finish() {
        close_set();
        Writer(msg_).set_u16(2, static_cast<uint16_t>(msg_.size()));
        sequence_ += records_;
        out_.push_back(std::move(msg_));
        msg_.clear();
    }

    uint32_t domain_;
    uint32_t time_;
    size_t max_;
    uint32_t& sequence_;
    Bytes msg_;
    size_t set_start_ = 0;
    uint16_t set_id_ = 0;
    uint32_t records_ = 0;
    std::vector<Bytes> out_;
};

size_t template_size(const std::vector<Field>& fields) {
    size_t n = 4;
    for (const auto& f : fields)
        n += field_spec_size(f);
    return n;
}

size_t template_message_size(bool nat, bool users, bool classes) {
    size_t n = kHeaderSize + kSetHeaderSize + template_size(flow_fields(false, false, users, classes)) +
               template_size(flow_fields(true, false, users, classes));
    if (nat)
        n += template_size(flow_fields(false, true, users, classes));
    return n + kSetHeaderSize + 6 + 4 + 4; // options template: header, scope 10, interfaceName 82
}

} // namespace

TemplateIds TemplateRegistry::ids(uint32_t pen, bool nat, bool users, bool classes) {
    TemplateIds t;
    // The flow layouts with userName are kinds 4, 5 and 7; with the class elements 8, 9 and 11,
    // with both 12, 13 and 15.
    const int u = (users ? 4 : 0) + (classes ? 8 : 0);
    t.ipv4 = id(0 + u, pen);
    t.ipv6 = id(1 + u, pen);
    t.interfaces = id(2, 0); // no enterprise-specific element: the same layout whatever the PEN
    t.ipv4_nat = nat ? id(3 + u, pen) : 0;
    t.users = users;
    t.classes = classes;
    return t;
}

uint16_t TemplateRegistry::id(int kind, uint32_t pen) {
    for (const auto& [layout, id] : ids_)
        if (layout == std::pair{kind, pen})
            return id;
    if (next_ == 0) // wrapped past 65535: more layouts than a daemon's lifetime has
        throw std::length_error("IPFIX template ids exhausted");
    ids_.push_back({{kind, pen}, next_});
    return next_++;
}

size_t flow_record_size(bool ipv6, bool nat, bool classes) {
    size_t n = 0;
    for (const auto& f : flow_fields(ipv6, nat, false, classes))
        n += f.length;
    return n;
}

size_t records_fitting(std::span<const FlowRecord> records, size_t max, bool users, bool classes) {
    size_t size = kHeaderSize, n = 0;
    int layout = -1; // the open set's: the Packer opens a new set whenever the template changes
    for (const auto& r : records) {
        const int l = nat_layout(r) ? 2 : int(r.ipv6);
        const size_t add = flow_record_size(r.ipv6, nat_layout(r), classes) +
                           (users ? 1 + user_length(r) : 0) + (layout == l ? 0 : kSetHeaderSize);
        if (size + add > max)
            break;
        size += add;
        layout = l;
        n++;
    }
    return n;
}

size_t min_message_size(bool nat, bool users, bool classes) {
    // An interface name is at most IFNAMSIZ - 1 bytes.
    const size_t iface = 4 + varlen_size(15);
    const size_t user = users ? 1 + kMaxUserName : 0;
    return std::max({kHeaderSize + kSetHeaderSize + flow_record_size(true, false, classes) + user,
                     kHeaderSize + kSetHeaderSize + flow_record_size(false, nat, classes) + user,
                     template_message_size(nat, users, classes), kHeaderSize + kSetHeaderSize + iface});
}

Stream::Stream(uint32_t observation_domain, uint32_t pen, size_t max_message, TemplateIds ids)
    : domain_(observation_domain), pen_(pen), max_message_(max_message), ids_(ids) {
    const size_t min = min_message_size(ids.ipv4_nat != 0, ids.users, ids.classes);
    if (max_message < min || max_message > 65535)
        throw std::invalid_argument("IPFIX message size must be " + std::to_string(min) + " .. 65535 bytes");
}

Bytes Stream::templates(uint32_t export_time) const {
    Bytes msg;
    Writer w(msg);
    w.u16(kVersion);
    w.u16(0);
    w.u32(export_time);
    w.u32(sequence_);
    w.u32(domain_);
    const size_t set = w.size();
    w.u16(kTemplateSetId);
    w.u16(0);
    const std::pair<uint16_t, const std::vector<Field>*> flow_templates[] = {
        {ids_.ipv4, &flow_fields(false, false, ids_.users, ids_.classes)},
        {ids_.ipv6, &flow_fields(true, false, ids_.users, ids_.classes)},
        {ids_.ipv4_nat, &flow_fields(false, true, ids_.users, ids_.classes)}};
    for (const auto& [id, fields] : flow_templates) {
        if (id == 0)
            continue;
        w.u16(id);
        w.u16(static_cast<uint16_t>(fields->size()));
        for (const auto& f : *fields)
            write_field_spec(w, f, pen_);
    }
    w.set_u16(set + 2, static_cast<uint16_t>(w.size() - set));
    const size_t opt = w.size();
    w.u16(kOptionsTemplateSetId);
    w.u16(0);
    w.u16(ids_.interfaces);
    w.u16(2); // field count
    w.u16(1); // scope field count
    write_field_spec(w, {10, 4}, pen_);
    write_field_spec(w, {82, kVariableLength}, pen_);
    w.set_u16(opt + 2, static_cast<uint16_t>(w.size() - opt));
    w.set_u16(2, static_cast<uint16_t>(w.size()));
    return msg;
}

std::vector<Bytes> Stream::interfaces(uint32_t export_time, std::span<const InterfaceName> names) {
    Packer p(domain_, export_time, max_message_, sequence_);
    for (const auto& n : names) {
        // Longer names cannot be interface names; cut so that one record always fits.
        const size_t len = std::min(n.name.size(), max_message_ - kHeaderSize - kSetHeaderSize - 4 - 3);
        Writer w = p.record(ids_.interfaces, 4 + varlen_size(len));
        w.u32(n.ifindex);
        if (len < 255) {
            w.u8(static_cast<uint8_t>(len));
        } else {
            w.u8(255);
            w.u16(static_cast<uint16_t>(len));
        }
        w.raw(reinterpret_cast<const uint8_t*>(n.name.data()), len);
    }
    return p.done();
}

std::vector<Bytes> Stream::flows(uint32_t export_time, std::span<const FlowRecord> records) {
    Packer p(domain_, export_time, max_message_, sequence_);
    for (const auto& r : records) {
        const bool nat = nat_layout(r) && ids_.ipv4_nat != 0;
        const uint16_t id = nat ? ids_.ipv4_nat : r.ipv6 ? ids_.ipv6 : ids_.ipv4;
        Writer w =
            p.record(id, flow_record_size(r.ipv6, nat, ids_.classes) + (ids_.users ? 1 + user_length(r) : 0));
        write_record(w, flow_fields(r.ipv6, nat, ids_.users, ids_.classes), r, nat, ids_.users, ids_.classes);
    }
    return p.done();
}

} // namespace nettally::ipfix
