#!/usr/bin/python3
"""Thresholds, burst and rate alerts over D-Bus (org.nettally.Accounting1.Thresholds), end to end:
nettallyd in the gateway namespace, a real TCP/UDP client and server, a private bus with the
shipped policy, the signals seen by a separate bus client (SignalMonitor) and by `nettallyctl
watch`, the figures checked against a packet capture on lan0.

  - quota: a host threshold (the client's IPv4 address, sent, l3, 1 MB step, 5 MB limit) and a
    6 MB upload: exactly floor(capture / step) StepCrossed (indices 1..n, in order) and one
    LimitReached; every signal's usage is a prefix sum of the client's captured packets (the
    usage at some instant), and GetUsage equals the capture's total;
  - burst: a fast 2 MB upload against a 200 kB step / 800 ms minimum interval and a 500 kB/s
    rate over 1 s, and a paced UDP exchange (~20 kB/s) against a 10 kB step / 200 ms interval:
    Burst and RateExceeded exactly as the capture's own step-crossing times and rate say;
  - access: add/modify/remove/reset refused to nobody (by the policy, and by the daemon behind a
    loosened policy), reads open; root may do all;
  - validation: bad definitions refused with InvalidArgument naming the key, nothing added;
  - config file: thresholds from `thresholds:` are listed as source config, refused to
    Modify/Remove over D-Bus, applied again on reload (unchanged ones keep their usage and
    signal nothing again), a bad one makes the reload fail with nothing changed;
  - restart: a runtime threshold and its state survive a daemon restart, no step signalled twice.
Topology: ntharness.py.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5007
IFACE = "org.nettally.Accounting1.Thresholds"
ERR_INVALID_ARGUMENT = "org.nettally.Accounting1.Error.InvalidArgument"
ERR_ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"


def variant(v):
    """A Python value as busctl arguments for one variant (ints as uint64 unless negative)."""
    if isinstance(v, bool):
        return ["b", "true" if v else "false"]
    if isinstance(v, int):
        return ["x" if v < 0 else "t", str(v)]
    return ["s", str(v)]


def busctl_args(values):
    """(signature, arguments) for busctl call: str -> s, dict -> a{sv}."""
    sig, argv = "", []
    for v in values:
        if isinstance(v, dict):
            sig += "a{sv}"
            argv.append(str(len(v)))
            for k, x in v.items():
                argv += [str(k)] + variant(x)
        else:
            sig += "s"
            argv.append(str(v))
    return sig, argv


def call_error(debug_log, method):
    """(error name, error message) of a failed call, from busctl's sd-bus debug log (busctl itself
    prints only the message, and for some names a text of its own instead: "Access denied"): the
    error whose reply_cookie is the cookie of the sent method call. (None, None) if there is none."""
    sent = re.search(r"^Sent message type=method_call .*\bmember=" + re.escape(method) + r" cookie=(\d+)\b",
                     debug_log, re.M)
    if not sent:
        return None, None
    got = re.search(r"^Got message type=error .*\breply_cookie=" + sent.group(1)
                    + r" .*\berror-name=(\S+) error-message=(.*)$", debug_log, re.M)
    return (got.group(1), got.group(2)) if got else (None, None)


class ThresholdBus:
    """The Thresholds interface through busctl (writes: the D-Bus error name is read from sd-bus's
    debug log)."""

    def __init__(self, bus):
        self.bus = bus

    def write(self, method, *args, user=None):
        """args: str (s) or dict (a{sv}). Returns (rc, error name or None, message)."""
        sig, argv = busctl_args(args)
        # "--": arguments such as -5 are values, not options.
        argv = ["busctl", f"--address={self.bus.address}", "--", "call", h.BUS_NAME, h.BUS_PATH, IFACE, method,
                sig] + argv
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
        p = h.run(argv, check=False, timeout=30, env=dict(self.bus.env(), SYSTEMD_LOG_LEVEL="debug"))
        if p.returncode == 0:
            return 0, None, p.stdout.strip()
        err, msg = call_error(p.stderr, method)
        if msg is None:  # no reply at all (busctl's own failure): its stderr, less the debug log
            msg = "\n".join(ln for ln in p.stderr.splitlines() if not re.match(r"(Sent|Got) message |Bus |sd-bus:", ln))
        return p.returncode, err, msg.strip()

    def add(self, d, user=None):
        return self.write("AddThreshold", d, user=user)

    def add_ok(self, d):
        rc, err, msg = self.add(d)
        if rc != 0:
            raise AssertionError(f"AddThreshold {d}: {err} {msg}")

    def read(self, method, *args, user=None):
        a = ["--json=short", "call", h.BUS_NAME, h.BUS_PATH, IFACE, method] + [str(x) for x in args]
        p = self.bus.busctl(*a, user=user)
        if p.returncode != 0:
            return p, None
        data = json.loads(p.stdout)["data"][0]
        return p, [{k: v["data"] for k, v in e.items()} for e in data]

    def read_ok(self, method, *args):
        p, data = self.read(method, *args)
        if p.returncode != 0:
            raise AssertionError(f"{method} {args}: {p.stderr}")
        return data

    def usage(self, name):
        return self.read_ok("GetUsage", "s", name)[0]

    def names(self):
        return sorted(t["name"] for t in self.read_ok("ListThresholds"))


def host_sent_packets(cap_path, mac, ip):
    """(time, l3) of every IPv4 packet the host sent, in capture order, read with tshark from the
    capture file (frame times: ground truth for when each step was crossed)."""
    out = h.run(["tshark", "-r", cap_path, "-n", "-T", "fields", "-E", "separator=/t",
                 "-e", "frame.time_epoch", "-e", "eth.src", "-e", "ip.src", "-e", "ip.len"], timeout=120).stdout
    pkts = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) >= 4 and f[1].lower() == mac and f[2] == ip and f[3]:
            pkts.append((float(f[0]), int(f[3])))
    return pkts


def crossing_times(pkts, step):
    """Capture time at which the running sum first reached each k * step."""
    times, total, k = [], 0, 1
    for t, n in pkts:
        total += n
        while total >= k * step:
            times.append(t)
            k += 1
    return times


def max_rate(pkts, window_s):
    """Highest bytes/s over any window_s-long span ending at a packet."""
    best, j, acc = 0.0, 0, 0
    for i, (t, n) in enumerate(pkts):
        acc += n
        while pkts[j][0] < t - window_s:
            acc -= pkts[j][1]
            j += 1
        best = max(best, acc / window_s)
    return best


class ThresholdsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.require_tools("tshark")
        h.open_env(cls)
        # Alert records (records type "alert") are written for every signal; checked in the quota test.
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, flows=h.NO_EVICTION,
                              extra="records:\n  enabled: true\n  types: [alert]\n  format: jsonl\n")
        cls.ctl = h.Ctl(cls.bus.address)
        cls.tb = ThresholdBus(cls.bus)
        cls.server = None
        cls.monitor = None
        try:
            cls.daemon.start()
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
            cls.monitor = h.SignalMonitor(cls.bus).start()
            cls.topo.settle()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.monitor:
            cls.monitor.stop()
        if cls.server:
            cls.server.stop()
        cls.daemon.stop()
        cls.bus.stop()
        cls.topo.down()

    def sigs(self, member, name):
        return [s for s in self.monitor.signals(member, IFACE) if s["data"][0] == name]

    def measured(self, fn):
        """Runs traffic fn() inside an exact capture window on lan0; returns the Capture."""
        cap = h.Capture(self.topo, "lan0", self.workdir).start()
        cap.wait_running()
        self.daemon.wait_polls(2)
        fn()
        self.daemon.wait_polls(3)
        cap.stop()
        return cap

    # -- quota: steps and limit ------------------------------------------------------------------

    def test_quota_steps_and_limit_match_capture(self):
        step, limit = 1_000_000, 5_000_000
        self.tb.add_ok({"name": "cli-quota", "subject_kind": "host", "subject": self.topo.CLI4,
                        "direction": "sent", "layer": "l3", "period": "since", "step": "1MB", "limit": "5MB"})
        self.addCleanup(self.tb.write, "RemoveThreshold", "cli-quota")
        self.daemon.wait_polls(2)
        self.assertEqual(self.tb.usage("cli-quota")["usage"], 0, "a new threshold counts from now")
        watch = subprocess.Popen([h.nettallyctl_path(), "watch", "--json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address))
        try:
            time.sleep(0.5)  # watch subscribed
            cap = self.measured(lambda: h.client_run(self.topo, "tcp", self.topo.SRV4, PORT, 6_000_000, 0))
        finally:
            watch.send_signal(signal.SIGINT)
            w_out, w_err = watch.communicate(timeout=10)
        self.assertEqual(watch.returncode, 0, f"nettallyctl watch exit status: {w_err}")

        pkts = host_sent_packets(cap.path, h.Topology.MAC["cli"], self.topo.CLI4)
        truth = sum(n for _, n in pkts)
        res = h.analyse([cap])
        self.assertEqual(truth, res.hosts[("lan0", h.Topology.MAC["cli"], self.topo.CLI4)]["sent"]["l3"],
                         "capture readings agree")
        u = self.tb.usage("cli-quota")
        self.assertEqual(u["usage"], truth, "GetUsage == capture (host sent l3)")
        n = truth // step
        self.assertGreaterEqual(n, 6, f"6 MB upload: {truth} bytes")
        steps = self.sigs("StepCrossed", "cli-quota")
        self.assertEqual([s["data"][3] for s in steps], list(range(1, n + 1)), "one StepCrossed per step, in order")
        prefix, acc = {0}, 0
        for _, b in pkts:
            acc += b
            prefix.add(acc)
        for s in steps:
            name, subject, usage, idx, when, skipped = s["data"]
            self.assertEqual(subject, f"host:{self.topo.CLI4}")
            self.assertEqual(skipped, 0)
            self.assertGreaterEqual(usage, idx * step, f"step {idx}: usage {usage}")
            self.assertIn(usage, prefix, f"step {idx}: usage {usage} is the client's traffic up to some packet")
        limits = self.sigs("LimitReached", "cli-quota")
        self.assertEqual(len(limits), 1 if truth >= limit else 0, f"LimitReached: {limits}")
        self.assertGreaterEqual(limits[0]["data"][2], limit)
        self.assertEqual(limits[0]["data"][3], limit)
        self.assertIn(limits[0]["data"][2], prefix)
        self.assertTrue(u["limit_reached"])
        self.assertEqual(u["step_index"], n)

        # nettallyctl watch saw the same signals as the bus monitor.
        lines = [json.loads(x) for x in w_out.splitlines() if x.strip()]
        w_steps = [x["step_index"] for x in lines if x["signal"] == "StepCrossed" and x["name"] == "cli-quota"]
        self.assertEqual(w_steps, list(range(1, n + 1)), f"nettallyctl watch: {w_out[:2000]}")
        self.assertEqual(sum(1 for x in lines if x["signal"] == "LimitReached" and x["name"] == "cli-quota"), 1)
        # The alert records say what the signals said: closed into the spool on demand.
        self.bus.busctl("call", h.BUS_NAME, h.BUS_PATH, "org.nettally.Accounting1.Records", "Rotate")
        spool = os.path.join(self.daemon.state_dir, "spool")
        alerts = [r for r in h.read_records(spool, "alert") if r["name"] == "cli-quota"]
        rec_steps = [r for r in alerts if r["event"] == "step_crossed"]
        self.assertEqual([(r["value"], r["limit"]) for r in rec_steps],
                         [(s["data"][2], s["data"][3] * step) for s in steps], f"alert records: {alerts[:3]}")
        for r in rec_steps:
            self.assertEqual((r["subject_kind"], r["subject"], r["metric"]), ("host", self.topo.CLI4, "l3_sent"))
        rec_limits = [r for r in alerts if r["event"] == "limit_reached"]
        self.assertEqual([(r["value"], r["limit"]) for r in rec_limits], [(limits[0]["data"][2], limit)])

        # nettallyctl thresholds usage reads the same figure.
        rows = self.ctl.json("thresholds", "usage")["usage"]
        self.assertEqual([r["usage"] for r in rows if r["name"] == "cli-quota"], [truth])

    def test_interface_flow_and_mac_subjects_match_capture(self):
        """Interface subjects (received = ingress, sent = egress), a flow-aggregate subject and a
        host by MAC (all its addresses) count, layer by layer, what the capture of lan0 saw of a
        2 MB upload."""
        step = 250_000
        subjects = {
            "lan0-in-l2": ("interface", "lan0", "received", "l2"),
            "lan0-out-l4": ("interface", "lan0", "sent", "l4"),
            "upload-payload": ("flow", f"iface=lan0,proto=tcp,dport={PORT}", "received", "payload"),
            "cli-mac-l2": ("host", h.Topology.MAC["cli"], "sent", "l2"),
        }
        for name, (kind, subject, direction, layer) in subjects.items():
            self.tb.add_ok({"name": name, "subject_kind": kind, "subject": subject, "direction": direction,
                            "layer": layer, "period": "since", "step": "250kB"})
            self.addCleanup(self.tb.write, "RemoveThreshold", name)
        start = {}

        def upload():
            start.update({n: self.tb.usage(n)["usage"] for n in subjects})
            h.client_run(self.topo, "tcp", self.topo.SRV4, PORT, 2_000_000, 0)
        res = h.analyse([self.measured(upload)])
        flow = h.zero()
        for k, c in res.flows.items():
            if k[:3] == ("lan0", "ingress", "tcp") and k[6] == PORT:
                flow = h.cadd(flow, c)
        mac_sent = sum(v["sent"]["l2"] for k, v in res.hosts.items() if k[:2] == ("lan0", h.Topology.MAC["cli"]))
        truth = {"lan0-in-l2": res.iface("lan0", "ingress")["l2"],
                 "lan0-out-l4": res.iface("lan0", "egress")["l4"],
                 "upload-payload": flow["payload"],
                 "cli-mac-l2": mac_sent}
        for name, want in truth.items():
            usage = self.tb.usage(name)["usage"]
            h.log(f"{name}: usage {usage} (from {start[name]}), capture {want}")
            self.assertEqual(usage - start[name], want, f"{name}: GetUsage != capture")
            steps = self.sigs("StepCrossed", name)
            self.assertEqual([x["data"][3] for x in steps], list(range(1, usage // step + 1)), name)
            kind, subject = subjects[name][:2]
            self.assertTrue(all(x["data"][1] == f"{kind}:{subject}" for x in steps), steps[:1])
        self.assertGreater(truth["upload-payload"], 2_000_000 - 1, "the whole upload is payload of that flow")

    # -- burst and rate ------------------------------------------------------------------------

    def check_bursts(self, name, step, min_ms, rate_bps, rate_win, traffic):
        self.tb.add_ok({"name": name, "subject_kind": "host", "subject": self.topo.CLI4, "direction": "sent",
                        "layer": "l3", "period": "since", "step": step, "min_interval_ms": min_ms,
                        "rate_bps": rate_bps, "rate_window_s": rate_win})
        self.addCleanup(self.tb.write, "RemoveThreshold", name)
        self.daemon.wait_polls(2)
        cap = self.measured(traffic)
        pkts = host_sent_packets(cap.path, h.Topology.MAC["cli"], self.topo.CLI4)
        truth = sum(n for _, n in pkts)
        times = crossing_times(pkts, step)
        self.assertEqual(self.tb.usage(name)["usage"], truth, "GetUsage == capture")
        steps = self.sigs("StepCrossed", name)
        self.assertEqual([s["data"][3] for s in steps], list(range(1, len(times) + 1)))
        gaps = [b - a for a, b in zip(times, times[1:])]
        want = sum(1 for g in gaps if g * 1000 < min_ms)
        bursts = self.sigs("Burst", name)
        h.log(f"{name}: {truth} bytes, {len(times)} steps, capture gaps (ms) "
              f"{[round(g * 1000) for g in gaps]}, Burst intervals {[b['data'][2] for b in bursts]}")
        for g in gaps:
            self.assertGreater(abs(g * 1000 - min_ms), 150, "no step gap near the minimum interval: ambiguous")
        self.assertEqual(len(bursts), want, "Burst exactly where the capture's step gaps are short")
        for b in bursts:
            self.assertLess(b["data"][2], min_ms)
            self.assertEqual(b["data"][3], min_ms)
        peak = max_rate(pkts, rate_win)
        rates = self.sigs("RateExceeded", name)
        h.log(f"{name}: capture peak {peak:.0f} B/s over {rate_win} s; RateExceeded {[r['data'][2] for r in rates]}")
        self.assertNotAlmostEqual(peak, rate_bps, delta=rate_bps * 0.3, msg="peak rate too close to the limit")
        self.assertEqual(len(rates), 1 if peak > rate_bps else 0, f"RateExceeded: {rates}")
        for r in rates:
            self.assertGreater(r["data"][2], rate_bps)
        return len(times), len(bursts), len(rates)

    def test_fast_steps_are_bursts(self):
        n, bursts, rates = self.check_bursts(
            "burst-fast", 200_000, 800, 500_000, 1,
            lambda: h.client_run(self.topo, "tcp", self.topo.SRV4, PORT, 2_000_000, 0))
        self.assertGreaterEqual(n, 10)
        self.assertGreaterEqual(bursts, n - 1, "a fast 2 MB upload crosses every step quickly")
        self.assertEqual(rates, 1)

    def test_paced_steps_are_not_bursts(self):
        n, bursts, rates = self.check_bursts(
            "burst-slow", 10_000, 200, 500_000, 1,
            lambda: h.client_run(self.topo, "udpfor", self.topo.SRV4, PORT, 1000, 4, 40123, 0.05))
        self.assertGreaterEqual(n, 4, "several steps crossed")
        self.assertEqual((bursts, rates), (0, 0))

    # -- access ----------------------------------------------------------------------------------

    def defn(self, name, **kw):
        d = {"name": name, "subject_kind": "interface", "subject": "lan0", "step": "1MB"}
        d.update(kw)
        return d

    def test_access_nobody_denied_root_allowed(self):
        tb = self.tb
        rc, err, msg = tb.add(self.defn("acl"), user=h.NOBODY)
        self.assertEqual(err, ERR_ACCESS_DENIED, f"AddThreshold as nobody: {msg}")
        self.assertNotIn("acl", tb.names())
        tb.add_ok(self.defn("acl"))
        self.addCleanup(tb.write, "RemoveThreshold", "acl")
        for method, args in (("ModifyThreshold", ("acl", {"step": "2MB"})), ("ResetPeriod", ("acl",)),
                             ("RemoveThreshold", ("acl",))):
            rc, err, msg = tb.write(method, *args, user=h.NOBODY)
            self.assertEqual(err, ERR_ACCESS_DENIED, f"{method} as nobody: {msg}")
        self.assertIn("acl", tb.names())
        self.assertEqual([t["step"] for t in tb.read_ok("ListThresholds") if t["name"] == "acl"], [1_000_000])
        for method in ("ListThresholds", "GetUsage"):
            p, data = tb.read(method, *(("s", "") if method == "GetUsage" else ()), user=h.NOBODY)
            self.assertEqual(p.returncode, 0, f"{method} as nobody: {p.stderr}")
            self.assertIn("acl", [t["name"] for t in data])
        p = self.ctl.run("thresholds", "list", user=h.NOBODY)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.ctl.run("thresholds", "remove", "acl", user=h.NOBODY)
        self.assertEqual(p.returncode, 1, f"nettallyctl remove as nobody: {p.stderr}")
        for method, args in (("ModifyThreshold", ("acl", {"step": "2MB"})), ("ResetPeriod", ("acl",)),
                             ("RemoveThreshold", ("acl",))):
            rc, err, msg = tb.write(method, *args)
            self.assertEqual((rc, err), (0, None), f"{method} as root: {msg}")
        self.assertNotIn("acl", tb.names())
        # nettallyctl as root: add, modify, list, remove.
        for argv in (("thresholds", "add", "acl2", "--interface", "wan0", "--step", "1MiB", "--limit", "3MiB"),
                     ("thresholds", "modify", "acl2", "--step", "512KiB")):
            p = self.ctl.run(*argv)
            self.assertEqual(p.returncode, 0, f"nettallyctl {argv}: {p.stderr}")
        rows = {t["name"]: t for t in self.ctl.json("thresholds", "list")["thresholds"]}
        self.assertEqual((rows["acl2"]["step"], rows["acl2"]["limit"], rows["acl2"]["subject"]),
                         (524288, 3 * 1048576, "wan0"))
        self.assertEqual(self.ctl.run("thresholds", "remove", "acl2").returncode, 0)
        self.assertNotIn("acl2", tb.names())

    def test_daemon_checks_the_caller_itself(self):
        loose = ('<policy context="default">\n'
                 f'    <allow send_destination="{h.BUS_NAME}"/>\n'
                 '  </policy>')
        topo = h.Topology().up()
        bus = h.PrivateBus(self.workdir, extra_policy=loose).start()
        d = h.Daemon(topo, bus, self.workdir)
        tb = ThresholdBus(bus)
        try:
            d.start()
            rc, err, msg = tb.add(self.defn("loose"), user=h.NOBODY)
            self.assertEqual(err, ERR_ACCESS_DENIED, f"AddThreshold as nobody behind a loose policy: {msg}")
            self.assertIn("needs root", msg, "refused by the daemon, not the policy")
            self.assertEqual(tb.names(), [])
            tb.add_ok(self.defn("loose"))
            for method, args in (("ModifyThreshold", ("loose", {"step": "2MB"})),
                                 ("ResetPeriod", ("loose",)), ("RemoveThreshold", ("loose",))):
                rc, err, msg = tb.write(method, *args, user=h.NOBODY)
                self.assertEqual(err, ERR_ACCESS_DENIED, f"{method} as nobody behind a loose policy: {msg}")
                self.assertIn("needs root", msg)
            self.assertEqual(tb.names(), ["loose"])
            self.assertEqual(tb.read_ok("ListThresholds")[0]["step"], 1_000_000, "denied Modify changed nothing")
        finally:
            d.stop()
            bus.stop()
            topo.down()

    # -- validation ------------------------------------------------------------------------------

    def test_bad_definitions_are_invalid_argument(self):
        self.tb.add_ok(self.defn("dup"))
        self.addCleanup(self.tb.write, "RemoveThreshold", "dup")
        before = self.tb.read_ok("ListThresholds")
        cases = [
            (self.defn("x", subject="eth9"), "subject", "unknown interface"),
            (self.defn("x", subject_kind="router"), "subject_kind", "unknown value"),
            (self.defn("x", subject_kind="host", subject="not-an-address"), "subject", ""),
            (self.defn("x", step=0), "step", "greater than 0"),
            (self.defn("x", step=-5), "step", "negative"),
            (self.defn("x", step="-1MB"), "step", "negative"),
            (self.defn("x", step="lots"), "step", ""),
            (self.defn("x", step="2MB", limit="1MB"), "step", "larger than the limit"),
            (self.defn("x", rate_bps="fast"), "rate_bps", ""),
            (self.defn("x", rate_bps=-1), "rate_bps", "negative"),
            (self.defn("x", min_interval_ms="soon"), "min_interval_ms", ""),
            (self.defn("dup"), "name", "exists already"),
            (self.defn("bad name!"), "name", ""),
            (self.defn("x", colour="red"), "colour", "unknown key"),
            (self.defn("x", period="rolling"), "window_s", "required"),
            (self.defn("x", direction="sideways"), "direction", "unknown value"),
            (self.defn("x", layer="l7"), "layer", "unknown value"),
            (self.defn("x", subject_kind="flow", subject="proto=tcp,dport=99999"), "subject", "port"),
            (self.defn("x", subject_kind="cgroup", subject="/system.slice"), "subject", "cgroup accounting is off"),
            ({"subject_kind": "interface", "subject": "lan0", "step": 1}, "name", "required"),
        ]
        for d, key, words in cases:
            with self.subTest(definition=d):
                rc, err, msg = self.tb.add(d)
                self.assertNotEqual(rc, 0, f"{d} must be refused")
                self.assertEqual(err, ERR_INVALID_ARGUMENT, msg)
                self.assertIn(f"{key}:", msg, "the message names the key")
                self.assertIn(words, msg)
        rc, err, msg = self.tb.write("ModifyThreshold", "dup", {"step": "2MB", "limit": "1MB"})
        self.assertEqual(err, ERR_INVALID_ARGUMENT, msg)
        rc, err, msg = self.tb.write("RemoveThreshold", "nosuch")
        self.assertEqual(err, ERR_INVALID_ARGUMENT, msg)
        self.assertEqual(self.tb.read_ok("ListThresholds"), before, "nothing half-applied")
        self.assertTrue(self.daemon.alive())

    # -- thresholds from the config file --------------------------------------------------------

    def test_config_thresholds_reload_and_are_read_only(self):
        base = self.daemon.config_args["extra"]

        def configure(*entries):
            text = base + "thresholds:\n" + "".join(
                "  - " + "\n    ".join(f"{k}: {v}" for k, v in e.items()) + "\n" for e in entries)
            self.daemon.write_config(self.daemon.config(extra=text))
            return self.ctl.run("reload")

        def listed():
            return {t["name"]: t for t in self.tb.read_ok("ListThresholds")}

        def restore():
            self.daemon.write_config(self.daemon.config())
            self.ctl.run("reload")
        self.addCleanup(restore)
        step = 100_000
        quota = {"name": "cfg-quota", "subject_kind": "host", "subject": self.topo.CLI4, "direction": "sent",
                 "period": "since", "step": "100kB"}
        self.assertEqual(configure(quota).returncode, 0)
        self.assertEqual(listed()["cfg-quota"]["source"], "config")
        # Read-only over D-Bus (ResetPeriod is allowed: it changes usage, not the definition).
        for method, args in (("ModifyThreshold", ("cfg-quota", {"step": "2MB"})),
                             ("RemoveThreshold", ("cfg-quota",))):
            rc, err, msg = self.tb.write(method, *args)
            self.assertEqual(err, ERR_INVALID_ARGUMENT, f"{method}: {msg}")
            self.assertIn("config file", msg)
        rc, err, msg = self.tb.add(dict(quota, step=1))
        self.assertEqual(err, ERR_INVALID_ARGUMENT, msg)
        self.daemon.wait_polls(2)
        h.client_run(self.topo, "tcp", self.topo.SRV4, PORT, 350_000, 0)
        self.daemon.wait_polls(3)
        u = self.tb.usage("cfg-quota")
        steps = [x["data"][3] for x in self.sigs("StepCrossed", "cfg-quota")]
        self.assertEqual(steps, list(range(1, u["usage"] // step + 1)))
        self.assertGreaterEqual(len(steps), 3)
        # A reload that adds one keeps the unchanged one's usage and signals nothing again.
        lan = {"name": "cfg-lan", "subject_kind": "interface", "subject": "lan0", "period": "since", "step": "1MB"}
        self.assertEqual(configure(quota, lan).returncode, 0)
        self.assertEqual(sorted(n for n, t in listed().items() if t["source"] == "config"), ["cfg-lan", "cfg-quota"])
        self.daemon.wait_polls(2)
        again = self.tb.usage("cfg-quota")
        self.assertEqual((again["usage"], again["step_index"]), (u["usage"], u["step_index"]), "usage kept")
        self.assertEqual(len(self.sigs("StepCrossed", "cfg-quota")), len(steps), "no step signalled again")
        # A bad threshold in the file: the reload is refused and nothing changes.
        before = listed()
        p = configure(quota, dict(lan, step="2MB", limit="1MB"))
        self.assertNotEqual(p.returncode, 0, "a reload with step > limit must be refused")
        self.assertIn("limit", p.stderr)
        self.assertEqual(listed(), before, "nothing half-applied")
        # Removed from the file: gone after the reload.
        self.assertEqual(configure(quota).returncode, 0)
        self.assertNotIn("cfg-lan", listed())
        h.log(f"config thresholds: cfg-quota usage {u['usage']} kept over reloads, {len(steps)} steps signalled once")

    # -- restart ---------------------------------------------------------------------------------

    def test_runtime_threshold_survives_restart(self):
        step = 100_000
        self.tb.add_ok({"name": "persist", "subject_kind": "host", "subject": self.topo.CLI4, "direction": "sent",
                        "period": "since", "step": step})
        self.addCleanup(self.tb.write, "RemoveThreshold", "persist")
        self.daemon.wait_polls(2)
        h.client_run(self.topo, "tcp", self.topo.SRV4, PORT, 350_000, 0)
        self.daemon.wait_polls(3)
        before = self.tb.usage("persist")
        listed = [t for t in self.tb.read_ok("ListThresholds") if t["name"] == "persist"]
        n = before["usage"] // step
        self.assertGreaterEqual(n, 3)
        self.assertEqual(len(self.sigs("StepCrossed", "persist")), n)
        self.assertEqual(self.daemon.stop(keep_pins=True), 0, self.daemon.log_tail())
        self.daemon.start()
        self.daemon.wait_polls(3)
        self.assertEqual([t for t in self.tb.read_ok("ListThresholds") if t["name"] == "persist"], listed,
                         "runtime threshold listed again, same definition")
        after = self.tb.usage("persist")
        for k in ("usage", "step_index", "period_start", "last_crossing"):
            self.assertEqual(after[k], before[k], f"{k} kept across the restart")
        self.assertEqual(len(self.sigs("StepCrossed", "persist")), n, "no step signalled again")
        # Counting continues from the saved state: the next steps are signalled once each.
        h.client_run(self.topo, "tcp", self.topo.SRV4, PORT, 250_000, 0)
        self.daemon.wait_polls(3)
        final = self.tb.usage("persist")
        idx = [s["data"][3] for s in self.sigs("StepCrossed", "persist")]
        self.assertEqual(idx, list(range(1, final["usage"] // step + 1)))
        self.assertGreater(final["usage"], before["usage"] + 250_000)


if __name__ == "__main__":
    h.run_tests()
