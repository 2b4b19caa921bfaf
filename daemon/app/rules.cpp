// Traffic classes in nettallyd: see rules.h.
#include "app/rules.h"

#include "core/classes_sign.h"
#include "core/rules_check.h"
#include "kernel/datapath.h"
#include "os/clock.h"
#include "os/error.h"
#include "os/file.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <iterator>

namespace nettally {
namespace {

constexpr const char* kActiveFile = "rules.active.bundle";
constexpr const char* kPreviousFile = "rules.previous.bundle";

// The whole file, or nullopt when it does not exist. Throws SysError on a read error.
std::optional<std::vector<uint8_t>> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT)
            return std::nullopt;
        throw SysError(errno, "reading " + path.string());
    }
    std::vector<uint8_t> out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad())
        throw SysError(EIO, "reading " + path.string());
    return out;
}

nlohmann::json entry_json(const std::string& origin, uint64_t loaded_at_us, const Bundle& b) {
    return {{"origin", origin},
            {"loaded_at_us", loaded_at_us},
            {"version", b.version},
            {"hash", hash_text(b.hash)}};
}

} // namespace

Rules::Rules(Datapath& dp, Collector& collector, const RulesConfig& cfg, std::filesystem::path state_dir)
    : collector_(collector), cfg_(cfg), dir_(std::move(state_dir)), kernel_(dp.class_maps()),
      meta_(dir_, "rules.json") {}

Rules::~Rules() = default;

std::string Rules::check_signature(std::span<const uint8_t> bytes,
                                   std::span<const uint8_t>* bundle_out) const {
    std::vector<PublicKey> keys;
    for (const auto& path : cfg_.trusted_keys) {
        try {
            keys.push_back(read_public_key(path));
        } catch (const KeyError& e) {
            return std::string("rules.trusted_keys: ") + e.what();
        }
    }
    return verify_bundle_signature(bytes, keys, bundle_out);
}

void Rules::set_config(const RulesConfig& cfg) {
    const bool pull_changed = cfg.url != cfg_.url || cfg.refresh != cfg_.refresh ||
                              cfg.ca_file != cfg_.ca_file || cfg.max_size != cfg_.max_size;
    cfg_ = cfg;
    if (pull_changed && ev_)
        start_pull();
    reread_bundle();
}

void Rules::reread_bundle() {
    if (cfg_.bundle.empty())
        return;
    const std::string origin = "config " + cfg_.bundle.string();
    std::optional<std::vector<uint8_t>> bytes;
    try {
        bytes = read_bytes(cfg_.bundle);
        if (!bytes)
            throw SysError(ENOENT, "reading " + cfg_.bundle.string());
    } catch (const SysError& e) {
        spdlog::error("rules: rules.bundle not read ({}): the ruleset in force is kept", e.what());
        return;
    }
    try {
        // The file as it was at start (or older): nothing to do, and no refusal to count.
        const Entry e = validate(*bytes, origin);
        if (active_ && e.bundle.version <= active_->bundle.version) {
            spdlog::info("rules: rules.bundle {} holds version {}, not newer than {} in force: kept",
                         cfg_.bundle.string(), e.bundle.version, active_->bundle.version);
            return;
        }
    } catch (const RulesRefused&) {
        // load() refuses it below, logged, counted and signalled like any other bundle
    }
    try {
        load(*bytes, origin);
    } catch (const RulesRefused&) {
        // see refuse()
    } catch (const std::exception& e) {
        spdlog::error("rules: rules.bundle {} not loaded: {}", cfg_.bundle.string(), e.what());
    }
}

void Rules::watch(sd_event* ev) {
    ev_ = ev;
    start_pull();
}

void Rules::start_pull() {
    fetcher_.reset();
    if (cfg_.url.empty())
        return;
    RulesFetchOptions o;
    o.url = cfg_.url;
    o.refresh = cfg_.refresh;
    o.ca_file = cfg_.ca_file.string();
    o.max_size = cfg_.max_size;
    try {
        fetcher_ = std::make_unique<RulesFetcher>(
            ev_, o, [this](std::vector<uint8_t> bytes, const std::string&) { pulled(std::move(bytes)); },
            [](const RulesFetchStatus& s) {
                if (!s.last_error.empty() && s.consecutive_failures <= 1)
                    spdlog::warn(
                        "rules: pull from {} failed: {} (retrying with backoff; the rules in force stay)",
                        s.url, s.last_error);
            });
        spdlog::info("rules: pulling {} every {} ms", cfg_.url, cfg_.refresh.count());
    } catch (const std::invalid_argument& e) {
        spdlog::error("rules: rules.url: {}", e.what());
    }
}

