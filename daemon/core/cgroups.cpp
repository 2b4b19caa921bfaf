// Per-cgroup accounting, pure half: see cgroups.h.
#include "core/cgroups.h"

#include <algorithm>
#include <stdexcept>

namespace nettally {

namespace {

// Splits "/a/b" into {"a", "b"}; "/" into {}.
std::vector<std::string_view> components(std::string_view path) {
    std::vector<std::string_view> out;
    size_t i = 1;
    while (i < path.size()) {
        const size_t j = path.find('/', i);
        const size_t end = j == std::string_view::npos ? path.size() : j;
        out.push_back(path.substr(i, end - i));
        i = end + 1;
    }
    return out;
}

bool unit_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '-' || c == '_' || c == '.' || c == '\\' || c == '@';
}

// "foo.service" -> "service"; "" when name is not a valid unit name (systemd's rules, loosely:
// valid characters, a non-empty prefix, at most one '@', at most 255 characters).
std::string_view unit_type(std::string_view name) {
    if (name.empty() || name.size() > 255 || !std::all_of(name.begin(), name.end(), unit_char))
        return {};
    if (std::count(name.begin(), name.end(), '@') > 1)
        return {};
    const size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || name[0] == '@')
        return {};
    return name.substr(dot + 1);
}

// systemd escapes a directory name that could clash with a kernel file ("cpu.x", "_x",
// "cgroup.x") by prefixing '_' (cg_escape); cg_unescape drops it.
std::string_view unescape(std::string_view name) {
    return !name.empty() && name[0] == '_' ? name.substr(1) : name;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const auto octal = [&](size_t k) { return k < s.size() && s[k] >= '0' && s[k] <= '7'; };
        if (s[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::vector<std::string_view> split_ws(std::string_view line) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ')
            ++i;
        if (i >= line.size())
            break;
        const size_t j = line.find(' ', i);
        const size_t end = j == std::string_view::npos ? line.size() : j;
        out.push_back(line.substr(i, end - i));
        i = end;
    }
    return out;
}

bool counts_le(const Counts& a, const Counts& b) {
    return a.all_le(b);
}

nlohmann::json c4_json(const Counts& c) {
    return {{"packets", c.packets}, {"l3", c.l3}, {"l4", c.l4}, {"payload", c.payload}};
}

Counts c4_from_json(const nlohmann::json& j) {
    Counts c;
    c.packets = j.at("packets").get<uint64_t>();
    c.l3 = j.at("l3").get<uint64_t>();
    c.l4 = j.at("l4").get<uint64_t>();
    c.payload = j.at("payload").get<uint64_t>();
    return c;
}

nlohmann::json cc_json(const CgroupCounts& c) {
    return {{"ingress", c4_json(c.ingress)}, {"egress", c4_json(c.egress)}};
}

CgroupCounts cc_from_json(const nlohmann::json& j) {
    return CgroupCounts{c4_from_json(j.at("ingress")), c4_from_json(j.at("egress"))};
}

CgroupCounts from_kernel(const CgroupKernelTotals& k, size_t bucket) {
    return CgroupCounts{k[NT_DIR_INGRESS].bucket[bucket], k[NT_DIR_EGRESS].bucket[bucket]};
}

} // namespace

// ---- paths ---------------------------------------------------------------------------------

bool is_cgroup_path(std::string_view path) {
    if (path.empty() || path[0] != '/')
        return false;
    if (path == "/")
        return true;
    if (path.back() == '/')
        return false;
    for (const auto c : components(path)) {
        if (c.empty() || c == "." || c == ".." || c.size() > 255 || c.find('\0') != std::string_view::npos)
            return false;
    }
    return true;
}

std::string_view cgroup_parent(std::string_view path) {
    if (path.size() <= 1)
        return {};
    const size_t slash = path.rfind('/');
    return slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
}

bool cgroup_within(std::string_view path, std::string_view root) {
    if (root == "/")
        return !path.empty() && path[0] == '/';
    return path == root ||
           (path.size() > root.size() && path.substr(0, root.size()) == root && path[root.size()] == '/');
}

size_t cgroup_depth(std::string_view path) {
    return components(path).size();
}

bool cgroup_less(std::string_view a, std::string_view b) {
    const auto ca = components(a);
    const auto cb = components(b);
    return std::lexicographical_compare(ca.begin(), ca.end(), cb.begin(), cb.end());
}

