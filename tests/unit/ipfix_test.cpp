// Golden bytes of the IPFIX encoder (core/ipfix.h): every expected message is written out by hand
// from RFC 7011 (header §3.1, sets §3.3, template records §3.4.1, options templates §3.4.2.2,
// variable length §7) and the element numbers of RFC 7012 / RFC 5102.
#include "core/ipfix.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

using namespace nettally;
using namespace nettally::ipfix;

namespace {

std::string hex(const Bytes& b) {
    std::string s;
    char buf[3];
    for (uint8_t c : b) {
        std::snprintf(buf, sizeof buf, "%02x", c);
        s += buf;
    }
    return s;
}

// Spaces in the golden strings are for reading only.
std::string golden(std::string s) {
    std::erase(s, ' ');
    return s;
}

FlowRecord v4_flow() {
    FlowRecord r;
    r.protocol = 6;
    r.src = {198, 18, 0, 1};
    r.dst = {198, 18, 1, 2};
    r.src_port = 40000;
    r.dst_port = 80;
    r.ingress_if = 3;
    r.direction = 0;
    r.counts = Counts(10, 1140, 1000, 800, 600);
    r.start_ms = 1700000000000;
    r.end_ms = 1700000001500;
    r.reason = EndReason::Idle;
    r.tcp_flags = 0x1b;
    return r;
}

FlowRecord v6_icmp() {
    FlowRecord r;
    r.ipv6 = true;
    r.protocol = 58;
    r.src[0] = 0xfd;
    r.src[15] = 1;
    r.dst[0] = 0xfd;
    r.dst[15] = 2;
    r.dst_port = 0x8000; // echo request, as the flow key holds it
    r.egress_if = 5;
    r.direction = 1;
    r.counts = Counts(1, 118, 104, 84, 76);
    r.start_ms = r.end_ms = 1700000000000;
    r.reason = EndReason::Forced;
    r.icmp_type_code = 0x8000;
    return r;
}

const char* kV4Record = "c6120001 c6120102 9c40 0050 06 00000003 00000000 00"
                        " 000000000000000a 00000000000003e8 0000000000000474"
                        " 0000018bcfe56800 0000018bcfe56ddc 01 001b 0000"
                        " 0000000000000320 0000000000000258";
const char* kV6Record = "fd000000000000000000000000000001 fd000000000000000000000000000002 0000 8000 3a"
                        " 00000000 00000005 01 0000000000000001 0000000000000068 0000000000000076"
                        " 0000018bcfe56800 0000018bcfe56800 04 0000 8000"
                        " 0000000000000054 000000000000004c";

} // namespace

TEST(Ipfix, RecordSizes) {
    EXPECT_EQ(flow_record_size(false), 83u);
    EXPECT_EQ(flow_record_size(true), 107u);
    EXPECT_EQ(min_message_size(), 206u); // the template message is the largest single unit
    EXPECT_THROW(Stream(1, kDefaultPen, 205), std::invalid_argument);
    EXPECT_THROW(Stream(1, kDefaultPen, 65536), std::invalid_argument);
}

TEST(Ipfix, TemplateMessage) {
    Stream s(7, kDefaultPen, 1400);
    const std::string common = "003d0001 00020008 00010008 01600008 00980008 00990008 00880001 00060002";
    const std::string ent = "80010008 00007ed9 80020008 00007ed9";
    const std::string expected =
        // header: version 10, length 206, export time, sequence 0, domain 7
        "000a 00ce 5f5e1000 00000000 00000007"
        // template set (id 2, 172 bytes): 256 with 18 fields, then 257
        "0002 00ac"
        "0100 0012 00080004 000c0004 00070002 000b0002 00040001 000a0004 000e0004 " +
        common + " 00200002 " + ent +
        " 0101 0012 001b0010 001c0010 00070002 000b0002 00040001 000a0004 000e0004 " + common + " 008b0002 " +
        ent +
        // options template set (id 3, 18 bytes): 258, 2 fields, 1 scope: ingressInterface(4),
        // interfaceName variable (65535)
        " 0003 0012 0102 0002 0001 000a0004 0052ffff";
    EXPECT_EQ(hex(s.templates(0x5f5e1000)), golden(expected));
    EXPECT_EQ(s.sequence(), 0u); // templates are not data records
}

