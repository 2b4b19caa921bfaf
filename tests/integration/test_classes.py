#!/usr/bin/python3
"""Acceptance test for traffic classes in nettallyd (README "Traffic classes").

nettallyd runs in the gateway namespace on lan0 (lan) and wan0 (wan) (topology in ntharness.py),
with a ruleset of five classes compiled by `nettallyctl rules compile` and loaded with
`nettallyctl rules load` (LoadRules): iptv (UDP to 239.0.0.0/8), voip (SIP 5060 over UDP and TCP,
RTP on a UDP port range), web (TCP 80 and 443), dns (UDP and TCP 53) and other.
CaptureTest: traffic of every kind (IPv4 and IPv6, plus non-IP frames) crosses the gateway while
dumpcap captures lan0 and wan0; each class's five figures over that window equal the capture
filtered by the class's equivalent tshark display filter (first match: a class's filter and not
the earlier classes'), per interface and direction; the class reconciliation line (Σ classes ==
interface total) holds at every poll.
BadBundleTest: 18 bad bundles are refused over D-Bus, each with a one-line reason and a
RulesRejected signal, with nothing changed (version, hash, the classes listed), and traffic goes
on counting in the classes in force.
LifecycleTest: load v1, load v2 (a class removed: it keeps its totals, marked gone), rollback to
v1; a restart (SIGTERM, then kill -9) comes back with the ruleset in force and the class totals
continued exactly, traffic sent while nettallyd was down included.
SwapTest: 100 swaps between two rulesets that split a continuous UDP flood differently: the class
line never breaks at any poll; after the last swap (flood paused) each class == its capture.
FlowClassRecordsTest: flows carry their class; records of type class; the ruleset version in every
record and IPFIX record. With v1 loaded, DNS (UDP 53) and web (TCP 80) flows over IPv4 and IPv6:
ListFlows and `nettallyctl flows --json` show each live flow's class; once they finished, each flow
record carries its class and version 1, each IPFIX record (a TCP collector, decoded here) carries
rulesVersion 1 and the class id in the enterprise elements; the class records (version 1) add up
to the class totals. v2 loaded over D-Bus: the records after it carry version 2 (flow, class,
interface, IPFIX), the class records of version 2 add up to the totals since the load.
HostClassesTest: two lan hosts (cli behind lan0, cli2 behind lan1; each an IPv4 and an IPv6 host),
the five classes, mixed traffic of different amounts from each: every host x class figure (sent and
received, the five layers) of `nettallyctl classes --hosts` over the window equals the lan captures
filtered by the host (as the hosts table counts it: source MAC and address on ingress, unicast
destination on egress) and the class's display filter; per host the classes add up to the host's
totals; the per-host reconciliation line holds at every poll; --iface and ListHostClasses filter.
HostClassesRestartTest: traffic while nettallyd is down (SIGTERM, then kill -9) lands in the
host x class totals after the restart, which continue exactly.
PullTest: rules.url served by nginx in the gateway namespace, rules.trusted_keys set: the first
bundle is applied at start, a new version put on the server is applied within one refresh, the
next requests get 304 (counted, no reload), a bundle signed by another key and an unsigned one are
refused with the rules in force kept, nginx stopped -> failures counted and the rules stay.
"""

import datetime
import json
import os
import signal
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402
import test_export as te  # noqa: E402
import upload_servers as us  # noqa: E402

IFACES = ("lan0", "wan0")
RTP_PORTS = (16384, 16484)
OTHER_PORT = 5001
MCAST = "239.1.2.3"

RULES_V1 = """name: nt-test
version: {version}
classes:
  - name: iptv
    id: 10
    match:
      protocol: udp
      dst: 239.0.0.0/8
  - name: voip
    id: 20
    match:
      - {{protocol: [udp, tcp], dport: 5060}}
      - {{protocol: [udp, tcp], sport: 5060}}
      - {{protocol: udp, dport: {rtp_lo}-{rtp_hi}}}
      - {{protocol: udp, sport: {rtp_lo}-{rtp_hi}}}
  - name: web
    id: 50
    match:
      - {{protocol: tcp, dport: [80, 443]}}
      - {{protocol: tcp, sport: [80, 443]}}
{dns}"""

DNS_CLASS = """  - name: dns
    id: 40
    match:
      - {protocol: [udp, tcp], dport: 53}
      - {protocol: [udp, tcp], sport: 53}
"""

# The classes in order, each with its tshark display filter (the rules as Wireshark reads them).
FILTERS = [
    ("iptv", "udp && ip.dst == 239.0.0.0/8"),
    ("voip", f"udp.port == 5060 || tcp.port == 5060 || udp.port in {{{RTP_PORTS[0]}..{RTP_PORTS[1]}}}"),
    ("web", "tcp.port == 80 || tcp.port == 443"),
    ("dns", "udp.port == 53 || tcp.port == 53"),
]


def rules_text(version, dns=True):
    return RULES_V1.format(version=version, rtp_lo=RTP_PORTS[0], rtp_hi=RTP_PORTS[1],
                           dns=DNS_CLASS if dns else "")


def class_filters():
    """(class, display filter) with first-match semantics, "other" last."""
    out, earlier = [], []
    for name, f in FILTERS:
        out.append((name, f"({f})" + "".join(f" && !({e})" for e in earlier)))
        earlier.append(f)
    out.append(("other", " && ".join(f"!({e})" for e in earlier)))
    return out


def compile_bundle(ctl, workdir, text, name):
    src = os.path.join(workdir, f"{name}.yaml")
    out = os.path.join(workdir, f"{name}.bundle")
    with open(src, "w") as f:
        f.write(text)
    p = ctl.run("rules", "compile", src, "-o", out)
    if p.returncode != 0:
        raise AssertionError(f"rules compile {src}: {p.stderr}")
    with open(out, "rb") as f:
        return out, f.read()


def load(ctl, path):
    return ctl.run("--json", "rules", "load", path)


def classes(ctl):
    """(iface, direction, class) -> {"c": C, "gone": bool}."""
    out = {}
    for r in ctl.json("classes")["classes"]:
        key = (r["interface"], r["direction"], r["class"])
        if key in out:
            raise AssertionError(f"classes lists {key} twice")
        out[key] = {"c": h.cget(r["counters"]), "gone": r["gone"], "id": r["class_id"]}
    return out


def class_delta(after, before, key):
    b = before.get(key, {"c": h.zero()})["c"]
    return h.csub(after.get(key, {"c": h.zero()})["c"], b)


def send_multicast(topo, count=5, size=200):
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,1)\n"
        f"s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton('{topo.CLI4}'))\n"
        f"for i in range({count}): s.sendto(bytes({size}),('{MCAST}',5004))\n")
    h.run(topo.exec_argv(topo.cli, [h.PYTHON, "-c", code]))


def send_non_ip(topo, lengths=(60, 200)):
    code = (
        "import socket,struct\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
        "s.bind(('eth0',0))\n"
        f"dst=bytes.fromhex('{h.Topology.MAC['lan0'].replace(':', '')}')\n"
        f"src=bytes.fromhex('{h.Topology.MAC['cli'].replace(':', '')}')\n"
        f"for n in {list(lengths)}:\n"
        "    s.send(dst+src+struct.pack('!H',0x88B5)+bytes(n-14))\n")
    h.run(topo.exec_argv(topo.cli, [h.PYTHON, "-c", code]))


def filtered_frames(cap, display_filter):
    """The captured frames the display filter selects, parsed (ntharness Packet)."""
    argv = ["tshark", "-r", cap.path, "-n", "-Y", display_filter, "-T", "fields", "-E", "separator=/t",
            "-E", "occurrence=a", "-E", "aggregator=|",
            "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
            "-o", "tcp.calculate_timestamps:FALSE"]
    for f in h._TSHARK_FIELDS:
        argv += ["-e", f]
    out = h.run(argv, timeout=120).stdout
    return [h.parse_frame(line.split("\t"), cap.iface, cap.mac) for line in out.splitlines() if line.strip()]


def filtered_sums(cap, display_filter):
    """(iface, direction) -> C of the captured frames the display filter selects."""
    sums = {}
    for p in filtered_frames(cap, display_filter):
        k = (p.iface, p.direction)
        sums[k] = h.cadd(sums.get(k, h.zero()), p.c)
    return sums


def host_sums(packets, lan_iface):
    """(iface, mac, ip) -> {"sent": C, "received": C} of frames on a lan interface, attributed to
    hosts as the hosts table does (ntharness CaptureResult.add_hosts)."""
    r = h.CaptureResult(packets)
    r.add_hosts(lan_iface)
    return {(i, m.lower(), h.norm_ip(a)): v for (i, m, a), v in r.hosts.items()}


