#!/usr/bin/python3
"""IPFIX flow export (README "Flow export (IPFIX)"), read back by the collectors operators run.

Topology: ntharness.py (client <-> gateway lan0/wan0 with nettallyd <-> server). The collectors run
in the gateway namespace on 198.18.9.1, an address on its loopback, so the export itself crosses no
accounted interface (loopback is never accounted) and the lan0/wan0 captures hold the test traffic
only. dumpcap on lo captures the export for tshark's IPFIX dissector (cflow).

Ground truth: the lan0/wan0 captures (ntharness.analyse) and nettally's own flow records (records
of type flow, written when a flow finishes, the same moment it is exported).

- UdpCollectorsTest: nfdump's nfcapd and pmacct's nfacctd (print plugin, JSON) receive the export
  over UDP; every flow nfdump reads back and every nfacctd row has the 5-tuple, packets and l3 bytes
  of the flow records and of the capture, IPv4 and IPv6, TCP, UDP, ICMP; per interface and
  direction the exported totals == the capture. tshark decodes every message with no malformed
  packet and the sequence numbers have no gap (each message's sequence = the previous one + its
  data records, decoded here from the raw bytes).
- LateCollectorTest: nfcapd started 30 s after nettallyd decodes the flows sent after it started,
  within one template_refresh (3 s here).
- TcpRestartTest: a TCP collector (here, in this file: accepts, appends the bytes it reads) is
  stopped while traffic flows and started again; the records received over both connections sum
  to the capture, flow by flow: nothing lost, nothing twice.
- EnterpriseReloadTest: reloads that change export.enterprise (32473 -> 99999 -> 32473) start a new
  TCP stream each; the flow templates of the changed layout get new ids (260-262, never 256-259
  redefined), the first PEN's ids come back with it, and every stream's records add up to the capture.
- LongFlowTest: a 90 s flow with export.active_timeout 30 s gives at least three records whose
  deltas add up to the capture.
- DaemonRestartTest: a flow live across a restart of nettallyd (interim records every 4 s before and
  after it): its records sum to the capture, nothing reported twice.
- NatTest: nftables masquerade on wan0 of the gateway namespace: every exported IPv4 TCP/UDP record
  of an ingress flow carries post-NAT fields (225-228) equal to the tuple the capture shows on the
  other side (lan0 ingress -> the wan0 egress flow; wan0 ingress -> the lan0 egress flow), and the
  client's wan_sent / wan_received (ListHosts) == the wan0 capture of its connections, all five
  figures.
- DbusControlTest: collectors set with `nettallyctl export set` (SetCollectors: refused to nobody
  and for a bad URL, kept across a restart, cleared with `export clear`); the flows reach nfcapd as
  the capture has them; a TCP collector nobody listens on raises ExportFailed and buffers.
"""

import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5201
IFACES = ("lan0", "wan0")
COLLECTOR = "198.18.9.1"
NFCAPD_PORT, NFACCTD_PORT, TCP_PORT = 4739, 4740, 4741
RECORDS_IFACE = "org.nettally.Accounting1.Records"
EXPORT_IFACE = "org.nettally.Accounting1.Export"
NOBODY = 65534


def export_yaml(collectors, **kw):
    lines = ["export:"] + (["  collectors:"] + [f"    - url: {u}" for u in collectors] if collectors else [])
    lines += [f"  {k}: {v}" for k, v in kw.items()]
    return "\n".join(lines) + "\n"


RECORDS_YAML = "records:\n  enabled: true\n  types: [flow]\n  format: jsonl\n  period: 1h\n  interval: 1m\n"


# ---------------------------------------------------------------------------------------------
# An IPFIX decoder of our own (RFC 7011), independent of the daemon's encoder: templates, options
# templates, enterprise bits, variable length.

IE_NAMES = {8: "src4", 12: "dst4", 27: "src6", 28: "dst6", 7: "sport", 11: "dport", 4: "proto",
            10: "in_if", 14: "out_if", 61: "dir", 2: "packets", 1: "l3", 352: "l2", 152: "start",
            153: "end", 136: "reason", 6: "tcp_flags", 32: "icmp", 139: "icmp", 82: "ifname",
            225: "post_src4", 226: "post_dst4", 227: "post_sport", 228: "post_dport", 371: "user"}


def decode_messages(data, templates=None):
    """Splits a byte stream (TCP) or one datagram into messages: [(header, records)], where records
    are dicts by IE_NAMES (enterprise elements as "e<PEN>.<id>")."""
    templates = {} if templates is None else templates
    out, off = [], 0
    while off + 16 <= len(data):
        ver, length, t, seq, dom = struct.unpack_from(">HHIII", data, off)
        if ver != 10 or length < 16 or off + length > len(data):
            raise AssertionError(f"bad IPFIX header at {off}: version {ver} length {length}")
        records = []
        pos, end = off + 16, off + length
        while pos < end:
            sid, slen = struct.unpack_from(">HH", data, pos)
            if slen < 4 or pos + slen > end:
                raise AssertionError(f"bad set length {slen} at {pos}")
            body = data[pos + 4:pos + slen]
            if sid in (2, 3):
                _decode_templates(body, sid == 3, templates)
            elif sid >= 256:
                records += [dict(r, _template=sid) for r in _decode_data(body, templates[sid])]
            pos += slen
        out.append(({"length": length, "time": t, "seq": seq, "domain": dom}, records))
        off += length
    if off != len(data):
        raise AssertionError(f"{len(data) - off} trailing bytes")
    return out, templates


