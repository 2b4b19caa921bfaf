#!/usr/bin/python3
"""Config errors, at start-up and on reload.

Start-up: each broken config makes `nettallyd --config X` and `nettallyd --check-config --config X`
exit 2 with ONE line on stderr naming the file, the line (asserted) and the key path (asserted). A
config naming a missing interface makes nettallyd exit 1 with a line naming it (run in a test
namespace).
Reload: with nettallyd running (topology: ntharness.py), a bad config is refused by D-Bus Reload
with org.nettally.Accounting1.Error.InvalidConfig and by SIGHUP, the daemon keeps running with the
old config and keeps counting (exact packet counts of fresh UDP flows); a good config with another
poll_interval is applied by Reload and by SIGHUP. Valid reloads (swapping the interfaces' roles,
which replaces the programs) under steady traffic lose and double nothing, against a capture.
"""

import os
import re
import signal
import sys
import textwrap
import threading
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5003
ERR_INVALID_CONFIG = "org.nettally.Accounting1.Error.InvalidConfig"


def cfg(text):
    return textwrap.dedent(text).lstrip("\n")


# name, config text, line of the error (an int; "any": some line; None: no position), key path of
# the error (None: a syntax error has none). "{state}" is replaced by a state directory.
BAD_CONFIGS = [
    ("syntax_error", cfg("""
        interfaces:
          - name: lan0
            role: lan
        poll_interval: 200ms: oops
        state_dir: {state}
        """), 4, None),
    ("syntax_error_unclosed_flow", cfg("""
        interfaces: [{name: lan0, role: lan}
        poll_interval: 200ms
        """), "any", None),
    ("unknown_top_level_key", cfg("""
        interfaces:
          - name: lan0
            role: lan
        state_dir: {state}
        pol_interval: 200ms
        """), 5, "pol_interval"),
    ("unknown_nested_key", cfg("""
        interfaces:
          - name: lan0
            role: lan
        flows:
          max_entrys: 4096
        """), 5, "flows.max_entrys"),
    ("unknown_interface_key", cfg("""
        interfaces:
          - name: lan0
            role: lan
          - name: wan0
            rol: wan
        """), 5, "interfaces[1].rol"),
    ("bad_duration_unit", cfg("""
        interfaces:
          - name: lan0
            role: lan
        poll_interval: 200 parsecs
        """), 4, "poll_interval"),
    ("bad_duration_bare_number", cfg("""
        interfaces:
          - name: lan0
            role: lan
        state_dir: {state}
        poll_interval: 200
        """), 5, "poll_interval"),
    ("duration_out_of_range", cfg("""
        interfaces:
          - name: lan0
            role: lan
        poll_interval: 1ms
        """), 4, "poll_interval"),
    ("unknown_role", cfg("""
        interfaces:
          - name: lan0
            role: lan
          - name: wan0
            role: dmz
        poll_interval: 200ms
        """), 5, "interfaces[1].role"),
    ("no_interfaces_empty_list", cfg("""
        poll_interval: 200ms
        interfaces: []
        state_dir: {state}
        """), 2, "interfaces"),
    ("no_interfaces_key", cfg("""
        poll_interval: 200ms
        state_dir: {state}
        """), None, "interfaces"),
    ("not_a_number", cfg("""
        interfaces:
          - name: lan0
            role: lan
        hosts:
          enabled: true
          max_entries: lots
        """), 6, "hosts.max_entries"),
    ("interfaces_not_a_list", cfg("""
        poll_interval: 200ms
        interfaces: lan0
        """), 2, "interfaces"),
]


