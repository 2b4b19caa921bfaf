// Subscribers (core/subscribers.h): prefixes, the binding table's intervals and precedence, user
// ids; the subscribers section of the config with its file:line:col: key: messages; and the
// collector's per-user totals (unbound included) across polls and a state round trip.
#include "config_section_test.h"
#include "core/collector.h"
#include "core/history_feed.h"
#include "core/subscribers.h"
#include "core/thresholds.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace nettally {
namespace {

using config_test::error_of;
using config_test::parse;

Prefix P(const std::string& text) {
    std::string why;
    auto p = Prefix::parse(text, &why);
    EXPECT_TRUE(p) << text << ": " << why;
    return p.value_or(Prefix{});
}

std::array<uint32_t, 4> A(const std::string& ip) {
    std::array<uint32_t, 4> a{};
    if (inet_pton(AF_INET, ip.c_str(), a.data()) != 1) {
        EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), a.data()), 1) << ip;
    }
    return a;
}

TEST(Prefix, ParseAndFormat) {
    EXPECT_EQ(P("198.18.1.2").to_string(), "198.18.1.2");
    EXPECT_EQ(P("198.18.1.2").len, 32);
    EXPECT_EQ(P("198.18.1.2/32").to_string(), "198.18.1.2");
    EXPECT_EQ(P("198.18.0.0/15").to_string(), "198.18.0.0/15");
    EXPECT_EQ(P("fd00:1::/64").to_string(), "fd00:1::/64");
    EXPECT_EQ(P("fd00:1::/64").family, NT_AF_INET6);
    EXPECT_EQ(P("fd00:1::2").len, 128);
    std::string why;
    EXPECT_FALSE(Prefix::parse("198.18.1.2/24", &why));
    EXPECT_EQ(why, "address bits are set past the prefix length (did you mean 198.18.1.0/24?)");
    EXPECT_FALSE(Prefix::parse("198.18.1.0/33", &why));
    EXPECT_EQ(why, "prefix length must be 1 .. 32");
    EXPECT_FALSE(Prefix::parse("fd00::/0", &why));
    EXPECT_FALSE(Prefix::parse("fd00::/x", &why));
    EXPECT_EQ(why, "the prefix length after '/' is not a number");
    EXPECT_FALSE(Prefix::parse("alice", &why));
    EXPECT_EQ(why, "not an IPv4 or IPv6 address");
    EXPECT_FALSE(Prefix::parse("", &why));
}

TEST(Prefix, ContainsAndKernelKey) {
    const Prefix v6 = P("fd00:1::/64");
    EXPECT_TRUE(v6.contains(NT_AF_INET6, A("fd00:1::99").data()));
    EXPECT_FALSE(v6.contains(NT_AF_INET6, A("fd00:2::99").data()));
    EXPECT_FALSE(v6.contains(NT_AF_INET, A("198.18.1.2").data()));
    const Prefix v4 = P("198.18.1.0/24");
    EXPECT_TRUE(v4.contains(NT_AF_INET, A("198.18.1.200").data()));
    EXPECT_FALSE(v4.contains(NT_AF_INET, A("198.18.2.1").data()));
    const nt_bind_key k = v6.kernel_key();
    EXPECT_EQ(k.prefixlen, NT_BIND_KEY_BITS + 64u);
    EXPECT_EQ(k.family, NT_AF_INET6);
    EXPECT_EQ(P("198.18.1.2").kernel_key().prefixlen, NT_BIND_KEY_BITS + 32u);
}

TEST(Subscribers, MacAndUserNames) {
    EXPECT_EQ(normalize_mac("02:AA:bb:00:00:01"), "02:aa:bb:00:00:01");
    EXPECT_EQ(normalize_mac("02-aa-bb-00-00-01"), "02:aa:bb:00:00:01");
    EXPECT_FALSE(normalize_mac("02:aa:bb:00:00"));
    EXPECT_FALSE(normalize_mac("02:aa:bb:00:00:0g"));
    EXPECT_TRUE(valid_user_name("alice@isp.example"));
    std::string why;
    EXPECT_FALSE(valid_user_name("", &why));
    EXPECT_FALSE(valid_user_name("al ice", &why));
    EXPECT_FALSE(valid_user_name("a|b", &why));
    EXPECT_FALSE(valid_user_name(std::string(64, 'a'), &why));
    EXPECT_TRUE(valid_user_name(std::string(63, 'a')));
}