def host_classes(ctl, *args):
    """(iface, mac, ip, class) -> {"sent": C, "received": C, "gone": bool, "id": N}."""
    out = {}
    for r in ctl.json("classes", "--hosts", *args)["host_classes"]:
        key = (r["interface"], r["mac"].lower(), h.norm_ip(r["ip"]), r["class"])
        if key in out:
            raise AssertionError(f"classes --hosts lists {key} twice")
        out[key] = {"sent": h.cget(r["sent"]), "received": h.cget(r["received"]), "gone": r["gone"],
                    "id": r["class_id"]}
    return out


def host_class_delta(after, before, key, side):
    empty = {"sent": h.zero(), "received": h.zero()}
    return h.csub(after.get(key, empty)[side], before.get(key, empty)[side])


def client2_run(topo, *args, timeout=60):
    """A traffic client (ntharness traffic_main) in the second lan client's namespace."""
    p = h.run(topo.exec_argv(topo.cli2, [h.PYTHON, os.path.abspath(h.__file__)] + [str(a) for a in args]),
              timeout=timeout)
    return json.loads(p.stdout)


def start_servers(topo, ports):
    return [h.TrafficServer(topo, p, [topo.SRV4, topo.SRV6]).start() for p in ports]


def rules_config(max_size=None, textfile_dir=None):
    extra = "rules:\n"
    extra += f"  max_size: {max_size}\n" if max_size else "  refresh: 5m\n"
    if textfile_dir:
        extra += f"metrics:\n  textfile_dir: {textfile_dir}\n  textfile_interval: 1s\n"
    return extra


def prom_samples(text, family):
    """{(label, value) pairs: value} of one family's samples in a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line.startswith(family + "{"):
            continue
        labels, value = line[len(family) + 1:].rsplit("} ", 1)
        pairs = tuple(sorted(tuple(kv.split("=", 1)) for kv in labels.split(",")))
        out[tuple((k, v.strip('"')) for k, v in pairs)] = float(value)
    return out


class CaptureTest(unittest.TestCase):
    """One measured window in setUpClass; each test checks one aspect of it."""

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls)
        cls.textfile_dir = os.path.join(cls.workdir, "textfile")
        os.makedirs(cls.textfile_dir)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", flows=h.NO_EVICTION,
                              extra=rules_config(textfile_dir=cls.textfile_dir))
        cls.ctl = h.Ctl(cls.bus.address)
        try:
            cls.daemon.start()
            cls.servers = start_servers(cls.topo, [53, 80, 443, 5060, RTP_PORTS[0] + 16, OTHER_PORT])
            path, _ = compile_bundle(cls.ctl, cls.workdir, rules_text(1), "v1")
            p = load(cls.ctl, path)
            if p.returncode != 0:
                raise AssertionError(f"rules load: {p.stderr}")
            # Quotas on a class (counted from now, so from before the window below): web on the
            # lan (both directions, l2) and web leaving on wan0 (sent, l3).
            for args in (("web-lan", "--class", "web", "--layer", "l2"),
                         ("web-wan-up", "--class", "web@wan0", "--direction", "sent", "--layer", "l3")):
                p = cls.ctl.run("thresholds", "add", *args, "--period", "since", "--step", "1000")
                if p.returncode != 0:
                    raise AssertionError(f"thresholds add {args}: {p.stderr}")
            cls.topo.settle()
            cls._measure()
            cls.usage = {n: cls._usage(n) for n in ("web-lan", "web-wan-up")}
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _usage(cls, name):
        p = cls.bus.busctl("--json=short", "call", h.BUS_NAME, h.BUS_PATH, "org.nettally.Accounting1.Thresholds",
                           "GetUsage", "s", name)
        if p.returncode != 0:
            raise AssertionError(f"GetUsage {name}: {p.stderr}")
        return {k: v["data"] for k, v in json.loads(p.stdout)["data"][0][0].items()}

    @classmethod
    def _measure(cls):
        topo = cls.topo
        caps = [h.Capture(topo, i, cls.workdir).start() for i in IFACES]
        try:
            for c in caps:
                c.wait_running()
            cls.status_before = cls.daemon.wait_polls(2)
            cls.before = classes(cls.ctl)
            cls.ifaces_before = cls.ctl.snapshot().ifaces
            cls.samples = []
            rtp = RTP_PORTS[0] + 16
            for srv in (topo.SRV4, topo.SRV6):
                h.client_run(topo, "udp", srv, 53, "40,300", 3)
                h.client_run(topo, "tcp", srv, 53, 2000, 5000)
                h.client_run(topo, "tcp", srv, 80, 20000, 60000)
                h.client_run(topo, "tcp", srv, 443, 10000, 30000)
                h.client_run(topo, "udp", srv, 5060, "500", 3)
                h.client_run(topo, "tcp", srv, 5060, 1000, 1000)
                h.client_run(topo, "udp", srv, rtp, "160,1200", 4, RTP_PORTS[0] + 2)
                h.client_run(topo, "udp", srv, OTHER_PORT, "100,1000", 2)
                h.client_run(topo, "tcp", srv, OTHER_PORT, 5000, 5000)
                h.client_run(topo, "icmp", srv, "56,1000", 2)
                cls.samples.append(cls.bus.status())
            send_multicast(topo)
            send_non_ip(topo)
            cls.status_after = cls.daemon.wait_polls(2)
            cls.after = classes(cls.ctl)
            cls.after_time = time.time()
            cls.ifaces_after = cls.ctl.snapshot().ifaces
            cls.status_end = cls.bus.status()
        finally:
            for c in caps:
                c.stop()
        for c in caps:
            c.read()  # no drops, every frame parsed
        cls.capture = {}
        for name, flt in class_filters():
            sums = {}
            for c in caps:
                sums.update(filtered_sums(c, flt))
            cls.capture[name] = sums
        cls.whole = h.analyse(caps)

    @classmethod
    def _teardown(cls):
        for s in getattr(cls, "servers", []):
            s.stop()
        if getattr(cls, "daemon", None):
            cls.daemon.stop()
        cls.bus.stop()
        cls.topo.down()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def test_each_class_equals_its_capture_filter(self):
        problems = []
        for name, _ in class_filters():
            for iface in IFACES:
                for d in h.DIRECTIONS:
                    got = class_delta(self.after, self.before, (iface, d, name))
                    want = self.capture[name].get((iface, d), h.zero())
                    h.log(f"class {name:5} {iface} {d:7}: nettally {h.fmt_c(got)}, capture {h.fmt_c(want)}")
                    for f in h.FIGURES:
                        if got[f] != want[f]:
                            problems.append(f"  {name} {iface} {d} {f}: nettally {got[f]} != capture {want[f]}")
        if problems:
            self.fail("class figures differ from the capture:\n" + "\n".join(problems))

    def test_every_class_had_traffic(self):
        for name, _ in class_filters():
            with self.subTest(cls=name):
                pk = self.capture[name].get(("lan0", "ingress"), h.zero())["packets"]
                self.assertGreater(pk, 0, f"no {name} packets captured on lan0 ingress")
        for name in ("voip", "web", "dns", "other"):
            for d in h.DIRECTIONS:
                self.assertGreater(self.capture[name].get(("wan0", d), h.zero())["packets"], 0,
                                   f"{name} wan0 {d}")
        self.assertEqual(self.capture["iptv"].get(("lan0", "ingress"), h.zero())["packets"], 5)

    def test_classes_sum_to_interface_totals(self):
        problems = []
        for iface in IFACES:
            for d in h.DIRECTIONS:
                s = h.zero()
                for name, _ in class_filters():
                    s = h.cadd(s, class_delta(self.after, self.before, (iface, d, name)))
                total = h.csub(self.ifaces_after[(iface, d)], self.ifaces_before[(iface, d)])
                if s != total:
                    problems.append(f"  {iface} {d}: classes {h.fmt_c(s)} != interface {h.fmt_c(total)}")
                if total != self.whole.iface(iface, d):
                    problems.append(f"  {iface} {d}: interface {h.fmt_c(total)} != capture "
                                    f"{h.fmt_c(self.whole.iface(iface, d))}")
        if problems:
            self.fail("\n".join(problems))

    def test_daemon_class_reconciliation(self):
        every = [self.status_before] + self.samples + [self.status_after, self.status_end]
        for i, s in enumerate(every):
            self.assertEqual(s["class_reconcile_violations"], 0, f"sample {i}: {s.get('last_violation')}")
            self.assertEqual(s["reconcile_violations"], 0, f"sample {i}")
        self.assertGreater(self.status_end["class_reconcile_checks"], self.status_before["class_reconcile_checks"])
        self.assertGreater(self.status_end["class_reconcile_exact"], 0)
        self.assertEqual(self.status_end["class_overflow_packets"], 0)
        self.assertEqual(self.status_end["rules_version"], 1)

    def test_class_thresholds_usage_equals_capture(self):
        """A class subject's usage: "web" on the lan (both directions) and "web@wan0" sent, each ==
        the capture of the web class there (no web traffic outside the window)."""
        cap = self.capture["web"]
        want_lan = h.cadd(cap.get(("lan0", "ingress"), h.zero()), cap.get(("lan0", "egress"), h.zero()))["l2"]
        want_wan = cap.get(("wan0", "egress"), h.zero())["l3"]
        h.log(f"web-lan usage {self.usage['web-lan']['usage']} (capture l2 {want_lan}), "
              f"web-wan-up usage {self.usage['web-wan-up']['usage']} (capture l3 {want_wan})")
        self.assertGreater(want_lan, 0)
        self.assertEqual(self.usage["web-lan"]["usage"], want_lan)
        self.assertEqual(self.usage["web-lan"]["step_index"], want_lan // 1000)
        self.assertEqual(self.usage["web-wan-up"]["usage"], want_wan)

    def test_class_threshold_refusals(self):
        for subject, why in (("nosuch", "unknown class 'nosuch' (active: "),
                             ("web@eth9", "unknown interface 'eth9'"), ("Web", "not a class name")):
            p = self.ctl.run("thresholds", "add", "bad", "--class", subject, "--step", "1000")
            self.assertNotEqual(p.returncode, 0, subject)
            self.assertIn(why, p.stderr, subject)

    def test_history_per_class_equals_class_totals(self):
        """The day history of every class subject (class:NAME@IFACE:DIR) adds up to the class's
        total: the ruleset was loaded on this daemon, so the history saw all of it."""
        for _ in range(10):  # between two equal reads of the classes (a stray ND packet moves "other")
            before = classes(self.ctl)
            hist = self.ctl.json("history", "--period", "day", "--subject", "class:")["history"]
            after = classes(self.ctl)
            if before == after:
                break
        self.assertEqual(before, after, "the classes never stood still")
        sums = {}
        for p in hist["periods"]:
            for subject, c in p["totals"].items():
                self.assertTrue(subject.startswith("class:"), subject)
                sums[subject] = h.cadd(sums.get(subject, h.zero()), h.cget(c))
        want = {f"class:{name}@{iface}:{d}": v["c"] for (iface, d, name), v in after.items()
                if v["c"] != h.zero()}
        self.assertEqual(sums, want)
        self.assertIn("class:web@lan0:ingress", sums)

    def test_metrics_equal_ctl(self):
        """The textfile's class series carry the figures `nettallyctl classes` shows (quiet network),
        and promtool accepts the exposition."""
        path = os.path.join(self.textfile_dir, "nettally.prom")

        def settled():
            if not os.path.exists(path):
                return None
            with open(path) as f:
                text = f.read()
            return text if os.path.getmtime(path) > self.after_time + 1 else None
        text = h.wait_until(settled, 15, "a textfile written after the window")
        packets = prom_samples(text, "nettally_class_packets_total")
        l3 = prom_samples(text, "nettally_class_bytes_total")
        self.assertEqual(len(packets), len(self.after))
        for (iface, d, name), v in self.after.items():
            key = (("class", name), ("class_id", str(v["id"])), ("direction", d), ("interface", iface))
            self.assertEqual(packets.get(key), v["c"]["packets"], key)
            self.assertEqual(l3.get(key + (("layer", "l3"),)), v["c"]["l3"], key)
        self.assertIn("nettally_rules_version 1", text)
        self.assertIn("nettally_rules_rejected_total 0", text)
        if h.shutil.which("promtool"):
            p = h.run(["promtool", "check", "metrics"], check=False, input=text)
            self.assertEqual(p.returncode, 0, f"promtool check metrics:\n{p.stdout}{p.stderr}")

    def test_no_class_gone(self):
        self.assertFalse([k for k, v in self.after.items() if v["gone"]])
        ids = {k[2]: v["id"] for k, v in self.after.items()}
        self.assertEqual(ids.get("other"), 0)
        self.assertEqual(ids.get("dns"), 40)


# -- bad bundles ---------------------------------------------------------------------------------

def fnv1a64(data):
    x = 0xcbf29ce484222325
    for b in data:
        x ^= b
        x = (x * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return x


def rehash(b):
    """The bundle with the header's hash recomputed over its (changed) body."""
    b = bytearray(b)
    struct.pack_into("<Q", b, 16, fnv1a64(bytes(b[48:])))
    return bytes(b)


