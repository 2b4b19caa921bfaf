#!/usr/bin/python3
"""Accounting records: files, rotation, the spool, D-Bus control, crash recovery.

Topology and ground truth: ntharness.py (client <-> gateway lan0/wan0 with nettallyd <-> server);
dumpcap on lan0 and wan0 in the gateway, started before nettallyd and stopped after the last
rotation, so the capture holds every packet the daemon counted.

- Size rotation: a small records.max_file_size closes many files ("full"); no file is larger than
  the limit. The interface records sum to ListInterfaces and to the capture (every figure), the host
  records to the capture's hosts on lan0, the flow records (flows finish after a 1 s idle timeout)
  to the capture's flows. Rotate over D-Bus closes the rest and FileRotated is seen on the bus.
- Timer rotation: a 4 s period closes the files at each boundary of the wall clock; the lag
  between the boundary and FileRotated is measured and must stay under a poll interval plus slack.
  SetSettings is validated (bad values change nothing), persisted, and refused to unprivileged users.
- Crash: nettallyd is SIGKILLed while records are being written and started again; the file left
  open is recovered into the spool, and the records still sum exactly to the totals and the
  capture: nothing lost, nothing written twice.
"""

import gzip
import json
import os
import signal
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5201
IFACES = ("lan0", "wan0")
RECORDS_IFACE = "org.nettally.Accounting1.Records"
NOBODY = 65534


def records_yaml(**kw):
    lines = ["records:"]
    for k, v in kw.items():
        if isinstance(v, dict):
            lines.append(f"  {k}:")
            lines += [f"    {kk}: {vv}" for kk, vv in v.items()]
        else:
            lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


class RecordsBase(unittest.TestCase):
    poll = "200ms"
    records = {}
    flows = None

    def setUp(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir,
                               config_text=h.config_yaml("{state_dir}", poll=self.poll, pin_dir="{pin_dir}",
                                                         flows=self.flows, extra=records_yaml(**self.records)))
        self.addCleanup(self.daemon.stop)
        self.spool = os.path.join(self.daemon.state_dir, "spool")
        self.server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4, self.topo.SRV6]).start()
        self.addCleanup(self.server.stop)
        self.monitor = h.SignalMonitor(self.bus).start()
        self.topo.settle()
        self.caps = [h.Capture(self.topo, i, self.workdir).start() for i in IFACES]
        for c in self.caps:
            c.wait_running()

    # -- helpers -----------------------------------------------------------------------------

    def rcall(self, method, sig="", *args, user=None):
        a = ["--json=short", "call", h.BUS_NAME, h.BUS_PATH, RECORDS_IFACE, method]
        if sig:
            a += [sig] + [str(x) for x in args]
        p = self.bus.busctl(*a, user=user)
        data = json.loads(p.stdout)["data"] if p.returncode == 0 and p.stdout.strip() else None
        return p, data

    def rcall_ok(self, method, sig="", *args):
        p, data = self.rcall(method, sig, *args)
        self.assertEqual(p.returncode, 0, f"{method} failed: {p.stderr.strip()}\n{self.daemon.log_tail()}")
        return data

    def settings(self):
        return {k: v["data"] for k, v in self.rcall_ok("GetSettings")[0].items()}

    # GetSettings keys that are settings (the rest are the recorder's running figures).
    SETTING_KEYS = ("enabled", "period", "interval", "types", "max_file_size", "max_records", "compress",
                    "overridden", "spool_dir")

    def setting_values(self):
        return {k: v for k, v in self.settings().items() if k in self.SETTING_KEYS}

    def rotated(self, reason=None):
        return [s for s in self.monitor.signals("FileRotated", RECORDS_IFACE)
                if reason is None or s["data"][4] == reason]

    def finish_capture(self):
        for c in self.caps:
            c.stop()
        return h.analyse(self.caps, lan_ifaces=("lan0",))

    def list_interfaces(self):
        out = {}
        for name, _role, _idx, ing, eg, *_rest in self.bus.call_ok("ListInterfaces")[0]:
            out[(name, "ingress")] = dict(zip(h.FIGURES, ing))
            out[(name, "egress")] = dict(zip(h.FIGURES, eg))
        return out

    def check_interface_sums(self, records, cap):
        """Interface records == ListInterfaces == capture, per interface, direction and figure."""
        sums = h.sum_records([r for r in records if r["_type"] == "interface"],
                             lambda r: (r["interface"], r["direction"]))
        api = self.list_interfaces()
        problems = []
        for iface in IFACES:
            for d in h.DIRECTIONS:
                got, tot, want = sums.get((iface, d), h.zero()), api[(iface, d)], cap.iface(iface, d)
                if not (got == tot == want):
                    problems.append(f"  {iface} {d}: records {h.fmt_c(got)}\n      ListInterfaces "
                                    f"{h.fmt_c(tot)}\n      capture {h.fmt_c(want)}")
                else:
                    h.log(f"{iface} {d}: records == ListInterfaces == capture: {h.fmt_c(got)}")
        if problems:
            self.fail("interface records do not sum to the totals:\n" + "\n".join(problems) +
                      f"\n--- daemon log ---\n{self.daemon.log_tail(60)}")
        return sums

    def traffic(self):
        t = self.topo
        h.client_run(t, "udp", t.SRV4, PORT, "100,400,1000", 40, 40001)
        h.client_run(t, "udp", t.SRV6, PORT, "200,1200", 30, 40002)
        h.client_run(t, "tcp", t.SRV4, PORT, 30000, 50000)
        h.client_run(t, "icmp", t.SRV4, "64,500", 10)