void Rules::pulled(std::vector<uint8_t> bytes) {
    std::span<const uint8_t> inner;
    if (active_ && check_signature(bytes, &inner).empty() && inner.size() == active_->bytes.size() &&
        std::equal(inner.begin(), inner.end(), active_->bytes.begin())) {
        spdlog::debug("rules: the pulled bundle is the ruleset in force");
        return;
    }
    try {
        load(bytes, "pull " + cfg_.url);
    } catch (const RulesRefused&) {
        // logged, counted and signalled by refuse()
    }
}

Rules::Entry Rules::validate(std::span<const uint8_t> bytes, const std::string& origin) const {
    if (std::string why = size_refusal(bytes.size(), cfg_.max_size); !why.empty())
        throw RulesRefused(why);
    std::span<const uint8_t> inner;
    if (std::string why = check_signature(bytes, &inner); !why.empty())
        throw RulesRefused(why);
    Entry e;
    try {
        e.bundle = read_bundle(inner);
    } catch (const BundleError& err) {
        throw RulesRefused(err.what());
    }
    e.bytes.assign(inner.begin(), inner.end());
    e.origin = origin;
    e.loaded_at_us = realtime_us();
    return e;
}

void Rules::refuse(const std::string& reason) {
    note_rejection(reason);
    throw RulesRefused(reason);
}

void Rules::note_rejection(const std::string& reason) {
    rejected_++;
    last_rejection_ = reason;
    last_rejection_at_us_ = realtime_us();
    spdlog::warn("rules: bundle refused: {}", reason);
    try {
        save_meta();
    } catch (const SysError& e) {
        spdlog::error("rules: {}", e.what());
    }
    if (on_rejected_)
        on_rejected_(reason);
}

Rules::Applied Rules::load(std::span<const uint8_t> bytes, const std::string& origin) {
    if (!cfg_.section)
        refuse("the config has no rules section, so nettallyd loaded its programs without the classifier: "
               "add one (rules: {} will do) and restart nettallyd to load rulesets");
    Entry next;
    try {
        next = validate(bytes, origin);
    } catch (const RulesRefused& e) {
        refuse(e.what());
    }
    if (std::string why = version_refusal(active(), next.bundle); !why.empty())
        refuse(why);
    try {
        return install(std::move(next), active_);
    } catch (const BundleError& e) {
        refuse(e.what());
    } catch (const SysError& e) {
        // Not the bundle's fault (a map update, the state directory): not applied all the same,
        // so counted and signalled, but it stays a failure of this machine (D-Bus Error.Failed).
        note_rejection(e.what());
        throw;
    }
}

Rules::Applied Rules::rollback() {
    if (!previous_) // no bundle was refused: not counted, no RulesRejected
        throw RulesRefused("no previous ruleset to roll back to");
    Entry back = *previous_;
    back.origin = "rollback";
    back.loaded_at_us = realtime_us();
    try {
        return install(std::move(back), active_);
    } catch (const BundleError& e) {
        refuse(e.what());
    } catch (const SysError& e) {
        note_rejection(e.what());
        throw;
    }
}

Rules::Applied Rules::install(Entry next, std::optional<Entry> prev) {
    const bool fresh = !active_ && kernel_.generation() == 0;
    kernel_.load(next.bundle, ifaces_); // the running ruleset stays when this throws
    std::optional<Entry> old_active = std::exchange(active_, std::move(next));
    std::optional<Entry> old_previous = std::exchange(previous_, std::move(prev));
    try {
        save_files();
        save_meta();
    } catch (const SysError&) {
        active_ = std::move(old_active);
        previous_ = std::move(old_previous);
        if (active_)
            kernel_.load(active_->bundle, ifaces_);
        else
            kernel_.clear();
        tell_collector();
        throw;
    }
    if (fresh)
        collector_.classes_started();
    tell_collector();
    const Applied a{active_->bundle.version, hash_text(active_->bundle.hash)};
    spdlog::info("rules: {} version {} ({}, {} classes) in force, from {}", active_->bundle.name, a.version,
                 a.hash, active_->bundle.classes.size(), active_->origin);
    if (on_applied_)
        on_applied_(a);
    return a;
}

