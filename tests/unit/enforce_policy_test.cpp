// Pure enforcement logic: subject -> kernel key, which subjects/actions are
// refused, throttle schedule parameters, and the per-host fold of several
// thresholds' actions into the one entry the kernel holds.
#include "core/enforce.h"

#include <gtest/gtest.h>
#include <map>

namespace nettally {
namespace {

Subject host(const std::string& v) {
    return Subject{SubjectKind::Host, v};
}

TEST(EnforcePolicy, HostKeys) {
    auto v4 = host_policy_key("198.18.1.2");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->family, NT_AF_INET);
    EXPECT_EQ(v4->addr[0], 198);
    EXPECT_EQ(v4->addr[3], 2);
    EXPECT_EQ(v4->addr[4], 0);
    EXPECT_EQ(v4->to_string(), "198.18.1.2");

    auto v6 = host_policy_key("fd00::1:2");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->family, NT_AF_INET6);
    EXPECT_EQ(v6->addr[0], 0xfd);
    EXPECT_EQ(v6->addr[15], 2);
    // Non-canonical text maps to the same key.
    EXPECT_EQ(*host_policy_key("fd00:0:0::1:2"), *v6);

    auto mac = host_policy_key("AA:bb:cc:dd:ee:0F");
    ASSERT_TRUE(mac);
    EXPECT_EQ(mac->family, NT_POLICY_MAC);
    EXPECT_EQ(mac->addr[0], 0xaa);
    EXPECT_EQ(mac->addr[5], 0x0f);
    EXPECT_EQ(mac->addr[6], 0);
    EXPECT_EQ(mac->to_string(), "aa:bb:cc:dd:ee:0f");

    const nt_policy_key k = v4->to_abi();
    EXPECT_EQ(k.family, NT_AF_INET);
    EXPECT_EQ(reinterpret_cast<const uint8_t*>(k.addr)[0], 198);
    EXPECT_EQ(k.pad[0] | k.pad[1] | k.pad[2], 0);

