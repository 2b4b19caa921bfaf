#!/usr/bin/python3
"""Acceptance test for RADIUS accounting as a subscriber source (README "RADIUS accounting").

Topology: ntharness.py's (cli -- lan0 [gw: nettallyd] wan0 -- srv). nettallyd listens for RADIUS
accounting on 127.0.0.1 inside the gateway namespace (loopback is not accounted, so the RADIUS
packets themselves count for nobody); radclient (freeradius-utils) runs there too as the access
server, with NAS-Identifier bras1 or bras2. The client 198.18.1.2 / fd00:1::2 sends UDP, TCP and
ICMP to the server; dumpcap on lan0 is the ground truth. Checked:
  - Start alice for 198.18.1.2 (+ fd00:1::/64), traffic, Stop, Start bob for 198.18.1.2, traffic,
    with traffic paused around each change: alice's and bob's figures (nettallyctl users) each ==
    the capture of their window, and neither moves in the other's window;
  - continuous traffic across 20 changes (Start/Stop of alternating users): at every poll read,
    per direction, users + unbound == the hosts' sum on lan0, exactly;
  - Accounting-On from bras1 ends all of bras1's sessions and none of bras2's;
  - a wrong secret changes nothing, gets no answer and is counted (radius_dropped_bad_authenticator);
  - kill -9 and restart: a session opened after the last state save is still open (the journal);
  - a reload (SIGHUP) with a rotated secret file: the old secret is refused, the new one answered,
    the sessions stay;
  - every request answered: radclient's exit status for each, and radius_responses ==
    radius_requests - radius_dropped at the end.
"""

import os
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402
import test_subscribers as ts  # noqa: E402

PORT = 5013
RADIUS = ("127.0.0.1", 18130)
SECRET = "nt-radius-test-secret"
ALICE4, ALICE6 = "198.18.1.2", "fd00:1::/64"


def radius_section(secret_path):
    return ("subscribers:\n  keep_closed: 1h\n  radius:\n"
            f"    listen: {RADIUS[0]}:{RADIUS[1]}\n    clients:\n"
            f"      - address: 127.0.0.0/8\n        secret_file: {secret_path}\n")


class RadiusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_all()
        if not h.shutil.which("radclient"):
            if h.in_ci():
                raise AssertionError("radclient is needed (freeradius-utils, scripts/deps.sh)")
            raise h.EnvSkip("radclient missing (freeradius-utils, scripts/deps.sh)")
        h.open_env(cls)
        cls.ctl = h.Ctl(cls.bus.address)
        cls.secret_path = os.path.join(cls.workdir, "radius.secret")
        with open(cls.secret_path, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(cls.secret_path, 0o600)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="1s", flows=h.NO_EVICTION,
                              extra=radius_section(cls.secret_path))
        cls.sessions = 0
        try:
            cls.daemon.start()
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
            cls.topo.settle()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _teardown(cls):
        for name in ("server", "daemon", "bus"):
            obj = getattr(cls, name, None)
            if obj:
                obj.stop()
        if getattr(cls, "topo", None):
            cls.topo.down()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    # -- RADIUS ------------------------------------------------------------------------------

    def radclient(self, attrs, secret=SECRET):
        """One Accounting-Request from radclient in the gateway namespace; the process result."""
        text = "\n".join(f"{k} = {v}" for k, v in attrs) + "\n"
        argv = ["radclient", "-r", "3", "-t", "2", f"{RADIUS[0]}:{RADIUS[1]}", "acct", secret]
        return h.run(self.topo.exec_argv(self.topo.gw, argv), check=False, input=text, timeout=30)

    def send(self, status, user=None, session=None, ip=None, prefix=None, nas="bras1", answered=True):
        attrs = [("Acct-Status-Type", status), ("NAS-Identifier", f'"{nas}"')]
        if user:
            attrs.append(("User-Name", f'"{user}"'))
        if session:
            attrs.append(("Acct-Session-Id", f'"{session}"'))
        if ip:
            attrs.append(("Framed-IP-Address", ip))
        if prefix:
            attrs.append(("Framed-IPv6-Prefix", prefix))
        attrs.append(("Event-Timestamp", str(int(time.time()))))
        p = self.radclient(attrs)
        if answered:
            self.assertEqual(p.returncode, 0, f"radclient {status} {user}: no answer: {p.stdout} {p.stderr}"
                             f"\n{self.daemon.log_tail(20)}")
            self.assertIn("Accounting-Response", p.stdout + p.stderr)
        return p

    def radius_open(self):
        """(user, prefix, session) of the open radius bindings."""
        return {(s["user"], s["prefix"], s["session"]) for s in self.ctl.json("subscribers")["subscribers"]
                if s["source"] == "radius" and s["until"] is None}

    def status(self):
        return self.bus.status()

    # -- traffic and windows -----------------------------------------------------------------

    def traffic(self):
        t = self.topo
        ts.run_in(t, t.cli, "udp", t.SRV4, PORT, ts.UDP_SIZES, 2)
        ts.run_in(t, t.cli, "udp", t.SRV6, PORT, ts.UDP6_SIZES, 2)
        ts.run_in(t, t.cli, "tcp", t.SRV4, PORT, 30_000, 50_000)
        ts.run_in(t, t.cli, "tcp", t.SRV6, PORT, 20_000, 10_000)
        ts.run_in(t, t.cli, "icmp", t.SRV4, "0,56,3000", 2)
        ts.run_in(t, t.cli, "icmp", t.SRV6, "0,56,1000", 2)

    def window(self):
        """One exact window on lan0 around traffic(): (users delta, capture)."""
        cap = h.Capture(self.topo, "lan0", self.workdir).start()
        try:
            cap.wait_running()
            self.daemon.wait_polls(2)
            before = ts.ctl_users(self.ctl)
            self.traffic()
            self.daemon.wait_polls(2)
            after = ts.ctl_users(self.ctl)
        finally:
            cap.stop()
        return ts.nonzero(ts.delta(after, before)), h.analyse([cap], lan_ifaces=("lan0",))

    def check(self, got, cap, bindings):
        want = ts.nonzero(ts.capture_users(cap, bindings))
        problems = [f"  {k}: nettally {h.fmt_c(got.get(k, h.zero()))} != capture {h.fmt_c(want.get(k, h.zero()))}"
                    for k in sorted(set(got) | set(want)) if got.get(k, h.zero()) != want.get(k, h.zero())]
        self.assertEqual(problems, [], "per-user deltas vs capture:\n" + "\n".join(problems))

    # -- tests -------------------------------------------------------------------------------

    def test_1_alice_then_bob_each_equal_their_capture(self):
        self.send("Start", "alice", "a-1", ALICE4, ALICE6)
        self.assertEqual(self.radius_open(), {("alice", ALICE4, "a-1"), ("alice", ALICE6, "a-1")})
        got_a, cap_a = self.window()
        self.send("Stop", "alice", "a-1", ALICE4, ALICE6)
        self.assertEqual(self.radius_open(), set())
        self.send("Start", "bob", "b-1", ALICE4)
        self.assertEqual(self.radius_open(), {("bob", ALICE4, "b-1")})
        got_b, cap_b = self.window()
        self.send("Stop", "bob", "b-1", ALICE4)

        self.check(got_a, cap_a, [("alice", ALICE4), ("alice", ALICE6)])
        self.check(got_b, cap_b, [("bob", ALICE4)])
        for side in ("sent", "received"):
            self.assertGreater(got_a.get(("lan0", "alice", side), h.zero())["packets"], 0, f"alice {side}")
            self.assertGreater(got_b.get(("lan0", "bob", side), h.zero())["packets"], 0, f"bob {side}")
            self.assertNotIn(("lan0", "bob", side), got_a, "bob counted in alice's window")
            self.assertNotIn(("lan0", "alice", side), got_b, "alice counted in bob's window")
            # bob has the IPv4 address only: the client's IPv6 traffic is unbound in his window.
            self.assertGreater(got_b.get(("lan0", "", side), h.zero())["packets"], 0, f"unbound {side}")
        subs = [s for s in self.ctl.json("subscribers")["subscribers"] if s["source"] == "radius"]
        closed = {(s["user"], s["prefix"]) for s in subs if s["until"] is not None}
        self.assertLessEqual({("alice", ALICE4), ("alice", ALICE6), ("bob", ALICE4)}, closed)

    def sums_hold(self):
        """Users + unbound == hosts on lan0 per side, from one poll (retried if a poll fell
        between the two reads: the daemon polls every second for this). Returns 1."""
        for _ in range(20):
            p1 = int(self.status()["polls"])
            users = self.ctl.json("users")["users"]
            hosts = self.ctl.json("hosts", "--top", 100000)["hosts"]
            if int(self.status()["polls"]) != p1:
                continue
            for side in ("sent", "received"):
                u = h.zero()
                for r in users:
                    if r["interface"] == "lan0":
                        u = h.cadd(u, h.cget(r[side]))
                hs = h.zero()
                for r in hosts:
                    if r["interface"] == "lan0":
                        hs = h.cadd(hs, h.cget(r[side]))
                self.assertEqual(u, hs, f"lan0 {side}: users + unbound != hosts at poll {p1}")
            return 1
        self.fail("no two reads within one poll")

    def test_2_continuous_traffic_across_20_changes(self):
        t = self.topo
        gen = h.spawn(t.exec_argv(t.cli, [h.PYTHON, os.path.join(h.HERE, "ntharness.py"), "udpfor", t.SRV4,
                                          str(PORT), "200", "60", "40123", "0.002"]))
        self.addCleanup(h.stop_process, gen)
        checked = 0
        before = ts.ctl_users(self.ctl)
        time.sleep(0.5)
        for i in range(20):
            user = ("carol", "dave")[i % 2]
            if i % 2 == 0 and i:
                self.send("Stop", "dave", f"d-{i - 1}", ALICE4)
            if i % 2 == 0:
                self.send("Start", user, f"c-{i}", ALICE4)
            else:
                self.send("Stop", "carol", f"c-{i - 1}", ALICE4)
                self.send("Start", user, f"d-{i}", ALICE4)
            self.daemon.wait_polls(1)
            checked += self.sums_hold()
        self.send("Stop", "dave", "d-19", ALICE4)
        h.stop_process(gen)
        self.daemon.wait_polls(2)
        checked += self.sums_hold()
        got = ts.nonzero(ts.delta(ts.ctl_users(self.ctl), before))
        for user in ("carol", "dave"):
            self.assertGreater(got.get(("lan0", user, "sent"), h.zero())["packets"], 0, f"{user} counted")
        self.assertGreaterEqual(checked, 21)

    def test_3_accounting_on_ends_the_nas_sessions(self):
        self.send("Start", "erin", "e-1", "198.18.1.60", nas="bras1")
        self.send("Start", "frank", "f-1", "198.18.1.61", nas="bras1")
        self.send("Start", "grace", "g-1", "198.18.1.62", nas="bras2")
        self.assertLessEqual({("erin", "198.18.1.60", "e-1"), ("frank", "198.18.1.61", "f-1"),
                              ("grace", "198.18.1.62", "g-1")}, self.radius_open())
        self.send("Accounting-On", nas="bras1")
        left = self.radius_open()
        self.assertNotIn(("erin", "198.18.1.60", "e-1"), left)
        self.assertNotIn(("frank", "198.18.1.61", "f-1"), left)
        self.assertIn(("grace", "198.18.1.62", "g-1"), left)
        self.send("Accounting-Off", nas="bras2")
        self.assertNotIn(("grace", "198.18.1.62", "g-1"), self.radius_open())

    def test_4_wrong_secret_changes_nothing_and_is_counted(self):
        st0 = self.status()
        subs0 = self.ctl.json("subscribers")["subscribers"]
        p = self.radclient([("Acct-Status-Type", "Start"), ("User-Name", '"mallory"'),
                            ("Acct-Session-Id", '"m-1"'), ("Framed-IP-Address", ALICE4)], secret="wrong-secret")
        self.assertNotEqual(p.returncode, 0, "a request with a wrong secret was answered")
        st1 = self.status()
        dropped = int(st1["radius_dropped_bad_authenticator"]) - int(st0["radius_dropped_bad_authenticator"])
        self.assertGreaterEqual(dropped, 1)
        self.assertEqual(dropped, int(st1["radius_requests"]) - int(st0["radius_requests"]),
                         "every attempt (retries too) dropped as bad_authenticator")
        self.assertEqual(int(st1["radius_responses"]), int(st0["radius_responses"]))
        self.assertEqual(self.ctl.json("subscribers")["subscribers"], subs0)
        self.assertNotIn("wrong-secret", self.daemon.log_text())
        self.assertNotIn(SECRET, self.daemon.log_text())
        self.assertIn("bad_authenticator", self.daemon.log_text())
        radius = self.ctl.json("subscribers")["radius"]
        self.assertEqual(radius["dropped"]["bad_authenticator"], int(st1["radius_dropped_bad_authenticator"]))

    def test_5_kill_9_keeps_the_sessions(self):
        self.send("Start", "heidi", "h-1", "198.18.1.70")
        since = [s["since"] for s in self.ctl.json("subscribers")["subscribers"]
                 if s["user"] == "heidi" and s["until"] is None]
        self.assertEqual(len(since), 1)
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait(10)
        self.daemon.stop(keep_pins=True)
        self.daemon.start()
        after = [s for s in self.ctl.json("subscribers")["subscribers"] if s["user"] == "heidi"]
        self.assertEqual([(s["since"], s["until"]) for s in after], [(since[0], None)],
                         "the session opened after the last save survives kill -9\n" + self.daemon.log_tail(40))
        self.send("Stop", "heidi", "h-1", "198.18.1.70")
        self.assertNotIn(("heidi", "198.18.1.70", "h-1"), self.radius_open())

    def test_6_every_valid_request_answered(self):
        self.send("Interim-Update", "ivan", "i-1", "198.18.1.80")
        self.send("Interim-Update", "ivan", "i-1", "198.18.1.80")
        self.send("Stop", "ivan", "i-1", "198.18.1.80")
        st = self.status()
        self.assertEqual(int(st["radius_responses"]),
                         int(st["radius_requests"]) - int(st["radius_dropped"]),
                         "every request not dropped was answered")
        self.assertGreater(int(st["radius_responses"]), 0)

    def test_7_reload_reads_a_rotated_secret_and_keeps_the_sessions(self):
        self.send("Start", "judy", "j-1", "198.18.1.90")
        before = self.radius_open()
        new = SECRET + "-rotated"
        with open(self.secret_path, "w") as f:
            f.write(new + "\n")
        self.addCleanup(self._restore_secret)
        self.daemon.signal(signal.SIGHUP)
        h.wait_until(lambda: "reloaded" in self.daemon.log_tail(40), 20, "the reload")
        self.assertEqual(self.radius_open(), before, "a reload keeps the sessions")
        old = self.radclient([("Acct-Status-Type", "Stop"), ("User-Name", '"judy"'),
                              ("Acct-Session-Id", '"j-1"'), ("NAS-Identifier", '"bras1"')])
        self.assertNotEqual(old.returncode, 0, "the old secret still answered after the reload")
        self.assertEqual(self.radius_open(), before)
        p = self.radclient([("Acct-Status-Type", "Stop"), ("User-Name", '"judy"'), ("Acct-Session-Id", '"j-1"'),
                            ("NAS-Identifier", '"bras1"')], secret=new)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn(("judy", "198.18.1.90", "j-1"), self.radius_open())
        self.assertNotIn(new, self.daemon.log_text())

    def _restore_secret(self):
        with open(self.secret_path, "w") as f:
            f.write(SECRET + "\n")
        self.daemon.signal(signal.SIGHUP)
        time.sleep(1)


if __name__ == "__main__":
    h.run_tests()