std::string cgroup_unit(std::string_view path) {
    if (path == "/")
        return "-.slice";
    std::string slice;
    for (const auto raw : components(path)) {
        const std::string_view name = unescape(raw);
        const std::string_view type = unit_type(name);
        if (type == "slice") {
            slice = name;
            continue;
        }
        if (type == "service" || type == "scope" || type == "socket" || type == "mount" || type == "swap")
            return std::string(name);
        break; // a directory systemd does not manage: the innermost slice owns it
    }
    return slice;
}

std::optional<Cgroup2Mount> find_cgroup2_mount(std::string_view mountinfo) {
    std::optional<Cgroup2Mount> first;
    size_t pos = 0;
    while (pos < mountinfo.size()) {
        const size_t nl = mountinfo.find('\n', pos);
        const std::string_view line =
            mountinfo.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? mountinfo.size() : nl + 1;
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        const auto f = split_ws(line);
        const auto dash = std::find(f.begin(), f.end(), std::string_view("-"));
        if (f.size() < 7 || dash == f.end() || dash - f.begin() < 6 || dash + 1 == f.end())
            continue;
        if (*(dash + 1) != "cgroup2")
            continue;
        Cgroup2Mount m{unescape_mountinfo(f[4]), unescape_mountinfo(f[3])};
        if (m.root == "/")
            return m;
        if (!first)
            first = std::move(m);
    }
    return first;
}

// ---- counters ------------------------------------------------------------------------------

CgroupCounts& CgroupCounts::operator+=(const CgroupCounts& o) {
    ingress += o.ingress;
    egress += o.egress;
    return *this;
}

bool CgroupCounts::all_le(const CgroupCounts& o) const {
    return counts_le(ingress, o.ingress) && counts_le(egress, o.egress);
}

CgroupCounts fold_percpu(std::span<const nt_cg_val> per_cpu) {
    CgroupCounts r;
    for (const auto& v : per_cpu) {
        r.ingress += Counts(v.dir[NT_DIR_INGRESS]);
        r.egress += Counts(v.dir[NT_DIR_EGRESS]);
    }
    return r;
}

CgroupDirTotals fold_percpu(std::span<const nt_cg_dir_val> per_cpu) {
    CgroupDirTotals r;
    for (const auto& v : per_cpu) {
        r.total += Counts(v.total);
        for (size_t b = 0; b < NT_CG_BUCKET_MAX; ++b)
            r.bucket[b] += Counts(v.bucket[b]);
    }
    return r;
}

std::string_view cgroup_bucket_name(size_t bucket) {
    // Indexed by enum nt_cg_bucket, then the daemon's own kCgroupBucketUnresolved.
    static constexpr std::array<std::string_view, kCgroupBucketUnresolved + 1> kNames = {
        "other_netns", "loopback", "unparsable", "untracked", "overflow", "unresolved"};
    static_assert(NT_CG_BUCKET_OTHER_NETNS == 0 && NT_CG_BUCKET_LOOPBACK == 1 &&
                  NT_CG_BUCKET_UNPARSABLE == 2 && NT_CG_BUCKET_UNTRACKED == 3 && NT_CG_BUCKET_OVERFLOW == 4);
    return bucket < kNames.size() ? kNames[bucket] : "unknown";
}

bool cgroup_bucket_is_unattributed(size_t bucket) {
    return bucket == NT_CG_BUCKET_UNPARSABLE || bucket == NT_CG_BUCKET_UNTRACKED ||
           bucket == NT_CG_BUCKET_OVERFLOW || bucket == kCgroupBucketUnresolved;
}

void CgroupCounter::observe(const CgroupCounts& raw) {
    // A kernel entry only grows; a smaller reading means it was deleted and created again.
    if (!raw_.all_le(raw))
        base_ += raw_;
    raw_ = raw;
}

void CgroupCounter::retire(const CgroupCounts& final_raw) {
    observe(final_raw);
    base_ += raw_;
    raw_ = CgroupCounts{};
}

// ---- ledger --------------------------------------------------------------------------------

