#!/usr/bin/python3
"""Acceptance test for subscribers (README "Subscribers"): per-user counts equal a capture, exactly.

nettallyd runs in the gateway namespace with two lan interfaces (lan0 to the client, lan1 to a second
client) and wan0, and two static bindings: alice is the client's IPv4 address (a /32), bob the
second client's IPv6 prefix (a /64). Both clients send UDP, TCP and ICMP over IPv4 and IPv6 to the
server. dumpcap captures lan0 and lan1 for one exact window. Expected per-user figures come from the
capture: each host packet (DESIGN.md's host rule: ingress by source, unicast egress by destination)
goes to the user whose configured prefix contains the host address, else to "unbound". Checked:
  - each user's delta (nettallyctl users) == the capture of that user's traffic, per interface,
    side and figure; the unbound row likewise;
  - per interface and direction, users + unbound == the hosts' sum (nettallyctl hosts) and == the
    capture's host total;
  - nettallyctl subscribers / ListSubscribers show the bindings (source static, open, effective);
    hosts --json carries each host's user;
  - a reload that removes alice's entry closes her binding (SubscriberChanged "closed", until set)
    and her address's traffic counts as unbound from then on;
  - kill -9 and restart: the user totals continue, traffic sent while nettallyd was down included.
RecordsUserTest: host and flow records carry the user bound to the host's address (alice, bob), empty
for unbound addresses and on the wan interface.
DhcpLeaseTest: dnsmasq in the gateway namespace serves busybox udhcpc in the client namespace; the
lease appears as a dhcp binding (user from the subscribers.static MAC entry) within one poll of the
lease file's change, the client's traffic counts for that user, and the release ends the binding.
UserQuotaTest: a threshold on user carol, bound to the client's IPv4 address and to its IPv6 /64
(two static entries), with action block: usage, step index and limit equal the capture of both
addresses' host packets; the block applies to both addresses (pings over IPv4 and IPv6 fail in
both directions, nothing reaches the client), the second client passes; the day history has
carol's figures; removing the threshold lets both addresses through again.
"""

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5011
LANS = ("lan0", "lan1")
IFACES = (("lan0", "lan"), ("lan1", "lan"), ("wan0", "wan"))
ALICE = ("alice", "198.18.1.2")     # the client's IPv4 address (a host binding)
BOB = ("bob", "fd00:3::/64")        # the second client's IPv6 prefix
UDP_SIZES = "1,100,1000,1472,3000"  # up to a full packet, and fragments
UDP6_SIZES = "1,100,1000,1452,3000"


def static_section(entries):
    lines = ["subscribers:", "  keep_closed: 1h", "  static:"]
    for user, prefix in entries:
        lines += [f"    - user: {user}", f"      prefix: {prefix}"]
    return "\n".join(lines) + "\n"


def run_in(topo, ns, *args, timeout=60):
    """A traffic client of ntharness.py in namespace ns; returns its JSON report."""
    import json
    p = h.run(topo.exec_argv(ns, [h.PYTHON, os.path.join(h.HERE, "ntharness.py")] + [str(a) for a in args]),
              timeout=timeout)
    return json.loads(p.stdout)


def user_of(ip, bindings):
    """The user whose prefix contains ip (longest prefix), "" when none: the config's rule."""
    addr = ipaddress.ip_address(ip)
    best, best_len = "", -1
    for user, prefix in bindings:
        net = ipaddress.ip_network(prefix)
        if addr.version == net.version and addr in net and net.prefixlen > best_len:
            best, best_len = user, net.prefixlen
    return best


def capture_users(cap, bindings):
    """(iface, user, side) -> C from the capture's host sums."""
    out = {}
    for (iface, _mac, ip), sides in cap.hosts.items():
        u = user_of(ip, bindings)
        for side, c in sides.items():
            k = (iface, u, side)
            out[k] = h.cadd(out.get(k, h.zero()), c)
    return out


def ctl_users(ctl):
    """(iface, user, side) -> C from nettallyctl --json users ("" for the unbound row)."""
    out = {}
    for r in ctl.json("users")["users"]:
        for side in ("sent", "received"):
            out[(r["interface"], r["user"] or "", side)] = h.cget(r[side])
    return out


