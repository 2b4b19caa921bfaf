#!/usr/bin/python3
"""nettallyd's D-Bus API on a private system-like bus running the shipped policy
(systemd/org.nettally.Accounting1.conf): reads open to every user, Reload for root only (group
nettally is not tested: it does not exist on test machines), bad arguments refused with
org.nettally.Accounting1.Error.InvalidArgument without hurting the daemon, the live introspection
matching the shipped XML, the daemon's own caller check behind a loosened policy, and nettallyctl's
exit codes. Topology: ntharness.py.
"""

import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5002
ERR_INVALID_ARGUMENT = "org.nettally.Accounting1.Error.InvalidArgument"
ERR_ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
ERR_FAILED = "org.nettally.Accounting1.Error.Failed"
XML_PATH = os.path.join(h.SOURCE_DIR, "daemon", "bus", "org.nettally.Accounting1.xml")
STATUS_KEYS = ("version", "pid", "started_at", "config_path", "poll_interval_ms", "polls", "last_poll_at",
               "interfaces", "flows", "flow_capacity", "hosts", "host_capacity", "flow_overflow_packets",
               "host_overflow_packets", "reconcile_checks", "reconcile_exact", "reconcile_violations")
USERS = ((None, "root"), (h.NOBODY, "nobody"))


def methods_of(xml_text):
    """{method: [(arg name, type, direction)]} of interface org.nettally.Accounting1."""
    root = ET.fromstring(xml_text)
    iface = root if root.tag == "interface" else root.find(f"interface[@name='{h.BUS_IFACE}']")
    if iface is None:
        raise AssertionError(f"no interface {h.BUS_IFACE} in:\n{xml_text[:2000]}")
    return {m.get("name"): [(a.get("name"), a.get("type"), a.get("direction", "in"))
                            for a in m.findall("arg")]
            for m in iface.findall("method")}


class DbusApiTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, flows=h.NO_EVICTION)
        cls.ctl = h.Ctl(cls.bus.address)
        try:
            cls.daemon.start()
            # Some flows and hosts, so the lists have rows to sort and cut.
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
            for dst in (cls.topo.SRV4, cls.topo.SRV6):
                h.client_run(cls.topo, "udp", dst, PORT, "10,500", 3)
                h.client_run(cls.topo, "icmp", dst, "56", 1)
                h.client_run(cls.topo, "tcp", dst, PORT, 20000, 5000)
            cls.daemon.wait_polls(2)
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

    def assert_daemon_answers(self, context):
        self.assertTrue(self.daemon.alive(), f"nettallyd died after {context}:\n{self.daemon.log_tail()}")
        p, data = self.bus.call("GetStatus")
        self.assertEqual(p.returncode, 0, f"GetStatus after {context}: {p.stderr}")

    # -- reads -----------------------------------------------------------------------------------

    def test_read_methods_open_to_every_user(self):
        for uid, who in USERS:
            with self.subTest(user=who):
                p, st = self.bus.call("GetStatus", user=uid)
                self.assertEqual(p.returncode, 0, f"GetStatus as {who}: {p.stderr}")
                st = st[0]
                for k in STATUS_KEYS:
                    self.assertIn(k, st, f"GetStatus as {who} lacks {k}")
                self.assertEqual(st["pid"]["data"], self.daemon.proc.pid, "pid (nsenter execs nettallyd)")
                self.assertEqual(st["config_path"]["data"], self.daemon.config_path)
                self.assertEqual(st["interfaces"]["data"], 2)

                p, ifs = self.bus.call("ListInterfaces", user=uid)
                self.assertEqual(p.returncode, 0, f"ListInterfaces as {who}: {p.stderr}")
                self.assertEqual(sorted(i[0] for i in ifs[0]), ["lan0", "wan0"])

                p, hosts = self.bus.call("ListHosts", "su", "l2", 10, user=uid)
                self.assertEqual(p.returncode, 0, f"ListHosts as {who}: {p.stderr}")
                self.assertTrue(0 < len(hosts[0]) <= 10, f"ListHosts l2 10 as {who}: {hosts}")

                p, flows = self.bus.call("ListFlows", "su", "packets", 5, user=uid)
                self.assertEqual(p.returncode, 0, f"ListFlows as {who}: {p.stderr}")
                self.assertEqual(len(flows[0]), 5, f"ListFlows packets 5 as {who} (more flows exist)")

                # Cgroup accounting is off in this daemon: the daemon itself answers that (its own
                # error), the bus policy does not refuse the call.
                rc, err, out = self.bus.dbus_send("ListCgroups", user=uid)
                self.assertEqual(err, ERR_FAILED, f"ListCgroups as {who}: {out}")
                self.assertIn("cgroup accounting is off", out)

                p, periods = self.bus.call("GetHistory", "ss", "day", "", user=uid)
                self.assertEqual(p.returncode, 0, f"GetHistory day as {who}: {p.stderr}")

                p = self.ctl.run("--json", "status", user=uid)
                self.assertEqual(p.returncode, 0, f"nettallyctl status as {who}: {p.stderr}")

    def test_lists_are_sorted_and_cut(self):
        flows = self.bus.call_ok("ListFlows", "su", "packets", 100000)[0]
        self.assertGreaterEqual(len(flows), 12)
        for key, idx in (("packets", 0), ("l2", 1), ("l3", 2), ("l4", 3), ("payload", 4)):
            got = self.bus.call_ok("ListFlows", "su", key, 100000)[0]
            vals = [f[7][idx] for f in got]
            self.assertEqual(vals, sorted(vals, reverse=True), f"ListFlows by {key} descending")
            self.assertEqual(len(got), len(flows), f"ListFlows by {key}: same rows")
        for key, idx in (("first_seen", 8), ("last_seen", 9)):
            got = self.bus.call_ok("ListFlows", "su", key, 100000)[0]
            vals = [f[idx] for f in got]
            self.assertEqual(vals, sorted(vals, reverse=True), f"ListFlows by {key}: most recent first")
        top3 = self.bus.call_ok("ListFlows", "su", "l2", 3)[0]
        full = self.bus.call_ok("ListFlows", "su", "l2", 100000)[0]
        self.assertEqual([f[7][1] for f in top3], [f[7][1] for f in full[:3]], "top 3 by l2 = first 3")
        self.assertEqual(len(self.bus.call_ok("ListFlows", "su", "packets", 1)[0]), 1)

        hosts = self.bus.call_ok("ListHosts", "su", "packets", 100000)[0]
        self.assertEqual(len(hosts), 2, f"client's IPv4 and IPv6 on lan0: {hosts}")
        for key, idx in (("packets", 0), ("l2", 1), ("l3", 2), ("l4", 3), ("payload", 4)):
            got = self.bus.call_ok("ListHosts", "su", key, 100000)[0]
            vals = [hh[3][idx] + hh[4][idx] for hh in got]
            self.assertEqual(vals, sorted(vals, reverse=True), f"ListHosts by {key} (sent+received)")
        got = self.bus.call_ok("ListHosts", "su", "last_seen", 100000)[0]
        self.assertEqual([x[6] for x in got], sorted((x[6] for x in got), reverse=True), "hosts by last_seen")
        for mac, ip, iface, *_ in hosts:
            self.assertEqual((mac.lower(), iface), (h.Topology.MAC["cli"], "lan0"), f"host {ip}")

    # -- bad arguments ---------------------------------------------------------------------------

    def test_bad_arguments_are_invalid_argument(self):
        cases = [
            ("ListHosts", "bogus", 10, "sort"), ("ListFlows", "bogus", 5, "sort"),
            ("ListHosts", "", 10, "sort"), ("ListFlows", "PACKETS", 5, "sort"),
            ("ListHosts", "first_seen", 10, "sort"),  # hosts sort by last_seen only
            ("ListHosts", "l2", 0, "top"), ("ListFlows", "packets", 0, "top"),
            ("ListHosts", "l2", 4294967295, "top"), ("ListFlows", "packets", 4294967295, "top"),
            ("ListHosts", "l2", 100001, "top"), ("ListFlows", "packets", 100001, "top"),
        ]
        for method, key, top, which in cases:
            with self.subTest(method=method, sort_key=key, top=top):
                rc, err, msg = self.bus.dbus_send(method, f"string:{key}", f"uint32:{top}")
                self.assertNotEqual(rc, 0, f"{method}({key!r}, {top}) must fail: {msg}")
                self.assertEqual(err, ERR_INVALID_ARGUMENT, f"{method}({key!r}, {top}): {msg}")
                self.assertIn(which, msg.lower(), f"{method}({key!r}, {top}): the message names the argument")
                self.assert_daemon_answers(f"{method}({key!r}, {top})")
        for method, key, top in (("ListHosts", "l2", 100000), ("ListFlows", "payload", 1)):
            rc, err, msg = self.bus.dbus_send(method, f"string:{key}", f"uint32:{top}")
            self.assertEqual((rc, err), (0, None), f"{method}({key!r}, {top}) is in range: {msg}")
        # Wrong signature: rejected (by sd-bus) and harmless.
        rc, err, msg = self.bus.dbus_send("ListFlows", "uint32:5", "string:packets")
        self.assertNotEqual(rc, 0, msg)
        self.assert_daemon_answers("a call with the wrong signature")

    # -- Reload and the policy -------------------------------------------------------------------

    def test_reload_denied_to_unprivileged_user_by_policy(self):
        rc, err, msg = self.bus.dbus_send("Reload", user=h.NOBODY)
        self.assertEqual(err, ERR_ACCESS_DENIED, f"Reload as nobody: {msg}")
        p = self.bus.busctl("call", h.BUS_NAME, h.BUS_PATH, h.BUS_IFACE, "Reload", user=h.NOBODY)
        self.assertNotEqual(p.returncode, 0, "busctl Reload as nobody")
        p = self.ctl.run("reload", user=h.NOBODY)
        self.assertEqual(p.returncode, 1, f"nettallyctl reload as nobody: rc {p.returncode} {p.stderr}")
        self.assert_daemon_answers("a denied Reload")
        rc, err, msg = self.bus.dbus_send("Reload")
        self.assertEqual((rc, err), (0, None), f"Reload as root: {msg}")
        p = self.ctl.run("reload")
        self.assertEqual(p.returncode, 0, f"nettallyctl reload as root: {p.stderr}")
        self.assert_daemon_answers("Reload")

    def test_daemon_checks_the_caller_itself(self):
        """Behind a policy that lets everyone call everything, Reload by nobody is still refused."""
        loose = ('<policy context="default">\n'
                 f'    <allow send_destination="{h.BUS_NAME}"/>\n'
                 '  </policy>')
        topo = h.Topology().up()
        bus = h.PrivateBus(self.workdir, extra_policy=loose).start()
        d = h.Daemon(topo, bus, self.workdir, poll="200ms")
        try:
            d.start()
            d.write_config(d.config(poll="300ms"))
            rc, err, msg = bus.dbus_send("Reload", user=h.NOBODY)
            self.assertNotEqual(rc, 0, f"Reload as nobody behind a loose policy must fail: {msg}")
            self.assertIn(err, (ERR_ACCESS_DENIED, "org.nettally.Accounting1.Error.Failed",
                                "org.freedesktop.DBus.Error.AuthFailed"), msg)
            self.assertEqual(bus.status()["poll_interval_ms"], 200, "denied Reload changed nothing")
            self.assertTrue(d.alive())
            rc, err, msg = bus.dbus_send("Reload")
            self.assertEqual((rc, err), (0, None), f"Reload as root: {msg}")
            self.assertEqual(bus.status()["poll_interval_ms"], 300, "root's Reload applied")
        finally:
            rc = d.stop()
            bus.stop()
            topo.down()
        self.assertEqual(rc, 0, f"SIGTERM exit code\n{d.log_tail()}")

    # -- introspection ---------------------------------------------------------------------------

    def test_introspection_matches_shipped_xml(self):
        with open(XML_PATH) as f:
            shipped = methods_of(f.read())
        required = {"GetStatus", "ListInterfaces", "ListHosts", "ListFlows", "Reload"}
        self.assertLessEqual(required, set(shipped), "the shipped XML has the issue's methods")
        for uid, who in USERS:
            with self.subTest(user=who):
                p = self.bus.busctl("introspect", "--xml-interface", h.BUS_NAME, h.BUS_PATH, user=uid)
                self.assertEqual(p.returncode, 0, f"introspect as {who}: {p.stderr}")
                live = methods_of(p.stdout)
                for name, args in shipped.items():
                    self.assertIn(name, live, f"live object lacks {name}")
                    self.assertEqual([(t, d) for _, t, d in live[name]], [(t, d) for _, t, d in args],
                                     f"{name}: argument types/directions")
                    self.assertEqual([n for n, _, _ in live[name]], [n for n, _, _ in args],
                                     f"{name}: argument names")

    # -- nettallyctl exit codes ------------------------------------------------------------------

    def test_nettallyctl_exit_codes(self):
        p = self.ctl.run("--json", "interfaces")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.ctl.run("frobnicate")
        self.assertEqual(p.returncode, 2, f"usage error: {p.stderr}")
        p = self.ctl.run("--json", "flows", "--top", "4294967295")
        self.assertEqual(p.returncode, 1, f"daemon refused top: rc {p.returncode} {p.stderr}")
        self.assertEqual(p.stdout, "", "nothing on stdout after a failed call")
        self.assertTrue(p.stderr.strip(), "error on stderr")

        # No daemon on the bus: exit 3.
        empty = h.PrivateBus(self.workdir).start()
        try:
            t0 = time.monotonic()
            p = h.Ctl(empty.address).run("--json", "status")
            self.assertEqual(p.returncode, 3, f"no owner of the name: rc {p.returncode} {p.stderr}")
            self.assertLess(time.monotonic() - t0, 10, "nettallyctl must not hang without a daemon")
            self.assertEqual(p.stdout, "")
            self.assertTrue(p.stderr.strip())
        finally:
            empty.stop()
        # No bus at all: also unreachable.
        p = h.Ctl(f"unix:path={self.workdir}/no-such-socket").run("status")
        self.assertEqual(p.returncode, 3, f"no bus: rc {p.returncode} {p.stderr}")


if __name__ == "__main__":
    h.run_tests()
