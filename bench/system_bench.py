#!/usr/bin/env python3
"""nettally system benches: the real nettallyd (and pmacctd, softflowd) on veth between namespaces.

Run by bench/run.sh; standard library only; needs root. Prints its tables and writes JSON (--json).

Topology (every address from 198.18.0.0/15; IPv6 off so the links stay quiet; permanent ARP
entries, so nothing but the bench's own traffic crosses lan0):

     PREFIX-cli                 PREFIX-gw                       PREFIX-srv
   +--------------+   +-------------------------------+   +--------------+
   | eth0         |---| lan0  [tool under test]  wan0 |---|         eth0 |
   | 198.18.1.2   |   | 198.18.1.1        198.18.2.1  |   |   198.18.2.2 |
   | iperf3 -c    |   |       IPv4 forwarding         |   |   iperf3 -s  |
   +--------------+   +-------------------------------+   +--------------+

Sections:
  daemon      time to READY=1 (NOTIFY_SOCKET) and CPU/RSS at idle with no traffic; then the real daemon
              at N live flows (its nt_flows filled from outside by nt_bench_poll --fill-pid): VmRSS,
              VmHWM and CPU per poll.
  throughput  iperf3 TCP (offloads on) and small-packet UDP (-l 64, unlimited rate) client -> server,
              through the gateway, with each tool watching lan0 in turn: no accounting, nettally
              (lan0), nettally on both gateway links (lan0 + wan0), pmacctd (libpcap, memory plugin),
              softflowd. Throughput relative to no accounting; the tool's process CPU
              (/proc/PID/stat utime+stime); for nettally the in-kernel program time from bpf_stats
              in a separate run (stats cost two clock reads per program run, so the throughput runs
              keep them off).
  accuracy    during the throughput runs: what each tool counted on lan0 against the kernel's
              interface counters (ip -s -j link) and, for TCP, against the wire packets client and
              server sent (SNMP MIB: Tcp OutSegs + RetransSegs, Udp OutDatagrams, Icmp OutMsgs): with
              TSO one skb stands for many wire packets; nettally counts segments, libpcap sees skbs. nettally's counts come from
              nettallyctl --json interfaces over a private bus; pcap tools' from their own outputs.

Cleanup: every namespace, process and file is registered for removal at exit, on SIGTERM/SIGINT/SIGHUP,
and children get PR_SET_PDEATHSIG so they die with this script whatever happens.
"""

import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
_libc = ctypes.CDLL(None, use_errno=True)

SUBNET_CLI = "198.18.1"
SUBNET_SRV = "198.18.2"
MAC = {
    "cli": "02:00:c6:12:01:02",
    "lan0": "02:00:c6:12:01:01",
    "wan0": "02:00:c6:12:02:01",
    "srv": "02:00:c6:12:02:02",
}