class SizeRotationTest(RecordsBase):
    records = {"enabled": "true", "period": "1h", "interval": "1s", "max_file_size": 1200,
               "types": {"interface": "csv", "host": "csv", "flow": "jsonl"}}
    flows = {"idle_timeout": "1s"}

    def test_size_rotation_sums_and_rotate(self):
        self.daemon.start()
        self.traffic()
        # Every flow finishes (1 s idle) and becomes a flow record. The two polls first: the whole
        # traffic can fall between two polls, and ListFlows then is still empty from before it.
        self.daemon.wait_polls(2)
        h.wait_until(lambda: not self.bus.call_ok("ListFlows", "su", "packets", 100000)[0], 20,
                     "every flow to be finished (idle timeout)")
        names = self.rcall_ok("Rotate")[0]
        self.assertTrue(names, "Rotate closed no file although records were written")
        h.wait_until(lambda: set(names) <= {s["data"][0] for s in self.rotated("demand")}, 15,
                     "FileRotated(demand) for each file Rotate returned")
        self.assertEqual(sorted(s["data"][0] for s in self.rotated("demand")), sorted(names))
        cap = self.finish_capture()

        files = sorted(os.listdir(self.spool))
        self.assertFalse([n for n in files if n.startswith(".")], f"unfinished files left in the spool: {files}")
        current = os.path.join(self.daemon.state_dir, "records", "current")
        left = {}
        for n in os.listdir(current):
            with open(os.path.join(current, n), errors="replace") as f:
                left[n] = f.read(2000)
        self.assertFalse(left, f"files left open after Rotate, with what they hold: {left}\n"
                               f"--- daemon log ---\n{self.daemon.log_tail(40)}")
        sizes = {n: os.path.getsize(os.path.join(self.spool, n)) for n in files}
        h.log(f"spool: {len(files)} files, sizes {min(sizes.values())}..{max(sizes.values())} B; "
              f"{len(self.rotated('full'))} closed because full")
        self.assertGreaterEqual(len(self.rotated("full")), 3, "a 1200 B limit must close several files")
        too_big = {n: s for n, s in sizes.items() if s > 1200}
        self.assertFalse(too_big, f"files over max_file_size 1200: {too_big}")
        # Each signal's record and byte counts match the file.
        for s in self.rotated():
            name, rtype, nrec, nbytes, _reason = s["data"]
            self.assertEqual(len(h.read_record_file(os.path.join(self.spool, name))), nrec, name)
            self.assertEqual(sizes[name], nbytes, name)
            self.assertIn(f"_{rtype}_", name)
        # Unique names, sequence numbers never repeat.
        seqs = [int(h.RECORD_NAME_RE.match(n).group("seq")) for n in files]
        self.assertEqual(len(seqs), len(set(seqs)), f"repeated sequence numbers: {files}")

        records = h.read_records(self.spool)
        self.check_interface_sums(records, cap)

        hosts = h.sum_records([r for r in records if r["_type"] == "host"],
                              lambda r: (r["interface"], r["mac"].lower(), h.norm_ip(r["ip"]), r["direction"]))
        want_hosts = {(k[0], k[1], k[2], side): c for k, v in cap.hosts.items() for side, c in v.items()
                      if c != h.zero()}
        want_hosts.update(want_wan(cap))
        self.assertEqual(hosts, want_hosts, "host records != capture hosts")
        h.log(f"hosts: {len(hosts)} host/direction sums equal the capture")

        flows = h.sum_records([r for r in records if r["_type"] == "flow"],
                              lambda r: (r["interface"], r["direction"], h.proto_name(r["protocol"]), h.norm_ip(r["src"]),
                                         int(r["src_port"]), h.norm_ip(r["dst"]), int(r["dst_port"])))
        self.maxDiff = None
        self.assertEqual(flows, cap.flows, "flow records != capture flows")
        h.log(f"flows: {len(flows)} flow sums equal the capture")
        # Timestamps are RFC 3339 UTC.
        for r in records[:20]:
            for f in ("start", "end", "first_seen", "last_seen"):
                if f in r:
                    self.assertRegex(r[f], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class CountRotationCompressedTest(RecordsBase):
    records = {"enabled": "true", "period": "1h", "interval": "1s", "max_records": 3, "compress": "gzip",
               "types": {"interface": "csv", "host": "jsonl"}}

    def test_record_count_rotation_gzip(self):
        """max_records 3: files close when they hold 3 records ("full"); compress: every closed
        file is a valid gzip stream named .gz, FileRotated gives the uncompressed size; the
        decompressed records still sum to ListInterfaces == capture."""
        self.daemon.start()
        self.traffic()
        self.traffic()  # several 1 s intervals of 4 interface records each
        names = self.rcall_ok("Rotate")[0]
        h.wait_until(lambda: set(names) <= {s["data"][0] for s in self.rotated("demand")}, 15,
                     "FileRotated(demand) for each file Rotate returned")
        cap = self.finish_capture()
        files = sorted(n for n in os.listdir(self.spool) if not n.startswith("."))
        self.assertTrue(files)
        self.assertTrue(all(n.endswith(".csv.gz") or n.endswith(".jsonl.gz") for n in files), files)
        full = self.rotated("full")
        h.log(f"spool: {len(files)} gzip files, {len(full)} closed at 3 records")
        self.assertGreaterEqual(len(full), 2, "3-record files must fill up")
        for s in self.rotated():
            name, _rtype, nrec, nbytes, reason = s["data"]
            path = os.path.join(self.spool, name)
            with open(path, "rb") as f:
                raw = gzip.decompress(f.read())  # raises on a torn or invalid stream
            self.assertEqual(len(raw), nbytes, f"{name}: FileRotated bytes is the uncompressed size")
            self.assertEqual(len(h.read_record_file(path)), nrec, name)
            if reason == "full":
                self.assertEqual(nrec, 3, f"{name} closed as full with {nrec} records")
            else:
                self.assertLessEqual(nrec, 3, name)
        self.assertEqual(sorted(s["data"][0] for s in self.rotated()), files, "a signal per file, no other file")
        self.check_interface_sums(h.read_records(self.spool), cap)


class TimerRotationTest(RecordsBase):
    records = {"enabled": "true", "period": "4s", "interval": "1s", "types": ["interface"]}

    def test_timer_rotation_and_settings(self):
        self.daemon.start()
        stream = {}
        th = threading.Thread(target=lambda: stream.update(
            r=h.client_run(self.topo, "udpfor", self.topo.SRV4, PORT, 300, 13, 40010, 0.005, timeout=80)))
        th.start()
        th.join()
        self.monitor.wait_for("FileRotated", count=3, timeout=15, interface=RECORDS_IFACE)
        time.sleep(1.5)  # time: one record interval (1 s) + slack, so the stream's last packets are in a record
        period = self.rotated("period")
        lags = []
        for s in period:
            boundary = int(s["at"] / 4) * 4
            lags.append(s["at"] - boundary)
        h.log("timer rotation lags after the 4 s boundary: " + ", ".join(f"{x:.3f}s" for x in lags))
        self.assertGreaterEqual(len(period), 3, "a 4 s period over 13+ s must rotate at least 3 times")
        self.assertTrue(all(0 <= x < 0.2 + 0.3 for x in lags), f"rotation lags {lags} exceed poll + 0.3 s")
        # Each period file's records lie within its period.
        for s in period:
            recs = h.read_record_file(os.path.join(self.spool, s["data"][0]))
            boundary = int(s["at"] / 4) * 4
            for r in recs:
                end = time.mktime(time.strptime(r["end"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                self.assertLessEqual(end, boundary + 1, f"{s['data'][0]}: record ends after its boundary: {r}")
                self.assertGreaterEqual(end, boundary - 4 - 1, f"{s['data'][0]}: record from an earlier period")

        # Settings: validated, all or nothing, persisted, privileged.
        before = self.setting_values()
        p, _ = self.rcall("SetSettings", "a{sv}", 2, "period", "s", "2s", "interval", "s", "banana")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("interval", p.stderr)
        # (files_closed and the like move on: the 4 s period goes on rotating meanwhile.)
        self.assertEqual(self.setting_values(), before, "a refused SetSettings changed something")
        p, _ = self.rcall("SetSettings", "a{sv}", 1, "colour", "s", "red")
        self.assertNotEqual(p.returncode, 0)
        p, _ = self.rcall("SetSettings", "a{sv}", 1, "period", "s", "8s", user=NOBODY)
        self.assertNotEqual(p.returncode, 0, "SetSettings must be refused to nobody")
        self.assertIn("Access denied", p.stderr)
        p, _ = self.rcall("Rotate", user=NOBODY)
        self.assertNotEqual(p.returncode, 0, "Rotate must be refused to nobody")
        self.assertIn("Access denied", p.stderr)
        ctl = h.Ctl(self.bus.address)
        p = ctl.run("records", "set", "period=soon")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("InvalidArgument", p.stderr)
        self.assertEqual(self.setting_values(), before)
        p, data = self.rcall("ListSpool", user=NOBODY)
        self.assertEqual(p.returncode, 0, f"ListSpool is a read: {p.stderr}")
        self.assertEqual(sorted(x[0] for x in data[0]), sorted(os.listdir(self.spool)))
        # A file is open (traffic, then an interval boundary) when the formats change.
        cur = os.path.join(self.daemon.state_dir, "records", "current")
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "100", 3, 40011)
        h.wait_until(lambda: any(n.endswith(".open") for n in os.listdir(cur)), 5, "an open record file")
        p = ctl.run("records", "set", "types=interface=jsonl,host=csv", "max_records=5")
        self.assertEqual(p.returncode, 0, p.stderr)
        after = ctl.json("records", "status")["records"]
        self.assertEqual({k: after[k] for k in self.SETTING_KEYS}, self.setting_values())
        spool = ctl.json("records", "spool")["spool"]
        self.assertEqual(sorted(f["name"] for f in spool), sorted(os.listdir(self.spool)))
        self.assertEqual(after["types"], "interface=jsonl,host=csv")
        self.assertEqual(after["max_records"], 5)
        self.assertEqual(sorted(after["overridden"]), ["max_records", "types"])
        with open(os.path.join(self.daemon.state_dir, "records.json")) as f:
            self.assertEqual(json.load(f), {"types": "interface=jsonl,host=csv", "max_records": 5})
        h.wait_until(lambda: self.rotated("settings"), 10, "FileRotated(settings): a format change closes open files")

        cap = self.finish_capture()
        self.rcall_ok("Rotate")
        records = h.read_records(self.spool)
        self.check_interface_sums(records, cap)
        # A restart keeps the D-Bus settings.
        self.daemon.stop(keep_pins=True)
        self.daemon.start()
        self.assertEqual(self.settings()["types"], "interface=jsonl,host=csv")
        # Switched off: nothing stays open and traffic writes nothing; switched on: records again.
        def open_files():
            return [n for n in os.listdir(cur) if n.endswith(".open")]
        self.assertEqual(ctl.run("records", "set", "enabled=false").returncode, 0)
        h.wait_until(lambda: not open_files(), 10, "no open record file once recording is off")
        spooled = sorted(os.listdir(self.spool))
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "100", 5, 40012)
        self.daemon.wait_polls(8)  # more than one 1 s interval
        self.assertEqual((open_files(), sorted(os.listdir(self.spool))), ([], spooled), "written while off")
        self.assertEqual(ctl.run("records", "set", "enabled=true").returncode, 0)
        self.daemon.wait_polls(2)  # switched on, usage counts from the totals at the next poll
        on = self.list_interfaces()
        h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "100", 5, 40013)
        # Written at the next 1 s interval into a new open file, or, when that is also a 4 s period
        # boundary, into a file closed at once: either way something new.
        h.wait_until(lambda: open_files() or sorted(os.listdir(self.spool)) != spooled, 10,
                     "records written again once recording is on")
        self.rcall_ok("Rotate")
        new = [r for r in h.read_records(self.spool) if r["_file"] not in spooled and r["_type"] == "interface"]
        sums = h.sum_records(new, lambda r: (r["interface"], r["direction"]))
        end = self.list_interfaces()
        for key in [("lan0", "ingress"), ("wan0", "egress")]:
            self.assertEqual(sums.get(key, h.zero()), h.csub(end[key], on[key]),
                             f"{key}: the records since switching on == the ListInterfaces delta")
            self.assertGreaterEqual(sums[key]["packets"], 5, key)
        h.log(f"switched on again: records since then: lan0 ingress {h.fmt_c(sums[('lan0', 'ingress')])}")


class CrashRecoveryTest(RecordsBase):
    records = {"enabled": "true", "period": "1h", "interval": "1s", "types": ["interface", "host"]}

    def test_sigkill_loses_and_duplicates_nothing(self):
        self.daemon.start()
        t = self.topo
        for i in range(2):
            stream = {}
            th = threading.Thread(target=lambda: stream.update(
                r=h.client_run(t, "udpfor", t.SRV4, PORT, 500, 4, 40020 + i, 0.004, timeout=60)))
            th.start()
            time.sleep(2.3)  # time: the kill falls in the middle of the 4 s stream
            # Files are open and hold records when the daemon dies.
            cur = os.path.join(self.daemon.state_dir, "records", "current")
            self.assertTrue([n for n in os.listdir(cur) if n.endswith(".open")], "no file open before the crash")
            self.daemon.proc.send_signal(signal.SIGKILL)
            self.daemon.proc.wait(10)
            self.daemon.stop(keep_pins=True)
            time.sleep(0.5)  # time: down for a moment while the stream goes on
            self.daemon.start()
            th.join()
        self.assertGreaterEqual(self.settings()["recovered_files"], 1, "the restarted daemon recovered nothing")
        recovered = [n for n in os.listdir(self.spool)]
        h.log(f"spool after two crashes: {recovered}")
        time.sleep(1.5)  # time: one record interval (1 s) + slack, so the stream's last packets are in a record
        self.rcall_ok("Rotate")
        cap = self.finish_capture()
        records = h.read_records(self.spool)
        self.check_interface_sums(records, cap)
        hosts = h.sum_records([r for r in records if r["_type"] == "host"],
                              lambda r: (r["interface"], r["mac"].lower(), h.norm_ip(r["ip"]), r["direction"]))
        want_hosts = {(k[0], k[1], k[2], side): c for k, v in cap.hosts.items() for side, c in v.items()
                      if c != h.zero()}
        want_hosts.update(want_wan(cap))
        self.assertEqual(hosts, want_hosts, "host records != capture hosts after crashes")


def want_wan(cap):
    """The host records' wan_sent / wan_received from the capture: this gateway routes (no NAT), so
    a LAN host's connections cross wan0 with its own address (wan egress: source; ingress:
    destination). IPv4 hosts only: nettallyd credits WAN figures to IPv4 hosts (README "NAT")."""
    out = {}
    for (iface, mac, ip) in cap.hosts:
        if ":" in ip:
            continue
        for side, d, pos in (("wan_sent", "egress", 3), ("wan_received", "ingress", 5)):
            c = h.zero()
            for k, v in cap.flows.items():
                if k[0] == "wan0" and k[1] == d and h.norm_ip(k[pos]) == ip:
                    c = h.cadd(c, v)
            if c != h.zero():
                out[(iface, mac, ip, side)] = c
    return out


if __name__ == "__main__":
    h.run_tests()