def _decode_templates(body, options, templates):
    p = 0
    while p + 4 <= len(body):
        tid, count = struct.unpack_from(">HH", body, p)
        p += 4
        if options:
            p += 2  # scope field count
        fields = []
        for _ in range(count):
            ie, ln = struct.unpack_from(">HH", body, p)
            p += 4
            name = IE_NAMES.get(ie, str(ie))
            if ie & 0x8000:
                pen = struct.unpack_from(">I", body, p)[0]
                p += 4
                name = f"e{pen}.{ie & 0x7fff}"
            fields.append((name, ln))
        templates[tid] = fields


def _decode_data(body, fields):
    rows, p = [], 0
    minlen = sum(1 if ln == 65535 else ln for _, ln in fields)
    while len(body) - p >= minlen:
        r = {}
        for name, ln in fields:
            if ln == 65535:
                ln = body[p]
                p += 1
                if ln == 255:
                    ln = struct.unpack_from(">H", body, p)[0]
                    p += 2
            v = body[p:p + ln]
            p += ln
            r[name] = v if name in ("src4", "dst4", "src6", "dst6", "ifname", "post_src4", "post_dst4",
                                    "user") else int.from_bytes(v, "big")
        rows.append(r)
    return rows


def record_key(r, names):
    """(iface, direction, proto, src, sport, dst, dport) of a decoded record, as the capture keys it."""
    v6 = "src6" in r
    src = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, r["src6" if v6 else "src4"])
    dst = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, r["dst6" if v6 else "dst4"])
    d = "egress" if r["dir"] == 1 else "ingress"
    iface = names[r["out_if"] if d == "egress" else r["in_if"]]
    return (iface, d, h.proto_name(r["proto"]), h.norm_ip(src), r["sport"], h.norm_ip(dst), r["dport"])


def check_sequence(testcase, messages):
    """Each message's sequence number = the previous one's + its data records (mod 2^32)."""
    gaps = []
    for (a, ra), (b, _rb) in zip(messages, messages[1:]):
        if (a["seq"] + len(ra)) % (1 << 32) != b["seq"]:
            gaps.append(f"seq {a['seq']} + {len(ra)} records, next {b['seq']}")
    testcase.assertEqual(gaps, [], "sequence gaps in " + " ".join(
        f"{m['seq']}+{len(r)}/{m['length']}" for m, r in messages))
    return len(messages)


# ---------------------------------------------------------------------------------------------
# The TCP collector (run as `test_export.py tcpcollect ADDR PORT FILE`).

class _Stop(Exception):
    pass


def _stop(*_):
    raise _Stop()


def tcp_collect(addr, port, path):
    """Write each connection's bytes to PATH.N. On SIGTERM, what the sender already handed to the
    kernel is read to the end before exiting: the sender counts a record sent once send() took it,
    so a collector that quit with bytes still queued would lose them where no real one does."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(4)
    signal.signal(signal.SIGTERM, _stop)
    n = 0
    try:
        while True:
            c, _ = srv.accept()
            with c, open(f"{path}.{n}", "wb") as f:
                try:
                    while True:
                        b = c.recv(65536)
                        if not b:
                            break
                        f.write(b)
                        f.flush()
                except _Stop:
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    c.settimeout(0.5)
                    try:
                        while b := c.recv(65536):
                            f.write(b)
                    except (TimeoutError, socket.timeout):
                        pass
                    f.flush()
                    return
            n += 1
    except _Stop:
        return


class LoCapture(h.Capture):
    """dumpcap on the gateway's loopback, where the export goes (read with tshark directly)."""

    def __init__(self, topo, workdir):
        super().__init__(topo, "lan0", workdir)
        self.iface = "lo"
        self.path = os.path.join(workdir, f"lo-{time.monotonic_ns()}.pcapng")
        self.errpath = self.path + ".stderr"


