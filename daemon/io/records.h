// The Recorder writes accounting records (core/records.h) to files and rotates them into the
// spool directory, where the uploader takes them.
//
// Files: records of one type go to <state_dir>/records/current/<final name>.open until the file is
// closed (full, period boundary, Rotate, settings change, shutdown); closing moves it into the
// spool under its final name with one rename (or writes <spool>/.<name>.tmp, fsyncs and renames,
// when gzip is on or the spool is on another file system), then fsyncs the spool directory. Files
// in the spool never change after they appear; names starting with '.' are not finished files.
//
// No loss, no duplicates: usage records (interface, host, cgroup, class) are the change of the
// collector's totals since the last written record. Each write is committed by appending the
// lines, fsync()ing the file, then atomically replacing <state_dir>/records/cursor.json, which
// holds the totals the written records reach and each open file's committed length. After a
// crash the open files are cut back to their committed length and the records after it are
// written again from the (exact) totals, then closed into the spool. Event records (flow, alert)
// are appended as they happen and fsynced at the next commit; recovery keeps every complete line.
//
// Everything runs on the daemon's sd-event loop: a CLOCK_REALTIME timer fires at each period
// boundary, asks the daemon for a fresh poll, writes the records up to the boundary and closes
// the files.
#pragma once

#include "core/cgroups.h"
#include "core/collector.h"
#include "core/records.h"
#include "os/event.h"
#include "os/file.h"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <systemd/sd-event.h>
#include <vector>

namespace nettally {

struct ClosedFile {
    std::filesystem::path path; // in the spool, final name
    std::string name;
    RecordType type = RecordType::Interface;
    uint64_t records = 0;
    uint64_t bytes = 0; // uncompressed, header included
    RotateReason reason = RotateReason::Demand;
};

struct SpoolEntry {
    std::string name;
    uint64_t size = 0;      // on disk
    std::string type;       // from the name
    int64_t created_us = 0; // mtime
};

class Recorder {
public:
    using FileClosed = std::function<void(const std::filesystem::path&)>;
    using Rotated = std::function<void(const ClosedFile&)>;
    using PollNow = std::function<void()>;
    // The subscriber bound to an address (family NT_AF_*, addr as in the BPF keys) at a time
    // (unix µs), "" when none: the user field of host and flow records.
    using UserOf = std::function<std::string(uint8_t family, const uint32_t addr[4], int64_t at_us)>;

    // cfg: the config's records.* (the overrides of <state_dir>/records.json are applied here).
    // from_zero: the collector's totals start at zero (first start with this state directory),
    // so the first usage records cover everything counted; otherwise they start from the
    // totals at the first record() call. Recovers files left open by a crash into the spool.
    // Throws SysError (directories not usable).
    Recorder(const RecordsConfig& cfg, const std::filesystem::path& state_dir, bool from_zero);
    ~Recorder();
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    // Arms the period timer on the loop; poll_now makes the daemon poll (it then calls record()).
    void start(sd_event* ev, PollNow poll_now);

    // Called for every file moved into the spool (after the rename is durable).
    void on_file_closed(FileClosed cb) { file_closed_.push_back(std::move(cb)); }
    void on_rotated(Rotated cb) { rotated_ = std::move(cb); }
    // With subscribers configured: fills the user field (else it stays empty).
    void set_user_of(UserOf f) { user_of_ = std::move(f); }
    // The traffic-class ruleset in force changed to `version` (0: none): the usage up to now is
    // written first (a fresh poll), with the old version, so that no usage record spans two
    // versions by more than the poll's latency; the records after carry the new one.
    void set_rules_version(uint64_t version);
    uint64_t rules_version() const { return rules_version_; }

    const std::filesystem::path& spool_dir() const { return spool_dir_; }
    const std::filesystem::path& current_dir() const { return current_dir_; }

    // After every poll: usage records when an interval boundary has passed (or force), and the
    // finished flows handed over since the last call.
    void record(const Collector& c, const CgroupLedger* cgroups, int64_t now_us, bool force = false);
    // A flow the collector finished (Collector::on_flow_finished); written at the next record().
    void on_flow_finished(const FlowEntry& f, const std::string& interface, const Collector& c);
    // Alert records, appended now (if alerts are recorded) and made durable together (one
    // fsync and one cursor write for the batch).
    void add_alerts(const std::vector<AlertRecord>& alerts);