void CgroupLedger::observe(uint64_t id, const std::string& path, const CgroupCounts& raw, uint64_t now_us) {
    auto [it, fresh] = ids_.try_emplace(id);
    IdEntry& e = it->second;
    if (!fresh && e.path != path) {
        // Renamed: the counts go with the cgroup. Its old path keeps only what it had before.
        paths_[path];
        e.path = path;
    }
    if (fresh)
        e.path = path;
    PathEntry& p = paths_[path];
    const CgroupCounts before = e.counter.total();
    e.counter.observe(raw);
    if (fresh || !(e.counter.total() == before))
        p.last_active_us = now_us;
}

void CgroupLedger::retire(uint64_t id, const CgroupCounts& final_raw, uint64_t now_us) {
    auto it = ids_.find(id);
    if (it == ids_.end())
        return;
    const CgroupCounts before = it->second.counter.total();
    it->second.counter.retire(final_raw);
    PathEntry& p = paths_[it->second.path];
    p.base += it->second.counter.total();
    if (!(it->second.counter.total() == before))
        p.last_active_us = now_us;
    ids_.erase(it);
}

void CgroupLedger::add_unresolved(const CgroupCounts& c) {
    buckets_[kCgroupBucketUnresolved].add_base(c);
}

void CgroupLedger::observe_kernel(const CgroupKernelTotals& raw) {
    for (size_t b = 0; b < NT_CG_BUCKET_MAX; ++b)
        buckets_[b].observe(from_kernel(raw, b));
    seen_.observe(CgroupCounts{raw[NT_DIR_INGRESS].total, raw[NT_DIR_EGRESS].total});
}

std::optional<CgroupCounts> CgroupLedger::last_raw(uint64_t id) const {
    auto it = ids_.find(id);
    if (it == ids_.end())
        return std::nullopt;
    return it->second.counter.raw();
}

std::map<std::string, CgroupCounts> CgroupLedger::self_counts() const {
    std::map<std::string, CgroupCounts> self;
    for (const auto& [path, p] : paths_)
        self[path] += p.base;
    for (const auto& [id, e] : ids_)
        self[e.path] += e.counter.total();
    return self;
}

CgroupCounts CgroupLedger::attributed() const {
    CgroupCounts sum;
    for (const auto& [path, c] : self_counts())
        sum += c;
    return sum;
}

CgroupCounts CgroupLedger::bucket(size_t b) const {
    return b < buckets_.size() ? buckets_[b].total() : CgroupCounts{};
}

std::vector<CgroupRow> CgroupLedger::rows() const {
    const auto self = self_counts();
    std::map<std::string, CgroupRow> rows;
    for (const auto& [path, c] : self) {
        for (std::string_view p = path; !p.empty(); p = cgroup_parent(p)) {
            CgroupRow& r = rows[std::string(p)];
            r.total += c;
        }
        rows[path].self += c;
    }
    // A path exists when it or something below it was seen in the last walk.
    std::set<std::string> alive;
    for (const auto& path : present_)
        for (std::string_view p = path; !p.empty(); p = cgroup_parent(p))
            if (!alive.insert(std::string(p)).second)
                break;
    std::vector<CgroupRow> out;
    out.reserve(rows.size());
    for (auto& [path, r] : rows) {
        r.path = path;
        r.unit = cgroup_unit(path);
        r.gone = alive.count(path) == 0;
        out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(),
              [](const CgroupRow& a, const CgroupRow& b) { return cgroup_less(a.path, b.path); });
    return out;
}

size_t CgroupLedger::compact(size_t max_paths) {
    size_t folded = 0;
    while (paths_.size() > max_paths) {
        // Candidates: gone, no live kernel entry, no other path below it, not "/".
        std::set<std::string> busy;
        for (const auto& [id, e] : ids_)
            busy.insert(e.path);
        std::set<std::string> inner;
        for (const auto& [path, p] : paths_)
            if (const auto parent = cgroup_parent(path); !parent.empty())
                inner.insert(std::string(parent));
        std::vector<std::pair<uint64_t, std::string>> leaves;
        for (const auto& [path, p] : paths_) {
            if (path == "/" || busy.count(path) || inner.count(path) || present_.count(path))
                continue;
            leaves.emplace_back(p.last_active_us, path);
        }
        if (leaves.empty())
            break;
        std::sort(leaves.begin(), leaves.end());
        const size_t n = std::min(leaves.size(), paths_.size() - max_paths);
        for (size_t i = 0; i < n; ++i) {
            const std::string& path = leaves[i].second;
            const auto node = paths_.extract(path);
            PathEntry& parent = paths_[std::string(cgroup_parent(path))];
            parent.base += node.mapped().base;
            parent.last_active_us = std::max(parent.last_active_us, node.mapped().last_active_us);
            ++folded;
        }
    }
    return folded;
}