class ExportBase(unittest.TestCase):
    export = {}
    collectors = ()
    flows = {"idle_timeout": "1s"}
    more_yaml = ""  # more config sections

    def setUp(self):
        h.require_all()
        h.require_tools("nfcapd", "nfdump", "nfacctd")
        h.open_env(self, add_cleanup=self.addCleanup)
        h.run(self.topo.exec_argv(self.topo.gw, ["ip", "addr", "add", f"{COLLECTOR}/32", "dev", "lo"]))
        h.run(self.topo.exec_argv(self.topo.gw, ["ip", "link", "set", "lo", "up"]))
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir,
                               config_text=h.config_yaml("{state_dir}", pin_dir="{pin_dir}", flows=self.flows,
                                                         extra=RECORDS_YAML + self.more_yaml +
                                                         export_yaml(self.collectors, **self.export)))
        self.addCleanup(self.daemon.stop)
        self.server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4, self.topo.SRV6]).start()
        self.addCleanup(self.server.stop)
        self.names = {self.topo.ifindex(self.topo.gw, i): i for i in IFACES}

    def start_captures(self, lo=False):
        self.caps = [h.Capture(self.topo, i, self.workdir).start() for i in IFACES]
        self.lo_cap = None
        if lo:
            self.lo_cap = LoCapture(self.topo, self.workdir).start()
        for c in self.caps + ([self.lo_cap] if lo else []):
            c.wait_running()

    def tcp_collector(self, out, name="tcpcollect"):
        """This file's TCP collector on the gateway side, writing what it receives to `out`."""
        return self.gw_spawn([h.PYTHON, os.path.abspath(__file__), "tcpcollect", COLLECTOR, str(TCP_PORT), out],
                             name)

    def start_with_tcp_collector(self, out):
        """A TCP collector, the captures, then nettallyd: the export from its first record."""
        self.tcp_collector(out)
        time.sleep(0.5)
        self.start_captures()
        self.daemon.start()
        self.topo.settle()

    def tcp_flows(self, prefix, check_names=False):
        """The flow records of the TCP collectors run as prefix-0, prefix-1 (up to 4 connections
        each), every connection's sequence checked: ({flow key: {packets, l3}}, connections)."""
        got, conns = {}, 0
        for n in range(8):
            path = f"{prefix}-{n // 4}.{n % 4}"
            if not os.path.exists(path):
                continue
            conns += 1
            with open(path, "rb") as f:
                msgs, _ = decode_messages(f.read())
            check_sequence(self, msgs)
            if check_names:
                names = {r["in_if"]: r["ifname"].decode() for _, rs in msgs for r in rs if "ifname" in r}
                self.assertEqual(names, {i: n for i, n in self.names.items()})
            for _, rs in msgs:
                for r in rs:
                    if "proto" in r:
                        c = got.setdefault(record_key(r, self.names), {"packets": 0, "l3": 0})
                        c["packets"] += r["packets"]
                        c["l3"] += r["l3"]
        return got, conns

    def gw_spawn(self, argv, name):
        log = open(os.path.join(self.workdir, f"{name}.log"), "w")
        self.addCleanup(log.close)
        p = h.spawn(self.topo.exec_argv(self.topo.gw, argv), stdout=log, stderr=log)
        self.addCleanup(h.stop_process, p)
        return p

    def start_nfcapd(self):
        self.nfdir = os.path.join(self.workdir, f"nfcapd-{time.monotonic_ns()}")
        os.makedirs(self.nfdir)
        p = self.gw_spawn(["nfcapd", "-w", self.nfdir, "-b", COLLECTOR, "-p", str(NFCAPD_PORT), "-t", "3600"],
                          "nfcapd")
        time.sleep(1)  # nfcapd binds at once; give it its start-up
        self.assertIsNone(p.poll(), "nfcapd exited at start")
        return p

    def nfdump_flows(self, proc):
        h.stop_process(proc, signal.SIGTERM, 20)  # nfcapd writes its file on exit
        out = h.run(["nfdump", "-R", self.nfdir, "-o", "json"], timeout=60).stdout
        rows = json.loads(out) if out.strip() else []
        flows = {}
        for r in rows:
            v6 = "src6_addr" in r
            proto = int(r["proto"])
            dport = int(r.get("dst_port", 0))
            if proto in (1, 58) and "icmp_type" in r:
                dport = int(r["icmp_type"]) * 256 + int(r["icmp_code"])
            out_if, in_if = int(r.get("output_snmp", 0)), int(r.get("input_snmp", 0))
            d = "egress" if out_if else "ingress"
            key = (self.names[out_if or in_if], d, h.proto_name(proto), h.norm_ip(r["src6_addr" if v6 else "src4_addr"]),
                   int(r.get("src_port", 0)), h.norm_ip(r["dst6_addr" if v6 else "dst4_addr"]), dport)
            c = flows.setdefault(key, {"packets": 0, "l3": 0})
            c["packets"] += int(r["in_packets"])
            c["l3"] += int(r["in_bytes"])
        return flows

    def traffic(self):
        t = self.topo
        h.client_run(t, "udp", t.SRV4, PORT, "100,400,1000", 20, 40001)
        h.client_run(t, "udp", t.SRV6, PORT, "200,1200", 15, 40002)
        h.client_run(t, "tcp", t.SRV4, PORT, 30000, 50000)
        h.client_run(t, "tcp", t.SRV6, PORT, 20000, 10000)
        h.client_run(t, "icmp", t.SRV4, "64,500", 5)
        h.client_run(t, "icmp", t.SRV6, "64,300", 5)

    def wait_finished(self):
        """Until every flow has finished (idle timeout) and been handed to the exporter. The first
        two polls make sure the daemon has seen the traffic just sent: without them, on a loaded
        machine, ListFlows could still be empty from before it and the wait end at once."""
        self.daemon.wait_polls(2)
        h.wait_until(lambda: not self.bus.call_ok("ListFlows", "su", "packets", 100000)[0], 60,
                     "every flow finished")
        self.daemon.wait_polls(3)

    def flow_records(self):
        p = self.bus.busctl("call", h.BUS_NAME, h.BUS_PATH, RECORDS_IFACE, "Rotate")
        self.assertEqual(p.returncode, 0, p.stderr)
        recs = h.read_records(os.path.join(self.daemon.state_dir, "spool"), "flow")
        out = {}
        for r in recs:
            key = (r["interface"], r["direction"], h.proto_name(r["protocol"]), h.norm_ip(r["src"]), int(r["src_port"]),
                   h.norm_ip(r["dst"]), int(r["dst_port"]))
            c = out.setdefault(key, {"packets": 0, "l3": 0})
            c["packets"] += int(r["packets"])
            c["l3"] += int(r["l3_bytes"])
        return out

    def capture_flows(self):
        for c in self.caps:
            c.stop()
        cap = h.analyse(self.caps)
        return cap, {k: {"packets": v["packets"], "l3": v["l3"]} for k, v in cap.flows.items()}

    def compare(self, name, got, want):
        problems = [f"  {k}: {name} {got.get(k)} capture {want.get(k)}"
                    for k in sorted(set(got) | set(want), key=str) if got.get(k) != want.get(k)]
        self.assertEqual(problems, [], f"{name} differs from the capture:\n" + "\n".join(problems) +
                         f"\n--- daemon log ---\n{self.daemon.log_tail(40)}")
        h.log(f"{name} == capture: {len(want)} flows, "
              f"{sum(v['packets'] for v in want.values())} packets, {sum(v['l3'] for v in want.values())} l3")

    def check_kinds(self, flows):
        """The traffic covers IPv4 and IPv6, TCP, UDP and ICMP, on both interfaces and directions."""
        kinds = {(":" in k[3], k[2]) for k in flows}
        for want in [(False, "tcp"), (False, "udp"), (False, "icmp"), (True, "tcp"), (True, "udp"),
                     (True, "icmpv6")]:
            self.assertIn(want, kinds, f"no flow of (ipv6, proto) {want}")
        self.assertEqual({(k[0], k[1]) for k in flows}, {(i, d) for i in IFACES for d in h.DIRECTIONS})