TEST(BindingTable, SyncSourceKeepsUnchangedAndClosesTheRest) {
    BindingTable t;
    auto ch = t.sync_source(BindingSource::Static,
                            {{"alice", P("198.18.1.2"), "", ""}, {"bob", P("fd00:1::/64"), "", ""}}, 100);
    ASSERT_EQ(ch.size(), 2u);
    EXPECT_EQ(ch[0].kind, BindingChange::Kind::Opened);
    EXPECT_EQ(t.effective().size(), 2u);

    // Same config again: nothing changes, since stays.
    EXPECT_TRUE(t.sync_source(BindingSource::Static,
                              {{"alice", P("198.18.1.2"), "", ""}, {"bob", P("fd00:1::/64"), "", ""}}, 200)
                    .empty());
    // alice's address goes to carol; bob is removed.
    ch = t.sync_source(BindingSource::Static, {{"carol", P("198.18.1.2"), "", ""}}, 300);
    ASSERT_EQ(ch.size(), 3u);
    EXPECT_EQ(ch[0].kind, BindingChange::Kind::Closed);
    EXPECT_EQ(ch[0].binding.user, "alice");
    EXPECT_EQ(ch[0].binding.since_us, 100u);
    EXPECT_EQ(ch[0].binding.until_us, 300u);
    EXPECT_EQ(ch[1].binding.user, "bob");
    EXPECT_EQ(ch[2].kind, BindingChange::Kind::Opened);
    EXPECT_EQ(ch[2].binding.user, "carol");
    EXPECT_EQ(t.effective(), (std::map<Prefix, std::string>{{P("198.18.1.2"), "carol"}}));

    // Who had the address when: the interval decides, the end is exclusive.
    const auto a = A("198.18.1.2");
    EXPECT_EQ(t.user_at(NT_AF_INET, a.data(), 99), "");
    EXPECT_EQ(t.user_at(NT_AF_INET, a.data(), 100), "alice");
    EXPECT_EQ(t.user_at(NT_AF_INET, a.data(), 299), "alice");
    EXPECT_EQ(t.user_at(NT_AF_INET, a.data(), 300), "carol");
    EXPECT_EQ(t.user_at(NT_AF_INET6, A("fd00:1::5").data(), 150), "bob");
    EXPECT_EQ(t.user_at(NT_AF_INET6, A("fd00:1::5").data(), 300), "");
}

TEST(BindingTable, ExpireKeepsClosedForKeepClosed) {
    BindingTable t;
    t.open(BindingSource::Dhcp, {"alice", P("198.18.1.2"), "02:00:00:00:00:01", "02:00:00:00:00:01"}, 1000);
    t.close(BindingSource::Dhcp, P("198.18.1.2"), "", 2000);
    EXPECT_EQ(t.expire(2000 + 500, 1000), 0u);
    EXPECT_EQ(t.bindings().size(), 1u);
    EXPECT_EQ(t.expire(3000, 1000), 0u) << "exactly keep_closed after the end: still kept";
    EXPECT_EQ(t.expire(3001, 1000), 1u);
    EXPECT_TRUE(t.bindings().empty());
}

TEST(BindingTable, OpenReplacesTheSameSourcesPrefixAndPrecedenceDecides) {
    BindingTable t;
    t.open(BindingSource::Dhcp, {"alice", P("198.18.1.2"), "s1", ""}, 10);
    EXPECT_TRUE(t.open(BindingSource::Dhcp, {"alice", P("198.18.1.2"), "s1", ""}, 20).empty())
        << "a renewal of the same binding changes nothing";
    auto ch = t.open(BindingSource::Dhcp, {"bob", P("198.18.1.2"), "s2", ""}, 30);
    ASSERT_EQ(ch.size(), 2u);
    EXPECT_EQ(ch[0].binding.user, "alice");
    EXPECT_EQ(ch[0].binding.until_us, 30u);
    EXPECT_EQ(t.effective().at(P("198.18.1.2")), "bob");
    // A static binding of the same address outranks the lease; when it goes, the lease counts again.
    t.sync_source(BindingSource::Static, {{"operator", P("198.18.1.2"), "", ""}}, 40);
    EXPECT_EQ(t.effective().at(P("198.18.1.2")), "operator");
    t.sync_source(BindingSource::Static, {}, 50);
    EXPECT_EQ(t.effective().at(P("198.18.1.2")), "bob");
    // Closing with another session's id closes nothing.
    EXPECT_TRUE(t.close(BindingSource::Dhcp, P("198.18.1.2"), "s1", 60).empty());
    EXPECT_EQ(t.close(BindingSource::Dhcp, P("198.18.1.2"), "s2", 60).size(), 1u);
    EXPECT_TRUE(t.effective().empty());
}