def patched(b, offset, fmt, value, fix_hash=False):
    b = bytearray(b)
    struct.pack_into(fmt, b, offset, value)
    return rehash(b) if fix_hash else bytes(b)


def bad_bundles(good, older, equal, max_size):
    """(name, bytes, a word the reason must contain) — each one must be refused."""
    flipped = bytearray(good)
    flipped[len(good) - 3] ^= 0x5A
    rules = struct.unpack_from("<I", good, 28)[0]
    ncls = struct.unpack_from("<I", good, 32)[0]
    return [
        ("empty", b"", "truncated"),
        ("truncated header", good[:20], "truncated"),
        ("truncated body", good[:-10], "body size"),
        ("trailing byte", good + b"\0", "after the bundle"),  # not a signature trailer either
        ("bad magic", b"XTCB" + good[4:], "magic"),
        ("unknown format", patched(good, 4, "<H", 2), "format"),
        ("bad header size", patched(good, 6, "<H", 64), "header size"),
        ("version 0", patched(good, 8, "<Q", 0), "version"),
        ("older version", older, "not newer"),
        ("equal version", equal, "not newer"),
        ("too large", good + bytes(max_size), "max_size"),
        ("flipped body byte", bytes(flipped), "hash"),
        ("rule count", patched(good, 28, "<I", rules + 1), "rule count"),
        ("class count", patched(good, 32, "<I", ncls + 1), "class count"),
        ("bitmask width", patched(good, 36, "<I", 3), "bitmask"),
        ("sections", patched(good, 40, "<I", 99), "sections"),
        ("flags", patched(good, 44, "<I", 1), "flags"),
        ("body size field", patched(good, 24, "<I", len(good)), "body size"),
        ("garbage", bytes(range(256)) * 2, "magic"),
        ("section kind, hash fixed", patched(good, 48, "<H", 0x7F, fix_hash=True), "bundle"),
    ]