class UdpCollectorsTest(ExportBase):
    collectors = (f"udp://{COLLECTOR}:{NFCAPD_PORT}", f"udp://{COLLECTOR}:{NFACCTD_PORT}")
    export = {"observation_domain": 42, "template_refresh": "60s"}

    def start_nfacctd(self):
        self.pm_out = os.path.join(self.workdir, "nfacctd.json")
        conf = os.path.join(self.workdir, "nfacctd.conf")
        with open(conf, "w") as f:
            f.write(f"daemonize: false\nnfacctd_ip: {COLLECTOR}\nnfacctd_port: {NFACCTD_PORT}\n"
                    "plugins: print\nprint_output: json\n"
                    f"print_output_file: {self.pm_out}\nprint_output_file_append: true\n"
                    "print_refresh_time: 1\nprint_history: 0\n"
                    "aggregate: src_host, dst_host, src_port, dst_port, proto, in_iface, out_iface\n")
        p = self.gw_spawn(["nfacctd", "-f", conf], "nfacctd")
        time.sleep(1)
        self.assertIsNone(p.poll(), "nfacctd exited at start")
        return p

    def nfacctd_flows(self, proc):
        h.stop_process(proc, signal.SIGTERM, 20)  # the print plugin writes what it holds on exit
        flows = {}
        with open(self.pm_out) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                out_if, in_if = int(r.get("iface_out", 0)), int(r.get("iface_in", 0))
                d = "egress" if out_if else "ingress"
                proto = r["ip_proto"]
                proto = h.proto_name(proto) if str(proto).isdigit() else {"ipv6-icmp": "icmpv6"}.get(proto, proto)
                key = (self.names[out_if or in_if], d, proto,
                       h.norm_ip(r["ip_src"]), int(r["port_src"]), h.norm_ip(r["ip_dst"]), int(r["port_dst"]))
                c = flows.setdefault(key, {"packets": 0, "l3": 0})
                c["packets"] += int(r["packets"])
                c["l3"] += int(r["bytes"])
        return flows

    def test_udp_collectors_equal_capture_and_records(self):
        nfcapd = self.start_nfcapd()
        nfacctd = self.start_nfacctd()
        self.start_captures(lo=True)
        self.daemon.start()
        self.topo.settle()
        self.traffic()
        self.wait_finished()
        records = self.flow_records()
        cap, want = self.capture_flows()
        self.check_kinds(want)
        self.compare("flow records", records, want)
        exported = self.nfdump_flows(nfcapd)
        self.compare("nfdump", exported, want)
        # nfcapd's own sequence check (per exporter and observation domain), as it stored it.
        info = h.run(["nfdump", "-I", "-R", self.nfdir], timeout=60).stdout
        fails = [int(x) for x in re.findall(r"Sequence failures:\s*(\d+)", info)]
        self.assertTrue(fails, f"nfdump -I printed no sequence figure:\n{info}")
        self.nfcapd_sequence_failures = sum(fails)
        pm = self.nfacctd_flows(nfacctd)
        self.compare("nfacctd", pm, want)
        for i in IFACES:  # per interface and direction: exported totals == the capture's
            for d in h.DIRECTIONS:
                got = [v for k, v in exported.items() if k[:2] == (i, d)]
                tot = {f: sum(v[f] for v in got) for f in ("packets", "l3")}
                cap_tot = {f: cap.iface(i, d)[f] for f in ("packets", "l3")}
                h.log(f"{i} {d}: exported (nfdump) {tot}, capture {cap_tot}")
                self.assertEqual(tot, cap_tot, f"{i} {d}")
        self.check_export_capture()

    def check_export_capture(self):
        self.lo_cap.stop()
        p = h.run(["tshark", "-r", self.lo_cap.path, "-n", "-Y", f"!icmp && (udp.dstport == {NFCAPD_PORT} || udp.dstport == {NFACCTD_PORT})",
                   "-T", "fields", "-e", "udp.dstport", "-e", "udp.payload"], timeout=120)
        # Sequence numbers from the raw bytes of every message sent (ICMP quotes left out).
        per_port, templates = {}, {}
        for line in p.stdout.splitlines():
            port, payload = line.split("\t")
            msgs, _ = decode_messages(bytes.fromhex(payload.replace(":", "")), templates.setdefault(port, {}))
            per_port.setdefault(int(port), []).extend(msgs)
        self.assertEqual(set(per_port), {NFCAPD_PORT, NFACCTD_PORT})
        # nfcapd's count: it counts flow data records only, not the interface table's options data
        # records (RFC 7011 §3.1 counts all data records, as tshark and this test's decoder do), so
        # an interface table between two flow data messages shows there as one failure. Here the
        # only table goes out at start (template_refresh 60 s > the test): any failure is a gap.
        h.log(f"nfcapd: {self.nfcapd_sequence_failures} sequence failures")
        self.assertEqual(self.nfcapd_sequence_failures, 0, "nfcapd saw a sequence gap")
        for port, msgs in per_port.items():
            n = check_sequence(self, msgs)
            self.assertTrue(all(m["domain"] == 42 for m, _ in msgs))
            h.log(f"collector :{port}: {n} messages, {sum(len(r) for _, r in msgs)} data records, "
                  "no sequence gap, no tshark warning")

        # Every message decodes in tshark's IPFIX dissector without a malformed-packet warning.
        # (!icmp: once a collector has stopped, the ICMP port unreachable errors quote the
        # datagram, cut, and are no IPFIX message of their own; sent messages are all decoded.)
        p = h.run(["tshark", "-r", self.lo_cap.path, "-n", "-d", f"udp.port=={NFCAPD_PORT},cflow",
                   "-d", f"udp.port=={NFACCTD_PORT},cflow", "-Y", "!icmp && (_ws.malformed || _ws.expert.severity >= warning)",
                   "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"], timeout=120)
        self.assertEqual(p.stdout.strip(), "", f"tshark warnings:\n{p.stdout[:2000]}")

