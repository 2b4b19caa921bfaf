// RADIUS accounting (core/radius.h): radclient's own packets (golden bytes captured from
// freeradius-utils 3.2.1, secret "testing123") parse as sent and are answered with the Response
// Authenticator Python's hashlib computes; the named corpus (tests/fuzz/corpus/radius) is refused
// for the reason each file is named after; the retransmission cache; the session table.
#include "core/radius.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace nettally::radius {
namespace {

constexpr uint64_t kNow = 1767225600; // 2026-01-01

std::vector<uint8_t> hex(std::string_view h) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

Prefix P(const std::string& s) {
    return *Prefix::parse(s);
}

ParseResult parse(const std::vector<uint8_t>& d, std::string_view secret = "testing123") {
    return parse_accounting_request(d.data(), d.size(), secret, kNow);
}

// radclient: Start with every attribute nettally reads.
const auto kStart =
    hex("04dc008593191e533180cb23a4b1c2ec1d90ac692806000000010107616c6963652c0b736573732d303030"
        "310806c612010261140040fd0000010000000000000000000000007b140038fd0000020000000000000000"
        "00000000a812fd0000030000000000000000000000013706675195c02906000000020406c6120001200762"
        "726173310000");
const auto kStop =
    hex("04050045404782682457f080cf3404a1da9d07cc2806000000020107616c6963652c0b736573732d30303031"
        "0806c6120102200762726173312e060000003c2a06000003e8");
const auto kOn = hex("049300270dfa8cdc0d84db9319d818e92849704e280600000007200762726173310406c6120001");

TEST(RadiusPacket, RadclientStartParsesAsSent) {
    // kStart carries 2 octets of padding after its Length (133): ignored (RFC 2865 3).
    ASSERT_EQ(kStart.size(), 135u);
    const auto r = parse(kStart);
    ASSERT_TRUE(r.request) << r.detail;
    const AccountingRequest& q = *r.request;
    EXPECT_EQ(q.identifier, 0xdc);
    EXPECT_EQ(q.status, StatusType::Start);
    EXPECT_EQ(q.user_name, "alice");
    EXPECT_EQ(q.session_id, "sess-0001");
    EXPECT_EQ(q.nas_identifier, "bras1");
    EXPECT_EQ(q.nas_address, "198.18.0.1");
    ASSERT_TRUE(q.framed_ip);
    EXPECT_EQ(*q.framed_ip, P("198.18.1.2"));
    EXPECT_EQ(q.ipv6_prefixes, (std::vector<Prefix>{P("fd00:1::/64"), P("fd00:2::/56"), P("fd00:3::1")}));
    EXPECT_EQ(q.event_timestamp, 1733400000u);
    EXPECT_EQ(q.delay_s, 2u);
    EXPECT_EQ(q.prefixes().size(), 4u);
}

TEST(RadiusPacket, ResponsesMatchTheGoldenAuthenticators) {
    // Expected answers: MD5(5 | id | 0x0014 | request authenticator | "testing123") by hashlib.
    const auto s = parse(kStart), st = parse(kStop), on = parse(kOn);
    ASSERT_TRUE(s.request && st.request && on.request);
    EXPECT_EQ(accounting_response(s.request->identifier, s.request->authenticator, "testing123"),
              hex("05dc00143c9094e41adebe09039d5560cd21c37b"));
    EXPECT_EQ(accounting_response(st.request->identifier, st.request->authenticator, "testing123"),
              hex("0505001413a15d0f007016ff00981c196769865c"));
    EXPECT_EQ(accounting_response(on.request->identifier, on.request->authenticator, "testing123"),
              hex("059300141c63dc016be2a37b5defe1fe4cf4c643"));
    EXPECT_EQ(st.request->status, StatusType::Stop);
    EXPECT_EQ(on.request->status, StatusType::AccountingOn);
    EXPECT_TRUE(on.request->user_name.empty());
}

TEST(RadiusPacket, RequestAuthenticatorIsTheOneSent) {
    const Authenticator a = request_authenticator(kStop.data(), kStop.size(), "testing123");
    EXPECT_TRUE(std::equal(a.begin(), a.end(), kStop.begin() + 4));
}

TEST(RadiusPacket, WrongSecretIsRefused) {
    const auto r = parse(kStart, "testing124");
    EXPECT_FALSE(r.request);
    EXPECT_EQ(r.reason, Reason::BadAuthenticator);
    EXPECT_EQ(r.detail.find("testing"), std::string::npos) << "no secret in the reason";
}

TEST(RadiusPacket, ReasonNamesAreDistinct) {
    std::set<std::string_view> names;
    for (size_t i = 0; i < kReasonCount; i++)
        names.insert(to_string(static_cast<Reason>(i)));
    EXPECT_EQ(names.size(), kReasonCount);
    EXPECT_EQ(names.count("?"), 0u);
}

// Every file of the named corpus: good-* accepted, <reason>-* refused with that reason.
TEST(RadiusCorpus, EachFileRefusedForTheReasonItIsNamedAfter) {
    const std::filesystem::path dir = std::filesystem::path(NT_SOURCE_DIR) / "tests/fuzz/corpus/radius";
    std::map<std::string, Reason> by_name;
    for (size_t i = 0; i < kReasonCount; i++)
        by_name[std::string(to_string(static_cast<Reason>(i)))] = static_cast<Reason>(i);
    size_t bad = 0, good = 0;
    std::set<Reason> seen;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        const auto dash = name.find('-');
        if (dash == std::string::npos)
            continue; // an input libFuzzer added (hash-named): replayed only
        std::ifstream in(e.path(), std::ios::binary);
        const std::vector<uint8_t> d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto r = parse(d);
        const std::string prefix = name.substr(0, dash);
        if (prefix == "good") {
            EXPECT_TRUE(r.request) << name << ": " << to_string(r.reason) << ": " << r.detail;
            good++;
            continue;
        }
        ASSERT_TRUE(by_name.count(prefix)) << name << ": no such reason";
        EXPECT_FALSE(r.request) << name << " accepted";
        EXPECT_EQ(to_string(r.reason), prefix) << name << ": " << r.detail;
        EXPECT_FALSE(r.detail.empty()) << name;
        seen.insert(r.reason);
        bad++;
    }
    EXPECT_GE(bad, 30u);
    EXPECT_GE(good, 5u);
    EXPECT_EQ(seen.size(), kReasonCount - 1)
        << "every parser reason has a file (unknown_client is the daemon's)";
}

