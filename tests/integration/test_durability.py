#!/usr/bin/python3
"""Counts that survive: restarts, crashes, a simulated reboot, broken state files, flow eviction
with an overfull flow map, and interface hotplug.

Topology and ground truth: ntharness.py (client <-> gateway lan0/wan0 with nettallyd <-> server).

- Crashes: a steady UDP stream runs while nettallyd is SIGKILLed and started again twice, then
  stopped and started cleanly; the programs stay attached and count into the pinned maps while it
  is down, so the final totals, and the day history of the interfaces and of the stream's flow
  aggregate, equal a capture of the whole run, exactly.
- Finished flows and kill -9: flows evicted after the last state save keep their share in
  finished_flows (equal to the capture's IP packets) and the reconciliation stays exact.
- Reboot: pins and programs removed (what a reboot does), the state file kept: totals resume from
  the state file; what was lost is bounded by the traffic of the last persist interval.
- State files: a corrupted state.json is reported and state.json.prev used; both broken: reported,
  and the daemon still starts.
- Eviction: more flows than the flow map holds: the overflow is counted in flow_overflow and
  reported once per episode, idle flows are evicted, and the reconciliation invariant still holds
  (no violation, exact checks keep passing) while interface totals equal the capture.
- Hotplug: a veth created after start is accounted without a restart, keeps its totals by name when
  it goes, and a rename takes the totals along.
"""

import json
import os
import shutil
import signal
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5101
IFACES = ("lan0", "wan0")


class DurabilityBase(unittest.TestCase):
    poll = "200ms"
    extra = ""

    def setUp(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir,
                               config_text=h.config_yaml("{state_dir}", poll=self.poll, pin_dir="{pin_dir}",
                                                         extra=self.extra))
        self.addCleanup(self.daemon.stop)
        self.ctl = h.Ctl(self.bus.address)
        self.server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4, self.topo.SRV6]).start()
        self.addCleanup(self.server.stop)

    def start_captured(self):
        """Starts nettallyd, lets link-up chatter pass, starts a capture on each interface."""
        self.daemon.start()
        self.topo.settle()
        caps = [h.Capture(self.topo, i, self.workdir).start() for i in IFACES]
        for c in caps:
            c.wait_running()
        return caps

    def totals(self):
        return self.ctl.snapshot().ifaces

    def wait_persist_after(self, t_ns, timeout=15):
        """Waits for a persist written after t_ns (time.time_ns()): it holds every poll made before
        t_ns (one event loop: a persist that ends after t_ns began after those polls)."""
        path = os.path.join(self.daemon.state_dir, "state.json")

        def written():
            try:
                return os.stat(path).st_mtime_ns > t_ns
            except FileNotFoundError:
                return False
        h.wait_until(written, timeout, f"a persist of {path} after the traffic")

    def assert_equal_capture(self, before, after, capture, what):
        problems = []
        for iface in IFACES:
            for d in h.DIRECTIONS:
                got = h.csub(after[(iface, d)], before.get((iface, d), h.zero()))
                want = capture.iface(iface, d)
                for f in h.FIGURES:
                    if got[f] != want[f]:
                        problems.append(f"  {iface} {d} {f}: nettally {got[f]} != capture {want[f]}")
        if problems:
            self.fail(f"{what}: {len(problems)} mismatch(es):\n" + "\n".join(problems) +
                      f"\n--- daemon log ---\n{self.daemon.log_tail(60)}")

    def udp_stream(self, seconds, sport, gap=0.002, size=400):
        """Client -> server UDP for `seconds`, in a thread; returns (thread, result holder)."""
        out = {}

        def go():
            out["r"] = h.client_run(self.topo, "udpfor", self.topo.SRV4, PORT, size, seconds, sport, gap,
                                    timeout=seconds + 60)
        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t, out


