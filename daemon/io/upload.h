// The uploader: sends the closed accounting files in the spool directory to the configured
// server, oldest first, one at a time, and removes a file from the spool only once the server has
// confirmed it (the upload and the rename into its final name both succeeded). Transfers run on
// libcurl's multi socket API inside the daemon's sd-event loop (io and timer sources; no thread).
// Every decision without I/O (URL rules, names, backoff, result classes, the spool cap) is in
// core/upload.h.
//
// Target and credentials come from the config (upload.*) or from D-Bus SetTarget; a SetTarget
// override is kept in <state_dir>/upload.json (mode 0600) and lasts until the config's upload
// target or credentials change (then the config wins again and the file is removed).
#pragma once

#include "core/upload.h"
#include "os/event.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <systemd/sd-event.h>
#include <vector>

namespace nettally {

// The password that upload.password / password_file / password_credential names; throws
// std::runtime_error (message names the key, never the secret) when it cannot be read.
std::string resolve_upload_password(const UploadConfig& cfg);

struct UploadEvents {
    std::function<void(const std::string& name, const std::string& url, uint64_t bytes)> succeeded;
    std::function<void(const std::string& name, const std::string& kind, const std::string& error,
                       uint32_t attempts, uint64_t next_attempt_us)>
        failed;
    std::function<void(const std::vector<std::string>& names, uint64_t bytes, const std::string& reason)>
        dropped;
};

struct SpoolEntryInfo {
    std::string name;
    uint64_t size = 0;
    uint64_t mtime_us = 0;
    std::string state; // uploading | queued | waiting | paused
    uint32_t attempts = 0;
    std::string last_error;
};

class Uploader {
public:
    // Throws SysError (spool directory, event sources) and std::runtime_error (credentials).
    Uploader(sd_event* ev, std::filesystem::path spool_dir, std::filesystem::path state_dir,
             const UploadConfig& cfg, UploadEvents events);
    ~Uploader();
    Uploader(const Uploader&) = delete;
    Uploader& operator=(const Uploader&) = delete;

    // Reload: validate first (throws std::runtime_error, nothing changed), then apply.
    static void check_config(const UploadConfig& cfg);
    void apply_config(const UploadConfig& cfg);

    // D-Bus SetTarget. url "" drops the override (back to the config's target). Throws
    // std::invalid_argument for bad input (nothing changed) and SysError when it cannot be saved.
    void set_target(const std::string& url, const std::string& username, const std::string& password);
    // Try now: ends a backoff or an authentication pause.
    void upload_now();
    // A file was closed into the spool (the recorder's notification); a rescan also finds it.
    void file_closed();

    struct Status {
        bool enabled = false;
        std::string url, username, source, state, last_error, spool_dir;
        bool password_set = false;
        uint64_t next_attempt_us = 0;
        uint32_t consecutive_failures = 0;
        uint64_t uploaded_files = 0, uploaded_bytes = 0, failed_attempts = 0, dropped_files = 0,
                 dropped_bytes = 0;
        uint64_t spool_files = 0, spool_bytes = 0;
        uint64_t spool_max_files = 0, spool_max_bytes = 0;
    };
    Status status() const;
    std::vector<SpoolEntryInfo> spool() const;
    const std::filesystem::path& spool_dir() const { return spool_dir_; }

private:
    struct Transfer;
    struct FileState {
        uint32_t attempts = 0;
        std::string last_error;
    };

    void load_override();
    void save_override();
    void rebuild_target();
    void rescan();
    void enforce_cap(std::vector<SpoolFile>& files);
    void schedule(uint64_t delay_us);
    void kick();
    void start(const std::string& name, uint64_t size);
    std::optional<Classified> open_multi();
    void start_step();
    void set_options(Transfer& t);
    void finish_step(int curl_code, long response_code);
    void finish(const Classified& c);
    void copy_to_directory();
    uint64_t now_us(clockid_t clock) const;

    static int on_socket(void* easy, int fd, int what, void* userp, void* socketp);
    static int on_curl_timer(void* multi, long timeout_ms, void* userp);
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userp);
    static int on_curl_timeout(sd_event_source* s, uint64_t usec, void* userp);
    static int on_kick(sd_event_source* s, uint64_t usec, void* userp);
    static int on_inotify(sd_event_source* s, const struct inotify_event* ev, void* userp);
    void check_done();

    sd_event* ev_;
    std::filesystem::path spool_dir_;
    std::filesystem::path override_path_;
    UploadEvents events_;
    UploadConfig cfg_;
    std::string cfg_password_;

    struct Override {
        std::string url, username, password;
        uint64_t fingerprint = 0;
    };
    std::optional<Override> override_;

    // Effective target.
    std::optional<UploadTarget> target_;
    std::string username_, password_, source_;

    void* multi_ = nullptr;         // CURLM*, from the first transfer on (open_multi)
    std::map<int, EventSource> io_; // curl's sockets
    EventSource curl_timer_;
    EventSource kick_timer_;
    EventSource inotify_;
    std::unique_ptr<Transfer> transfer_;

    std::map<std::string, FileState> files_; // spool contents, by name
    std::map<std::string, uint64_t> sizes_;
    uint32_t failures_ = 0;          // consecutive failed attempts
    uint64_t next_attempt_mono_ = 0; // CLOCK_MONOTONIC usec; 0 = now
    bool auth_paused_ = false;
    std::string last_error_;
    uint64_t uploaded_files_ = 0, uploaded_bytes_ = 0, failed_attempts_ = 0, dropped_files_ = 0,
             dropped_bytes_ = 0;
    std::mt19937_64 rng_;
};

} // namespace nettally