TEST(RadiusRecent, RetransmissionFoundUntilItExpires) {
    RecentRequests rr(3, 10);
    const RecentRequests::Key k{"198.18.0.1", 1813, 7, Authenticator{1}};
    EXPECT_EQ(rr.find(k, 0), nullptr);
    rr.add(k, {5, 7}, 0);
    ASSERT_NE(rr.find(k, 5), nullptr);
    EXPECT_EQ(*rr.find(k, 10), (std::vector<uint8_t>{5, 7}));
    EXPECT_EQ(rr.find({"198.18.0.1", 1813, 8, Authenticator{1}}, 10), nullptr) << "another identifier";
    EXPECT_EQ(rr.find({"198.18.0.1", 1813, 7, Authenticator{2}}, 10), nullptr) << "another authenticator";
    EXPECT_EQ(rr.find({"198.18.0.2", 1813, 7, Authenticator{1}}, 10), nullptr) << "another client";
    EXPECT_EQ(rr.find(k, 11), nullptr) << "expired";
    for (uint8_t i = 0; i < 5; i++)
        rr.add({"198.18.0.1", 1813, i, Authenticator{}}, {i}, 20);
    EXPECT_EQ(rr.size(), 3u) << "capacity";
    EXPECT_EQ(rr.find({"198.18.0.1", 1813, 0, Authenticator{}}, 20), nullptr) << "oldest dropped first";
    EXPECT_NE(rr.find({"198.18.0.1", 1813, 4, Authenticator{}}, 20), nullptr);
}

