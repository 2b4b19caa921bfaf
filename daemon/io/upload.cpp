// See upload.h. This file: configuration and target, the spool (scan, cap, schedule) and what
// happens when a transfer ends; the transfers themselves (libcurl on sd-event) are in
// upload_transfer.cpp.
#include "io/upload.h"

#include "io/upload_transfer.h"

#include "os/error.h"
#include "os/file.h"

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace nettally {
namespace fs = std::filesystem;

namespace {

// After a removal in the spool: a failed directory fsync is reported, and the
// transfer goes on (the removal itself has happened).
void sync_dir(const fs::path& dir) {
    try {
        sync_path(dir);
    } catch (const SysError& e) {
        spdlog::error("upload: {}", e.what());
    }
}

} // namespace

std::string resolve_upload_password(const UploadConfig& cfg) {
    if (!cfg.password_file.empty())
        return read_secret(cfg.password_file, "upload.password_file");
    if (!cfg.password_credential.empty()) {
        return read_secret(credential_path(cfg.password_credential, "upload.password_credential"),
                           "upload.password_credential");
    }
    return cfg.password;
}

Uploader::Uploader(sd_event* ev, fs::path spool_dir, fs::path state_dir, const UploadConfig& cfg,
                   UploadEvents events)
    : ev_(ev), spool_dir_(std::move(spool_dir)), override_path_(state_dir / "upload.json"),
      events_(std::move(events)), rng_(std::random_device{}()) {
    check_config(cfg);
    cfg_ = cfg;
    cfg_password_ = resolve_upload_password(cfg);
    std::error_code ec;
    fs::create_directories(spool_dir_, ec);
    if (ec)
        throw SysError(ec.value(), "creating spool directory " + spool_dir_.string());
    // The multi handle (and libcurl) come with the first transfer: open_multi().
    int r = sd_event_add_time(ev_, curl_timer_.put(), CLOCK_MONOTONIC, UINT64_MAX, 0, on_curl_timeout, this);
    if (r >= 0)
        r = sd_event_source_set_enabled(curl_timer_.get(), SD_EVENT_OFF);
    if (r >= 0)
        r = sd_event_add_time(ev_, kick_timer_.put(), CLOCK_MONOTONIC, UINT64_MAX, 0, on_kick, this);
    if (r >= 0)
        r = sd_event_source_set_enabled(kick_timer_.get(), SD_EVENT_OFF);
    if (r >= 0)
        r = sd_event_add_inotify(ev_, inotify_.put(), spool_dir_.c_str(),
                                 IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR,
                                 on_inotify, this);
    if (r < 0)
        throw SysError(-r, "adding the uploader to the event loop");
    load_override();
    rebuild_target();
    rescan();
    schedule(0);
}

Uploader::~Uploader() {
    if (transfer_ && transfer_->easy)
        curl_multi_remove_handle(multi_, transfer_->easy);
    transfer_.reset();
    io_.clear();
    if (multi_)
        curl_multi_cleanup(multi_);
    // The timers and the inotify watch go with their members.
}

void Uploader::check_config(const UploadConfig& cfg) {
    if (!cfg.url.empty()) {
        std::string why;
        if (!parse_upload_url(cfg.url, &why))
            throw std::runtime_error("upload.url: " + why);
    }
    (void)resolve_upload_password(cfg);
}

void Uploader::apply_config(const UploadConfig& cfg) {
    std::string pw = resolve_upload_password(cfg);
    const bool target_changed =
        upload_config_fingerprint(cfg) != upload_config_fingerprint(cfg_) || pw != cfg_password_;
    cfg_ = cfg;
    cfg_password_ = std::move(pw);
    if (override_ && override_->fingerprint != upload_config_fingerprint(cfg_)) {
        spdlog::info("upload: the config's upload target changed; it replaces the target set over D-Bus");
        override_.reset();
        std::error_code ec;
        fs::remove(override_path_, ec);
    }
    rebuild_target();
    if (target_changed) {
        // New target or credentials: a pause for the old ones is over.
        auth_paused_ = false;
        failures_ = 0;
        next_attempt_mono_ = 0;
    }
    rescan();
    schedule(0);
}

void Uploader::load_override() {
    std::ifstream in(override_path_);
    if (!in)
        return;
    try {
        std::stringstream ss;
        ss << in.rdbuf();
        const auto j = nlohmann::json::parse(ss.str());
        Override o;
        o.url = j.at("url").get<std::string>();
        o.username = j.at("username").get<std::string>();
        o.password = j.at("password").get<std::string>();
        o.fingerprint = std::stoull(j.at("config_fingerprint").get<std::string>(), nullptr, 16);
        std::string why;
        if (!parse_upload_url(o.url, &why))
            throw std::runtime_error("url: " + why);
        if (o.fingerprint != upload_config_fingerprint(cfg_)) {
            spdlog::info("upload: the config's upload target changed since SetTarget; using the config's "
                         "(removing {})",
                         override_path_.string());
            std::error_code ec;
            fs::remove(override_path_, ec);
            return;
        }
        override_ = std::move(o);
        spdlog::info("upload: using the target set over D-Bus ({})", override_path_.string());
    } catch (const std::exception& e) {
        spdlog::error("upload: {} unusable ({}); using the config's target", override_path_.string(),
                      e.what());
    }
}

void Uploader::save_override() {
    if (!override_) {
        std::error_code ec;
        fs::remove(override_path_, ec);
        if (ec)
            throw SysError(ec.value(), "removing " + override_path_.string());
        return;
    }
    char fp[17];
    std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(override_->fingerprint));
    const nlohmann::json j = {{"version", 1},
                              {"url", override_->url},
                              {"username", override_->username},
                              {"password", override_->password},
                              {"config_fingerprint", fp}};
    std::error_code ec;
    fs::create_directories(override_path_.parent_path(), ec);
    if (ec)
        throw SysError(ec.value(), "creating " + override_path_.parent_path().string());
    write_file_atomic(override_path_, j.dump(2) + "\n", 0600);
}

