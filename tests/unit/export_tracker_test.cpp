// The export tracker (core/export.h): interim records every active timeout with the counts since
// the previous record, the final record with what is left, flowEndReason, and flow -> record
// conversion (addresses, interfaces, direction, ICMP type/code).
#include "core/export.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

namespace nettally {
namespace {

constexpr uint64_t kSec = 1000000000ull;

FlowEntry flow(uint64_t packets, uint64_t first_s, uint64_t last_s) {
    FlowEntry f;
    f.key.ifindex = 3;
    f.key.dir = NT_DIR_INGRESS;
    f.key.proto = 17;
    f.key.family = NT_AF_INET;
    f.key.sport = 40000;
    f.key.dport = 53;
    inet_pton(AF_INET, "198.18.1.2", &f.key.src[0]);
    inet_pton(AF_INET, "198.18.2.2", &f.key.dst[0]);
    f.counts = Counts(packets, packets * 100, packets * 86, packets * 66, packets * 58);
    f.first_ns = first_s * kSec;
    f.last_ns = last_s * kSec;
    return f;
}

// kernel stamp 0 = 1.7e12 ms since the epoch
uint64_t to_unix(uint64_t boot_ns) {
    return 1700000000000000ull + boot_ns / 1000;
}

// Each record carries the flow's class as the collector names it (rulesVersion, trafficClassId):
// kNoClass for a flow without a classified packet; none at all without a class source.
TEST(ExportTracker, RecordsCarryTheFlowsClass) {
    ExportTracker t;
    auto fin = t.finished(flow(3, 100, 101), ipfix::EndReason::Idle, to_unix);
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->rules_version, 0u);
    EXPECT_EQ(fin->class_id, ipfix::kNoClass);
    t.set_class_of([](const FlowEntry& f) {
        Collector::FlowClass c;
        c.version = 9;
        c.classified = f.cls_serial != 0;
        c.id = f.cls_id;
        return c;
    });
    FlowEntry web = flow(3, 100, 101);
    web.cls_id = 50;
    web.cls_serial = 17;
    fin = t.finished(web, ipfix::EndReason::Idle, to_unix);
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->rules_version, 9u);
    EXPECT_EQ(fin->class_id, 50u);
    const auto interim = t.interim({web}, 200 * kSec, std::chrono::nanoseconds(30 * kSec), to_unix);
    ASSERT_EQ(interim.size(), 1u);
    EXPECT_EQ(interim[0].class_id, 50u);
    FlowEntry fragments_only = flow(3, 100, 101); // another flow, never classified
    fragments_only.key.sport = 40001;
    fin = t.finished(fragments_only, ipfix::EndReason::Idle, to_unix);
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->rules_version, 9u);
    EXPECT_EQ(fin->class_id, ipfix::kNoClass) << "no packet classified";
}

TEST(ExportTracker, InterimThenFinalSumToTheFlow) {
    ExportTracker t;
    const std::chrono::nanoseconds active(30 * kSec);
    EXPECT_TRUE(t.interim({flow(10, 100, 120)}, 129 * kSec, active, to_unix).empty()); // 29 s old
    auto r1 = t.interim({flow(12, 100, 129)}, 130 * kSec, active, to_unix);
    ASSERT_EQ(r1.size(), 1u);
    EXPECT_EQ(r1[0].counts, Counts(12, 1200, 1032, 792, 696));
    EXPECT_EQ(r1[0].start_ms, 1700000100000u);
    EXPECT_EQ(r1[0].end_ms, 1700000129000u);
    EXPECT_EQ(r1[0].reason, ipfix::EndReason::Active);
    EXPECT_TRUE(t.interim({flow(20, 100, 150)}, 159 * kSec, active, to_unix).empty()); // 29 s since
    auto r2 = t.interim({flow(25, 100, 160)}, 160 * kSec, active, to_unix);
    ASSERT_EQ(r2.size(), 1u);
    EXPECT_EQ(r2[0].counts.packets, 13u);
    EXPECT_EQ(r2[0].start_ms, 1700000129000u);
    auto fin = t.finished(flow(30, 100, 170), ipfix::EndReason::Idle, to_unix);
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->counts, Counts(5, 500, 430, 330, 290));
    EXPECT_EQ(fin->start_ms, 1700000160000u);
    EXPECT_EQ(fin->end_ms, 1700000170000u);
    EXPECT_EQ(r1[0].counts.packets + r2[0].counts.packets + fin->counts.packets, 30u);
    EXPECT_EQ(t.tracked(), 0u);
    // The same key again is a new flow: reported from its start, whole.
    auto again = t.finished(flow(4, 200, 201), ipfix::EndReason::Idle, to_unix);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->counts.packets, 4u);
    EXPECT_EQ(again->start_ms, 1700000200000u);
}