TEST(Ipfix, TemplateCarriesConfiguredPen) {
    Stream s(1, 0x01020304, 1400);
    const std::string h = hex(s.templates(0));
    EXPECT_NE(h.find("8001000801020304"), std::string::npos);
    EXPECT_NE(h.find("8002000801020304"), std::string::npos);
    EXPECT_EQ(h.find("7ed9"), std::string::npos);
}

TEST(Ipfix, OptionsDataVariableLength) {
    Stream s(9, kDefaultPen, 1400);
    const InterfaceName names[] = {{3, "eth0"}, {12, std::string(300, 'a')}};
    const auto msgs = s.interfaces(100, names);
    ASSERT_EQ(msgs.size(), 1u);
    // eth0: 4 + 1 + 4 = 9 bytes; the long name: 4 + 3 + 300 = 307; set 4 + 316 = 320; message 336.
    const std::string expected = "000a 0150 00000064 00000000 00000009 0102 0140"
                                 " 00000003 04 65746830"
                                 " 0000000c ff 012c " +
                                 hex(Bytes(300, 'a'));
    EXPECT_EQ(hex(msgs[0]), golden(expected));
    EXPECT_EQ(s.sequence(), 2u); // options data records are data records
}

TEST(Ipfix, DataSetsIpv4AndIpv6) {
    Stream s(7, kDefaultPen, 1400);
    const FlowRecord recs[] = {v4_flow(), v6_icmp()};
    const auto msgs = s.flows(0x5f5e1000, recs);
    ASSERT_EQ(msgs.size(), 1u);
    // 16 + (4 + 83) + (4 + 107) = 214
    const std::string expected = std::string("000a 00d6 5f5e1000 00000000 00000007 0100 0057 ") + kV4Record +
                                 " 0101 006f " + kV6Record;
    EXPECT_EQ(hex(msgs[0]), golden(expected));
    EXPECT_EQ(s.sequence(), 2u);
}

TEST(Ipfix, SameTemplateSharesOneSet) {
    Stream s(1, kDefaultPen, 1400);
    const FlowRecord recs[] = {v4_flow(), v4_flow()};
    const auto msgs = s.flows(0, recs);
    ASSERT_EQ(msgs.size(), 1u);
    const std::string expected =
        std::string("000a 00ba 00000000 00000000 00000001 0100 00aa ") + kV4Record + " " + kV4Record;
    EXPECT_EQ(hex(msgs[0]), golden(expected));
}

TEST(Ipfix, MaxMessageSizeSplitsAndSequenceCountsRecords) {
    Stream s(1, kDefaultPen, 214); // room for 2 IPv4 records (16 + 4 + 166 = 186), not 3 (269)
    std::vector<FlowRecord> recs(5, v4_flow());
    const auto msgs = s.flows(0, recs);
    ASSERT_EQ(msgs.size(), 3u);
    const char* seq[] = {"00000000", "00000002", "00000004"};
    for (size_t i = 0; i < msgs.size(); i++) {
        EXPECT_LE(msgs[i].size(), 214u);
        EXPECT_EQ(hex(msgs[i]).substr(16, 8), seq[i]) << "message " << i;
    }
    EXPECT_EQ(msgs[0].size(), 186u);
    EXPECT_EQ(msgs[2].size(), 103u);
    EXPECT_EQ(s.sequence(), 5u);
}

TEST(Ipfix, SequenceWrapsAround) {
    Stream s(1, kDefaultPen, 214); // two IPv4 records per message
    s.set_sequence(0xfffffffe);
    std::vector<FlowRecord> recs(3, v4_flow());
    const auto msgs = s.flows(0, recs);
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(hex(msgs[0]).substr(16, 8), "fffffffe");
    EXPECT_EQ(hex(msgs[1]).substr(16, 8), "00000000"); // 0xfffffffe + 2 mod 2^32
    EXPECT_EQ(s.sequence(), 1u);
    // A template message in between carries the current count, unchanged.
    EXPECT_EQ(hex(s.templates(0)).substr(16, 8), "00000001");
}

TEST(Ipfix, RecordsFittingMatchesTheEncoder) {
    std::vector<FlowRecord> recs;
    for (int i = 0; i < 40; i++)
        recs.push_back(i % 3 == 0 ? v6_icmp() : v4_flow());
    for (size_t max : {206u, 300u, 1400u}) {
        Stream s(1, kDefaultPen, max);
        std::span<const FlowRecord> rest(recs);
        while (!rest.empty()) {
            const size_t k = records_fitting(rest, max);
            ASSERT_GT(k, 0u);
            const auto one = s.flows(0, rest.subspan(0, k));
            EXPECT_EQ(one.size(), 1u) << "max " << max;
            if (k < rest.size()) { // one more record would not fit
                Stream t(1, kDefaultPen, max);
                EXPECT_EQ(t.flows(0, rest.subspan(0, k + 1)).size(), 2u) << "max " << max;
            }
            rest = rest.subspan(k);
        }
    }
}

