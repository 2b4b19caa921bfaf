// Accounting periods and history: see history.h for the period, clock-jump, conservation and
// memory rules. Time-zone math is done here from TZif data because GCC 12 has no std::chrono tzdb.
#include "core/history.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <system_error>

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

constexpr int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0)))
        --q;
    return q;
}

int64_t days_from_civil(int y, unsigned m, unsigned d) {
    return chr::sys_days{chr::year{y} / chr::month{m} / chr::day{d}}.time_since_epoch().count();
}

chr::year_month_day civil_from_days(int64_t days) {
    return chr::year_month_day{chr::sys_days{chr::days{days}}};
}

std::string in_quotes(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// ---- POSIX TZ rule parsing -------------------------------------------------------------------

class RuleCursor {
public:
    explicit RuleCursor(std::string_view rule) : rule_(rule) {}

    [[noreturn]] void fail(std::string_view problem) const {
        throw std::invalid_argument("POSIX TZ rule " + in_quotes(rule_) + ": " + std::string(problem) +
                                    " at offset " + std::to_string(pos_));
    }
    bool eof() const { return pos_ >= rule_.size(); }
    char peek() const { return eof() ? '\0' : rule_[pos_]; }
    bool accept(char c) {
        if (eof() || rule_[pos_] != c)
            return false;
        ++pos_;
        return true;
    }
    void expect(char c) {
        if (!accept(c))
            fail(std::string("expected '") + c + "'");
    }

    // A zone abbreviation: three or more letters, or <...> of letters, digits, '+' and '-'.
    void abbreviation() {
        size_t len = 0;
        if (accept('<')) {
            while (!eof() &&
                   (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '+' || peek() == '-')) {
                ++pos_;
                ++len;
            }
            expect('>');
        } else {
            while (!eof() && std::isalpha(static_cast<unsigned char>(peek()))) {
                ++pos_;
                ++len;
            }
        }
        if (len < 3)
            fail("expected a zone abbreviation (3 or more letters, or <...>)");
    }

    // Up to max_digits decimal digits; nullopt if there is none.
    std::optional<int> number(size_t max_digits) {
        size_t start = pos_;
        int value = 0;
        while (!eof() && pos_ - start < max_digits && std::isdigit(static_cast<unsigned char>(peek())))
            value = value * 10 + (rule_[pos_++] - '0');
        if (pos_ == start)
            return std::nullopt;
        return value;
    }

    int number_in(int lo, int hi, size_t max_digits, std::string_view what) {
        auto n = number(max_digits);
        if (!n || *n < lo || *n > hi)
            fail("expected " + std::string(what) + " " + std::to_string(lo) + ".." + std::to_string(hi));
        return *n;
    }

    // [+-]hh[:mm[:ss]] in seconds, hours up to max_hours.
    int32_t hms(int max_hours, std::string_view what) {
        int sign = 1;
        if (accept('-'))
            sign = -1;
        else
            accept('+');
        auto h = number(3);
        if (!h || *h > max_hours)
            fail("expected " + std::string(what) + " (hours 0.." + std::to_string(max_hours) + ")");
        int32_t seconds = *h * 3600;
        if (accept(':')) {
            seconds += number_in(0, 59, 2, "minutes") * 60;
            if (accept(':'))
                seconds += number_in(0, 59, 2, "seconds");
        }
        return sign * seconds;
    }

    std::string_view rest() const { return rule_.substr(std::min(pos_, rule_.size())); }

private:
    std::string_view rule_;
    size_t pos_ = 0;
};

} // namespace

// ---- TimeZone ----------------------------------------------------------------------------------

