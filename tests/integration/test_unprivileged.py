#!/usr/bin/python3
"""nettallyd as the unprivileged system user "nettally", as its systemd unit runs it (README
"Install as a service"): `User=nettally`, only CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (ambient and
bounding set), and `ExecStartPre=+nettallyd --prepare-pins nettally` run as root before it.

Here setpriv stands for the unit (no systemd as PID 1 on the build machine; the VM suite runs the
real unit on Debian 12). The pins live in a bpffs mounted for the test (mode 0700, root's, as
systemd mounts /sys/fs/bpf), so the host's /sys/fs/bpf is never changed. User "nettally" is created
(as the package's sysusers.d entry does) when the machine has none, and removed afterwards.

Checked:
- `--prepare-pins nettally` gives pin_dir to the user and makes the bpffs root searchable (o+x),
  nothing more; run again it changes nothing;
- nettallyd started as that user runs with uid nettally and exactly the three capabilities, pins
  its maps there, attaches its cgroup programs, and its lan0 counts equal a capture's;
- restarted as the user it reuses the pins (counting went on while it was down);
- without the preparation (pins root's) it refuses to start and the message names --prepare-pins;
- `--prepare-pins root` gives them back: nettallyd as root with the same three capabilities (no
  CAP_DAC_OVERRIDE) reuses them and the counts go on.
"""

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

USER = "nettally"
CAPS = "-all,+bpf,+perfmon,+net_admin"
CAP_MASK = (1 << 12) | (1 << 38) | (1 << 39)  # CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF
PORT = 5001


def as_user(user):
    """setpriv argv: user (with its groups) and only the three capabilities, as the unit gives."""
    caps = [f"--inh-caps={CAPS}", f"--ambient-caps={CAPS}", f"--bounding-set={CAPS}"]
    if user == "root":
        return ["setpriv", f"--bounding-set={CAPS}", "--"]
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] + caps + ["--"]


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def nettallyd_pid(daemon):
    """The nettallyd process under nsenter and setpriv (they exec, so it is the spawned pid)."""
    return daemon.proc.pid


class UnprivilegedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.require_tools("setpriv", "useradd", "userdel")
        # Before the bus: dbus-daemon resolves the policy's user names when it reads it.
        try:
            pwd.getpwnam(USER)
        except KeyError:
            h.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                   "--shell", "/usr/sbin/nologin", USER])
            h.add_cleanup(subprocess.call, ["userdel", USER])
        try:
            h.open_env(cls)
            cls.ctl = h.Ctl(cls.bus.address)
            cls.uid = pwd.getpwnam(USER).pw_uid
            cls.bpffs = tempfile.mkdtemp(prefix="ntt-bpffs-")
            h.add_cleanup(shutil.rmtree, cls.bpffs, True)
            h.run(["mount", "-t", "bpf", "-o", "mode=0700", "bpf", cls.bpffs])
            h.add_cleanup(subprocess.call, ["umount", "-l", cls.bpffs])
            cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
            cls.topo.settle()  # the link-up MLD reports are over before any window
        except BaseException:
            h.run_cleanups()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "server", None):
            cls.server.stop()
        cls.bus.stop()
        cls.topo.down()
        h.run_cleanups()

    def new_daemon(self, name):
        d = h.Daemon(self.topo, self.bus, self.workdir, extra="cgroups:\n  enabled: true\n")
        d.pin_dir = os.path.join(self.bpffs, name, "nettally")
        d.write_config(d.config())
        return d

    def prepare(self, daemon, user):
        return h.run([h.nettallyd_path(), "--config", daemon.config_path, "--prepare-pins", user],
                     check=False, env=h.isolated_env())

    def start_as(self, daemon, user):
        daemon.wrapper = as_user(user)
        daemon.owner = user
        return daemon.start()

    def lan0(self):
        ifs = {i["name"]: i for i in self.ctl.json("interfaces")["interfaces"]}
        return {d: h.cget(ifs["lan0"][d]) for d in ("ingress", "egress")}

    def traffic_against_capture(self, daemon):
        """UDP, TCP and ICMP through lan0 under a capture; nettally's lan0 delta == the capture.
        The baseline is a poll made after the capture runs: nothing counted before it is in the
        window, nothing the capture saw is missing from it."""
        cap = h.Capture(self.topo, "lan0", self.workdir)
        cap.start()
        try:
            cap.wait_running()
            daemon.wait_polls(2)
            before = self.lan0()
            h.client_run(self.topo, "udp", self.topo.SRV4, PORT, "10,1000,1400", 5)
            h.client_run(self.topo, "tcp", self.topo.SRV6, PORT, 20000, 50000)
            h.client_run(self.topo, "icmp", self.topo.SRV4, "56,1000", 3)
            daemon.wait_polls(2)
        finally:
            cap.stop()
        after = self.lan0()
        truth = h.analyse([cap], lan_ifaces=("lan0",))
        for d in ("ingress", "egress"):
            got = h.csub(after[d], before[d])
            want = truth.iface("lan0", d)
            self.assertEqual(got, want, f"lan0 {d}: nettally {h.fmt_c(got)} vs capture {h.fmt_c(want)}")
        return after

    def test_prepare_pins_is_exact_and_idempotent(self):
        d = self.new_daemon("prep")
        os.chmod(self.bpffs, 0o700)
        p = self.prepare(d, USER)
        self.assertEqual(p.returncode, 0, p.stderr)
        st = os.stat(d.pin_dir)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (self.uid, 0o700))
        self.assertEqual(stat.S_IMODE(os.stat(self.bpffs).st_mode), 0o701, "bpffs root: o+x only")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(d.pin_dir)).st_mode), 0o711)
        again = self.prepare(d, USER)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("0 directories made searchable, 0 created, 0 entries", again.stderr)
        bad = self.prepare(d, "ntt-no-such-user")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("no such user", bad.stderr)

    def test_user_counts_exactly_and_pins_move_between_users(self):
        d = self.new_daemon("run")
        os.chmod(self.bpffs, 0o700)
        # Pins of root (a daemon as root before the unit gained User=), not handed over: refused,
        # with the way out in the message.
        self.start_as(d, "root")
        d.stop(keep_pins=True)
        d.wrapper, d.owner = as_user(USER), USER
        with self.assertRaises(AssertionError) as refused:
            d.start(timeout=15)
        self.assertIn("--prepare-pins", str(refused.exception))
        d.stop(keep_pins=True)

        p = self.prepare(d, USER)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.start_as(d, USER)
        st = proc_status(nettallyd_pid(d))
        self.assertEqual(int(st["Uid"].split()[1]), self.uid, "effective uid")
        self.assertEqual(int(st["CapEff"], 16), CAP_MASK, f"CapEff {st['CapEff']}")
        self.assertEqual(int(st["CapBnd"], 16), CAP_MASK, f"CapBnd {st['CapBnd']}")
        pins = os.listdir(d.pin_dir)
        self.assertIn("nt_flows", pins)
        for n in pins:
            self.assertEqual(os.stat(os.path.join(d.pin_dir, n)).st_uid, self.uid, n)
        self.assertIsInstance(self.ctl.json("cgroups"), dict, "cgroup programs attached as the user")
        first = self.traffic_against_capture(d)

        # Down, traffic, up again as the user: the pins were reused, nothing was lost.
        d.stop(keep_pins=True)
        h.client_run(self.topo, "icmp", self.topo.SRV4, "100", 5)
        self.start_as(d, USER)
        self.assertIn("reusing pinned maps", d.log_tail(200))
        self.assertGreaterEqual(self.lan0()["egress"]["packets"] - first["egress"]["packets"], 5)
        second = self.traffic_against_capture(d)

        # Back to root with the same three capabilities: --prepare-pins root first.
        d.stop(keep_pins=True)
        p = self.prepare(d, "root")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.start_as(d, "root")
        st = proc_status(nettallyd_pid(d))
        self.assertEqual(int(st["Uid"].split()[1]), 0)
        self.assertEqual(int(st["CapEff"], 16), CAP_MASK, f"CapEff {st['CapEff']}")
        self.assertIn("reusing pinned maps", d.log_tail(200))
        third = self.traffic_against_capture(d)
        self.assertGreater(third["ingress"]["packets"], second["ingress"]["packets"])
        d.stop()


if __name__ == "__main__":
    h.run_tests()