AccountingRequest req(StatusType st, const std::string& user, const std::string& sid,
                      std::vector<std::string> prefixes) {
    AccountingRequest r;
    r.status = st;
    r.user_name = user;
    r.session_id = sid;
    for (const auto& p : prefixes) {
        const Prefix x = P(p);
        if (x.family == NT_AF_INET)
            r.framed_ip = x;
        else
            r.ipv6_prefixes.push_back(x);
    }
    return r;
}

std::map<Prefix, std::string> radius_open(const BindingTable& t) {
    std::map<Prefix, std::string> out;
    for (const auto& b : t.bindings())
        if (b.open() && b.source == BindingSource::Radius)
            out[b.prefix] = b.user;
    return out;
}

TEST(RadiusSessions, StartStopThenAnotherUserOnTheSameAddress) {
    BindingTable t;
    RadiusSessions s;
    std::vector<BindingChange> ch;
    EXPECT_EQ(
        s.apply(req(StatusType::Start, "alice", "a1", {"198.18.1.2", "fd00:1::/64"}), "bras1", t, 100, &ch),
        Outcome::Opened);
    EXPECT_EQ(ch.size(), 2u);
    EXPECT_EQ(radius_open(t),
              (std::map<Prefix, std::string>{{P("198.18.1.2"), "alice"}, {P("fd00:1::/64"), "alice"}}));
    ch.clear();
    EXPECT_EQ(s.apply(req(StatusType::InterimUpdate, "alice", "a1", {"198.18.1.2", "fd00:1::/64"}), "bras1",
                      t, 150, &ch),
              Outcome::Refreshed);
    EXPECT_TRUE(ch.empty()) << "an Interim with the same addresses changes nothing";
    EXPECT_EQ(s.apply(req(StatusType::Stop, "alice", "a1", {}), "bras1", t, 200, &ch), Outcome::Closed);
    EXPECT_EQ(ch.size(), 2u);
    EXPECT_TRUE(radius_open(t).empty());
    EXPECT_EQ(s.apply(req(StatusType::Start, "bob", "b1", {"198.18.1.2"}), "bras1", t, 300, &ch),
              Outcome::Opened);
    EXPECT_EQ(radius_open(t), (std::map<Prefix, std::string>{{P("198.18.1.2"), "bob"}}));
    EXPECT_EQ(t.user_at(NT_AF_INET, P("198.18.1.2").addr.data(), 150), "alice");
    EXPECT_EQ(t.user_at(NT_AF_INET, P("198.18.1.2").addr.data(), 250), "");
    EXPECT_EQ(t.user_at(NT_AF_INET, P("198.18.1.2").addr.data(), 300), "bob");
    // A second Stop of alice's session (cache expired) and a late Interim of it change nothing.
    ch.clear();
    EXPECT_EQ(s.apply(req(StatusType::Stop, "alice", "a1", {}), "bras1", t, 400, &ch), Outcome::Unknown);
    EXPECT_EQ(s.apply(req(StatusType::InterimUpdate, "alice", "a1", {"198.18.1.2"}), "bras1", t, 400, &ch),
              Outcome::Stale);
    EXPECT_TRUE(ch.empty());
    EXPECT_EQ(radius_open(t), (std::map<Prefix, std::string>{{P("198.18.1.2"), "bob"}}));
}

TEST(RadiusSessions, ReassignedBeforeTheOldStopArrives) {
    BindingTable t;
    RadiusSessions s;
    std::vector<BindingChange> ch;
    s.apply(req(StatusType::Start, "alice", "a1", {"198.18.1.2"}), "bras1", t, 100, &ch);
    s.apply(req(StatusType::Start, "bob", "b1", {"198.18.1.2"}), "bras1", t, 200, &ch);
    EXPECT_EQ(radius_open(t), (std::map<Prefix, std::string>{{P("198.18.1.2"), "bob"}}));
    s.apply(req(StatusType::Stop, "alice", "a1", {}), "bras1", t, 300, &ch);
    EXPECT_EQ(radius_open(t), (std::map<Prefix, std::string>{{P("198.18.1.2"), "bob"}})) << "alice's Stop";
}

