// Unit tests for accounting periods and history: time-zone math (fixed offsets, POSIX rules, TZif
// parsing, the system's tzdata when present), day and month boundaries, the clock-jump rule,
// retention with the conservation check, the subject bound, and the state file round trip and
// its rejections. Tests that need /usr/share/zoneinfo are skipped, not passed, when it is absent.
#include "core/history.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <gtest/gtest.h>
#include <set>

using namespace nettally;

namespace {

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 86400;
const std::filesystem::path kZoneinfo = "/usr/share/zoneinfo";

// Unix seconds of a UTC date and time.
int64_t utc_s(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    using namespace std::chrono;
    return sys_seconds{sys_days{year{y} / month{mo} / day{d}}}.time_since_epoch().count() + h * kHour +
           mi * 60 + s;
}
int64_t utc_us(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    return utc_s(y, mo, d, h, mi, s) * 1'000'000;
}
// "Local seconds" of a wall time: the same arithmetic, read in the zone.
int64_t local_s(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    return utc_s(y, mo, d, h, mi, s);
}

// Linear in n, so c(a) + c(b) == c(a + b) and sums are easy to state exactly.
Counts c(uint64_t n) {
    return Counts(n, 100 * n, 80 * n, 60 * n, 40 * n);
}

::testing::AssertionResult has_substr(const char*, const char*, const std::string& text,
                                      const std::string& part) {
    if (text.find(part) != std::string::npos)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << text << "\"\n  does not contain \"" << part << "\"";
}
#define EXPECT_HAS(text, part) EXPECT_PRED_FORMAT2(has_substr, text, part)

bool have_zone(const std::string& name) {
    return std::filesystem::is_regular_file(kZoneinfo / name);
}

PeriodSpec spec(std::string tz = "UTC", int month_start_day = 1, size_t keep_days = 62,
                size_t keep_months = 24, size_t max_subjects = 10000) {
    PeriodSpec s;
    s.time_zone = std::move(tz);
    s.month_start_day = month_start_day;
    s.keep_days = keep_days;
    s.keep_months = keep_months;
    s.max_subjects = max_subjects;
    return s;
}

std::vector<std::string> labels(const History& h, PeriodKind kind) {
    std::vector<std::string> out;
    for (const auto& p : h.periods(kind))
        out.push_back(p.label);
    return out;
}

Counts sum_all(const History& h, PeriodKind kind) {
    Counts sum;
    for (const auto& p : h.periods(kind))
        for (const auto& [subject, counts] : p.totals)
            sum += counts;
    for (const auto& [subject, counts] : h.pruned(kind))
        sum += counts;
    return sum;
}

// The conservation invariant, for both kinds, against the caller's own sum of every delta.
void expect_conserved(const History& h, const Counts& added) {
    EXPECT_EQ(h.total_added(), added);
    EXPECT_EQ(sum_all(h, PeriodKind::Day), added) << "days + pruned days";
    EXPECT_EQ(sum_all(h, PeriodKind::Month), added) << "months + pruned months";
}

template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}

// ---- TZif bytes, built by hand --------------------------------------------------------------

std::string be(uint64_t v, int bytes) {
    std::string s(static_cast<size_t>(bytes), '\0');
    for (int i = 0; i < bytes; ++i)
        s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
    return s;
}

struct TzType {
    int32_t utoff;
    uint8_t isdst;
    uint8_t abbr;
};

std::string tzif_header(char version, uint32_t leap, uint32_t times, uint32_t types, uint32_t chars) {
    return std::string("TZif") + version + std::string(15, '\0') + be(0, 4) + be(0, 4) + be(leap, 4) +
           be(times, 4) + be(types, 4) + be(chars, 4);
}

std::string tzif_block(const std::vector<int64_t>& at, const std::vector<uint8_t>& idx,
                       const std::vector<TzType>& types, const std::string& chars, int time_size,
                       uint32_t leap = 0) {
    std::string s;
    for (int64_t t : at)
        s += be(static_cast<uint64_t>(t), time_size);
    for (uint8_t i : idx)
        s += static_cast<char>(i);
    for (const auto& t : types)
        s += be(static_cast<uint32_t>(t.utoff), 4) + static_cast<char>(t.isdst) + static_cast<char>(t.abbr);
    s += chars;
    s += std::string(leap * static_cast<uint32_t>(time_size + 4), '\0');
    return s;
}

// A version 2 file: minimal version 1 block (as zic -b slim writes), then the real data and footer.
std::string tzif_v2(const std::vector<int64_t>& at, const std::vector<uint8_t>& idx,
                    const std::vector<TzType>& types, const std::string& chars, const std::string& footer,
                    uint32_t leap = 0) {
    std::string s = tzif_header('2', 0, 0, 1, 1) + tzif_block({}, {}, {{0, 0, 0}}, std::string(1, '\0'), 4);
    s += tzif_header('2', leap, static_cast<uint32_t>(at.size()), static_cast<uint32_t>(types.size()),
                     static_cast<uint32_t>(chars.size()));
    s += tzif_block(at, idx, types, chars, 8, leap);
    return s + "\n" + footer + "\n";
}

const std::string kLmtCet("LMT\0CET\0CEST\0", 13);

// ---- TimeZone ---------------------------------------------------------------------------------

TEST(TimeZone, UtcAndFixedOffsetsNeedNoTzdata) {
    const auto utc = TimeZone::load("UTC", "/nonexistent");
    EXPECT_EQ(utc.name(), "UTC");
    EXPECT_EQ(utc.offset_at(utc_s(2026, 7, 1)), 0);
    EXPECT_EQ(utc.local_to_unix(local_s(2026, 7, 1)), utc_s(2026, 7, 1));

    const auto east = TimeZone::load("UTC+02:00", "/nonexistent");
    EXPECT_EQ(east.name(), "UTC+02:00");
    EXPECT_EQ(east.offset_at(utc_s(2026, 1, 1)), 7200);
    EXPECT_EQ(east.local_to_unix(local_s(2026, 11, 25)), utc_s(2026, 11, 24, 22));

    const auto west = TimeZone::load("UTC-05:30", "/nonexistent");
    EXPECT_EQ(west.offset_at(utc_s(2026, 1, 1)), -19800);
    EXPECT_EQ(west.local_to_unix(local_s(2026, 11, 25)), utc_s(2026, 11, 25, 5, 30));
    EXPECT_EQ(TimeZone::fixed(-19800).name(), "UTC-05:30");
}

