// Flow export over IPFIX (README "Flow export (IPFIX)"): the export.* config, collector URLs, and
// the tracker that turns the collector's flows into IPFIX data records: finished flows with what
// is left to report, and interim records (delta counts) of long flows every export.active_timeout.
// Pure: the sockets are in io/export.h.
#pragma once

#include "core/collector.h"
#include "core/ipfix.h"
#include "core/nat.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// Key export.* of the config.
struct ExportConfig {
    std::vector<std::string> collectors; // export.collectors[].url; empty = export off
    uint32_t observation_domain = 0;
    std::chrono::milliseconds active_timeout{std::chrono::minutes{1}};
    std::chrono::milliseconds template_refresh{std::chrono::minutes{1}};
    uint32_t template_messages = 1000; // templates also before every N-th message over UDP (0: never)
    uint32_t max_message_size = 1400;
    uint32_t buffer_max = 100000; // records held per TCP collector while it is unreachable
    uint32_t enterprise = ipfix::kDefaultPen;
    bool operator==(const ExportConfig&) const = default;
};

namespace export_limits {
inline constexpr std::chrono::milliseconds min_active_timeout{std::chrono::seconds{1}};
inline constexpr std::chrono::milliseconds max_active_timeout{std::chrono::hours{24}};
inline constexpr std::chrono::milliseconds min_template_refresh{std::chrono::seconds{1}};
inline constexpr std::chrono::milliseconds max_template_refresh{std::chrono::hours{1}};
inline constexpr uint32_t max_collectors = 16;
} // namespace export_limits

enum class ExportTransport { Udp, Tcp };

// udp://ADDRESS:PORT or tcp://ADDRESS:PORT; ADDRESS an IPv4 address or [IPv6]. No host names:
// resolving one would block the event loop (or need a resolver thread) at every reconnect.
struct CollectorUrl {
    ExportTransport transport = ExportTransport::Udp;
    uint8_t family = 0; // NT_AF_INET / NT_AF_INET6
    std::array<uint8_t, 16> addr{};
    uint16_t port = 0;
    std::string text; // normalized URL
};
std::optional<CollectorUrl> parse_collector_url(std::string_view url, std::string* why);

// flowEndReason of a flow the collector finished at `now_ns` (kernel_stamp_ns): idle, the flow's own
// active timeout (flows.active_timeout), or forced (interface gone or released).
ipfix::EndReason end_reason(const FlowEntry& f, uint64_t now_ns, const FlowTimeouts& t);

// A data record of `delta` for the flow, with start and end in ms since the epoch; with the
// post-NAT fields when `nat` knows the flow's connection as translated.
ipfix::FlowRecord make_record(const FlowEntry& f, const Counts& delta, uint64_t start_ms, uint64_t end_ms,
                              ipfix::EndReason reason, const NatTable* nat = nullptr);

class ExportTracker {
public:
    using ToUnixUs = std::function<uint64_t(uint64_t stamp_ns)>;

    // The finished flow's record: what it holds beyond the interim records already made (nullopt
    // when that is nothing).
    std::optional<ipfix::FlowRecord> finished(const FlowEntry& f, ipfix::EndReason reason,
                                              const ToUnixUs& to_unix);
    // Interim records (reason active timeout) of live flows whose last report, or start, is at least
    // `active` ago at `now_ns` (kernel_stamp_ns).
    std::vector<ipfix::FlowRecord> interim(const std::vector<FlowEntry>& live, uint64_t now_ns,
                                           std::chrono::nanoseconds active, const ToUnixUs& to_unix);
    size_t tracked() const { return reported_.size(); }
    // The connections the records' post-NAT fields come from (null: none).
    void set_nat(const NatTable* nat) { nat_ = nat; }
    // The user of a flow's lan host at the record's end (ms since the epoch), for userName; unset:
    // records carry no user.
    using UserOf = std::function<std::string(const FlowEntry& f, uint64_t end_ms)>;
    void set_user_of(UserOf f) { user_of_ = std::move(f); }
    // A flow's traffic class (Collector::flow_class), for rulesVersion and trafficClassId; unset:
    // records carry none (version 0, ipfix::kNoClass).
    using ClassOf = std::function<Collector::FlowClass(const FlowEntry& f)>;
    void set_class_of(ClassOf f) { class_of_ = std::move(f); }
    // What has been reported of live flows, for a restart in the same boot (the flows stay in the
    // kernel while nettallyd is down): without it, their next records would repeat the interim
    // records sent before. restore() throws std::exception on bad input and then keeps nothing.
    nlohmann::json to_json() const;
    void restore(const nlohmann::json& j);

private:
    struct Reported {
        Counts counts;         // reported so far
        uint64_t end_ns = 0;   // the last record's end (kernel stamp)
        uint64_t since_ns = 0; // when the last interim record was made (kernel stamp)
    };
    struct KeyLess {
        bool operator()(const nt_flow_key& a, const nt_flow_key& b) const;
    };
    ipfix::FlowRecord record(const FlowEntry& f, const Counts& delta, uint64_t start_ms, uint64_t end_ms,
                             ipfix::EndReason reason) const;

    std::map<nt_flow_key, Reported, KeyLess> reported_;
    const NatTable* nat_ = nullptr;
    UserOf user_of_;
    ClassOf class_of_;
};

} // namespace nettally
