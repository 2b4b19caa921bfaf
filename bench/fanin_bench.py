#!/usr/bin/env python3
"""Fan-in: many gateways, each its own nettallyd, exporting IPFIX over UDP to one nfcapd.

Run by bench/run.sh (section "fanin"); standard library only; needs root. Prints a table and writes
JSON (--json). The question it answers: when 20 gateways finish their flows at the same moment and
all export to one collector, does every record arrive? "Missing" is measured against what the
traffic generators sent, not against the daemons' own counters, so a record lost anywhere (in the
daemon, on the way, in the collector's socket buffer) shows.

Topology (addresses from 198.18.0.0/15; IPv6 off and permanent ARP entries, so nothing but the
bench's own packets cross the links):

     PREFIX-cN (N = 1..G)          PREFIX-gN                          PREFIX-col
   +------------------+   +------------------------------+   +---------------------------+
   | eth0 198.18.N.2  |---| lan0 198.18.N.1              |   | br0 198.19.0.1            |
   | UDP flows to     |   |   nettallyd (lan0, role lan) |   |   nfcapd -b 198.19.0.1    |
   | 198.18.200.9     |   |   export udp://198.19.0.1    |   |          -p 4739          |
   +------------------+   | up0 198.19.0.(10+N)          |---| pN (bridge port)          |
                          +------------------------------+   +---------------------------+

Each gateway has IPv4 forwarding off, so the generator's packets (to 198.18.200.9, via the
gateway) are counted at lan0's ingress and then dropped silently (no ICMP: ip_error() only counts
when forwarding is off). Every generated flow is one UDP 5-tuple with a known number of packets and
bytes; it ends by the idle timeout (1 s) and is exported as exactly one record.

Figures: per gateway and in all, flows generated, records the daemons say they sent
(GetExportStatus), flow records nfdump reads from nfcapd's file, missing (a generated flow absent
at the collector or with other packets/bytes), extra, the collector namespace's UDP receive-buffer
drops, nfcapd's sequence failures, and the time from the last packet to the last record.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import system_bench as sb  # noqa: E402  (process, cleanup and bus helpers shared with the system bench)

COLLECTOR = "198.19.0.1"
NFCAPD_PORT = 4739
SINK = "198.18.200.9"
UDP_HEADERS = 28  # IPv4 (20) + UDP (8): l3 bytes = payload + 28
SIZES = (64, 200, 512, 1000, 1400)


def log(msg):
    print(f"[fanin_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The traffic generator (runs in a client namespace: `fanin_bench.py gen ...`)


def generate(src, flows, packets, first_port):
    """Sends `flows` UDP flows of `packets` datagrams each from src to SINK; prints what it sent."""
    sent = []
    for k in range(flows):
        sport = first_port + k
        dport = 5000 + k % 7
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, sport))
        l3 = 0
        for j in range(packets):
            size = SIZES[(k + j) % len(SIZES)]
            s.sendto(b"\x5a" * size, (SINK, dport))
            l3 += size + UDP_HEADERS
        s.close()
        sent.append([sport, dport, packets, l3])
    json.dump(sent, sys.stdout)


# ---------------------------------------------------------------------------------------------
# Namespaces


def gw_ns(prefix, i):
    return f"{prefix}-g{i}"


def cli_ns(prefix, i):
    return f"{prefix}-c{i}"


def add_ns(ns):
    sb.sh(["ip", "netns", "add", ns])
    sb.add_cleanup(lambda: sb.sh(["ip", "netns", "del", ns], check=False))
    sb.nsrun(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
    sb.sh(["ip", "-n", ns, "link", "set", "lo", "up"])


def mac(kind, i):
    return f"02:00:c6:{kind:02x}:{i:02x}:01"


def create_topology(prefix, gateways):
    col = f"{prefix}-col"
    add_ns(col)
    sb.sh(["ip", "-n", col, "link", "add", "br0", "type", "bridge"])
    sb.sh(["ip", "-n", col, "addr", "add", f"{COLLECTOR}/24", "dev", "br0"])
    sb.sh(["ip", "-n", col, "link", "set", "br0", "up"])
    for i in range(1, gateways + 1):
        g, c = gw_ns(prefix, i), cli_ns(prefix, i)
        add_ns(g)
        add_ns(c)
        sb.sh(["ip", "-n", g, "link", "add", "lan0", "address", mac(1, i), "type", "veth", "peer", "name", "eth0",
               "address", mac(2, i), "netns", c])
        sb.sh(["ip", "-n", g, "link", "add", "up0", "type", "veth", "peer", "name", f"p{i}", "netns", col])
        sb.sh(["ip", "-n", col, "link", "set", f"p{i}", "master", "br0", "up"])
        for ns, dev, addr in ((c, "eth0", f"198.18.{i}.2/24"), (g, "lan0", f"198.18.{i}.1/24"),
                              (g, "up0", f"198.19.0.{10 + i}/24")):
            sb.sh(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            sb.sh(["ip", "-n", ns, "link", "set", dev, "up"])
        sb.sh(["ip", "-n", c, "route", "add", "default", "via", f"198.18.{i}.1"])
        sb.nsrun(g, ["sysctl", "-qw", "net.ipv4.ip_forward=0"])
        sb.sh(["ip", "-n", c, "neigh", "replace", f"198.18.{i}.1", "lladdr", mac(1, i), "dev", "eth0", "nud",
               "permanent"])
        sb.sh(["ip", "-n", g, "neigh", "replace", f"198.18.{i}.2", "lladdr", mac(2, i), "dev", "lan0", "nud",
               "permanent"])
    for i in range(1, gateways + 1):
        sb.nsrun(gw_ns(prefix, i), ["ping", "-c", "1", "-W", "2", COLLECTOR])
    return col


# ---------------------------------------------------------------------------------------------
# The gateways' daemons


class Gateway:
    def __init__(self, args, prefix, i, workdir):
        self.args, self.i, self.ns = args, i, gw_ns(prefix, i)
        self.dir = os.path.join(workdir, f"g{i}")
        os.makedirs(self.dir)
        self.pin_dir = f"/sys/fs/bpf/{prefix}-g{i}"
        sb.add_cleanup(shutil.rmtree, self.pin_dir, True)
        self.config = os.path.join(self.dir, "nettally.yaml")
        with open(self.config, "w") as f:
            f.write(f"""interfaces:
  - name: lan0
    role: lan