TEST(TimeZone, RejectsBadNames) {
    auto err = [](const std::string& name) { return error_of([&] { TimeZone::load(name, kZoneinfo); }); };
    EXPECT_HAS(err("UTC+2"), ("a fixed offset is written UTC+hh:mm or UTC-hh:mm"));
    EXPECT_HAS(err("UTC+24:00"), ("offset out of range"));
    EXPECT_HAS(err("UTC-02:60"), ("offset out of range"));
    EXPECT_HAS(err("../../etc/passwd"), ("not a zone name"));
    EXPECT_HAS(err("/etc/passwd"), ("not a zone name"));
    EXPECT_HAS(err("Europe/../Europe/Berlin"), ("not a zone name"));
    EXPECT_HAS(err("Europe//Berlin"), ("not a zone name"));
    EXPECT_HAS(err(""), ("not a zone name"));
    EXPECT_HAS(err("Europe/Berlin "), ("not a zone name"));
    EXPECT_EQ(err("Mars/Olympus_Mons"), "time zone \"Mars/Olympus_Mons\": no such zone (/usr/share/zoneinfo/"
                                        "Mars/Olympus_Mons is missing; named zones need the system tzdata)");
}

TEST(TimeZone, PosixRuleBerlin) {
    const auto z = TimeZone::from_posix_rule("CET-1CEST,M3.5.0,M10.5.0/3");
    EXPECT_EQ(z.offset_at(utc_s(2026, 3, 29, 0, 59, 59)), 3600);
    EXPECT_EQ(z.offset_at(utc_s(2026, 3, 29, 1)), 7200);
    EXPECT_EQ(z.offset_at(utc_s(2026, 10, 25, 0, 59, 59)), 7200);
    EXPECT_EQ(z.offset_at(utc_s(2026, 10, 25, 1)), 3600);
    EXPECT_EQ(z.local_to_unix(local_s(2026, 3, 29)), utc_s(2026, 3, 28, 23));
    EXPECT_EQ(z.local_to_unix(local_s(2026, 3, 30)), utc_s(2026, 3, 29, 22));
    // 02:30 does not exist on 2026-03-29: the gap ends at 01:00Z (03:00 CEST).
    EXPECT_EQ(z.local_to_unix(local_s(2026, 3, 29, 2, 30)), utc_s(2026, 3, 29, 1));
    // 02:30 happens twice on 2026-10-25: the earlier one (CEST) is 00:30Z.
    EXPECT_EQ(z.local_to_unix(local_s(2026, 10, 25, 2, 30)), utc_s(2026, 10, 25, 0, 30));
}