TEST(ExportTracker, NothingLeftNoFinalRecord) {
    ExportTracker t;
    ASSERT_EQ(t.interim({flow(7, 1, 40)}, 40 * kSec, std::chrono::nanoseconds(30 * kSec), to_unix).size(),
              1u);
    EXPECT_FALSE(t.finished(flow(7, 1, 40), ipfix::EndReason::Idle, to_unix));
}

TEST(ExportTracker, RestartKeepsWhatWasReported) {
    ExportTracker t;
    const std::chrono::nanoseconds active(30 * kSec);
    ASSERT_EQ(t.interim({flow(12, 100, 129)}, 130 * kSec, active, to_unix).size(), 1u);
    ExportTracker after;
    after.restore(nlohmann::json::parse(t.to_json().dump()));
    EXPECT_EQ(after.tracked(), 1u);
    auto fin = after.finished(flow(30, 100, 170), ipfix::EndReason::Idle, to_unix);
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->counts.packets, 18u); // not 30: the interim record's 12 went out before the restart
    EXPECT_EQ(fin->start_ms, 1700000129000u);
    EXPECT_THROW(after.restore(nlohmann::json::parse(R"([{"key": [1, 2], "counts": [1, 2, 3, 4, 5],
                                                           "end_ns": 0, "since_ns": 0}])")),
                 std::exception);
}

TEST(ExportTracker, EndReason) {
    const FlowTimeouts to{std::chrono::seconds(15), std::chrono::seconds(300)};
    EXPECT_EQ(end_reason(flow(1, 0, 10), 25 * kSec, to), ipfix::EndReason::Idle);
    EXPECT_EQ(end_reason(flow(1, 1, 299), 301 * kSec, to), ipfix::EndReason::Active);
    EXPECT_EQ(end_reason(flow(1, 1, 20), 21 * kSec, to), ipfix::EndReason::Forced);
}

TEST(ExportTracker, RecordFields) {
    FlowEntry f = flow(1, 0, 0);
    f.key.dir = NT_DIR_EGRESS;
    f.key.proto = 58;
    f.key.family = NT_AF_INET6;
    f.key.sport = 0;
    f.key.dport = 0x8100; // echo reply
    inet_pton(AF_INET6, "fd00:1::2", f.key.src);
    inet_pton(AF_INET6, "fd00:2::2", f.key.dst);
    f.tcp_flags = 0;
    const auto r = make_record(f, f.counts, 1, 2, ipfix::EndReason::Forced);
    EXPECT_TRUE(r.ipv6);
    EXPECT_EQ(r.ingress_if, 0u);
    EXPECT_EQ(r.egress_if, 3u);
    EXPECT_EQ(r.direction, 1);
    EXPECT_EQ(r.icmp_type_code, 0x8100);
    EXPECT_EQ(r.dst_port, 0x8100);
    EXPECT_EQ(r.src[0], 0xfd);
    EXPECT_EQ(r.src[3], 0x01);
    EXPECT_EQ(r.dst[3], 0x02);
    EXPECT_EQ(r.src[15], 0x02);
    const auto v4 = make_record(flow(1, 0, 0), Counts{}, 0, 0, ipfix::EndReason::Idle);
    EXPECT_EQ(v4.ingress_if, 3u);
    EXPECT_EQ(v4.egress_if, 0u);
    EXPECT_EQ(v4.icmp_type_code, 0u);
    EXPECT_EQ((std::array<uint8_t, 4>{v4.src[0], v4.src[1], v4.src[2], v4.src[3]}),
              (std::array<uint8_t, 4>{198, 18, 1, 2}));
}

} // namespace
} // namespace nettally