void Rules::tell_collector() {
    std::map<uint32_t, std::string> names{{kClassOther, std::string(kClassOtherName)}};
    if (active_)
        for (const auto& c : active_->bundle.classes)
            names[c.id] = c.name;
    if (active_)
        collector_.set_classes(names, active_->bundle.version, kernel_.serial());
    else
        collector_.set_classes({});
}

void Rules::save_files() const {
    const auto put = [this](const char* name, const std::optional<Entry>& e) {
        const auto path = dir_ / name;
        if (e) {
            write_file_atomic(
                path, std::string_view(reinterpret_cast<const char*>(e->bytes.data()), e->bytes.size()),
                0640);
        } else {
            std::error_code ec;
            if (std::filesystem::remove(path, ec))
                sync_path(dir_);
            else if (ec)
                throw SysError(ec.value(), "removing " + path.string());
        }
    };
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec); // the state directory, on a first start
    if (ec)
        throw SysError(ec.value(), "creating " + dir_.string());
    // The previous one first: a crash in between leaves the old active one in both places.
    put(kPreviousFile, previous_);
    put(kActiveFile, active_);
}

void Rules::save_meta() {
    nlohmann::json j = {{"rejected", rejected_},
                        {"last_rejection", last_rejection_},
                        {"last_rejection_at_us", last_rejection_at_us_}};
    if (active_)
        j["active"] = entry_json(active_->origin, active_->loaded_at_us, active_->bundle);
    if (previous_)
        j["previous"] = entry_json(previous_->origin, previous_->loaded_at_us, previous_->bundle);
    meta_.write(j.dump());
}

void Rules::restore_saved(std::optional<Entry>& active, std::optional<Entry>& previous) {
    nlohmann::json meta = nlohmann::json::object();
    std::vector<std::string> problems;
    if (auto loaded = meta_.read(&problems)) {
        try {
            meta = nlohmann::json::parse(loaded->content);
            rejected_ = meta.value("rejected", uint64_t{0});
            last_rejection_ = meta.value("last_rejection", std::string());
            last_rejection_at_us_ = meta.value("last_rejection_at_us", uint64_t{0});
        } catch (const std::exception& e) {
            problems.push_back(loaded->from + ": " + e.what());
            meta = nlohmann::json::object();
        }
    }
    for (const auto& p : problems)
        spdlog::error("rules: {}", p);
    const auto one = [&](const char* file, const char* key, std::optional<Entry>& out) {
        try {
            auto bytes = read_bytes(dir_ / file);
            if (!bytes)
                return;
            Entry e;
            e.bundle = read_bundle(*bytes);
            e.bytes = std::move(*bytes);
            e.origin = "saved";
            if (meta.contains(key) && meta[key].value("hash", std::string()) == hash_text(e.bundle.hash)) {
                e.origin = meta[key].value("origin", e.origin);
                e.loaded_at_us = meta[key].value("loaded_at_us", uint64_t{0});
            }
            out = std::move(e);
        } catch (const std::exception& e) {
            spdlog::error("rules: saved bundle {} unusable: {}", (dir_ / file).string(), e.what());
        }
    };
    one(kActiveFile, "active", active);
    one(kPreviousFile, "previous", previous);
}