TEST(RadiusSessions, InterimMovesTheSessionsAddresses) {
    BindingTable t;
    RadiusSessions s;
    std::vector<BindingChange> ch;
    s.apply(req(StatusType::Start, "alice", "a1", {"198.18.1.2"}), "bras1", t, 100, &ch);
    ch.clear();
    EXPECT_EQ(s.apply(req(StatusType::InterimUpdate, "alice", "a1", {"198.18.1.3", "fd00:9::/56"}), "bras1",
                      t, 200, &ch),
              Outcome::Refreshed);
    EXPECT_EQ(ch.size(), 3u);
    EXPECT_EQ(radius_open(t),
              (std::map<Prefix, std::string>{{P("198.18.1.3"), "alice"}, {P("fd00:9::/56"), "alice"}}));
    // A session the daemon never saw start (it started before us) opens at its first Interim.
    EXPECT_EQ(s.apply(req(StatusType::InterimUpdate, "carol", "c1", {"198.18.1.9"}), "bras1", t, 300, &ch),
              Outcome::Opened);
    EXPECT_EQ(s.apply(req(StatusType::Start, "dave", "d1", {}), "bras1", t, 300, &ch), Outcome::NoAddress);
    EXPECT_EQ(s.open().size(), 2u);
}

TEST(RadiusSessions, AccountingOnEndsEverySessionOfThatNasOnly) {
    BindingTable t;
    RadiusSessions s;
    std::vector<BindingChange> ch;
    s.apply(req(StatusType::Start, "alice", "1", {"198.18.1.2"}), "bras1", t, 100, &ch);
    s.apply(req(StatusType::Start, "bob", "2", {"198.18.1.3"}), "bras1", t, 100, &ch);
    s.apply(req(StatusType::Start, "carol", "1", {"198.18.2.2"}), "bras2", t, 100, &ch);
    ch.clear();
    EXPECT_EQ(s.apply(req(StatusType::AccountingOn, "", "", {}), "bras1", t, 200, &ch), Outcome::NasReset);
    EXPECT_EQ(ch.size(), 2u);
    EXPECT_EQ(radius_open(t), (std::map<Prefix, std::string>{{P("198.18.2.2"), "carol"}}));
    // The rebooted NAS counts its ids from 1 again: an Interim of the new session "1" opens it.
    EXPECT_EQ(s.apply(req(StatusType::InterimUpdate, "dave", "1", {"198.18.1.2"}), "bras1", t, 300, &ch),
              Outcome::Opened);
    EXPECT_EQ(s.apply(req(StatusType::AccountingOff, "", "", {}), "bras2", t, 400, &ch), Outcome::NasReset);
    EXPECT_EQ(radius_open(t), (std::map<Prefix, std::string>{{P("198.18.1.2"), "dave"}}));
}

TEST(RadiusSessions, NasOfPrefersTheNasIdentifier) {
    AccountingRequest r;
    EXPECT_EQ(RadiusSessions::nas_of(r, "198.18.0.9"), "198.18.0.9");
    r.nas_address = "198.18.0.1";
    EXPECT_EQ(RadiusSessions::nas_of(r, "198.18.0.9"), "198.18.0.1");
    r.nas_identifier = "bras1";
    EXPECT_EQ(RadiusSessions::nas_of(r, "198.18.0.9"), "bras1");
}

TEST(RadiusSessions, JsonRoundTrip) {
    BindingTable t;
    RadiusSessions s;
    std::vector<BindingChange> ch;
    s.apply(req(StatusType::Start, "alice", "a1", {"198.18.1.2", "fd00:1::/64"}), "bras1", t, 100, &ch);
    s.apply(req(StatusType::Start, "bob", "b1", {"198.18.1.3"}), "bras1", t, 100, &ch);
    s.apply(req(StatusType::Stop, "bob", "b1", {}), "bras1", t, 200, &ch);
    const auto back = RadiusSessions::from_json(s.to_json());
    EXPECT_EQ(back.open(), s.open());
    EXPECT_EQ(back.to_json(), s.to_json());
    EXPECT_THROW(RadiusSessions::from_json(nlohmann::json::object()), std::exception);
}

} // namespace
} // namespace nettally::radius