class NatTest(ExportBase):
    collectors = (f"udp://{COLLECTOR}:{NFCAPD_PORT}",)

    def setUp(self):
        super().setUp()
        table = f"ntnat{os.getpid()}"
        rules = (f"table ip {table} {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n"
                 f'  oifname "wan0" masquerade\n }}\n}}\n')
        h.run(self.topo.exec_argv(self.topo.gw, ["nft", "-f", "-"]), input=rules)
        self.addCleanup(lambda: h.run(self.topo.exec_argv(self.topo.gw, ["nft", "delete", "table", "ip", table]),
                                      check=False))

    def test_post_nat_fields_and_wan_figures_equal_capture(self):
        self.start_nfcapd()
        self.start_captures(lo=True)
        self.daemon.start()
        self.topo.settle()
        t = self.topo
        h.client_run(t, "udp", t.SRV4, PORT, "100,400,1000", 20, 40011)
        h.client_run(t, "tcp", t.SRV4, PORT, 30000, 50000)
        h.client_run(t, "udp", t.SRV6, PORT, "200", 5, 40012)  # not translated: no NAT fields
        self.wait_finished()
        hosts = self.bus.call_ok("ListHosts", "su", "l2", 100000)[0]
        cap, _ = self.capture_flows()
        self.lo_cap.stop()
        p = h.run(["tshark", "-r", self.lo_cap.path, "-n", "-Y", f"!icmp && udp.dstport == {NFCAPD_PORT}",
                   "-T", "fields", "-e", "udp.payload"], timeout=120)
        templates, records = {}, []
        for line in p.stdout.splitlines():
            msgs, _ = decode_messages(bytes.fromhex(line.replace(":", "")), templates)
            records += [r for _, rs in msgs for r in rs if "packets" in r]
        ip4 = lambda b: socket.inet_ntoa(bytes(b))  # noqa: E731
        # The translation the wan0 capture shows: the client's connections leave with the
        # gateway's address.
        wan_out = {k: v for k, v in cap.flows.items() if k[:2] == ("wan0", "egress") and k[2] in ("tcp", "udp")
                   and ":" not in k[3]}
        lan_out = {k: v for k, v in cap.flows.items() if k[:2] == ("lan0", "egress") and k[2] in ("tcp", "udp")
                   and ":" not in k[3]}
        self.assertTrue(wan_out and all(k[3] == t.WAN4 for k in wan_out), f"not masqueraded: {list(wan_out)}")
        checked = 0
        for r in records:
            iface = self.names[r["in_if"] or r["out_if"]]
            ingress = r["in_if"] != 0
            v4 = "src4" in r
            proto = h.proto_name(r["proto"])
            if not (v4 and ingress and proto in ("tcp", "udp")):
                self.assertNotIn("post_src4", r, f"NAT fields on a flow seen after translation: {r}")
                continue
            self.assertIn("post_src4", r, f"{iface} ingress {proto} record without NAT fields: {r}")
            post = (ip4(r["post_src4"]), r["post_sport"], ip4(r["post_dst4"]), r["post_dport"])
            # The other side's flow in the same direction, as captured.
            other = wan_out if iface == "lan0" else lan_out
            oface = "wan0" if iface == "lan0" else "lan0"
            key = (oface, "egress", proto) + (post[0], post[1], post[2], post[3])
            self.assertIn(key, other, f"post-NAT {post} of {iface} record {r} is not in the {oface} capture "
                          f"{list(other)}")
            checked += 1
        want = 2 * len(wan_out)  # every connection: lan0 ingress and wan0 ingress records (at least one each)
        self.assertGreaterEqual(checked, want, "records with NAT fields")
        h.log(f"NAT: {checked} records' post-NAT fields equal the other side's capture "
              f"({len(wan_out)} wan0 egress flows, e.g. {sorted(wan_out)[0][3:]})")
        # The client's WAN figures: its connections' wan0 flows (all of them are the client's).
        C = lambda v: dict(zip(h.FIGURES, v))  # noqa: E731
        row = [x for x in hosts if h.norm_ip(x[1]) == t.CLI4]
        self.assertEqual(len(row), 1, f"client host row: {hosts}")
        got = {"wan_sent": C(row[0][7]), "wan_received": C(row[0][8])}
        cap_wan = {"wan_sent": h.zero(), "wan_received": h.zero()}
        for k, v in cap.flows.items():
            if k[0] == "wan0" and ":" not in k[3] and k[2] in ("tcp", "udp"):
                side = "wan_sent" if k[1] == "egress" else "wan_received"
                cap_wan[side] = h.cadd(cap_wan[side], v)
        h.log(f"client {t.CLI4}: WAN figures {got}, wan0 capture {cap_wan}")
        self.assertEqual(got, cap_wan, "client's WAN figures != wan0 capture of its connections")
        v6 = [x for x in hosts if h.norm_ip(x[1]) == h.norm_ip(t.CLI6)]
        for x in v6:
            self.assertEqual(C(x[7]), h.zero(), "IPv6 host: no WAN credit without conntrack entries")


