// Accounting periods and their history: per subject (an interface direction, a host direction, a
// flow aggregate...) the traffic of each calendar day and each accounting month, in a configured
// time zone, kept for a configured number of periods. The daemon feeds it at every poll with the
// delta since the previous poll and the wall-clock time; it never reads a clock itself. Pure: the
// only I/O is TimeZone::load reading one tzdata file, once, when a History is built.
//
// Time zones: core/time_zone.h ("UTC", "UTC+hh:mm", IANA names from the system tzdata).
//
// Periods. A day runs from local midnight to the next local midnight, so it lasts 23 or 25 hours
// on DST change days. A month runs from 00:00 local on its month_start_day (1..28) to the same day
// of the next month. Where local midnight does not exist (a DST gap at 00:00) the period starts at
// the first instant after the gap; where it exists twice, at the earlier one. Labels: "2026-11-24"
// for days, "2026-11" for months, the year-month in which the period starts (with month_start_day
// 15, "2026-11" runs from 2026-11-15 to 2026-12-15).
//
// Clock jumps. A delta is never put into a period older than the latest one already open, and a
// period in the past is never created:
//   - time at or after the latest period: the delta goes into the period containing that time,
//     created if needed. A jump of several days forward leaves the days in between absent
//     (implicitly empty), and may prune everything else.
//   - time before the latest period (NTP stepped the clock back, RTC wrong at boot): the delta goes
//     into the latest period, which thus also collects traffic until the clock catches up with it.
// Consequence worth knowing: a clock that was once far in the future (bad RTC, then NTP) keeps
// feeding that future period until real time reaches it; that period is visible in periods() and
// the operator can see it. Counting never stops and nothing is lost either way.
//
// Conservation. Nothing is ever dropped: a pruned period's totals move into pruned(kind), per
// subject, so for each kind  sum of periods(kind) + sum of pruned(kind) == total_added(), the sum of
// every delta ever added (checked again by from_json). A period's totals never decrease.
//
// Memory bound. A period (and each pruned map) holds at most max_subjects subjects. The delta of a
// new subject beyond that goes to an overflow subject derived from its name, so the class and
// direction survive: "host:aa:bb:..|198.18.1.2:sent" -> "host:other:sent" (first and last
// ':'-separated segments), "iface:lan0" -> "iface:other", "x" -> "other". At most
// kMaxOverflowSubjects such class buckets exist per period; after that, "other". Names that map to
// themselves ("other", "a:other", "a:other:b") are the overflow buckets: do not use them for real
// subjects. A period therefore holds at most max_subjects + kMaxOverflowSubjects + 1 subjects.
#pragma once

#include "core/counters.h"
#include "core/time_zone.h"

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

enum class PeriodKind : uint8_t { Day, Month };
std::string_view to_string(PeriodKind kind);
// "day" or "month".
std::optional<PeriodKind> parse_period_kind(std::string_view text);

struct PeriodSpec {
    int month_start_day = 1;       // 1..28
    std::string time_zone = "UTC"; // see TimeZone::load
    size_t keep_days = 62;         // 1..36600, the latest day included
    size_t keep_months = 24;       // 1..1200, the latest month included
    size_t max_subjects = 10000;   // per period, >= 1; see the memory bound above
    std::filesystem::path zoneinfo_dir = "/usr/share/zoneinfo";
};

class History {
public:
    using Totals = std::map<std::string, Counts, std::less<>>;

    static constexpr size_t kMaxOverflowSubjects = 32;

    // Validates spec and loads spec.time_zone. Throws std::invalid_argument with the reason.
    explicit History(PeriodSpec spec);
    // With a zone the caller already loaded (e.g. when validating a config); spec.time_zone is
    // replaced by zone.name() and zoneinfo_dir is unused.
    History(PeriodSpec spec, TimeZone zone);

    // Attributes delta to subject in the day and the month that unix_us (microseconds since the
    // epoch, wall clock) falls in, following the clock-jump rule above. A zero delta changes
    // nothing. Throws std::invalid_argument for an empty subject and std::out_of_range for a time
    // outside 1900-01-01 .. 9999-01-01 UTC, before changing anything.
    void add(std::string_view subject, const Counts& delta, int64_t unix_us);

    struct Period {
        PeriodKind kind = PeriodKind::Day;
        std::string label;
        int64_t start_us = 0; // inclusive
        int64_t end_us = 0;   // exclusive: the next period's start
        Totals totals;
        bool operator==(const Period&) const = default;
    };
    // Kept periods, oldest first; only periods that received traffic exist.
    std::vector<Period> periods(PeriodKind kind) const;
    // The period unix_us falls in by the calendar (no clock-jump rule), with its totals if kept.
    // Throws std::out_of_range like add.
    Period period_at(PeriodKind kind, int64_t unix_us) const;
    // Totals of periods removed by retention, per subject (bounded like a period).
    const Totals& pruned(PeriodKind kind) const { return series_[index(kind)].pruned.totals; }
    // Sum of every delta ever added, over all subjects. It adds up different views of the same
    // traffic (interfaces, hosts, flows), so it is a conservation checksum, not a traffic figure.
    const Counts& total_added() const { return total_added_; }

    const PeriodSpec& spec() const { return spec_; }
    const TimeZone& zone() const { return zone_; }

    // State for the state file; from_json(to_json(h), same spec) reproduces h exactly. Periods are
    // stored by label, so a changed time zone or month_start_day applies from then on: stored
    // periods keep their labels and report boundaries under the new rule. A smaller keep_* prunes
    // on load (into pruned, nothing lost). Throws std::runtime_error("history state: <json
    // pointer>: <problem>") on malformed input, and std::invalid_argument for a bad spec.
    nlohmann::json to_json() const;
    static History from_json(const nlohmann::json& j, PeriodSpec spec);
    static History from_json(const nlohmann::json& j, PeriodSpec spec, TimeZone zone);

private:
    struct Bucket {
        Totals totals;
        size_t regular = 0;  // subjects counted against max_subjects
        size_t overflow = 0; // class overflow subjects counted against kMaxOverflowSubjects
    };
    // Where a time falls: the period key (local day number since 1970-01-01, or year * 12 +
    // month - 1) and its bounds.
    struct Span {
        int64_t key = 0;
        int64_t start_us = 0;
        int64_t end_us = 0;
    };
    struct Series {
        std::map<int64_t, Bucket> periods;
        Bucket pruned;
        std::optional<Span> cache; // the span of the last add, to skip zone math at every poll
    };

    static constexpr size_t index(PeriodKind kind) { return kind == PeriodKind::Day ? 0 : 1; }
    Span locate(PeriodKind kind, int64_t unix_us) const;
    int64_t day_start_us(int64_t day) const;
    int64_t period_start_us(PeriodKind kind, int64_t key) const;
    Period make_period(PeriodKind kind, int64_t key, const Bucket* bucket) const;
    void prune(PeriodKind kind);
    void add_to(Bucket& bucket, std::string_view subject, const Counts& delta) const;
    static void load_series(const nlohmann::json& j, PeriodKind kind, History& h);

    PeriodSpec spec_;
    TimeZone zone_;
    std::array<Series, 2> series_;
    Counts total_added_;
};

// The overflow subject a subject falls back to (see the memory bound above).
std::string overflow_subject(std::string_view subject);

} // namespace nettally