class BadBundleTest(unittest.TestCase):
    MAX_SIZE = 65536

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", flows=h.NO_EVICTION,
                              extra=rules_config(max_size=cls.MAX_SIZE))
        cls.ctl = h.Ctl(cls.bus.address)
        try:
            cls.daemon.start()
            cls.servers = start_servers(cls.topo, [53])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in getattr(cls, "servers", []):
            s.stop()
        if getattr(cls, "daemon", None):
            cls.daemon.stop()
        cls.bus.stop()
        cls.topo.down()

    def test_bad_bundles_refused_nothing_changed(self):
        ctl, topo = self.ctl, self.topo
        _, v1 = compile_bundle(ctl, self.workdir, rules_text(1), "v1")
        path2, v2 = compile_bundle(ctl, self.workdir, rules_text(2), "v2")
        _, v2b = compile_bundle(ctl, self.workdir, rules_text(2, dns=False), "v2b")
        p = load(ctl, path2)
        self.assertEqual(p.returncode, 0, p.stderr)
        status = ctl.json("rules", "status")
        self.assertEqual((status["version"], status["active"]), (2, True))
        h.client_run(topo, "udp", topo.SRV4, 53, "100", 2)
        self.daemon.wait_polls(2)
        before = classes(ctl)
        monitor = h.SignalMonitor(self.bus).start()
        bad = bad_bundles(v2, v1, v2b, self.MAX_SIZE)
        self.assertGreaterEqual(len(bad), 15)
        try:
            for i, (name, data, word) in enumerate(bad):
                with self.subTest(bundle=name):
                    f = os.path.join(self.workdir, f"bad-{i}.bundle")
                    with open(f, "wb") as out:
                        out.write(data)
                    p = load(ctl, f)
                    self.assertEqual(p.returncode, 1, f"{name}: exit {p.returncode} {p.stdout} {p.stderr}")
                    err = p.stderr.strip()
                    self.assertIn("org.nettally.Accounting1.Error.InvalidArgument", err, name)
                    self.assertEqual(len(err.splitlines()), 1, f"{name}: one line: {err!r}")
                    self.assertIn(word, err, f"{name}: reason {err!r}")
                    st = ctl.json("rules", "status")
                    self.assertEqual((st["version"], st["hash"]), (status["version"], status["hash"]), name)
                    self.assertEqual(st["rejected"], status["rejected"] + i + 1, name)
                    self.assertIn(word, st["last_rejection"], name)
            got = monitor.wait_for("RulesRejected", len(bad))
            self.assertEqual(len(got), len(bad))
            for s, (name, _, word) in zip(got, bad):
                self.assertEqual(s["interface"], "org.nettally.Accounting1.Rules")
                self.assertIn(word, s["data"][0], name)
            self.assertFalse(monitor.signals("RulesApplied"), "no RulesApplied for a refused bundle")
        finally:
            monitor.stop()
        # Nothing changed: the same classes, none gone, and traffic still counts in them.
        self.daemon.wait_polls(2)
        after = classes(ctl)
        self.assertEqual(sorted(after), sorted(before))
        self.assertEqual({k: v["gone"] for k, v in after.items()}, {k: v["gone"] for k, v in before.items()})
        for k in before:
            self.assertEqual(after[k]["c"], before[k]["c"], f"{k}: counted while the network was quiet")
        h.client_run(topo, "udp", topo.SRV4, 53, "100", 3)
        self.daemon.wait_polls(2)
        later = classes(ctl)
        for iface in IFACES:
            for d in h.DIRECTIONS:
                delta = class_delta(later, after, (iface, d, "dns"))
                self.assertEqual(delta["packets"], 3, f"dns {iface} {d}")
                self.assertEqual(delta["l3"], 3 * (20 + 8 + 100), f"dns {iface} {d}")
        st = self.bus.status()
        self.assertEqual(st["class_reconcile_violations"], 0)
        self.assertEqual(st["rules_rejected"], len(bad))

    def test_unprivileged_load_denied(self):
        _, v9 = compile_bundle(self.ctl, self.workdir, rules_text(9), "v9")
        path = os.path.join(self.workdir, "v9-world.bundle")
        with open(path, "wb") as f:
            f.write(v9)
        os.chmod(path, 0o644)
        os.chmod(self.workdir, 0o755)
        before = self.ctl.json("rules", "status")
        p = self.ctl.run("rules", "load", path, user=65534)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("AccessDenied", p.stderr)
        p = self.ctl.run("rules", "rollback", user=65534)
        self.assertIn("AccessDenied", p.stderr)
        self.assertEqual(self.ctl.json("rules", "status")["version"], before["version"])
        # Reads are open to everyone.
        p = self.ctl.run("--json", "classes", user=65534)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.ctl.run("--json", "rules", "status", user=65534)
        self.assertEqual(p.returncode, 0, p.stderr)


# -- swaps under a flood -------------------------------------------------------------------------

SWAP_RULES = """name: nt-swap
version: {version}
classes:
  - name: low
    id: 60
    match:
      - {{protocol: udp, dport: 7000-{cut}}}
      - {{protocol: udp, sport: 7000-{cut}}}
  - name: high
    id: 61
    match:
      - {{protocol: udp, dport: {cut1}-7099}}
      - {{protocol: udp, sport: {cut1}-7099}}
"""
# Two rulesets that split the same ports differently: "low" ends at 7049 or at 7024.
SWAP_CUTS = (7049, 7024)

FLOOD = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "n = 0\n"
    "print('READY', flush=True)\n"
    "while True:\n"
    "    s.sendto(b'x' * (40 + n % 200), (sys.argv[1], 7000 + n % 100))\n"
    "    n += 1\n"
)


class SwapTest(unittest.TestCase):
    """100 swaps between two rulesets that split a continuous flood differently (LoadRules of
    versions 2..101): the daemon's class line (Σ classes == interface total, every poll and
    interface and direction) never breaks. The flood is paused around the last swap; after it,
    each class == the capture filtered by the last ruleset's meaning."""

    SWAPS = 100

    def setUp(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="100ms", flows=h.NO_EVICTION,
                               extra=rules_config())
        self.addCleanup(self.daemon.stop)
        self.ctl = h.Ctl(self.bus.address)
        self.daemon.start()
        for srv in start_servers(self.topo, [7010, 7030, 7060]):
            self.addCleanup(srv.stop)

    def bundle(self, version):
        cut = SWAP_CUTS[version % 2]
        text = SWAP_RULES.format(version=version, cut=cut, cut1=cut + 1)
        return compile_bundle(self.ctl, self.workdir, text, f"swap{version}")[0]

    def flood(self):
        argv = self.topo.exec_argv(self.topo.cli, [sys.executable, "-c", FLOOD, self.topo.SRV4])
        proc = h.spawn(argv, stdout=h.subprocess.PIPE, stderr=h.subprocess.DEVNULL)
        token = h.add_cleanup(h.stop_process, proc)
        self.assertEqual(proc.stdout.readline().strip(), "READY")
        return proc, token

    def test_swaps_under_flood_keep_the_class_line(self):
        ctl = self.ctl
        paths = {v: self.bundle(v) for v in range(1, self.SWAPS + 2)}
        r = load(ctl, paths[1])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.daemon.wait_polls(2)
        start = self.bus.status()
        proc, token = self.flood()
        swap_s = []
        try:
            time.sleep(0.5)
            for v in range(2, self.SWAPS + 1):
                t0 = time.monotonic()
                r = load(ctl, paths[v])
                swap_s.append(time.monotonic() - t0)
                self.assertEqual(r.returncode, 0, f"version {v}: {r.stderr}")
                time.sleep(0.05)
            mid = self.bus.status()
        finally:
            h.drop_cleanup(token)
            h.stop_process(proc)
        self.daemon.wait_polls(3)
        # The last swap with the flood paused, then known traffic against a capture.
        r = load(ctl, paths[self.SWAPS + 1])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.daemon.wait_polls(2)
        caps = [h.Capture(self.topo, i, self.workdir).start() for i in IFACES]
        try:
            for c in caps:
                c.wait_running()
            self.daemon.wait_polls(2)
            before = classes(ctl)
            for port in (7010, 7030, 7060):
                h.client_run(self.topo, "udp", self.topo.SRV4, port, "100,700", 4)
            self.daemon.wait_polls(3)
            after = classes(ctl)
            end = self.bus.status()
        finally:
            for c in caps:
                c.stop()
        for c in caps:
            c.read()
        polls = end["polls"] - start["polls"] if "polls" in end else None
        h.log(f"{self.SWAPS} swaps: load+swap {1000 * min(swap_s):.0f}..{1000 * max(swap_s):.0f} ms "
              f"(median {1000 * sorted(swap_s)[len(swap_s) // 2]:.0f} ms); class checks "
              f"{start['class_reconcile_checks']} -> {mid['class_reconcile_checks']} -> "
              f"{end['class_reconcile_checks']}, exact {end['class_reconcile_exact']}, violations "
              f"{end['class_reconcile_violations']}, polls {polls}")
        for st in (mid, end):
            self.assertEqual(st["class_reconcile_violations"], 0, st.get("last_class_violation"))
            self.assertEqual(st["reconcile_violations"], 0)
            self.assertEqual(st["class_overflow_packets"], 0)
        self.assertGreater(mid["class_reconcile_checks"] - start["class_reconcile_checks"], 4 * 20,
                           "the line was checked at the polls during the swaps")
        self.assertEqual(end["rules_version"], self.SWAPS + 1)
        # After the last swap (version 101: "low" is 7000-7024): each class == its capture.
        cut = SWAP_CUTS[(self.SWAPS + 1) % 2]
        low = f"!icmp && udp.port in {{7000..{cut}}}"
        high = f"!icmp && udp.port in {{{cut + 1}..7099}} && !({low})"
        filters = [("low", low), ("high", high), ("other", f"!({low}) && !({high})")]
        problems = []
        for name, flt in filters:
            want = {}
            for c in caps:
                want.update(filtered_sums(c, flt))
            for iface in IFACES:
                for d in h.DIRECTIONS:
                    got = class_delta(after, before, (iface, d, name))
                    w = want.get((iface, d), h.zero())
                    h.log(f"after the last swap: {name:5} {iface} {d:7}: nettally {h.fmt_c(got)}, "
                          f"capture {h.fmt_c(w)}")
                    if got != w:
                        problems.append(f"{name} {iface} {d}: nettally {h.fmt_c(got)} != capture {h.fmt_c(w)}")
        self.assertFalse(problems, "\n".join(problems))
        self.assertGreater(class_delta(after, before, ("lan0", "ingress", "high"))["packets"], 0)
        self.assertGreater(class_delta(after, before, ("lan0", "ingress", "low"))["packets"], 0)


# -- per host and class ------------------------------------------------------------------------

LANS = ("lan0", "lan1")
LAN2_IFACES = (("lan0", "lan"), ("lan1", "lan"), ("wan0", "wan"))


