// Subscribers in nettallyd: see subscribers.h.
#include "app/subscribers.h"

#include "os/clock.h"
#include "os/error.h"
#include "os/file.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

namespace nettally {
namespace {

// How long an ended RADIUS session is remembered (a late Interim-Update of it opens nothing).
constexpr uint64_t kEndedSessionKeep_us = 600'000'000;

} // namespace

Subscribers::Subscribers(Datapath& dp) : dp_(dp) {
    for (const auto& [id, name] : dp_.read_user_names())
        ids_.restore(id, name);
}

nlohmann::json Subscribers::to_json() const {
    return {
        {"bindings", table_.to_json()}, {"radius", radius_.to_json()}, {"radius_journal_seq", journal_seq_}};
}

void Subscribers::restore(const nlohmann::json& j) {
    table_ = BindingTable::from_json(j.at("bindings"));
    if (j.contains("radius")) {
        radius_ = radius::RadiusSessions::from_json(j.at("radius"));
        journal_seq_ = j.at("radius_journal_seq").get<uint64_t>();
    }
    effective_ = table_.effective();
}

void Subscribers::open_journal(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec); // the state directory, on a first start
    journal_.reset(::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!journal_)
        throw SysError(errno, "opening the RADIUS journal " + path.string());
    std::ifstream in(path);
    std::string line;
    size_t replayed = 0, bad = 0;
    while (std::getline(in, line)) {
        try {
            const auto j = nlohmann::json::parse(line);
            if (j.at("seq").get<uint64_t>() <= journal_seq_)
                continue;
            replay(j);
            replayed++;
        } catch (const std::exception&) {
            bad++; // a line cut by a crash, or not ours
        }
    }
    if (replayed || bad)
        spdlog::info("subscribers: {} RADIUS request(s) after the state file's save applied again from {}{}",
                     replayed, path.string(),
                     bad ? fmt::format(" ({} unreadable line(s) skipped)", bad) : "");
}

void Subscribers::replay(const nlohmann::json& j) {
    radius::AccountingRequest r;
    r.status = static_cast<radius::StatusType>(j.at("status").get<uint32_t>());
    r.user_name = j.at("user").get<std::string>();
    r.session_id = j.at("session").get<std::string>();
    for (const auto& pj : j.at("prefixes")) {
        const auto p = Prefix::parse(pj.get<std::string>());
        if (!p)
            throw std::runtime_error("bad prefix");
        if (p->family == NT_AF_INET && !r.framed_ip)
            r.framed_ip = *p;
        else
            r.ipv6_prefixes.push_back(*p);
    }
    std::vector<BindingChange> ignored; // the kernel is synced whole at configure
    radius_.apply(r, j.at("nas").get<std::string>(), table_, j.at("t").get<uint64_t>(), &ignored);
    journal_seq_ = j.at("seq").get<uint64_t>();
}

void Subscribers::journal(const radius::AccountingRequest& r, const std::string& nas, uint64_t now_us) {
    if (!journal_)
        return;
    nlohmann::json prefixes = nlohmann::json::array();
    for (const auto& p : r.prefixes())
        prefixes.push_back(p.to_string());
    const nlohmann::json j = {{"seq", ++journal_seq_},
                              {"t", now_us},
                              {"nas", nas},
                              {"status", static_cast<uint32_t>(r.status)},
                              {"user", r.user_name},
                              {"session", r.session_id},
                              {"prefixes", prefixes}};
    try {
        // One write(2) of a whole line with O_APPEND: a kill -9 keeps it or not, never half.
        write_all(journal_.get(), j.dump() + "\n", "the RADIUS journal");
    } catch (const SysError& e) {
        spdlog::error("subscribers: {}", e.what());
    }
}

void Subscribers::state_saved() {
    if (journal_ && ftruncate(journal_.get(), 0) < 0)
        spdlog::error("subscribers: emptying the RADIUS journal: {}", std::strerror(errno));
}

radius::Outcome Subscribers::radius(const radius::AccountingRequest& r, const std::string& nas) {
    const uint64_t now = realtime_us();
    std::vector<BindingChange> changes;
    const radius::Outcome o = radius_.apply(r, nas, table_, now, &changes);
    if (!changes.empty() || o == radius::Outcome::Opened || o == radius::Outcome::Closed ||
        o == radius::Outcome::NasReset)
        journal(r, nas, now);
    try {
        apply_prefixes(changes);
    } catch (const SysError& e) {
        spdlog::error("subscribers: {}", e.what());
    }
    return o;
}