nlohmann::json CgroupLedger::to_json() const {
    nlohmann::json paths = nlohmann::json::object();
    const auto self = self_counts();
    for (const auto& [path, c] : self) {
        nlohmann::json e = cc_json(c);
        auto it = paths_.find(path);
        e["last_active_us"] = it == paths_.end() ? 0 : it->second.last_active_us;
        paths[path] = std::move(e);
    }
    nlohmann::json buckets = nlohmann::json::object();
    for (size_t b = 0; b < kCgroupBucketCount; ++b)
        buckets[std::string(cgroup_bucket_name(b))] = cc_json(buckets_[b].total());
    return {{"version", 1},
            {"paths", std::move(paths)},
            {"buckets", std::move(buckets)},
            {"seen", cc_json(seen_.total())}};
}

void CgroupLedger::restore(const nlohmann::json& j) {
    if (j.at("version").get<int>() != 1)
        throw std::invalid_argument("unsupported cgroup ledger version " + j.at("version").dump());
    // Parse everything first, so bad input changes nothing.
    std::vector<std::pair<std::string, PathEntry>> paths;
    for (const auto& [path, e] : j.at("paths").items()) {
        if (!is_cgroup_path(path))
            throw std::invalid_argument("not a cgroup path: '" + path + "'");
        paths.emplace_back(path, PathEntry{cc_from_json(e), e.value("last_active_us", uint64_t{0})});
    }
    std::array<CgroupCounts, kCgroupBucketCount> buckets{};
    for (size_t b = 0; b < kCgroupBucketCount; ++b) {
        const auto& all = j.at("buckets");
        const std::string name(cgroup_bucket_name(b));
        if (all.contains(name))
            buckets[b] = cc_from_json(all.at(name));
    }
    const CgroupCounts seen = j.contains("seen") ? cc_from_json(j.at("seen")) : CgroupCounts{};

    for (auto& [path, e] : paths) {
        PathEntry& p = paths_[path];
        p.base += e.base;
        p.last_active_us = std::max(p.last_active_us, e.last_active_us);
    }
    for (size_t b = 0; b < kCgroupBucketCount; ++b)
        buckets_[b].add_base(buckets[b]);
    seen_.add_base(seen);
}

// ---- tracker -------------------------------------------------------------------------------

void CgroupTracker::set_subtrees(std::vector<std::string> subtrees) {
    if (subtrees == subtrees_)
        return;
    subtrees_ = std::move(subtrees);
    subtrees_changed_ = true;
}

bool CgroupTracker::tracked(const std::string& path) const {
    return std::any_of(subtrees_.begin(), subtrees_.end(),
                       [&](const std::string& root) { return cgroup_within(path, root); });
}

void CgroupTracker::walk(uint64_t now_us) {
    const auto found = source_.walk(subtrees_);
    std::set<std::string> present;
    for (auto& [id, k] : known_)
        k.present = false;
    for (const auto& [id, path] : found) {
        present.insert(path);
        Known& k = known_[id];
        k.path = path;
        k.present = true;
    }
    ledger_.set_present(std::move(present));
    last_walk_us_ = now_us;
    walked_ = true;
    subtrees_changed_ = false;
    ++stats_.walks;
}