// The NAT template (259 here): the IPv4 fields, then postNATSourceIPv4Address 225,
// postNATDestinationIPv4Address 226, postNAPTSourceTransportPort 227,
// postNAPTDestinationTransportPort 228.
TEST(Ipfix, NatTemplateAndRecord) {
    TemplateRegistry reg;
    const TemplateIds ids = reg.ids(kDefaultPen, true);
    EXPECT_EQ(ids, (TemplateIds{256, 257, 258, 259}));
    Stream s(7, kDefaultPen, 1400, ids);
    const std::string common = "003d0001 00020008 00010008 01600008 00980008 00990008 00880001 00060002";
    const std::string ent = "80010008 00007ed9 80020008 00007ed9";
    const std::string v4 =
        "00080004 000c0004 00070002 000b0002 00040001 000a0004 000e0004 " + common + " 00200002 " + ent;
    const std::string expected =
        // header: length 306
        "000a 0132 00000000 00000000 00000007"
        // template set (id 2, 272 bytes): 256 (18 fields), 257, 259 (22 fields)
        "0002 0110"
        "0100 0012 " +
        v4 + " 0101 0012 001b0010 001c0010 00070002 000b0002 00040001 000a0004 000e0004 " + common +
        " 008b0002 " + ent + " 0103 0016 " + v4 + " 00e10004 00e20004 00e30002 00e40002" +
        " 0003 0012 0102 0002 0001 000a0004 0052ffff";
    EXPECT_EQ(hex(s.templates(0)), golden(expected));
    EXPECT_EQ(min_message_size(true), 306u);
    EXPECT_EQ(flow_record_size(false, true), 83u + 12u);

    FlowRecord nat = v4_flow();
    nat.nat = true;
    nat.post_src = {198, 19, 0, 1};
    nat.post_dst = {198, 18, 1, 2};
    nat.post_sport = 61000;
    nat.post_dport = 80;
    const FlowRecord recs[] = {v4_flow(), nat};
    const auto msgs = s.flows(0, recs);
    ASSERT_EQ(msgs.size(), 1u);
    // Two sets: 256 (4 + 83) and 259 (4 + 95); message 16 + 87 + 99 = 202.
    const std::string data = "000a 00ca 00000000 00000000 00000007 0100 0057 " + std::string(kV4Record) +
                             " 0103 0063 " + kV4Record + " c6130001 c6120102 ee48 0050";
    EXPECT_EQ(hex(msgs[0]), golden(data));
    EXPECT_EQ(records_fitting(recs, 1400), 2u);
    EXPECT_EQ(records_fitting(recs, 16 + 87 + 98), 1u);

    // A stream without a NAT template sends the record in the IPv4 layout.
    Stream plain(7, kDefaultPen, 1400);
    const FlowRecord one[] = {nat};
    EXPECT_EQ(hex(plain.flows(0, one)[0]),
              golden("000a 0067 00000000 00000000 00000007 0100 0057 " + std::string(kV4Record)));
}

