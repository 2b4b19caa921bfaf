// NAT on the gateway in nettallyd (README "NAT"): the conntrack subscription (os/conntrack.h) on
// the loop, the table of translated connections (core/nat.h) it keeps, read at every poll so that
// flows and their connections are matched before the flows are exported, and the WAN credit of
// LAN hosts. Without conntrack (no nf_conntrack in the kernel, no permission) everything goes on
// without NAT fields and WAN credit, logged once.
#pragma once

#include "core/collector.h"
#include "core/nat.h"
#include "core/status.h"
#include "os/conntrack.h"
#include "os/event.h"

#include <systemd/sd-event.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace nettally {

class NatWatch {
public:
    // keep: how long an ended connection stays known (its flows end later, after their idle
    // timeout). Subscribes and dumps the table now, so the first poll has it.
    // state_dir/nat_wan.json: the WAN credit of live flows (WanCredit), read back in the same boot.
    NatWatch(std::chrono::nanoseconds keep, const std::filesystem::path& state_dir);
    ~NatWatch();
    NatWatch(const NatWatch&) = delete;
    NatWatch& operator=(const NatWatch&) = delete;

    void set_keep(std::chrono::nanoseconds keep) { keep_ns_ = static_cast<uint64_t>(keep.count()); }
    void start(sd_event* ev);
    // Before the collector's poll: the events queued so far, ended connections expired.
    void sync();
    const NatTable& table() const { return table_; }
    // A flow the collector finished; after its poll, credit() adds the WAN deltas to its hosts.
    void on_flow_finished(const FlowEntry& f, const Collector& c);
    void credit(Collector& c);
    void add_status(Status& m) const;
    void save() const;

private:
    void resync();
    static int on_io(sd_event_source*, int, uint32_t, void* self);

    uint64_t keep_ns_;
    std::filesystem::path path_;
    std::string boot_id_;
    std::unique_ptr<Conntrack> ct_;
    NatTable table_;
    WanCredit wan_;
    std::set<uint32_t> wan_ifs_;
    std::set<uint32_t> lan_hosts_;
    uint64_t events_ = 0;
    uint64_t resyncs_ = 0;
    uint64_t uncredited_packets_ = 0;
    EventSource io_;
};

} // namespace nettally
