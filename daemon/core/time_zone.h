// Time zones: the UTC offset in effect at an instant, and the instant a local wall time begins.
// Pure but for TimeZone::load, which reads one tzdata file through read_zoneinfo_file, once.
//
// Time zones. GCC 12's libstdc++ has the C++20 calendar types (year_month_day, weekday_last...) but
// not the tzdb: std::chrono::locate_zone / zoned_time are not declared in <chrono> and
// libstdc++.so.6 exports no tzdb symbol (GCC 13 added them). TZ=... with localtime_r would
// be global state. So TimeZone below reads the system's compiled tzdata (TZif, RFC 8536) itself,
// including the POSIX TZ rule in its footer that covers instants after the last listed transition
// (slim tzdata lists only a few). Accepted names: "UTC"; fixed offsets "UTC+hh:mm" / "UTC-hh:mm"
// (ISO 8601 sign: UTC+02:00 is two hours ahead of UTC, unlike POSIX TZ and Etc/GMT-2); any IANA
// name ("Europe/Berlin"), read from zoneinfo_dir (default /usr/share/zoneinfo; TZDIR is not
// consulted: environment is global state). Named zones therefore need the tzdata package.
//
// Why not Howard Hinnant's date/tz (Debian libhowardhinnant-date-dev 3.0.1, USE_OS_TZDB): it ignores
// the TZif footer rule, so with Debian 12's tzdata it reports Europe/Berlin summer 2038 as +01:00 and
// Europe/Dublin summer 2050 as +00:00 (README "Time zones" has the measurement); it also reads only
// a fixed zoneinfo directory into process-global state and cannot build a zone from TZif bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// Calendar arithmetic on days since 1970-01-01 (proleptic Gregorian), shared by TimeZone and History.
namespace civil {
constexpr int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0)))
        --q;
    return q;
}
inline int64_t days_from_civil(int y, unsigned m, unsigned d) {
    namespace chr = std::chrono;
    return chr::sys_days{chr::year{y} / chr::month{m} / chr::day{d}}.time_since_epoch().count();
}
inline std::chrono::year_month_day civil_from_days(int64_t days) {
    namespace chr = std::chrono;
    return chr::year_month_day{chr::sys_days{chr::days{days}}};
}
} // namespace civil

// UTC offsets of one time zone over time. Immutable and cheap to copy around once built.
class TimeZone {
public:
    // "UTC", "UTC+hh:mm" / "UTC-hh:mm" (hh 00..23, mm 00..59), or an IANA name read from
    // zoneinfo_dir/<name>. Throws std::invalid_argument naming the zone and the problem.
    static TimeZone load(std::string_view name, const std::filesystem::path& zoneinfo_dir);

    static TimeZone utc();
    // offset_s: seconds east of UTC (local = UTC + offset), |offset_s| < 24 h.
    static TimeZone fixed(int32_t offset_s);
    // A POSIX TZ rule as in a TZif footer, e.g. "CET-1CEST,M3.5.0,M10.5.0/3" (with RFC 8536's
    // rule times -167..167 h). A DST name needs explicit rules. Throws std::invalid_argument.
    static TimeZone from_posix_rule(std::string_view rule);
    // Parses the bytes of a TZif file (versions 1..4). Files with leap-second records ("right/"
    // zones) are rejected: unix time has no leap seconds. Throws std::invalid_argument.
    static TimeZone from_tzif(std::string name, std::string_view data);

    const std::string& name() const { return name_; }
    // Seconds east of UTC in effect at the instant unix_s.
    int32_t offset_at(int64_t unix_s) const;
    // The earliest instant whose local wall time is local_s ("seconds since 1970-01-01 00:00 local"),
    // or, when local_s falls in a DST gap, the instant the gap ends.
    int64_t local_to_unix(int64_t local_s) const;

private:
    struct RuleDate {
        enum class Form : uint8_t { Julian1, Julian0, MonthWeekDay } form = Form::Julian0;
        int n = 0;       // Jn: 1..365 (Feb 29 never counted); n: 0..365
        int month = 0;   // Mm.w.d
        int week = 0;    // 1..5, 5 = last
        int weekday = 0; // 0 = Sunday
        int32_t time_s = 7200;
        int64_t day_in(int year) const; // days since 1970-01-01 of this date in that year
    };
    struct PosixRule {
        int32_t std_offset = 0; // seconds east
        bool has_dst = false;
        int32_t dst_offset = 0;
        RuleDate start, end;
        int32_t offset_at(int64_t unix_s) const;
    };
    static PosixRule parse_posix(std::string_view rule);

    std::string name_;
    std::vector<int64_t> transition_at_;     // unix seconds, strictly increasing
    std::vector<int32_t> transition_offset_; // offset from transition_at_[i] on
    int32_t initial_offset_ = 0;             // before the first transition (or always)
    std::optional<PosixRule> rule_;          // after the last transition (or always)
};

} // namespace nettally
