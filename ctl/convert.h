// From the generated proxies' sdbus types (bus/names.h) to format.h's named rows: the one place
// that knows the field order of each D-Bus struct. Pure (no connection); unit-tested in
// tests/unit/ctl_convert_test.cpp.
#pragma once

#include "args.h"
#include "bus/names.h"
#include "format.h"

#include <map>
#include <string>
#include <vector>

#include <sdbus-c++/Types.h>

namespace nettally::ctl {

Counters from_wire(const bus::WireCounters& c);
Counters4 from_wire(const bus::WireCounters4& c);
InterfaceRow from_wire(const bus::WireInterface& w);
HostRow from_wire(const bus::WireHost& w);
FlowRow from_wire(const bus::WireFlow& w);
SubscriberRow from_wire(const bus::WireSubscriber& w);
UserRow from_wire(const bus::WireUser& w);
ClassRow from_wire(const bus::WireClass& w);
HostClassRow from_wire(const bus::WireHostClass& w);
CgroupEntry from_wire(const bus::WireCgroup& w);
HistoryRow from_wire(const bus::WirePeriod& w);
RecordFile from_wire(const bus::WireRecordFile& w);
UploadFile from_wire(const bus::WireUploadFile& w);

// Every element of a reply, converted.
template <class Wire> auto from_wire(const std::vector<Wire>& in) {
    std::vector<decltype(from_wire(in.front()))> out;
    out.reserve(in.size());
    for (const auto& w : in)
        out.push_back(from_wire(w));
    return out;
}

// A variant reduced to the JSON-representable types; an unknown type kept as its signature.
StatusValue from_variant(const sdbus::Variant& v);
Dict from_wire(const std::map<std::string, sdbus::Variant>& in);
std::vector<Dict> from_wire(const std::vector<std::map<std::string, sdbus::Variant>>& in);
CgroupBuckets from_wire(const std::map<std::string, bus::WireCounters4>& in);

// The other way, for calls that take a{sv}.
sdbus::Variant to_variant(const SettingValue& v);

} // namespace nettally::ctl
