#!/usr/bin/python3
"""Acceptance test for accounting: nettallyd's counters equal an independent capture, exactly.

nettallyd runs in the gateway namespace on lan0 (lan) and wan0 (wan) (topology in ntharness.py).
The client sends UDP (several sizes, up to a full 1500-byte packet, and fragmented datagrams), TCP (a
few hundred KB each way) and ICMP echo (several sizes, fragmented too) over IPv4 and IPv6 to the
server through the gateway, plus a few non-IP frames to the gateway. dumpcap captures lan0 and wan0
for one exact window; the deltas nettallyctl reports over that window must equal the capture's sums
for every interface x direction x figure, every bucket, every flow and every host; the
reconciliation invariant must hold exactly at the end, and the daemon's own reconciliation checks
must report no violation while the traffic runs (GetStatus sampled throughout).
RestartTest: SIGTERM leaves the programs counting into the pinned maps and a restart continues
exactly (traffic sent while nettallyd was down included); `nettallyd --detach` uninstalls.
FlowOverflowTest: a flow map smaller than the traffic; the overflow bucket gets exactly the flows
that found no entry.
"""

import os
import re
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5001
# 1472/1452: a full 1500-byte packet; 3000: fragments (DESIGN.md: a fragment's l4 is its share,
# non-first fragments have no ports and payload = l4)
UDP_SIZES = {4: [1, 100, 1000, 1472, 3000], 6: [1, 100, 1000, 1452, 3000]}
ICMP_SIZES = {4: [0, 56, 1000, 1472, 3000], 6: [0, 56, 1000, 1452, 3000]}
UDP_COUNT = 3
ICMP_COUNT = 2
TCP_BYTES = (300_000, 400_000)  # upload, download
NON_IP_LENGTHS = (60, 100, 1514)
NON_IP_ETHERTYPE = 0x88B5  # IEEE 802 local experimental
IFACES = ("lan0", "wan0")