void Subscribers::open_radius(bool strict) {
    // Every reload opens it again, so a changed secret file is read (a NAS retransmits what
    // arrives in between).
    if (cfg_.radius.listen.empty() && !radius_listener_)
        return;
    try {
        std::unique_ptr<RadiusListener> next;
        if (!cfg_.radius.listen.empty()) {
            if (radius_listener_ && radius_listener_->address() == cfg_.radius.listen)
                radius_listener_.reset(); // the same address: the old socket must go first
            next =
                std::make_unique<RadiusListener>(ev_, cfg_.radius, radius_stats_,
                                                 [this](const radius::AccountingRequest& r,
                                                        const std::string& nas) { return radius(r, nas); });
            spdlog::info("subscribers: RADIUS accounting on {} ({} client(s))", cfg_.radius.listen,
                         cfg_.radius.clients.size());
        }
        radius_listener_ = std::move(next);
    } catch (const std::exception& e) {
        if (strict)
            throw;
        spdlog::error("subscribers: RADIUS listener on {}: {}", cfg_.radius.listen, e.what());
    }
}

void Subscribers::add_status(Status& m) const {
    m["radius_enabled"] = static_cast<bool>(radius_listener_);
    m["radius_listen"] = radius_listener_ ? radius_listener_->address() : std::string();
    m["radius_sessions"] = static_cast<uint32_t>(radius_.open().size());
    radius_stats_.add_status(m);
}

void Subscribers::configure(const SubscribersConfig& cfg, uint64_t now_us) {
    const bool files_changed = cfg.dhcp != cfg_.dhcp;
    cfg_ = cfg;
    if (files_changed) {
        leases_.clear();
        dirty_.clear();
        for (const auto& s : cfg_.dhcp)
            dirty_.insert(s.path);
        if (ev_)
            watch_leases();
    }
    std::vector<WantedBinding> want;
    for (const auto& s : cfg.statics)
        if (s.prefix)
            want.push_back({s.user, *s.prefix, "", ""});
    auto changes = table_.sync_source(BindingSource::Static, want, now_us);
    if (cfg.radius.listen.empty() && !radius_.open().empty()) {
        // subscribers.radius removed: its sessions end (no Stop will come for them).
        auto ended = table_.sync_source(BindingSource::Radius, {}, now_us);
        changes.insert(changes.end(), ended.begin(), ended.end());
        radius_ = {};
    }
    if (ev_)
        open_radius(false);
    sync_kernel();
    dp_.set_users_on(cfg.configured);
    for (const auto& c : changes)
        for (const auto& l : listeners_)
            l(c);
    if (cfg.configured)
        spdlog::info("subscribers: {} prefix(es) bound, {} static MAC entries", effective_.size(),
                     std::count_if(cfg.statics.begin(), cfg.statics.end(),
                                   [](const StaticSubscriber& s) { return !s.mac.empty(); }));
}

void Subscribers::watch(sd_event* ev) {
    ev_ = ev;
    open_radius(true);
    watch_leases();
}

void Subscribers::watch_leases() {
    sd_event* ev = ev_;
    inotify_src_.reset();
    inotify_.reset();
    watched_dirs_.clear();
    watching_ = false;
    if (cfg_.dhcp.empty())
        return;
    inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_) {
        spdlog::warn("subscribers: inotify unavailable ({}); lease files are read at every poll",
                     std::strerror(errno));
        return;
    }
    // The directories: dnsmasq rewrites its file in place, Kea's lease file cleanup renames.
    std::set<std::filesystem::path> dirs;
    for (const auto& s : cfg_.dhcp)
        dirs.insert(s.path.parent_path());
    for (const auto& d : dirs) {
        const int wd = inotify_add_watch(inotify_.get(), d.c_str(),
                                         IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_TO |
                                             IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF);
        if (wd < 0) {
            spdlog::warn("subscribers: cannot watch {} ({}); lease files are read at every poll", d.string(),
                         std::strerror(errno));
            inotify_.reset();
            return;
        }
        watched_dirs_[wd] = d;
    }
    const int r = sd_event_add_io(ev, inotify_src_.put(), inotify_.get(), EPOLLIN, on_inotify, this);
    if (r < 0) {
        spdlog::warn("subscribers: cannot add the lease file watch to the loop ({}); lease files are read at "
                     "every poll",
                     std::strerror(-r));
        inotify_.reset();
        return;
    }
    watching_ = true;
}

int Subscribers::on_inotify(sd_event_source*, int fd, uint32_t, void* self) {
    auto* s = static_cast<Subscribers*>(self);
    alignas(inotify_event) char buf[16 * (sizeof(inotify_event) + NAME_MAX + 1)];
    for (;;) {
        const ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
            off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
            auto d = s->watched_dirs_.find(e->wd);
            if (d == s->watched_dirs_.end())
                continue;
            for (const auto& src : s->cfg_.dhcp)
                if (src.path.parent_path() == d->second &&
                    (e->len == 0 || (e->mask & IN_Q_OVERFLOW) || src.path.filename() == e->name))
                    s->dirty_.insert(src.path);
        }
    }
    return 0;
}