void Uploader::rebuild_target() {
    const std::string url = override_ ? override_->url : cfg_.url;
    username_ = override_ ? override_->username : cfg_.username;
    password_ = override_ ? override_->password : cfg_password_;
    source_ = override_ ? "dbus" : cfg_.url.empty() ? "none" : "config";
    target_.reset();
    if (!url.empty())
        target_ = parse_upload_url(url, nullptr);
}

void Uploader::set_target(const std::string& url, const std::string& username, const std::string& password) {
    for (const std::string* s : {&username, &password})
        for (const char c : *s)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                throw std::invalid_argument(s == &username ? "the user name contains a control character"
                                                           : "the password contains a control character");
    std::optional<Override> next;
    if (!url.empty()) {
        std::string why;
        const auto t = parse_upload_url(url, &why);
        if (!t)
            throw std::invalid_argument("url: " + why);
        if (t->scheme == UploadScheme::Sftp && cfg_.ssh_host_key_sha256.empty() &&
            cfg_.ssh_known_hosts.empty() && !cfg_.insecure)
            throw std::invalid_argument("sftp needs the server's host key: set upload.ssh_host_key_sha256 or "
                                        "upload.ssh_known_hosts in the config first");
        next = Override{t->url, username, password, upload_config_fingerprint(cfg_)};
    }
    auto prev = std::move(override_);
    override_ = std::move(next);
    try {
        save_override();
    } catch (...) {
        override_ = std::move(prev);
        throw;
    }
    rebuild_target();
    auth_paused_ = false;
    failures_ = 0;
    next_attempt_mono_ = 0;
    spdlog::info("upload: target set over D-Bus: {} (user '{}', password {})",
                 target_ ? target_->url : "none (back to the config's)", username_,
                 password_.empty() ? "none" : "set");
    rescan();
    schedule(0);
}

void Uploader::upload_now() {
    auth_paused_ = false;
    next_attempt_mono_ = 0;
    rescan();
    schedule(0);
}

void Uploader::file_closed() {
    rescan();
    schedule(0);
}

uint64_t Uploader::now_us(clockid_t clock) const {
    uint64_t t = 0;
    sd_event_now(ev_, clock, &t);
    return t;
}

void Uploader::rescan() {
    std::map<std::string, FileState> next;
    std::vector<SpoolFile> files;
    std::error_code ec;
    for (fs::directory_iterator it(spool_dir_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!spool_name_ok(name))
            continue;
        std::error_code ec2;
        if (!it->is_regular_file(ec2))
            continue;
        const uint64_t size = it->file_size(ec2);
        if (ec2)
            continue;
        auto old = files_.find(name);
        next[name] = old != files_.end() ? old->second : FileState{};
        files.push_back({name, size});
    }
    if (ec)
        spdlog::error("upload: cannot list the spool {}: {}", spool_dir_.string(), ec.message());
    files_ = std::move(next);
    sizes_.clear();
    for (const auto& f : files)
        sizes_[f.name] = f.size;
    if (target_)
        enforce_cap(files);
}

