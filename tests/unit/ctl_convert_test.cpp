// nettallyctl's conversions from the D-Bus structs (bus/names.h) to named rows (ctl/convert.h):
// every field lands in the field of its name. No bus: sdbus::Struct and Variant are plain values.
#include "convert.h"

#include <gtest/gtest.h>

namespace nettally::ctl {
namespace {

const bus::WireCounters kC{1, 2, 3, 4, 5};

TEST(CtlConvert, Counters) {
    EXPECT_EQ(from_wire(kC), (Counters{1, 2, 3, 4, 5}));
    EXPECT_EQ(from_wire(bus::WireCounters4{6, 7, 8, 9}), (Counters4{6, 7, 8, 9}));
}

TEST(CtlConvert, Interface) {
    const bus::WireInterface w{"lan0",
                               "lan",
                               3u,
                               kC,
                               bus::WireCounters{10, 20, 30, 40, 50},
                               std::map<std::string, bus::WireCounters>{{"ingress.non_ip", kC}},
                               bus::WireCounters{7, 0, 0, 0, 0},
                               bus::WireCounters{8, 0, 0, 0, 0}};
    const InterfaceRow r = from_wire(w);
    EXPECT_EQ(r.name, "lan0");
    EXPECT_EQ(r.role, "lan");
    EXPECT_EQ(r.ifindex, 3u);
    EXPECT_EQ(r.ingress, (Counters{1, 2, 3, 4, 5}));
    EXPECT_EQ(r.egress, (Counters{10, 20, 30, 40, 50}));
    EXPECT_EQ(r.unattributed.at("ingress.non_ip"), (Counters{1, 2, 3, 4, 5}));
    EXPECT_EQ(r.finished_ingress.packets, 7u);
    EXPECT_EQ(r.finished_egress.packets, 8u);
    EXPECT_EQ(from_wire(std::vector<bus::WireInterface>{w, w}).size(), 2u);
}

TEST(CtlConvert, Class) {
    const ClassRow r = from_wire(bus::WireClass{"wan0", "egress", 40u, "dns", kC, true});
    EXPECT_EQ(r.interface, "wan0");
    EXPECT_EQ(r.direction, "egress");
    EXPECT_EQ(r.id, 40u);
    EXPECT_EQ(r.name, "dns");
    EXPECT_EQ(r.counters, (Counters{1, 2, 3, 4, 5}));
    EXPECT_TRUE(r.gone);
    const Json j = classes_json({r});
    EXPECT_EQ(j.dump(), R"({"classes":[{"interface":"wan0","direction":"egress","class_id":40,"class":"dns",)"
                        R"("counters":{"packets":1,"l2":2,"l3":3,"l4":4,"payload":5},"gone":true}]})");
    const std::string text = classes_text({r});
    EXPECT_NE(text.find("IFACE  DIR     CLASS  PACKETS"), std::string::npos) << text;
    EXPECT_NE(text.find("gone"), std::string::npos) << text;
}

TEST(CtlConvert, HostAndFlow) {
    const HostRow h = from_wire(
        bus::WireHost{"aa:bb:cc:dd:ee:ff", "198.18.1.2", "lan0", kC, bus::WireCounters{5, 4, 3, 2, 1}, 11u,
                      12u, bus::WireCounters{6, 7, 8, 9, 10}, bus::WireCounters{3, 3, 3, 3, 3}});
    EXPECT_EQ(h.mac, "aa:bb:cc:dd:ee:ff");
    EXPECT_EQ(h.ip, "198.18.1.2");
    EXPECT_EQ(h.interface, "lan0");
    EXPECT_EQ(h.sent, (Counters{1, 2, 3, 4, 5}));
    EXPECT_EQ(h.received, (Counters{5, 4, 3, 2, 1}));
    EXPECT_EQ(h.first_seen, 11u);
    EXPECT_EQ(h.last_seen, 12u);
    EXPECT_EQ(h.wan_sent, (Counters{6, 7, 8, 9, 10}));
    EXPECT_EQ(h.wan_received, (Counters{3, 3, 3, 3, 3}));
    const FlowRow f =
        from_wire(bus::WireFlow{"wan0", "egress", std::uint8_t{6}, "198.18.0.1", std::uint16_t{1000},
                                "198.19.0.1", std::uint16_t{443}, kC, 21u, 22u, std::uint8_t{0x12}, "web"});
    EXPECT_EQ(f.interface, "wan0");
    EXPECT_EQ(f.direction, "egress");
    EXPECT_EQ(f.proto, 6);
    EXPECT_EQ(f.src, "198.18.0.1");
    EXPECT_EQ(f.sport, 1000);
    EXPECT_EQ(f.dst, "198.19.0.1");
    EXPECT_EQ(f.dport, 443);
    EXPECT_EQ(f.counters, (Counters{1, 2, 3, 4, 5}));
    EXPECT_EQ(f.first_seen, 21u);
    EXPECT_EQ(f.last_seen, 22u);
    EXPECT_EQ(f.tcp_flags, 0x12);
    EXPECT_EQ(f.cls, "web");
}

TEST(CtlConvert, CgroupHistoryAndSpools) {
    const CgroupEntry c = from_wire(
        bus::WireCgroup{"/a", "a.service", bus::WireCounters4{1, 2, 3, 4}, bus::WireCounters4{5, 6, 7, 8},
                        bus::WireCounters4{9, 10, 11, 12}, bus::WireCounters4{13, 14, 15, 16}, true});
    EXPECT_EQ(c.path, "/a");
    EXPECT_EQ(c.unit, "a.service");
    EXPECT_EQ(c.ingress, (Counters4{1, 2, 3, 4}));
    EXPECT_EQ(c.egress, (Counters4{5, 6, 7, 8}));
    EXPECT_EQ(c.self_ingress, (Counters4{9, 10, 11, 12}));
    EXPECT_EQ(c.self_egress, (Counters4{13, 14, 15, 16}));
    EXPECT_TRUE(c.gone);
    const HistoryRow p = from_wire(bus::WirePeriod{"2026-11", 1u, 2u, {{"iface:lan0:ingress", kC}}});
    EXPECT_EQ(p.label, "2026-11");
    EXPECT_EQ(p.start, 1u);
    EXPECT_EQ(p.end, 2u);
    EXPECT_EQ(p.totals.at("iface:lan0:ingress"), (Counters{1, 2, 3, 4, 5}));
    const RecordFile r = from_wire(bus::WireRecordFile{"f.csv", 100u, "interface", 5u});
    EXPECT_EQ(r.size, 100u);
    EXPECT_EQ(r.name, "f.csv");
    EXPECT_EQ(r.type, "interface");
    EXPECT_EQ(r.created, 5u);
    const UploadFile u = from_wire(bus::WireUploadFile{"g.csv", 7u, 8u, "queued", 2u, "timeout"});
    EXPECT_EQ(u.name, "g.csv");
    EXPECT_EQ(u.size, 7u);
    EXPECT_EQ(u.mtime, 8u);
    EXPECT_EQ(u.state, "queued");
    EXPECT_EQ(u.attempts, 2u);
    EXPECT_EQ(u.last_error, "timeout");
}

TEST(CtlConvert, Variants) {
    EXPECT_EQ(from_variant(sdbus::Variant(true)), StatusValue(true));
    EXPECT_EQ(from_variant(sdbus::Variant(std::uint32_t{5})), StatusValue(std::uint64_t{5}));
    EXPECT_EQ(from_variant(sdbus::Variant(std::int32_t{-5})), StatusValue(std::int64_t{-5}));
    EXPECT_EQ(from_variant(sdbus::Variant(std::string("x"))), StatusValue(std::string("x")));
    EXPECT_EQ(from_variant(sdbus::Variant(std::uint8_t{7})), StatusValue(std::uint64_t{7}));
    EXPECT_EQ(from_variant(sdbus::Variant(std::uint16_t{8})), StatusValue(std::uint64_t{8}));
    EXPECT_EQ(from_variant(sdbus::Variant(std::uint64_t{1} << 40)), StatusValue(std::uint64_t{1} << 40));
    EXPECT_EQ(from_variant(sdbus::Variant(std::int16_t{-9})), StatusValue(std::int64_t{-9}));
    EXPECT_EQ(from_variant(sdbus::Variant(std::int64_t{-10})), StatusValue(std::int64_t{-10}));
    EXPECT_EQ(from_variant(sdbus::Variant(0.5)), StatusValue(0.5));
    EXPECT_EQ(from_variant(sdbus::Variant(sdbus::ObjectPath("/org/nettally"))),
              StatusValue(std::string("/org/nettally")));
    EXPECT_EQ(from_variant(sdbus::Variant(sdbus::Signature("a{sv}"))), StatusValue(std::string("a{sv}")));
    EXPECT_EQ(from_variant(sdbus::Variant(std::vector<std::string>{"a"})),
              StatusValue(std::vector<std::string>{"a"}));
    EXPECT_EQ(from_variant(sdbus::Variant(std::vector<std::uint32_t>{1})), StatusValue(Unsupported{"au"}));
    EXPECT_EQ(to_variant(SettingValue(std::uint64_t{3})).get<std::uint64_t>(), 3u);
    EXPECT_TRUE(to_variant(SettingValue(true)).get<bool>());
}

} // namespace
} // namespace nettally::ctl