def delta(after, before):
    keys = set(after) | set(before)
    return {k: h.csub(after.get(k, h.zero()), before.get(k, h.zero())) for k in keys}


def nonzero(d):
    return {k: v for k, v in d.items() if v != h.zero()}


class SubscribersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls, cli2=True)
        cls.ctl = h.Ctl(cls.bus.address)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", interfaces=IFACES,
                              flows=h.NO_EVICTION, extra=static_section([ALICE, BOB]))
        try:
            cls.daemon.start()
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
            cls.topo.settle()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _teardown(cls):
        if getattr(cls, "server", None):
            cls.server.stop()
        if getattr(cls, "daemon", None):
            cls.daemon.stop()
        if getattr(cls, "bus", None):
            cls.bus.stop()
        if getattr(cls, "topo", None):
            cls.topo.down()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def traffic(self):
        t = self.topo
        for ns in (t.cli, t.cli2):
            run_in(t, ns, "udp", t.SRV4, PORT, UDP_SIZES, 2)
            run_in(t, ns, "udp", t.SRV6, PORT, UDP6_SIZES, 2)
            run_in(t, ns, "tcp", t.SRV4, PORT, 50_000, 80_000)
            run_in(t, ns, "tcp", t.SRV6, PORT, 60_000, 40_000)
            run_in(t, ns, "icmp", t.SRV4, "0,56,3000", 2)
            run_in(t, ns, "icmp", t.SRV6, "0,56,3000", 2)

    def measure(self, between=None):
        """One exact window over lan0 and lan1: (users before, users after, snapshots, capture).
        between(): run inside the window instead of traffic()."""
        caps = [h.Capture(self.topo, i, self.workdir).start() for i in LANS]
        try:
            for c in caps:
                c.wait_running()
            self.daemon.wait_polls(2)
            before, snap_before = ctl_users(self.ctl), self.ctl.snapshot()
            (between or self.traffic)()
            self.daemon.wait_polls(2)
            after, snap_after = ctl_users(self.ctl), self.ctl.snapshot()
        finally:
            for c in caps:
                c.stop()
        return before, after, snap_before, snap_after, h.analyse(caps, lan_ifaces=LANS)

    def check_window(self, before, after, snap_before, snap_after, cap, bindings):
        got = nonzero(delta(after, before))
        want = nonzero(capture_users(cap, bindings))
        problems = []
        for k in sorted(set(got) | set(want)):
            g, w = got.get(k, h.zero()), want.get(k, h.zero())
            if g != w:
                problems.append(f"  {k}: nettally {h.fmt_c(g)} != capture {h.fmt_c(w)}")
        self.assertEqual(problems, [], "per-user deltas vs capture:\n" + "\n".join(problems))
        # Σ users + unbound == the hosts' sum, per interface and side, over the whole totals.
        for iface in LANS:
            for side in ("sent", "received"):
                users = h.zero()
                for (i, _u, s), c in after.items():
                    if i == iface and s == side:
                        users = h.cadd(users, c)
                hosts = h.zero()
                for (i, _m, _ip), sides in snap_after.hosts.items():
                    if i == iface:
                        hosts = h.cadd(hosts, sides[side])
                self.assertEqual(users, hosts, f"{iface} {side}: users + unbound != hosts")
        return got

    def test_1_static_bindings_count_exactly(self):
        before, after, sb, sa, cap = self.measure()
        got = self.check_window(before, after, sb, sa, cap, [ALICE, BOB])
        # The window held traffic for both users and for the unbound addresses of both clients.
        for k in (("lan0", "alice", "sent"), ("lan0", "alice", "received"), ("lan1", "bob", "sent"),
                  ("lan1", "bob", "received"), ("lan0", "", "sent"), ("lan1", "", "sent")):
            self.assertGreater(got.get(k, h.zero())["packets"], 0, f"no traffic counted for {k}")
        self.assertNotIn(("lan1", "alice", "sent"), got)
        self.assertNotIn(("lan0", "bob", "sent"), got)

    def test_2_visible_in_ctl_and_dbus(self):
        subs = self.ctl.json("subscribers")["subscribers"]
        rows = {(s["user"], s["prefix"]): s for s in subs}
        for user, prefix in (ALICE, BOB):
            s = rows.get((user, prefix))
            self.assertIsNotNone(s, f"{user} {prefix} not in {subs}")
            self.assertEqual(s["source"], "static")
            self.assertIsNone(s["until"])
            self.assertTrue(s["effective"])
            self.assertIsNotNone(s["since"])
        raw = self.bus.busctl("--json=short", "call", h.BUS_NAME, h.BUS_PATH,
                              "org.nettally.Accounting1.Subscribers", "ListSubscribers")
        import json
        self.assertEqual(len(json.loads(raw.stdout)["data"][0]), len(subs))
        hosts = self.ctl.json("hosts", "--top", 100000)["hosts"]
        for hst in hosts:
            self.assertIn("user", hst)
            want = user_of(hst["ip"], [ALICE, BOB]) or None
            self.assertEqual(hst["user"], want, f"user of host {hst['ip']}")
        self.assertTrue(any(hst["user"] == "alice" for hst in hosts))
        # Flows name their lan host's user (ingress: src, egress: dst); wan flows none.
        flows = self.ctl.json("flows", "--top", 100000)["flows"]
        for fl in flows:
            self.assertIn("user", fl)
            host = fl["src"] if fl["direction"] == "ingress" else fl["dst"]
            want = (user_of(host, [ALICE, BOB]) or None) if fl["interface"] in LANS else None
            self.assertEqual(fl["user"], want, f"user of flow {fl}")
        self.assertEqual({fl["user"] for fl in flows}, {"alice", "bob", None})
        # Reads are open to every local user (the shipped bus policy).
        for verb in ("subscribers", "users", "hosts"):
            text = self.ctl.run(verb, user=h.NOBODY)
            self.assertEqual(text.returncode, 0, f"{verb} as nobody: {text.stderr}")
            self.assertIn("alice", text.stdout, verb)
        st = self.bus.status()
        self.assertTrue(st["subscribers_enabled"])
        self.assertEqual(int(st["user_overflow_packets"]), 0)

    def test_3_reload_closes_a_binding(self):
        mon = h.SignalMonitor(self.bus).start()
        try:
            self.daemon.write_config(self.daemon.config(extra=static_section([BOB])))
            self.daemon.signal(signal.SIGHUP)
            sig = mon.wait_for("SubscriberChanged", 1, timeout=20)
        finally:
            mon.stop()
        args = sig[0]["data"]
        self.assertEqual(args[:4], ["closed", "alice", "198.18.1.2", "static"])
        self.assertGreater(int(args[6]), 0, "until of a closed binding")
        subs = {(s["user"], s["prefix"]): s for s in self.ctl.json("subscribers")["subscribers"]}
        self.assertIsNotNone(subs[ALICE]["until"])
        self.assertFalse(subs[ALICE]["effective"])
        before, after, sb, sa, cap = self.measure()
        got = self.check_window(before, after, sb, sa, cap, [BOB])
        self.assertNotIn(("lan0", "alice", "sent"), got, "alice's address counts as unbound now")
        # Back to both bindings for the next test.
        self.daemon.write_config(self.daemon.config(extra=static_section([ALICE, BOB])))
        self.daemon.signal(signal.SIGHUP)
        h.wait_until(lambda: any(s["user"] == "alice" and s["until"] is None
                                 for s in self.ctl.json("subscribers")["subscribers"]), 20,
                     "alice bound again")

    def test_4_kill_9_keeps_user_totals(self):
        def down_window():
            time.sleep(0.5)  # a poll after the window opened is the baseline; now crash
            self.daemon.proc.send_signal(signal.SIGKILL)
            self.daemon.proc.wait(10)
            self.daemon.stop(keep_pins=True)
            self.traffic()  # counted by the programs into the pinned maps while nettallyd is down
            self.daemon.start()
            self.assertIn("reusing pinned maps", self.daemon.log_tail(60))
        before, after, sb, sa, cap = self.measure(down_window)
        self.check_window(before, after, sb, sa, cap, [ALICE, BOB])


