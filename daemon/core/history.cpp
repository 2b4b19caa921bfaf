// Accounting periods and history: see history.h for the period, clock-jump, conservation and
// memory rules. Time-zone math is in time_zone.cpp.
#include "core/history.h"

#include "core/enum_names.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <stdexcept>

namespace nettally {
namespace {

namespace chr = std::chrono;
using Json = nlohmann::json;

constexpr int64_t kSecPerDay = 86400;
constexpr int64_t kUsPerSec = 1'000'000;
constexpr std::string_view kOther = "other";

// Times add() accepts: labels stay four-digit years and every calendar computation stays far from
// the limits of std::chrono::year and int64 microseconds.
constexpr int64_t kMinUnixS =
    chr::sys_seconds{chr::sys_days{chr::year{1900} / 1 / 1}}.time_since_epoch().count();
constexpr int64_t kMaxUnixS =
    chr::sys_seconds{chr::sys_days{chr::year{9999} / 1 / 1}}.time_since_epoch().count();
constexpr int kMinLabelYear = 1899; // a month starting in December 1899 contains 1900-01-01
constexpr int kMaxLabelYear = 9999;

using civil::civil_from_days;
using civil::days_from_civil;
using civil::floor_div;

std::string in_quotes(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

} // namespace

// ---- periods -------------------------------------------------------------------------------

std::string_view to_string(PeriodKind kind) {
    return kind == PeriodKind::Day ? "day" : "month";
}

std::optional<PeriodKind> parse_period_kind(std::string_view text) {
    return parse_enum(text, {PeriodKind::Day, PeriodKind::Month});
}

std::string overflow_subject(std::string_view subject) {
    const size_t first = subject.find(':');
    if (first == std::string_view::npos)
        return std::string(kOther);
    const size_t last = subject.rfind(':');
    std::string out(subject.substr(0, first));
    out += ":other";
    if (last != first) {
        out += ':';
        out += subject.substr(last + 1);
    }
    return out;
}

namespace {

bool is_overflow_name(std::string_view subject) {
    return overflow_subject(subject) == subject;
}

std::string label_for(PeriodKind kind, int64_t key) {
    char buf[32];
    if (kind == PeriodKind::Day) {
        const auto ymd = civil_from_days(key);
        std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
    } else {
        const auto y = static_cast<int>(floor_div(key, 12));
        const auto m = static_cast<unsigned>(key - int64_t{y} * 12 + 1);
        std::snprintf(buf, sizeof buf, "%04d-%02u", y, m);
    }
    return buf;
}

// Strict inverse of label_for; nullopt when text is not a label of that kind.
std::optional<int64_t> key_for(PeriodKind kind, std::string_view text) {
    const size_t len = kind == PeriodKind::Day ? 10 : 7;
    if (text.size() != len)
        return std::nullopt;
    auto digits = [&](size_t at, size_t n) -> std::optional<int> {
        int v = 0;
        for (size_t i = at; i < at + n; ++i) {
            if (text[i] < '0' || text[i] > '9')
                return std::nullopt;
            v = v * 10 + (text[i] - '0');
        }
        return v;
    };
    const auto y = digits(0, 4);
    const auto m = digits(5, 2);
    if (!y || !m || text[4] != '-' || *y < kMinLabelYear || *y > kMaxLabelYear || *m < 1 || *m > 12)
        return std::nullopt;
    if (kind == PeriodKind::Month)
        return int64_t{*y} * 12 + (*m - 1);
    const auto d = digits(8, 2);
    if (!d || text[7] != '-')
        return std::nullopt;
    const chr::year_month_day ymd{chr::year{*y}, chr::month{static_cast<unsigned>(*m)},
                                  chr::day{static_cast<unsigned>(*d)}};
    if (!ymd.ok())
        return std::nullopt;
    return chr::sys_days{ymd}.time_since_epoch().count();
}

void check_time(int64_t unix_us) {
    const int64_t s = floor_div(unix_us, kUsPerSec);
    if (s < kMinUnixS || s >= kMaxUnixS)
        throw std::out_of_range("history: time " + std::to_string(unix_us) +
                                " us is outside 1900-01-01..9999-01-01 UTC");
}

} // namespace

History::History(PeriodSpec spec) : History(spec, TimeZone::load(spec.time_zone, spec.zoneinfo_dir)) {}

History::History(PeriodSpec spec, TimeZone zone) : spec_(std::move(spec)), zone_(std::move(zone)) {
    auto bad = [](const std::string& what) { throw std::invalid_argument("history: " + what); };
    if (spec_.month_start_day < 1 || spec_.month_start_day > 28)
        bad("month_start_day must be 1..28, got " + std::to_string(spec_.month_start_day));
    if (spec_.keep_days < 1 || spec_.keep_days > 36600)
        bad("keep_days must be 1..36600, got " + std::to_string(spec_.keep_days));
    if (spec_.keep_months < 1 || spec_.keep_months > 1200)
        bad("keep_months must be 1..1200, got " + std::to_string(spec_.keep_months));
    if (spec_.max_subjects < 1)
        bad("max_subjects must be at least 1");
    spec_.time_zone = zone_.name();
}

int64_t History::day_start_us(int64_t day) const {
    return zone_.local_to_unix(day * kSecPerDay) * kUsPerSec;
}

int64_t History::period_start_us(PeriodKind kind, int64_t key) const {
    if (kind == PeriodKind::Day)
        return day_start_us(key);
    const int64_t y = floor_div(key, 12);
    const auto m = static_cast<unsigned>(key - y * 12 + 1);
    return day_start_us(
        days_from_civil(static_cast<int>(y), m, static_cast<unsigned>(spec_.month_start_day)));
}

History::Span History::locate(PeriodKind kind, int64_t unix_us) const {
    const int64_t unix_s = floor_div(unix_us, kUsPerSec);
    int64_t day = floor_div(unix_s + zone_.offset_at(unix_s), kSecPerDay);
    // The local date is the answer except around a transition at midnight: settle on the day whose
    // [start, next start) holds the instant (this also skips a day a zone left out entirely).
    while (day_start_us(day) > unix_us)
        --day;
    while (day_start_us(day + 1) <= unix_us)
        ++day;
    if (kind == PeriodKind::Day)
        return {day, day_start_us(day), day_start_us(day + 1)};
    // A month is made of whole days, from its month_start_day on.
    const auto ymd = civil_from_days(day);
    int64_t key = int64_t{static_cast<int>(ymd.year())} * 12 + static_cast<unsigned>(ymd.month()) - 1;
    if (static_cast<unsigned>(ymd.day()) < static_cast<unsigned>(spec_.month_start_day))
        --key;
    return {key, period_start_us(kind, key), period_start_us(kind, key + 1)};
}

void History::add_to(Bucket& b, std::string_view subject, const Counts& delta) const {
    if (auto it = b.totals.find(subject); it != b.totals.end()) {
        it->second += delta;
        return;
    }
    std::string name;
    if (is_overflow_name(subject)) {
        name = std::string(subject);
    } else if (b.regular < spec_.max_subjects) {
        b.totals.emplace(std::string(subject), delta);
        ++b.regular;
        return;
    } else {
        name = overflow_subject(subject);
        if (auto it = b.totals.find(name); it != b.totals.end()) {
            it->second += delta;
            return;
        }
    }
    // A new overflow bucket: "other" always, class buckets while there is room.
    if (name != kOther && b.overflow >= kMaxOverflowSubjects)
        name = kOther;
    auto [it, created] = b.totals.try_emplace(name);
    it->second += delta;
    if (created && name != kOther)
        ++b.overflow;
}

void History::prune(PeriodKind kind) {
    Series& s = series_[index(kind)];
    if (s.periods.empty())
        return;
    const int64_t keep = static_cast<int64_t>(kind == PeriodKind::Day ? spec_.keep_days : spec_.keep_months);
    const int64_t first_kept = s.periods.rbegin()->first - keep + 1;
    while (s.periods.begin()->first < first_kept) {
        for (const auto& [subject, counts] : s.periods.begin()->second.totals)
            add_to(s.pruned, subject, counts);
        s.periods.erase(s.periods.begin());
    }
}

void History::add(std::string_view subject, const Counts& delta, int64_t unix_us) {
    if (subject.empty())
        throw std::invalid_argument("history: empty subject");
    check_time(unix_us);
    if (delta == Counts{})
        return;
    std::array<int64_t, 2> keys{};
    for (PeriodKind kind : {PeriodKind::Day, PeriodKind::Month}) {
        Series& s = series_[index(kind)];
        if (!s.cache || unix_us < s.cache->start_us || unix_us >= s.cache->end_us)
            s.cache = locate(kind, unix_us);
        // The clock-jump rule: never into a period older than the latest one.
        keys[index(kind)] =
            s.periods.empty() ? s.cache->key : std::max(s.cache->key, s.periods.rbegin()->first);
    }
    total_added_ += delta;
    for (PeriodKind kind : {PeriodKind::Day, PeriodKind::Month}) {
        Series& s = series_[index(kind)];
        auto [it, created] = s.periods.try_emplace(keys[index(kind)]);
        add_to(it->second, subject, delta);
        if (created)
            prune(kind);
    }
}

History::Period History::make_period(PeriodKind kind, int64_t key, const Bucket* bucket) const {
    Period p;
    p.kind = kind;
    p.label = label_for(kind, key);
    p.start_us = period_start_us(kind, key);
    p.end_us = period_start_us(kind, key + 1);
    if (bucket)
        p.totals = bucket->totals;
    return p;
}

std::vector<History::Period> History::periods(PeriodKind kind) const {
    std::vector<Period> out;
    const Series& s = series_[index(kind)];
    out.reserve(s.periods.size());
    for (const auto& [key, bucket] : s.periods)
        out.push_back(make_period(kind, key, &bucket));
    return out;
}

History::Period History::period_at(PeriodKind kind, int64_t unix_us) const {
    check_time(unix_us);
    const Span span = locate(kind, unix_us);
    const Series& s = series_[index(kind)];
    const auto it = s.periods.find(span.key);
    return make_period(kind, span.key, it == s.periods.end() ? nullptr : &it->second);
}

// ---- state file ----------------------------------------------------------------------------

namespace {

constexpr int kStateVersion = 1;

Json counts_json(const Counts& c) {
    return Json{{"packets", c.packets}, {"l2", c.l2}, {"l3", c.l3}, {"l4", c.l4}, {"payload", c.payload}};
}

Json totals_json(const History::Totals& totals) {
    Json out = Json::object();
    for (const auto& [subject, counts] : totals)
        out[subject] = counts_json(counts);
    return out;
}

[[noreturn]] void bad_state(const std::string& pointer, const std::string& problem) {
    throw std::runtime_error("history state: " + (pointer.empty() ? std::string("(root)") : pointer) + ": " +
                             problem);
}

// RFC 6901 escaping, since subjects contain '/' ("flowagg:tcp/443:egress").
std::string child(const std::string& pointer, std::string_view key) {
    std::string out = pointer + "/";
    for (char ch : key) {
        if (ch == '~')
            out += "~0";
        else if (ch == '/')
            out += "~1";
        else
            out += ch;
    }
    return out;
}

std::string shown(const Json& v) {
    std::string text = v.dump();
    if (text.size() > 60)
        text = text.substr(0, 57) + "...";
    return text;
}

void expect_object(const Json& v, const std::string& pointer) {
    if (!v.is_object())
        bad_state(pointer, "expected an object, got " + shown(v));
}

void only_keys(const Json& obj, const std::string& pointer, std::initializer_list<std::string_view> keys) {
    for (const auto& item : obj.items())
        if (std::find(keys.begin(), keys.end(), item.key()) == keys.end())
            bad_state(child(pointer, item.key()), "unknown key");
}

const Json& member(const Json& obj, const std::string& pointer, std::string_view key) {
    const auto it = obj.find(key);
    if (it == obj.end())
        bad_state(pointer, "missing key " + in_quotes(key));
    return *it;
}

uint64_t read_u64(const Json& v, const std::string& pointer) {
    if (v.is_number_unsigned())
        return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) // built in C++ from a signed type
        return static_cast<uint64_t>(v.get<int64_t>());
    bad_state(pointer, "expected a non-negative integer, got " + shown(v));
}

Counts read_counts(const Json& v, const std::string& pointer) {
    expect_object(v, pointer);
    only_keys(v, pointer, {"packets", "l2", "l3", "l4", "payload"});
    Counts c;
    c.packets = read_u64(member(v, pointer, "packets"), child(pointer, "packets"));
    c.l2 = read_u64(member(v, pointer, "l2"), child(pointer, "l2"));
    c.l3 = read_u64(member(v, pointer, "l3"), child(pointer, "l3"));
    c.l4 = read_u64(member(v, pointer, "l4"), child(pointer, "l4"));
    c.payload = read_u64(member(v, pointer, "payload"), child(pointer, "payload"));
    return c;
}

} // namespace

Json History::to_json() const {
    Json j = Json::object();
    j["version"] = kStateVersion;
    j["total_added"] = counts_json(total_added_);
    for (PeriodKind kind : {PeriodKind::Day, PeriodKind::Month}) {
        const Series& s = series_[index(kind)];
        Json list = Json::array();
        for (const auto& [key, bucket] : s.periods)
            list.push_back(Json{{"label", label_for(kind, key)}, {"totals", totals_json(bucket.totals)}});
        j[std::string(to_string(kind))] =
            Json{{"periods", std::move(list)}, {"pruned", totals_json(s.pruned.totals)}};
    }
    return j;
}

void History::load_series(const Json& j, PeriodKind kind, History& h) {
    const std::string name(to_string(kind));
    const std::string pointer = "/" + name;
    const Json& s = member(j, "", name);
    expect_object(s, pointer);
    only_keys(s, pointer, {"periods", "pruned"});

    auto read_totals = [](const Json& v, const std::string& at, Bucket& b) {
        expect_object(v, at);
        for (const auto& item : v.items()) {
            if (item.key().empty())
                bad_state(child(at, ""), "empty subject");
            b.totals.emplace(item.key(), read_counts(item.value(), child(at, item.key())));
            if (!is_overflow_name(item.key()))
                ++b.regular;
            else if (item.key() != kOther)
                ++b.overflow;
        }
    };

    Series& series = h.series_[index(kind)];
    const Json& list = member(s, pointer, "periods");
    if (!list.is_array())
        bad_state(pointer + "/periods", "expected an array, got " + shown(list));
    std::optional<std::pair<int64_t, std::string>> previous;
    for (size_t i = 0; i < list.size(); ++i) {
        const std::string at = pointer + "/periods/" + std::to_string(i);
        const Json& p = list[i];
        expect_object(p, at);
        only_keys(p, at, {"label", "totals"});
        const Json& label = member(p, at, "label");
        const std::string expected = kind == PeriodKind::Day ? "a date YYYY-MM-DD" : "a month YYYY-MM";
        if (!label.is_string())
            bad_state(at + "/label", "expected " + expected + ", got " + shown(label));
        const auto text = label.get<std::string>();
        const auto key = key_for(kind, text);
        if (!key)
            bad_state(at + "/label", "expected " + expected + " (years " + std::to_string(kMinLabelYear) +
                                         ".." + std::to_string(kMaxLabelYear) + "), got " + in_quotes(text));
        if (previous && *key <= previous->first)
            bad_state(at + "/label", "periods must be oldest first without repeats, but " + in_quotes(text) +
                                         " follows " + in_quotes(previous->second));
        previous.emplace(*key, text);
        read_totals(member(p, at, "totals"), at + "/totals", series.periods[*key]);
    }
    read_totals(member(s, pointer, "pruned"), pointer + "/pruned", series.pruned);
}

History History::from_json(const Json& j, PeriodSpec spec) {
    TimeZone zone = TimeZone::load(spec.time_zone, spec.zoneinfo_dir);
    return from_json(j, std::move(spec), std::move(zone));
}

History History::from_json(const Json& j, PeriodSpec spec, TimeZone zone) {
    History h(std::move(spec), std::move(zone));
    expect_object(j, "");
    only_keys(j, "", {"version", "total_added", "day", "month"});
    const Json& version = member(j, "", "version");
    if (!version.is_number_integer() || version.get<int64_t>() != kStateVersion)
        bad_state("/version", "unsupported version " + shown(version) + " (this nettally reads version " +
                                  std::to_string(kStateVersion) + ")");
    h.total_added_ = read_counts(member(j, "", "total_added"), "/total_added");
    for (PeriodKind kind : {PeriodKind::Day, PeriodKind::Month}) {
        load_series(j, kind, h);
        // The conservation invariant doubles as an integrity check of the file.
        const Series& s = h.series_[index(kind)];
        Counts sum;
        for (const auto& [key, bucket] : s.periods)
            for (const auto& [subject, counts] : bucket.totals)
                sum += counts;
        for (const auto& [subject, counts] : s.pruned.totals)
            sum += counts;
        if (!(sum == h.total_added_))
            bad_state("/" + std::string(to_string(kind)), "periods and pruned add up to " + sum.to_string() +
                                                              " but /total_added is " +
                                                              h.total_added_.to_string());
    }
    // A smaller keep_* than when the file was written takes effect now.
    h.prune(PeriodKind::Day);
    h.prune(PeriodKind::Month);
    return h;
}

} // namespace nettally