class CrashTest(DurabilityBase):
    def test_kill9_twice_under_traffic_loses_nothing(self):
        caps = self.start_captured()
        try:
            self.daemon.wait_polls(2)
            before = self.totals()
            t, out = self.udp_stream(6.0, 40001)
            for how in ("kill", "kill", "clean"):
                time.sleep(1.5)  # time: the daemon counts the stream for a while before it goes down
                if how == "kill":
                    self.daemon.proc.send_signal(signal.SIGKILL)
                    self.daemon.proc.wait(10)
                self.daemon.stop(keep_pins=True)
                time.sleep(0.3)  # down for a moment while packets keep flowing
                self.daemon.start()
                self.assertIn("reusing pinned maps", self.daemon.log_tail(60))
            t.join(90)
            self.assertIn("r", out, "the UDP stream did not finish")
            self.assertGreater(out["r"]["sent"], 500, out["r"])
            self.daemon.wait_polls(2)
            after = self.totals()
            status = self.bus.status()
        finally:
            for c in caps:
                c.stop()
        capture = h.analyse(caps, lan_ifaces=("lan0",))
        self.assert_equal_capture(before, after, capture, "totals across two kill -9 restarts")
        self.assertEqual(int(status["reconcile_violations"]), 0, status)
        self.assertTrue(status["pinned_maps_reused"], status)
        # History survives the crashes too: the day periods add up to the interface totals
        # (the network is quiet, so the first poll after the first start counted nothing).
        hist = self.ctl.json("history", "--period", "day", "--subject", "iface:")["history"]
        self.assertEqual(hist["period"], "day")
        for iface in IFACES:
            for d in h.DIRECTIONS:
                s = h.zero()
                for p in hist["periods"]:
                    s = h.cadd(s, h.cget(p["totals"].get(f"iface:{iface}:{d}", h.zero())))
                self.assertEqual(s, after[(iface, d)], f"history of {iface} {d} vs its total")
        # The flow aggregate of the stream (udp/PORT) neither lost nor repeated across the
        # restarts (a restart used to add an aggregate's whole total again).
        flow_hist = self.ctl.json("history", "--period", "day", "--subject", "flow:")["history"]
        for iface in IFACES:
            for d in h.DIRECTIONS:
                want = h.zero()
                for fk, c in capture.flows.items():
                    if fk[0] == iface and fk[1] == d and fk[2] == "udp" and PORT in (fk[4], fk[6]):
                        want = h.cadd(want, c)
                subject = f"flow:{iface}:{d}:udp/{PORT}"
                got = h.zero()
                for p in flow_hist["periods"]:
                    got = h.cadd(got, h.cget(p["totals"].get(subject, h.zero())))
                h.log(f"history {subject}: {h.fmt_c(got)} (capture {h.fmt_c(want)})")
                self.assertEqual(got, want, f"history of {subject} vs the capture")


class EvictedThenKilledTest(DurabilityBase):
    """Flows finished (evicted from the kernel) after the last state save, then kill -9: their
    share stays in ListInterfaces' finished_flows and the reconciliation stays exact."""
    extra = "flows:\n  idle_timeout: 1s\n"

    def test_finished_flows_survive_kill9_before_the_next_save(self):
        caps = self.start_captured()
        try:
            # Link-up chatter (MLD) finished first: every flow from here on is in the capture. A
            # packet sent just before a poll shows as a flow only after it: no flow in two
            # checks two polls apart.
            def no_flows():
                return not self.bus.call_ok("ListFlows", "su", "packets", 10)[0]

            def quiet():
                if not no_flows():
                    return False
                self.daemon.wait_polls(2)
                return no_flows()
            h.wait_until(quiet, 20, "no live flow", interval=0.2)
            before = h.bus_snapshot(self.bus)
            evicted0 = int(self.bus.status()["flows_evicted"])
            for i in range(4):
                h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "300,900", 10, 40101 + i)
            # 4 flows each way on each interface finish after 1 s idle.
            h.wait_until(lambda: int(self.bus.status()["flows_evicted"]) - evicted0 >= 16, 15,
                         "the flows evicted", interval=0.2)
            finished = h.bus_snapshot(self.bus)
            status0 = self.bus.status()
            self.daemon.proc.send_signal(signal.SIGKILL)
            self.daemon.proc.wait(10)
            self.daemon.stop(keep_pins=True)
            self.daemon.start()
            self.daemon.wait_polls(3)
            after = h.bus_snapshot(self.bus)
            status = self.bus.status()
        finally:
            for c in caps:
                c.stop()
        log = self.daemon.log_text()
        self.assertIn("finished after that save", log, "the state predates the evictions")
        res = h.CaptureResult([p for c in caps for p in c.read()])
        for iface in IFACES:
            for d in h.DIRECTIONS:
                key = (iface, d, "finished_flows")
                got = h.csub(after.buckets.get(key, h.zero()), before.buckets.get(key, h.zero()))
                want = h.zero()
                for fk, c in res.flows.items():
                    if fk[0] == iface and fk[1] == d:
                        want = h.cadd(want, c)
                h.log(f"{iface} {d} finished_flows: before kill {h.fmt_c(finished.buckets[key])}, "
                      f"after restart {h.fmt_c(after.buckets[key])}, capture (IP) {h.fmt_c(want)}")
                self.assertEqual(after.buckets[key], finished.buckets[key], f"{key} across kill -9")
                self.assertEqual(got, want, f"{key}: the finished flows == the capture's IP packets")
                self.assertEqual(h.csub(after.ifaces[(iface, d)], before.ifaces[(iface, d)]), res.iface(iface, d))
        self.assertEqual(int(status["flows_evicted"]), int(status0["flows_evicted"]), status)
        self.assertEqual(int(status["reconcile_violations"]), 0, status)
        self.assertGreater(int(status["reconcile_exact"]), 0, status)