def log(msg):
    print(f"[system_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Cleanup and processes

_cleanups = []


def add_cleanup(fn, *args):
    _cleanups.append((fn, args))


def run_cleanups():
    while _cleanups:
        fn, args = _cleanups.pop()
        try:
            fn(*args)
        except Exception as e:  # cleanup goes on whatever fails
            log(f"cleanup {getattr(fn, '__name__', fn)}: {e}")


def _fatal(signum, _frame):
    log(f"signal {signum}: cleaning up")
    run_cleanups()
    os._exit(128 + signum)


def sh(argv, check=True, timeout=60, env=None):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def spawn(argv, ns=None, env=None, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    """Popen in network namespace ns (setns before exec), dying with this script."""
    ns_fd = os.open(f"/run/netns/{ns}", os.O_RDONLY) if ns else -1

    def setup():
        _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        os.setpgrp()
        if ns_fd >= 0 and _libc.setns(ns_fd, CLONE_NEWNET) != 0:
            os._exit(127)

    try:
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                             preexec_fn=setup, pass_fds=(ns_fd,) if ns_fd >= 0 else (), text=True)
    finally:
        if ns_fd >= 0:
            os.close(ns_fd)
    add_cleanup(stop_process, p)
    return p


def stop_process(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is not None:
        return p.returncode
    try:
        p.send_signal(sig)
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait(timeout=5)


def nsrun(ns, argv, **kw):
    return sh(["ip", "netns", "exec", ns] + argv, **kw)


# ---------------------------------------------------------------------------------------------
# /proc readings


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    """utime + stime (seconds) summed over processes (/proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, ValueError):
            continue
    return total / CLK_TCK


def sched_ns(pid):
    """CPU time of every thread of pid in ns (/proc/PID/task/*/schedstat): finer than clock ticks."""
    total = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
    except OSError:
        pass
    return total


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def system_busy():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def bpf_prog_stats(pid):
    """(run_time_ns, run_cnt) summed over the BPF programs process pid holds (fdinfo)."""
    rt = cnt = 0
    d = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(d):
        try:
            with open(f"{d}/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        if "prog_id:" not in info:
            continue
        m1 = re.search(r"run_time_ns:\s+(\d+)", info)
        m2 = re.search(r"run_cnt:\s+(\d+)", info)
        if m1 and m2:
            rt += int(m1.group(1))
            cnt += int(m2.group(1))
    return rt, cnt


# ---------------------------------------------------------------------------------------------
# Topology


class Topology:
    def __init__(self, prefix):
        self.cli, self.gw, self.srv = f"{prefix}-cli", f"{prefix}-gw", f"{prefix}-srv"

    def create(self):
        for ns in (self.cli, self.gw, self.srv):
            sh(["ip", "netns", "add", ns])
            add_cleanup(lambda n=ns: sh(["ip", "netns", "del", n], check=False))
            nsrun(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        g, c, s = self.gw, self.cli, self.srv
        sh(["ip", "-n", g, "link", "add", "lan0", "address", MAC["lan0"], "type", "veth", "peer", "name", "eth0",
            "address", MAC["cli"], "netns", c])
        sh(["ip", "-n", g, "link", "add", "wan0", "address", MAC["wan0"], "type", "veth", "peer", "name", "eth0",
            "address", MAC["srv"], "netns", s])
        for ns, dev, addr in ((c, "eth0", f"{SUBNET_CLI}.2/24"), (g, "lan0", f"{SUBNET_CLI}.1/24"),
                              (g, "wan0", f"{SUBNET_SRV}.1/24"), (s, "eth0", f"{SUBNET_SRV}.2/24")):
            sh(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
        sh(["ip", "-n", c, "route", "add", "default", "via", f"{SUBNET_CLI}.1"])
        sh(["ip", "-n", s, "route", "add", "default", "via", f"{SUBNET_SRV}.1"])
        nsrun(g, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for ns, ip, mac, dev in ((c, f"{SUBNET_CLI}.1", MAC["lan0"], "eth0"), (g, f"{SUBNET_CLI}.2", MAC["cli"], "lan0"),
                                 (g, f"{SUBNET_SRV}.2", MAC["srv"], "wan0"), (s, f"{SUBNET_SRV}.1", MAC["wan0"], "eth0")):
            sh(["ip", "-n", ns, "neigh", "replace", ip, "lladdr", mac, "dev", dev, "nud", "permanent"])
        nsrun(c, ["ping", "-c", "1", "-W", "2", f"{SUBNET_SRV}.2"])

    def link_stats(self, dev="lan0"):
        j = json.loads(sh(["ip", "-n", self.gw, "-s", "-j", "link", "show", dev]))[0]["stats64"]
        return {"rx_packets": j["rx"]["packets"], "rx_bytes": j["rx"]["bytes"], "rx_dropped": j["rx"]["dropped"],
                "tx_packets": j["tx"]["packets"], "tx_bytes": j["tx"]["bytes"], "tx_dropped": j["tx"]["dropped"]}

    def packets_sent(self, ns):
        """Wire packets an end host sent, from its SNMP MIB: TCP segments (OutSegs leaves out
        retransmissions, RetransSegs has them; both count segments, not GSO skbs), UDP datagrams
        and ICMP messages."""
        mib = {}
        lines = nsrun(ns, ["cat", "/proc/net/snmp"]).splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            proto, names = head.split(":", 1)
            mib[proto] = dict(zip(names.split(), (int(v) for v in vals.split(":", 1)[1].split())))
        return (mib["Tcp"]["OutSegs"] + mib["Tcp"]["RetransSegs"] + mib["Udp"]["OutDatagrams"] +
                mib["Icmp"]["OutMsgs"])


# ---------------------------------------------------------------------------------------------
# Private system bus (Debian's system-bus defaults + the repo's shipped nettally policy)

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""


def start_bus(workdir, source_dir):
    sock = os.path.join(workdir, "bus.sock")
    conf = os.path.join(workdir, "bus.conf")
    with open(conf, "w") as f:
        f.write(BUS_CONFIG.format(socket=sock, policy=os.path.join(source_dir, "systemd",
                                                                   "org.nettally.Accounting1.conf")))
    p = spawn(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"], stdout=subprocess.PIPE,
              stderr=open(os.path.join(workdir, "bus.err"), "w"))
    line = p.stdout.readline().strip()
    if not line.startswith("unix:"):
        raise RuntimeError(f"dbus-daemon did not start: {line!r}")
    return line


# ---------------------------------------------------------------------------------------------
# Tools under test. Each: start() -> ready; read() -> counts dict; pids(); stop().


class NoTool:
    name = "none"

    def start(self):
        pass

    def read(self):
        return {}

    def pids(self):
        return []

    def stop(self):
        pass


class EmptyTc:
    """An empty TC program (bench/bpf/empty.bpf.c) on lan0's ingress and egress, loaded by tc(8): what
    the clsact hook and a BPF program call cost by themselves, the floor of any TC-based counter."""
    name = "empty TC program"

    def __init__(self, args, topo):
        self.topo = topo
        self.obj = os.path.join(args.build, "bpf", "nt_bench_empty.bpf.o")

    def start(self):
        if not os.path.exists(self.obj):
            raise RuntimeError(f"{self.obj} not built")
        nsrun(self.topo.gw, ["tc", "qdisc", "add", "dev", "lan0", "clsact"])
        for hook in ("ingress", "egress"):
            nsrun(self.topo.gw, ["tc", "filter", "add", "dev", "lan0", hook, "bpf", "direct-action",
                                 "obj", self.obj, "sec", "tc"])

    def read(self):
        return {}

    def pids(self):
        return []

    def stop(self):
        nsrun(self.topo.gw, ["tc", "qdisc", "del", "dev", "lan0", "clsact"], check=False)


def next_pow2(n):
    p = 1024
    while p < n:
        p <<= 1
    return p


class Nettally:
    """The real nettallyd, configured for lan0 (and wan0 with both=True)."""

    def __init__(self, args, topo, workdir, bus, both=False, max_entries=65536, tag="", keep_flows=False):
        self.args, self.topo, self.bus, self.both = args, topo, bus, both
        self.name = "nettally (lan0+wan0)" if both else "nettally"
        self.dir = tempfile.mkdtemp(prefix=f"nettally{tag}-", dir=workdir)
        self.config = os.path.join(self.dir, "nettally.yaml")
        # Pinned maps outlive the daemon: each instance gets its own pin directory, removed at stop.
        self.pin_dir = f"/sys/fs/bpf/{os.path.basename(workdir)}-{os.path.basename(self.dir)}" \
            if args.pin_dir_supported else None
        with open(self.config, "w") as f:
            f.write("interfaces:\n  - name: lan0\n    role: lan\n")
            if both:
                f.write("  - name: wan0\n    role: wan\n")
            f.write(f"poll_interval: 1s\nstate_dir: {self.dir}/state\nflows:\n  max_entries: {max_entries}\n")
            if keep_flows and args.idle_timeout_supported:
                # The synthetic flows of the N-flow runs are idle: keep them live while they are measured.
                f.write("  idle_timeout: 1h\n")
            if self.pin_dir:
                f.write(f"pin_dir: {self.pin_dir}\n")
        self.proc = None
        self.ready_ms = None
        if self.pin_dir:
            add_cleanup(shutil.rmtree, self.pin_dir, True)

    def start(self):
        self.sock_path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(0.2)
        add_cleanup(self.sock.close)
        env = dict(os.environ, NOTIFY_SOCKET=self.sock_path, DBUS_SYSTEM_BUS_ADDRESS=self.bus)
        self.errlog = os.path.join(self.dir, "nettallyd.log")
        self.polls = 0
        self.ready = threading.Event()
        t0 = time.monotonic()
        self.proc = spawn([self.args.nettallyd, "--config", self.config], ns=self.topo.gw, env=env,
                          stderr=open(self.errlog, "w"))
        # Drain the notify socket for the daemon's whole life: sd_notify blocks the daemon once
        # net.unix.max_dgram_qlen (10) messages wait unread.
        self.reader = threading.Thread(target=self._read_notifications, daemon=True)
        self.reader.start()
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None:
                raise RuntimeError(f"nettallyd exited with {self.proc.returncode}: {open(self.errlog).read()[-2000:]}")
            if time.monotonic() - t0 > 60:
                raise RuntimeError("nettallyd sent no READY=1 within 60 s")
        self.ready_ms = (self.ready_at - t0) * 1000

    def _read_notifications(self):
        """sd_notify messages: READY=1 and the poll count from STATUS=."""
        while True:
            try:
                lines = self.sock.recv(4096).decode(errors="replace").split("\n")
            except socket.timeout:
                continue
            except OSError:
                return  # socket closed: the daemon is gone
            for line in lines:
                m = re.match(r"STATUS=.*?(\d+) polls", line)
                if m:
                    self.polls = int(m.group(1))
                if line == "READY=1" and not self.ready.is_set():
                    self.ready_at = time.monotonic()
                    self.ready.set()

    def wait_polls(self, n, timeout):
        """Waits until the daemon has finished n more polls; returns False on timeout."""
        target = self.polls + n
        deadline = time.monotonic() + timeout
        while self.polls < target and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nettallyd exited with {self.proc.returncode}")
            time.sleep(0.05)
        return self.polls >= target

    def read(self):
        if not os.access(self.args.nettallyctl, os.X_OK):
            return self.read_maps()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus)
        r = subprocess.run([self.args.nettallyctl, "--json", "interfaces"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env, timeout=30)
        if r.returncode != 0:
            log(f"nettallyctl --json interfaces failed ({r.returncode}): {r.stderr.strip()}")
            return {}
        for i in json.loads(r.stdout)["interfaces"]:
            if i["name"] == "lan0":
                return {"packets": i["ingress"]["packets"] + i["egress"]["packets"],
                        "l2": i["ingress"]["l2"] + i["egress"]["l2"],
                        "l3": i["ingress"]["l3"] + i["egress"]["l3"], "source": "nettallyctl"}
        return {}

    def read_maps(self):
        """Without nettallyctl: the daemon's nt_ifaces map, read by nt_bench_poll --read-ifaces."""
        ifindex = json.loads(sh(["ip", "-n", self.topo.gw, "-j", "link", "show", "lan0"]))[0]["ifindex"]
        rows = json.loads(sh([self.args.nt_bench_poll, "--read-ifaces", str(self.proc.pid)]))
        out = {"packets": 0, "l2": 0, "l3": 0, "source": "nt_ifaces map"}
        for r in rows:
            if r["ifindex"] == ifindex:
                for k in ("packets", "l2", "l3"):
                    out[k] += r[k]
        return out

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def stop(self):
        if not self.proc:
            return
        t0 = time.monotonic()
        rc = stop_process(self.proc, timeout=60)
        self.stop_ms = (time.monotonic() - t0) * 1000
        if rc != 0:
            log(f"nettallyd exited with {rc} after {self.stop_ms:.0f} ms: {open(self.errlog).read()[-600:]}")
        self.proc = None
        self.sock.close()
        os.unlink(self.sock_path)
        if self.pin_dir:
            # SIGTERM leaves the programs attached and the maps pinned (counting goes on while the
            # daemon is down): --detach removes both, so the next tool runs on a clean lan0.
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus)
            p = spawn([self.args.nettallyd, "--config", self.config, "--detach"], ns=self.topo.gw, env=env,
                      stderr=open(os.path.join(self.dir, "detach.log"), "w"))
            if p.wait(timeout=60) != 0:
                log(f"nettallyd --detach exited with {p.returncode}: {open(os.path.join(self.dir, 'detach.log')).read()}")
            shutil.rmtree(self.pin_dir, ignore_errors=True)


def config_accepts(args, workdir, extra):
    """Whether this nettallyd's config accepts the keys in extra (they came with later versions)."""
    path = os.path.join(workdir, "probe.yaml")
    with open(path, "w") as f:
        f.write(f"interfaces:\n  - name: lan0\n    role: lan\nstate_dir: {workdir}/probe\n{extra}")
    r = subprocess.run([args.nettallyd, "--config", path, "--check-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    return r.returncode == 0


def tc_filters(topo, dev):
    """What is attached to dev's clsact hooks (to prove a tool left nothing behind)."""
    return nsrun(topo.gw, ["tc", "filter", "show", "dev", dev, "ingress"], check=False) + \
        nsrun(topo.gw, ["tc", "filter", "show", "dev", dev, "egress"], check=False)


def clean_gateway(topo, before):
    """Removes whatever a tool left on the gateway's clsact hooks (saying so when filters were
    left), and the clsact qdisc itself: nettallyd leaves it when it stops, and an empty clsact
    still costs every packet a pass through the TC hook, which "none" must not pay."""
    for dev in ("lan0", "wan0"):
        left = tc_filters(topo, dev).strip()
        if left:
            log(f"warning: filters left on {dev} before {before}, removing them: {left}")
        nsrun(topo.gw, ["tc", "qdisc", "del", "dev", dev, "clsact"], check=False)


class Pmacctd:
    name = "pmacctd"

    def __init__(self, topo, workdir):
        self.topo = topo
        self.dir = tempfile.mkdtemp(prefix="pmacctd-", dir=workdir)
        self.pipe = os.path.join(self.dir, "pmacct.pipe")
        self.logfile = os.path.join(self.dir, "pmacctd.log")
        self.config = os.path.join(self.dir, "pmacctd.conf")
        with open(self.config, "w") as f:
            f.write(f"daemonize: false\npidfile: {self.dir}/pmacctd.pid\nlogfile: {self.logfile}\n"
                    f"pcap_interface: lan0\naggregate: src_host,dst_host,src_port,dst_port,proto\n"
                    f"plugins: memory\nimt_path: {self.pipe}\n")
        self.proc = None

    def start(self):
        self.proc = spawn(["pmacctd", "-f", self.config], ns=self.topo.gw)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            logged = open(self.logfile).read() if os.path.exists(self.logfile) else ""
            if os.path.exists(self.pipe) and "link type" in logged:
                time.sleep(0.5)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"pmacctd exited with {self.proc.returncode}: {logged[-1000:]}")
            time.sleep(0.1)
        raise RuntimeError("pmacctd did not start")

    def pcap_stats(self):
        """received/dropped as libpcap reports them (pmacctd logs them on SIGUSR1)."""
        before = open(self.logfile).read().count("received_packets=")
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = open(self.logfile).read()
            m = re.findall(r"received_packets=(\d+) dropped_packets=(\d+)", text)
            if len(m) > before:
                return int(m[-1][0]), int(m[-1][1])
            time.sleep(0.05)
        return None, None

    def read(self):
        out = sh(["pmacct", "-p", self.pipe, "-s", "-O", "json"], check=False, timeout=30)
        packets = l3 = 0
        for line in out.splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            packets += j.get("packets", 0)
            l3 += j.get("bytes", 0)
        rcv, drop = self.pcap_stats()
        return {"packets": packets, "l3": l3, "pcap_received": rcv, "pcap_dropped": drop}

    def pids(self):
        return descendants(self.proc.pid) if self.proc else []

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None


class Softflowd:
    name = "softflowd"

    def __init__(self, topo, workdir):
        self.topo = topo
        self.dir = tempfile.mkdtemp(prefix="softflowd-", dir=workdir)
        self.ctl = os.path.join(self.dir, "softflowd.ctl")
        self.proc = None

    def start(self):
        # Exports NetFlow v9 to a port nobody listens on, on the gateway namespace's own loopback.
        self.proc = spawn(["softflowd", "-d", "-i", "lan0", "-n", "127.0.0.1:9995", "-v", "9", "-c", self.ctl,
                           "-p", os.path.join(self.dir, "softflowd.pid")], ns=self.topo.gw,
                          stderr=open(os.path.join(self.dir, "softflowd.log"), "w"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if os.path.exists(self.ctl):
                time.sleep(0.5)
                return
            time.sleep(0.1)
        raise RuntimeError("softflowd did not start")

    def read(self):
        st = sh(["softflowctl", "-c", self.ctl, "statistics"], check=False, timeout=30)

        def num(label):
            m = re.search(re.escape(label) + r":\s+(\d+)", st)
            return int(m.group(1)) if m else None

        flows = sh(["softflowctl", "-c", self.ctl, "dump-flows"], check=False, timeout=30)
        l3 = sum(int(x) for x in re.findall(r"octets[<>]:(\d+)", flows))
        return {"packets": num("Packets processed"), "l3": l3, "pcap_received": num("Packets received by libpcap"),
                "pcap_dropped": num("Packets dropped by libpcap"),
                "if_dropped": num("Packets dropped by interface"), "expired_flows": num("Flows expired")}

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None


# ---------------------------------------------------------------------------------------------
# Daemon section


def library_floor(binary):
    """VmRSS of sleep(1) with the binary's shared libraries (its DT_NEEDED) preloaded: what mapping
    and relocating them costs any process, before the program does anything. None if unknown."""
    p = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=False)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)
    if p.returncode != 0 or not needed:
        return None
    out = {}
    for name, preload in (("sleep", None), ("sleep + libraries", " ".join(needed))):
        env = dict(os.environ)
        if preload:
            env["LD_PRELOAD"] = preload
        proc = subprocess.Popen(["sleep", "3"], env=env)
        try:
            time.sleep(1)
            out[name] = {f: status_kib(proc.pid, f) for f in ("VmRSS", "RssAnon", "RssFile")}
        finally:
            proc.kill()
            proc.wait()
    out["libraries"] = len(needed)
    return out


def daemon_section(args, topo, workdir, bus):
    res = {"ready_ms": [], "at_flows": []}
    log("daemon: READY time and idle cost")
    for i in range(args.ready_runs):
        d = Nettally(args, topo, workdir, bus, tag=f"r{i}")
        d.start()
        res["ready_ms"].append(d.ready_ms)
        if i == args.ready_runs - 1:
            time.sleep(2)
            c0, s0, t0 = cpu_seconds(d.pids()), sched_ns(d.proc.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            c1, s1, t1 = cpu_seconds(d.pids()), sched_ns(d.proc.pid), time.monotonic()
            res["idle"] = {"seconds": t1 - t0, "cpu_s": c1 - c0, "cpu_ns_schedstat": s1 - s0,
                           "cpu_pct": (s1 - s0) / 1e9 / (t1 - t0) * 100,
                           "rss_kib": status_kib(d.proc.pid, "VmRSS"), "hwm_kib": status_kib(d.proc.pid, "VmHWM"),
                           "anon_kib": status_kib(d.proc.pid, "RssAnon"),
                           "file_kib": status_kib(d.proc.pid, "RssFile"),
                           "library_floor": library_floor(args.nettallyd), "max_entries": 65536}
        d.stop()
    for n in args.daemon_flows:
        clean_gateway(topo, f"the daemon at {n} flows")
        me = next_pow2(n)
        log(f"daemon: {n} live flows (flows.max_entries {me})")
        d = Nettally(args, topo, workdir, bus, max_entries=me, tag=f"f{n}", keep_flows=True)
        d.start()
        rss_ready = status_kib(d.proc.pid, "VmRSS")
        sh([args.nt_bench_poll, "--fill-pid", str(d.proc.pid), "--flows", str(n)], timeout=300)
        # The poll running during the fill saw part of the map: wait for two whole ones.
        d.wait_polls(2, 120)
        s0, p0, t0 = sched_ns(d.proc.pid), d.polls, time.monotonic()
        d.wait_polls(args.daemon_polls, 120)
        s1, p1, t1 = sched_ns(d.proc.pid), d.polls, time.monotonic()
        polls = max(1, p1 - p0)
        res["at_flows"].append({"flows": n, "max_entries": me, "ready_ms": d.ready_ms, "rss_ready_kib": rss_ready,
                                "rss_kib": status_kib(d.proc.pid, "VmRSS"),
                                "hwm_kib": status_kib(d.proc.pid, "VmHWM"), "polls": polls,
                                "cpu_ms_per_poll": (s1 - s0) / 1e6 / polls,
                                "cpu_pct": (s1 - s0) / 1e9 / (t1 - t0) * 100})
        d.stop()
        res["at_flows"][-1]["stop_ms"] = d.stop_ms
    return res


def print_daemon(res):
    r = res["ready_ms"]
    print("\nnettallyd start-up and idle (real daemon, private bus, lan0 attached, no traffic)")
    print(f"  time to READY=1, flows.max_entries 65536: median {statistics.median(r):.0f} ms "
          f"(min {min(r):.0f}, max {max(r):.0f}, {len(r)} starts)")
    i = res.get("idle")
    if i:
        print(f"  idle {i['seconds']:.0f} s: CPU {i['cpu_ns_schedstat'] / 1e6:.1f} ms ({i['cpu_pct']:.3f}% of one CPU; "
              f"utime+stime {i['cpu_s']:.2f} s); VmRSS {i['rss_kib'] / 1024:.1f} MiB, VmHWM {i['hwm_kib'] / 1024:.1f} MiB")
        if i.get("anon_kib") is not None:
            print(f"  idle VmRSS = RssAnon {i['anon_kib'] / 1024:.1f} MiB + RssFile {i['file_kib'] / 1024:.1f} MiB "
                  f"(file: the binary and shared libraries' pages, shared with every process mapping them)")
        fl = i.get("library_floor")
        if fl:
            a, b = fl["sleep"], fl["sleep + libraries"]
            print(f"  floor: sleep(1) alone VmRSS {a['VmRSS'] / 1024:.1f} MiB; with nettallyd's {fl['libraries']} "
                  f"shared libraries preloaded {b['VmRSS'] / 1024:.1f} MiB (RssFile {b['RssFile'] / 1024:.1f} MiB)")
    if res["at_flows"]:
        print(f"  {'live flows':>10} {'max_entries':>11} {'READY':>8} {'VmRSS':>10} {'VmHWM':>10} {'CPU/poll':>10} "
              f"{'per flow':>9} {'SIGTERM->exit':>13}")
        for a in res["at_flows"]:
            print(f"  {a['flows']:>10} {a['max_entries']:>11} {a['ready_ms']:>6.0f}ms {a['rss_kib'] / 1024:>6.1f} MiB "
                  f"{a['hwm_kib'] / 1024:>6.1f} MiB {a['cpu_ms_per_poll']:>7.1f} ms "
                  f"{a['cpu_ms_per_poll'] * 1000 / a['flows']:>6.2f} us {a.get('stop_ms', 0):>10.0f} ms")


# ---------------------------------------------------------------------------------------------
# Throughput and accuracy section


def iperf3(args, topo, test, port):
    server = spawn(["iperf3", "-s", "-1", "-B", f"{SUBNET_SRV}.2", "-p", str(port)], ns=topo.srv)
    # Wait until the server listens (its namespace's TCP table).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if f":{port:04X} 00000000:0000 0A" in nsrun(topo.srv, ["cat", "/proc/net/tcp"]):
            break
        time.sleep(0.05)
    argv = ["iperf3", "-c", f"{SUBNET_SRV}.2", "-p", str(port), "-t", str(args.seconds), "-J"]
    if test == "udp64":
        argv += ["-u", "-l", "64", "-b", "0"]
    out = nsrun(topo.cli, argv, timeout=args.seconds + 30)
    stop_process(server, timeout=5)
    j = json.loads(out)
    if test == "tcp":
        s = j["end"]["sum_received"]
        return {"bps": s["bits_per_second"], "retransmits": j["end"]["sum_sent"].get("retransmits")}
    s = j["end"]["sum_received"]
    received = s["packets"] - s["lost_packets"]
    return {"pps": received / s["seconds"], "sent_pps": j["end"]["sum_sent"]["packets"] / s["seconds"],
            "lost_pct": s["lost_percent"], "bps": s["bits_per_second"]}


def delta(a, b):
    return {k: (b[k] - a[k]) if isinstance(b.get(k), int) and isinstance(a.get(k), int) else None for k in b}


def one_run(args, topo, tool, test, port, bpf_stats=False, perf_data=None):
    tool_pids = tool.pids()
    # nettally read through nettallyctl shows its last poll (1 s): let one poll pass after the last run.
    reads_polls = isinstance(tool, Nettally) and os.access(args.nettallyctl, os.X_OK)
    time.sleep(1.2 if reads_polls else 0.3)
    t0 = tool.read()
    k0, o0 = topo.link_stats(), (topo.packets_sent(topo.cli), topo.packets_sent(topo.srv))
    c0, b0, s0 = cpu_seconds(tool_pids), bpf_prog_stats(tool_pids[0]) if bpf_stats else (0, 0), system_busy()
    recorder = None
    if perf_data:
        recorder = spawn(["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", "999", "-o", perf_data],
                         stderr=open(perf_data + ".log", "w"))
        time.sleep(0.5)
    w0 = time.monotonic()
    perf = iperf3(args, topo, test, port)
    w1 = time.monotonic()
    if recorder:
        stop_process(recorder, signal.SIGINT, timeout=60)
    # nettally (nettallyctl): two polls; pcap tools drain their buffers.
    time.sleep(args.settle if reads_polls or not isinstance(tool, (Nettally, NoTool)) else 0.3)
    k1, o1 = topo.link_stats(), (topo.packets_sent(topo.cli), topo.packets_sent(topo.srv))
    c1, b1, s1 = cpu_seconds(tool_pids), bpf_prog_stats(tool_pids[0]) if bpf_stats else (0, 0), system_busy()
    t1 = tool.read()
    k = delta(k0, k1)
    kernel_pkts = k["rx_packets"] + k["tx_packets"]
    kernel_l2 = k["rx_bytes"] + k["tx_bytes"]
    r = {"tool": tool.name, "test": test, "perf": perf, "traffic_s": w1 - w0,
         "cpu_s": c1 - c0, "system_busy_pct": (s1[0] - s0[0]) / max(1, s1[1] - s0[1]) * 100,
         "kernel": {"packets": kernel_pkts, "l2": kernel_l2, "l3": kernel_l2 - 14 * kernel_pkts,
                    "rx_dropped": k["rx_dropped"], "tx_dropped": k["tx_dropped"]},
         "counted": delta(t0, t1) if t1 else {}}
    if t1.get("source"):
        r["counted"]["source"] = t1["source"]
    if test == "tcp":
        # Wire packets: everything client and server send crosses lan0 (they talk only to each other).
        wire = (o1[0] - o0[0]) + (o1[1] - o0[1])
        r["kernel"]["wire_packets"] = wire
        # Each extra segment of a GSO skb repeats IPv4 (20) + TCP with timestamps (32) headers.
        r["kernel"]["wire_l3"] = r["kernel"]["l3"] + (wire - kernel_pkts) * 52
    else:
        r["kernel"]["wire_packets"] = kernel_pkts
        r["kernel"]["wire_l3"] = r["kernel"]["l3"]
    if bpf_stats:
        r["bpf"] = {"run_time_ns": b1[0] - b0[0], "run_cnt": b1[1] - b0[1]}
    return r


def set_bpf_stats(value):
    sh(["sysctl", "-qw", f"kernel.bpf_stats_enabled={value}"])


def throughput_section(args, topo, workdir, bus, errors):
    runs = []
    port = 5201 + (os.getpid() % 1000)
    factories = {
        "none": lambda: NoTool(),
        "empty-tc": lambda: EmptyTc(args, topo),
        "nettally": lambda: Nettally(args, topo, workdir, bus, tag="t"),
        "nettally-gw": lambda: Nettally(args, topo, workdir, bus, both=True, tag="tg"),
        "pmacctd": lambda: Pmacctd(topo, workdir),
        "softflowd": lambda: Softflowd(topo, workdir),
    }
    for rep in range(args.reps):
        order = args.tools[rep % len(args.tools):] + args.tools[:rep % len(args.tools)]
        for name in order:
            clean_gateway(topo, name)
            tool = factories[name]()
            try:
                tool.start()
                for test in args.tests:
                    log(f"throughput: rep {rep + 1}/{args.reps}, {tool.name}, {test}")
                    r = one_run(args, topo, tool, test, port)
                    r["rep"] = rep
                    runs.append(r)
            except Exception as e:  # one tool failing does not stop the others
                log(f"throughput: {name} failed: {e}")
                errors.append(f"throughput, {name}: {e}")
            finally:
                tool.stop()
    # In-kernel program time: bpf_stats on, one run per test, not used for throughput.
    if "nettally" in args.tools:
        clean_gateway(topo, "nettally with bpf_stats")
        saved = read_sysctl("kernel.bpf_stats_enabled")
        add_cleanup(set_bpf_stats, saved)
        set_bpf_stats(1)
        tool = Nettally(args, topo, workdir, bus, tag="s")
        try:
            tool.start()
            for test in args.tests:
                log(f"throughput: nettally with bpf_stats, {test}")
                perf_data = args.perf_data if test == "udp64" and args.perf_data else None
                r = one_run(args, topo, tool, test, port, bpf_stats=True, perf_data=perf_data)
                r["tool"] = "nettally+bpf_stats"
                r["rep"] = 0
                runs.append(r)
        except Exception as e:
            log(f"throughput: nettally with bpf_stats failed: {e}")
            errors.append(f"throughput, nettally with bpf_stats: {e}")
        finally:
            tool.stop()
            set_bpf_stats(saved)
    return runs


def read_sysctl(name):
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


def summarize(runs, tools, tests):
    """Per tool and test: medians over reps, relative to no accounting."""
    out = {}
    for test in tests:
        metric = "bps" if test == "tcp" else "pps"
        base = [r["perf"][metric] for r in runs if r["tool"] == "none" and r["test"] == test]
        base_med = statistics.median(base) if base else None
        names = []
        for r in runs:
            if r["test"] == test and r["tool"] not in names:
                names.append(r["tool"])
        for name in names:
            rs = [r for r in runs if r["tool"] == name and r["test"] == test]
            vals = [r["perf"][metric] for r in rs]
            s = {"runs": len(rs), "metric": metric, "median": statistics.median(vals), "min": min(vals),
                 "max": max(vals), "cpu_s": statistics.median([r["cpu_s"] for r in rs]),
                 "traffic_s": statistics.median([r["traffic_s"] for r in rs]),
                 "system_busy_pct": statistics.median([r["system_busy_pct"] for r in rs])}
            s["relative"] = s["median"] / base_med if base_med else None
            acc = []
            for r in rs:
                c, k = r["counted"], r["kernel"]
                if c.get("packets") is None:
                    continue
                a = {"packets": c["packets"], "wire_packets": k["wire_packets"], "kernel_packets": k["packets"],
                     "pct_wire": 100 * c["packets"] / k["wire_packets"] if k["wire_packets"] else None,
                     "pct_kernel": 100 * c["packets"] / k["packets"] if k["packets"] else None,
                     "l3": c.get("l3"), "wire_l3": k["wire_l3"],
                     "pct_l3": 100 * c["l3"] / k["wire_l3"] if c.get("l3") is not None and k["wire_l3"] else None,
                     "pcap_received": c.get("pcap_received"), "pcap_dropped": c.get("pcap_dropped"),
                     "rx_dropped": k["rx_dropped"]}
                acc.append(a)
            s["accuracy"] = acc
            bpf = [r["bpf"] for r in rs if "bpf" in r]
            if bpf:
                b = bpf[0]
                s["bpf_run_time_s"] = b["run_time_ns"] / 1e9
                s["bpf_ns_per_run"] = b["run_time_ns"] / b["run_cnt"] if b["run_cnt"] else None
                s["bpf_runs"] = b["run_cnt"]
            out[f"{name}|{test}"] = s
    return out


def print_throughput(summary, tests):
    print("\nThroughput over veth, client -> gateway (tool on lan0) -> server; median of the reps")
    print(f"  {'test':<6} {'tool':<22} {'throughput':>14} {'vs none':>8} {'runs vs none':>14} {'tool CPU (% of one)':>20}")
    for key, s in summary.items():
        name, test = key.split("|")
        if name == "nettally+bpf_stats":
            continue
        val = f"{s['median'] / 1e9:.2f} Gbit/s" if s["metric"] == "bps" else f"{s['median'] / 1e3:.0f} kpps"
        rel = f"{s['relative'] * 100:.1f}%" if s["relative"] else "-"
        spread = f"{s['min'] / s['median'] * s['relative'] * 100:.0f}..{s['max'] / s['median'] * s['relative'] * 100:.0f}%" \
            if s["relative"] else "-"
        cpu = f"{s['cpu_s']:.2f} s ({s['cpu_s'] / s['traffic_s'] * 100:.0f}%)"
        print(f"  {test:<6} {name:<22} {val:>14} {rel:>8} {spread:>14} {cpu:>20}")
    for key, s in summary.items():
        if key.startswith("nettally+bpf_stats") and s.get("bpf_runs"):
            test = key.split("|")[1]
            print(f"  {test:<6} nettally in-kernel (bpf_stats run): {s['bpf_runs']} program runs, "
                  f"{s['bpf_ns_per_run']:.0f} ns/run, {s['bpf_run_time_s']:.3f} s in BPF over "
                  f"{s['traffic_s']:.1f} s of traffic ({s['bpf_run_time_s'] / s['traffic_s'] * 100:.1f}% of one CPU)")
    print("\nAccuracy on lan0 during the runs: counted / wire packets (worst run); pcap drops as the tool reports them")
    print(f"  {'test':<6} {'tool':<22} {'counted':>12} {'wire':>12} {'kernel skbs':>12} {'packets':>9} {'l3 bytes':>9} "
          f"{'pcap drop':>10}")
    for key, s in summary.items():
        name, test = key.split("|")
        if not s["accuracy"] or name == "nettally+bpf_stats":
            continue
        worst = min(s["accuracy"], key=lambda a: a["pct_wire"] if a["pct_wire"] is not None else 1e9)
        drop = worst["pcap_dropped"]
        l3 = f"{worst['pct_l3']:.2f}%" if worst["pct_l3"] is not None else "-"
        print(f"  {test:<6} {name:<22} {worst['packets']:>12} {worst['wire_packets']:>12} {worst['kernel_packets']:>12} "
              f"{worst['pct_wire']:>8.2f}% {l3:>9} {drop if drop is not None else '-':>10}")


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="build directory (nettallyd, nettallyctl, nt_bench_poll)")
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--sections", default="daemon,throughput")
    ap.add_argument("--tools", default="none,empty-tc,nettally,nettally-gw,pmacctd,softflowd")
    ap.add_argument("--tests", default="tcp,udp64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4, help="iperf3 run length")
    ap.add_argument("--settle", type=float, default=2.2)
    ap.add_argument("--ready-runs", type=int, default=5)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--daemon-polls", type=int, default=3, help="polls timed per N in the daemon section")
    ap.add_argument("--daemon-flows", default="10000,100000,1000000")
    ap.add_argument("--prefix", default=f"ntb-{os.getpid()}")
    ap.add_argument("--perf-data", help="perf record -a into this file during nettally's bpf_stats udp64 run")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.tools = args.tools.split(",")
    args.tests = args.tests.split(",")
    args.daemon_flows = [int(x) for x in args.daemon_flows.split(",") if x]
    args.nettallyd = os.path.join(args.build, "daemon", "nettallyd")
    args.nettallyctl = os.path.join(args.build, "ctl", "nettallyctl")
    args.nt_bench_poll = os.path.join(args.build, "bench", "nt_bench_poll")
    sections = args.sections.split(",")

    if os.geteuid() != 0:
        sys.exit("system_bench: needs root (namespaces, BPF)")
    missing = [t for t in ["ip", "iperf3", "dbus-daemon"] if not shutil.which(t)]
    if "pmacctd" in args.tools and not shutil.which("pmacctd"):
        missing.append("pmacctd")
    if "softflowd" in args.tools and not shutil.which("softflowd"):
        missing.append("softflowd")
    if missing:
        sys.exit(f"system_bench: missing tools: {', '.join(missing)} (bash scripts/deps.sh)")

    atexit.register(run_cleanups)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _fatal)

    workdir = tempfile.mkdtemp(prefix=f"{args.prefix}-")
    os.chmod(workdir, 0o755)
    add_cleanup(shutil.rmtree, workdir, True)
    topo = Topology(args.prefix)
    topo.create()
    bus = start_bus(workdir, args.source)
    args.pin_dir_supported = config_accepts(args, workdir, f"pin_dir: /sys/fs/bpf/{os.path.basename(workdir)}-x\n")
    args.idle_timeout_supported = config_accepts(args, workdir, "flows:\n  idle_timeout: 1h\n")
    if not os.access(args.nettallyctl, os.X_OK):
        log(f"{args.nettallyctl} missing: nettally's counts come from its maps (nt_bench_poll --read-ifaces)")

    out = {"errors": []}
    if "daemon" in sections:
        try:
            out["daemon"] = daemon_section(args, topo, workdir, bus)
            print_daemon(out["daemon"])
        except Exception as e:
            log(f"daemon section failed: {e}")
            out["errors"].append(f"daemon section: {e}")
        sys.stdout.flush()
    if "throughput" in sections:
        runs = throughput_section(args, topo, workdir, bus, out["errors"])
        out["throughput_runs"] = runs
        out["throughput"] = summarize(runs, args.tools, args.tests)
        out["throughput_config"] = {"seconds": args.seconds, "reps": args.reps, "tools": args.tools}
        print_throughput(out["throughput"], args.tests)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    if out["errors"]:
        print("\nsystem_bench: could not measure everything:\n  " + "\n  ".join(out["errors"]))
        sys.exit(1)


if __name__ == "__main__":
    main()