class HostClassesTest(unittest.TestCase):
    """One measured window in setUpClass (two lan hosts, five classes); each test checks one aspect."""

    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.open_env(cls, cli2=True)
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", flows=h.NO_EVICTION,
                              interfaces=LAN2_IFACES, extra=rules_config())
        cls.ctl = h.Ctl(cls.bus.address)
        try:
            cls.daemon.start()
            cls.servers = start_servers(cls.topo, [53, 80, 443, 5060, RTP_PORTS[0] + 16, OTHER_PORT])
            path, _ = compile_bundle(cls.ctl, cls.workdir, rules_text(1), "v1")
            p = load(cls.ctl, path)
            if p.returncode != 0:
                raise AssertionError(f"rules load: {p.stderr}")
            cls.topo.settle()
            cls._measure()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _measure(cls):
        topo = cls.topo
        caps = [h.Capture(topo, i, cls.workdir).start() for i in LANS]
        try:
            for c in caps:
                c.wait_running()
            cls.status_before = cls.daemon.wait_polls(2)
            cls.before = host_classes(cls.ctl)
            cls.hosts_before = cls.ctl.snapshot().hosts
            cls.samples = []
            rtp = RTP_PORTS[0] + 16
            # Different mixes and sizes per host, so a figure credited to the wrong host or class
            # shows.
            for srv in (topo.SRV4, topo.SRV6):
                h.client_run(topo, "udp", srv, 53, "40,300", 3)
                h.client_run(topo, "tcp", srv, 80, 20000, 60000)
                h.client_run(topo, "udp", srv, 5060, "500", 3)
                h.client_run(topo, "udp", srv, rtp, "160,1200", 4, RTP_PORTS[0] + 2)
                h.client_run(topo, "icmp", srv, "56,1000", 2)
                cls.samples.append(cls.bus.status())
                client2_run(topo, "udp", srv, 53, "90", 5)
                client2_run(topo, "tcp", srv, 443, 7000, 3000)
                client2_run(topo, "tcp", srv, 5060, 1000, 1000)
                client2_run(topo, "udp", srv, OTHER_PORT, "100,1000", 2)
                client2_run(topo, "tcp", srv, OTHER_PORT, 5000, 5000)
                cls.samples.append(cls.bus.status())
            send_multicast(topo)
            send_non_ip(topo)
            cls.status_after = cls.daemon.wait_polls(2)
            cls.after = host_classes(cls.ctl)
            cls.hosts_after = cls.ctl.snapshot().hosts
            cls.status_end = cls.bus.status()
        finally:
            for c in caps:
                c.stop()
        cls.capture = {}  # (iface, mac, ip, class) -> {"sent": C, "received": C}
        for name, flt in class_filters():
            for c in caps:
                for (iface, mac, ip), v in host_sums(filtered_frames(c, flt), c.iface).items():
                    cls.capture[(iface, mac, ip, name)] = v
        cls.whole_hosts = {}
        for c in caps:
            cls.whole_hosts.update(host_sums(c.read(), c.iface))

    @classmethod
    def _teardown(cls):
        for s in getattr(cls, "servers", []):
            s.stop()
        if getattr(cls, "daemon", None):
            cls.daemon.stop()
        cls.bus.stop()
        cls.topo.down()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def changed(self):
        """Every host x class key nettally moved or the capture has."""
        keys = set(self.capture)
        for k in self.after:
            for side in ("sent", "received"):
                if host_class_delta(self.after, self.before, k, side) != h.zero():
                    keys.add(k)
        return sorted(keys)

    def test_each_host_class_equals_its_capture(self):
        problems = []
        empty = {"sent": h.zero(), "received": h.zero()}
        for k in self.changed():
            want = self.capture.get(k, empty)
            for side in ("sent", "received"):
                got = host_class_delta(self.after, self.before, k, side)
                h.log(f"{k} {side:8}: nettally {h.fmt_c(got)}, capture {h.fmt_c(want[side])}")
                for f in h.FIGURES:
                    if got[f] != want[side][f]:
                        problems.append(f"  {k} {side} {f}: nettally {got[f]} != capture {want[side][f]}")
        if problems:
            self.fail("host x class figures differ from the capture:\n" + "\n".join(problems))

    def test_both_hosts_had_several_classes(self):
        per_host = {}
        for (iface, mac, ip, name), v in self.capture.items():
            if v["sent"]["packets"] and v["received"]["packets"]:
                per_host.setdefault((iface, mac, ip), set()).add(name)
        for mac, ip, classes_want in ((h.Topology.MAC["cli"], self.topo.CLI4, {"dns", "voip", "web", "other"}),
                                      (h.Topology.MAC["cli"], self.topo.CLI6, {"dns", "voip", "web", "other"}),
                                      (h.Topology.MAC["cli2"], self.topo.CLI2_4, {"dns", "voip", "web", "other"}),
                                      (h.Topology.MAC["cli2"], self.topo.CLI2_6, {"dns", "voip", "web", "other"})):
            iface = "lan0" if mac == h.Topology.MAC["cli"] else "lan1"
            got = per_host.get((iface, mac, h.norm_ip(ip)), set())
            self.assertTrue(classes_want <= got, f"{iface} {ip}: classes with traffic both ways {got}")
        # The multicast (iptv) packets were sent by cli's IPv4 host and received by nobody.
        iptv = self.capture.get(("lan0", h.Topology.MAC["cli"], h.norm_ip(self.topo.CLI4), "iptv"))
        self.assertIsNotNone(iptv)
        self.assertEqual(iptv["sent"]["packets"], 5)
        self.assertEqual(iptv["received"]["packets"], 0)

    def test_classes_add_up_to_each_host(self):
        problems = []
        hosts = set(self.whole_hosts) | {k[:3] for k in self.changed()}
        empty = {"sent": h.zero(), "received": h.zero()}
        for host in sorted(hosts):
            for side in ("sent", "received"):
                s = h.zero()
                for k in self.after:
                    if k[:3] == host:
                        s = h.cadd(s, host_class_delta(self.after, self.before, k, side))
                total = h.csub(self.hosts_after.get(host, empty)[side], self.hosts_before.get(host, empty)[side])
                if s != total:
                    problems.append(f"  {host} {side}: classes {h.fmt_c(s)} != host {h.fmt_c(total)}")
                if total != self.whole_hosts.get(host, empty)[side]:
                    problems.append(f"  {host} {side}: host {h.fmt_c(total)} != capture "
                                    f"{h.fmt_c(self.whole_hosts.get(host, empty)[side])}")
        if problems:
            self.fail("\n".join(problems))

    def test_daemon_host_class_reconciliation(self):
        every = [self.status_before] + self.samples + [self.status_after, self.status_end]
        for i, s in enumerate(every):
            self.assertEqual(s["host_class_reconcile_violations"], 0,
                             f"sample {i}: {s.get('host_class_last_violation')}")
            self.assertEqual(s["class_reconcile_violations"], 0, f"sample {i}")
        self.assertGreater(self.status_end["host_class_reconcile_checks"],
                           self.status_before["host_class_reconcile_checks"])
        self.assertGreater(self.status_end["host_class_reconcile_exact"], 0)
        self.assertEqual(self.status_end["host_class_overflow_packets"], 0)

    def test_iface_filter_and_bus(self):
        only = host_classes(self.ctl, "--iface", "lan1")
        self.assertTrue(only)
        self.assertEqual({k for k in self.after if k[0] == "lan1"}, set(only))
        # Open to every local user, like ListClasses.
        rows = self.bus.busctl("--json=short", "call", h.BUS_NAME, h.BUS_PATH, "org.nettally.Accounting1.Rules",
                               "ListHostClasses", "s", "lan0", user=h.NOBODY)
        self.assertEqual(rows.returncode, 0, rows.stderr)
        data = json.loads(rows.stdout)["data"][0]
        self.assertTrue(data)
        for iface, mac, ip, cid, name, sent, received, gone in data:
            self.assertEqual(iface, "lan0")
            key = (iface, mac.lower(), h.norm_ip(ip), name)
            self.assertIn(key, self.after)
            self.assertEqual(self.after[key]["id"], cid)
            self.assertFalse(gone)
        self.assertEqual(host_classes(self.ctl, "--iface", "nosuch0"), {})
        p = self.ctl.run("classes", "--iface", "lan0")
        self.assertEqual(p.returncode, 2, p.stderr)