class RebootTest(DurabilityBase):
    extra = "persist_interval: 1s\n"

    def test_reboot_resumes_from_state_with_bounded_loss(self):
        self.daemon.start()
        self.topo.settle()
        self.daemon.wait_polls(2)
        t0 = self.totals()
        # Phase A: traffic, then long enough for a persist to hold all of it.
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "200,700", 20)
        self.daemon.wait_polls(2)
        self.wait_persist_after(time.time_ns())
        ta = self.totals()
        # Phase A2: traffic just before the "power cut": at most one persist interval of it is lost.
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "300", 10)
        self.daemon.wait_polls(2)
        ta2 = self.totals()
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait(10)
        self.daemon.stop(keep_pins=True)
        # What a reboot does to the kernel side: programs and pins gone.
        for dev in IFACES:
            h.run(self.topo.exec_argv(self.topo.gw, ["tc", "qdisc", "del", "dev", dev, "clsact"]), check=False)
        shutil.rmtree(self.daemon.pin_dir, ignore_errors=True)
        self.daemon.start()
        log = self.daemon.log_tail(60)
        self.assertIn("new kernel counters: adding to the saved totals", log)
        st = self.bus.status()
        self.assertFalse(st["pinned_maps_reused"], st)
        tr = self.totals()
        # Phase C after the restart.
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "500", 10)
        self.daemon.wait_polls(2)
        tc = self.totals()
        for iface in IFACES:
            for d in h.DIRECTIONS:
                k = (iface, d)
                lost = h.csub(ta2[k], tr[k])
                a2 = h.csub(ta2[k], ta[k])
                for f in h.FIGURES:
                    with self.subTest(iface=iface, dir=d, figure=f):
                        # Nothing persisted is lost; at most the last interval's traffic is.
                        self.assertGreaterEqual(tr[k][f], ta[k][f])
                        self.assertGreaterEqual(lost[f], 0)
                        self.assertLessEqual(lost[f], a2[f])
                        # After the restart counting goes on from the restored totals.
                        self.assertGreaterEqual(tc[k][f], tr[k][f])
                self.assertGreater(tc[k]["packets"] - tr[k]["packets"], 0, f"{k}: phase C not counted")
                self.assertGreater(ta[k]["packets"] - t0[k]["packets"], 0, f"{k}: phase A not counted")


