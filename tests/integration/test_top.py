#!/usr/bin/python3
"""`nettallyctl top` under tmux, with traffic running (README "nettallyctl").

nettallyd runs in the gateway namespace (topology in ntharness.py); the client sends a steady UDP
stream (echoed by the server) through it for the whole test. `nettallyctl top --interval 1s` runs
in a detached tmux session (a real terminal); tmux capture-pane reads the screen.

Checked:
- the screen's lan0 rates (IN and OUT packets per second) match `nettallyctl --json top --once`
  taken at the same time, within what one refresh can differ by (the stream is paced by sleeps);
  the busiest flow on screen is the stream's;
- after `tmux resize-window` to a small size, the next screen fits it (no line wider, no more
  lines) and still shows lan0;
- q quits: the process exits 0 and the terminal is restored (the alternate screen is left);
- Ctrl-C quits the same way;
- `--once` (text) prints one frame with every interface.
HistoryGraphTest (own daemon, traffic sent once, then quiet): `history --graph` prints one bar per
period and subject with exactly the figure `nettallyctl --json history` gives, at every --layer;
`--output FILE` writes an SVG whose bars carry the same figures and which rsvg-convert (librsvg)
renders to a PNG.
"""

import os
import re
import shlex
import xml.etree.ElementTree as ET
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5001
SPORT = 40123
SIZE = 1000
GAP = 0.004  # about 250 datagrams per second each way, before the machine's own delays
TOLERANCE = 0.35  # relative: two frames of one paced stream, one refresh apart


def packet_rate(text):
    """'1.2 kpkt/s' or '250 pkt/s' -> packets per second."""
    m = re.fullmatch(r"([0-9.]+) (k?)pkt/s", text.strip())
    if not m:
        raise AssertionError(f"not a packet rate: {text!r}")
    return float(m.group(1)) * (1000 if m.group(2) else 1)


def start_gateway(owner, tool):
    """Namespaces, bus, nettallyd, nettallyctl and the traffic server, as owner's attributes."""
    h.require_all()
    h.require_tools(tool)
    h.open_env(owner)
    try:
        owner.daemon = h.Daemon(owner.topo, owner.bus, owner.workdir, poll="200ms", flows=h.NO_EVICTION)
        owner.daemon.start()
        owner.ctl = h.Ctl(owner.bus.address)
        owner.server = h.TrafficServer(owner.topo, PORT, [owner.topo.SRV4, owner.topo.SRV6]).start()
        owner.topo.settle()
    except BaseException:
        h.run_cleanups()
        raise


class TopTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_gateway(cls, "tmux")
        try:
            harness = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ntharness.py")
            cls.stream = h.spawn(cls.topo.exec_argv(cls.topo.cli, [
                h.PYTHON, harness, "udpfor", cls.topo.SRV4, str(PORT), str(SIZE), "120", str(SPORT), str(GAP)]),
                stdout=open(os.devnull, "w"))
            h.add_cleanup(h.stop_process, cls.stream)
            cls.tmux_socket = os.path.join(cls.workdir, "tmux.sock")
            h.add_cleanup(cls.tmux, "kill-server")
        except BaseException:
            h.run_cleanups()
            raise

    @classmethod
    def tearDownClass(cls):
        h.run_cleanups()

    @classmethod
    def tmux(cls, *args, check=False):
        return h.run(["tmux", "-S", cls.tmux_socket] + list(args), check=check, timeout=30)

    def start_top(self, session, cols=100, rows=30):
        # top's exit status goes to a file: tmux's own "pane dead" state was seen lagging by more
        # than 10 s after top had exited (a zombie tmux had not reaped yet). The shell waits for
        # top; its trap keeps it alive through the Ctrl-C the pane's process group receives.
        status = self.status_file(session)
        cmd = (f"trap : INT TERM; env DBUS_SYSTEM_BUS_ADDRESS={shlex.quote(self.bus.address)} TERM=xterm "
               f"{shlex.quote(h.nettallyctl_path())} top --interval 1s; echo $? > {shlex.quote(status)}")
        self.tmux("new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows), cmd, check=True)
        self.tmux("set-option", "-t", session, "remain-on-exit", "on", check=True)
        self.addCleanup(self.tmux, "kill-session", "-t", session)

    def status_file(self, session):
        return os.path.join(self.workdir, f"top-{session}.status")

    def screen(self, session):
        return self.tmux("capture-pane", "-p", "-t", session, check=True).stdout

    def lan0_line(self, session, timeout=15):
        def line():
            for ln in self.screen(session).splitlines():
                cells = re.split(r"\s{2,}", ln.strip())
                if cells[0] == "lan0" and len(cells) == 5:
                    return cells
            return None
        return h.wait_until(line, timeout, "lan0 rates on the top screen", interval=0.3)

    def pane_exit(self, session, timeout=10):
        """top's exit status, once it has exited (written by the pane's shell)."""
        def status():
            try:
                with open(self.status_file(session)) as f:
                    text = f.read().strip()
            except FileNotFoundError:
                return None
            return (int(text),) if text else None
        return h.wait_until(status, timeout, "top to exit")[0]

    def test_screen_matches_json(self):
        self.start_top("match")
        self.lan0_line("match")
        time.sleep(1.5)  # a frame of steady traffic
        cells = self.lan0_line("match")
        j = self.ctl.json("top", "--once", "--interval", "1s")
        cells_after = self.lan0_line("match")
        lan0 = next(i for i in j["interfaces"] if i["name"] == "lan0")
        self.assertGreater(lan0["ingress"]["packets_per_s"], 20, "no traffic in the JSON frame")
        for n, d in ((2, "ingress"), (4, "egress")):
            want = lan0[d]["packets_per_s"]
            got = [packet_rate(cells[n]), packet_rate(cells_after[n])]
            self.assertTrue(any(abs(g - want) <= TOLERANCE * want for g in got),
                            f"lan0 {d}: screen {got} pkt/s, --json {want:.1f} pkt/s")
        # The busiest flow is the stream (either direction of it).
        self.assertTrue(j["flows"], "no flow in the JSON frame")
        top = j["flows"][0]
        self.assertIn(SPORT, (top["sport"], top["dport"]))
        self.assertIn(f":{SPORT}", self.screen("match"))

    def test_resize_then_quit_with_q(self):
        self.start_top("resize")
        self.lan0_line("resize")
        self.tmux("resize-window", "-t", "resize", "-x", "52", "-y", "12", check=True)
        time.sleep(2.5)  # the next frames are drawn at the new size
        text = self.screen("resize")
        lines = text.rstrip("\n").split("\n")
        self.assertLessEqual(len(lines), 12)
        self.assertLessEqual(max(len(ln) for ln in lines), 52, text)
        self.lan0_line("resize")
        self.tmux("send-keys", "-t", "resize", "q", check=True)
        self.assertEqual(self.pane_exit("resize"), 0)
        self.assertNotIn("nettally top", self.screen("resize"), "the alternate screen was not left")

    def test_quit_with_ctrl_c(self):
        self.start_top("ctrlc")
        self.lan0_line("ctrlc")
        self.tmux("send-keys", "-t", "ctrlc", "C-c", check=True)
        self.assertEqual(self.pane_exit("ctrlc"), 0)
        self.assertNotIn("nettally top", self.screen("ctrlc"))

    def test_once_text(self):
        p = self.ctl.run("top", "--once", "--interval", "500ms")
        self.assertEqual(p.returncode, 0, p.stderr)
        names = [re.split(r"\s+", ln.strip())[0] for ln in p.stdout.splitlines()]
        self.assertIn("lan0", names)
        self.assertIn("wan0", names)
        self.assertTrue(p.stdout.startswith("nettally top: rates over "), p.stdout[:200])


class HistoryGraphTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_gateway(cls, "rsvg-convert")
        try:
            h.client_run(cls.topo, "udp", cls.topo.SRV4, PORT, "100,1000", 5)
            h.client_run(cls.topo, "tcp", cls.topo.SRV6, PORT, 100_000, 50_000)
            cls.daemon.wait_polls(3)
        except BaseException:
            h.run_cleanups()
            raise

    @classmethod
    def tearDownClass(cls):
        h.run_cleanups()

    def figures(self, layer, subject="iface:"):
        """{(period label, subject): figure} from nettallyctl --json history."""
        j = self.ctl.json("history", "--subject", subject)["history"]["periods"]
        return {(p["label"], s): c[layer] for p in j for s, c in p["totals"].items()}

    def test_terminal_bars_equal_history(self):
        for layer in ("l2", "packets", "payload"):
            want = self.figures(layer)
            self.assertTrue(want and all(v > 0 for v in want.values()), want)
            p = self.ctl.run("history", "--graph", "--layer", layer, "--subject", "iface:")
            self.assertEqual(p.returncode, 0, p.stderr)
            got, bars, label = {}, {}, None
            for ln in p.stdout.splitlines():
                m = re.match(r"^(\S*)\s+(iface:\S+)\s+(\u2588*)\s+(\d+) ", ln)
                self.assertIsNotNone(m, f"not a bar line: {ln!r}")
                label = m.group(1) or label
                got[(label, m.group(2))] = int(m.group(4))
                bars[(label, m.group(2))] = len(m.group(3))
            self.assertEqual(got, want, f"--layer {layer}:\n{p.stdout}")
            # The longest bar belongs to the largest figure.
            self.assertEqual(bars[max(want, key=want.get)], max(bars.values()), p.stdout)
            self.assertGreater(max(bars.values()), 0)

    def test_svg_opens_and_carries_the_figures(self):
        svg = os.path.join(self.workdir, "history.svg")
        p = self.ctl.run("history", "--graph", "--output", svg, "--subject", "iface:")
        self.assertEqual(p.returncode, 0, p.stderr)
        want = self.figures("l2")
        root = ET.parse(svg).getroot()
        got = {(r.get("data-period"), r.get("data-subject")): int(r.get("data-value"))
               for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("data-value") is not None}
        self.assertEqual(got, want)
        png = os.path.join(self.workdir, "history.png")
        h.run(["rsvg-convert", "-o", png, svg])
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(png), 1000)

    def test_bad_output_path_fails(self):
        p = self.ctl.run("history", "--graph", "--output", "/nonexistent-dir/x.svg")
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot write /nonexistent-dir/x.svg", p.stderr)


if __name__ == "__main__":
    h.run_tests()