TEST(BindingTable, JsonRoundTripAndRefusal) {
    BindingTable t;
    t.sync_source(BindingSource::Static,
                  {{"alice", P("198.18.1.2"), "", ""}, {"bob", P("fd00:1::/64"), "", ""}}, 100);
    t.sync_source(BindingSource::Static, {{"bob", P("fd00:1::/64"), "", ""}}, 200);
    const BindingTable back = BindingTable::from_json(t.to_json());
    EXPECT_EQ(back.bindings(), t.bindings());
    nlohmann::json bad = t.to_json();
    bad[0]["prefix"] = "198.18.1.2/24";
    EXPECT_THROW(BindingTable::from_json(bad), std::exception);
    bad = t.to_json();
    bad[0]["source"] = "ldap";
    EXPECT_THROW(BindingTable::from_json(bad), std::exception);
}

TEST(UserIds, AllocateRestoreNeverReuse) {
    UserIds ids;
    ids.restore(7, "alice");
    EXPECT_EQ(ids.id_of("alice"), 7u);
    EXPECT_EQ(ids.id_of("bob"), 8u);
    EXPECT_EQ(ids.name_of(8), "bob");
    EXPECT_EQ(ids.name_of(NT_USER_UNBOUND), "");
    ids.restore(3, "alice"); // a second id for a known name is ignored
    EXPECT_EQ(ids.id_of("alice"), 7u);
    EXPECT_EQ(ids.name_of(3), "");
}

TEST(ConfigSubscribers, DefaultsAndEveryKey) {
    const Config none = parse("");
    EXPECT_FALSE(none.subscribers.configured);
    const Config empty = parse("subscribers:\n");
    EXPECT_TRUE(empty.subscribers.configured);
    EXPECT_EQ(empty.subscribers.keep_closed, std::chrono::hours(24));
    const Config c = parse("subscribers:\n"
                           "  keep_closed: 2h\n"
                           "  static:\n"
                           "    - user: alice\n"
                           "      prefix: 198.18.1.2\n"
                           "    - user: bob\n"
                           "      prefix: fd00:1::/64\n"
                           "    - user: bob\n"
                           "      mac: 02:00:00:00:00:0A\n");
    EXPECT_EQ(c.subscribers.keep_closed, std::chrono::hours(2));
    ASSERT_EQ(c.subscribers.statics.size(), 3u);
    EXPECT_EQ(c.subscribers.statics[0].user, "alice");
    EXPECT_EQ(c.subscribers.statics[0].prefix, P("198.18.1.2"));
    EXPECT_EQ(c.subscribers.statics[1].prefix, P("fd00:1::/64"));
    EXPECT_EQ(c.subscribers.statics[2].mac, "02:00:00:00:00:0a");
    EXPECT_FALSE(c.subscribers.statics[2].prefix);
}

TEST(ConfigSubscribers, LeaseFiles) {
    const Config c = parse("subscribers:\n"
                           "  dhcp:\n"
                           "    - format: dnsmasq\n"
                           "      path: /var/lib/misc/dnsmasq.leases\n"
                           "    - format: kea\n"
                           "      path: /var/lib/kea/../kea/kea-leases4.csv\n");
    ASSERT_EQ(c.subscribers.dhcp.size(), 2u);
    EXPECT_EQ(c.subscribers.dhcp[0].format, LeaseFormat::Dnsmasq);
    EXPECT_EQ(c.subscribers.dhcp[1].format, LeaseFormat::Kea);
    EXPECT_EQ(c.subscribers.dhcp[1].path, "/var/lib/kea/kea-leases4.csv");
    EXPECT_NE(error_of("subscribers:\n  dhcp:\n    - format: isc\n      path: /a\n")
                  .find("test.yaml:6:15: subscribers.dhcp[0].format:"),
              std::string::npos);
    EXPECT_EQ(error_of("subscribers:\n  dhcp:\n    - format: kea\n      path: leases.csv\n"),
              "test.yaml:7:13: subscribers.dhcp[0].path: expected an absolute file path, got 'leases.csv'");
    EXPECT_EQ(error_of("subscribers:\n  dhcp:\n    - format: kea\n      path: /a\n"
                       "    - format: dnsmasq\n      path: /b/../a\n"),
              "test.yaml:9:13: subscribers.dhcp[1].path: lease file '/a' listed twice");
    EXPECT_EQ(error_of("subscribers:\n  dhcp:\n    - path: /a\n"),
              "test.yaml:6:7: subscribers.dhcp[0].format: missing: dnsmasq or kea");
}