void Rules::start(const Interfaces& ifaces) {
    ifaces_ = ifaces;
    std::optional<Entry> saved, saved_previous;
    restore_saved(saved, saved_previous);
    if (!cfg_.section && saved) {
        spdlog::warn(
            "rules: {} version {} was in force, but the config has no rules section now: the programs "
            "run without the classifier and no ruleset is put in force",
            saved->bundle.name, saved->bundle.version);
        saved.reset();
        saved_previous.reset();
    }
    std::optional<Entry> from_config;
    if (!cfg_.bundle.empty()) {
        try {
            auto bytes = read_bytes(cfg_.bundle);
            if (!bytes)
                throw SysError(ENOENT, "reading " + cfg_.bundle.string());
            from_config = validate(*bytes, "config " + cfg_.bundle.string());
        } catch (const std::exception& e) {
            spdlog::error("rules: rules.bundle {} not loaded: {}", cfg_.bundle.string(), e.what());
        }
    }
    // The saved one first: it was in force when nettallyd stopped, and its programs (still
    // attached) classified with it since, so classification has gone on without a break.
    if (saved) {
        try {
            kernel_.load(saved->bundle, ifaces_);
            active_ = std::move(saved);
            previous_ = std::move(saved_previous);
            tell_collector();
            spdlog::info("rules: {} version {} ({}) in force again (saved, from {})", active_->bundle.name,
                         active_->bundle.version, hash_text(active_->bundle.hash), active_->origin);
        } catch (const std::exception& e) {
            spdlog::error("rules: the saved bundle could not be loaded: {}", e.what());
        }
    }
    if (from_config && (!active_ || from_config->bundle.version > active_->bundle.version)) {
        try {
            install(std::move(*from_config), active_);
        } catch (const std::exception& e) {
            spdlog::error("rules: rules.bundle {} not loaded: {}", cfg_.bundle.string(), e.what());
        }
    }
    if (!active_) {
        collector_.classes_started(); // no classification: what the next ruleset starts from is new
        tell_collector();
    }
}

void Rules::interfaces_changed(const Interfaces& ifaces) {
    ifaces_ = ifaces;
    if (!active_)
        return;
    try {
        kernel_.load(active_->bundle, ifaces_);
        tell_collector(); // the load's new serial
    } catch (const std::exception& e) {
        spdlog::error("rules: resolving the interface globs again failed (the last tables stay): {}",
                      e.what());
    }
}

Rules::State Rules::state() const {
    State s;
    s.active = active_.has_value();
    if (active_) {
        s.version = active_->bundle.version;
        s.hash = hash_text(active_->bundle.hash);
        s.name = active_->bundle.name;
        s.loaded_at_us = active_->loaded_at_us;
        s.origin = active_->origin;
        s.classes = static_cast<uint32_t>(active_->bundle.classes.size());
    }
    if (previous_) {
        s.previous_version = previous_->bundle.version;
        s.previous_hash = hash_text(previous_->bundle.hash);
    }
    s.rejected = rejected_;
    s.last_rejection = last_rejection_;
    s.last_rejection_at_us = last_rejection_at_us_;
    return s;
}

void Rules::add_status(Status& m) const {
    const State s = state();
    m["rules_active"] = s.active;
    m["rules_version"] = s.version;
    m["rules_hash"] = s.hash;
    m["rules_rejected"] = s.rejected;
    const auto& st = collector_.stats();
    m["class_reconcile_checks"] = st.class_reconcile_checks;
    m["class_reconcile_exact"] = st.class_reconcile_exact;
    m["class_reconcile_violations"] = st.class_reconcile_violations;
    m["class_snapshot_misses"] = st.class_snapshot_misses;
    m["class_overflow_packets"] = collector_.class_overflow().total().packets;
    m["host_class_reconcile_checks"] = st.host_class_reconcile_checks;
    m["host_class_reconcile_exact"] = st.host_class_reconcile_exact;
    m["host_class_reconcile_violations"] = st.host_class_reconcile_violations;
    m["host_class_last_violation"] = st.last_host_class_violation;
    m["host_class_snapshot_misses"] = st.host_class_snapshot_misses;
    m["host_class_overflow_packets"] = collector_.host_class_overflow_sent().total().packets +
                                       collector_.host_class_overflow_received().total().packets;
    if (fetcher_) {
        const RulesFetchStatus f = fetcher_->status();
        m["rules_pull_fetches"] = f.fetches;
        m["rules_pull_not_modified"] = f.not_modified;
        m["rules_pull_failures"] = f.failures;
        m["rules_pull_last_error"] = f.last_error;
    }
}

} // namespace nettally
