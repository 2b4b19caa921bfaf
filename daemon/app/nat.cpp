// NAT on the gateway in nettallyd. See nat.h.
#include "app/nat.h"

#include "os/clock.h"
#include "os/error.h"
#include "os/file.h"
#include "os/system.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fstream>

namespace nettally {

namespace {

uint64_t now_ns() {
    return monotonic_us() * 1000;
}

CtEntry entry_of(const ConntrackEntry& e) {
    return {{e.proto, e.orig_src, e.orig_dst, e.orig_sport, e.orig_dport},
            {e.proto, e.reply_src, e.reply_dst, e.reply_sport, e.reply_dport}};
}

} // namespace

NatWatch::NatWatch(std::chrono::nanoseconds keep, const std::filesystem::path& state_dir)
    : keep_ns_(static_cast<uint64_t>(keep.count())), path_(state_dir / "nat_wan.json"),
      boot_id_(read_boot_id()) {
    std::ifstream in(path_);
    if (in) {
        try {
            const auto j = nlohmann::json::parse(in);
            if (j.at("boot_id").get<std::string>() == boot_id_)
                wan_.restore(j.at("flows"));
        } catch (const std::exception& e) {
            spdlog::warn("nat: ignoring {}: {}", path_.string(), e.what());
        }
    }
    try {
        ct_ = std::make_unique<Conntrack>([this](ConntrackEvent ev, const ConntrackEntry& e) {
            events_++;
            if (ev == ConntrackEvent::New)
                table_.update(entry_of(e));
            else
                table_.destroyed(entry_of(e), now_ns());
        });
        resync();
    } catch (const std::exception& e) {
        ct_.reset();
        spdlog::warn("nat: no connection tracking ({}): flows are exported without post-NAT fields and "
                     "hosts get no WAN figures",
                     e.what());
    }
}

NatWatch::~NatWatch() = default;

void NatWatch::resync() {
    std::vector<CtEntry> entries;
    for (const auto& e : Conntrack::dump())
        entries.push_back(entry_of(e));
    table_.replace(entries, now_ns());
}

void NatWatch::start(sd_event* ev) {
    if (!ct_)
        return;
    const int r = sd_event_add_io(ev, io_.put(), ct_->fd(), EPOLLIN, on_io, this);
    if (r < 0)
        throw SysError(-r, "adding conntrack events to the event loop");
}

int NatWatch::on_io(sd_event_source*, int, uint32_t, void* self) {
    static_cast<NatWatch*>(self)->sync();
    return 0;
}

void NatWatch::sync() {
    if (!ct_)
        return;
    if (!ct_->drain()) {
        // The kernel dropped events: the table is read again.
        resyncs_++;
        spdlog::info("nat: conntrack events were lost; reading the table again");
        try {
            resync();
        } catch (const std::exception& e) {
            spdlog::warn("nat: {}", e.what());
        }
    }
    table_.expire(now_ns(), keep_ns_);
}

void NatWatch::on_flow_finished(const FlowEntry& f, const Collector& c) {
    if (lan_hosts_.empty())
        lan_hosts_ = c.host_addresses();
    if (wan_ifs_.empty())
        wan_ifs_ = c.wan_ifindexes();
    wan_.finished(f, table_, wan_ifs_, lan_hosts_);
}

void NatWatch::credit(Collector& c) {
    lan_hosts_ = c.host_addresses();
    wan_ifs_ = c.wan_ifindexes();
    for (const auto& d : c.credit_wan(wan_.poll(c.flows(), table_, wan_ifs_, lan_hosts_)))
        uncredited_packets_ += d.counts.packets;
}

void NatWatch::save() const {
    const nlohmann::json j = {{"boot_id", boot_id_}, {"flows", wan_.to_json()}};
    try {
        write_file_atomic(path_, j.dump() + "\n", 0644);
    } catch (const std::exception& e) {
        spdlog::error("nat: saving {}: {}", path_.string(), e.what());
    }
}

void NatWatch::add_status(Status& m) const {
    m["nat_conntrack"] = ct_ != nullptr;
    m["nat_connections"] = static_cast<uint64_t>(table_.size());
    m["nat_events"] = events_;
    m["nat_resyncs"] = resyncs_;
    m["wan_uncredited_packets"] = uncredited_packets_;
}

} // namespace nettally