class StartupConfigErrors(unittest.TestCase):
    """nettallyd reads and validates the config before anything else; these would run without root,
    but the file as a whole needs it, and a partial run must not be reported as a pass."""

    @classmethod
    def setUpClass(cls):
        h.require_root()
        h.require_binaries(ctl=False)
        cls.dir = h.make_workdir(h.unique_tag())

    def check_one_line(self, argv, path, line, key, rc_want=2):
        p = h.run(argv, check=False, timeout=30, env=h.isolated_env())
        what = f"{' '.join(argv)}"
        self.assertEqual(p.returncode, rc_want, f"{what}: exit code (stderr: {p.stderr!r})")
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        self.assertEqual(len(lines), 1, f"{what}: exactly one line on stderr, got {p.stderr!r}")
        msg = lines[0]
        if line == "any":
            self.assertRegex(msg, re.escape(path) + r":\d+:\d+: ", f"{what}: file:line:col")
        elif line is not None:
            self.assertRegex(msg, re.escape(path) + rf":{line}:\d+: ", f"{what}: file:line:col")
        else:
            self.assertIn(path, msg, f"{what}: names the file")
        if key is not None:
            self.assertRegex(msg, re.escape(path) + r"(:\d+:\d+)?: " + re.escape(key) + r": \S",
                             f"{what}: '<file>:<line>:<col>: <key path>: <problem>'")
        return msg

    def test_bad_configs(self):
        for name, text, line, key in BAD_CONFIGS:
            path = os.path.join(self.dir, f"{name}.yaml")
            with open(path, "w") as f:
                f.write(text.replace("{state}", os.path.join(self.dir, "state")))
            for mode in ([], ["--check-config"]):
                with self.subTest(config=name, mode=mode or "run"):
                    argv = [h.nettallyd_path()] + mode + ["--config", path]
                    msg = self.check_one_line(argv, path, line, key)
                    if not mode:
                        h.log(f"{name}: {msg}")

    def test_unreadable_config(self):
        path = os.path.join(self.dir, "missing.yaml")
        p = h.run([h.nettallyd_path(), "--check-config", "--config", path], check=False, env=h.isolated_env())
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(path, lines[0])

    def test_valid_config_checks_ok(self):
        path = os.path.join(self.dir, "good.yaml")
        with open(path, "w") as f:
            f.write(h.config_yaml(os.path.join(self.dir, "state")))
        p = h.run([h.nettallyd_path(), "--check-config", "--config", path], check=False, env=h.isolated_env())
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_usage_error(self):
        p = h.run([h.nettallyd_path(), "--no-such-option"], check=False, env=h.isolated_env())
        self.assertEqual(p.returncode, 2, p.stderr)


class RuntimeConfigErrors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.require_all(ctl=False)
        h.open_env(cls, bus=False)

    @classmethod
    def tearDownClass(cls):
        cls.topo.down()

    def test_missing_interface(self):
        d = os.path.join(self.workdir, "missing-iface")
        os.makedirs(d)
        path = os.path.join(d, "nettally.yaml")
        with open(path, "w") as f:
            f.write(h.config_yaml(os.path.join(d, "state"), interfaces=(("lan0", "lan"), ("nosuch0", "wan")),
                                  pin_dir=h.make_pin_dir(self.tag)))
        argv = self.topo.nsenter_argv(self.topo.gw, [h.nettallyd_path(), "--config", path])
        p = h.run(argv, check=False, timeout=30, env=h.isolated_env())
        self.assertEqual(p.returncode, 1, f"exit code; stderr {p.stderr!r}")
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        self.assertTrue(lines, "an error on stderr")
        self.assertIn("nosuch0", lines[-1], f"the last line names the interface: {p.stderr!r}")
        self.assertEqual(self.topo.tc_filters("lan0"), "", "nothing left attached to lan0 after the failure")