    // Closes every open file into the spool; returns what was closed.
    std::vector<ClosedFile> rotate(RotateReason why);
    // Demand rotation: asks for a fresh poll first so the files hold everything up to now.
    std::vector<ClosedFile> rotate_now();

    // The effective settings (config + overrides).
    const RecordsConfig& settings() const { return cfg_; }
    // Applies D-Bus overrides: validated, persisted to records.json, then applied (open files are
    // closed when types, formats, compression or the period change). Throws std::invalid_argument
    // (bad value; nothing changed) or SysError (records.json not written; nothing changed).
    void set_overrides(const nlohmann::json& overrides);
    // Drops every override (records.json removed) and returns to the config's settings.
    void reset_overrides();
    // The keys set over D-Bus (records.json).
    std::vector<std::string> overridden_keys() const;
    // Config reload: new base settings; the overrides stay on top.
    void set_config(const RecordsConfig& cfg);

    std::vector<SpoolEntry> list_spool() const;
    // Flushes and closes every file (clean shutdown).
    void shutdown(const Collector& c, const CgroupLedger* cgroups, int64_t now_us);

    struct Stats {
        uint64_t files_closed = 0;
        uint64_t records_written = 0;
        uint64_t recovered_files = 0;
        int64_t last_rotation_us = 0;
        int64_t next_period_end_us = 0;
        std::string last_error;
    };
    const Stats& stats() const { return stats_; }

private:
    struct OpenFile {
        RecordType type = RecordType::Interface;
        RecordFormat format = RecordFormat::Csv;
        std::string name; // final name (with ".gz" when compressed)
        int64_t start_us = 0;
        uint64_t seq = 0;
        OpenFileFill fill;      // written
        OpenFileFill committed; // durable and described by the cursor
        bool closing = false;   // full: goes to the spool after the next commit
        AppendFile file;        // closed once in the spool
    };
    OpenFile& file_for(RecordType t, int64_t now_us);
    std::string user_of_ip(const std::string& ip, int64_t at_us) const;
    UserOf user_of_;
    void append(RecordType t, const std::string& line, int64_t now_us);
    // fsync every written file, then replace the cursor; then move the closing files to the spool.
    void commit();
    void write_cursor();
    void load_cursor();
    void recover();
    std::vector<ClosedFile> finish_closing(RotateReason why);
    ClosedFile move_to_spool(OpenFile& f, RotateReason why);
    void write_usage(const Collector& c, const CgroupLedger* cgroups, int64_t now_us);
    void flush_via_poll();
    void apply(const RecordsConfig& next);
    void arm_timer();
    static int on_period(sd_event_source*, uint64_t, void*);
    nlohmann::json file_json(const OpenFile& f) const;

    RecordsConfig base_;
    nlohmann::json overrides_ = nlohmann::json::object();
    RecordsConfig cfg_;
    std::filesystem::path records_dir_;
    std::filesystem::path current_dir_;
    std::filesystem::path spool_dir_;
    std::filesystem::path cursor_path_;
    std::filesystem::path overrides_path_;
    std::string host_;
    bool from_zero_ = false;
    bool have_baseline_ = false;
    bool force_next_ = false;
    bool dirty_ = false;
    std::map<std::string, Counts> baseline_; // cumulative totals the written records reach
    int64_t last_write_us_ = 0;              // end of the last usage records
    int64_t created_us_ = 0;
    uint64_t next_seq_ = 1;
    std::vector<std::unique_ptr<OpenFile>> files_; // open and closing
    std::vector<FlowRecordIn> pending_flows_;
    uint64_t rules_version_ = 0;
    std::vector<FileClosed> file_closed_;
    Rotated rotated_;
    PollNow poll_now_;
    sd_event* ev_ = nullptr;
    EventSource timer_;
    Stats stats_;
};

} // namespace nettally