void CgroupTracker::poll(uint64_t now_us) {
    const CgroupKernelTotals before = source_.read_totals();
    const bool settled = source_.in_flight() == 0;
    const auto entries = source_.read_entries();
    const CgroupKernelTotals after = source_.read_totals();
    ++stats_.polls;
    stats_.live_entries = entries.size();

    // Where is each cgroup now? Known ones are checked with one lookup each; anything new, moved
    // or removed, a subtree change, or the periodic refresh walks the tracked subtrees.
    bool need_walk = !walked_ || subtrees_changed_ || now_us - last_walk_us_ >= kWalkEveryUs;
    for (size_t i = 0; i < entries.size() && !need_walk; ++i) {
        const auto it = known_.find(entries[i].first);
        if (it == known_.end())
            need_walk = true;
        else if (it->second.present && source_.id_of(it->second.path) != entries[i].first)
            need_walk = true;
    }
    if (need_walk)
        walk(now_us);

    check(before, after, settled, entries);

    ledger_.observe_kernel(after);
    for (const auto& [id, raw] : entries) {
        const auto it = known_.find(id);
        if (it != known_.end())
            ledger_.observe(id, it->second.path, raw, now_us);
    }

    // Retire kernel entries that no longer need a slot: unresolvable ones at once, gone cgroups
    // after a quiet poll interval (a socket may outlive its cgroup for a while), and cgroups
    // outside the tracked subtrees (a reload changed them; the program decides anew).
    for (const auto& [id, raw] : entries) {
        const auto it = known_.find(id);
        if (it == known_.end()) {
            retire(id, now_us, false);
            continue;
        }
        if (!tracked(it->second.path)) {
            retire(id, now_us, true);
            continue;
        }
        if (!it->second.present && quiet_.count(id) && quiet_[id] == raw)
            retire(id, now_us, true);
    }
    quiet_.clear();
    for (const auto& [id, raw] : entries)
        if (const auto it = known_.find(id); it != known_.end() && !it->second.present)
            quiet_[id] = raw;

    prune_known(entries);
    ledger_.compact(max_paths_);
}

void CgroupTracker::retire(uint64_t id, uint64_t now_us, bool resolved) {
    const auto last = source_.take_entry(id);
    if (!last)
        return;
    retired_raw_ += *last;
    ++stats_.retired;
    if (resolved)
        ledger_.retire(id, *last, now_us);
    else
        ledger_.add_unresolved(*last);
}

// Ids the kernel map no longer holds and whose cgroup is gone are forgotten once there are many:
// the smallest ids first (cgroup ids grow through a boot, so those are the oldest).
void CgroupTracker::prune_known(const std::vector<std::pair<uint64_t, CgroupCounts>>& entries) {
    const size_t limit = std::max<size_t>(max_paths_, 1024);
    if (known_.size() <= limit)
        return;
    std::set<uint64_t> live;
    for (const auto& e : entries)
        live.insert(e.first);
    for (auto it = known_.begin(); it != known_.end() && known_.size() > limit;) {
        if (!it->second.present && !live.count(it->first) && !ledger_.knows(it->first))
            it = known_.erase(it);
        else
            ++it;
    }
}

void CgroupTracker::check(const CgroupKernelTotals& before, const CgroupKernelTotals& after, bool settled,
                          const std::vector<std::pair<uint64_t, CgroupCounts>>& entries) {
    CgroupCounts live;
    for (const auto& e : entries)
        live += e.second;
    const CgroupCounts entries_sum = live + retired_raw_;
    for (size_t d = 0; d < NT_DIR_MAX; ++d) {
        Counts buckets_first, buckets_last;
        for (size_t b = 0; b < NT_CG_BUCKET_MAX; ++b) {
            buckets_first += before[d].bucket[b];
            buckets_last += after[d].bucket[b];
        }
        const Counts& cgroups = d == NT_DIR_INGRESS ? entries_sum.ingress : entries_sum.egress;
        const Counts upper = cgroups + buckets_first; // written before after[d].total was read
        const Counts lower = cgroups + buckets_last;  // everything finished before them is in
        const bool upper_ok = upper.all_le(after[d].total);
        const bool lower_ok = !settled || before[d].total.all_le(lower);
        ++stats_.reconcile_checks;
        if (upper_ok && lower_ok) {
            if (settled && before[d].total == after[d].total && lower == after[d].total && upper == lower)
                ++stats_.reconcile_exact;
            continue;
        }
        ++stats_.reconcile_violations;
        stats_.last_violation =
            std::string(d == NT_DIR_INGRESS ? "ingress" : "egress") + ": cgroups " + cgroups.to_string() +
            " + buckets " + buckets_last.to_string() +
            (upper_ok ? " below the total read before them, " : " above the total read after them, ") +
            (upper_ok ? before[d].total.to_string() : after[d].total.to_string());
        if (on_violation_)
            on_violation_(stats_.last_violation);
    }
}

std::string cgroup_subject_path(const CgroupLedger* ledger, const std::string& subject) {
    if (subject.empty() || subject[0] == '/' || !ledger)
        return subject;
    for (const auto& r : ledger->rows())
        if (r.unit == subject)
            return r.path;
    return subject;
}

} // namespace nettally
