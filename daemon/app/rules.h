// Traffic classes in nettallyd: the ruleset in force and the one before it. A bundle (compiled by
// `nettallyctl rules compile`, core/classes_bundle.h) arrives from the config (rules.bundle, at
// start and at each reload when newer), over D-Bus (LoadRules) or from the pull (rules.url, every
// rules.refresh: io/rules_fetch.h, started by watch()). load() checks it whole (size, the Ed25519 signature
// against rules.trusted_keys when keys are set: core/classes_sign.h, read_bundle, a version newer than the
// active one's), switches the kernel over
// in one step (kernel/classes.h) and keeps it and the previous one in the state directory
// (rules.active.bundle, rules.previous.bundle, rules.json for what they came with), so a restart
// comes back to them. A refused bundle changes nothing; the reason is one line, in the log, in the
// D-Bus error and in the RulesRejected signal. rollback() returns to the previous bundle, whatever
// its version. The collector is told which classes are in force (the others are marked gone).
#pragma once

#include "core/classes_bundle.h"
#include "core/collector.h"
#include "core/config.h"
#include "core/status.h"
#include "io/rules_fetch.h"
#include "io/state.h"
#include "kernel/classes.h"

#include <systemd/sd-event.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nettally {

class Datapath;

// A bundle refused, or a rollback with nothing to return to; what() is one line.
class RulesRefused : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Rules {
public:
    using Interfaces = std::vector<std::pair<uint32_t, std::string>>; // ifindex, name
    struct Applied {
        uint64_t version = 0;
        std::string hash; // 16 hex digits
    };
    // What GetRulesStatus reports.
    struct State {
        bool active = false;
        uint64_t version = 0;
        std::string hash;
        std::string name;
        uint64_t loaded_at_us = 0;
        std::string origin; // "config FILE", "dbus", "pull URL", "rollback", "saved"
        uint32_t classes = 0;
        uint64_t previous_version = 0; // 0: no previous bundle
        std::string previous_hash;
        uint64_t rejected = 0;
        std::string last_rejection;
        uint64_t last_rejection_at_us = 0;
    };

    Rules(Datapath& dp, Collector& collector, const RulesConfig& cfg, std::filesystem::path state_dir);
    ~Rules();
    Rules(const Rules&) = delete;
    Rules& operator=(const Rules&) = delete;

    // At start, before the programs go on the interfaces: the saved active bundle, or rules.bundle
    // when it is newer (or nothing is saved). Problems are logged; counting goes on without classes.
    void start(const Interfaces& ifaces);
    // Throws RulesRefused (nothing changed), SysError (the bundle could not be saved: the running
    // ruleset is back in the kernel).
    Applied load(std::span<const uint8_t> bytes, const std::string& origin);
    Applied rollback();
    // Interfaces came or went: the rules' interface globs are resolved again.
    void interfaces_changed(const Interfaces& ifaces);
    // New limits, keys and pull settings (reload); a changed rules.url, refresh or ca_file
    // restarts the pull; rules.bundle is read again and loaded when it is newer (reread_bundle).
    void set_config(const RulesConfig& cfg);
    // Starts the pull of rules.url on the loop (nothing when no url is set). Throws SysError.
    void watch(sd_event* ev);

    // Signals: a bundle went into force (load, rollback), a bundle was refused.
    void on_applied(std::function<void(const Applied&)> f) { on_applied_ = std::move(f); }
    void on_rejected(std::function<void(const std::string&)> f) { on_rejected_ = std::move(f); }

    State state() const;
    const Bundle* active() const { return active_ ? &active_->bundle : nullptr; }
    void add_status(Status& m) const;

private:
    struct Entry {
        Bundle bundle;
        std::vector<uint8_t> bytes;
        std::string origin;
        uint64_t loaded_at_us = 0;
    };
    // The signature check of a bundle file (core/classes_sign.h): "" when it may be loaded, else
    // the one-line reason; *bundle_out: the bundle inside the file. With rules.trusted_keys set an
    // unsigned bundle, or one by another key, is refused; a key file that cannot be read refuses
    // every bundle (fail closed) and says which file.
    std::string check_signature(std::span<const uint8_t> bytes, std::span<const uint8_t>* bundle_out) const;
    // A bundle the pull brought: loaded unless it is the ruleset in force already (a restart
    // without the ETag fetches it again); refusals are logged and signalled as for LoadRules.
    void pulled(std::vector<uint8_t> bytes);
    void start_pull();
    // Every check of load() but the version order; throws RulesRefused.
    Entry validate(std::span<const uint8_t> bytes, const std::string& origin) const;
    // Puts `next` into the kernel and makes it the active one (`prev` becomes the previous one),
    // saved to disk; on a save failure the kernel goes back to what ran. Throws SysError,
    // BundleError.
    Applied install(Entry next, std::optional<Entry> prev);
    [[noreturn]] void refuse(const std::string& reason);
    // A bundle not applied: counted, logged, kept in rules.json and signalled (RulesRejected).
    void note_rejection(const std::string& reason);
    // Reload: rules.bundle is read again and loaded when it holds a newer version than the one
    // in force (an equal or older one is left alone, not counted as refused).
    void reread_bundle();
    void save_files() const;
    void save_meta();
    void restore_saved(std::optional<Entry>& active, std::optional<Entry>& previous);
    void tell_collector();

    Collector& collector_;
    RulesConfig cfg_;
    std::filesystem::path dir_;
    KernelClasses kernel_;
    Interfaces ifaces_;
    std::optional<Entry> active_;
    std::optional<Entry> previous_;
    StateFile meta_;
    uint64_t rejected_ = 0;
    std::string last_rejection_;
    uint64_t last_rejection_at_us_ = 0;
    std::function<void(const Applied&)> on_applied_;
    std::function<void(const std::string&)> on_rejected_;
    sd_event* ev_ = nullptr;
    std::unique_ptr<RulesFetcher> fetcher_;
};

} // namespace nettally