TimeZone::PosixRule TimeZone::parse_posix(std::string_view rule) {
    RuleCursor c(rule);
    PosixRule r;
    c.abbreviation();
    // POSIX offsets count hours west of Greenwich; ours count seconds east.
    const int32_t std_west = c.hms(24, "the standard time offset");
    r.std_offset = -std_west;
    if (c.eof())
        return r;
    c.abbreviation();
    r.has_dst = true;
    int32_t dst_west = std_west - 3600;
    if (!c.eof() && c.peek() != ',')
        dst_west = c.hms(24, "the DST offset");
    r.dst_offset = -dst_west;
    if (c.eof())
        c.fail("a DST zone needs explicit transition rules (,start[/time],end[/time])");
    auto date = [&c]() {
        RuleDate d;
        if (c.accept('J')) {
            d.form = RuleDate::Form::Julian1;
            d.n = c.number_in(1, 365, 3, "a Julian day");
        } else if (c.accept('M')) {
            d.form = RuleDate::Form::MonthWeekDay;
            d.month = c.number_in(1, 12, 2, "a month");
            c.expect('.');
            d.week = c.number_in(1, 5, 1, "a week");
            c.expect('.');
            d.weekday = c.number_in(0, 6, 1, "a weekday");
        } else {
            d.form = RuleDate::Form::Julian0;
            d.n = c.number_in(0, 365, 3, "a day of the year");
        }
        if (c.accept('/'))
            d.time_s = c.hms(167, "a transition time");
        return d;
    };
    c.expect(',');
    r.start = date();
    c.expect(',');
    r.end = date();
    if (!c.eof())
        c.fail("unexpected text " + in_quotes(c.rest()));
    return r;
}

int64_t TimeZone::RuleDate::day_in(int y) const {
    switch (form) {
    case Form::Julian1: // Jn: Feb 29 is never counted
        return days_from_civil(y, 1, 1) + n - 1 + (chr::year{y}.is_leap() && n >= 60 ? 1 : 0);
    case Form::Julian0: // n: zero-based, Feb 29 counted
        return days_from_civil(y, 1, 1) + n;
    case Form::MonthWeekDay:
        break;
    }
    const auto ym = chr::year{y} / chr::month{static_cast<unsigned>(month)};
    const chr::weekday wd{static_cast<unsigned>(weekday)};
    const chr::sys_days d = week == 5 ? chr::sys_days{ym / chr::weekday_last{wd}}
                                      : chr::sys_days{ym / wd[static_cast<unsigned>(week)]};
    return d.time_since_epoch().count();
}

int32_t TimeZone::PosixRule::offset_at(int64_t unix_s) const {
    if (!has_dst)
        return std_offset;
    // Transition times may be up to 167 h away from their date, so the transitions of the
    // neighbouring years are candidates too; the latest one not after unix_s decides.
    const int y = static_cast<int>(civil_from_days(floor_div(unix_s + std_offset, kSecPerDay)).year());
    bool found = false;
    bool in_dst = false;
    int64_t best = 0;
    auto consider = [&](int64_t at, bool to_dst) {
        // On a tie (a rule like "0/0,J365/25", DST all year) the start wins.
        if (at <= unix_s && (!found || at > best || (at == best && to_dst))) {
            found = true;
            best = at;
            in_dst = to_dst;
        }
    };
    for (int yy = y - 1; yy <= y + 1; ++yy) {
        consider(end.day_in(yy) * kSecPerDay + end.time_s - dst_offset, false);
        consider(start.day_in(yy) * kSecPerDay + start.time_s - std_offset, true);
    }
    return in_dst ? dst_offset : std_offset;
}

TimeZone TimeZone::utc() {
    TimeZone z;
    z.name_ = "UTC";
    return z;
}