void Uploader::enforce_cap(std::vector<SpoolFile>& files) {
    const auto drop =
        spool_overflow(files, cfg_.spool_max_bytes, cfg_.spool_max_files, transfer_ ? transfer_->name : "");
    if (drop.empty())
        return;
    auto newer_than_sent = [&](const std::string& d) { return spool_older(transfer_->name, d); };
    if (transfer_ && std::any_of(drop.begin(), drop.end(), newer_than_sent))
        spdlog::info("upload: {} stays over the cap although it is older: it is being sent", transfer_->name);
    uint64_t bytes = 0;
    std::vector<std::string> gone;
    for (const auto& name : drop) {
        std::error_code ec;
        if (!fs::remove(spool_dir_ / name, ec) && ec) {
            spdlog::error("upload: cannot drop {} from the spool: {}", name, ec.message());
            continue;
        }
        bytes += sizes_[name];
        gone.push_back(name);
        files_.erase(name);
        sizes_.erase(name);
    }
    sync_dir(spool_dir_);
    const std::string reason = "spool over its cap (upload.spool_max_files " +
                               std::to_string(cfg_.spool_max_files) + ", upload.spool_max_bytes " +
                               std::to_string(cfg_.spool_max_bytes) + "); oldest files dropped unsent";
    for (const auto& n : gone)
        spdlog::warn("upload: dropped {} from the spool unsent: {}", n, reason);
    dropped_files_ += gone.size();
    dropped_bytes_ += bytes;
    if (!gone.empty() && events_.dropped)
        events_.dropped(gone, bytes, reason);
}

// Arms the kick timer `delay_us` from now, or at the end of the current backoff, whichever is later.
void Uploader::schedule(uint64_t delay_us) {
    uint64_t at = now_us(CLOCK_MONOTONIC) + delay_us;
    if (next_attempt_mono_ > at)
        at = next_attempt_mono_;
    sd_event_source_set_time(kick_timer_.get(), at);
    sd_event_source_set_enabled(kick_timer_.get(), SD_EVENT_ONESHOT);
}

int Uploader::on_kick(sd_event_source*, uint64_t, void* userp) {
    auto* u = static_cast<Uploader*>(userp);
    try {
        u->kick();
    } catch (const std::exception& e) {
        spdlog::error("upload: {}", e.what());
    }
    return 0;
}

int Uploader::on_inotify(sd_event_source*, const struct inotify_event* ev, void* userp) {
    auto* u = static_cast<Uploader*>(userp);
    if (ev->len && !spool_name_ok(ev->name))
        return 0;
    // The cap applies at once, even while waiting out a backoff.
    try {
        u->rescan();
    } catch (const std::exception& e) {
        spdlog::error("upload: {}", e.what());
    }
    if (!u->transfer_)
        u->schedule(0);
    return 0;
}

void Uploader::kick() {
    if (transfer_ || !target_)
        return;
    if (next_attempt_mono_ > now_us(CLOCK_MONOTONIC)) {
        schedule(0);
        return;
    }
    rescan();
    if (files_.empty())
        return;
    std::vector<std::string> names;
    for (const auto& [n, _] : files_)
        names.push_back(n);
    std::sort(names.begin(), names.end(), [](const auto& a, const auto& b) { return spool_older(a, b); });
    start(names.front(), sizes_[names.front()]);
}

void Uploader::start(const std::string& name, uint64_t size) {
    transfer_ = std::make_unique<Transfer>();
    transfer_->name = name;
    transfer_->size = size;
    transfer_->plan = plan_remote(*target_, name);
    files_[name].attempts++;
    spdlog::debug("upload: sending {} ({} bytes) to {}", name, size, transfer_->plan.final_url);
    if (target_->scheme == UploadScheme::File) {
        copy_to_directory();
        return;
    }
    start_step();
}