poll_interval: 1s
state_dir: {self.dir}/state
pin_dir: {self.pin_dir}
flows:
  max_entries: {max(4096, 2 * args.flows)}
  idle_timeout: 1s
export:
  collectors:
    - url: udp://{COLLECTOR}:{NFCAPD_PORT}
  observation_domain: {i}
""")
        self.bus = sb.start_bus(self.dir, args.source_dir)
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus)
        self.proc = None
        self.ready = threading.Event()

    def start(self):
        sock_path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(sock_path)
        sb.add_cleanup(self.sock.close)
        env = dict(self.env, NOTIFY_SOCKET=sock_path)
        self.proc = sb.spawn([self.args.nettallyd, "--config", self.config], ns=self.ns, env=env,
                             stderr=open(os.path.join(self.dir, "nettallyd.log"), "w"))
        threading.Thread(target=self._notifications, daemon=True).start()

    def _notifications(self):
        # Drained for the daemon's whole life: sd_notify blocks once 10 datagrams wait unread.
        while True:
            try:
                data = self.sock.recv(4096).decode(errors="replace")
            except OSError:
                return
            if "READY=1" in data.split("\n"):
                self.ready.set()

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway {self.i}: nettallyd not READY: {self.log_tail()}")

    def log_tail(self):
        with open(os.path.join(self.dir, "nettallyd.log"), errors="replace") as f:
            return f.read()[-1500:]

    def export_status(self):
        out = sb.sh([self.args.nettallyctl, "--json", "export", "status"], env=self.env, timeout=30)
        c = json.loads(out)["export"]["collectors"]
        return c[0] if c else {}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            sb.stop_process(self.proc, timeout=60)
        # The programs stay attached and the maps pinned after SIGTERM: --detach removes both.
        sb.sh(["nsenter", f"--net=/run/netns/{self.ns}", self.args.nettallyd, "--config", self.config, "--detach"],
              check=False, env=self.env, timeout=60)


# ---------------------------------------------------------------------------------------------
# The run


def udp_rcvbuf_errors(ns):
    lines = sb.nsrun(ns, ["cat", "/proc/net/snmp"]).splitlines()
    udp = [ln for ln in lines if ln.startswith("Udp:")]
    return dict(zip(udp[0].split()[1:], (int(v) for v in udp[1].split()[1:])))["RcvbufErrors"]


def collector_flows(nfdir):
    out = sb.sh(["nfdump", "-R", nfdir, "-o", "json"], timeout=300)
    rows = json.loads(out) if out.strip() else []
    got = {}
    for r in rows:
        src = r.get("src4_addr", "")
        m = re.match(r"198\.18\.(\d+)\.2$", src)
        if not m or r.get("dst4_addr") != SINK or int(r["proto"]) != 17:
            got.setdefault(("other", src), []).append(r)
            continue
        key = (int(m.group(1)), int(r["src_port"]), int(r["dst_port"]))
        got.setdefault(key, []).append((int(r["in_packets"]), int(r["in_bytes"])))
    return got


def sequence_failures(nfdir):
    info = sb.sh(["nfdump", "-I", "-R", nfdir], timeout=120)
    return sum(int(x) for x in re.findall(r"Sequence failures:\s*(\d+)", info))


def run(args):
    prefix = args.prefix or f"ntb-{os.getpid()}-f"
    workdir = tempfile.mkdtemp(prefix="nettally-fanin-")
    sb.add_cleanup(shutil.rmtree, workdir, True)
    col = create_topology(prefix, args.gateways)
    nfdir = os.path.join(workdir, "nfcapd")
    os.makedirs(nfdir)
    nfcapd = sb.spawn(["nfcapd", "-w", nfdir, "-b", COLLECTOR, "-p", str(NFCAPD_PORT), "-t", "3600"] +
                      (["-B", str(args.rcvbuf)] if args.rcvbuf else []), ns=col,
                      stdout=open(os.path.join(workdir, "nfcapd.log"), "w"), stderr=subprocess.STDOUT)
    time.sleep(1)
    if nfcapd.poll() is not None:
        raise RuntimeError("nfcapd exited at start")
    gws = [Gateway(args, prefix, i, workdir) for i in range(1, args.gateways + 1)]
    for g in gws:
        sb.add_cleanup(g.stop)
    t0 = time.monotonic()
    for g in gws:
        g.start()
    for g in gws:
        g.wait_ready()
    log(f"{len(gws)} daemons READY in {time.monotonic() - t0:.1f} s")
    drops0 = udp_rcvbuf_errors(col)

    # Every client sends at once, so the gateways' flows end (idle timeout) within the same second.
    gens = [sb.spawn([sys.executable, os.path.abspath(__file__), "gen", f"198.18.{g.i}.2", str(args.flows),
                      str(args.packets), "20000"], ns=cli_ns(prefix, g.i), stdout=open(
                          os.path.join(workdir, f"gen{g.i}.json"), "w")) for g in gws]
    for p in gens:
        if p.wait(timeout=600) != 0:
            raise RuntimeError(f"generator exited with {p.returncode}")
    sent_at = time.monotonic()
    want = {}
    for g in gws:
        with open(os.path.join(workdir, f"gen{g.i}.json")) as f:
            for sport, dport, packets, l3 in json.load(f):
                want[(g.i, sport, dport)] = (packets, l3)
    log(f"sent {len(want)} flows in {sent_at - t0:.1f} s since start; waiting for the export")

    # Until every daemon has exported at least its generated flows and the counts stay put.
    status, last, stable_since = {}, None, time.monotonic()
    last_record_at = sent_at
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        status = {g.i: g.export_status() for g in gws}
        now = sum(s.get("records", 0) for s in status.values())
        if now != last:
            last, stable_since = now, time.monotonic()
            last_record_at = stable_since
        elif now >= len(want) and time.monotonic() - stable_since >= 3:
            break
        time.sleep(0.5)
    drops = udp_rcvbuf_errors(col) - drops0
    sb.stop_process(nfcapd, signal.SIGTERM, 60)  # nfcapd writes its file on exit
    got = collector_flows(nfdir)
    seq = sequence_failures(nfdir)

    rows = []
    for g in gws:
        mine = {k: v for k, v in want.items() if k[0] == g.i}
        missing = sum(1 for k, v in mine.items() if got.get(k) != [v])
        extra = sum(1 for k in got if k[0] == g.i and k not in mine)
        received = sum(len(v) for k, v in got.items() if k[0] == g.i)
        st = status.get(g.i, {})
        rows.append({"gateway": g.i, "flows": len(mine), "exported": st.get("records", 0),
                     "messages": st.get("messages", 0), "send_errors": st.get("send_errors", 0),
                     "received": received, "missing": missing, "extra": extra})
    others = sum(len(v) for k, v in got.items() if k[0] == "other")
    total = {k: sum(r[k] for r in rows) for k in ("flows", "exported", "messages", "send_errors", "received",
                                                   "missing", "extra")}
    return {"gateways": args.gateways, "flows_per_gateway": args.flows, "packets_per_flow": args.packets,
            "rows": rows, "total": total, "other_records": others, "collector_rcvbuf_drops": drops,
            "nfcapd_sequence_failures": seq, "rcvbuf": args.rcvbuf,
            "last_record_after_s": round(last_record_at - sent_at, 1) if last is not None else None}


def print_result(res):
    print(f"\nFan-in: {res['gateways']} gateways x {res['flows_per_gateway']} UDP flows "
          f"({res['packets_per_flow']} packets each) -> one nfcapd over UDP")
    print(f"{'gateway':>8} {'flows':>7} {'exported':>9} {'messages':>9} {'errors':>7} {'received':>9} "
          f"{'missing':>8} {'extra':>6}")
    for r in res["rows"] + [dict(res["total"], gateway="all")]:
        print(f"{r['gateway']:>8} {r['flows']:>7} {r['exported']:>9} {r['messages']:>9} {r['send_errors']:>7} "
              f"{r['received']:>9} {r['missing']:>8} {r['extra']:>6}")
    print(f"collector UDP receive-buffer drops: {res['collector_rcvbuf_drops']}; nfcapd sequence failures: "
          f"{res['nfcapd_sequence_failures']}; records not from the generators: {res['other_records']}; "
          f"last record {res['last_record_after_s']} s after the last packet")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "gen":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nettallyd", required=True)
    ap.add_argument("--nettallyctl", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--flows", type=int, default=1000, help="flows per gateway")
    ap.add_argument("--packets", type=int, default=3, help="packets per flow")
    ap.add_argument("--rcvbuf", type=int, default=0, help="nfcapd -B (0: nfcapd's default)")
    ap.add_argument("--wait", type=float, default=120, help="seconds to wait for the export")
    ap.add_argument("--prefix", help="namespace and pin name prefix (default ntb-PID-f)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("needs root (BPF programs, network namespaces)")
        return 1
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, sb._fatal)
    try:
        res = run(args)
    finally:
        sb.run_cleanups()
    print_result(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