void Subscribers::read_lease_file(const LeaseSource& src) {
    std::ifstream in(src.path, std::ios::binary);
    if (!in) {
        // Not there (yet): no leases. dnsmasq creates it at start.
        if (!leases_[src.path].empty() || !leases_.count(src.path))
            spdlog::info("subscribers: lease file {} not readable ({}): no leases from it", src.path.string(),
                         std::strerror(errno));
        leases_[src.path].clear();
        return;
    }
    std::ostringstream text;
    text << in.rdbuf();
    const LeaseFile f = parse_leases(src.format, text.str());
    if (!f.problems.empty()) {
        lease_problems_ += f.problems.size();
        // Once per reading of a changed file, and at most three lines of it.
        for (size_t i = 0; i < f.problems.size() && i < 3; i++)
            spdlog::warn("subscribers: {}:{}: {}: line skipped", src.path.string(), f.problems[i].line,
                         f.problems[i].what);
        if (f.problems.size() > 3)
            spdlog::warn("subscribers: {}: {} more bad line(s) skipped", src.path.string(),
                         f.problems.size() - 3);
    }
    leases_[src.path] = f.leases;
}

void Subscribers::poll(uint64_t now_us) {
    if (!cfg_.dhcp.empty()) {
        for (const auto& src : cfg_.dhcp)
            if (!watching_ || dirty_.count(src.path) || !leases_.count(src.path))
                read_lease_file(src);
        dirty_.clear();
        std::vector<Lease> all;
        for (const auto& src : cfg_.dhcp)
            all.insert(all.end(), leases_[src.path].begin(), leases_[src.path].end());
        size_t unnamed = 0;
        const auto want = lease_bindings(
            all, now_us / 1000000, [this](const std::string& mac) { return user_of_mac(mac); }, &unnamed);
        leases_unnamed_ = unnamed;
        try {
            apply(table_.sync_source(BindingSource::Dhcp, want, now_us));
        } catch (const SysError& e) {
            spdlog::error("subscribers: {}", e.what());
        }
    } else if (std::any_of(table_.bindings().begin(), table_.bindings().end(),
                           [](const Binding& b) { return b.open() && b.source == BindingSource::Dhcp; })) {
        apply(table_.sync_source(BindingSource::Dhcp, {}, now_us)); // subscribers.dhcp removed
    }
    radius_.expire(now_us, kEndedSessionKeep_us);
    const auto keep = static_cast<uint64_t>(cfg_.keep_closed.count()) * 1000u;
    if (const size_t n = table_.expire(now_us, keep))
        spdlog::debug("subscribers: forgot {} closed binding(s) older than subscribers.keep_closed", n);
}

void Subscribers::apply(const std::vector<BindingChange>& changes) {
    if (changes.empty())
        return;
    sync_kernel();
    for (const auto& c : changes)
        for (const auto& l : listeners_)
            l(c);
}

void Subscribers::apply_prefixes(const std::vector<BindingChange>& changes) {
    if (changes.empty())
        return;
    std::set<Prefix> touched;
    for (const auto& c : changes)
        touched.insert(c.binding.prefix);
    for (const auto& p : touched) {
        const Binding* b = table_.effective_for(p);
        if (!b) {
            dp_.remove_binding(p);
            effective_.erase(p);
            continue;
        }
        const bool fresh = !ids_.find(b->user);
        const uint32_t id = ids_.id_of(b->user);
        if (fresh)
            dp_.write_user_name(id, b->user); // before any binding counts under it
        dp_.set_binding(p, id);
        effective_[p] = b->user;
    }
    for (const auto& c : changes)
        for (const auto& l : listeners_)
            l(c);
}

void Subscribers::sync_kernel() {
    effective_ = table_.effective();
    std::map<Prefix, uint32_t> want;
    for (const auto& [prefix, user] : effective_) {
        const bool fresh = !ids_.find(user);
        const uint32_t id = ids_.id_of(user);
        if (fresh)
            dp_.write_user_name(id, user); // before any binding counts under it
        want[prefix] = id;
    }
    dp_.sync_bindings(want);
}

std::string Subscribers::user_of_mac(const std::string& mac) const {
    for (const auto& s : cfg_.statics)
        if (!s.mac.empty() && s.mac == mac)
            return s.user;
    return {};
}

std::string Subscribers::user_of(uint8_t family, const uint32_t addr[4]) const {
    const std::string* best = nullptr;
    int best_len = -1;
    for (const auto& [p, user] : effective_)
        if (p.len > best_len && p.contains(family, addr)) {
            best = &user;
            best_len = p.len;
        }
    return best ? *best : std::string();
}

} // namespace nettally