class LateCollectorTest(ExportBase):
    collectors = (f"udp://{COLLECTOR}:{NFCAPD_PORT}",)
    export = {"template_refresh": "3s"}

    def test_collector_started_late_decodes_within_one_refresh(self):
        self.daemon.start()
        self.topo.settle()
        time.sleep(30)
        nfcapd = self.start_nfcapd()
        # The templates went out 30 s ago, before nfcapd was there; without the refresh timer
        # (template_messages is 1000: far away) it could decode nothing. One refresh period
        # (3 s, plus a poll) after it started, it must decode everything.
        time.sleep(3.5)
        self.start_captures()
        self.traffic()
        self.wait_finished()
        _cap, want = self.capture_flows()
        got = self.nfdump_flows(nfcapd)
        self.compare("nfdump (started 30 s late)", got, want)


class TcpRestartTest(ExportBase):
    collectors = (f"tcp://{COLLECTOR}:{TCP_PORT}",)

    def collector(self, run):
        return self.tcp_collector(f"{self.tcp_out}-{run}", f"tcpcollect-{run}")

    def test_tcp_collector_restart_loses_nothing(self):
        self.tcp_out = os.path.join(self.workdir, "tcp")
        first = self.collector(0)
        time.sleep(0.5)
        self.start_captures()
        self.daemon.start()
        self.topo.settle()
        t = self.topo
        h.client_run(t, "udp", t.SRV4, PORT, "100,1000", 20, 40001)
        h.client_run(t, "tcp", t.SRV6, PORT, 20000, 10000)
        self.wait_finished()
        h.stop_process(first)
        h.client_run(t, "udp", t.SRV6, PORT, "300", 25, 40003)  # exported while no collector listens
        h.client_run(t, "icmp", t.SRV4, "64", 5)
        self.wait_finished()
        st = self.bus.status()
        self.assertGreater(int(st["export_buffered"]), 0, "records should wait for the collector")
        second = self.collector(1)
        h.client_run(t, "tcp", t.SRV4, PORT, 10000, 5000)
        self.wait_finished()
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 90, "the buffer drained")
        h.stop_process(second)
        _cap, want = self.capture_flows()
        got, conns = self.tcp_flows(self.tcp_out, check_names=True)
        self.assertGreaterEqual(conns, 2, "the collector saw one connection only")
        self.compare(f"TCP collector over {conns} connections", got, want)


class EnterpriseReloadTest(ExportBase):
    """A reload that changes export.enterprise (the PEN of nettally's l4 and payload elements) gives
    the flow templates new ids on the new stream (never a redefinition of an id already used), and
    going back to the first PEN takes its ids again. Records of every stream add up to the capture."""
    collectors = (f"tcp://{COLLECTOR}:{TCP_PORT}",)

    def reload_with(self, pen):
        self.daemon.write_config(self.daemon.config_text_with(pen))
        rc, err, _ = self.bus.dbus_send("Reload")
        self.assertEqual(rc, 0, err)
        self.daemon.wait_polls(2)

    def test_changed_pen_gets_new_template_ids(self):
        out = os.path.join(self.workdir, "tcp")
        self.tcp_collector(out)
        time.sleep(0.5)
        self.start_captures()
        with open(self.daemon.config_path) as f:
            base = f.read()
        self.daemon.config_text_with = lambda pen: base.replace("export:\n", f"export:\n  enterprise: {pen}\n", 1)
        self.daemon.write_config(self.daemon.config_text_with(32473))
        self.daemon.start()
        self.topo.settle()
        t = self.topo
        streams = []
        for i, pen in enumerate((32473, 99999, 32473)):
            if i:
                self.reload_with(pen)
            h.client_run(t, "udp", t.SRV4, PORT, "200,700", 10, 40011 + i)
            h.client_run(t, "udp", t.SRV6, PORT, "300", 10, 40021 + i)
            self.wait_finished()
            streams.append(pen)
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 60, "the buffer drained")
        time.sleep(1)
        _cap, want = self.capture_flows()
        got, ids = {}, []
        for n, pen in enumerate(streams):
            path = f"{out}.{n}"
            self.assertTrue(os.path.exists(path), f"no connection {n} (one per reload)")
            with open(path, "rb") as f:
                msgs, templates = decode_messages(f.read())
            check_sequence(self, msgs)
            flow_ids = {tid for tid, fields in templates.items() if any(name == "proto" for name, _ in fields)}
            pens = {name.split(".")[0] for tid in flow_ids for name, _ in templates[tid] if re.match(r"e\d+\.", name)}
            self.assertEqual(pens, {f"e{pen}"}, f"stream {n}: the enterprise elements' PEN")
            used = {r["_template"] for _, rs in msgs for r in rs if "proto" in r}
            self.assertTrue(used and used <= flow_ids, f"stream {n}: data under templates {used}, flow templates {flow_ids}")
            ids.append(flow_ids)
            for _, rs in msgs:
                for r in rs:
                    if "proto" in r:
                        self.assertTrue(any(k.startswith(f"e{pen}.") for k in r), f"stream {n}: {sorted(r)}")
                        c = got.setdefault(record_key(r, self.names), {"packets": 0, "l3": 0})
                        c["packets"] += r["packets"]
                        c["l3"] += r["l3"]
        h.log(f"flow template ids per stream: {[sorted(i) for i in ids]}")
        self.assertEqual(ids[1] & ids[0], set(), "a changed layout must get new template ids")
        self.assertEqual(ids[2], ids[0], "the first PEN's layout takes its ids again")
        self.compare("TCP collector across three PENs", got, want)