    std::string why;
    for (const char* bad :
         {"", "198.18.1", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:gg", "aa-bb-cc-dd-ee-ff", "host.lan"}) {
        EXPECT_FALSE(host_policy_key(bad, &why)) << bad;
        EXPECT_NE(why.find("neither an IPv4/IPv6 address nor a MAC"), std::string::npos) << why;
    }
}

TEST(EnforcePolicy, CheckRefusesWhatCannotBeEnforced) {
    EXPECT_EQ(check_enforceable(Subject{SubjectKind::Interface, "lan0"}, ActionKind::Notify, 0), "");
    EXPECT_EQ(check_enforceable(host("198.18.1.2"), ActionKind::Block, 0), "");
    EXPECT_EQ(check_enforceable(host("198.18.1.2"), ActionKind::Throttle, 2'000'000), "");
    EXPECT_EQ(check_enforceable(host("aa:bb:cc:dd:ee:ff"), ActionKind::Throttle, kMinThrottleRate), "");

    for (auto kind : {SubjectKind::Interface, SubjectKind::Cgroup, SubjectKind::FlowAggregate}) {
        const std::string why = check_enforceable(Subject{kind, "x"}, ActionKind::Block, 0);
        EXPECT_NE(why.find("host subjects (an IP address or a MAC) and user subjects only"),
                  std::string::npos)
            << why;
        EXPECT_EQ(why.find('\n'), std::string::npos);
    }
    EXPECT_EQ(check_enforceable(Subject{SubjectKind::User, "alice"}, ActionKind::Block, 0), "");
    EXPECT_NE(
        check_enforceable(Subject{SubjectKind::User, "alice"}, ActionKind::Throttle, 1).find("out of range"),
        std::string::npos);
    EXPECT_NE(check_enforceable(host("nope"), ActionKind::Block, 0).find("neither"), std::string::npos);
    EXPECT_NE(check_enforceable(host("198.18.1.2"), ActionKind::Throttle, 0).find("out of range"),
              std::string::npos);
    EXPECT_NE(check_enforceable(host("198.18.1.2"), ActionKind::Throttle, kMinThrottleRate - 1)
                  .find("out of range"),
              std::string::npos);
    EXPECT_NE(check_enforceable(host("198.18.1.2"), ActionKind::Throttle, kMaxThrottleRate + 1)
                  .find("out of range"),
              std::string::npos);
}

TEST(EnforcePolicy, ThrottleParams) {
    // 2 MB/s: one second of rate (2 MB) is above the minimum burst.
    auto p = throttle_params(2'000'000);
    EXPECT_EQ(p.action, static_cast<uint32_t>(NT_POLICY_THROTTLE));
    EXPECT_EQ(p.rate, 2'000'000u);
    EXPECT_EQ(p.burst_ns, 1'000'000'000u);
    EXPECT_EQ(p.horizon_ns, kEdtHorizonNs);
    // 100 kB/s: 1 s is 100 kB, below 4 x 64 KiB: the burst is the time those take.
    p = throttle_params(100'000);
    EXPECT_EQ(p.burst_ns, kThrottleMinBurstBytes * 1'000'000'000ull / 100'000);
    EXPECT_GT(p.burst_ns, 2'000'000'000u);
    EXPECT_EQ(p.horizon_ns, p.burst_ns);
    // The largest rate: the kernel's cost computation (bytes * 1e9 / rate) stays in range.
    p = throttle_params(kMaxThrottleRate);
    EXPECT_EQ(p.burst_ns, 1'000'000'000u);
    EXPECT_EQ(block_params().action, static_cast<uint32_t>(NT_POLICY_BLOCK));
}

TEST(EnforcePolicy, TableFoldsActionsPerHost) {
    PolicyTable t;
    EXPECT_TRUE(t.effective().empty());
    EXPECT_EQ(t.kinds(), 0u);

    t.set("a", host("198.18.1.2"), ActionKind::Throttle, 2'000'000);
    t.set("b", host("198.18.1.2"), ActionKind::Throttle, 1'000'000);
    t.set("c", host("aa:bb:cc:dd:ee:ff"), ActionKind::Block, 0);
    EXPECT_EQ(t.ids(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(t.kinds(), static_cast<uint32_t>(NT_POLICY_KIND_IP | NT_POLICY_KIND_MAC));
    auto eff = t.effective();
    ASSERT_EQ(eff.size(), 2u);
    EXPECT_EQ(eff.at(*host_policy_key("198.18.1.2")), throttle_params(1'000'000)); // lowest rate wins
    EXPECT_EQ(eff.at(*host_policy_key("aa:bb:cc:dd:ee:ff")), block_params());

    // Block beats throttle on the same host.
    t.set("d", host("198.18.1.2"), ActionKind::Block, 0);
    EXPECT_EQ(t.effective().at(*host_policy_key("198.18.1.2")), block_params());
    t.remove("d");
    EXPECT_EQ(t.effective().at(*host_policy_key("198.18.1.2")), throttle_params(1'000'000));

    // Re-setting an id replaces it; notify removes it.
    t.set("b", host("198.18.1.2"), ActionKind::Throttle, 3'000'000);
    EXPECT_EQ(t.effective().at(*host_policy_key("198.18.1.2")), throttle_params(2'000'000));
    t.set("a", host("198.18.1.2"), ActionKind::Notify, 0);
    EXPECT_EQ(t.effective().at(*host_policy_key("198.18.1.2")), throttle_params(3'000'000));

    // A refused set changes nothing.
    EXPECT_THROW(t.set("b", Subject{SubjectKind::Cgroup, "/x"}, ActionKind::Block, 0), std::invalid_argument);
    EXPECT_EQ(t.effective().at(*host_policy_key("198.18.1.2")), throttle_params(3'000'000));

    t.remove("b");
    t.remove("unknown");
    EXPECT_EQ(t.kinds(), static_cast<uint32_t>(NT_POLICY_KIND_MAC));
    t.remove("c");
    EXPECT_TRUE(t.effective().empty());
    EXPECT_EQ(t.kinds(), 0u);
}

// A user subject becomes one key for the user's id; the kernel applies it to every address bound
// to the user. Without a way to name user ids (no subscribers) it is refused and nothing changes.
TEST(EnforcePolicy, UserSubjectsByUserId) {
    std::map<std::string, uint32_t> ids{{"alice", 7}, {"bob", 9}};
    PolicyTable t([&](const std::string& u) { return ids.at(u); });
    t.set("q1", Subject{SubjectKind::User, "alice"}, ActionKind::Throttle, 2'000'000);
    t.set("q2", Subject{SubjectKind::User, "alice"}, ActionKind::Block, 0);
    t.set("q3", Subject{SubjectKind::User, "bob"}, ActionKind::Throttle, 1'000'000);
    t.set("h", host("198.18.1.2"), ActionKind::Throttle, 5'000'000);
    EXPECT_EQ(t.kinds(), static_cast<uint32_t>(NT_POLICY_KIND_USER | NT_POLICY_KIND_IP));
    const auto eff = t.effective();
    ASSERT_EQ(eff.size(), 3u);
    EXPECT_EQ(eff.at(user_policy_key(7)), block_params());
    EXPECT_EQ(eff.at(user_policy_key(9)), throttle_params(1'000'000));
    const nt_policy_key k = user_policy_key(9).to_abi();
    EXPECT_EQ(k.family, NT_POLICY_USER);
    EXPECT_EQ(k.addr[0], 9u);
    EXPECT_EQ(k.addr[1] | k.addr[2] | k.addr[3], 0u);
    EXPECT_EQ(user_policy_key(9).to_string(), "user #9");

    PolicyTable none;
    EXPECT_THROW(none.set("q", Subject{SubjectKind::User, "alice"}, ActionKind::Block, 0),
                 std::invalid_argument);
    EXPECT_TRUE(none.effective().empty());
    none.set("n", Subject{SubjectKind::User, "alice"}, ActionKind::Notify, 0); // notify needs no id
    EXPECT_EQ(none.kinds(), 0u);
}

} // namespace
} // namespace nettally
