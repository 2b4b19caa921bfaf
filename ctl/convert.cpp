// See convert.h. Each struct is unpacked once, by name, through a structured binding.
#include "convert.h"

#include <string_view>
#include <tuple>
#include <utility>

namespace nettally::ctl {
namespace {

// sdbus::Struct is a std::tuple without tuple_size of its own: bind through the base class.
template <class... T> const std::tuple<T...>& fields(const sdbus::Struct<T...>& s) {
    return s;
}

template <class Map> auto convert_values(const Map& in) {
    std::map<std::string, decltype(from_wire(in.begin()->second))> out;
    for (const auto& [key, value] : in)
        out.emplace(key, from_wire(value));
    return out;
}

// The value of a variant of D-Bus type Wire as the StatusValue alternative Value: integers widen
// to 64 bits (signed stay signed), object paths and signatures become strings.
template <class Wire, class Value = Wire> StatusValue read_variant(const sdbus::Variant& v) {
    return Value(v.get<Wire>());
}

// The D-Bus types a status or settings value may have, by signature.
constexpr std::pair<std::string_view, StatusValue (*)(const sdbus::Variant&)> kVariantReaders[] = {
    {"b", read_variant<bool>},
    {"y", read_variant<std::uint8_t, std::uint64_t>},
    {"q", read_variant<std::uint16_t, std::uint64_t>},
    {"u", read_variant<std::uint32_t, std::uint64_t>},
    {"t", read_variant<std::uint64_t>},
    {"n", read_variant<std::int16_t, std::int64_t>},
    {"i", read_variant<std::int32_t, std::int64_t>},
    {"x", read_variant<std::int64_t>},
    {"d", read_variant<double>},
    {"s", read_variant<std::string>},
    {"o", read_variant<sdbus::ObjectPath, std::string>},
    {"g", read_variant<sdbus::Signature, std::string>},
    {"as", read_variant<std::vector<std::string>>},
};

} // namespace

Counters from_wire(const bus::WireCounters& c) {
    const auto& [packets, l2, l3, l4, payload] = fields(c);
    return Counters{packets, l2, l3, l4, payload};
}

Counters4 from_wire(const bus::WireCounters4& c) {
    const auto& [packets, l3, l4, payload] = fields(c);
    return Counters4{packets, l3, l4, payload};
}

InterfaceRow from_wire(const bus::WireInterface& w) {
    const auto& [name, role, ifindex, ingress, egress, unattributed, finished_ingress, finished_egress] =
        fields(w);
    return InterfaceRow{name,
                        role,
                        ifindex,
                        from_wire(ingress),
                        from_wire(egress),
                        convert_values(unattributed),
                        from_wire(finished_ingress),
                        from_wire(finished_egress)};
}

HostRow from_wire(const bus::WireHost& w) {
    const auto& [mac, ip, interface, sent, received, first_seen, last_seen, wan_sent, wan_received] =
        fields(w);
    return HostRow{mac,        ip,        interface,           from_wire(sent),        from_wire(received),
                   first_seen, last_seen, from_wire(wan_sent), from_wire(wan_received)};
}

SubscriberRow from_wire(const bus::WireSubscriber& w) {
    const auto& [user, prefix, source, session, mac, since, until, effective] = fields(w);
    return SubscriberRow{user, prefix, source, session, mac, since, until, effective};
}

UserRow from_wire(const bus::WireUser& w) {
    const auto& [interface, user, sent, received] = fields(w);
    return UserRow{interface, user, from_wire(sent), from_wire(received)};
}

ClassRow from_wire(const bus::WireClass& w) {
    const auto& [interface, direction, id, name, counters, gone] = fields(w);
    return ClassRow{interface, direction, id, name, from_wire(counters), gone};
}

HostClassRow from_wire(const bus::WireHostClass& w) {
    const auto& [interface, mac, ip, id, name, sent, received, gone] = fields(w);
    return HostClassRow{interface, mac, ip, id, name, from_wire(sent), from_wire(received), gone};
}

FlowRow from_wire(const bus::WireFlow& w) {
    const auto& [interface, direction, proto, src, sport, dst, dport, counters, first_seen, last_seen,
                 tcp_flags, cls] = fields(w);
    return FlowRow{interface, direction,           proto,      src,       sport,     dst,
                   dport,     from_wire(counters), first_seen, last_seen, tcp_flags, cls};
}

CgroupEntry from_wire(const bus::WireCgroup& w) {
    const auto& [path, unit, ingress, egress, self_ingress, self_egress, gone] = fields(w);
    return CgroupEntry{
        path, unit, from_wire(ingress), from_wire(egress), from_wire(self_ingress), from_wire(self_egress),
        gone};
}

HistoryRow from_wire(const bus::WirePeriod& w) {
    const auto& [label, start, end, totals] = fields(w);
    return HistoryRow{label, start, end, convert_values(totals)};
}

RecordFile from_wire(const bus::WireRecordFile& w) {
    const auto& [name, size, type, created] = fields(w);
    return RecordFile{name, size, type, created};
}

UploadFile from_wire(const bus::WireUploadFile& w) {
    const auto& [name, size, mtime, state, attempts, last_error] = fields(w);
    return UploadFile{name, size, mtime, state, attempts, last_error};
}

CgroupBuckets from_wire(const std::map<std::string, bus::WireCounters4>& in) {
    return convert_values(in);
}

StatusValue from_variant(const sdbus::Variant& v) {
    const std::string sig = v.peekValueType();
    for (const auto& [type, read] : kVariantReaders)
        if (sig == type)
            return read(v);
    return Unsupported{sig};
}

Dict from_wire(const std::map<std::string, sdbus::Variant>& in) {
    Dict out;
    for (const auto& [key, value] : in)
        out.emplace(key, from_variant(value));
    return out;
}

std::vector<Dict> from_wire(const std::vector<std::map<std::string, sdbus::Variant>>& in) {
    std::vector<Dict> out;
    for (const auto& m : in)
        out.push_back(from_wire(m));
    return out;
}

sdbus::Variant to_variant(const SettingValue& v) {
    return std::visit([](const auto& x) { return sdbus::Variant(x); }, v);
}

} // namespace nettally::ctl
