#!/usr/bin/python3
"""Period rollover at a real local midnight, end to end, without touching the clock.

periods.time_zone takes a fixed offset (UTC+hh:mm), so the test picks the offset that puts a
local midnight 20-80 s from now (also the start of a month when periods.month_start_day is set
to that day) and runs nettallyd with it. Before that midnight a host crosses the limit of a
`day` threshold whose action is block, and the limit of a `month` threshold; then the link stays
quiet until a little after midnight. Shown:

  - the block holds until midnight and is lifted by the rollover (ActionLifted reason rollover,
    within a poll or two of midnight), and traffic passes again;
  - both thresholds start a new period at midnight (period_start == midnight, period_end ==
    the next one), their usage after it equals the capture of the traffic after midnight;
  - the day and month history split at midnight: the closed period holds exactly what
    ListInterfaces said before midnight, the new one exactly the capture after it, and the two
    add up to ListInterfaces at the end (nothing lost or counted twice at the boundary).
Topology: ntharness.py.
"""

import datetime
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402
from test_thresholds import ThresholdBus  # noqa: E402

LIMIT = 20_000
LEAD_S = 20      # at least this long from now to the chosen midnight
QUIET_S = 2.5    # no test traffic this long before midnight (and until a poll after it)


def pick_midnight(now):
    """(unix time of a local midnight LEAD_S..LEAD_S+60 s from now, zone text, local date there).
    Of the two offsets that put midnight there (differing by a day), prefers the one whose local
    date is a possible periods.month_start_day (1..28)."""
    m = (int(now) + LEAD_S + 59) // 60 * 60
    off = (-m) % 86400
    choices = [off] + ([off - 86400] if off else [])
    dates = [(o, (datetime.datetime.fromtimestamp(m, datetime.timezone.utc) +
                  datetime.timedelta(seconds=o)).date()) for o in choices]
    dates.sort(key=lambda od: od[1].day > 28)
    o, d = dates[0]
    zone = f"UTC{'+' if o >= 0 else '-'}{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}"
    return m, zone, d


def next_month_start(local_date, day, offset_s):
    """Unix time of the local midnight on `day` of the month after local_date's."""
    y, mo = (local_date.year + 1, 1) if local_date.month == 12 else (local_date.year, local_date.month + 1)
    local = datetime.datetime(y, mo, day, tzinfo=datetime.timezone.utc)
    return int(local.timestamp()) - offset_s