TEST(ConfigSubscribers, Radius) {
    EXPECT_TRUE(parse("subscribers:\n").subscribers.radius.listen.empty()) << "off by default";
    const Config c = parse("subscribers:\n"
                           "  radius:\n"
                           "    listen: '[::]:1813'\n"
                           "    clients:\n"
                           "      - address: 198.18.0.1\n"
                           "        secret_file: /etc/nettally/bras1.secret\n"
                           "      - address: fd00:9::/64\n"
                           "        secret_credential: radius-pool\n");
    const RadiusConfig& r = c.subscribers.radius;
    EXPECT_EQ(r.listen, "[::]:1813");
    ASSERT_EQ(r.clients.size(), 2u);
    EXPECT_EQ(r.clients[0].address, P("198.18.0.1"));
    EXPECT_EQ(r.clients[0].secret_file, "/etc/nettally/bras1.secret");
    EXPECT_EQ(r.clients[1].address, P("fd00:9::/64"));
    EXPECT_EQ(r.clients[1].secret_credential, "radius-pool");
    const std::string head = "subscribers:\n  radius:\n    listen: 198.18.0.2:1813\n    clients:\n";
    EXPECT_EQ(error_of(head + "      - address: 198.18.0.1\n"),
              "test.yaml:8:9: subscribers.radius.clients[0]: missing: secret_file or secret_credential (the "
              "shared secret)");
    EXPECT_EQ(
        error_of(head + "      - address: 198.18.0.1\n        secret_file: s\n"),
        "test.yaml:9:22: subscribers.radius.clients[0].secret_file: must be an absolute file path, got 's'");
    EXPECT_EQ(
        error_of(head +
                 "      - address: 198.18.0.1\n        secret_file: /s\n        secret_credential: c\n"),
        "test.yaml:10:28: subscribers.radius.clients[0].secret_credential: set secret_file or "
        "secret_credential, not both");
    EXPECT_EQ(
        error_of(head + "      - address: 198.18.0.1\n        secret_credential: a/b\n"),
        "test.yaml:9:28: subscribers.radius.clients[0].secret_credential: invalid credential name 'a/b' (a "
        "file name, no '/')");
    EXPECT_NE(error_of("subscribers:\n  radius:\n    listen: 198.18.0.2\n    clients:\n      - address: "
                       "198.18.0.1\n        secret_file: /s\n")
                  .find("subscribers.radius.listen: invalid listen address '198.18.0.2'"),
              std::string::npos);
    EXPECT_NE(error_of("subscribers:\n  radius:\n    clients:\n      - address: 198.18.0.1\n        "
                       "secret_file: /s\n")
                  .find("subscribers.radius.listen: missing"),
              std::string::npos);
    EXPECT_NE(error_of("subscribers:\n  radius:\n    listen: 198.18.0.2:1813\n")
                  .find("subscribers.radius.clients: "
                        "missing"),
              std::string::npos);
    // The secret never appears in the config file, so no error can echo it.
    EXPECT_NE(error_of(head + "      - address: 198.18.0.1\n        secret: hunter2\n").find("unknown key"),
              std::string::npos);
}