class RecordsUserTest(unittest.TestCase):
    """Host and flow records carry the user bound to the host's address: alice's /32 on lan0, bob's
    /64 on lan1; unbound addresses and the wan interface give an empty user."""

    def setUp(self):
        h.require_all()
        h.open_env(self, cli2=True, add_cleanup=self.addCleanup)
        records = "records:\n  enabled: true\n  types: [host, flow]\n  format: jsonl\n  period: 1h\n  interval: 1m\n"
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms", interfaces=IFACES,
                               flows={"idle_timeout": "1s"}, extra=static_section([ALICE, BOB]) + records)
        self.daemon.start()
        self.addCleanup(self.daemon.stop)
        self.server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4, self.topo.SRV6]).start()
        self.addCleanup(self.server.stop)
        self.topo.settle()

    def test_records_name_the_user(self):
        t = self.topo
        for ns in (t.cli, t.cli2):
            run_in(t, ns, "udp", t.SRV4, PORT, "100,1000", 2)
            run_in(t, ns, "udp", t.SRV6, PORT, "100,1000", 2)
            run_in(t, ns, "tcp", t.SRV6, PORT, 20_000, 10_000)
        self.daemon.wait_polls(2)  # the daemon has seen the flows before we wait for them to end
        h.wait_until(lambda: not self.bus.call_ok("ListFlows", "su", "packets", 100000)[0], 60,
                     "every flow finished")
        self.daemon.wait_polls(3)
        p = self.bus.busctl("call", h.BUS_NAME, h.BUS_PATH, "org.nettally.Accounting1.Records", "Rotate")
        self.assertEqual(p.returncode, 0, p.stderr)
        spool = os.path.join(self.daemon.state_dir, "spool")
        flows, hosts = h.read_records(spool, "flow"), h.read_records(spool, "host")
        self.assertTrue(flows and hosts, "no flow or host records")
        seen = set()
        for r in flows:
            lan = r["interface"] in LANS
            host = r["src"] if r["direction"] == "ingress" else r["dst"]
            want = user_of(host, [ALICE, BOB]) if lan else ""
            self.assertEqual(r["user"], want, f"flow record {r}")
            seen.add(want)
        for r in hosts:
            self.assertEqual(r["user"], user_of(r["ip"], [ALICE, BOB]), f"host record {r}")
            seen.add(r["user"])
        self.assertEqual(seen, {"alice", "bob", ""}, "records of both users and of unbound hosts")