class RolloverTest(unittest.TestCase):

    def test_day_and_month_roll_over_at_local_midnight(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        t = self.topo
        midnight, zone, local_date = pick_midnight(time.time())
        offset_s = int(zone[3] + "1") * (int(zone[4:6]) * 3600 + int(zone[7:9]) * 60)
        month_day = local_date.day if local_date.day <= 28 else None
        extra = f"periods:\n  time_zone: \"{zone}\"\n"
        if month_day:
            extra += f"  month_start_day: {month_day}\n"
        h.log(f"midnight in {zone} ({local_date}) is {midnight - time.time():.1f} s away"
              + ("" if month_day else f"; day {local_date.day} cannot start a month: month part skipped"))

        daemon = h.Daemon(t, self.bus, self.workdir, extra=extra)
        daemon.start()
        self.addCleanup(daemon.stop)
        monitor = h.SignalMonitor(self.bus).start()
        self.addCleanup(monitor.stop)
        tb = ThresholdBus(self.bus)
        base = {"subject_kind": "host", "subject": t.CLI4, "layer": "l2", "step": LIMIT, "limit": LIMIT}
        tb.add_ok(dict(base, name="roll-day", period="day", action="block"))
        if month_day:
            tb.add_ok(dict(base, name="roll-month", period="month"))
        names = ["roll-day"] + (["roll-month"] if month_day else [])

        def ping(src, dst, count=2, size=56):
            return h.run(t.exec_argv(src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1",
                                           "-s", str(size), dst]), check=False, timeout=30).returncode == 0

        # Before midnight: cross both limits; the day threshold blocks the host.
        def kicked():
            ping(t.cli, t.SRV4, 3, 1400)
            return tb.usage("roll-day")["action_active"]
        h.wait_until(kicked, 20, "roll-day blocks the host", interval=0.2)
        self.assertFalse(ping(t.cli, t.SRV4), "blocked before midnight")
        for n in names:
            u = tb.usage(n)
            self.assertTrue(u["limit_reached"], u)
            self.assertEqual(u["period_end"], midnight * 1_000_000, f"{n}: the period ends at midnight: {u}")
        self.assertGreater(midnight - time.time(), QUIET_S + 1, "too slow: midnight came before the set-up was done")

        # Quiet from here to midnight: what ListInterfaces says now is the closed day's total.
        daemon.wait_polls(2)
        before = h.bus_snapshot(self.bus)
        cap = h.Capture(t, "lan0", self.workdir).start()
        cap.wait_running()
        self.assertGreater(midnight - time.time(), 0.5, "too slow: midnight came before the capture ran")
        h.wait_until(lambda: any(s["data"][3] == "rollover" for s in monitor.signals("ActionLifted")),
                     midnight - time.time() + 5, "ActionLifted (rollover) after midnight", interval=0.02)
        lifted = [s for s in monitor.signals("ActionLifted") if s["data"][0] == "roll-day"]
        lifted_at = lifted[0]["data"][4] / 1e6
        h.log(f"block lifted by the rollover {lifted_at - midnight:+.3f} s from midnight")
        self.assertEqual([s["data"][3] for s in lifted], ["rollover"], lifted)
        self.assertGreaterEqual(lifted_at, midnight, "lifted before midnight")
        self.assertLess(lifted_at - midnight, 2, "lifted long after midnight")
        self.assertFalse(any(s["data"][0] == "roll-day" for s in monitor.signals("ActionApplied")
                             if s["data"][4] / 1e6 >= midnight), "applied again after midnight")

        # After midnight: traffic passes and counts in the new periods.
        time.sleep(max(0.0, midnight + 0.5 - time.time()))  # time: the clock passes midnight + 0.5 s
        self.assertTrue(ping(t.cli, t.SRV4, 3, 1000), "traffic passes after the rollover")
        self.assertTrue(ping(t.srv, t.CLI4, 3, 600), "traffic passes after the rollover")
        daemon.wait_polls(2)
        cap.stop()
        after = h.bus_snapshot(self.bus)
        res = h.CaptureResult(cap.read())
        res.add_hosts("lan0")
        host = res.hosts.get(("lan0", h.Topology.MAC["cli"], t.CLI4), {"sent": h.zero(), "received": h.zero()})
        host_l2 = host["sent"]["l2"] + host["received"]["l2"]
        self.assertGreater(host_l2, 0)

        for n in names:
            u = tb.usage(n)
            h.log(f"{n} after midnight: usage {u['usage']} B (capture {host_l2} B), period "
                  f"{u['period_start'] / 1e6:.0f}..{u['period_end'] / 1e6:.0f}")
            self.assertEqual(u["period_start"], midnight * 1_000_000, u)
            self.assertEqual(u["usage"], host_l2, f"{n}: usage after midnight == capture")
            self.assertFalse(u["limit_reached"], u)
            self.assertFalse(u["action_active"], u)
        self.assertEqual(tb.usage("roll-day")["period_end"], (midnight + 86400) * 1_000_000)
        if month_day:
            self.assertEqual(tb.usage("roll-month")["period_end"],
                             next_month_start(local_date, month_day, offset_s) * 1_000_000)

        # History: split at midnight, closed period == ListInterfaces then, new period == capture.
        for kind in ["day"] + (["month"] if month_day else []):
            periods = self.bus.call_ok("GetHistory", "ss", kind, "iface:lan0:")[0]
            self.assertEqual(len(periods), 2, f"{kind} history: {periods}")
            (l1, s1, e1, tot1), (l2, s2, e2, tot2) = periods
            h.log(f"{kind} history: {l1} [{s1 / 1e6:.0f}, {e1 / 1e6:.0f}) / {l2} [{s2 / 1e6:.0f}, {e2 / 1e6:.0f})")
            self.assertEqual((e1, s2), (midnight * 1_000_000, midnight * 1_000_000), periods)
            if kind == "day":
                self.assertEqual((l1, l2), ((local_date - datetime.timedelta(days=1)).isoformat(),
                                            local_date.isoformat()), periods)
            for d in h.DIRECTIONS:
                subj = f"iface:lan0:{d}"
                old = dict(zip(h.FIGURES, tot1.get(subj, [0] * 5)))
                new = dict(zip(h.FIGURES, tot2.get(subj, [0] * 5)))
                h.log(f"  {subj}: closed {h.fmt_c(old)}; new {h.fmt_c(new)}; capture {h.fmt_c(res.iface('lan0', d))}")
                self.assertEqual(old, before.ifaces[("lan0", d)],
                                 f"{kind} {subj}: closed period == ListInterfaces before midnight")
                self.assertEqual(new, res.iface("lan0", d), f"{kind} {subj}: new period == capture after midnight")
                self.assertEqual(h.cadd(old, new), after.ifaces[("lan0", d)], f"{kind} {subj}: the two add up")


if __name__ == "__main__":
    h.run_tests()