def wire_packets(family, l4):
    """Packets for a transport segment of l4 bytes at MTU 1500 (fragments carry multiples of 8)."""
    room = 1500 - (20 if family == 4 else 40)
    if l4 <= room:
        return 1
    per = (room - (0 if family == 4 else 8)) // 8 * 8
    return -(-l4 // per)


def send_non_ip(topo):
    """Raw Ethernet frames of a non-IP ethertype from the client to the gateway's lan0."""
    code = (
        "import socket,struct,sys\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
        "s.bind(('eth0',0))\n"
        f"dst=bytes.fromhex('{h.Topology.MAC['lan0'].replace(':', '')}')\n"
        f"src=bytes.fromhex('{h.Topology.MAC['cli'].replace(':', '')}')\n"
        f"for n in {list(NON_IP_LENGTHS)}:\n"
        f"    s.send(dst+src+struct.pack('!H',{NON_IP_ETHERTYPE})+bytes(n-14))\n")
    h.run(topo.exec_argv(topo.cli, [h.PYTHON, "-c", code]))


class StatusSampler(threading.Thread):
    """Reads GetStatus every interval while traffic runs. The window lasts about half a second on
    a quiet machine, so the interval is a small part of it (0.25 s gave 2 samples there)."""

    def __init__(self, bus, interval=0.05):
        super().__init__(daemon=True)
        self.bus, self.interval = bus, interval
        self.samples, self.errors = [], []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                self.samples.append(self.bus.status())
            except Exception as e:  # reported by the test
                self.errors.append(repr(e))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(30)


class AccountingTest(unittest.TestCase):
    """One measured window in setUpClass; each test checks one aspect of it."""

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", flows=h.NO_EVICTION)
        cls.ctl = h.Ctl(cls.bus.address)
        try:
            cls.daemon.start()
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
            cls.topo.settle()
            cls._measure()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _measure(cls):
        topo, bus = cls.topo, cls.bus
        caps = [h.Capture(topo, i, cls.workdir).start() for i in IFACES]
        try:
            for c in caps:
                c.wait_running()
            # The baseline is the state of a poll made after the capture started.
            cls.status_before = cls.daemon.wait_polls(2)
            cls.before = cls.ctl.snapshot()
            sampler = StatusSampler(bus)
            sampler.start()
            cls.traffic = []
            cls.window = [time.time(), None]  # wall clock, for first_seen/last_seen
            try:
                for fam, srv in ((4, topo.SRV4), (6, topo.SRV6)):
                    sizes = ",".join(map(str, UDP_SIZES[fam]))
                    cls.traffic.append(("udp", fam, h.client_run(topo, "udp", srv, PORT, sizes, UDP_COUNT)))
                    cls.traffic.append(("tcp", fam, h.client_run(topo, "tcp", srv, PORT, *TCP_BYTES)))
                    sizes = ",".join(map(str, ICMP_SIZES[fam]))
                    cls.traffic.append(("icmp", fam, h.client_run(topo, "icmp", srv, sizes, ICMP_COUNT)))
                send_non_ip(topo)
            finally:
                sampler.stop()
                cls.window[1] = time.time()
            cls.samples, cls.sample_errors = sampler.samples, sampler.errors
            # Every packet is in a poll that started after the traffic ended.
            cls.status_after = cls.daemon.wait_polls(2)
            cls.after = cls.ctl.snapshot()
            cls.after_bus = h.bus_snapshot(bus)
            cls.status_end = bus.status()
        finally:
            for c in caps:
                c.stop()
        cls.capture = h.analyse(caps, lan_ifaces=("lan0",))

    @classmethod
    def _teardown(cls):
        for name in ("server",):
            obj = getattr(cls, name, None)
            if obj:
                obj.stop()
        if getattr(cls, "daemon", None):
            cls.daemon.stop()
        if getattr(cls, "bus", None):
            cls.bus.stop()
        if getattr(cls, "topo", None):
            cls.topo.down()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    # -- helpers -------------------------------------------------------------------------------

    def _report(self, problems, what):
        if problems:
            stray = [f"  capture flow {k}: {h.fmt_c(v)}"
                     for k, v in sorted(self.capture.flows.items(), key=str) if not self._generated(k)]
            msg = f"{len(problems)} {what} mismatch(es) (nettally delta vs capture):\n" + "\n".join(problems)
            if stray:
                msg += "\nflows in the capture that the test did not generate:\n" + "\n".join(stray)
            self.fail(msg)

    @staticmethod
    def _generated(key):
        _, _, proto, _, sport, _, dport = key
        return (proto in ("udp", "tcp") and PORT in (sport, dport)) or proto in ("icmp", "icmpv6")

    @staticmethod
    def _delta(after, before, key):
        return h.csub(after.get(key, h.zero()), before.get(key, h.zero()))

    # -- tests ---------------------------------------------------------------------------------

    def test_traffic_went_through(self):
        """The generators got their answers, so the window holds the traffic it should."""
        for kind, fam, r in self.traffic:
            with self.subTest(kind=kind, family=fam):
                if kind == "udp":
                    self.assertEqual(r["echoed"], r["sent"], f"UDP/IPv{fam} echoes: {r}")
                elif kind == "tcp":
                    self.assertEqual(r["down"], TCP_BYTES[1], f"TCP/IPv{fam} download: {r}")
                else:
                    self.assertEqual(r["replies"], r["sent"], f"ICMP/IPv{fam} replies: {r}")
        # The capture saw the UDP flows with exactly the wire packets sent.
        for kind, fam, r in self.traffic:
            if kind != "udp":
                continue
            cli = self.topo.CLI4 if fam == 4 else self.topo.CLI6
            srv = self.topo.SRV4 if fam == 4 else self.topo.SRV6
            up = ("lan0", "ingress", "udp", cli, r["sport"], srv, PORT)
            want = UDP_COUNT * sum(wire_packets(fam, s + 8) for s in UDP_SIZES[fam])
            self.assertEqual(self.capture.flows.get(up, h.zero())["packets"], want, f"capture of {up}")

    def test_interface_totals_equal_capture(self):
        problems = []
        for iface in IFACES:
            for d in h.DIRECTIONS:
                got = self._delta(self.after.ifaces, self.before.ifaces, (iface, d))
                want = self.capture.iface(iface, d)
                for f in h.FIGURES:
                    if got[f] != want[f]:
                        problems.append(f"  {iface} {d} {f}: nettally {got[f]} != capture {want[f]}")
        self._report(problems, "interface total")
        # Sanity: the window is not empty, and IP traffic crossed both ways.
        for iface in IFACES:
            for d in h.DIRECTIONS:
                self.assertGreater(self.capture.iface(iface, d)["payload"], 300_000, f"{iface} {d}")

    def test_unattributed_buckets_equal_capture(self):
        problems = []
        for iface in IFACES:
            for d in h.DIRECTIONS:
                for b in h.BUCKETS:
                    key = (iface, d, b)
                    self.assertIn(key, self.after.buckets, f"nettallyctl interfaces lacks {d}.{b} on {iface}")
                    got = self._delta(self.after.buckets, self.before.buckets, key)
                    want = self.capture.buckets.get(key, h.zero())
                    for f in h.FIGURES:
                        if got[f] != want[f]:
                            problems.append(f"  {iface} {d}.{b} {f}: nettally {got[f]} != capture {want[f]}")
        self._report(problems, "bucket")
        nonip = self.capture.buckets.get(("lan0", "ingress", "non_ip"), h.zero())
        self.assertEqual(nonip["packets"], len(NON_IP_LENGTHS), "non-IP frames in the capture")

    def test_flows_equal_capture(self):
        problems = []
        keys = set(self.capture.flows)
        keys |= {k for k in self.after.flows
                 if self._delta(self.after.flows, self.before.flows, k) != h.zero()}
        for k in sorted(keys, key=str):
            got = self._delta(self.after.flows, self.before.flows, k)
            want = self.capture.flows.get(k, h.zero())
            if got != want:
                problems.append(f"  flow {k}:\n      nettally {h.fmt_c(got)}\n      capture  {h.fmt_c(want)}")
        self._report(problems, "flow")
        # Every generated kind of flow is there, on both interfaces and in both directions.
        protos = {(k[0], k[1], k[2]) for k in self.capture.flows}
        for iface in IFACES:
            for d in h.DIRECTIONS:
                for p in ("udp", "tcp", "icmp", "icmpv6"):
                    self.assertIn((iface, d, p), protos, f"no {p} flow captured on {iface} {d}")

    def test_hosts_equal_capture(self):
        problems = []
        keys = set(self.capture.hosts)
        for k, v in self.after.hosts.items():
            b = self.before.hosts.get(k, {"sent": h.zero(), "received": h.zero()})
            if h.csub(v["sent"], b["sent"]) != h.zero() or h.csub(v["received"], b["received"]) != h.zero():
                keys.add(k)
        empty = {"sent": h.zero(), "received": h.zero()}
        for k in sorted(keys):
            a, b = self.after.hosts.get(k, empty), self.before.hosts.get(k, empty)
            want = self.capture.hosts.get(k, empty)
            for side in ("sent", "received"):
                got = h.csub(a[side], b[side])
                if got != want[side]:
                    problems.append(f"  host {k} {side}:\n      nettally {h.fmt_c(got)}\n"
                                    f"      capture  {h.fmt_c(want[side])}")
        self._report(problems, "host")
        for ip in (self.topo.CLI4, self.topo.CLI6):
            self.assertIn(("lan0", h.Topology.MAC["cli"], ip), self.capture.hosts, f"client {ip} captured")
        self.assertFalse([k for k in self.after.hosts if k[0] != "lan0"], "hosts are counted on lan only")

    def test_reconciliation_invariant(self):
        """total == sum of flows + unattributed buckets, exactly, per interface and direction.
        ListFlows lists live flows only, so the daemon runs with flows.idle_timeout 1h: none is
        evicted during the test, and the listed flows are all of them."""
        problems = []
        for iface in IFACES:
            for d in h.DIRECTIONS:
                total = self.after.ifaces[(iface, d)]
                flows = h.zero()
                for k, c in self.after.flows.items():
                    if k[0] == iface and k[1] == d:
                        flows = h.cadd(flows, c)
                buckets = h.zero()
                for b in h.BUCKETS:
                    buckets = h.cadd(buckets, self.after.buckets.get((iface, d, b), h.zero()))
                s = h.cadd(flows, buckets)
                for f in h.FIGURES:
                    if total[f] != s[f]:
                        problems.append(f"  {iface} {d} {f}: total {total[f]} != flows {flows[f]} "
                                        f"+ buckets {buckets[f]}")
        if problems:
            self.fail("reconciliation invariant broken:\n" + "\n".join(problems))

    def test_daemon_reconciliation_checks(self):
        self.assertFalse(self.sample_errors, "GetStatus failed while traffic ran")
        self.assertGreaterEqual(len(self.samples), 3, "status samples while traffic ran")
        every = [self.status_before] + self.samples + [self.status_after, self.status_end]
        for i, s in enumerate(every):
            self.assertEqual(s["reconcile_violations"], 0, f"sample {i}: {s}")
        self.assertGreater(self.status_end["reconcile_checks"], self.status_before["reconcile_checks"],
                           "reconcile_checks must grow while the daemon polls")
        self.assertGreater(self.status_end["reconcile_checks"], 0)
        self.assertGreater(self.status_end["polls"], self.status_before["polls"])
        polls = [s["polls"] for s in every]
        self.assertEqual(polls, sorted(polls), "polls never go back")
        self.assertLessEqual(self.status_end["reconcile_exact"], self.status_end["reconcile_checks"])
        self.assertEqual(self.status_end["interfaces"], 2)
        self.assertEqual(self.status_end["flow_overflow_packets"], 0)
        self.assertEqual(self.status_end["host_overflow_packets"], 0)
        self.assertTrue(any(line.startswith("STATUS=") for m in self.daemon.notify for line in m.split("\n")),
                        f"sd_notify STATUS= sent: {self.daemon.notify[:3]}")

    def test_nettallyctl_matches_bus(self):
        """nettallyctl's JSON carries the daemon's figures unchanged (quiet network: same poll)."""
        b, c = self.after_bus, self.after
        self.assertEqual(b.ifaces, c.ifaces, "ListInterfaces vs nettallyctl interfaces: totals")
        self.assertEqual(b.buckets, c.buckets, "ListInterfaces vs nettallyctl interfaces: buckets")
        for raw in b.bus_ifaces:
            name, role, ifindex = raw[0], raw[1], raw[2]
            mine = next(i for i in c.raw_ifaces if i["name"] == name)
            self.assertEqual((mine["role"], mine["ifindex"]), (role, ifindex), name)
            self.assertEqual(ifindex, self.topo.ifindex(self.topo.gw, name), f"{name} ifindex")
            self.assertEqual(role, {"lan0": "lan", "wan0": "wan"}[name], f"{name} role")
        self.assertEqual(b.flows, c.flows, "ListFlows vs nettallyctl flows")
        self.assertEqual(b.hosts, c.hosts, "ListHosts vs nettallyctl hosts")

    def test_times_flags_and_formats(self):
        """first_seen/last_seen fall in the traffic window; tcp_flags is the OR of the captured flags
        bytes; addresses are canonical text and MACs lowercase; GetStatus counts the listed rows."""
        lo, hi = self.window[0] - 1.0, self.window[1] + 1.0  # seconds; slack for clock conversion
        b = self.after_bus
        problems = []
        for k in self.capture.flows:
            if k not in b.bus_flows:
                problems.append(f"  flow {k} missing from ListFlows")
                continue
            first, last, flags, raw = b.bus_flows[k]
            if k not in self.before.flows and not lo <= first / 1e6 <= hi:
                problems.append(f"  flow {k}: first_seen {first} outside the window [{lo:.3f}, {hi:.3f}]")
            if not lo <= last / 1e6 <= hi:
                problems.append(f"  flow {k}: last_seen {last} outside the window [{lo:.3f}, {hi:.3f}]")
            if first > last:
                problems.append(f"  flow {k}: first_seen {first} > last_seen {last}")
            if k[2] == "tcp" and k not in self.before.flows and flags != self.capture.flow_flags[k]:
                problems.append(f"  flow {k}: tcp_flags {flags:#04x} != captured "
                                f"{self.capture.flow_flags[k]:#04x}")
            if k[2] != "tcp" and flags != 0:
                problems.append(f"  flow {k}: tcp_flags {flags:#04x} on a non-TCP flow")
            for a in (raw[3], raw[5]):
                if a != h.norm_ip(a):
                    problems.append(f"  flow {k}: address {a!r} is not in canonical form {h.norm_ip(a)!r}")
        for k, raw in b.bus_hosts.items():
            mac, ip, _iface, _s, _r, first, last, _wan_sent, _wan_received = raw
            if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
                problems.append(f"  host {k}: MAC {mac!r} not as aa:bb:cc:dd:ee:ff")
            if ip != h.norm_ip(ip):
                problems.append(f"  host {k}: address {ip!r} is not in canonical form")
            if k in self.capture.hosts and not lo <= last / 1e6 <= hi:
                problems.append(f"  host {k}: last_seen {last} outside the window [{lo:.3f}, {hi:.3f}]")
            if first > last:
                problems.append(f"  host {k}: first_seen {first} > last_seen {last}")
        if problems:
            self.fail("\n".join(problems))
        st = self.status_end
        self.assertEqual(st["flows"], len(self.after.flows), "GetStatus flows == rows of ListFlows")
        self.assertEqual(st["hosts"], len(self.after.hosts), "GetStatus hosts == rows of ListHosts")
        self.assertLess(st["started_at"] / 1e6, self.window[0], "started_at before the traffic")
        self.assertGreater(st["last_poll_at"] / 1e6, self.window[1], "last poll after the traffic")
        self.assertLess(st["last_poll_at"] / 1e6, time.time() + 1, "last_poll_at not in the future")


class RestartTest(unittest.TestCase):
    """Stopping, restarting and detaching the daemon: a daemon of its own, so the measured window
    of AccountingTest and this test run in any order."""

    def setUp(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms", flows=h.NO_EVICTION)
        self.addCleanup(self.daemon.stop)
        self.ctl = h.Ctl(self.bus.address)
        self.daemon.start()
        self.server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4, self.topo.SRV6]).start()
        self.addCleanup(self.server.stop)

    def test_restart_keeps_counting_and_detach_uninstalls(self):
        """SIGTERM: exit 0, bus name released, programs left attached and counting into
        the pinned maps (nettallyd --help: "leaving the programs attached and counting into pinned
        maps until the next start"). Traffic sent while nettallyd is down is in the totals after
        the restart, exactly (against a capture of the whole window). `nettallyd --detach` then
        removes the programs and the pins."""
        d, t, bus = self.daemon, self.topo, self.bus
        t.settle()
        caps = [h.Capture(t, i, self.workdir).start() for i in IFACES]
        try:
            for c in caps:
                c.wait_running()
            d.wait_polls(2)
            before = self.ctl.snapshot()
            rc = d.stop(keep_pins=True)
            self.assertEqual(rc, 0, f"exit code after SIGTERM\n{d.log_tail()}")
            self.assertFalse(bus.has_owner(), "bus name released")
            for dev in IFACES:
                self.assertTrue(t.tc_filters(dev), f"programs stay attached to {dev} while nettallyd is down")
            self.assertTrue(os.path.isdir(d.pin_dir), "maps stay pinned")
            down = h.client_run(t, "udp", t.SRV4, PORT, "100,1000", 5, 43001)
            down6 = h.client_run(t, "icmp", t.SRV6, "56,1452", 2)
            d.start()
            d.wait_polls(2)
            after = self.ctl.snapshot()
        finally:
            for c in caps:
                c.stop()
        self.assertEqual((down["echoed"], down6["replies"]), (10, 4), "traffic while down went through")
        cap = h.analyse(caps)
        problems = h.window_problems(before, after, cap, hosts=True)
        if problems:
            self.fail("counts across a restart (traffic while nettallyd was down):\n" + "\n".join(problems))
        self.assertEqual(bus.status()["reconcile_violations"], 0)

        rc = d.stop(keep_pins=True)
        self.assertEqual(rc, 0, f"exit code after the second SIGTERM\n{d.log_tail()}")
        p = d.detach()
        self.assertEqual(p.returncode, 0, f"nettallyd --detach: {p.stderr}")
        for dev in IFACES:
            self.assertEqual(t.tc_filters(dev), "", f"nettallyd --detach left programs on {dev}")
        self.assertFalse(os.path.exists(d.pin_dir), "nettallyd --detach removed the pins")