class UserNameTest(ExportBase):
    """With subscribers, the flow templates end with userName (IE 371): each record of a lan0 flow
    carries the user bound to its lan host (alice: the client's IPv4 address), "" for the client's
    unbound IPv6 address and on wan0; the records still add up to the capture."""
    collectors = (f"tcp://{COLLECTOR}:{TCP_PORT}",)
    more_yaml = "subscribers:\n  static:\n    - user: alice\n      prefix: 198.18.1.2/32\n"

    def test_records_carry_the_user(self):
        out = os.path.join(self.workdir, "tcp")
        self.start_with_tcp_collector(out)
        self.traffic()
        self.wait_finished()
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 60, "the buffer drained")
        time.sleep(1)
        _cap, want = self.capture_flows()
        with open(f"{out}.0", "rb") as f:
            msgs, templates = decode_messages(f.read())
        check_sequence(self, msgs)
        flow_templates = {tid: fields for tid, fields in templates.items() if any(n == "proto" for n, _ in fields)}
        self.assertTrue(flow_templates)
        for tid, fields in flow_templates.items():
            self.assertEqual(fields[-1], ("user", 65535), f"template {tid}: userName last, variable length")
        got, users = {}, {}
        for _, rs in msgs:
            for r in rs:
                if "proto" not in r:
                    continue
                key = record_key(r, self.names)
                iface, d, _p, src, _sp, dst, _dp = key
                host = src if d == "ingress" else dst
                want_user = "alice" if iface == "lan0" and host == self.topo.CLI4 else ""
                self.assertEqual(r["user"].decode(), want_user, f"record {key}")
                users[want_user] = users.get(want_user, 0) + 1
                c = got.setdefault(key, {"packets": 0, "l3": 0})
                c["packets"] += r["packets"]
                c["l3"] += r["l3"]
        h.log(f"records by user: {users}")
        self.assertGreater(users.get("alice", 0), 0)
        self.assertGreater(users.get("", 0), 0)
        self.compare("TCP collector with userName", got, want)


class ReloadWhileDownTest(ExportBase):
    """A reload that reopens the collectors (a new export.enterprise) while the TCP collector is down
    keeps the records waiting for it: they go out on the new stream once it is back, and every
    record adds up to the capture."""
    collectors = (f"tcp://{COLLECTOR}:{TCP_PORT}",)

    def test_records_waiting_survive_a_reload(self):
        out = os.path.join(self.workdir, "tcp")
        first = self.tcp_collector(out + "-0", "tcpcollect-0")
        time.sleep(0.5)
        self.start_captures()
        with open(self.daemon.config_path) as f:
            base = f.read()
        self.daemon.start()
        self.topo.settle()
        t = self.topo
        h.client_run(t, "udp", t.SRV4, PORT, "200,700", 10, 40031)
        self.wait_finished()
        h.stop_process(first)
        h.client_run(t, "udp", t.SRV6, PORT, "300", 10, 40032)  # while no collector listens
        self.wait_finished()
        waiting = int(self.bus.status()["export_buffered"])
        self.assertGreater(waiting, 0, "records should wait for the collector")
        self.daemon.write_config(base.replace("export:\n", "export:\n  enterprise: 99999\n", 1))
        rc, err, _ = self.bus.dbus_send("Reload")
        self.assertEqual(rc, 0, err)
        self.daemon.wait_polls(2)
        self.assertEqual(int(self.bus.status()["export_buffered"]), waiting, "the reload keeps what waits")
        second = self.tcp_collector(out + "-1", "tcpcollect-1")
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 90, "the buffer drained")
        time.sleep(1)
        h.stop_process(second)
        _cap, want = self.capture_flows()
        got, _conns = self.tcp_flows(out)
        self.compare("TCP collector across a reload while it was down", got, want)


class LongFlowTest(ExportBase):
    collectors = (f"tcp://{COLLECTOR}:{TCP_PORT}",)
    export = {"active_timeout": "30s"}
    flows = {"idle_timeout": "2s"}

    def test_interim_records_sum_to_capture(self):
        self.tcp_out = os.path.join(self.workdir, "tcp")
        self.start_with_tcp_collector(self.tcp_out)
        t = self.topo
        h.client_run(t, "udpfor", t.SRV4, PORT, 200, 90, 40009, 0.2, timeout=150)
        self.wait_finished()
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 30, "the buffer drained")
        _cap, want = self.capture_flows()
        with open(f"{self.tcp_out}.0", "rb") as f:
            msgs, _ = decode_messages(f.read())
        per_flow = {}
        for _, rs in msgs:
            for r in rs:
                if "proto" in r:
                    per_flow.setdefault(record_key(r, self.names), []).append(r)
        got = {k: {"packets": sum(r["packets"] for r in v), "l3": sum(r["l3"] for r in v)}
               for k, v in per_flow.items()}
        self.compare("interim + final records", got, want)
        for k, rs in per_flow.items():
            reasons = [r["reason"] for r in rs]
            h.log(f"{k}: {len(rs)} records, reasons {reasons}, packets {[r['packets'] for r in rs]}")
            self.assertGreaterEqual(len(rs), 3, f"{k}: a 90 s flow with active_timeout 30 s")
            self.assertEqual(reasons[:-1], [2] * (len(rs) - 1), "interim records: active timeout (2)")
            # The final record (idle timeout) carries what came after the last interim record; when
            # nothing did, there is none (a record of zero packets would only confuse collectors).
            self.assertIn(reasons[-1], (1, 2), "the last record: idle (1) or active (2) timeout")
            for a, b in zip(rs, rs[1:]):
                self.assertLessEqual(a["end"], b["start"] + 1, "records overlap in time")