// A changed layout (another PEN) gets new ids; a layout seen before keeps its ids; the interface
// table's layout has no enterprise element and keeps its id.
// userName (IE 371, variable length, RFC 7011 §7) ends every flow template of a stream with users:
// other layouts, so other template ids; each record carries its user as one length byte and the
// bytes (empty for no user; cut at kMaxUserName).
TEST(Ipfix, UserNameTemplatesAndRecords) {
    TemplateRegistry reg;
    const TemplateIds plain = reg.ids(kDefaultPen, true);
    const TemplateIds users = reg.ids(kDefaultPen, true, true);
    EXPECT_EQ(users, (TemplateIds{260, 261, 258, 262, true}));
    EXPECT_EQ(reg.ids(kDefaultPen, true), plain); // a layout keeps its id
    Stream s(7, kDefaultPen, 1400, users);
    const Bytes t = s.templates(0);
    // Each flow template: one field more (18 -> 19, NAT 22 -> 23), userName last, 0x0173 ffff.
    const std::string th = hex(t);
    EXPECT_NE(th.find(golden("0104 0013 00080004")), std::string::npos) << th;
    EXPECT_NE(th.find(golden("0105 0013 001b0010")), std::string::npos) << th;
    EXPECT_NE(th.find(golden("0106 0017 00080004")), std::string::npos) << th;
    EXPECT_NE(th.find(golden("00e40002 0173ffff")), std::string::npos) << th; // after the NAT fields
    EXPECT_EQ(t.size(), 306u + 3 * 4);
    EXPECT_EQ(min_message_size(true, true), 318u);

    FlowRecord alice = v4_flow(), nobody = v4_flow(), longest = v4_flow();
    alice.user = "alice";
    longest.user = std::string(100, 'x');
    const FlowRecord recs[] = {alice, nobody, longest};
    const auto msgs = s.flows(0, recs);
    ASSERT_EQ(msgs.size(), 1u);
    // One set 260: 4 + (83 + 6) + (83 + 1) + (83 + 64); message 16 + 324 = 340.
    std::string x63;
    for (int i = 0; i < 63; i++)
        x63 += "78"; // 'x', the name cut at 63 bytes
    const std::string data = "000a 0154 00000000 00000000 00000007 0104 0144 " + std::string(kV4Record) +
                             " 05 616c696365 " + kV4Record + " 00 " + kV4Record + " 3f " + x63;
    EXPECT_EQ(hex(msgs[0]), golden(data));
    EXPECT_EQ(records_fitting(recs, 1400, true), 3u);
    EXPECT_EQ(records_fitting(recs, 16 + 4 + 89 + 84, true), 2u);
    EXPECT_EQ(records_fitting(recs, 16 + 4 + 89 + 83, true), 1u);
    // A stream without users sends the same records without the name.
    Stream no_users(7, kDefaultPen, 1400, plain);
    const FlowRecord one[] = {alice};
    EXPECT_EQ(hex(no_users.flows(0, one)[0]),
              golden("000a 0067 00000000 00000000 00000007 0100 0057 " + std::string(kV4Record)));
}

