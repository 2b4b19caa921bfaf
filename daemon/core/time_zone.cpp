// Time-zone math from TZif data and POSIX TZ rules. See time_zone.h.
#include "core/time_zone.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace nettally {
namespace {

namespace chr = std::chrono;
using civil::civil_from_days;
using civil::days_from_civil;
using civil::floor_div;

constexpr int64_t kSecPerDay = 86400;

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

// ---- TZif (RFC 8536) reading ----------------------------------------------------------------

struct TzifHeader {
    char version;
    uint64_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
    // Bytes of the data block that follows this header, with transition times of time_size bytes.
    uint64_t block_size(uint64_t time_size) const {
        return timecnt * time_size + timecnt + typecnt * 6 + charcnt + leapcnt * (time_size + 4) + isstdcnt +
               isutcnt;
    }
};

// Big-endian reads over TZif bytes; every problem an std::invalid_argument naming the zone.
class TzifCursor {
public:
    TzifCursor(const std::string& name, std::string_view data) : name_(name), data_(data) {}

    std::invalid_argument fail(const std::string& problem) const {
        return std::invalid_argument("time zone " + in_quotes(name_) + ": " + problem);
    }
    void need(uint64_t n, const char* what) const {
        if (data_.size() - pos_ < n)
            throw fail(std::string("truncated TZif data (") + what + ")");
    }
    void skip(uint64_t n, const char* what) {
        need(n, what);
        pos_ += n;
    }
    bool at_end() const { return pos_ == data_.size(); }
    uint8_t u8() { return static_cast<uint8_t>(data_[pos_++]); }
    uint32_t be32() {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i)
            v = v << 8 | u8();
        return v;
    }
    int64_t be64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i)
            v = v << 8 | u8();
        return static_cast<int64_t>(v);
    }
    TzifHeader header() {
        need(44, "header");
        if (data_.substr(pos_, 4) != "TZif")
            throw fail("not a TZif file (bad magic)");
        pos_ += 4;
        TzifHeader h{};
        h.version = static_cast<char>(u8());
        if (h.version != '\0' && (h.version < '2' || h.version > '4'))
            throw fail("unsupported TZif version");
        pos_ += 15;
        h.isutcnt = be32();
        h.isstdcnt = be32();
        h.leapcnt = be32();
        h.timecnt = be32();
        h.typecnt = be32();
        h.charcnt = be32();
        return h;
    }
    // Version 2+: the POSIX TZ rule between two newlines that end the file.
    std::string_view footer() {
        need(1, "footer");
        if (data_[pos_] != '\n')
            throw fail("bad footer");
        const size_t end = data_.find('\n', pos_ + 1);
        if (end == std::string_view::npos || end + 1 != data_.size())
            throw fail("bad footer");
        return data_.substr(pos_ + 1, end - pos_ - 1);
    }

private:
    const std::string& name_;
    std::string_view data_;
    size_t pos_ = 0;
};

// The one place this module touches the file system: the compiled tzdata (TZif) file of a zone.
std::string read_zoneinfo_file(const std::filesystem::path& path, const std::string& shown) {
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
    return data;
}

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
    TzifCursor in(name, data);
    TzifHeader h = in.header();
    uint64_t time_size = 4;
    if (h.version != '\0') {
        // Version 2+: skip the 32-bit block, use the 64-bit one that follows.
        in.skip(h.block_size(4), "version 1 data");
        h = in.header();
        time_size = 8;
    }
    if (h.typecnt == 0 || h.typecnt > 256)
        throw in.fail("bad local time type count");
    if ((h.isstdcnt != 0 && h.isstdcnt != h.typecnt) || (h.isutcnt != 0 && h.isutcnt != h.typecnt))
        throw in.fail("bad standard/UT indicator count");
    if (h.leapcnt != 0)
        throw in.fail("leap-second records are not supported (a right/ zone? unix time has no leap seconds)");
    in.need(h.block_size(time_size), "data block");

    TimeZone z;
    z.name_ = name; // a copy: `in` names the zone in its errors
    std::vector<int64_t> at(h.timecnt);
    for (size_t i = 0; i < at.size(); ++i) {
        at[i] = time_size == 8 ? in.be64() : static_cast<int64_t>(static_cast<int32_t>(in.be32()));
        if (i > 0 && at[i] <= at[i - 1])
            throw in.fail("transition times are not increasing");
    }
    std::vector<uint8_t> type_index(h.timecnt);
    for (auto& i : type_index) {
        i = in.u8();
        if (i >= h.typecnt)
            throw in.fail("transition refers to a missing local time type");
    }
    std::vector<int32_t> utoff(h.typecnt);
    for (auto& off : utoff) {
        off = static_cast<int32_t>(in.be32());
        const uint8_t isdst = in.u8();
        const uint8_t abbr = in.u8();
        if (off <= -kSecPerDay || off >= kSecPerDay || isdst > 1 || abbr >= h.charcnt)
            throw in.fail("bad local time type");
    }
    in.skip(h.charcnt + h.isstdcnt + h.isutcnt, "data block"); // abbreviations and indicators: not needed

    if (h.version != '\0') {
        const std::string_view footer = in.footer();
        if (!footer.empty()) {
            try {
                z.rule_ = parse_posix(footer);
            } catch (const std::invalid_argument& e) {
                throw in.fail(std::string("footer: ") + e.what());
            }
        }
    } else if (!in.at_end()) {
        throw in.fail("trailing data after the version 1 block");
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

    return from_tzif(std::string(name), read_zoneinfo_file(zoneinfo_dir / std::string(name), shown));
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

} // namespace nettally