void Uploader::finish(const Classified& c) {
    std::unique_ptr<Transfer> t = std::move(transfer_);
    const std::string retry_after = t->retry_after;
    t->release();
    if (c.outcome == UploadOutcome::Success) {
        std::error_code ec;
        fs::remove(spool_dir_ / t->name, ec);
        if (ec)
            spdlog::error("upload: {} was uploaded but cannot be removed from the spool: {}", t->name,
                          ec.message());
        sync_dir(spool_dir_);
        files_.erase(t->name);
        sizes_.erase(t->name);
        failures_ = 0;
        next_attempt_mono_ = 0;
        auth_paused_ = false;
        last_error_.clear();
        uploaded_files_++;
        uploaded_bytes_ += t->size;
        spdlog::info("upload: {} ({} bytes) -> {}", t->name, t->size, t->plan.final_url);
        if (events_.succeeded)
            events_.succeeded(t->name, t->plan.final_url, t->size);
        schedule(0);
        return;
    }
    failures_++;
    failed_attempts_++;
    uint64_t delay_us = 0;
    if (c.outcome == UploadOutcome::Auth) {
        // Retrying a wrong password is useless and may lock the account: wait for new
        // credentials (SetTarget, reload), UploadNow, or upload.auth_retry.
        auth_paused_ = true;
        delay_us = static_cast<uint64_t>(cfg_.auth_retry.count()) * 1000;
    } else {
        // A refusal (permanent) is retried at the slowest pace: the file is never given up,
        // but the server is not pestered either.
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        auto d = c.outcome == UploadOutcome::Permanent
                     ? cfg_.retry_max
                     : backoff_delay(cfg_.retry_min, cfg_.retry_max, failures_, unit(rng_));
        uint64_t now_unix = now_us(CLOCK_REALTIME) / 1000000;
        if (auto ra = parse_retry_after(retry_after, static_cast<int64_t>(now_unix)); ra && *ra > d)
            d = *ra;
        delay_us = static_cast<uint64_t>(d.count()) * 1000;
    }
    next_attempt_mono_ = now_us(CLOCK_MONOTONIC) + delay_us;
    last_error_ = c.reason;
    auto it = files_.find(t->name);
    const uint32_t attempts = it != files_.end() ? it->second.attempts : 0;
    if (it != files_.end())
        it->second.last_error = c.reason;
    const uint64_t next_real = now_us(CLOCK_REALTIME) + delay_us;
    const std::string kind(to_string(c.outcome));
    if (c.outcome == UploadOutcome::Auth)
        spdlog::error(
            "upload: {} to {} failed: {}; uploads paused for {} s (or until the target or credentials "
            "change, or UploadNow)",
            t->name, target_->url, c.reason, delay_us / 1000000);
    else
        spdlog::warn("upload: {} to {} failed ({}): {}; attempt {}, next in {} ms", t->name, target_->url,
                     kind, c.reason, attempts, delay_us / 1000);
    if (events_.failed)
        events_.failed(t->name, kind, c.reason, attempts, next_real);
    schedule(0);
}

Uploader::Status Uploader::status() const {
    Status s;
    s.enabled = target_.has_value();
    s.url = target_ ? target_->url : "";
    s.username = username_;
    s.password_set = !password_.empty();
    s.source = source_;
    uint64_t now = 0;
    sd_event_now(ev_, CLOCK_MONOTONIC, &now);
    s.state = !target_                                    ? "disabled"
              : transfer_                                 ? "uploading"
              : auth_paused_                              ? "auth_failed"
              : failures_ > 0 || next_attempt_mono_ > now ? "waiting"
                                                          : "idle";
    s.last_error = last_error_;
    if (next_attempt_mono_ > now) {
        uint64_t real = 0;
        sd_event_now(ev_, CLOCK_REALTIME, &real);
        s.next_attempt_us = real + (next_attempt_mono_ - now);
    }
    s.consecutive_failures = failures_;
    s.uploaded_files = uploaded_files_;
    s.uploaded_bytes = uploaded_bytes_;
    s.failed_attempts = failed_attempts_;
    s.dropped_files = dropped_files_;
    s.dropped_bytes = dropped_bytes_;
    s.spool_dir = spool_dir_.string();
    s.spool_files = files_.size();
    for (const auto& [n, b] : sizes_)
        s.spool_bytes += b;
    s.spool_max_files = cfg_.spool_max_files;
    s.spool_max_bytes = cfg_.spool_max_bytes;
    return s;
}

std::vector<SpoolEntryInfo> Uploader::spool() const {
    std::vector<SpoolEntryInfo> out;
    uint64_t now = 0;
    sd_event_now(ev_, CLOCK_MONOTONIC, &now);
    for (const auto& [name, st] : files_) {
        SpoolEntryInfo e;
        e.name = name;
        auto sz = sizes_.find(name);
        e.size = sz != sizes_.end() ? sz->second : 0;
        struct stat sb {};
        if (stat((spool_dir_ / name).c_str(), &sb) == 0)
            e.mtime_us = static_cast<uint64_t>(sb.st_mtim.tv_sec) * 1000000u +
                         static_cast<uint64_t>(sb.st_mtim.tv_nsec) / 1000u;
        e.state = transfer_ && transfer_->name == name ? "uploading"
                  : auth_paused_                       ? "paused"
                  : next_attempt_mono_ > now           ? "waiting"
                                                       : "queued";
        e.attempts = st.attempts;
        e.last_error = st.last_error;
        out.push_back(std::move(e));
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return spool_older(a.name, b.name); });
    return out;
}

} // namespace nettally