class HostClassesRestartTest(unittest.TestCase):

    def setUp(self):
        h.require_all()
        h.open_env(self, cli2=True, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms", flows=h.NO_EVICTION,
                               interfaces=LAN2_IFACES, extra=rules_config())
        self.addCleanup(self.daemon.stop)
        self.ctl = h.Ctl(self.bus.address)
        self.daemon.start()
        for s in start_servers(self.topo, [53, 80]):
            self.addCleanup(s.stop)

    def test_totals_continue_across_restarts(self):
        ctl, topo = self.ctl, self.topo
        path, _ = compile_bundle(ctl, self.workdir, rules_text(1), "v1")
        self.assertEqual(load(ctl, path).returncode, 0)
        h.client_run(topo, "udp", topo.SRV4, 53, "100", 2)
        client2_run(topo, "tcp", topo.SRV4, 80, 3000, 9000)
        cli = ("lan0", h.Topology.MAC["cli"], h.norm_ip(topo.CLI4))
        cli2 = ("lan1", h.Topology.MAC["cli2"], h.norm_ip(topo.CLI2_4))
        for how in ("term", "kill"):
            with self.subTest(restart=how):
                self.daemon.wait_polls(2)
                before = host_classes(ctl)
                hosts_before = ctl.snapshot().hosts
                if how == "term":
                    self.assertEqual(self.daemon.stop(keep_pins=True), 0)
                else:
                    self.daemon.proc.send_signal(signal.SIGKILL)
                    self.daemon.proc.wait(10)
                    self.daemon.stop(keep_pins=True)
                # While nettallyd is down: 5 DNS queries from cli, one web download to cli2.
                h.client_run(topo, "udp", topo.SRV4, 53, "100", 5)
                r = client2_run(topo, "tcp", topo.SRV4, 80, 1000, 4000)
                self.daemon.start()
                self.daemon.wait_polls(2)
                after = host_classes(ctl)
                hosts_after = ctl.snapshot().hosts
                self.assertTrue(set(before) <= set(after))
                dns = cli + ("dns",)
                for side in ("sent", "received"):
                    d = host_class_delta(after, before, dns, side)
                    self.assertEqual(d["packets"], 5, f"{dns} {side} after {how}")
                    self.assertEqual(d["l3"], 5 * 128, f"{dns} {side} after {how}")
                    self.assertEqual(d["payload"], 5 * 100, f"{dns} {side} after {how}")
                web = cli2 + ("web",)
                self.assertGreaterEqual(host_class_delta(after, before, web, "received")["payload"], 4000)
                self.assertGreaterEqual(host_class_delta(after, before, web, "sent")["payload"], 1000)
                # Everything else stood still, and per host the classes moved as the host did.
                for k in set(after) - {dns, web}:
                    for side in ("sent", "received"):
                        self.assertEqual(host_class_delta(after, before, k, side), h.zero(), f"{k} {side}")
                for host in (cli, cli2):
                    for side in ("sent", "received"):
                        s = h.zero()
                        for k in after:
                            if k[:3] == host:
                                s = h.cadd(s, host_class_delta(after, before, k, side))
                        self.assertEqual(s, h.csub(hosts_after[host][side], hosts_before[host][side]),
                                         f"{host} {side} after {how}")
                st = self.bus.status()
                self.assertEqual(st["host_class_reconcile_violations"], 0, st.get("host_class_last_violation"))
                h.log(f"restart {how}: tcp report {r}")
        # Counting goes on in the restarted daemon.
        before = host_classes(ctl)
        h.client_run(topo, "udp", topo.SRV4, 53, "100", 1)
        self.daemon.wait_polls(2)
        self.assertEqual(host_class_delta(host_classes(ctl), before, cli + ("dns",), "sent")["packets"], 1)
        self.assertGreater(self.bus.status()["host_class_reconcile_exact"], 0)


# -- lifecycle -----------------------------------------------------------------------------------

class LifecycleTest(unittest.TestCase):

    def setUp(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms", flows=h.NO_EVICTION,
                               extra=rules_config())
        self.addCleanup(self.daemon.stop)
        self.ctl = h.Ctl(self.bus.address)
        self.daemon.start()
        for s in start_servers(self.topo, [53, 80]):
            self.addCleanup(s.stop)

    def dns(self, count=2, size=100):
        h.client_run(self.topo, "udp", self.topo.SRV4, 53, str(size), count)

    def test_load_v2_gone_rollback_restart(self):
        ctl, topo = self.ctl, self.topo
        p1, _ = compile_bundle(ctl, self.workdir, rules_text(1), "v1")
        p2, _ = compile_bundle(ctl, self.workdir, rules_text(2, dns=False), "v2")
        monitor = h.SignalMonitor(self.bus).start()
        self.addCleanup(monitor.stop)

        r = ctl.run("rules", "rollback")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no previous ruleset to roll back to", r.stderr)
        self.assertEqual(ctl.json("rules", "status")["rejected"], 0, "a rollback refused is no bundle refused")
        r = load(ctl, p1)
        self.assertEqual(r.returncode, 0, r.stderr)
        v1 = json.loads(r.stdout)
        self.assertEqual(v1["version"], 1)
        self.dns(4)
        h.client_run(topo, "tcp", topo.SRV4, 80, 3000, 3000)
        self.daemon.wait_polls(2)
        c1 = classes(ctl)
        dns_lan = c1[("lan0", "ingress", "dns")]
        self.assertEqual(dns_lan["c"]["packets"], 4)
        self.assertFalse(dns_lan["gone"])

        # v2 drops the dns class: its totals stay, marked gone; dns traffic now counts as other.
        r = load(ctl, p2)
        self.assertEqual(r.returncode, 0, r.stderr)
        v2 = json.loads(r.stdout)
        self.assertEqual(v2["version"], 2)
        self.dns(3)
        self.daemon.wait_polls(2)
        c2 = classes(ctl)
        for iface in IFACES:
            for d in h.DIRECTIONS:
                key = (iface, d, "dns")
                self.assertTrue(c2[key]["gone"], key)
                self.assertEqual(c2[key]["c"], c1[key]["c"], f"{key}: a gone class keeps its totals")
                self.assertEqual(class_delta(c2, c1, (iface, d, "other"))["packets"], 3, (iface, d))
                self.assertFalse(c2[(iface, d, "web")]["gone"])
        st = ctl.json("rules", "status")
        self.assertEqual((st["version"], st["previous_version"], st["origin"]), (2, 1, "dbus"))

        # Rollback: v1 again, dns back (not gone), its totals continue.
        r = ctl.run("--json", "rules", "rollback")
        self.assertEqual(r.returncode, 0, r.stderr)
        back = json.loads(r.stdout)
        self.assertEqual((back["version"], back["hash"]), (1, v1["hash"]))
        self.dns(2)
        self.daemon.wait_polls(2)
        c3 = classes(ctl)
        key = ("lan0", "ingress", "dns")
        self.assertFalse(c3[key]["gone"])
        self.assertEqual(c3[key]["c"]["packets"], 6)
        st = ctl.json("rules", "status")
        self.assertEqual((st["version"], st["hash"], st["previous_version"], st["origin"]),
                         (1, v1["hash"], 2, "rollback"))
        self.assertFalse(monitor.signals("RulesRejected"))
        applied = monitor.wait_for("RulesApplied", 3)
        self.assertEqual([s["data"] for s in applied[:3]],
                         [[1, v1["hash"]], [2, v2["hash"]], [1, v1["hash"]]])

        # Restart (SIGTERM) with traffic while nettallyd is down: the same ruleset, totals continued
        # exactly, the downtime's packets included.
        for how in ("term", "kill"):
            with self.subTest(restart=how):
                self.daemon.wait_polls(2)
                before = classes(ctl)
                st_before = ctl.json("rules", "status")
                if how == "term":
                    self.assertEqual(self.daemon.stop(keep_pins=True), 0)
                else:
                    self.daemon.proc.send_signal(signal.SIGKILL)
                    self.daemon.proc.wait(10)
                    self.daemon.stop(keep_pins=True)
                self.dns(5)
                self.daemon.start()
                self.daemon.wait_polls(2)
                st = ctl.json("rules", "status")
                for k in ("version", "hash", "previous_version", "origin", "loaded_at"):
                    self.assertEqual(st[k], st_before[k], k)
                after = classes(ctl)
                self.assertEqual(sorted(after), sorted(before))
                for k in before:
                    want = 5 if k[2] == "dns" else 0
                    d = class_delta(after, before, k)
                    self.assertEqual(d["packets"], want, f"{k} after {how}")
                    if k[2] == "dns":
                        self.assertEqual(d["l3"], 5 * 128, f"{k} after {how}")
                        self.assertEqual(d["payload"], 5 * 100, f"{k} after {how}")
                self.assertEqual(self.bus.status()["class_reconcile_violations"], 0)
        # Classes keep counting in the restarted daemon.
        self.dns(1)
        self.daemon.wait_polls(2)
        self.assertEqual(class_delta(classes(ctl), after, ("wan0", "egress", "dns"))["packets"], 1)
        self.assertEqual(self.bus.status()["class_reconcile_violations"], 0)
        self.assertGreater(self.bus.status()["class_reconcile_exact"], 0)

    def test_config_bundle_at_start_and_nothing_older(self):
        """rules.bundle is loaded at start; a saved active bundle that is newer wins over it; a
        reload loads it again when it holds a newer version."""
        p1, _ = compile_bundle(self.ctl, self.workdir, rules_text(1), "c1")
        p3, _ = compile_bundle(self.ctl, self.workdir, rules_text(3), "c3")
        self.daemon.stop(keep_pins=True)
        self.daemon.write_config(self.daemon.config(extra=f"rules:\n  bundle: {p1}\n"))
        self.daemon.start()
        st = self.ctl.json("rules", "status")
        self.assertEqual((st["version"], st["origin"]), (1, f"config {p1}"))
        r = load(self.ctl, p3)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.daemon.stop(keep_pins=True)
        self.daemon.start()
        st = self.ctl.json("rules", "status")
        self.assertEqual((st["version"], st["origin"], st["previous_version"]), (3, "dbus", 1))
        # A reload reads rules.bundle again: a newer version goes into force, the same one again
        # changes nothing (not counted as refused), a broken file is refused with v5 kept.
        _, b5 = compile_bundle(self.ctl, self.workdir, rules_text(5), "c5")
        with open(p1, "wb") as f:
            f.write(b5)
        self.bus.call_ok("Reload")
        st = self.ctl.json("rules", "status")
        self.assertEqual((st["version"], st["origin"], st["previous_version"]), (5, f"config {p1}", 3))
        self.bus.call_ok("Reload")
        again = self.ctl.json("rules", "status")
        self.assertEqual((again["version"], again["loaded_at"], again["rejected"]),
                         (5, st["loaded_at"], st["rejected"]))
        with open(p1, "wb") as f:
            f.write(b5[:-3])
        self.bus.call_ok("Reload")
        bad = self.ctl.json("rules", "status")
        self.assertEqual((bad["version"], bad["rejected"]), (5, st["rejected"] + 1))