TimeZone TimeZone::fixed(int32_t offset_s) {
    if (offset_s <= -kSecPerDay || offset_s >= kSecPerDay)
        throw std::invalid_argument("fixed UTC offset out of range: " + std::to_string(offset_s) + " s");
    TimeZone z;
    const int32_t a = offset_s < 0 ? -offset_s : offset_s;
    char buf[32];
    std::snprintf(buf, sizeof buf, "UTC%c%02d:%02d", offset_s < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
    z.name_ = buf;
    if (a % 60 != 0)
        z.name_ += ":" + std::to_string(a % 60);
    z.initial_offset_ = offset_s;
    return z;
}

TimeZone TimeZone::from_posix_rule(std::string_view rule) {
    TimeZone z;
    z.name_ = std::string(rule);
    z.rule_ = parse_posix(rule);
    return z;
}

TimeZone TimeZone::from_tzif(std::string name, std::string_view data) {
    auto fail = [&name](const std::string& problem) -> std::invalid_argument {
        return std::invalid_argument("time zone " + in_quotes(name) + ": " + problem);
    };
    size_t pos = 0;
    auto need = [&](uint64_t n, const char* what) {
        if (data.size() - pos < n)
            throw fail(std::string("truncated TZif data (") + what + ")");
    };
    auto u8 = [&]() { return static_cast<uint8_t>(data[pos++]); };
    auto be32 = [&]() {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i)
            v = v << 8 | u8();
        return v;
    };
    auto be64 = [&]() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i)
            v = v << 8 | u8();
        return static_cast<int64_t>(v);
    };
    struct Header {
        char version;
        uint64_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
    };
    auto header = [&]() {
        need(44, "header");
        if (data.substr(pos, 4) != "TZif")
            throw fail("not a TZif file (bad magic)");
        pos += 4;
        Header h{};
        h.version = static_cast<char>(u8());
        if (h.version != '\0' && (h.version < '2' || h.version > '4'))
            throw fail("unsupported TZif version");
        pos += 15;
        h.isutcnt = be32();
        h.isstdcnt = be32();
        h.leapcnt = be32();
        h.timecnt = be32();
        h.typecnt = be32();
        h.charcnt = be32();
        return h;
    };
    auto block_size = [](const Header& h, uint64_t time_size) {
        return h.timecnt * time_size + h.timecnt + h.typecnt * 6 + h.charcnt + h.leapcnt * (time_size + 4) +
               h.isstdcnt + h.isutcnt;
    };

    Header h = header();
    uint64_t time_size = 4;
    if (h.version != '\0') {
        // Version 2+: skip the 32-bit block, use the 64-bit one that follows.
        need(block_size(h, 4), "version 1 data");
        pos += block_size(h, 4);
        h = header();
        time_size = 8;
    }
    if (h.typecnt == 0 || h.typecnt > 256)
        throw fail("bad local time type count");
    if ((h.isstdcnt != 0 && h.isstdcnt != h.typecnt) || (h.isutcnt != 0 && h.isutcnt != h.typecnt))
        throw fail("bad standard/UT indicator count");
    if (h.leapcnt != 0)
        throw fail("leap-second records are not supported (a right/ zone? unix time has no leap seconds)");
    need(block_size(h, time_size), "data block");

    TimeZone z;
    z.name_ = std::move(name);
    std::vector<int64_t> at(h.timecnt);
    for (size_t i = 0; i < at.size(); ++i) {
        at[i] = time_size == 8 ? be64() : static_cast<int64_t>(static_cast<int32_t>(be32()));
        if (i > 0 && at[i] <= at[i - 1])
            throw fail("transition times are not increasing");
    }
    std::vector<uint8_t> type_index(h.timecnt);
    for (auto& i : type_index) {
        i = u8();
        if (i >= h.typecnt)
            throw fail("transition refers to a missing local time type");
    }
    std::vector<int32_t> utoff(h.typecnt);
    for (auto& off : utoff) {
        off = static_cast<int32_t>(be32());
        const uint8_t isdst = u8();
        const uint8_t abbr = u8();
        if (off <= -kSecPerDay || off >= kSecPerDay || isdst > 1 || abbr >= h.charcnt)
            throw fail("bad local time type");
    }
    pos += h.charcnt + h.isstdcnt + h.isutcnt; // abbreviations and indicators: not needed

    if (h.version != '\0') {
        need(1, "footer");
        if (data[pos] != '\n')
            throw fail("bad footer");
        const size_t end = data.find('\n', pos + 1);
        if (end == std::string_view::npos || end + 1 != data.size())
            throw fail("bad footer");
        const std::string_view footer = data.substr(pos + 1, end - pos - 1);
        if (!footer.empty()) {
            try {
                z.rule_ = parse_posix(footer);
            } catch (const std::invalid_argument& e) {
                throw fail(std::string("footer: ") + e.what());
            }
        }
    } else if (pos != data.size()) {
        throw fail("trailing data after the version 1 block");
    }

    z.initial_offset_ = utoff[0];
    z.transition_at_ = std::move(at);
    z.transition_offset_.reserve(type_index.size());
    for (uint8_t i : type_index)
        z.transition_offset_.push_back(utoff[i]);
    return z;
}