class FlowOverflowTest(unittest.TestCase):
    """A flow map too small for the traffic: what does not fit goes to the flow_overflow bucket,
    exactly, and the totals and the reconciliation invariant stay exact."""

    NFLOWS = 400  # each exchange makes 4 flows (2 interfaces x 2 directions): 1600 > 1024

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms",
                              flows=dict(h.NO_EVICTION, max_entries=1024))
        cls.server = None
        try:
            cls.daemon.start()
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4]).start()
            cls.topo.settle()
            caps = [h.Capture(cls.topo, i, cls.workdir).start() for i in IFACES]
            try:
                for c in caps:
                    c.wait_running()
                cls.status_before = cls.daemon.wait_polls(2)
                cls.before = h.bus_snapshot(cls.bus)
                cls.result = h.client_run(cls.topo, "udpmany", cls.topo.SRV4, PORT, cls.NFLOWS, 200)
                cls.status_after = cls.daemon.wait_polls(2)
                cls.after = h.bus_snapshot(cls.bus)
            finally:
                for c in caps:
                    c.stop()
            cls.capture = h.analyse(caps)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
        cls.daemon.stop()
        cls.bus.stop()
        cls.topo.down()

    def test_overflow_is_exact(self):
        self.assertEqual(self.result["echoed"], self.NFLOWS, "every exchange answered")
        st = self.status_after
        self.assertEqual(st["flow_capacity"], 1024, "flows.max_entries applied")
        self.assertLessEqual(st["flows"], 1024)
        problems = []
        overflow_total = 0
        for iface in IFACES:
            for d in h.DIRECTIONS:
                got = AccountingTest._delta(self.after.ifaces, self.before.ifaces, (iface, d))
                want = self.capture.iface(iface, d)
                if got != want:
                    problems.append(f"  {iface} {d} total: nettally {h.fmt_c(got)} != "
                                    f"capture {h.fmt_c(want)}")
                # Flows that got no entry are entirely in the bucket; the others are exact.
                missing = h.zero()
                for k, c in self.capture.flows.items():
                    if k[:2] != (iface, d):
                        continue
                    got_f = AccountingTest._delta(self.after.flows, self.before.flows, k)
                    if got_f == h.zero() and k not in self.after.flows:
                        missing = h.cadd(missing, c)
                    elif got_f != c:
                        problems.append(f"  flow {k}: nettally {h.fmt_c(got_f)} != capture {h.fmt_c(c)}")
                bucket = AccountingTest._delta(self.after.buckets, self.before.buckets,
                                               (iface, d, "flow_overflow"))
                if bucket != missing:
                    problems.append(f"  {iface} {d} flow_overflow: nettally {h.fmt_c(bucket)} != captured "
                                    f"flows without an entry {h.fmt_c(missing)}")
                overflow_total += bucket["packets"]
        if problems:
            self.fail("flow overflow accounting:\n" + "\n".join(problems))
        self.assertGreater(overflow_total, 0, "the map overflowed")
        self.assertEqual(st["flow_overflow_packets"] - self.status_before["flow_overflow_packets"],
                         overflow_total, "GetStatus flow_overflow_packets == the buckets' packets")
        self.assertEqual(st["reconcile_violations"], 0)
        for iface in IFACES:
            for d in h.DIRECTIONS:
                s = h.zero()
                for k, c in self.after.flows.items():
                    if k[:2] == (iface, d):
                        s = h.cadd(s, c)
                for b in h.BUCKETS:
                    s = h.cadd(s, self.after.buckets[(iface, d, b)])
                self.assertEqual(s, self.after.ifaces[(iface, d)], f"{iface} {d}: total == flows + buckets")


if __name__ == "__main__":
    h.run_tests()