class DbusControlTest(ExportBase):
    """org.nettally.Accounting1.Export and `nettallyctl export`: no collector in the config; one
    set over D-Bus (validated, privileged, persisted across a restart, cleared), the flows reach
    nfcapd, a TCP collector nobody listens on raises ExportFailed."""
    collectors = ()
    export = {"template_refresh": "2s"}

    def test_set_collectors_over_dbus(self):
        ctl = h.Ctl(self.bus.address)
        self.daemon.start()
        monitor = h.SignalMonitor(self.bus).start()
        st = ctl.json("export", "status")["export"]
        self.assertEqual((st["source"], st["collectors"]), ("none", []))
        # Refused: an unprivileged caller, a bad URL (nothing changes).
        p = ctl.run("export", "set", f"udp://{COLLECTOR}:{NFCAPD_PORT}", user=NOBODY)
        self.assertNotEqual(p.returncode, 0, "an unprivileged caller set the collectors")
        p = ctl.run("export", "set", f"udp://{COLLECTOR}:0")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("port must be 1 .. 65535", p.stderr)
        self.assertEqual(ctl.json("export", "status")["export"]["source"], "none")
        nfcapd = self.start_nfcapd()
        closed = f"tcp://{COLLECTOR}:{TCP_PORT + 1}"
        p = ctl.run("export", "set", f"udp://{COLLECTOR}:{NFCAPD_PORT}", closed)
        self.assertEqual(p.returncode, 0, p.stderr)
        failed = monitor.wait_for("ExportFailed", interface=EXPORT_IFACE)
        self.assertEqual(failed[0]["data"][0], closed)
        h.log(f"ExportFailed: {failed[0]['data']}")
        # Persisted: the next start exports to the same collectors.
        self.daemon.stop(keep_pins=True)
        self.daemon.start()
        self.topo.settle()
        self.start_captures()
        self.traffic()
        self.wait_finished()
        st = ctl.json("export", "status")["export"]
        self.assertEqual(st["source"], "dbus")
        by_url = {c["url"]: c for c in st["collectors"]}
        self.assertEqual(set(by_url), {f"udp://{COLLECTOR}:{NFCAPD_PORT}", closed})
        self.assertEqual(by_url[closed]["state"], "down")
        self.assertGreater(by_url[closed]["buffered"], 0)
        self.assertGreater(by_url[f"udp://{COLLECTOR}:{NFCAPD_PORT}"]["records"], 0)
        text = ctl.run("export", "status")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("collectors from: dbus", text.stdout)
        self.assertIn(closed, text.stdout)
        h.log("nettallyctl export status:\n" + text.stdout)
        _cap, want = self.capture_flows()
        self.compare("nfdump (collectors set over D-Bus)", self.nfdump_flows(nfcapd), want)
        p = ctl.run("export", "clear")
        self.assertEqual(p.returncode, 0, p.stderr)
        st = ctl.json("export", "status")["export"]
        self.assertEqual((st["source"], st["collectors"]), ("none", []))
        self.assertFalse(os.path.exists(os.path.join(self.daemon.state_dir, "export.json")))
        monitor.stop()


class DaemonRestartTest(ExportBase):
    """A flow live across a restart of nettallyd, with interim records before and after it: its
    records over both connections sum to the capture (what was reported before the restart is
    not reported again)."""
    collectors = (f"tcp://{COLLECTOR}:{TCP_PORT}",)
    export = {"active_timeout": "4s"}
    flows = {"idle_timeout": "2s"}

    def test_flow_across_restart_reported_once(self):
        out = os.path.join(self.workdir, "tcp")
        self.start_with_tcp_collector(out)
        t = self.topo
        flow = threading.Thread(target=h.client_run, args=(t, "udpfor", t.SRV4, PORT, 300, 24, 40011, 0.1),
                                kwargs={"timeout": 90})
        flow.start()
        time.sleep(11)  # two interim records out
        self.daemon.stop(keep_pins=True)
        self.daemon.start()
        flow.join()
        self.wait_finished()
        h.wait_until(lambda: int(self.bus.status()["export_buffered"]) == 0, 30, "the buffer drained")
        _cap, want = self.capture_flows()
        got, records = {}, 0
        for n in range(4):
            if not os.path.exists(f"{out}.{n}"):
                continue
            with open(f"{out}.{n}", "rb") as f:
                msgs, _ = decode_messages(f.read())
            for _, rs in msgs:
                for r in rs:
                    if "proto" in r:
                        records += 1
                        c = got.setdefault(record_key(r, self.names), {"packets": 0, "l3": 0})
                        c["packets"] += r["packets"]
                        c["l3"] += r["l3"]
        self.assertGreaterEqual(records, 4 * 4, "interim records before and after the restart")
        self.compare(f"{records} records across a daemon restart", got, want)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "tcpcollect":
        tcp_collect(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        h.run_tests()