class FirstStartTest(unittest.TestCase):
    """rules.bundle at the very first start: no state directory yet."""

    def test_bundle_at_first_start(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        ctl = h.Ctl(self.bus.address)
        path, _ = compile_bundle(ctl, self.workdir, rules_text(4), "first")
        daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms",
                          extra=f"rules:\n  bundle: {path}\n")
        self.addCleanup(daemon.stop)
        self.assertFalse(os.path.exists(daemon.state_dir))
        daemon.start()
        st = ctl.json("rules", "status")
        self.assertEqual((st["active"], st["version"], st["origin"]), (True, 4, f"config {path}"),
                         daemon.log_tail())
        for f in ("rules.active.bundle", "rules.json"):
            self.assertTrue(os.path.exists(os.path.join(daemon.state_dir, f)), f)


CLASS_IDS = {"dns": 40, "web": 50}
PEN = 32473


def port_class(proto, sport, dport):
    """The class the rules give this test's flows (DNS over UDP 53, web over TCP 80); None for
    others (neighbour discovery)."""
    ports = {sport, dport}
    if proto == "udp" and 53 in ports:
        return "dns"
    if proto == "tcp" and 80 in ports:
        return "web"
    return None


class FlowClassRecordsTest(unittest.TestCase):
    """See the module docstring."""

    def setUp(self):
        h.require_all()
        h.open_env(self, add_cleanup=self.addCleanup)
        gw = self.topo.gw
        h.run(self.topo.exec_argv(gw, ["ip", "addr", "add", f"{te.COLLECTOR}/32", "dev", "lo"]))
        h.run(self.topo.exec_argv(gw, ["ip", "link", "set", "lo", "up"]))
        extra = (rules_config() +
                 "records:\n  enabled: true\n  types: [interface, flow, class]\n  format: jsonl\n"
                 "  period: 1h\n  interval: 1h\n" +
                 te.export_yaml([f"tcp://{te.COLLECTOR}:{te.TCP_PORT}"]))
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms",
                               flows={"idle_timeout": "4s"}, extra=extra)
        self.addCleanup(self.daemon.stop)
        self.ctl = h.Ctl(self.bus.address)
        self.out = os.path.join(self.workdir, "ipfix")
        log = open(os.path.join(self.workdir, "tcpcollect.log"), "w")
        self.addCleanup(log.close)
        collector = h.spawn(self.topo.exec_argv(gw, [h.PYTHON, te.__file__, "tcpcollect", te.COLLECTOR,
                                                     str(te.TCP_PORT), self.out]), stdout=log, stderr=log)
        self.addCleanup(h.stop_process, collector)
        time.sleep(0.5)
        self.daemon.start()
        for s in start_servers(self.topo, [53, 80]):
            self.addCleanup(s.stop)
        self.topo.settle()
        self.names = {self.topo.ifindex(gw, i): i for i in IFACES}

    def traffic(self):
        t = self.topo
        for srv in (t.SRV4, t.SRV6):
            h.client_run(t, "udp", srv, 53, "60,300", 3)
            h.client_run(t, "tcp", srv, 80, 3000, 20000)

    def live_flows(self):
        """ListFlows right after the traffic (flows live 4 s): {key: class}, checked against the ports
        and against `nettallyctl flows --json`."""
        self.daemon.wait_polls(2)
        rows = self.bus.call_ok("ListFlows", "su", "packets", 100000)[0]
        ctl_rows = self.ctl.json("flows", "--top", "100000")["flows"]
        got = {}
        for f in rows:
            self.assertEqual(len(f), 12, f"ListFlows row {f}: 12 fields, class last")
            key = (f[0], f[1], h.proto_name(f[2]), h.norm_ip(f[3]), f[4], h.norm_ip(f[5]), f[6])
            if port_class(key[2], key[4], key[6]):
                got[key] = f[11]
        by_ctl = {(r["interface"], r["direction"], r["proto"], h.norm_ip(r["src"]), r["sport"],
                   h.norm_ip(r["dst"]), r["dport"]): r["class"] for r in ctl_rows}
        for key, cls in got.items():
            self.assertEqual(cls, port_class(key[2], key[4], key[6]), f"ListFlows {key}")
            if key in by_ctl:
                self.assertEqual(by_ctl[key], cls, f"nettallyctl flows {key}")
        self.assertGreaterEqual(len(got), 8, f"live DNS and web flows {got}")
        return got

    def wait_finished(self):
        h.wait_until(lambda: not self.bus.call_ok("ListFlows", "su", "packets", 100000)[0], 60,
                     "every flow finished")
        self.daemon.wait_polls(3)

    def rotate(self):
        p = self.bus.busctl("call", h.BUS_NAME, h.BUS_PATH, te.RECORDS_IFACE, "Rotate")
        self.assertEqual(p.returncode, 0, p.stderr)
        return h.read_records(os.path.join(self.daemon.state_dir, "spool"))

    def ipfix_records(self):
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 60, "the export buffer drained")
        time.sleep(1)
        recs = []
        for n in range(4):
            path = f"{self.out}.{n}"
            if os.path.exists(path):
                with open(path, "rb") as f:
                    msgs, templates = te.decode_messages(f.read())
                te.check_sequence(self, msgs)
                for _, rs in msgs:
                    recs += [dict(r, _templates=templates) for r in rs if "proto" in r]
        return recs

    def check_flow_records(self, recs, version, since_ms, until_ms):
        """The DNS and web flow records of flows that started in [since_ms, until_ms): class from the
        ports, the version."""
        n = 0
        for r in recs:
            if r["_type"] != "flow":
                continue
            cls = port_class(h.proto_name(r["protocol"]), int(r["src_port"]), int(r["dst_port"]))
            first = datetime.datetime.strptime(r["first_seen"], "%Y-%m-%dT%H:%M:%S.%fZ")
            first_ms = int(first.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
            if not cls or not since_ms <= first_ms < until_ms:
                continue
            self.assertEqual(r["class"], cls, f"flow record {r}")
            self.assertEqual(r["rules_version"], version, f"flow record {r}")
            n += 1
        return n

    def check_ipfix(self, recs, version, since_ms, until_ms):
        """The DNS and web IPFIX records of flows that started in [since_ms, until_ms)."""
        n = 0
        for r in recs:
            key = te.record_key(r, self.names)
            if not port_class(key[2], key[4], key[6]) or not since_ms <= r["start"] < until_ms:
                continue
            fields = [name for name, _ in r["_templates"][r["_template"]]]
            self.assertIn(f"e{PEN}.3", fields, f"template {r['_template']}: rulesVersion")
            self.assertIn(f"e{PEN}.4", fields, f"template {r['_template']}: trafficClassId")
            self.assertEqual(r[f"e{PEN}.3"], version, f"IPFIX {key}")
            self.assertEqual(r[f"e{PEN}.4"], CLASS_IDS[port_class(key[2], key[4], key[6])], f"IPFIX {key}")
            n += 1
        return n

    def class_sums(self, recs, version):
        """(iface, direction, class) -> C of the class records of that version."""
        sums = {}
        for r in recs:
            if r["_type"] == "class" and r["rules_version"] == version:
                k = (r["interface"], r["direction"], r["class"])
                c = {f: int(r[rf]) for rf, f in h.RECORD_FIGURES.items()}
                sums[k] = h.cadd(sums.get(k, h.zero()), c)
        return sums

    def test_flows_records_and_ipfix_carry_class_and_version(self):
        ctl = self.ctl
        p1, _ = compile_bundle(ctl, self.workdir, rules_text(1), "v1")
        p2, _ = compile_bundle(ctl, self.workdir, rules_text(2), "v2")
        r = load(ctl, p1)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.daemon.wait_polls(2)
        t1_ms = int(time.time() * 1000)

        # Round 1, under v1.
        self.traffic()
        live = self.live_flows()
        self.assertEqual(set(live.values()), {"dns", "web"}, f"live flows {live}")
        self.wait_finished()
        totals1 = classes(ctl)

        # v2 over D-Bus: the usage so far (records.interval is 1h) is written under v1 first.
        time.sleep(0.01)
        t2_ms = int(time.time() * 1000)
        r = self.ctl.run("--json", "rules", "load", p2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.daemon.wait_polls(2)
        self.traffic()
        self.assertEqual(set(self.live_flows().values()), {"dns", "web"})
        self.wait_finished()
        totals2 = classes(ctl)
        recs = self.rotate()
        n_flow1 = self.check_flow_records(recs, 1, t1_ms, t2_ms)
        self.assertGreaterEqual(n_flow1, 16, "DNS and web, IPv4 and IPv6, both ways on lan0 and wan0")
        self.assertGreaterEqual(self.check_flow_records(recs, 2, t2_ms, 1 << 62), 16)

        # Class records: per version, their sums are the class totals of the round (dns and web:
        # only this test's traffic is in them).
        v1, v2 = self.class_sums(recs, 1), self.class_sums(recs, 2)
        problems = []
        for key in sorted(set(totals1) | set(totals2)):
            if key[2] not in CLASS_IDS:
                continue
            want1 = totals1.get(key, {"c": h.zero()})["c"]
            want2 = class_delta(totals2, totals1, key)
            if v1.get(key, h.zero()) != want1:
                problems.append(f"  {key} v1: records {v1.get(key)} totals {want1}")
            if v2.get(key, h.zero()) != want2:
                problems.append(f"  {key} v2: records {v2.get(key)} totals {want2}")
        self.assertEqual(problems, [], "class records != class totals:\n" + "\n".join(problems))
        for key in (("lan0", "ingress", "dns"), ("wan0", "egress", "web")):
            self.assertGreater(v1.get(key, h.zero())["packets"], 0, key)
            self.assertGreater(v2.get(key, h.zero())["packets"], 0, key)
        h.log(f"class records v1 {sorted((k, c['packets'], c['l2']) for k, c in v1.items())}")
        h.log(f"class records v2 {sorted((k, c['packets'], c['l2']) for k, c in v2.items())}")
        # Every record of every type carries a version; the interface records after v2's load carry 2.
        versions = {}
        for r in recs:
            self.assertIn("rules_version", r, f"{r['_type']} record without rules_version")
            versions.setdefault(r["_type"], set()).add(r["rules_version"])
        h.log(f"rules_version per record type: {versions}")
        self.assertIn(2, versions["interface"])
        self.assertIn(1, versions["interface"])
        for r in recs:
            if r["_type"] == "class":
                self.assertEqual(r["gone"], False, r)
                self.assertEqual(r["class_id"], CLASS_IDS.get(r["class"], r["class_id"]), r)

        # IPFIX: the class elements in every flow template, the version and class in every record.
        ipfix = self.ipfix_records()
        n1 = self.check_ipfix(ipfix, 1, t1_ms, t2_ms)
        n2 = self.check_ipfix(ipfix, 2, t2_ms, 1 << 62)
        h.log(f"flow records: {n_flow1} under v1; IPFIX records: {n1} with rulesVersion 1, {n2} with 2")
        self.assertGreaterEqual(n1, 16)
        self.assertGreaterEqual(n2, 16)


class PullTest(unittest.TestCase):
    REFRESH_S = 10  # the smallest rules.refresh

    def setUp(self):
        h.require_all()
        h.require_tools("nginx")
        h.open_env(self, add_cleanup=self.addCleanup)
        self.ctl = h.Ctl(self.bus.address)
        keys = os.path.join(self.workdir, "keys")
        os.makedirs(keys)
        for k in ("signer", "stranger"):
            p = self.ctl.run("rules", "keygen", os.path.join(keys, k))
            self.assertEqual(p.returncode, 0, p.stderr)
        self.keys = keys
        self.server = us.Nginx(self.topo, self.workdir, "nt", "unused")
        self.addCleanup(self.server.stop)
        self.server.start()

    def bundle(self, version, key="signer"):
        src = os.path.join(self.workdir, f"pull-{version}-{key}.yaml")
        out = src[:-5] + ".bundle"
        with open(src, "w") as f:
            f.write(rules_text(version))
        argv = ["rules", "compile", src, "-o", out] + (["--sign", os.path.join(self.keys, key + ".key")] if key else [])
        p = self.ctl.run(*argv)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            return f.read()

    def serve(self, data, n):
        d = os.path.join(self.server.root, "rules")
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, ".gw.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        t = time.time() + n  # a new mtime: nginx's ETag changes even within one second
        os.utime(tmp, (t, t))
        os.rename(tmp, os.path.join(d, "gw.bundle"))
        return f"http://127.0.0.1:{self.server.port}/rules/gw.bundle"

    def status(self):
        return self.bus.status()

    def wait_status(self, pred, what, timeout):
        h.wait_until(lambda: pred(self.status()), timeout, what, interval=0.5)

    def test_pull_applies_new_versions_keeps_rules_on_refusal_and_outage(self):
        url = self.serve(self.bundle(1), 1)
        extra = (f"rules:\n  url: {url}\n  refresh: {self.REFRESH_S}s\n  trusted_keys:\n"
                 f"    - {os.path.join(self.keys, 'signer.pub')}\n")
        daemon = h.Daemon(self.topo, self.bus, self.workdir, poll="200ms", extra=extra)
        self.addCleanup(daemon.stop)
        daemon.start()
        self.wait_status(lambda s: s.get("rules_version") == 1, "version 1 from the first pull", 10)
        st = self.ctl.json("rules", "status")
        self.assertEqual(st["origin"], f"pull {url}")

        self.serve(self.bundle(2), 2)
        t0 = time.monotonic()
        self.wait_status(lambda s: s.get("rules_version") == 2, "version 2 within one refresh", self.REFRESH_S + 5)
        h.log(f"version 2 in force {time.monotonic() - t0:.1f} s after it was put on the server")
        loaded = self.ctl.json("rules", "status")["loaded_at"]
        nm = int(self.status()["rules_pull_not_modified"])
        self.wait_status(lambda s: int(s["rules_pull_not_modified"]) > nm, "a 304", self.REFRESH_S + 5)
        self.assertEqual(self.ctl.json("rules", "status")["loaded_at"], loaded, "a 304 reloads nothing")

        rejected = int(self.status()["rules_rejected"])
        self.serve(self.bundle(3, key="stranger"), 3)
        self.wait_status(lambda s: int(s["rules_rejected"]) > rejected, "the stranger's bundle refused",
                         self.REFRESH_S + 5)
        self.serve(self.bundle(4, key=None), 4)
        self.wait_status(lambda s: int(s["rules_rejected"]) > rejected + 1, "the unsigned bundle refused",
                         self.REFRESH_S + 5)
        st = self.ctl.json("rules", "status")
        self.assertEqual(st["version"], 2, "refused bundles leave the rules in force")
        self.assertIn("unsigned", st["last_rejection"])

        failures = int(self.status()["rules_pull_failures"])
        self.server.stop()
        self.wait_status(lambda s: int(s["rules_pull_failures"]) > failures, "a failed pull", self.REFRESH_S + 5)
        self.assertEqual(self.status()["rules_version"], 2, "the rules in force stay while the server is down")
        self.assertTrue(self.status()["rules_pull_last_error"])


if __name__ == "__main__":
    h.install_handlers()
    unittest.main(verbosity=2)