TEST(ConfigSubscribers, Rejections) {
    EXPECT_EQ(
        error_of("subscribers:\n  static:\n    - user: alice\n      prefix: 198.18.1.2/24\n"),
        "test.yaml:7:15: subscribers.static[0].prefix: invalid prefix '198.18.1.2/24': address bits are "
        "set past the prefix length (did you mean 198.18.1.0/24?)");
    EXPECT_EQ(error_of("subscribers:\n  static:\n    - user: alice\n      prefix: 198.18.1.2\n"
                       "    - user: bob\n      prefix: 198.18.1.2/32\n"),
              "test.yaml:9:15: subscribers.static[1].prefix: prefix '198.18.1.2' listed twice");
    EXPECT_EQ(error_of("subscribers:\n  static:\n    - prefix: 198.18.1.2\n"),
              "test.yaml:6:7: subscribers.static[0].user: missing: every entry needs a user");
    EXPECT_EQ(error_of("subscribers:\n  static:\n    - user: alice\n"),
              "test.yaml:6:7: subscribers.static[0]: missing: every entry needs a prefix or a mac");
    EXPECT_EQ(error_of("subscribers:\n  static:\n    - user: alice\n      prefix: 198.18.1.2\n"
                       "      mac: 02:00:00:00:00:01\n"),
              "test.yaml:8:12: subscribers.static[0].mac: an entry has a prefix or a mac, not both");
    EXPECT_EQ(error_of("subscribers:\n  static:\n    - user: alice\n      mac: 02:00:00:00:01\n"),
              "test.yaml:7:12: subscribers.static[0].mac: invalid MAC address '02:00:00:00:01' (expected "
              "aa:bb:cc:dd:ee:ff)");
    EXPECT_EQ(
        error_of("subscribers:\n  static:\n    - user: al ice\n      prefix: 198.18.1.2\n"),
        "test.yaml:6:13: subscribers.static[0].user: invalid user name 'al ice': a user name is printable "
        "ASCII without spaces or '|'");
    EXPECT_EQ(error_of("subscribers:\n  static: 198.18.1.2\n"),
              "test.yaml:5:11: subscribers.static: expected a list of {user, prefix} or {user, mac}, got the "
              "value '198.18.1.2'");
    EXPECT_NE(error_of("subscribers:\n  radius: on\n").find("subscribers.radius"), std::string::npos);
}

// Per-user kernel counters as the collector folds them.
class UserMaps : public MapReader {
public:
    std::vector<UserEntry> users;
    UserEntry overflow;
    IfaceSnapshot read_ifaces() override { return {}; }
    void read_flows(std::vector<FlowEntry>& out) override { out.clear(); }
    std::vector<HostEntry> read_hosts() override { return {}; }
    std::vector<FlowEntry> evict_flows(const std::vector<nt_flow_key>&) override { return {}; }
    std::map<IfaceKey, EvictedSums> read_evicted() override { return {}; }
    void write_evicted(const IfaceKey&, const EvictedSums&) override {}
    std::vector<UserEntry> read_users() override { return users; }
    UserEntry read_user_overflow() override { return overflow; }
};

UserEntry user_entry(uint32_t ifindex, uint32_t user, Counts sent, Counts received) {
    UserEntry u;
    u.key = {ifindex, user};
    u.sent = sent;
    u.received = received;
    return u;
}

// A lan interface under traffic: every read of a map lets `arrivals` more packets in (one host,
// counted for alice as the programs do: host and user in the same run), until the traffic stops.
class MovingMaps : public UserMaps {
public:
    uint64_t packets = 1;
    int arrivals = 0; // reads that still let a packet in
    std::vector<HostEntry> read_hosts() override {
        HostEntry h;
        h.key.ifindex = 3;
        h.key.family = NT_AF_INET;
        h.key.addr[0] = htonl(0xc6120102);
        h.sent = Counts(packets, packets * 100, packets * 86, packets * 66, packets * 46);
        arrive();
        return {h};
    }
    std::vector<UserEntry> read_users() override {
        const Counts c(packets, packets * 100, packets * 86, packets * 66, packets * 46);
        auto out = std::vector<UserEntry>{user_entry(3, alice, c, {})};
        arrive();
        return out;
    }
    uint32_t alice = 0;

private:
    void arrive() {
        if (arrivals > 0) {
            arrivals--;
            packets++;
        }
    }
};

