// The Recorder: see records.h for the file life cycle and the crash-safety argument.
#include "io/records.h"

#include "os/clock.h"
#include "os/error.h"
#include "os/file.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/stat.h>
#include <zlib.h>

namespace nettally {
namespace {

namespace fs = std::filesystem;

int64_t wall_us() {
    return static_cast<int64_t>(realtime_us());
}

// gzip (level 6, as gzopen "wb6" wrote it), in memory: the result goes through write_file_atomic.
std::string gzip(const std::string& in, const std::string& what) {
    z_stream z{};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw SysError(ENOMEM, "compressing " + what);
    std::string out(deflateBound(&z, static_cast<uLong>(in.size())), '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int r = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (r != Z_STREAM_END)
        throw SysError(EIO, "compressing " + what);
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        throw SysError(errno ? errno : ENOENT, "reading " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void make_dir(const fs::path& p) {
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec)
        throw SysError(ec.value(), "creating " + p.string());
}

bool is_usage(RecordType t) {
    return t == RecordType::Interface || t == RecordType::Host || t == RecordType::Cgroup ||
           t == RecordType::Class;
}

std::string hostname() {
    char buf[HOST_NAME_MAX + 1] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0)
        return "host";
    return buf;
}

constexpr std::string_view kOpenSuffix = ".open";

// A usage subject: its cumulative totals and how to make its record.
struct Usage {
    RecordType type;
    Counts total;
    std::function<Record(int64_t, int64_t, const Counts&)> make;
};

} // namespace

Recorder::Recorder(const RecordsConfig& cfg, const fs::path& state_dir, bool from_zero)
    : base_(cfg), cfg_(cfg), from_zero_(from_zero) {
    records_dir_ = state_dir / "records";
    current_dir_ = records_dir_ / "current";
    spool_dir_ = cfg.spool_dir.empty() ? state_dir / "spool" : cfg.spool_dir;
    cursor_path_ = records_dir_ / "cursor.json";
    overrides_path_ = state_dir / "records.json";
    make_dir(current_dir_);
    make_dir(spool_dir_);
    host_ = hostname();
    created_us_ = wall_us();
    std::error_code ec;
    if (fs::exists(overrides_path_, ec)) {
        try {
            auto j = nlohmann::json::parse(read_file(overrides_path_));
            cfg_ = apply_overrides(base_, j);
            overrides_ = j;
            spdlog::info("records: settings changed over D-Bus apply ({}): {}", overrides_path_.string(),
                         j.dump());
        } catch (const std::exception& e) {
            spdlog::error("records: {} unusable ({}); using the config's records settings",
                          overrides_path_.string(), e.what());
        }
    }
    load_cursor();
    recover();
}

Recorder::~Recorder() = default;

void Recorder::start(sd_event* ev, PollNow poll_now) {
    ev_ = ev;
    poll_now_ = std::move(poll_now);
    arm_timer();
}

// ---- cursor and recovery ----

nlohmann::json Recorder::file_json(const OpenFile& f) const {
    return {{"name", f.name},
            {"type", std::string(to_string(f.type))},
            {"format", std::string(to_string(f.format))},
            {"start_us", f.start_us},
            {"seq", f.seq},
            {"bytes", f.committed.bytes},
            {"records", f.committed.records},
            {"closing", f.closing}};
}

void Recorder::write_cursor() {
    nlohmann::json base = nlohmann::json::object();
    for (const auto& [k, v] : baseline_)
        base[k] = to_json(v);
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : files_)
        files.push_back(file_json(*f));
    nlohmann::json j = {{"version", 1},
                        {"next_seq", next_seq_},
                        {"have_baseline", have_baseline_},
                        {"last_write_us", last_write_us_},
                        {"baseline", std::move(base)},
                        {"files", std::move(files)}};
    write_file_atomic(cursor_path_, j.dump(), 0640);
}

namespace {
struct CursorFile {
    RecordType type;
    OpenFileFill committed;
};
} // namespace

void Recorder::load_cursor() {
    std::error_code ec;
    if (!fs::exists(cursor_path_, ec))
        return;
    try {
        const auto j = nlohmann::json::parse(read_file(cursor_path_));
        if (j.at("version").get<int>() != 1)
            throw std::runtime_error("unsupported version");
        std::map<std::string, Counts> base;
        for (const auto& [k, v] : j.at("baseline").items())
            base[k] = counts_from_json(v);
        next_seq_ = j.at("next_seq").get<uint64_t>();
        have_baseline_ = j.at("have_baseline").get<bool>();
        last_write_us_ = j.at("last_write_us").get<int64_t>();
        baseline_ = std::move(base);
        from_zero_ = false; // recording has a history in this state directory
    } catch (const std::exception& e) {
        // Without the cursor the written records' extent is unknown: start again from the
        // current totals (the records since the last commit are lost, none is written twice).
        spdlog::error("records: {} unusable ({}); usage records restart from the current totals",
                      cursor_path_.string(), e.what());
        have_baseline_ = false;
        from_zero_ = false;
    }
}

// The files the cursor lists, by final name; false when there is no usable cursor.
static bool read_cursor_files(const fs::path& cursor, std::map<std::string, CursorFile>& known) {
    std::error_code ec;
    if (!fs::exists(cursor, ec))
        return false;
    try {
        const auto j = nlohmann::json::parse(read_file(cursor));
        for (const auto& f : j.at("files")) {
            auto t = parse_record_type(f.at("type").get<std::string>());
            if (!t)
                continue;
            known[f.at("name").get<std::string>()] =
                CursorFile{*t, OpenFileFill{f.at("bytes").get<uint64_t>(), f.at("records").get<uint64_t>()}};
        }
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

void Recorder::recover() {
    // What the cursor says was committed, by final name.
    std::map<std::string, CursorFile> known;
    const bool cursor_ok = read_cursor_files(cursor_path_, known);
    std::error_code ec;
    // Half-written compressed copies in the spool.
    for (const auto& e : fs::directory_iterator(spool_dir_, ec)) {
        const std::string n = e.path().filename().string();
        if (n.size() > 4 && n[0] == '.' && n.substr(n.size() - 4) == ".tmp")
            fs::remove(e.path(), ec);
    }
    std::vector<fs::path> opens;
    for (const auto& e : fs::directory_iterator(current_dir_, ec)) {
        const std::string n = e.path().filename().string();
        if (n.size() > kOpenSuffix.size() && n.substr(n.size() - kOpenSuffix.size()) == kOpenSuffix)
            opens.push_back(e.path());
    }
    std::sort(opens.begin(), opens.end());
    for (const auto& p : opens) {
        std::string n = p.filename().string();
        const std::string name = n.substr(0, n.size() - kOpenSuffix.size());
        const auto parsed = parse_file_name(name);
        if (!parsed) {
            spdlog::warn("records: {} is not a record file; left alone", p.string());
            continue;
        }
        if (fs::exists(spool_dir_ / name, ec)) { // moved before the crash; the cursor was not updated
            fs::remove(p, ec);
            continue;
        }
        std::string content = read_file(p);
        uint64_t keep = 0;
        auto it = known.find(name);
        if (cursor_ok && is_usage(parsed->type)) {
            // Usage records past the committed length are written again from the totals.
            keep = it == known.end() ? 0 : std::min<uint64_t>(it->second.committed.bytes, content.size());
        } else {
            // Events are not written again: keep every complete line.
            auto nl = content.rfind('\n');
            keep = nl == std::string::npos ? 0 : nl + 1;
        }
        content.resize(keep);
        uint64_t lines = static_cast<uint64_t>(std::count(content.begin(), content.end(), '\n'));
        const uint64_t header = parsed->format == RecordFormat::Csv ? 1 : 0;
        const uint64_t records = lines > header ? lines - header : 0;
        if (records == 0) {
            fs::remove(p, ec);
            continue;
        }
        truncate_file(p, keep);
        sync_path(p);
        OpenFile f;
        f.type = parsed->type;
        f.format = parsed->format;
        f.name = name;
        f.seq = parsed->seq;
        f.fill = f.committed = OpenFileFill{keep, records};
        ClosedFile c = move_to_spool(f, RotateReason::Recovered);
        stats_.recovered_files++;
        spdlog::warn("records: recovered {} ({} records) left open by an earlier run into the spool", c.name,
                     c.records);
        next_seq_ = std::max(next_seq_, parsed->seq + 1);
    }
    // Sequence numbers never repeat: above anything in the spool too.
    for (const auto& e : fs::directory_iterator(spool_dir_, ec))
        if (auto pn = parse_file_name(e.path().filename().string()))
            next_seq_ = std::max(next_seq_, pn->seq + 1);
    files_.clear();
    write_cursor();
}

// ---- writing ----

Recorder::OpenFile& Recorder::file_for(RecordType t, int64_t now_us) {
    for (auto& f : files_)
        if (f->type == t && !f->closing)
            return *f;
    auto f = std::make_unique<OpenFile>();
    f->type = t;
    f->format = cfg_.type(t).format;
    f->seq = next_seq_++;
    f->start_us = now_us;
    f->name = file_name(host_, t, now_us, f->seq, f->format, cfg_.compress);
    const fs::path p = current_dir_ / (f->name + std::string(kOpenSuffix));
    f->file = AppendFile::create(p, 0640);
    const std::string header = header_line(t, f->format);
    f->file.append(header);
    f->fill.bytes = header.size();
    dirty_ = true;
    files_.push_back(std::move(f));
    return *files_.back();
}

void Recorder::append(RecordType t, const std::string& line, int64_t now_us) {
    OpenFile* f = &file_for(t, now_us);
    if (full_before(f->fill, line.size(), cfg_)) {
        f->closing = true;
        f = &file_for(t, now_us);
    }
    f->file.append(line);
    f->fill.bytes += line.size();
    f->fill.records++;
    stats_.records_written++;
    dirty_ = true;
}

void Recorder::commit() {
    if (!dirty_)
        return;
    for (auto& f : files_)
        if (!(f->fill.bytes == f->committed.bytes && f->fill.records == f->committed.records))
            f->file.datasync();
    for (auto& f : files_)
        f->committed = f->fill;
    write_cursor();
    dirty_ = false;
}

ClosedFile Recorder::move_to_spool(OpenFile& f, RotateReason why) {
    f.file.close();
    const fs::path src = current_dir_ / (f.name + std::string(kOpenSuffix));
    const fs::path dst = spool_dir_ / f.name;
    const bool gz = f.name.size() > 3 && f.name.substr(f.name.size() - 3) == ".gz";
    bool renamed = false;
    if (!gz) {
        if (::rename(src.c_str(), dst.c_str()) == 0)
            renamed = true;
        else if (errno != EXDEV)
            throw SysError(errno, "moving " + src.string() + " to the spool");
    }
    if (!renamed) {
        // Compressed, or across file systems: a new file in the spool (its temp name starts with a
        // dot, which the uploader skips and recover() removes), then the open file goes.
        const std::string content = read_file(src);
        write_file_atomic(dst, gz ? gzip(content, src.string()) : content, 0640);
        std::error_code ec;
        if (!fs::remove(src, ec) && ec)
            throw SysError(ec.value(), "removing " + src.string());
    } else {
        sync_path(spool_dir_);
    }
    sync_path(current_dir_);
    ClosedFile c{dst, f.name, f.type, f.committed.records, f.committed.bytes, why};
    stats_.files_closed++;
    stats_.last_rotation_us = wall_us();
    return c;
}

std::vector<ClosedFile> Recorder::finish_closing(RotateReason why) {
    std::vector<ClosedFile> closed;
    for (auto it = files_.begin(); it != files_.end();) {
        if (!(*it)->closing) {
            ++it;
            continue;
        }
        closed.push_back(move_to_spool(**it, why));
        it = files_.erase(it);
    }
    if (closed.empty())
        return closed;
    write_cursor();
    for (const auto& c : closed) {
        spdlog::info("records: closed {} ({} records, {} bytes, {})", c.name, c.records, c.bytes,
                     to_string(c.reason));
        for (const auto& cb : file_closed_)
            cb(c.path);
        if (rotated_)
            rotated_(c);
    }
    return closed;
}

void Recorder::write_usage(const Collector& c, const CgroupLedger* cgroups, int64_t now_us) {
    std::map<std::string, Usage> cur;
    for (const auto& [name, st] : c.interfaces())
        for (uint8_t d = 0; d < NT_DIR_MAX; d++) {
            const std::string dir(to_string(static_cast<Direction>(d)));
            const std::string role = st.info.role;
            cur["iface:" + name + ":" + dir] =
                Usage{RecordType::Interface, st.dir[d].total.total(),
                      [this, name = name, role, dir](int64_t s, int64_t e, const Counts& x) {
                          return interface_record(s, e, name, role, dir, x, rules_version_);
                      }};
        }
    for (const auto& [key, h] : c.hosts()) {
        // wan_sent / wan_received: what the host's connections moved across wan-role interfaces.
        for (const char* dir : {"sent", "received", "wan_sent", "wan_received"}) {
            const std::string_view d(dir);
            const Counts& t = d == "sent"       ? h.sent.total()
                              : d == "received" ? h.received.total()
                              : d == "wan_sent" ? h.wan_sent
                                                : h.wan_received;
            cur["host:" + key + ":" + dir] =
                Usage{RecordType::Host, t, [this, &h = h, dir](int64_t s, int64_t e, const Counts& x) {
                          return host_record(s, e, {h.interface, h.mac, h.ip, user_of_ip(h.ip, e)}, dir, x,
                                             rules_version_);
                      }};
        }
    }
    if (cgroups)
        for (const auto& row : cgroups->rows())
            for (const char* dir : {"ingress", "egress"}) {
                const Counts& t = std::string_view(dir) == "ingress" ? row.self.ingress : row.self.egress;
                const std::string path = row.path;
                cur["cgroup:" + path + ":" + dir] =
                    Usage{RecordType::Cgroup, t, [this, path, dir](int64_t s, int64_t e, const Counts& x) {
                              return cgroup_record(s, e, path, dir, x, rules_version_);
                          }};
            }
    // Traffic classes, per interface, direction and class id; a gone class's totals stay (and move
    // only if it comes back).
    for (const auto& [key, cls] : c.classes()) {
        ClassIdentity id{cls.interface, to_string(static_cast<Direction>(cls.dir)), cls.id, cls.name,
                         cls.gone};
        cur["class:" + key] = Usage{RecordType::Class, cls.counts.total(),
                                    [this, id = std::move(id)](int64_t s, int64_t e, const Counts& x) {
                                        return class_record(s, e, id, x, rules_version_);
                                    }};
    }

    if (!have_baseline_) {
        have_baseline_ = true;
        if (from_zero_) {
            // Everything the collector counted belongs to the records.
            from_zero_ = false;
            baseline_.clear();
            last_write_us_ = created_us_;
        } else {
            for (const auto& [k, u] : cur)
                baseline_[k] = u.total;
            last_write_us_ = now_us;
            dirty_ = true;
            return;
        }
    }
    const int64_t start = last_write_us_;
    for (const auto& [k, u] : cur) {
        auto it = baseline_.find(k);
        const Counts delta = it == baseline_.end() ? u.total : delta_since(u.total, it->second);
        if (!(delta == Counts{}) && cfg_.type(u.type).enabled)
            append(u.type, encode(u.make(start, now_us, delta), cfg_.type(u.type).format), now_us);
        baseline_[k] = u.total;
    }
    last_write_us_ = now_us;
    dirty_ = true;
}

void Recorder::record(const Collector& c, const CgroupLedger* cgroups, int64_t now_us, bool force) {
    force = force || force_next_;
    force_next_ = false;
    if (!cfg_.enabled) {
        have_baseline_ = false;
        pending_flows_.clear();
        return;
    }
    try {
        if (!have_baseline_ || force || now_us >= period_end(last_write_us_, cfg_.interval))
            write_usage(c, cgroups, now_us);
        if (cfg_.type(RecordType::Flow).enabled)
            for (const auto& f : pending_flows_)
                append(RecordType::Flow, encode(flow_record(f), cfg_.type(RecordType::Flow).format), now_us);
        pending_flows_.clear();
        commit();
        finish_closing(RotateReason::Full);
    } catch (const std::exception& e) {
        stats_.last_error = e.what();
        spdlog::error("records: {}", e.what());
    }
}

void Recorder::on_flow_finished(const FlowEntry& f, const std::string& interface, const Collector& c) {
    if (!cfg_.enabled || !cfg_.type(RecordType::Flow).enabled)
        return;
    FlowRecordIn r;
    r.first_us = static_cast<int64_t>(c.to_unix_us(f.first_ns));
    r.last_us = static_cast<int64_t>(c.to_unix_us(f.last_ns));
    r.interface = interface;
    r.direction = to_string(static_cast<Direction>(f.key.dir));
    r.family = f.key.family == 2 ? "ipv4" : "ipv6";
    r.proto = f.key.proto;
    r.src = format_addr(f.key.family, f.key.src);
    r.sport = f.key.sport;
    r.dst = format_addr(f.key.family, f.key.dst);
    r.dport = f.key.dport;
    r.tcp_flags = f.tcp_flags;
    r.counts = f.counts;
    Collector::FlowClass fc = c.flow_class(f);
    r.cls = std::move(fc.name);
    r.rules_version = fc.version;
    // A lan interface's host is the source of what it receives (ingress) and the destination of
    // what it sends out to the host (egress).
    if (user_of_) {
        const auto it = c.interfaces().find(interface);
        if (it != c.interfaces().end() && it->second.info.role == "lan")
            r.user = user_of_(f.key.family, f.key.dir == NT_DIR_INGRESS ? f.key.src : f.key.dst, r.last_us);
    }
    pending_flows_.push_back(std::move(r));
}

void Recorder::set_rules_version(uint64_t version) {
    if (version == rules_version_)
        return;
    if (have_baseline_)
        flush_via_poll(); // the usage so far, under the version it was counted with
    rules_version_ = version;
}

std::string Recorder::user_of_ip(const std::string& ip, int64_t at_us) const {
    if (!user_of_)
        return {};
    uint32_t addr[4] = {};
    if (inet_pton(AF_INET, ip.c_str(), addr) == 1)
        return user_of_(NT_AF_INET, addr, at_us);
    if (inet_pton(AF_INET6, ip.c_str(), addr) == 1)
        return user_of_(NT_AF_INET6, addr, at_us);
    return {};
}

void Recorder::add_alerts(const std::vector<AlertRecord>& alerts) {
    if (alerts.empty() || !cfg_.enabled || !cfg_.type(RecordType::Alert).enabled)
        return;
    try {
        for (AlertRecord a : alerts) {
            a.rules_version = rules_version_;
            append(RecordType::Alert, encode(alert_record(a), cfg_.type(RecordType::Alert).format),
                   wall_us());
        }
        commit();
        finish_closing(RotateReason::Full);
    } catch (const std::exception& e) {
        stats_.last_error = e.what();
        spdlog::error("records: {}", e.what());
    }
}

// ---- rotation ----

std::vector<ClosedFile> Recorder::rotate(RotateReason why) {
    for (auto& f : files_)
        f->closing = true;
    dirty_ = true;
    commit();
    return finish_closing(why);
}

void Recorder::flush_via_poll() {
    if (!cfg_.enabled || !poll_now_)
        return;
    force_next_ = true;
    poll_now_(); // the daemon polls and calls record(), which writes the usage up to now
    force_next_ = false;
}

std::vector<ClosedFile> Recorder::rotate_now() {
    flush_via_poll();
    return rotate(RotateReason::Demand);
}

void Recorder::arm_timer() {
    if (!ev_)
        return;
    if (!cfg_.enabled) {
        if (timer_)
            sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
        stats_.next_period_end_us = 0;
        return;
    }
    const int64_t next = period_end(wall_us(), cfg_.period);
    stats_.next_period_end_us = next;
    if (!timer_) {
        // Accuracy 1 µs: the default (250 ms) would let the loop fire the boundary late.
        int r = sd_event_add_time(ev_, timer_.put(), CLOCK_REALTIME, static_cast<uint64_t>(next), 1,
                                  on_period, this);
        if (r < 0)
            throw SysError(-r, "adding the records period timer");
        return;
    }
    sd_event_source_set_time(timer_.get(), static_cast<uint64_t>(next));
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

int Recorder::on_period(sd_event_source*, uint64_t, void* self) {
    auto* r = static_cast<Recorder*>(self);
    const int64_t boundary = r->stats_.next_period_end_us;
    try {
        r->flush_via_poll();
        auto closed = r->rotate(RotateReason::Period);
        spdlog::debug("records: period boundary {}: {} file(s) closed {} ms after it", rfc3339(boundary),
                      closed.size(), (wall_us() - boundary) / 1000);
    } catch (const std::exception& e) {
        r->stats_.last_error = e.what();
        spdlog::error("records: period rotation: {}", e.what());
    }
    try {
        r->arm_timer();
    } catch (const std::exception& e) {
        spdlog::error("records: {}", e.what());
    }
    return 0;
}

// ---- settings ----

void Recorder::apply(const RecordsConfig& next) {
    const bool close = cfg_.enabled && (next.types != cfg_.types || next.compress != cfg_.compress ||
                                        next.period != cfg_.period || !next.enabled);
    if (close) {
        flush_via_poll();
        rotate(RotateReason::Settings);
    }
    const bool enabling = !cfg_.enabled && next.enabled;
    cfg_ = next;
    if (enabling) {
        have_baseline_ = false; // usage starts from the totals at the next poll
        from_zero_ = false;
    }
    arm_timer();
}

void Recorder::set_overrides(const nlohmann::json& o) {
    if (!o.is_object())
        throw std::invalid_argument("settings must be a dictionary");
    nlohmann::json merged = overrides_;
    for (const auto& [k, v] : o.items())
        merged[k] = v;
    const RecordsConfig next = apply_overrides(base_, merged); // throws invalid_argument
    write_file_atomic(overrides_path_, merged.dump(2) + "\n", 0640);
    overrides_ = std::move(merged);
    apply(next);
}

void Recorder::reset_overrides() {
    std::error_code ec;
    fs::remove(overrides_path_, ec);
    if (ec)
        throw SysError(ec.value(), "removing " + overrides_path_.string());
    sync_path(overrides_path_.parent_path());
    overrides_ = nlohmann::json::object();
    apply(base_);
}

std::vector<std::string> Recorder::overridden_keys() const {
    std::vector<std::string> keys;
    for (const auto& [k, v] : overrides_.items())
        keys.push_back(k);
    return keys;
}

void Recorder::set_config(const RecordsConfig& cfg) {
    base_ = cfg;
    RecordsConfig next = base_;
    try {
        next = apply_overrides(base_, overrides_);
    } catch (const std::exception& e) {
        spdlog::error(
            "records: the D-Bus settings in {} do not fit the new config ({}); config settings apply",
            overrides_path_.string(), e.what());
    }
    apply(next);
}

std::vector<SpoolEntry> Recorder::list_spool() const {
    std::vector<SpoolEntry> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(spool_dir_, ec)) {
        const std::string n = e.path().filename().string();
        if (n.empty() || n[0] == '.' || !e.is_regular_file(ec))
            continue;
        SpoolEntry s;
        s.name = n;
        struct stat st {};
        if (::stat(e.path().c_str(), &st) != 0)
            continue; // taken by the uploader meanwhile
        s.size = static_cast<uint64_t>(st.st_size);
        s.created_us = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000 + st.st_mtim.tv_nsec / 1000;
        if (auto p = parse_file_name(n))
            s.type = std::string(to_string(p->type));
        out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

void Recorder::shutdown(const Collector& c, const CgroupLedger* cgroups, int64_t now_us) {
    if (!cfg_.enabled)
        return;
    record(c, cgroups, now_us, true);
    try {
        rotate(RotateReason::Shutdown);
    } catch (const std::exception& e) {
        spdlog::error("records: closing files at shutdown: {}", e.what());
    }
}

} // namespace nettally