TimeZone TimeZone::load(std::string_view name, const std::filesystem::path& zoneinfo_dir) {
    if (name == "UTC")
        return utc();
    const std::string shown = in_quotes(name);
    if (name.starts_with("UTC+") || name.starts_with("UTC-")) {
        auto digit = [&](size_t i) { return i < name.size() && name[i] >= '0' && name[i] <= '9'; };
        if (name.size() != 9 || !digit(4) || !digit(5) || name[6] != ':' || !digit(7) || !digit(8))
            throw std::invalid_argument("time zone " + shown +
                                        ": a fixed offset is written UTC+hh:mm or UTC-hh:mm");
        const int hh = (name[4] - '0') * 10 + (name[5] - '0');
        const int mm = (name[7] - '0') * 10 + (name[8] - '0');
        if (hh > 23 || mm > 59)
            throw std::invalid_argument("time zone " + shown +
                                        ": offset out of range (hh 00..23, mm 00..59)");
        return fixed((name[3] == '-' ? -1 : 1) * (hh * 3600 + mm * 60));
    }

    // An IANA name: path segments of safe characters, so it cannot leave zoneinfo_dir.
    bool ok = !name.empty() && name.size() <= 255 && name.front() != '/' && name.back() != '/';
    for (char ch : name)
        ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' || ch == '-' ||
                    ch == '+' || ch == '.');
    for (size_t start = 0; ok && start <= name.size();) {
        const size_t slash = std::min(name.find('/', start), name.size());
        const std::string_view segment = name.substr(start, slash - start);
        ok = !segment.empty() && segment != "." && segment != "..";
        start = slash + 1;
    }
    if (!ok)
        throw std::invalid_argument("time zone " + shown +
                                    ": not a zone name (expected UTC, UTC+hh:mm, UTC-hh:mm or an IANA name "
                                    "such as Europe/Berlin)");

    // The one place this module touches the file system.
    const std::filesystem::path path = zoneinfo_dir / std::string(name);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw std::invalid_argument("time zone " + shown + ": no such zone (" + path.string() +
                                    " is missing; named zones need the system tzdata)");
    std::ifstream in(path, std::ios::binary);
    std::string data;
    constexpr size_t kMaxTzifBytes = 1 << 20;
    if (in) {
        data.resize(kMaxTzifBytes + 1);
        in.read(data.data(), static_cast<std::streamsize>(data.size()));
        data.resize(static_cast<size_t>(in.gcount()));
    }
    if (!in && !in.eof()) {
        const int err = errno;
        throw std::invalid_argument("time zone " + shown + ": cannot read " + path.string() + ": " +
                                    (err != 0 ? std::strerror(err) : "I/O error"));
    }
    if (data.size() > kMaxTzifBytes)
        throw std::invalid_argument("time zone " + shown + ": " + path.string() +
                                    " is too large for a TZif file");
    return from_tzif(std::string(name), data);
}

int32_t TimeZone::offset_at(int64_t unix_s) const {
    if (transition_at_.empty())
        return rule_ ? rule_->offset_at(unix_s) : initial_offset_;
    if (unix_s < transition_at_.front())
        return initial_offset_;
    const auto it = std::upper_bound(transition_at_.begin(), transition_at_.end(), unix_s);
    const size_t i = static_cast<size_t>(it - transition_at_.begin()) - 1;
    // RFC 8536: the footer rule governs everything from the last transition on.
    if (i + 1 == transition_at_.size() && rule_)
        return rule_->offset_at(unix_s);
    return transition_offset_[i];
}

int64_t TimeZone::local_to_unix(int64_t local_s) const {
    // Real offsets are under a day, so the instant lies within a day of local_s read as UTC; the
    // offsets a day either side are the candidates (zones never change twice within two days).
    const int32_t before = offset_at(local_s - kSecPerDay);
    const int32_t after = offset_at(local_s + kSecPerDay);
    const int64_t t_before = local_s - before;
    const int64_t t_after = local_s - after;
    const bool valid_before = offset_at(t_before) == before;
    const bool valid_after = offset_at(t_after) == after;
    if (valid_before && valid_after)
        return std::min(t_before, t_after); // repeated wall time: the earlier instant
    if (valid_before)
        return t_before;
    if (valid_after)
        return t_after;
    // In a gap: the first instant whose wall time is at or past local_s is where the gap ends.
    int64_t lo = std::min(t_before, t_after);
    int64_t hi = std::max(t_before, t_after);
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (mid + offset_at(mid) >= local_s)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

// ---- periods -------------------------------------------------------------------------------

std::string_view to_string(PeriodKind kind) {
    return kind == PeriodKind::Day ? "day" : "month";
}

std::optional<PeriodKind> parse_period_kind(std::string_view text) {
    if (text == "day")
        return PeriodKind::Day;
    if (text == "month")
        return PeriodKind::Month;
    return std::nullopt;
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