// Traffic classes: while a ruleset is in force the flow templates carry two enterprise-specific
// elements after the NAT fields and before userName: rulesVersion (PEN/3, unsigned64) and
// trafficClassId (PEN/4, unsigned32; ffffffff: no class). Other layouts, so other template ids; the
// layouts seen before keep theirs.
TEST(Ipfix, ClassTemplatesAndRecords) {
    TemplateRegistry reg;
    const TemplateIds plain = reg.ids(kDefaultPen, true);
    EXPECT_EQ(plain, (TemplateIds{256, 257, 258, 259}));
    const TemplateIds classes = reg.ids(kDefaultPen, true, false, true);
    EXPECT_EQ(classes, (TemplateIds{260, 261, 258, 262, false, true}));
    const TemplateIds both = reg.ids(kDefaultPen, true, true, true);
    EXPECT_EQ(both, (TemplateIds{263, 264, 258, 265, true, true}));
    EXPECT_EQ(reg.ids(kDefaultPen, true), plain); // a layout keeps its id
    EXPECT_EQ(reg.ids(kDefaultPen, true, false, true), classes);

    Stream s(7, kDefaultPen, 1400, classes);
    const std::string common = "003d0001 00020008 00010008 01600008 00980008 00990008 00880001 00060002";
    const std::string ent = "80010008 00007ed9 80020008 00007ed9";
    const std::string cls = " 80030008 00007ed9 80040004 00007ed9";
    const std::string v4 =
        "00080004 000c0004 00070002 000b0002 00040001 000a0004 000e0004 " + common + " 00200002 " + ent;
    const std::string expected =
        // header: length 354 (306 + 3 * 16)
        "000a 0162 00000000 00000000 00000007"
        // template set (id 2, 320 bytes): 260 (20 fields), 261 (20), 262 (NAT, 24)
        "0002 0140"
        "0104 0014 " +
        v4 + cls + " 0105 0014 001b0010 001c0010 00070002 000b0002 00040001 000a0004 000e0004 " + common +
        " 008b0002 " + ent + cls + " 0106 0018 " + v4 + " 00e10004 00e20004 00e30002 00e40002" + cls +
        // the options template keeps its id and layout
        " 0003 0012 0102 0002 0001 000a0004 0052ffff";
    EXPECT_EQ(hex(s.templates(0)), golden(expected));
    EXPECT_EQ(flow_record_size(false, false, true), 83u + 12u);
    EXPECT_EQ(flow_record_size(true, false, true), 107u + 12u);
    EXPECT_EQ(flow_record_size(false, true, true), 95u + 12u);
    EXPECT_EQ(min_message_size(true, false, true), 354u);
    EXPECT_EQ(min_message_size(true, true, true), 366u); // the config's lower bound
    EXPECT_THROW(Stream(7, kDefaultPen, 353, classes), std::invalid_argument);

    FlowRecord web = v4_flow(), unclassified = v4_flow(), nat = v4_flow();
    web.rules_version = 3;
    web.class_id = 7;
    nat.rules_version = 0x0102030405060708;
    nat.class_id = 0; // other
    nat.nat = true;
    nat.post_src = {198, 19, 0, 1};
    nat.post_dst = {198, 18, 1, 2};
    nat.post_sport = 61000;
    nat.post_dport = 80;
    const FlowRecord recs[] = {web, unclassified, nat};
    const auto msgs = s.flows(0, recs);
    ASSERT_EQ(msgs.size(), 1u);
    // Set 260: 4 + 2 * 95 = 194; set 262: 4 + 107 = 111; message 16 + 194 + 111 = 321.
    const std::string data = "000a 0141 00000000 00000000 00000007 0104 00c2 " + std::string(kV4Record) +
                             " 0000000000000003 00000007 " + kV4Record + " 0000000000000000 ffffffff" +
                             " 0106 006f " + kV4Record + " c6130001 c6120102 ee48 0050" +
                             " 0102030405060708 00000000";
    EXPECT_EQ(hex(msgs[0]), golden(data));
    EXPECT_EQ(records_fitting(recs, 1400, false, true), 3u);
    EXPECT_EQ(records_fitting(recs, 16 + 4 + 95 + 95 + 4 + 107, false, true), 3u);
    EXPECT_EQ(records_fitting(recs, 16 + 4 + 95 + 95 + 4 + 106, false, true), 2u);

    // IPv6 with classes: 107 + 12 bytes.
    const FlowRecord v6[] = {v6_icmp()};
    EXPECT_EQ(hex(s.flows(0, v6)[0]), golden("000a 008b 00000000 00000003 00000007 0105 007b " +
                                             std::string(kV6Record) + " 0000000000000000 ffffffff"));

    // With users too: the class elements, then userName last.
    Stream u(7, kDefaultPen, 1400, both);
    const std::string th = hex(u.templates(0));
    EXPECT_NE(th.find(golden("0107 0015 00080004")), std::string::npos) << th;
    EXPECT_NE(th.find(golden("0108 0015 001b0010")), std::string::npos) << th;
    EXPECT_NE(th.find(golden("0109 0019 00080004")), std::string::npos) << th;
    EXPECT_NE(th.find(golden("00e40002" + cls + " 0173ffff")), std::string::npos) << th;
    web.user = "alice";
    const FlowRecord one[] = {web};
    EXPECT_EQ(hex(u.flows(0, one)[0]),
              golden("000a 0079 00000000 00000000 00000007 0107 0069 " + std::string(kV4Record) +
                     " 0000000000000003 00000007 05 616c696365"));

    // A stream without classes sends the same record without them.
    Stream no_classes(7, kDefaultPen, 1400, plain);
    EXPECT_EQ(hex(no_classes.flows(0, one)[0]),
              golden("000a 0067 00000000 00000000 00000007 0100 0057 " + std::string(kV4Record)));
}

TEST(Ipfix, TemplateIdsNeverRedefined) {
    TemplateRegistry reg;
    EXPECT_EQ(reg.ids(kDefaultPen, true), (TemplateIds{256, 257, 258, 259}));
    EXPECT_EQ(reg.ids(0x01020304, true), (TemplateIds{260, 261, 258, 262}));
    EXPECT_EQ(reg.ids(kDefaultPen, true), (TemplateIds{256, 257, 258, 259}));
    EXPECT_EQ(reg.ids(kDefaultPen, false), (TemplateIds{256, 257, 258, 0}));
    // The templates of the new ids carry the new PEN; the old ids do not appear.
    Stream s(1, 0x01020304, 1400, reg.ids(0x01020304, true));
    const std::string h = hex(s.templates(0));
    for (const char* id : {"01040012", "01050012", "01060016"})
        EXPECT_NE(h.find(id), std::string::npos) << id;
    for (const char* id : {"01000012", "01010012", "01030016"})
        EXPECT_EQ(h.find(id), std::string::npos) << id;
    EXPECT_NE(h.find("8001000801020304"), std::string::npos);
}