TEST(CollectorUsers, HostsAndUsersFromOneInstantUnderTraffic) {
    MovingMaps maps;
    UserIds ids;
    maps.alice = ids.id_of("alice");
    Collector col(maps);
    col.set_user_ids(&ids);
    col.set_interfaces({{"lan0", "lan", 3}});
    maps.arrivals = 5; // packets land between the reads of the first rounds, then stop
    col.poll({1'000'000, 1'000'000'000});
    ASSERT_EQ(col.hosts().size(), 1u);
    const uint64_t host = col.hosts().begin()->second.sent.total().packets;
    EXPECT_EQ(col.users().at("lan0|alice").sent.total().packets, host) << "users and hosts of one instant";
    EXPECT_EQ(col.stats().user_snapshot_misses, 0u);

    maps.arrivals = 1000; // never quiet: published as read, and said so
    col.poll({2'000'000, 2'000'000'000});
    EXPECT_EQ(col.stats().user_snapshot_misses, 1u);
}

TEST(CollectorUsers, TotalsByNameUnboundAndRestore) {
    UserMaps maps;
    UserIds ids;
    const uint32_t alice = ids.id_of("alice");
    Collector col(maps);
    col.set_user_ids(&ids);
    col.set_interfaces({{"lan0", "lan", 3}});
    maps.users = {user_entry(3, alice, Counts(2, 200, 172, 152, 100), Counts(1, 100, 86, 66, 50)),
                  user_entry(3, NT_USER_UNBOUND, Counts(1, 60, 46, 26, 6), {}),
                  user_entry(3, 99, Counts(1, 1, 1, 1, 1), {}),      // an id whose name is lost
                  user_entry(77, alice, Counts(5, 5, 5, 5, 5), {})}; // not an accounted interface
    col.poll({1'000'000, 1'000'000'000});
    ASSERT_EQ(col.users().size(), 3u);
    EXPECT_EQ(col.users().at("lan0|alice").sent.total(), Counts(2, 200, 172, 152, 100));
    EXPECT_EQ(col.users().at("lan0|alice").received.total(), Counts(1, 100, 86, 66, 50));
    EXPECT_EQ(col.users().at("lan0|").sent.total(), Counts(1, 60, 46, 26, 6));
    EXPECT_EQ(col.users().at("lan0|#99").user, "#99");

    // The kernel map restarts (reboot): the totals carry on.
    Collector next(maps);
    next.set_user_ids(&ids);
    next.set_interfaces({{"lan0", "lan", 3}});
    next.restore(col.to_json(), false);
    maps.users = {user_entry(3, alice, Counts(1, 100, 86, 66, 50), {})};
    next.poll({2'000'000, 1'000'000'000});
    EXPECT_EQ(next.users().at("lan0|alice").sent.total(), Counts(3, 300, 258, 218, 150));
    EXPECT_EQ(next.users().at("lan0|alice").received.total(), Counts(1, 100, 86, 66, 50));
    EXPECT_EQ(next.users().at("lan0|").sent.total(), Counts(1, 60, 46, 26, 6));
}

// A user across interfaces: one history subject per side, a threshold's usage summed over every
// lan interface; a user not seen yet counts from 0 and user subjects need subscribers.
TEST(CollectorUsers, HistoryAndThresholdUsagePerUser) {
    UserMaps maps;
    UserIds ids;
    const uint32_t alice = ids.id_of("alice");
    Collector col(maps);
    col.set_user_ids(&ids);
    col.set_interfaces({{"lan0", "lan", 3}, {"lan1", "lan", 4}});
    HistoryFeed feed{History(PeriodSpec{})};
    const int64_t t0 = 1'800'000'000'000'000;
    col.poll({static_cast<uint64_t>(t0), 1'000'000'000});
    feed.feed(col, t0);
    maps.users = {user_entry(3, alice, Counts(2, 200, 172, 152, 100), Counts(1, 100, 86, 66, 50)),
                  user_entry(4, alice, Counts(1, 10, 8, 6, 4), {}),
                  user_entry(3, NT_USER_UNBOUND, Counts(1, 60, 46, 26, 6), {})};
    col.poll({static_cast<uint64_t>(t0 + 1'000'000), 2'000'000'000});
    feed.feed(col, t0 + 1'000'000);
    Counts sent, received;
    for (const auto& p : feed.history().periods(PeriodKind::Day)) {
        if (auto it = p.totals.find("user:alice:sent"); it != p.totals.end())
            sent += it->second;
        if (auto it = p.totals.find("user:alice:received"); it != p.totals.end())
            received += it->second;
        for (const auto& [subject, c] : p.totals)
            EXPECT_FALSE(subject.starts_with("user::")) << "the unbound rest is not a user subject";
    }
    EXPECT_EQ(sent, Counts(3, 210, 180, 158, 104));
    EXPECT_EQ(received, Counts(1, 100, 86, 66, 50));

    const LedgerUsage usage(col, nullptr, true);
    const Subject s{SubjectKind::User, "alice"};
    EXPECT_EQ(usage.total(s, UsageDirection::Both), Counts(4, 310, 266, 224, 154));
    EXPECT_EQ(usage.total(s, UsageDirection::Sent), Counts(3, 210, 180, 158, 104));
    EXPECT_EQ(usage.total(Subject{SubjectKind::User, "carol"}, UsageDirection::Both), Counts{});
    EXPECT_EQ(usage.check(s, UsageLayer::L3), "");
    EXPECT_NE(
        LedgerUsage(col, nullptr, false).check(s, UsageLayer::L3).find("subscribers are not configured"),
        std::string::npos);
}

} // namespace
} // namespace nettally