TEST(TimeZone, PosixRuleSouthernNegativeTimesAndJulianDays) {
    const auto sydney = TimeZone::from_posix_rule("AEST-10AEDT,M10.1.0,M4.1.0/3");
    EXPECT_EQ(sydney.offset_at(utc_s(2026, 1, 15)), 39600);
    EXPECT_EQ(sydney.offset_at(utc_s(2026, 7, 15)), 36000);
    EXPECT_EQ(sydney.offset_at(utc_s(2026, 4, 4, 15, 59, 59)), 39600);
    EXPECT_EQ(sydney.offset_at(utc_s(2026, 4, 4, 16)), 36000);
    EXPECT_EQ(sydney.offset_at(utc_s(2026, 10, 3, 15, 59, 59)), 36000);
    EXPECT_EQ(sydney.offset_at(utc_s(2026, 10, 3, 16)), 39600);

    // America/Nuuk's footer: transitions at -1:00 and 0:00 local time.
    const auto nuuk = TimeZone::from_posix_rule("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    EXPECT_EQ(nuuk.offset_at(utc_s(2026, 3, 29, 0, 59, 59)), -7200);
    EXPECT_EQ(nuuk.offset_at(utc_s(2026, 3, 29, 1)), -3600);
    EXPECT_EQ(nuuk.offset_at(utc_s(2026, 10, 25, 0, 59, 59)), -3600);
    EXPECT_EQ(nuuk.offset_at(utc_s(2026, 10, 25, 1)), -7200);

    // DST all year, as zic encodes it.
    const auto always = TimeZone::from_posix_rule("EST5EDT,0/0,J365/25");
    for (int64_t t : {utc_s(2026, 1, 1, 4, 30), utc_s(2026, 7, 1), utc_s(2026, 12, 31, 23, 59, 59)})
        EXPECT_EQ(always.offset_at(t), -4 * 3600) << t;

    // Jn never counts Feb 29: J60 is March 1 in every year.
    const auto j1 = TimeZone::from_posix_rule("AAA0BBB,J60/0,J300/0");
    EXPECT_EQ(j1.offset_at(utc_s(2028, 2, 29, 23, 59, 59)), 0);
    EXPECT_EQ(j1.offset_at(utc_s(2028, 3, 1)), 3600);
    // n counts it: day 59 is Feb 29 in a leap year, March 1 otherwise.
    const auto j0 = TimeZone::from_posix_rule("AAA0BBB,59/0,300/0");
    EXPECT_EQ(j0.offset_at(utc_s(2028, 2, 28, 23, 59, 59)), 0);
    EXPECT_EQ(j0.offset_at(utc_s(2028, 2, 29)), 3600);
    EXPECT_EQ(j0.offset_at(utc_s(2027, 2, 28, 23, 59, 59)), 0);
    EXPECT_EQ(j0.offset_at(utc_s(2027, 3, 1)), 3600);

    EXPECT_EQ(TimeZone::from_posix_rule("<+0545>-5:45").offset_at(utc_s(2026, 1, 1)), 5 * 3600 + 45 * 60);
}

TEST(TimeZone, PosixRuleRejects) {
    for (const char* bad :
         {"", "CE-1", "CET", "CET-25", "CET-1CEST", "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.6.0,M10.5.0",
          "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,M3.5.0", "CET-1CEST,M3.5.0,M10.5.0/3x", "CET-1CEST,J0,J365",
          "CET-1CEST,366,0", "CET-1CEST,M3.5.0/168,M10.5.0", "<AB>-1", "CET-1:60"}) {
        EXPECT_HAS(error_of([&] { TimeZone::from_posix_rule(bad); }), ("POSIX TZ rule")) << bad;
    }
}

TEST(TimeZone, TzifVersion2WithFooter) {
    // LMT +00:16:40 until 1970-01-01, then CET with the EU rule from the footer.
    const std::string data =
        tzif_v2({0}, {1}, {{1000, 0, 0}, {3600, 0, 4}}, kLmtCet, "CET-1CEST,M3.5.0,M10.5.0/3");
    const auto z = TimeZone::from_tzif("Test/Zone", data);
    EXPECT_EQ(z.name(), "Test/Zone");
    EXPECT_EQ(z.offset_at(-1), 1000);
    EXPECT_EQ(z.offset_at(0), 3600);
    EXPECT_EQ(z.offset_at(utc_s(2026, 7, 1)), 7200);
    EXPECT_EQ(z.offset_at(utc_s(2026, 12, 1)), 3600);
}

TEST(TimeZone, TzifVersion1UsesLastTypeAfterLastTransition) {
    const std::string data =
        tzif_header('\0', 0, 2, 2, 13) +
        tzif_block({-100000, 1000000000}, {1, 0}, {{3600, 0, 4}, {7200, 1, 8}}, kLmtCet, 4);
    const auto z = TimeZone::from_tzif("V1", data);
    EXPECT_EQ(z.offset_at(-100001), 3600); // type 0 before the first transition
    EXPECT_EQ(z.offset_at(-100000), 7200);
    EXPECT_EQ(z.offset_at(999999999), 7200);
    EXPECT_EQ(z.offset_at(1000000000), 3600);
    EXPECT_EQ(z.offset_at(utc_s(2100, 1, 1)), 3600);
}

TEST(TimeZone, TzifRejects) {
    const std::string good =
        tzif_v2({0}, {1}, {{1000, 0, 0}, {3600, 0, 4}}, kLmtCet, "CET-1CEST,M3.5.0,M10.5.0/3");
    ASSERT_NO_THROW(TimeZone::from_tzif("ok", good));
    auto err = [](const std::string& data) { return error_of([&] { TimeZone::from_tzif("T", data); }); };
    EXPECT_HAS(err(""), ("time zone \"T\": truncated TZif data (header)"));
    EXPECT_HAS(err("TZjf" + good.substr(4)), ("not a TZif file"));
    EXPECT_HAS(err(good.substr(0, good.size() - 40)), ("truncated TZif data"));
    EXPECT_HAS(err(good.substr(0, good.size() - 1)), ("bad footer"));
    EXPECT_HAS(err(good + "x"), ("bad footer"));
    EXPECT_HAS(err(tzif_v2({0}, {2}, {{1000, 0, 0}, {3600, 0, 4}}, kLmtCet, "")),
               ("missing local time type"));
    EXPECT_HAS(err(tzif_v2({5, 5}, {1, 1}, {{1000, 0, 0}, {3600, 0, 4}}, kLmtCet, "")), ("not increasing"));
    EXPECT_HAS(err(tzif_v2({0}, {1}, {{1000, 0, 0}, {3600, 0, 4}}, kLmtCet, "", 1)),
               ("leap-second records are not supported"));
    EXPECT_HAS(err(tzif_v2({0}, {1}, {{1000, 0, 0}, {3600, 0, 4}}, kLmtCet, "CET-1CEST")),
               ("footer: POSIX TZ rule"));
    EXPECT_HAS(err(tzif_v2({0}, {1}, {{1000, 0, 0}, {3600, 0, 40}}, kLmtCet, "")), ("bad local time type"));
}

TEST(TimeZone, SystemTzdataBerlinMatchesItsFooterRule) {
    if (!have_zone("Europe/Berlin"))
        GTEST_SKIP() << "no system tzdata at " << kZoneinfo;
    const auto file = TimeZone::load("Europe/Berlin", kZoneinfo);
    const auto rule = TimeZone::from_posix_rule("CET-1CEST,M3.5.0,M10.5.0/3");
    EXPECT_EQ(file.name(), "Europe/Berlin");
    // The table runs to 2037 (fat tzdata) or stops early (slim); the footer takes over either way.
    for (int64_t t = utc_s(1997, 1, 1); t < utc_s(2100, 1, 1); t += 7 * kHour + 13 * 60 + 7)
        ASSERT_EQ(file.offset_at(t), rule.offset_at(t)) << t;
    // And the table itself before that: Berlin's double summer time of 1945.
    EXPECT_EQ(file.offset_at(utc_s(1945, 6, 1)), 3 * 3600);
}

TEST(TimeZone, SystemTzdataOddZones) {
    for (const char* z : {"Europe/Dublin", "Australia/Lord_Howe", "America/Nuuk"})
        if (!have_zone(z))
            GTEST_SKIP() << "no " << z << " in " << kZoneinfo;
    // Negative DST in the footer ("IST-1GMT0,M10.5.0,M3.5.0/1"): winter is the "DST" part.
    const auto dublin = TimeZone::load("Europe/Dublin", kZoneinfo);
    EXPECT_EQ(dublin.offset_at(utc_s(2026, 1, 15)), 0);
    EXPECT_EQ(dublin.offset_at(utc_s(2026, 7, 15)), 3600);
    // Half-hour DST.
    const auto lord_howe = TimeZone::load("Australia/Lord_Howe", kZoneinfo);
    EXPECT_EQ(lord_howe.offset_at(utc_s(2026, 1, 15)), 39600);
    EXPECT_EQ(lord_howe.offset_at(utc_s(2026, 7, 15)), 37800);
    const auto nuuk = TimeZone::load("America/Nuuk", kZoneinfo);
    EXPECT_EQ(nuuk.offset_at(utc_s(2026, 3, 29, 1)), -3600);
    EXPECT_EQ(nuuk.offset_at(utc_s(2050, 1, 1)), -7200);
}

// ---- History: spec and inputs ------------------------------------------------------------------

TEST(History, RejectsBadSpec) {
    auto err = [](PeriodSpec s) { return error_of([&] { History h(s); }); };
    EXPECT_EQ(err(spec("UTC", 0)), "history: month_start_day must be 1..28, got 0");
    EXPECT_EQ(err(spec("UTC", 29)), "history: month_start_day must be 1..28, got 29");
    EXPECT_EQ(err(spec("UTC", 1, 0)), "history: keep_days must be 1..36600, got 0");
    EXPECT_EQ(err(spec("UTC", 1, 62, 0)), "history: keep_months must be 1..1200, got 0");
    EXPECT_EQ(err(spec("UTC", 1, 62, 24, 0)), "history: max_subjects must be at least 1");
    EXPECT_HAS(err(spec("Mars/Olympus_Mons")), ("no such zone"));
    EXPECT_HAS(err(spec("UTC+25:00")), ("offset out of range"));
    EXPECT_THROW(History h(spec("UTC", 31)), std::invalid_argument);
}

TEST(History, InputsChecked) {
    History h(spec());
    EXPECT_THROW(h.add("", c(1), utc_us(2026, 1, 1)), std::invalid_argument);
    EXPECT_THROW(h.add("x", c(1), utc_us(1899, 12, 31, 23, 59, 59)), std::out_of_range);
    EXPECT_THROW(h.add("x", c(1), utc_us(9999, 1, 1)), std::out_of_range);
    EXPECT_THROW(h.period_at(PeriodKind::Day, INT64_MIN), std::out_of_range);
    h.add("x", Counts{}, utc_us(2026, 1, 1)); // zero delta: nothing
    EXPECT_TRUE(h.periods(PeriodKind::Day).empty());
    EXPECT_EQ(h.total_added(), Counts{});
    h.add("x", c(1), utc_us(1900, 1, 1));
    h.add("x", c(1), utc_us(9998, 12, 31, 23, 59, 59));
    EXPECT_EQ(labels(h, PeriodKind::Day), std::vector<std::string>{"9998-12-31"});
    EXPECT_EQ(parse_period_kind("day"), PeriodKind::Day);
    EXPECT_EQ(parse_period_kind("month"), PeriodKind::Month);
    EXPECT_EQ(parse_period_kind("week"), std::nullopt);
    EXPECT_EQ(to_string(PeriodKind::Month), "month");
}

// ---- boundaries --------------------------------------------------------------------------------

TEST(History, UtcDayAndMonthBoundaries) {
    History h(spec());
    const std::string s = "iface:lan0:ingress";
    h.add(s, c(1), utc_us(2026, 11, 24, 23, 59, 59) + 999'999);
    h.add(s, c(2), utc_us(2026, 11, 25));
    h.add(s, c(4), utc_us(2026, 11, 30, 23, 59, 59) + 999'999);
    h.add(s, c(8), utc_us(2026, 12, 1));

    const auto days = h.periods(PeriodKind::Day);
    ASSERT_EQ(days.size(), 4u);
    EXPECT_EQ(days[0],
              (History::Period{
                  PeriodKind::Day, "2026-11-24", utc_us(2026, 11, 24), utc_us(2026, 11, 25), {{s, c(1)}}}));
    EXPECT_EQ(days[1],
              (History::Period{
                  PeriodKind::Day, "2026-11-25", utc_us(2026, 11, 25), utc_us(2026, 11, 26), {{s, c(2)}}}));
    EXPECT_EQ(days[2].label, "2026-11-30");
    EXPECT_EQ(days[3].label, "2026-12-01");
    EXPECT_EQ(days[3].totals, (History::Totals{{s, c(8)}}));

    const auto months = h.periods(PeriodKind::Month);
    ASSERT_EQ(months.size(), 2u);
    EXPECT_EQ(months[0],
              (History::Period{
                  PeriodKind::Month, "2026-11", utc_us(2026, 11, 1), utc_us(2026, 12, 1), {{s, c(7)}}}));
    EXPECT_EQ(months[1],
              (History::Period{
                  PeriodKind::Month, "2026-12", utc_us(2026, 12, 1), utc_us(2027, 1, 1), {{s, c(8)}}}));
    expect_conserved(h, c(15));
}

TEST(History, MonthStartDay15) {
    History h(spec("UTC", 15, 400));
    h.add("a", c(1), utc_us(2026, 11, 14, 23, 59, 59) + 999'999);
    h.add("a", c(2), utc_us(2026, 11, 15));
    h.add("a", c(4), utc_us(2027, 1, 14, 12));
    h.add("a", c(8), utc_us(2027, 1, 15));
    const auto months = h.periods(PeriodKind::Month);
    ASSERT_EQ(months.size(), 4u);
    EXPECT_EQ(months[0],
              (History::Period{
                  PeriodKind::Month, "2026-10", utc_us(2026, 10, 15), utc_us(2026, 11, 15), {{"a", c(1)}}}));
    EXPECT_EQ(months[1],
              (History::Period{
                  PeriodKind::Month, "2026-11", utc_us(2026, 11, 15), utc_us(2026, 12, 15), {{"a", c(2)}}}));
    EXPECT_EQ(months[2],
              (History::Period{
                  PeriodKind::Month, "2026-12", utc_us(2026, 12, 15), utc_us(2027, 1, 15), {{"a", c(4)}}}));
    EXPECT_EQ(months[3].label, "2027-01");
    EXPECT_EQ(months[3].start_us, utc_us(2027, 1, 15));
    EXPECT_EQ(months[3].end_us, utc_us(2027, 2, 15));
    // Days are unaffected by the month start.
    EXPECT_EQ(labels(h, PeriodKind::Day),
              (std::vector<std::string>{"2026-11-14", "2026-11-15", "2027-01-14", "2027-01-15"}));
}

TEST(History, MonthStartDay28AcrossFebruary) {
    History h(spec("UTC", 28));
    h.add("a", c(1), utc_us(2027, 2, 27, 23, 59, 59));
    h.add("a", c(2), utc_us(2027, 2, 28));
    h.add("a", c(4), utc_us(2028, 2, 29)); // leap day: in the month that started 2028-02-28
    const auto months = h.periods(PeriodKind::Month);
    ASSERT_EQ(months.size(), 3u);
    EXPECT_EQ(months[0],
              (History::Period{
                  PeriodKind::Month, "2027-01", utc_us(2027, 1, 28), utc_us(2027, 2, 28), {{"a", c(1)}}}));
    EXPECT_EQ(months[1],
              (History::Period{
                  PeriodKind::Month, "2027-02", utc_us(2027, 2, 28), utc_us(2027, 3, 28), {{"a", c(2)}}}));
    EXPECT_EQ(months[2],
              (History::Period{
                  PeriodKind::Month, "2028-02", utc_us(2028, 2, 28), utc_us(2028, 3, 28), {{"a", c(4)}}}));
}

TEST(History, FixedOffsets) {
    History east(spec("UTC+02:00"));
    east.add("a", c(1), utc_us(2026, 11, 24, 21, 59, 59)); // 23:59:59 local
    east.add("a", c(2), utc_us(2026, 11, 24, 22));         // 00:00 local, Nov 25
    auto days = east.periods(PeriodKind::Day);
    ASSERT_EQ(days.size(), 2u);
    EXPECT_EQ(days[0], (History::Period{PeriodKind::Day,
                                        "2026-11-24",
                                        utc_us(2026, 11, 23, 22),
                                        utc_us(2026, 11, 24, 22),
                                        {{"a", c(1)}}}));
    EXPECT_EQ(days[1], (History::Period{PeriodKind::Day,
                                        "2026-11-25",
                                        utc_us(2026, 11, 24, 22),
                                        utc_us(2026, 11, 25, 22),
                                        {{"a", c(2)}}}));
    EXPECT_EQ(east.periods(PeriodKind::Month)[0].start_us, utc_us(2026, 10, 31, 22));
    EXPECT_EQ(east.spec().time_zone, "UTC+02:00");

    History west(spec("UTC-05:30", 15));
    west.add("a", c(1), utc_us(2026, 11, 15, 5, 29, 59)); // Nov 14 23:59:59 local
    west.add("a", c(2), utc_us(2026, 11, 15, 5, 30));
    days = west.periods(PeriodKind::Day);
    ASSERT_EQ(days.size(), 2u);
    EXPECT_EQ(days[0].label, "2026-11-14");
    EXPECT_EQ(days[1].label, "2026-11-15");
    EXPECT_EQ(days[1].start_us, utc_us(2026, 11, 15, 5, 30));
    const auto months = west.periods(PeriodKind::Month);
    ASSERT_EQ(months.size(), 2u);
    EXPECT_EQ(months[0], (History::Period{PeriodKind::Month,
                                          "2026-10",
                                          utc_us(2026, 10, 15, 5, 30),
                                          utc_us(2026, 11, 15, 5, 30),
                                          {{"a", c(1)}}}));
    EXPECT_EQ(months[1].label, "2026-11");
}

// Europe/Berlin: 2026-03-29 has 23 hours, 2026-10-25 has 25.
void check_berlin_dst(History& h) {
    const std::string s = "iface:wan0:egress";
    h.add(s, c(1), utc_us(2026, 3, 28, 22, 59, 59) + 999'999); // 23:59:59.999999 CET, Mar 28
    h.add(s, c(2), utc_us(2026, 3, 28, 23));                   // 00:00 CET, Mar 29
    h.add(s, c(4), utc_us(2026, 3, 29, 21, 59, 59));           // 23:59:59 CEST, Mar 29
    h.add(s, c(8), utc_us(2026, 3, 29, 22));                   // 00:00 CEST, Mar 30
    h.add(s, c(16), utc_us(2026, 10, 24, 22));                 // 00:00 CEST, Oct 25
    h.add(s, c(32), utc_us(2026, 10, 25, 22, 30));             // 23:30 CET, Oct 25
    h.add(s, c(64), utc_us(2026, 10, 25, 23));                 // 00:00 CET, Oct 26

    const auto days = h.periods(PeriodKind::Day);
    ASSERT_EQ(days.size(), 5u);
    EXPECT_EQ(days[0].label, "2026-03-28");
    EXPECT_EQ(days[0].end_us, utc_us(2026, 3, 28, 23));
    EXPECT_EQ(
        days[1],
        (History::Period{
            PeriodKind::Day, "2026-03-29", utc_us(2026, 3, 28, 23), utc_us(2026, 3, 29, 22), {{s, c(6)}}}));
    EXPECT_EQ(days[1].end_us - days[1].start_us, 23 * kHour * 1'000'000);
    EXPECT_EQ(days[2].label, "2026-03-30");
    EXPECT_EQ(days[2].end_us - days[2].start_us, 24 * kHour * 1'000'000);
    EXPECT_EQ(days[3], (History::Period{PeriodKind::Day,
                                        "2026-10-25",
                                        utc_us(2026, 10, 24, 22),
                                        utc_us(2026, 10, 25, 23),
                                        {{s, c(48)}}}));
    EXPECT_EQ(days[3].end_us - days[3].start_us, 25 * kHour * 1'000'000);
    EXPECT_EQ(days[4].label, "2026-10-26");

    const auto months = h.periods(PeriodKind::Month);
    ASSERT_EQ(months.size(), 2u);
    EXPECT_EQ(
        months[0],
        (History::Period{
            PeriodKind::Month, "2026-03", utc_us(2026, 2, 28, 23), utc_us(2026, 3, 31, 22), {{s, c(15)}}}));
    EXPECT_EQ(
        months[1],
        (History::Period{
            PeriodKind::Month, "2026-10", utc_us(2026, 9, 30, 22), utc_us(2026, 10, 31, 23), {{s, c(112)}}}));
}

TEST(History, BerlinDstFromSystemTzdata) {
    if (!have_zone("Europe/Berlin"))
        GTEST_SKIP() << "no system tzdata at " << kZoneinfo;
    History h(spec("Europe/Berlin", 1, 400));
    EXPECT_EQ(h.spec().time_zone, "Europe/Berlin");
    check_berlin_dst(h);
}

TEST(History, BerlinDstFromPosixRule) {
    History h(spec("ignored", 1, 400), TimeZone::from_posix_rule("CET-1CEST,M3.5.0,M10.5.0/3"));
    EXPECT_EQ(h.spec().time_zone, "CET-1CEST,M3.5.0,M10.5.0/3");
    check_berlin_dst(h);
}

TEST(History, MidnightInDstGap) {
    // A zone that springs forward at 00:00 (as America/Santiago and others do): day 2026-09-06 starts
    // at 01:00 local, the first instant that exists.
    History h(spec("ignored"), TimeZone::from_posix_rule("<-04>4<-03>,M9.1.0/0,M4.1.0/0"));
    const auto p = h.period_at(PeriodKind::Day, utc_us(2026, 9, 6, 12));
    EXPECT_EQ(p.label, "2026-09-06");
    EXPECT_EQ(p.start_us, utc_us(2026, 9, 6, 4)); // 00:00 -04 == 01:00 -03
    EXPECT_EQ(p.end_us, utc_us(2026, 9, 7, 3));
    EXPECT_EQ(h.period_at(PeriodKind::Day, utc_us(2026, 9, 6, 3, 59, 59)).label, "2026-09-05");
}

TEST(History, PeriodAt) {
    History h(spec());
    auto p = h.period_at(PeriodKind::Day, utc_us(2026, 11, 24, 12));
    EXPECT_EQ(
        p, (History::Period{PeriodKind::Day, "2026-11-24", utc_us(2026, 11, 24), utc_us(2026, 11, 25), {}}));
    h.add("a", c(3), utc_us(2026, 11, 24, 1));
    p = h.period_at(PeriodKind::Month, utc_us(2026, 11, 24, 12));
    EXPECT_EQ(p, (History::Period{
                     PeriodKind::Month, "2026-11", utc_us(2026, 11, 1), utc_us(2026, 12, 1), {{"a", c(3)}}}));
}

// ---- clock jumps -------------------------------------------------------------------------------

TEST(History, ClockBackwardsGoesIntoLatestPeriod) {
    History h(spec());
    h.add("a", c(1), utc_us(2026, 12, 1, 0, 0, 5));
    // NTP steps the clock back across both a day and a month boundary.
    h.add("a", c(2), utc_us(2026, 11, 30, 23, 59, 50));
    h.add("b", c(4), utc_us(2026, 11, 2));
    EXPECT_EQ(labels(h, PeriodKind::Day), std::vector<std::string>{"2026-12-01"});
    EXPECT_EQ(labels(h, PeriodKind::Month), std::vector<std::string>{"2026-12"});
    EXPECT_EQ(h.periods(PeriodKind::Day)[0].totals, (History::Totals{{"a", c(3)}, {"b", c(4)}}));
    EXPECT_EQ(h.periods(PeriodKind::Month)[0].totals, (History::Totals{{"a", c(3)}, {"b", c(4)}}));
    // Time catches up: the next day opens normally.
    h.add("a", c(8), utc_us(2026, 12, 2));
    EXPECT_EQ(labels(h, PeriodKind::Day), (std::vector<std::string>{"2026-12-01", "2026-12-02"}));
    expect_conserved(h, c(15));
}

TEST(History, RtcAtEpochAfterRestoreGoesIntoLatestPeriod) {
    History h(spec());
    h.add("a", c(1), utc_us(2026, 6, 10, 12));
    History restored = History::from_json(h.to_json(), spec());
    restored.add("a", c(2), 0); // RTC lost: 1970-01-01
    EXPECT_EQ(labels(restored, PeriodKind::Day), std::vector<std::string>{"2026-06-10"});
    EXPECT_EQ(restored.periods(PeriodKind::Day)[0].totals, (History::Totals{{"a", c(3)}}));
}

TEST(History, ClockJumpsForwardThreeDays) {
    History h(spec());
    h.add("a", c(1), utc_us(2026, 11, 10, 8));
    h.add("a", c(2), utc_us(2026, 11, 13, 9));
    EXPECT_EQ(labels(h, PeriodKind::Day), (std::vector<std::string>{"2026-11-10", "2026-11-13"}));
    // Back to a day in between: still the latest, never a new period in the past.
    h.add("a", c(4), utc_us(2026, 11, 11, 9));
    const auto days = h.periods(PeriodKind::Day);
    ASSERT_EQ(days.size(), 2u);
    EXPECT_EQ(days[0].totals, (History::Totals{{"a", c(1)}}));
    EXPECT_EQ(days[1].totals, (History::Totals{{"a", c(6)}}));
    EXPECT_EQ(days[1].start_us, utc_us(2026, 11, 13));
    EXPECT_EQ(h.periods(PeriodKind::Month)[0].totals, (History::Totals{{"a", c(7)}}));
    expect_conserved(h, c(7));
}

// ---- retention and conservation ------------------------------------------------------------

TEST(History, RetentionPrunesAndConserves) {
    History h(spec("UTC", 1, 3, 2));
    const std::string s = "iface:lan0:ingress";
    Counts added;
    for (unsigned d = 1; d <= 10; ++d) {
        h.add(s, c(d), utc_us(2026, 1, d, 12));
        added += c(d);
        expect_conserved(h, added);
    }
    EXPECT_EQ(labels(h, PeriodKind::Day),
              (std::vector<std::string>{"2026-01-08", "2026-01-09", "2026-01-10"}));
    EXPECT_EQ(h.pruned(PeriodKind::Day), (History::Totals{{s, c(28)}}));
    EXPECT_EQ(labels(h, PeriodKind::Month), std::vector<std::string>{"2026-01"});
    EXPECT_TRUE(h.pruned(PeriodKind::Month).empty());

    h.add(s, c(100), utc_us(2026, 2, 15));
    h.add(s, c(200), utc_us(2026, 3, 15));
    added += c(300);
    EXPECT_EQ(labels(h, PeriodKind::Day), std::vector<std::string>{"2026-03-15"});
    EXPECT_EQ(h.pruned(PeriodKind::Day), (History::Totals{{s, c(155)}}));
    EXPECT_EQ(labels(h, PeriodKind::Month), (std::vector<std::string>{"2026-02", "2026-03"}));
    EXPECT_EQ(h.pruned(PeriodKind::Month), (History::Totals{{s, c(55)}}));
    expect_conserved(h, added);

    // A far jump forward prunes everything but the new period; nothing is lost.
    h.add("host:x|1.2.3.4:sent", c(1000), utc_us(2030, 1, 1));
    added += c(1000);
    EXPECT_EQ(labels(h, PeriodKind::Day), std::vector<std::string>{"2030-01-01"});
    EXPECT_EQ(labels(h, PeriodKind::Month), std::vector<std::string>{"2030-01"});
    EXPECT_EQ(h.pruned(PeriodKind::Day), (History::Totals{{s, c(355)}}));
    EXPECT_EQ(h.pruned(PeriodKind::Month), (History::Totals{{s, c(355)}}));
    expect_conserved(h, added);
}

// A deterministic random walk of times (small steps, backward steps, big jumps) and subjects.
// After every add: conservation holds, the latest period never moves back, no period appears
// before the previous latest, and every kept period's totals only grow.
TEST(History, RandomWalkNeverLosesOrShrinks) {
    History h(spec("UTC+05:45", 7, 5, 2, 3));
    uint64_t state = 0x9e3779b97f4a7c15ull;
    auto next = [&state](uint64_t n) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return (state >> 33) % n;
    };
    int64_t t = utc_us(2026, 1, 1);
    Counts added;
    std::map<std::pair<PeriodKind, std::string>, History::Totals> before;
    std::map<PeriodKind, int64_t> latest_start;
    for (int step = 0; step < 3000; ++step) {
        const uint64_t r = next(100);
        if (r < 80)
            t += static_cast<int64_t>(next(6 * kHour)) * 1'000'000;
        else if (r < 95)
            t -= static_cast<int64_t>(next(3 * kDay)) * 1'000'000;
        else
            t += static_cast<int64_t>(next(90 * kDay)) * 1'000'000;
        const std::string subject = "host:h" + std::to_string(next(6)) + (next(2) ? ":sent" : ":received");
        const Counts delta = c(next(1000) + 1);
        h.add(subject, delta, t);
        added += delta;
        ASSERT_EQ(sum_all(h, PeriodKind::Day), added) << step;
        ASSERT_EQ(sum_all(h, PeriodKind::Month), added) << step;
        for (PeriodKind kind : {PeriodKind::Day, PeriodKind::Month}) {
            const auto ps = h.periods(kind);
            ASSERT_FALSE(ps.empty());
            const int64_t previous_latest = latest_start.count(kind) ? latest_start[kind] : INT64_MIN;
            ASSERT_GE(ps.back().start_us, previous_latest) << step;
            for (const auto& p : ps) {
                auto it = before.find({kind, p.label});
                if (it == before.end()) {
                    ASSERT_GE(p.start_us, previous_latest) << "period created in the past at step " << step;
                    continue;
                }
                for (const auto& [subj, old] : it->second) {
                    ASSERT_TRUE(p.totals.count(subj)) << step;
                    ASSERT_TRUE(old.all_le(p.totals.at(subj))) << step;
                }
                ASSERT_LE(p.totals.size(), 3u + History::kMaxOverflowSubjects + 1);
            }
            latest_start[kind] = ps.back().start_us;
            for (auto it = before.begin(); it != before.end();)
                it = it->first.first == kind ? before.erase(it) : std::next(it);
            for (const auto& p : ps)
                before[{kind, p.label}] = p.totals;
        }
    }
    EXPECT_FALSE(h.pruned(PeriodKind::Day).empty());
    EXPECT_FALSE(h.pruned(PeriodKind::Month).empty());
}

// ---- the subject bound -------------------------------------------------------------------------

TEST(History, OverflowSubjectNames) {
    EXPECT_EQ(overflow_subject("host:aa:bb:cc:dd:ee:ff|198.18.1.2:sent"), "host:other:sent");
    EXPECT_EQ(overflow_subject("flowagg:tcp/443:egress"), "flowagg:other:egress");
    EXPECT_EQ(overflow_subject("iface:lan0"), "iface:other");
    EXPECT_EQ(overflow_subject("solo"), "other");
    for (const char* fixed : {"other", "iface:other", "host:other:sent"})
        EXPECT_EQ(overflow_subject(fixed), fixed);
}

TEST(History, MaxSubjectsOverflowIntoOther) {
    History h(spec("UTC", 1, 62, 24, 3));
    auto host = [](int i, const char* dir) {
        return "host:02:00:00:00:00:0" + std::to_string(i) + "|10.0.0." + std::to_string(i) + ":" + dir;
    };
    const int64_t day1 = utc_us(2026, 5, 1, 10);
    for (int i = 1; i <= 5; ++i)
        h.add(host(i, "sent"), c(static_cast<uint64_t>(i)), day1);
    h.add(host(6, "received"), c(6), day1);
    h.add("iface:lan0:ingress", c(7), day1);
    h.add("solo", c(8), day1);
    h.add(host(1, "sent"), c(10), day1); // already has a slot
    const History::Totals expected_day1{
        {host(1, "sent"), c(11)},
        {host(2, "sent"), c(2)},
        {host(3, "sent"), c(3)},
        {"host:other:sent", c(4 + 5)},
        {"host:other:received", c(6)},
        {"iface:other:ingress", c(7)},
        {"other", c(8)},
    };
    EXPECT_EQ(h.periods(PeriodKind::Day)[0].totals, expected_day1);

    // A new day has room again; the month does not.
    const int64_t day2 = utc_us(2026, 5, 2, 10);
    h.add(host(5, "sent"), c(100), day2);
    EXPECT_EQ(h.periods(PeriodKind::Day)[1].totals, (History::Totals{{host(5, "sent"), c(100)}}));
    History::Totals expected_month = expected_day1;
    expected_month["host:other:sent"] += c(100);
    EXPECT_EQ(h.periods(PeriodKind::Month)[0].totals, expected_month);
    expect_conserved(h, c(11 + 2 + 3 + 9 + 6 + 7 + 8 + 100));
}

TEST(History, OverflowClassBucketsAreBoundedToo) {
    History h(spec("UTC", 1, 62, 24, 1));
    const int64_t t = utc_us(2026, 5, 1);
    h.add("a:x", c(1), t);
    const size_t classes = History::kMaxOverflowSubjects + 9;
    for (size_t i = 0; i < classes; ++i)
        h.add("c" + std::to_string(i) + ":x", c(1), t);
    const auto totals = h.periods(PeriodKind::Day)[0].totals;
    EXPECT_EQ(totals.size(), 1 + History::kMaxOverflowSubjects + 1);
    EXPECT_EQ(totals.at("a:x"), c(1));
    EXPECT_EQ(totals.at("c0:other"), c(1));
    EXPECT_EQ(totals.at("other"), c(9));
    expect_conserved(h, c(1 + classes));
}

// ---- state file ----------------------------------------------------------------------------

History sample_history(const PeriodSpec& s) {
    History h(s);
    const uint64_t big = (uint64_t{1} << 62) + 12345; // beyond double precision
    h.add("iface:lan0:ingress", Counts(big, big, big, big, big), utc_us(2026, 1, 1, 5));
    for (unsigned d = 1; d <= 6; ++d) {
        h.add("flowagg:tcp/443:egress", c(d), utc_us(2026, 1, d, 6));
        h.add("host:a~b|10.0.0.1:sent", c(10 * d), utc_us(2026, 1, d, 7));
        h.add("host:c|10.0.0.2:sent", c(d), utc_us(2026, 1, d, 8)); // overflows with max_subjects 3
    }
    h.add("iface:lan0:ingress", c(5), utc_us(2026, 3, 2));
    return h;
}

TEST(History, JsonRoundTripIsExact) {
    const PeriodSpec s = spec("UTC+01:00", 15, 3, 2, 3);
    History h = sample_history(s);
    ASSERT_FALSE(h.pruned(PeriodKind::Day).empty());
    const nlohmann::json j = h.to_json();
    EXPECT_EQ(j["version"], 1);

    History back = History::from_json(j, s);
    EXPECT_EQ(back.to_json(), j);
    EXPECT_EQ(back.periods(PeriodKind::Day), h.periods(PeriodKind::Day));
    EXPECT_EQ(back.periods(PeriodKind::Month), h.periods(PeriodKind::Month));
    EXPECT_EQ(back.pruned(PeriodKind::Day), h.pruned(PeriodKind::Day));
    EXPECT_EQ(back.pruned(PeriodKind::Month), h.pruned(PeriodKind::Month));
    EXPECT_EQ(back.total_added(), h.total_added());

    // Through text, as the state file is written and read.
    History from_text = History::from_json(nlohmann::json::parse(j.dump()), s);
    EXPECT_EQ(from_text.to_json(), j);
    EXPECT_EQ(from_text.periods(PeriodKind::Month), h.periods(PeriodKind::Month));

    // The restored one behaves the same from here on, subject bound included.
    for (History* x : {&h, &back}) {
        x->add("host:new|10.0.0.9:sent", c(3), utc_us(2026, 3, 2, 1));
        x->add("host:newer|10.0.0.10:sent", c(4), utc_us(2026, 3, 2, 2));
        x->add("solo", c(5), utc_us(2026, 3, 3));
    }
    EXPECT_EQ(back.to_json(), h.to_json());
}

TEST(History, EmptyHistoryRoundTrips) {
    History h(spec());
    const auto j = h.to_json();
    EXPECT_EQ(j.dump(), R"({"day":{"periods":[],"pruned":{}},"month":{"periods":[],"pruned":{}},)"
                        R"("total_added":{"l2":0,"l3":0,"l4":0,"packets":0,"payload":0},"version":1})");
    EXPECT_EQ(History::from_json(j, spec()).to_json(), j);
}

TEST(History, FromJsonWithSmallerRetentionPrunesWithoutLoss) {
    History h = sample_history(spec("UTC", 1, 62, 24, 10));
    const Counts added = h.total_added();
    History smaller = History::from_json(h.to_json(), spec("UTC", 1, 2, 1, 10));
    EXPECT_EQ(labels(smaller, PeriodKind::Day), std::vector<std::string>{"2026-03-02"});
    EXPECT_EQ(labels(smaller, PeriodKind::Month), std::vector<std::string>{"2026-03"});
    expect_conserved(smaller, added);
}

TEST(History, FromJsonRejectsMalformedInput) {
    const PeriodSpec s = spec();
    History h(s);
    h.add("iface:lan0:ingress", c(1), utc_us(2026, 11, 24));
    h.add("flowagg:tcp/443:egress", c(2), utc_us(2026, 11, 25));
    const nlohmann::json good = h.to_json();
    ASSERT_NO_THROW(History::from_json(good, s));

    struct Case {
        const char* what;
        std::function<void(nlohmann::json&)> mutate;
        std::string message;
    };
    const std::string p0 = "/day/periods/0";
    const std::string iface = p0 + "/totals/iface:lan0:ingress";
    const std::vector<Case> cases = {
        {"not an object", [](auto& j) { j = 42; }, "history state: (root): expected an object, got 42"},
        {"missing version", [](auto& j) { j.erase("version"); },
         "history state: (root): missing key \"version\""},
        {"newer version", [](auto& j) { j["version"] = 2; },
         "history state: /version: unsupported version 2 (this nettally reads version 1)"},
        {"version as text", [](auto& j) { j["version"] = "1"; },
         "history state: /version: unsupported version \"1\""},
        {"unknown key", [](auto& j) { j["extra"] = true; }, "history state: /extra: unknown key"},
        {"missing day", [](auto& j) { j.erase("day"); }, "history state: (root): missing key \"day\""},
        {"missing total", [](auto& j) { j.erase("total_added"); }, "(root): missing key \"total_added\""},
        {"periods not a list", [](auto& j) { j["day"]["periods"] = nlohmann::json::object(); },
         "history state: /day/periods: expected an array, got {}"},
        {"pruned not an object", [](auto& j) { j["month"]["pruned"] = nlohmann::json::array(); },
         "history state: /month/pruned: expected an object, got []"},
        {"missing pruned", [](auto& j) { j["month"].erase("pruned"); }, "/month: missing key \"pruned\""},
        {"period not an object", [](auto& j) { j["day"]["periods"][0] = "x"; },
         "history state: /day/periods/0: expected an object, got \"x\""},
        {"label a number", [](auto& j) { j["day"]["periods"][0]["label"] = 20261124; },
         "history state: /day/periods/0/label: expected a date YYYY-MM-DD, got 20261124"},
        {"bad month in label", [](auto& j) { j["day"]["periods"][0]["label"] = "2026-13-01"; },
         "history state: /day/periods/0/label: expected a date YYYY-MM-DD (years 1899..9999), got "
         "\"2026-13-01\""},
        {"no such day", [](auto& j) { j["day"]["periods"][0]["label"] = "2026-02-30"; },
         "got \"2026-02-30\""},
        {"day label for a month", [](auto& j) { j["month"]["periods"][0]["label"] = "2026-11-01"; },
         "history state: /month/periods/0/label: expected a month YYYY-MM"},
        {"short month", [](auto& j) { j["month"]["periods"][0]["label"] = "2026-1"; }, "got \"2026-1\""},
        {"out of order", [](auto& j) { std::swap(j["day"]["periods"][0], j["day"]["periods"][1]); },
         "history state: /day/periods/1/label: periods must be oldest first without repeats, but "
         "\"2026-11-24\" "
         "follows \"2026-11-25\""},
        {"repeated", [](auto& j) { j["day"]["periods"][1]["label"] = "2026-11-24"; }, "without repeats"},
        {"missing totals", [](auto& j) { j["day"]["periods"][0].erase("totals"); },
         "history state: /day/periods/0: missing key \"totals\""},
        {"missing figure",
         [](auto& j) { j["day"]["periods"][0]["totals"]["iface:lan0:ingress"].erase("l4"); },
         "history state: " + iface + ": missing key \"l4\""},
        {"figure as text",
         [](auto& j) { j["day"]["periods"][0]["totals"]["iface:lan0:ingress"]["l2"] = "100"; },
         "history state: " + iface + "/l2: expected a non-negative integer, got \"100\""},
        {"negative figure",
         [](auto& j) { j["day"]["periods"][0]["totals"]["iface:lan0:ingress"]["packets"] = -5; },
         "history state: " + iface + "/packets: expected a non-negative integer, got -5"},
        {"fraction", [](auto& j) { j["day"]["periods"][0]["totals"]["iface:lan0:ingress"]["payload"] = 1.5; },
         "/payload: expected a non-negative integer, got 1.5"},
        {"null figure", [](auto& j) { j["total_added"]["l3"] = nullptr; },
         "history state: /total_added/l3: expected a non-negative integer, got null"},
        {"unknown figure", [](auto& j) { j["total_added"]["bytes"] = 1; },
         "history state: /total_added/bytes: unknown key"},
        {"escaped pointer",
         [](auto& j) { j["day"]["periods"][1]["totals"]["flowagg:tcp/443:egress"]["l3"] = -1; },
         "history state: /day/periods/1/totals/flowagg:tcp~1443:egress/l3: expected a non-negative integer, "
         "got -1"},
        {"empty subject",
         [](auto& j) {
             auto& t = j["day"]["periods"][0]["totals"];
             t[""] = t["iface:lan0:ingress"];
             t.erase("iface:lan0:ingress");
         },
         "history state: /day/periods/0/totals/: empty subject"},
        {"does not add up", [](auto& j) { j["total_added"]["packets"] = 4; },
         "history state: /day: periods and pruned add up to packets=3 l2=300 l3=240 l4=180 payload=120 but "
         "/total_added is packets=4 l2=300 l3=240 l4=180 payload=120"},
        {"months do not add up",
         [](auto& j) { j["month"]["pruned"]["iface:lan0:ingress"] = j["total_added"]; },
         "history state: /month: periods and pruned add up to"},
    };
    for (const auto& tc : cases) {
        nlohmann::json j = good;
        tc.mutate(j);
        std::string what = "(no exception)";
        try {
            History::from_json(j, s);
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        EXPECT_HAS(what, (tc.message)) << tc.what;
    }
}

} // namespace