class ReloadTest(unittest.TestCase):
    """A running daemon refuses bad configs (Reload, SIGHUP), keeps counting, applies good ones."""

    BAD = cfg("""
        interfaces:
          - name: lan0
            role: lan
          - name: wan0
            role: dmz
        poll_interval: 200ms
        state_dir: {state_dir}
        pin_dir: {pin_dir}
        """)
    BAD_LINE, BAD_KEY = 5, "interfaces[1].role"

    @classmethod
    def setUpClass(cls):
        h.require_all(ctl=False)
        h.open_env(cls)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", flows=h.NO_EVICTION)
        try:
            cls.daemon.start()
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "server", None):
            cls.server.stop()
        cls.daemon.stop()
        cls.bus.stop()
        cls.topo.down()

    def flow_packets(self, iface, direction, src, sport, dst, dport):
        flows = h.bus_snapshot(self.bus).flows
        return flows.get((iface, direction, "udp", src, sport, dst, dport), h.zero())["packets"]

    def assert_counts(self, sport, count, context):
        """A fresh UDP flow (unique sport) of `count` echoed datagrams is counted exactly."""
        t = self.topo
        r = h.client_run(t, "udp", t.SRV4, PORT, "64", count, sport)
        self.assertEqual(r["echoed"], count, f"{context}: echoes")
        self.daemon.wait_polls(2)
        want = {("lan0", "ingress", t.CLI4, sport, t.SRV4, PORT): count,
                ("wan0", "egress", t.CLI4, sport, t.SRV4, PORT): count,
                ("wan0", "ingress", t.SRV4, PORT, t.CLI4, sport): count,
                ("lan0", "egress", t.SRV4, PORT, t.CLI4, sport): count}
        for k, n in want.items():
            self.assertEqual(self.flow_packets(*k), n, f"{context}: packets of flow {k}")

    def assert_alive(self, context):
        self.assertTrue(self.daemon.alive(), f"nettallyd died {context}:\n{self.daemon.log_tail()}")
        self.assertTrue(self.topo.tc_filters("lan0"), f"still attached to lan0 {context}")

    def restore_start_config(self):
        """Puts the config the daemon started with back in force, so the next test, whichever it
        is, starts where the first one did (poll_interval 200ms, lan0 lan, wan0 wan)."""
        self.daemon.write_config(self.daemon.config())
        rc, err, msg = self.bus.dbus_send("Reload")
        if (rc, err) != (0, None):
            raise AssertionError(f"Reload of the start config: {msg}\n{self.daemon.log_tail()}")

    def test_reload_cycle(self):
        d, bus = self.daemon, self.bus
        self.addCleanup(self.restore_start_config)
        good_200 = d.config(poll="200ms")
        self.assert_counts(41001, 5, "before any reload")
        st0 = bus.status()
        self.assertEqual(st0["poll_interval_ms"], 200)

        # 1. D-Bus Reload of a bad config: refused with InvalidConfig naming file, line and key.
        d.write_config(self.BAD.replace("{state_dir}", d.state_dir).replace("{pin_dir}", d.pin_dir))
        rc, err, msg = bus.dbus_send("Reload")
        self.assertEqual(err, ERR_INVALID_CONFIG, f"Reload of a bad config: {msg}")
        self.assertIn(f"{d.config_path}:{self.BAD_LINE}:", msg, "InvalidConfig names file and line")
        self.assertIn(self.BAD_KEY, msg, "InvalidConfig names the key")
        self.assert_alive("after a refused Reload")
        st1 = bus.status()
        self.assertEqual(st1["poll_interval_ms"], 200, "old config still in force")
        self.assertEqual(st1["pid"], st0["pid"])
        self.assert_counts(41002, 7, "after a refused Reload")

        # 2. SIGHUP with the bad config: refused, logged, still running and counting.
        log_before = len(d.log_text())
        d.signal(signal.SIGHUP)
        h.wait_until(lambda: f"{d.config_path}:{self.BAD_LINE}:" in d.log_text()[log_before:], 10,
                     "the refused SIGHUP reload to be logged with file:line")
        polls = bus.status()["polls"]
        h.wait_until(lambda: not d.alive() or bus.status()["polls"] > polls, 10,
                     "a poll after the refused SIGHUP reload (or nettallyd's exit)")
        self.assert_alive("after a refused SIGHUP reload")
        self.assertEqual(bus.status()["poll_interval_ms"], 200, "old config still in force after SIGHUP")
        self.assert_counts(41003, 4, "after a refused SIGHUP reload")

        # 3. An unreadable config: refused too.
        os.unlink(d.config_path)
        rc, err, msg = bus.dbus_send("Reload")
        self.assertEqual(err, ERR_INVALID_CONFIG, f"Reload without a config file: {msg}")
        self.assertIn(d.config_path, msg)
        self.assert_alive("after Reload of a missing file")

        # 4. A valid config with another poll_interval: applied by Reload; counters keep going.
        before = h.bus_snapshot(bus)
        d.write_config(d.config(poll="300ms"))
        rc, err, msg = bus.dbus_send("Reload")
        self.assertEqual((rc, err), (0, None), f"Reload of a valid config: {msg}")
        st = bus.status()
        self.assertEqual(st["poll_interval_ms"], 300, "new poll_interval applied")
        self.assertEqual(st["pid"], st0["pid"], "same process")
        self.assert_alive("after a good Reload")
        self.assert_counts(41004, 3, "after a good Reload")
        after = h.bus_snapshot(bus)
        for k, c in before.ifaces.items():
            for f in h.FIGURES:
                self.assertGreaterEqual(after.ifaces[k][f], c[f], f"{k} {f} never goes back over a reload")
        for k, c in before.flows.items():
            self.assertIn(k, after.flows, f"flow {k} kept over a reload")

        # 5. And by SIGHUP.
        d.write_config(good_200.replace("poll_interval: 200ms", "poll_interval: 400ms"))
        d.signal(signal.SIGHUP)
        h.wait_until(lambda: bus.status()["poll_interval_ms"] == 400, 10,
                     "SIGHUP to apply poll_interval 400ms")
        self.assert_alive("after a good SIGHUP reload")
        self.assert_counts(41005, 2, "after a good SIGHUP reload")
        st = bus.status()
        self.assertEqual(st["reconcile_violations"], 0, st)

    def test_reloads_under_traffic_lose_nothing(self):
        """Reloads (D-Bus and SIGHUP, valid configs, swapping the interfaces' roles so the programs
        are replaced) while traffic flows: the counts still equal a capture exactly, so applying a
        config never opens a window that counts nothing or counts twice."""
        d, bus, t = self.daemon, self.bus, self.topo
        self.addCleanup(self.restore_start_config)
        t.settle()
        caps = [h.Capture(t, i, self.workdir).start() for i in ("lan0", "wan0")]
        reloads = []
        try:
            for c in caps:
                c.wait_running()
            d.wait_polls(2)
            before = h.bus_snapshot(bus)
            result = {}
            gen = threading.Thread(target=lambda: result.update(
                h.client_run(t, "udpfor", t.SRV6, PORT, 600, 2.5, 42001, 0.0003)))
            gen.start()
            i = 0
            while gen.is_alive() or len(reloads) < 4:
                i += 1
                # Alternate the poll interval and swap the roles, which replaces the programs.
                roles = (("lan0", "lan"), ("wan0", "wan")) if i % 2 else (("lan0", "wan"), ("wan0", "lan"))
                d.write_config(d.config(poll=("200ms", "250ms")[i % 2], interfaces=roles))
                if i % 4 == 0:
                    d.signal(signal.SIGHUP)
                    reloads.append(("SIGHUP", gen.is_alive()))
                    time.sleep(0.05)  # pacing: spreads the reloads over the traffic
                else:
                    rc, err, msg = bus.dbus_send("Reload")
                    self.assertEqual((rc, err), (0, None), f"Reload {i}: {msg}")
                    reloads.append(("Reload", gen.is_alive()))
            gen.join(60)
            d.wait_polls(2)
            after = h.bus_snapshot(bus)
        finally:
            for c in caps:
                c.stop()
        cap = h.analyse(caps, lan_ifaces=())
        h.log(f"{len(reloads)} reloads, {sum(1 for r in reloads if r[1])} while traffic ran")
        self.assertGreater(result.get("echoed", 0), 500, f"traffic: {result}")
        during = [r for r in reloads if r[1]]
        self.assertGreaterEqual(len(during), 10, f"reloads while traffic ran: {reloads}")
        problems = h.window_problems(before, after, cap)
        if problems:
            self.fail(f"counts lost or doubled across {len(reloads)} reloads "
                      f"({len(during)} during traffic):\n" + "\n".join(problems))
        self.assertEqual(bus.status()["reconcile_violations"], 0)
        self.assert_alive("after reloads under traffic")
        shown = {x[0]: x[1] for x in bus.call_ok("ListInterfaces")[0]}
        self.assertEqual(shown, dict(roles), "ListInterfaces shows the roles of the last config applied")


if __name__ == "__main__":
    h.run_tests()