class StateFileTest(DurabilityBase):
    extra = "persist_interval: 1s\n"

    def _state(self, name="state.json"):
        return os.path.join(self.daemon.state_dir, name)

    def test_corrupt_and_truncated_state_files_are_survived(self):
        self.daemon.start()
        self.topo.settle()
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "200", 10)
        self.daemon.wait_polls(2)
        # Two persists: state.json and state.json.prev both exist.
        h.wait_until(lambda: os.path.exists(self._state()) and os.path.exists(self._state("state.json.prev")),
                     15, "state.json and state.json.prev (two persists)")
        self.assertEqual(self.daemon.stop(keep_pins=True), 0)
        self.assertTrue(os.path.exists(self._state()) and os.path.exists(self._state("state.json.prev")))
        saved = self.totals_from_state()

        # Corrupt the newest copy: detected, the previous copy used.
        with open(self._state(), "r+b") as f:
            f.seek(-20, os.SEEK_END)
            f.write(b"XXXXXXXXXXXXXXXX")
        self.daemon.start()
        log = self.daemon.log_tail(80)
        self.assertRegex(log, r"state\.json: checksum mismatch \(corrupted\): skipped, using .*state\.json\.prev")
        after = self.totals()
        self.assertGreaterEqual(after[("lan0", "ingress")]["packets"], saved - 1000)
        self.assertEqual(self.daemon.stop(keep_pins=True), 0)

        # Truncate both: reported, and the daemon still starts and counts.
        for name in ("state.json", "state.json.prev"):
            with open(self._state(name), "r+b") as f:
                f.truncate(max(0, os.path.getsize(self._state(name)) // 2))
        self.daemon.start()
        log = self.daemon.log_tail(80)
        self.assertIn("truncated", log)
        self.assertIn("no usable state file", log)
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "200", 5)
        self.daemon.wait_polls(2)
        self.assertTrue(self.daemon.alive())
        self.assertGreater(self.totals()[("lan0", "ingress")]["packets"], 0)

    def totals_from_state(self):
        with open(self._state()) as f:
            body = f.read().split("\n", 1)[1]
        j = json.loads(body)
        return sum(b + r for b, r in [j["collector"]["interfaces"]["lan0"]["dirs"]["ingress"]["total"][0]])


class EvictionTest(DurabilityBase):
    extra = "flows:\n  max_entries: 1024\n  idle_timeout: 2s\n  active_timeout: 10s\n"

    def test_overfull_flow_map_still_reconciles(self):
        caps = self.start_captured()
        try:
            self.daemon.wait_polls(2)
            before = self.totals()
            # 1500 client flows: each crosses lan0 and wan0 both ways -> 4 entries per flow and
            # interface pair, far more than 1024.
            r = h.client_run(self.topo, "udpmany", self.topo.SRV4, PORT, 1500, 64, timeout=120)
            self.assertGreater(r["sent"], 1000, r)
            self.daemon.wait_polls(2)
            full = self.bus.status()
            # Idle flows go after 2 s; their counts stay in the totals. Nothing flows any more, so
            # every flow live now goes.
            h.wait_until(lambda: int(self.bus.status()["flows_evicted"]) - int(full["flows_evicted"])
                         >= int(full["flows"]), 20, f"the {full['flows']} idle flows to be evicted")
            self.daemon.wait_polls(2)
            after = self.totals()
            status = self.bus.status()
        finally:
            for c in caps:
                c.stop()
        capture = h.analyse(caps, lan_ifaces=("lan0",))
        self.assert_equal_capture(before, after, capture, "totals with an overfull flow map")
        self.assertGreater(int(full["flow_overflow_packets"]), 0, full)
        self.assertGreaterEqual(int(status["overflow_episodes"]), 1, status)
        self.assertGreater(int(status["flows_evicted"]), 1000, status)
        self.assertEqual(int(status["reconcile_violations"]), 0, status)
        self.assertGreater(int(status["reconcile_exact"]), int(full["reconcile_exact"]), status)
        log = self.daemon.log_text()
        episodes = log.count("flow map full")
        self.assertEqual(episodes, int(status["overflow_episodes"]), "one warning per episode")
        # Buckets: overflow is visible per interface.
        snap = self.ctl.snapshot()
        overflow = sum(v["packets"] for (i, d, b), v in snap.buckets.items() if b == "flow_overflow")
        self.assertGreater(overflow, 0)


class HotplugTest(DurabilityBase):
    def test_interface_created_after_start_is_accounted(self):
        cfg = h.config_yaml(self.daemon.state_dir, poll="200ms", pin_dir=self.daemon.pin_dir,
                            interfaces=(("lan0", "lan"), ("wan0", "wan"), ("hp*", "lan")))
        self.daemon.write_config(cfg)
        self.daemon.start()
        names = [i["name"] for i in self.ctl.json("interfaces")["interfaces"]]
        self.assertNotIn("hp0", names)
        gw, cli = self.topo.gw, self.topo.cli
        h.run(["ip", "-n", gw, "link", "add", "hp0", "type", "veth", "peer", "name", "hpc0", "netns", cli])
        h.run(["ip", "-n", gw, "addr", "add", "198.18.7.1/24", "dev", "hp0"])
        h.run(["ip", "-n", cli, "addr", "add", "198.18.7.2/24", "dev", "hpc0"])
        h.run(["ip", "-n", gw, "link", "set", "hp0", "up"])
        h.run(["ip", "-n", cli, "link", "set", "hpc0", "up"])

        def attached():
            return "hp0" in [i["name"] for i in self.ctl.json("interfaces")["interfaces"]]
        h.wait_until(attached, 10, "hp0 accounted")
        self.assertIn("accounting hp0", self.daemon.log_text())
        h.run(self.topo.exec_argv(cli, ["ping", "-c", "5", "-i", "0.05", "-s", "100", "198.18.7.1"]))
        self.daemon.wait_polls(2)
        hp = self.totals()[("hp0", "ingress")]
        self.assertGreaterEqual(hp["packets"], 5, hp)
        # 5 echo requests of 100 bytes: l3 = 20 + 8 + 100 each, plus ARP (no l3).
        self.assertGreaterEqual(hp["l3"], 5 * 128, hp)

        # Rename: totals move with the interface.
        h.run(["ip", "-n", gw, "link", "set", "hp0", "down"])
        h.run(["ip", "-n", gw, "link", "set", "hp0", "name", "hp1"])
        h.run(["ip", "-n", gw, "link", "set", "hp1", "up"])
        h.wait_until(lambda: ("hp1", "ingress") in self.totals(), 10, "hp1 accounted")
        self.daemon.wait_polls(2)
        snap = self.totals()
        self.assertGreaterEqual(snap[("hp1", "ingress")]["packets"], hp["packets"])
        self.assertNotIn(("hp0", "ingress"), snap)

        # Gone: released, totals kept by name.
        h.run(["ip", "-n", gw, "link", "del", "hp1"])
        h.wait_until(lambda: "released hp1" in self.daemon.log_text(), 10, "hp1 released")
        kept = self.totals()[("hp1", "ingress")]
        self.assertGreaterEqual(kept["packets"], hp["packets"])
        self.assertTrue(self.daemon.alive())


if __name__ == "__main__":
    h.run_tests()