class UserQuotaTest(unittest.TestCase):
    """A quota per subscriber across two addresses (IPv4 + IPv6 prefix) of one user."""

    CAROL = [("carol", "198.18.1.2/32"), ("carol", "fd00:1::/64")]
    STEP, LIMIT = 40_000, 200_000  # l3 bytes, both directions

    def setUp(self):
        h.require_all()
        h.open_env(self, cli2=True, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms", interfaces=IFACES,
                               flows=h.NO_EVICTION, extra=static_section(self.CAROL))
        self.daemon.start()
        self.addCleanup(self.daemon.stop)
        self.server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4, self.topo.SRV6]).start()
        self.addCleanup(self.server.stop)
        self.topo.settle()

    def th_call(self, method, sig, *args):
        p = self.bus.busctl("--json=short", "call", h.BUS_NAME, h.BUS_PATH, "org.nettally.Accounting1.Thresholds",
                            method, sig, *args)
        self.assertEqual(p.returncode, 0, f"{method}: {p.stderr.strip()}\n{self.daemon.log_tail()}")
        return json.loads(p.stdout)["data"] if p.stdout.strip() else None

    def usage(self, name):
        return {k: v["data"] for k, v in self.th_call("GetUsage", "s", name)[0][0].items()}

    def ping(self, ns, dst, count=3):
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", dst]
        return h.run(self.topo.exec_argv(ns, argv), check=False, timeout=30).returncode

    def test_user_quota_across_ipv4_and_ipv6_blocks_both(self):
        t = self.topo
        cap = h.Capture(t, "lan0", self.workdir).start()
        try:
            cap.wait_running()
            self.daemon.wait_polls(2)
            # Refused without subscribers is shown by the unit tests; here the user is bound.
            p = h.Ctl(self.bus.address).run("thresholds", "add", "carol-quota", "--user", "carol",
                                            "--period", "since", "--layer", "l3", "--step", self.STEP,
                                            "--limit", self.LIMIT, "--action", "block")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.addCleanup(self.bus.busctl, "call", h.BUS_NAME, h.BUS_PATH, "org.nettally.Accounting1.Thresholds",
                            "RemoveThreshold", "s", "carol-quota")
            # Half the limit over each family: together they cross it, neither alone would.
            run_in(t, t.cli, "tcp", t.SRV4, PORT, 60_000, 40_000)
            self.daemon.wait_polls(2)
            self.assertFalse(self.usage("carol-quota")["action_active"], "IPv4 alone is below the limit")
            run_in(t, t.cli, "tcp", t.SRV6, PORT, 60_000, 40_000)
            h.wait_until(lambda: self.usage("carol-quota")["action_active"], 20, "carol blocked")
            # Blocked on both addresses, both directions; the other client passes.
            self.assertNotEqual(self.ping(t.cli, t.SRV4), 0, "carol's IPv4 must be blocked (upload)")
            self.assertNotEqual(self.ping(t.cli, t.SRV6), 0, "carol's IPv6 must be blocked (upload)")
            self.assertNotEqual(self.ping(t.srv, t.CLI4), 0, "carol's IPv4 must be blocked (download)")
            self.assertNotEqual(self.ping(t.srv, t.CLI6), 0, "carol's IPv6 must be blocked (download)")
            self.assertEqual(self.ping(t.cli2, t.SRV4), 0, "the other client is not blocked")
            self.assertEqual(self.ping(t.cli2, t.SRV6), 0, "the other client is not blocked")
            self.daemon.wait_polls(3)
            u = self.usage("carol-quota")
        finally:
            cap.stop()
        res = h.analyse([cap], lan_ifaces=("lan0",))
        want = h.zero()
        for (_iface, _mac, ip), sides in res.hosts.items():
            if user_of(ip, self.CAROL) == "carol":
                want = h.cadd(want, h.cadd(sides["sent"], sides["received"]))
        h.log(f"carol: usage {u['usage']}, capture l3 {want['l3']}, step {u['step_index']}, "
              f"limit_reached {u['limit_reached']}")
        self.assertEqual(u["usage"], want["l3"], "usage == capture of both of carol's addresses")
        self.assertEqual(u["step_index"], want["l3"] // self.STEP, "steps == floor(capture / step)")
        self.assertTrue(u["limit_reached"])
        self.assertGreaterEqual(want["l3"], self.LIMIT)
        # The blocked pings arrived (counted, captured); nothing was sent to carol while blocked.
        hist = h.Ctl(self.bus.address).json("history", "--subject", "user:carol")["history"]
        days = [r for r in hist["periods"] if any(k.startswith("user:carol:") for k in r["totals"])]
        self.assertTrue(days, f"user history: {hist}")

        self.th_call("RemoveThreshold", "s", "carol-quota")
        self.assertEqual(self.ping(t.cli, t.SRV4), 0, "IPv4 passes after the threshold is removed")
        self.assertEqual(self.ping(t.cli, t.SRV6), 0, "IPv6 passes after the threshold is removed")


class DhcpLeaseTest(unittest.TestCase):
    POOL = ("198.18.1.100", "198.18.1.150")

    def setUp(self):
        h.require_all()
        if not (shutil.which("dnsmasq") and shutil.which("busybox")):
            if h.in_ci():
                self.fail("dnsmasq and busybox are needed (scripts/deps.sh)")
            raise h.EnvSkip("dnsmasq or busybox missing (scripts/deps.sh)")
        h.open_env(self, add_cleanup=self.addCleanup)
        self.ctl = h.Ctl(self.bus.address)
        self.leases = os.path.join(self.workdir, "dnsmasq.leases")
        extra = ("subscribers:\n  static:\n"
                 f"    - user: carol\n      mac: {h.Topology.MAC['cli']}\n"
                 f"  dhcp:\n    - format: dnsmasq\n      path: {self.leases}\n")
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="500ms", extra=extra)
        self.daemon.start()
        self.addCleanup(self.daemon.stop)
        argv = ["dnsmasq", "--conf-file=/dev/null", "--no-daemon", "--port=0", "--interface=lan0", "--bind-interfaces", "--no-ping",
                "--no-hosts", "--no-resolv", "--user=root", "--dhcp-authoritative",
                f"--dhcp-range={self.POOL[0]},{self.POOL[1]},255.255.255.0,1h",
                f"--dhcp-leasefile={self.leases}", f"--pid-file={os.path.join(self.workdir, 'dnsmasq.pid')}"]
        with open(os.path.join(self.workdir, "dnsmasq.log"), "w") as log:
            self.dnsmasq = h.spawn(self.topo.exec_argv(self.topo.gw, argv), stdout=subprocess.DEVNULL, stderr=log)
        self.addCleanup(h.stop_process, self.dnsmasq)

    def lease_in_file(self):
        try:
            with open(self.leases) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 5 and parts[1] == h.Topology.MAC["cli"]:
                        return parts[2]
        except OSError:
            pass
        return None

    def dhcp_bindings(self):
        return [s for s in self.ctl.json("subscribers")["subscribers"] if s["source"] == "dhcp"]

    def test_lease_binds_and_release_ends(self):
        client = h.spawn(self.topo.exec_argv(self.topo.cli, [
            "busybox", "udhcpc", "-f", "-R", "-i", "eth0", "-s", "/bin/true", "-t", "5", "-T", "1",
            "-x", "hostname:carol-laptop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(h.stop_process, client, signal.SIGKILL, 5)
        addr = h.wait_until(self.lease_in_file, 30, "the lease in dnsmasq's lease file")
        lo, hi = (ipaddress.ip_address(a) for a in self.POOL)
        self.assertTrue(lo <= ipaddress.ip_address(addr) <= hi, f"{addr} from the pool")
        # Within one poll of the change: a poll that started after it has completed.
        self.daemon.wait_polls(2)
        open_ = [b for b in self.dhcp_bindings() if b["until"] is None]
        self.assertEqual(len(open_), 1, self.dhcp_bindings())
        b = open_[0]
        self.assertEqual((b["user"], b["prefix"], b["mac"], b["session"]),
                         ("carol", addr, h.Topology.MAC["cli"], h.Topology.MAC["cli"]))
        self.assertTrue(b["effective"])
        # Traffic from the leased address counts for carol (the client has it as a second address).
        h.run(self.topo.exec_argv(self.topo.cli, ["ip", "addr", "add", f"{addr}/24", "dev", "eth0"]))
        h.run(self.topo.exec_argv(self.topo.cli, ["ping", "-c", "3", "-i", "0.2", "-I", addr, self.topo.LAN4]))
        self.daemon.wait_polls(2)
        users = {(u["interface"], u["user"]): u for u in self.ctl.json("users")["users"]}
        self.assertIn(("lan0", "carol"), users)
        self.assertEqual(users[("lan0", "carol")]["sent"]["packets"], 3, "3 echo requests from the lease")
        self.assertEqual(users[("lan0", "carol")]["received"]["packets"], 3, "3 echo replies to it")
        # Release: udhcpc -R sends DHCPRELEASE on SIGTERM; dnsmasq drops the lease from its file.
        h.stop_process(client, signal.SIGTERM, 10)
        h.wait_until(lambda: self.lease_in_file() is None, 30, "the lease gone from the file")
        self.daemon.wait_polls(2)
        bs = self.dhcp_bindings()
        self.assertEqual(len(bs), 1, bs)
        self.assertIsNotNone(bs[0]["until"], "the release closed the binding")
        self.assertFalse(bs[0]["effective"])


if __name__ == "__main__":
    h.run_tests()
