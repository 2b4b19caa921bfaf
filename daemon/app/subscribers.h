// Subscribers in nettallyd: the binding table (core/subscribers.h) fed by the identity sources
// (static config entries, DHCP lease files, RADIUS accounting), kept in step with the kernel's
// binding trie and user names, and carried in the state file. A change opens or closes bindings,
// updates the kernel at once (so the next packet counts for the new user) and is handed to the
// listeners (log, D-Bus signal). RADIUS changes are also appended to a journal beside the state
// file as they happen, so a kill -9 between two state saves loses none of them.
#pragma once

#include "app/radius.h"
#include "core/config.h"
#include "core/radius.h"
#include "core/status.h"
#include "core/subscribers.h"
#include "kernel/datapath.h"
#include "os/event.h"
#include "os/fd.h"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace nettally {

class Subscribers {
public:
    using Listener = std::function<void(const BindingChange&)>;

    // Reads the user ids the pinned maps count under (a restart continues them).
    explicit Subscribers(Datapath& dp);

    // The state file's part (before configure): the bindings, open and closed, and the RADIUS
    // sessions.
    nlohmann::json to_json() const;
    void restore(const nlohmann::json& j); // throws std::exception on bad input
    // The RADIUS journal (a file in the state directory): opened, and the requests it holds that
    // the restored state has not seen applied again. After restore, before configure.
    void open_journal(const std::filesystem::path& path);
    // The state file now holds everything the journal does: it starts afresh.
    void state_saved();

    // Applies subscribers.* (start and reload): the static bindings, keep_closed, and per-user
    // counting on or off. Throws SysError when the kernel cannot be updated.
    void configure(const SubscribersConfig& cfg, uint64_t now_us);
    // Watches the lease files (subscribers.dhcp) with inotify on `ev`: a change is read at the
    // next poll. Again after a reload that changes them. Without inotify: every poll reads them.
    // Opens the RADIUS listener (subscribers.radius) on `ev`; throws when it cannot (a start-up
    // error; after a reload the error is logged and the old listener kept where possible).
    void watch(sd_event* ev);
    // One accepted RADIUS accounting request (RadiusListener's handler).
    radius::Outcome radius(const radius::AccountingRequest& r, const std::string& nas);
    void add_status(Status& m) const; // subscriber_* and radius_* keys
    // Applies lease file changes and lease expiry (DHCP source), then forgets closed bindings
    // older than keep_closed.
    void poll(uint64_t now_us);
    // Lines of the lease files that could not be read (since start), and leases with no usable user.
    uint64_t lease_problems() const { return lease_problems_; }
    uint64_t leases_unnamed() const { return leases_unnamed_; }

    void on_change(Listener l) { listeners_.push_back(std::move(l)); }

    const BindingTable& table() const { return table_; }
    const UserIds& ids() const { return ids_; }
    // The id the kernel counts `user` under, allocated when new (a threshold's action on a user
    // not bound yet is in force from the user's first binding on).
    uint32_t user_id(const std::string& user) { return ids_.id_of(user); }
    // The user a MAC is configured for (subscribers.static {user, mac}), "" when none.
    std::string user_of_mac(const std::string& mac) const;
    // The user bound to an address now ("" when none): what the kernel counts it under.
    std::string user_of(uint8_t family, const uint32_t addr[4]) const;
    bool enabled() const { return cfg_.configured; }

private:
    void apply(const std::vector<BindingChange>& changes);          // kernel first, then listeners
    void apply_prefixes(const std::vector<BindingChange>& changes); // the changed prefixes only
    void sync_kernel();
    void open_radius(bool strict);
    void watch_leases();
    void journal(const radius::AccountingRequest& r, const std::string& nas, uint64_t now_us);
    void replay(const nlohmann::json& line);
    void read_lease_file(const LeaseSource& src);
    static int on_inotify(sd_event_source*, int fd, uint32_t, void* self);

    Datapath& dp_;
    SubscribersConfig cfg_;
    BindingTable table_;
    UserIds ids_;
    std::map<Prefix, std::string> effective_;
    std::vector<Listener> listeners_;

    // DHCP lease files: the last good reading of each, and which changed since.
    std::map<std::filesystem::path, std::vector<Lease>> leases_;
    std::set<std::filesystem::path> dirty_;
    bool watching_ = false; // inotify works: read a file only when it changed
    sd_event* ev_ = nullptr;
    Fd inotify_;
    EventSource inotify_src_;
    std::map<int, std::filesystem::path> watched_dirs_; // watch descriptor -> directory
    uint64_t lease_problems_ = 0;
    uint64_t leases_unnamed_ = 0;

    // RADIUS accounting.
    radius::RadiusSessions radius_;
    RadiusStats radius_stats_;
    std::unique_ptr<RadiusListener> radius_listener_;
    Fd journal_;
    uint64_t journal_seq_ = 0; // the last request journaled (or restored)
};

} // namespace nettally
