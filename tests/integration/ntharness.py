"""nettally integration-test harness: namespaces, traffic, captures, a private bus, the daemon.

Shared by tests/integration/test_*.py (run by ctest with /usr/bin/python3; standard library only).
Everything a test creates carries a unique name (ntt-<pid>-<rand>-...) and is torn down in
tearDown/finally, at exit and on SIGTERM/SIGINT/SIGHUP; child processes get PR_SET_PDEATHSIG so even a
SIGKILLed test leaves no process behind, and sweep_stale() removes namespaces and temp dirs left by
runs whose pid is gone (never anyone else's).

Topology (veths are created inside the namespaces; nothing is named in the root namespace):

      ntt-P-R-cli                   ntt-P-R-gw                         ntt-P-R-srv
   +---------------+      +------------------------------+      +---------------+
   | eth0          |------| lan0   [nettallyd]      wan0 |------|          eth0 |
   | 198.18.1.2/24 |      | 198.18.1.1/24  198.18.2.1/24 |      | 198.18.2.2/24 |
   | fd00:1::2/64  |      | fd00:1::1/64   fd00:2::1/64  |      | fd00:2::2/64  |
   | 02:00:c6:12:01:02    | 02:..:01:01    02:..:02:01   |      | 02:00:c6:12:02:02
   +---------------+      +------------------------------+      +---------------+
     default via gw         IPv4 + IPv6 forwarding on            default via gw

   Optional (Topology(cli2=True)): a second LAN client on a second lan interface of the gateway:
      ntt-P-R-cli2 eth0 198.18.3.2/24 fd00:3::2/64 02:00:c6:12:03:02
        ------ gw lan1 198.18.3.1/24 fd00:3::1/64 02:00:c6:12:03:01

The network is made quiet so that a capture and nettally's counters see exactly the same packets:
offloads off on every veth end (one skb = one wire packet), IPv6 without link-local addresses
(addr_gen_mode=1) and with `nodad` addresses, no RA/RS, permanent ARP and NDP entries for every peer
(no neighbour discovery ever), and MLD's unsolicited reports sent at once on link-up, so after
SETTLE_S nothing is sent unless a test sends it. Measurements then use an exact window: capture
running -> 2 polls -> baseline -> traffic -> 2 polls -> final reading -> capture stopped, and
compare deltas.

Ground truth (analyse) comes from tshark's dissector fields only, per DESIGN.md "Layers":
l2 = frame.len; l3 = ip.len or 40 + ipv6.plen; l4 = l3 - IP headers (ip.hdr_len; 40 + the extension
headers' len_oct), cross-checked against the transport fields (tcp.hdr_len + tcp.len, udp.length) when
the packet is not a fragment; payload = l4 - the transport header (tcp.hdr_len, UDP/ICMP 8), = l4 in
later fragments and other protocols. Direction on an interface is told by the Ethernet source: egress
frames carry the interface's MAC (the veths are point to point). Flows: 5-tuple + interface +
direction; ICMP dport = type * 256 + code; later fragments take the ports of their datagram's first
fragment (as nettally's fragment table does), or 0 when it was not seen. Hosts (lan only): IP
packets, ingress by source MAC + IP ("sent"), unicast egress by destination MAC + IP ("received").
The capture itself is dumpcap (tshark's capture engine; it starts in milliseconds), read by tshark.

Run as a script, the module is also the traffic generator used inside the namespaces:
  ntharness.py serve PORT ADDR... | udp | udpfor | udpmany | tcp | icmp   (see traffic_main)
"""

import atexit
import ctypes
import ipaddress
import json
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("NT_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD_DIR = os.environ.get("NT_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
NETNS_DIR = "/run/netns"
BPFFS_DIR = "/sys/fs/bpf"
DEFAULT_PIN_DIR = "/sys/fs/bpf/nettally"  # an installed nettallyd's; tests must never use it
PREFIX = "ntt"
SKIP_RC = 77
FIGURES = ("packets", "l2", "l3", "l4", "payload")
BUCKETS = ("non_ip", "unparsable", "flow_overflow")
DIRECTIONS = ("ingress", "egress")
SETTLE_S = 1.0
# NT_TIME_SCALE (default 1) multiplies the timeouts of wait_until and run: under emulation (tests/vm runs
# this harness in qemu TCG, where loading the BPF object takes tens of seconds) the waits are
# the same, only slower. Figures and windows are not scaled.
TIME_SCALE = float(os.environ.get("NT_TIME_SCALE") or 1)
CAPTURE_SETTLE_S = 0.6
CAPTURE_BUFFER_MIB = 64
BUS_NAME = "org.nettally.Accounting1"
BUS_PATH = "/org/nettally/Accounting1"
BUS_IFACE = "org.nettally.Accounting1"
NOBODY = 65534


def nettallyd_path():
    return os.path.join(BUILD_DIR, "daemon", "nettallyd")


def nettallyctl_path():
    return os.path.join(BUILD_DIR, "ctl", "nettallyctl")


def log(msg):
    print(f"[ntharness {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Skips. An EnvSkip means "this machine cannot run the test" (not root, kernel feature missing);
# run_tests() exits 77 when every test was skipped that way, so ctest reports it as skipped.

ENV_SKIP_PREFIX = "[env] "


class EnvSkip(unittest.SkipTest):
    def __init__(self, reason):
        super().__init__(ENV_SKIP_PREFIX + reason)


def require_root():
    if os.geteuid() != 0:
        raise EnvSkip("needs root (network namespaces, BPF)")


def in_ci():
    """True under CI (CI=true, as CI services set it): there every tool the tests use must be there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_tools(*names):
    """Skips the test when a program it runs is not installed, and fails it under CI, where
    scripts/deps.sh must have installed everything (a missing tool is a packaging bug there, and a
    skip would hide the tests that need it)."""
    missing = [n for n in names if not shutil.which(n, path="/usr/sbin:/usr/bin:/sbin:/bin")]
    if missing:
        if in_ci():
            raise AssertionError("missing tools: " + ", ".join(missing)
                                 + " (CI: scripts/deps.sh must install them; outside CI this is a skip)")
        raise EnvSkip("missing tools: " + ", ".join(missing))


def require_kernel():
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        raise EnvSkip("kernel without BTF (/sys/kernel/btf/vmlinux)")
    with open("/proc/mounts") as f:
        bpffs = any(len(x.split()) > 2 and x.split()[2] == "bpf" for x in f)
    if not bpffs:
        raise EnvSkip("bpffs not mounted")


def require_binaries(ctl=True):
    paths = [nettallyd_path()] + ([nettallyctl_path()] if ctl else [])
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    if missing:
        # The binaries are built with the tests; a missing one is a build failure, not a skip.
        raise AssertionError("not built: " + ", ".join(missing) + f" (NT_BUILD_DIR={BUILD_DIR})")


def require_all(ctl=True):
    require_root()
    require_tools("ip", "tc", "ethtool", "nsenter", "sysctl", "tshark", "dumpcap", "dbus-daemon", "busctl",
                  "dbus-send", "setpriv")
    require_kernel()
    require_binaries(ctl)


# ---------------------------------------------------------------------------------------------
# Cleanup registry and child processes.

_cleanups = {}
_cleanup_lock = threading.RLock()
_cleanup_seq = [0]


def add_cleanup(fn, *args):
    """Registers fn(*args) to run at exit or on a fatal signal; returns a token for drop_cleanup."""
    with _cleanup_lock:
        _cleanup_seq[0] += 1
        _cleanups[_cleanup_seq[0]] = (fn, args)
        return _cleanup_seq[0]


def drop_cleanup(token):
    with _cleanup_lock:
        _cleanups.pop(token, None)


def run_cleanups():
    with _cleanup_lock:
        items = sorted(_cleanups.items(), reverse=True)  # last registered first
        _cleanups.clear()
    for _, (fn, args) in items:
        try:
            fn(*args)
        except Exception as e:  # cleanup must go on
            log(f"cleanup {getattr(fn, '__name__', fn)} failed: {e}")


def _on_fatal_signal(signum, _frame):
    log(f"signal {signum}: cleaning up")
    run_cleanups()
    os._exit(128 + signum)


_installed = [False]


def install_handlers():
    if _installed[0]:
        return
    _installed[0] = True
    atexit.register(run_cleanups)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_fatal_signal)


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup(sig=signal.SIGTERM):
    def setup():
        _libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        os.setpgrp()  # own process group: a ^C at the terminal goes to the harness only
    return setup


def spawn(argv, env=None, stdin=subprocess.DEVNULL, stdout=None, stderr=None, deathsig=signal.SIGTERM,
          text=True):
    """Popen with PR_SET_PDEATHSIG, so the child dies with the harness whatever happens."""
    return subprocess.Popen(argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                            preexec_fn=_child_setup(deathsig), text=text)


def without_library(soname):
    """argv to put before a command so that it runs with the shared library `soname` unloadable:
    in a mount namespace of its own, the file the dynamic loader finds for it (ldconfig's cache) is
    covered by /dev/null, so dlopen() fails as where the library is not installed. The host's file
    is untouched."""
    cache = run(["ldconfig", "-p"]).stdout
    paths = sorted({os.path.realpath(line.split("=>")[-1].strip()) for line in cache.splitlines()
                    if line.split() and line.split()[0] == soname})
    if not paths:
        raise AssertionError(f"{soname} is not in ldconfig's cache: nothing to hide")
    script = "set -e; " + "; ".join(f"mount --bind /dev/null {shlex.quote(p)}" for p in paths) + '; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def run(argv, check=True, timeout=60, input=None, env=None):
    """Runs a command to completion; on failure raises with the command, rc and stderr."""
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout * TIME_SCALE,
                       env=env, preexec_fn=_child_setup(signal.SIGKILL))
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed (rc={p.returncode}): {' '.join(argv)}\n"
                           f"stdout: {p.stdout.strip()}\nstderr: {p.stderr.strip()}")
    return p


def stop_process(p, sig=signal.SIGTERM, timeout=10):
    """Signals p (by pid) and waits; SIGKILL after timeout. Returns the exit code."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    for f in (p.stdin, p.stdout, p.stderr):
        if f:
            f.close()
    return p.returncode


def wait_until(pred, timeout, what, interval=0.05):
    """Waits until pred() returns something true and returns it; fails naming `what` after
    `timeout` seconds. Tests wait on state with it instead of sleeping for an event."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # the polling period of the wait: nothing here can be waited on otherwise


# ---------------------------------------------------------------------------------------------
# Leftovers from killed runs.

def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids_in_netns(ns_file):
    st = os.stat(ns_file)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if (s.st_ino, s.st_dev) == (st.st_ino, st.st_dev):
            pids.append(int(d))
    return pids


def sweep_stale():
    """Removes ntt-<pid>-* namespaces, /tmp dirs and bpffs pin dirs whose creating pid is gone, and
    the processes still living in such namespaces (they were started by that dead run)."""
    pat = re.compile(rf"^{PREFIX}-(\d+)-")
    if os.path.isdir(NETNS_DIR):
        for name in sorted(os.listdir(NETNS_DIR)):
            m = pat.match(name)
            if not m or _pid_alive(int(m.group(1))):
                continue
            path = os.path.join(NETNS_DIR, name)
            try:
                for pid in _pids_in_netns(path):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            except OSError:
                pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            log(f"removed stale namespace {name}")
    for base in (tempfile.gettempdir(), BPFFS_DIR):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            m = pat.match(name)
            if m and not _pid_alive(int(m.group(1))):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def unique_tag():
    return f"{PREFIX}-{os.getpid()}-{random.randrange(16**6):06x}"


def make_workdir(tag):
    d = tempfile.mkdtemp(prefix=tag + "-", dir=tempfile.gettempdir())
    os.chmod(d, 0o755)  # the unprivileged busctl must reach the bus socket inside
    add_cleanup(shutil.rmtree, d, True)
    return d


def open_env(owner, cli2=False, bus=True, add_cleanup=None):
    """What every namespace test starts with: sets owner.tag, owner.workdir, owner.topo (the
    uniquely named topology, up) and, with bus, owner.bus (a private dbus-daemon, started).
    `add_cleanup` (a TestCase's addCleanup) gets their teardown; without it the caller's
    tearDownClass does it (the registry above removes them at exit in any case)."""
    owner.tag = unique_tag()
    owner.workdir = make_workdir(owner.tag)
    owner.topo = Topology(owner.tag, cli2=cli2).up()
    if add_cleanup:
        add_cleanup(owner.topo.down)
    if bus:
        owner.bus = PrivateBus(owner.workdir).start()
        if add_cleanup:
            add_cleanup(owner.bus.stop)


# ---------------------------------------------------------------------------------------------
# Topology.

class Topology:
    MAC = {"cli": "02:00:c6:12:01:02", "lan0": "02:00:c6:12:01:01",
           "wan0": "02:00:c6:12:02:01", "srv": "02:00:c6:12:02:02",
           "cli2": "02:00:c6:12:03:02", "lan1": "02:00:c6:12:03:01"}
    CLI4, CLI6 = "198.18.1.2", "fd00:1::2"
    LAN4, LAN6 = "198.18.1.1", "fd00:1::1"
    WAN4, WAN6 = "198.18.2.1", "fd00:2::1"
    SRV4, SRV6 = "198.18.2.2", "fd00:2::2"
    CLI2_4, CLI2_6 = "198.18.3.2", "fd00:3::2"
    LAN1_4, LAN1_6 = "198.18.3.1", "fd00:3::1"

    def __init__(self, tag=None, cli2=False):
        """cli2: also a second LAN client namespace (self.cli2) behind the gateway's lan1."""
        self.tag = tag or unique_tag()
        self.cli, self.gw, self.srv = (f"{self.tag}-{n}" for n in ("cli", "gw", "srv"))
        self.cli2 = f"{self.tag}-cli2" if cli2 else None
        self._token = None

    def namespaces(self):
        return (self.cli, self.gw, self.srv) + ((self.cli2,) if self.cli2 else ())

    def ns_file(self, ns):
        return os.path.join(NETNS_DIR, ns)

    def exec_argv(self, ns, argv):
        """argv run in ns through `ip netns exec` (fine for anything that needs no bpffs/cgroupfs)."""
        return ["ip", "netns", "exec", ns] + list(argv)

    def nsenter_argv(self, ns, argv):
        """argv run in ns's network namespace only (keeps the mounts: /sys/fs/bpf, cgroups)."""
        return ["nsenter", f"--net={self.ns_file(ns)}"] + list(argv)

    def _batch(self, ns, lines):
        """Runs ip commands as one `ip -b` batch (in ns, or the root ns for `netns` commands)."""
        argv = ["ip"] + (["-n", ns] if ns else []) + ["-b", "-"]
        run(argv, input="\n".join(lines) + "\n")

    def up(self):
        self._token = add_cleanup(self.down)
        nss = self.namespaces()
        self._batch(None, [f"netns add {ns}" for ns in nss])
        for ns in nss:
            # Quiet IPv6: no link-local address, no DAD, no RA/RS; MLD reports all at once on up.
            knobs = []
            for scope in ("all", "default"):
                p = f"net.ipv6.conf.{scope}."
                knobs += [p + "accept_ra=0", p + "router_solicitations=0", p + "accept_dad=0",
                          p + "dad_transmits=0", p + "addr_gen_mode=1", p + "ndisc_notify=0",
                          p + "mldv2_unsolicited_report_interval=1",
                          p + "mldv1_unsolicited_report_interval=1",
                          f"net.ipv4.conf.{scope}.arp_notify=0"]
            if ns == self.gw:
                knobs += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
            # /proc/sys/net is the opener's namespace: nsenter is enough, no /sys remount needed.
            run(self.nsenter_argv(ns, ["sysctl", "-q", "-w"] + knobs))
        M = self.MAC
        pairs = [("lan0", "cli", self.cli), ("wan0", "srv", self.srv)]
        if self.cli2:
            pairs.append(("lan1", "cli2", self.cli2))
        self._batch(self.gw, [
            f"link add {dev} address {M[dev]} type veth peer name eth0 address {M[peer]} netns {ns}"
            for dev, peer, ns in pairs])
        ends = {self.cli: ["eth0"], self.gw: ["lan0", "wan0"], self.srv: ["eth0"]}
        if self.cli2:
            ends[self.cli2] = ["eth0"]
            ends[self.gw].append("lan1")
        for ns, devs in ends.items():
            for dev in devs:
                # No offloads: the stack hands every wire packet to TC and to the capture as one skb.
                run(self.nsenter_argv(ns, ["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off",
                                           "tx", "off", "rx", "off", "sg", "off"]))
        setup = {
            self.cli: [("eth0", self.CLI4, self.CLI6, [self.LAN4, self.LAN6], M["lan0"])],
            self.gw: [("lan0", self.LAN4, self.LAN6, [self.CLI4, self.CLI6], M["cli"]),
                      ("wan0", self.WAN4, self.WAN6, [self.SRV4, self.SRV6], M["srv"])],
            self.srv: [("eth0", self.SRV4, self.SRV6, [self.WAN4, self.WAN6], M["wan0"])],
        }
        routes = {self.cli: (self.LAN4, self.LAN6), self.srv: (self.WAN4, self.WAN6)}
        if self.cli2:
            setup[self.cli2] = [("eth0", self.CLI2_4, self.CLI2_6, [self.LAN1_4, self.LAN1_6], M["lan1"])]
            setup[self.gw].append(("lan1", self.LAN1_4, self.LAN1_6, [self.CLI2_4, self.CLI2_6], M["cli2"]))
            routes[self.cli2] = (self.LAN1_4, self.LAN1_6)
        for ns, devs in setup.items():
            lines = ["link set lo up"]
            for dev, a4, a6, peers, peer_mac in devs:
                lines += [f"addr add {a4}/24 dev {dev}", f"addr add {a6}/64 dev {dev} nodad"]
                lines += [f"neigh replace {ip} lladdr {peer_mac} dev {dev} nud permanent" for ip in peers]
                lines += [f"link set {dev} up"]
            if ns in routes:
                lines += [f"route add default via {routes[ns][0]}",
                          f"route add default via {routes[ns][1]}"]
            self._batch(ns, lines)
        self.settled_at = time.monotonic() + SETTLE_S
        return self

    def settle(self):
        """Waits until link-up chatter (MLD reports) is over."""
        delay = self.settled_at - time.monotonic()
        if delay > 0:
            # Time, not an event: the quiet network is defined as SETTLE_S after link-up (the MLD
            # reports go out at once then); "no packet for a while" cannot be observed sooner.
            time.sleep(delay)

    def ifindex(self, ns, dev):
        out = run(["ip", "-n", ns, "-j", "link", "show", "dev", dev]).stdout
        return json.loads(out)[0]["ifindex"]

    def tc_filters(self, dev):
        """The TC filters on dev in the gw (ingress and egress), as text; '' if none or no clsact."""
        out = []
        for d in ("ingress", "egress"):
            p = run(["tc", "-n", self.gw, "filter", "show", "dev", dev, d], check=False)
            out.append(p.stdout.strip())
        return "\n".join(x for x in out if x)

    def down(self):
        if self._token is not None:
            drop_cleanup(self._token)
            self._token = None
        for ns in self.namespaces():
            path = self.ns_file(ns)
            if not os.path.exists(path):
                continue
            try:
                for pid in _pids_in_netns(path):
                    try:
                        os.kill(pid, signal.SIGKILL)  # our own children left in the namespace
                    except ProcessLookupError:
                        pass
            except OSError:
                pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# ---------------------------------------------------------------------------------------------
# Traffic. The generator is this file run as a script inside a namespace.

class TrafficServer:
    """UDP echo + TCP (upload, then download) server in the server namespace (or in ns)."""

    def __init__(self, topo, port, addrs, ns=None):
        self.topo, self.port, self.addrs = topo, port, addrs
        self.ns = ns or topo.srv
        self.proc = None
        self._token = None

    def start(self):
        argv = self.topo.exec_argv(self.ns, [PYTHON, os.path.abspath(__file__), "serve",
                                                   str(self.port)] + list(self.addrs))
        self.proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._token = add_cleanup(self.stop)
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"traffic server did not start: {line!r} {err}")
        return self

    def stop(self):
        if self._token:
            drop_cleanup(self._token)
            self._token = None
        if self.proc:
            stop_process(self.proc, signal.SIGKILL, 5)


def client_run(topo, *args, timeout=60):
    """Runs a traffic client in the client namespace; returns its JSON report."""
    p = run(topo.exec_argv(topo.cli, [PYTHON, os.path.abspath(__file__)] + [str(a) for a in args]),
            timeout=timeout)
    return json.loads(p.stdout)


def _icmp_checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _serve(port, addrs):
    socks = []
    for a in addrs:
        fam = socket.AF_INET6 if ":" in a else socket.AF_INET
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.bind((a, port))
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((a, port))
        t.listen(16)
        socks += [u, t]

    def udp_loop(u):
        while True:
            data, peer = u.recvfrom(65535)
            u.sendto(data, peer)

    def tcp_conn(c):
        with c:
            hdr = b""
            while len(hdr) < 16:
                chunk = c.recv(16 - len(hdr))
                if not chunk:
                    return
                hdr += chunk
            up, down = struct.unpack("!QQ", hdr)
            got = 0
            while got < up:
                chunk = c.recv(min(65536, up - got))
                if not chunk:
                    return
                got += len(chunk)
            c.sendall(b"d" * down)
            c.shutdown(socket.SHUT_WR)
            while c.recv(65536):
                pass

    def tcp_loop(t):
        while True:
            c, _ = t.accept()
            threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

    for s in socks:
        fn = udp_loop if s.type == socket.SOCK_DGRAM else tcp_loop
        threading.Thread(target=fn, args=(s,), daemon=True).start()
    print("READY", flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])


def _udp_client(dst, port, sizes, count, sport=0):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if sport:
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.settimeout(2)
    s.connect((dst, port))
    sent = echoed = 0
    for size in sizes:
        for i in range(count):
            s.send(bytes([i & 0xFF]) * size)
            sent += 1
            try:
                if len(s.recv(65535)) == size:
                    echoed += 1
            except socket.timeout:
                pass
    return {"sent": sent, "echoed": echoed, "sport": s.getsockname()[1]}


def _udp_for(dst, port, size, seconds, sport, gap):
    """Echoed datagrams, one at a time, `gap` s apart, for `seconds`: steady traffic of one flow."""
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.settimeout(2)
    s.connect((dst, port))
    sent = echoed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.send(b"s" * size)
        sent += 1
        try:
            if len(s.recv(65535)) == size:
                echoed += 1
        except socket.timeout:
            pass
        if gap:
            time.sleep(gap)  # pacing: steady traffic at the requested rate
    return {"sent": sent, "echoed": echoed, "sport": sport}


def _udp_many(dst, port, nflows, size):
    """nflows one-datagram exchanges, each from a fresh socket (a new source port: new flows)."""
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    echoed = 0
    sports = []
    for _ in range(nflows):
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.connect((dst, port))
            s.send(b"m" * size)
            sports.append(s.getsockname()[1])
            try:
                if len(s.recv(65535)) == size:
                    echoed += 1
            except socket.timeout:
                pass
    return {"sent": nflows, "echoed": echoed, "sports": sports}


def _tcp_client(dst, port, up, down):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.create_connection((dst, port), timeout=20) as s:
        s.sendall(struct.pack("!QQ", up, down))
        s.sendall(b"u" * up)
        got = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        sport = s.getsockname()[1]
    return {"up": up, "down": got, "sport": sport, "family": int(fam)}


def _icmp_client(dst, sizes, count):
    v6 = ":" in dst
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(2)
    ident = os.getpid() & 0xFFFF
    sent = replies = 0
    seq = 0
    for size in sizes:
        for _ in range(count):
            seq += 1
            payload = bytes((seq + k) & 0xFF for k in range(size))
            if v6:  # the kernel fills in the ICMPv6 checksum
                pkt = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload
            else:
                hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
                pkt = struct.pack("!BBHHH", 8, 0, _icmp_checksum(hdr + payload), ident, seq) + payload
            s.sendto(pkt, (dst, 0))
            sent += 1
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                try:
                    data = s.recv(65535)
                except socket.timeout:
                    break
                if not v6:
                    data = data[(data[0] & 0x0F) * 4:]
                want = 129 if v6 else 0
                if len(data) >= 8 and data[0] == want and struct.unpack("!HH", data[4:8]) == (ident, seq):
                    replies += 1
                    break
    return {"sent": sent, "replies": replies}


def traffic_main(argv):
    cmd = argv[0]
    if cmd == "serve":
        _serve(int(argv[1]), argv[2:])
        return
    if cmd == "udp":  # udp DST PORT SIZES COUNT [SPORT]
        r = _udp_client(argv[1], int(argv[2]), [int(x) for x in argv[3].split(",")], int(argv[4]),
                        int(argv[5]) if len(argv) > 5 else 0)
    elif cmd == "udpfor":  # udpfor DST PORT SIZE SECONDS SPORT GAP
        r = _udp_for(argv[1], int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5]), float(argv[6]))
    elif cmd == "udpmany":  # udpmany DST PORT NFLOWS SIZE
        r = _udp_many(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif cmd == "tcp":  # tcp DST PORT UP DOWN
        r = _tcp_client(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif cmd == "icmp":  # icmp DST SIZES COUNT
        r = _icmp_client(argv[1], [int(x) for x in argv[2].split(",")], int(argv[3]))
    else:
        raise SystemExit(f"unknown traffic command {cmd}")
    print(json.dumps(r))


# ---------------------------------------------------------------------------------------------
# Counters.

def zero():
    return {f: 0 for f in FIGURES}


def cadd(a, b):
    return {f: a[f] + b[f] for f in FIGURES}


def csub(a, b):
    return {f: a[f] - b[f] for f in FIGURES}


def cget(obj):
    """The five figures of a counter object (a nettallyctl C, or a flow with the keys inline)."""
    return {f: int(obj[f]) for f in FIGURES}


def norm_ip(s):
    return str(ipaddress.ip_address(s))


def fmt_c(c):
    return "/".join(f"{f}={c[f]}" for f in FIGURES)


# ---------------------------------------------------------------------------------------------
# Capture: tshark inside the gateway namespace, one file per interface.

_TSHARK_FIELDS = [
    "frame.protocols", "frame.len", "eth.src", "eth.dst",
    "ip.len", "ip.hdr_len", "ip.proto", "ip.src", "ip.dst", "ip.frag_offset", "ip.flags.mf", "ip.id",
    "ipv6.plen", "ipv6.nxt", "ipv6.src", "ipv6.dst",
    "ipv6.hopopts.len_oct", "ipv6.dstopts.len_oct", "ipv6.routing.len_oct", "ipv6.fraghdr.offset",
    "ipv6.fraghdr.nxt", "ipv6.fraghdr.ident",
    "tcp.srcport", "tcp.dstport", "tcp.hdr_len", "tcp.len", "tcp.flags",
    "udp.srcport", "udp.dstport", "udp.length",
    "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
]
_PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
_PROTO_NAME = {v: k for k, v in _PROTO_NUM.items()}
_V6_EXT = {"ipv6.hopopts": "ipv6.hopopts.len_oct", "ipv6.dstopts": "ipv6.dstopts.len_oct",
           "ipv6.routing": "ipv6.routing.len_oct", "ipv6.fraghdr": None}


def proto_name(n):
    return _PROTO_NAME.get(int(n), str(int(n)))


class Packet:
    """One frame's figures and identity as the capture's dissectors see it."""
    __slots__ = ("iface", "direction", "c", "ip", "proto", "src", "sport", "dst", "dport",
                 "smac", "dmac", "desc", "tcp_flags", "frag", "frag_id")

    def flow_key(self):
        return (self.iface, self.direction, self.proto, self.src, self.sport, self.dst, self.dport)


def parse_frame(fields, iface, iface_mac):
    """Turns one tshark -T fields line (occurrence=a, aggregator '|') into a Packet."""
    v = dict(zip(_TSHARK_FIELDS, fields))
    allv = {k: (x.split("|") if x else []) for k, x in v.items()}
    first = {k: (x[0] if x else "") for k, x in allv.items()}
    p = Packet()
    p.iface = iface
    p.smac, p.dmac = first["eth.src"].lower(), first["eth.dst"].lower()
    p.direction = "egress" if p.smac == iface_mac else "ingress"
    protos = v["frame.protocols"].split(":")
    p.desc = v["frame.protocols"]
    c = zero()
    c["packets"] = 1
    c["l2"] = int(first["frame.len"])
    p.c = c
    p.ip = False
    p.proto = None
    p.src = p.dst = None
    p.sport = p.dport = 0
    p.tcp_flags = 0
    p.frag, p.frag_id = 0, None  # frag: 0 not a fragment, 1 first fragment, 2 later fragment
    net = next((i for i, x in enumerate(protos) if x in ("ip", "ipv6")), None)
    if net is None:
        return p
    p.ip = True
    if protos[net] == "ip":
        l3 = int(first["ip.len"])
        iphl = int(first["ip.hdr_len"])
        p.proto = int(first["ip.proto"])
        p.src, p.dst = norm_ip(first["ip.src"]), norm_ip(first["ip.dst"])
        first_frag = int(first["ip.frag_offset"] or 0) == 0
        fragment = not first_frag or first["ip.flags.mf"] in ("1", "True")
        if fragment:
            p.frag_id = int(first["ip.id"], 0)
        k = net + 1
    else:
        l3 = 40 + int(first["ipv6.plen"])
        iphl = 40
        p.proto = int(first["ipv6.nxt"])
        p.src, p.dst = norm_ip(first["ipv6.src"]), norm_ip(first["ipv6.dst"])
        first_frag = True
        fragment = False
        k = net + 1
        seen = {}
        while k < len(protos) and protos[k] in _V6_EXT:
            ext = protos[k]
            idx = seen.get(ext, 0)
            seen[ext] = idx + 1
            if ext == "ipv6.fraghdr":
                iphl += 8
                fragment = True
                p.frag_id = int(allv["ipv6.fraghdr.ident"][idx], 0)
                first_frag = int(allv["ipv6.fraghdr.offset"][idx]) == 0
                p.proto = int(allv["ipv6.fraghdr.nxt"][idx])
            else:
                iphl += int(allv[_V6_EXT[ext]][idx])
                p.proto = None  # the chain continues; the transport name below decides
            k += 1
        if p.proto is None:
            nxt = protos[k] if k < len(protos) else ""
            if nxt not in _PROTO_NUM:
                raise ValueError(f"capture: cannot tell the transport of {v['frame.protocols']}")
            p.proto = _PROTO_NUM[nxt]
    c["l3"] = l3
    c["l4"] = l4 = l3 - iphl
    transport = protos[k] if k < len(protos) else ""
    want = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}.get(p.proto)
    if first_frag and want and transport != want:
        raise ValueError(f"capture: {want} not dissected in {v['frame.protocols']}")
    # The transport's own length must agree with the IP header's, except in a fragment, where
    # it describes the whole datagram while l4 is this fragment's share.
    l4_transport = l4
    if not first_frag:
        c["payload"] = l4  # no transport header here, no ports
    elif p.proto == 6:
        thl = int(first["tcp.hdr_len"])
        c["payload"] = l4 - thl
        l4_transport = thl + int(first["tcp.len"])
        p.sport, p.dport = int(first["tcp.srcport"]), int(first["tcp.dstport"])
        p.tcp_flags = int(first["tcp.flags"], 16) & 0xFF  # the header's flags byte (CWR .. FIN)
    elif p.proto == 17:
        c["payload"] = l4 - 8
        l4_transport = int(first["udp.length"])
        p.sport, p.dport = int(first["udp.srcport"]), int(first["udp.dstport"])
    elif p.proto in (1, 58):
        t, cd = ("icmp.type", "icmp.code") if p.proto == 1 else ("icmpv6.type", "icmpv6.code")
        c["payload"] = l4 - 8
        p.dport = int(first[t]) * 256 + int(first[cd])
    else:
        c["payload"] = l4
    if fragment:
        p.frag = 1 if first_frag else 2
    if not fragment and l4_transport != l4:
        raise ValueError(f"capture: transport length {l4_transport} != l3 - IP headers {l4} "
                         f"in {v['frame.protocols']}")
    p.proto = proto_name(p.proto)
    return p


def attribute_fragments(packets):
    """Later fragments carry no ports; nettally gives them the ports its first fragment had (same
    interface, direction, addresses, protocol and IP id; bpf/nettally_abi.h nt_frags). A later
    fragment whose first fragment was not seen keeps ports 0. packets: one interface, in order."""
    first = {}
    for p in packets:
        if not p.frag:
            continue
        key = (p.iface, p.direction, p.proto, p.src, p.dst, p.frag_id)
        if p.frag == 1:
            first[key] = (p.sport, p.dport)
        elif key in first:
            p.sport, p.dport = first[key]


class CaptureResult:
    """Per interface/direction, per flow and per host sums of the captured packets."""

    def __init__(self, packets):
        self.packets = packets
        self.ifaces = {}   # (iface, dir) -> C
        self.buckets = {}  # (iface, dir, bucket) -> C
        self.flows = {}    # flow_key -> C
        self.flow_flags = {}  # flow_key -> OR of the TCP flags bytes
        self.hosts = {}    # (iface, mac, ip) -> {"sent": C, "received": C}
        for p in packets:
            k = (p.iface, p.direction)
            self.ifaces[k] = cadd(self.ifaces.get(k, zero()), p.c)
            if not p.ip:
                b = (p.iface, p.direction, "non_ip")
                self.buckets[b] = cadd(self.buckets.get(b, zero()), p.c)
                continue
            fk = p.flow_key()
            self.flows[fk] = cadd(self.flows.get(fk, zero()), p.c)
            self.flow_flags[fk] = self.flow_flags.get(fk, 0) | p.tcp_flags

    def add_hosts(self, lan_iface):
        """Host sums as DESIGN.md defines them, for a lan-role interface."""
        for p in self.packets:
            if p.iface != lan_iface or not p.ip:
                continue
            if p.direction == "ingress":
                key, side = (p.iface, p.smac, p.src), "sent"
            else:
                if int(p.dmac.split(":")[0], 16) & 1:
                    continue  # multicast/broadcast: no single host received it
                key, side = (p.iface, p.dmac, p.dst), "received"
            h = self.hosts.setdefault(key, {"sent": zero(), "received": zero()})
            h[side] = cadd(h[side], p.c)

    def iface(self, iface, direction):
        return self.ifaces.get((iface, direction), zero())


class Capture:
    def __init__(self, topo, iface, workdir, ns=None):
        self.topo, self.iface = topo, iface
        self.ns = ns or topo.gw
        self.mac = Topology.MAC[iface]
        self.path = os.path.join(workdir, f"{iface}-{random.randrange(1 << 30)}.pcapng")
        self.errpath = self.path + ".stderr"
        self.proc = None
        self._token = None
        self.summary = ""

    def start(self):
        with open(self.errpath, "w") as err:
            # dumpcap is tshark's capture engine (`tshark -w` runs it); used directly it starts in
            # milliseconds instead of seconds. tshark reads the file afterwards. A 64 MiB capture
            # buffer (-B) keeps bursts (GRO/GSO tests, a loaded CI machine) from being dropped: a
            # capture that drops is no ground truth and fails the test.
            self.proc = spawn(self.topo.exec_argv(self.ns, ["dumpcap", "-q", "-B", str(CAPTURE_BUFFER_MIB),
                                                            "-i", self.iface, "-w", self.path]),
                              stdout=subprocess.DEVNULL, stderr=err)
        self._token = add_cleanup(self.stop)
        return self

    def wait_running(self, timeout=15):
        # dumpcap opens (activates) the interface before it creates the file and prints "File:":
        # packets from here on are in the capture.
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"dumpcap on {self.iface} exited: {self._stderr()}")
            return "File:" in self._stderr()
        wait_until(ready, timeout, f"dumpcap on {self.iface} to start")

    def _stderr(self):
        try:
            with open(self.errpath) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self._token:
            drop_cleanup(self._token)
            self._token = None
        if self.proc and self.proc.poll() is None:
            # dumpcap reads the kernel's packet ring block by block (250 ms read timeout); frames
            # in a block not yet handed over when SIGINT comes are lost without being counted
            # as drops. Give the last block time to be read (time: dumpcap reports no progress).
            time.sleep(CAPTURE_SETTLE_S)
            stop_process(self.proc, signal.SIGINT, 15)
        self.summary = self._stderr()

    def dropped(self):
        # "Packets received/dropped on interface 'lan0': 9/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0)"
        m = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", self.summary)
        if not m:
            raise AssertionError(f"dumpcap on {self.iface} printed no statistics: {self.summary}")
        return int(m.group(2))

    def read(self):
        """The captured frames as Packets (after stop())."""
        if self.dropped():
            raise AssertionError(f"capture on {self.iface} dropped packets: {self.summary}")
        argv = ["tshark", "-r", self.path, "-n", "-T", "fields", "-E", "separator=/t",
                "-E", "occurrence=a", "-E", "aggregator=|",
                "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
                "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
                "-o", "tcp.calculate_timestamps:FALSE"]
        for f in _TSHARK_FIELDS:
            argv += ["-e", f]
        out = run(argv, timeout=120).stdout
        pkts = []
        for line in out.splitlines():
            if line.strip():
                pkts.append(parse_frame(line.split("\t"), self.iface, self.mac))
        attribute_fragments(pkts)
        m = re.search(r"Packets captured: (\d+)", self.summary)
        if not m or int(m.group(1)) != len(pkts):
            raise AssertionError(f"capture on {self.iface}: dumpcap said {m and m.group(1)} packets, "
                                 f"file has {len(pkts)}")
        return pkts


def analyse(captures, lan_ifaces=("lan0",)):
    pkts = []
    for c in captures:
        pkts += c.read()
    r = CaptureResult(pkts)
    for lan in lan_ifaces:
        r.add_hosts(lan)
    return r


# ---------------------------------------------------------------------------------------------
# A private system-like bus with the shipped policy.

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Test bus: Debian's system.conf defaults, plus nettally's shipped policy. -->
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
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <!-- as in system.conf: root may become a monitor (SignalMonitor) -->
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{policy}</include>
{extra}
</busconfig>
"""


class PrivateBus:
    """dbus-daemon with Debian's system-bus defaults and the repo's shipped nettally policy.
    extra_policy: more <policy> XML after it (to loosen it in a test of the daemon's own checks)."""

    def __init__(self, workdir, extra_policy=""):
        self.extra_policy = extra_policy
        self.dir = os.path.join(workdir, f"bus-{random.randrange(1 << 30)}")
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "system_bus_socket")
        self.config = os.path.join(self.dir, "bus.conf")
        self.policy = os.path.join(SOURCE_DIR, "systemd", "org.nettally.Accounting1.conf")
        self.address = None
        self.proc = None
        self._token = None
        self.errpath = os.path.join(self.dir, "dbus-daemon.stderr")

    def start(self):
        with open(self.config, "w") as f:
            f.write(_BUS_CONFIG.format(socket=self.socket, policy=self.policy, extra=self.extra_policy))
        with open(self.errpath, "w") as err:
            self.proc = spawn(["dbus-daemon", f"--config-file={self.config}", "--nofork",
                               "--print-address=1"], stdout=subprocess.PIPE, stderr=err)
        self._token = add_cleanup(self.stop)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("unix:"):
            stop_process(self.proc)
            raise RuntimeError(f"dbus-daemon did not start: {line!r} {open(self.errpath).read()}")
        self.address = line
        os.chmod(self.socket, 0o777)
        return self

    def stop(self):
        if self._token:
            drop_cleanup(self._token)
            self._token = None
        if self.proc:
            stop_process(self.proc)

    def env(self):
        e = dict(os.environ)
        e["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        return e

    # -- busctl ------------------------------------------------------------------------------

    def busctl(self, *args, user=None, timeout=30):
        argv = ["busctl", f"--address={self.address}"] + [str(a) for a in args]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
        return run(argv, check=False, timeout=timeout, env=self.env())

    def call(self, method, sig="", *args, user=None):
        """Calls a method of the nettally object; returns (CompletedProcess, decoded JSON or None)."""
        a = ["--json=short", "call", BUS_NAME, BUS_PATH, BUS_IFACE, method]
        if sig:
            a += [sig] + list(args)
        p = self.busctl(*a, user=user)
        data = json.loads(p.stdout)["data"] if p.returncode == 0 and p.stdout.strip() else None
        return p, data

    def call_ok(self, method, sig="", *args, user=None):
        p, data = self.call(method, sig, *args, user=user)
        if p.returncode != 0:
            raise AssertionError(f"busctl call {method} {sig} {args} failed (rc={p.returncode}): "
                                 f"{p.stderr.strip()}")
        return data

    def has_owner(self, name=BUS_NAME):
        p = self.busctl("--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "NameHasOwner", "s", name)
        return p.returncode == 0 and json.loads(p.stdout)["data"][0]

    def status(self):
        """GetStatus as a plain dict."""
        d = self.call_ok("GetStatus")[0]
        return {k: v["data"] for k, v in d.items()}

    def dbus_send(self, method, *args, user=None):
        """Calls a nettally method with dbus-send, which (unlike busctl) prints the D-Bus error
        *name*. args are dbus-send literals ("string:l2", "uint32:10"). Returns
        (rc, error_name or None, output)."""
        argv = ["dbus-send", f"--bus={self.address}", "--print-reply", "--reply-timeout=20000",
                f"--dest={BUS_NAME}", BUS_PATH, f"{BUS_IFACE}.{method}"] + list(args)
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
        p = run(argv, check=False, timeout=30, env=self.env())
        m = re.search(r"^Error ([A-Za-z0-9_.]+): ?(.*)$", p.stderr, re.M)
        return p.returncode, (m.group(1) if m else None), (p.stderr.strip() or p.stdout.strip())


class SignalMonitor:
    """A separate client on the bus that records every signal nettallyd emits: `busctl monitor`
    (root: a bus monitor sees all traffic), one JSON message per line, read by a thread. Each
    recorded signal is a dict: interface, member, path, signature, data (decoded payload), at
    (bus timestamp, seconds since the epoch, float)."""

    def __init__(self, bus):
        self.bus = bus
        self.proc = None
        self._token = None
        self._lock = threading.Lock()
        self._signals = []
        self._thread = None

    def start(self, timeout=10):
        self.proc = spawn(["stdbuf", "-oL", "busctl", f"--address={self.bus.address}", "--json=short", "monitor"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.bus.env())
        self._token = add_cleanup(self.stop)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # The monitor is live once it reports traffic: poke the bus until it shows some.
        def live():
            self.bus.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                            "GetId")
            return self._seen_any
        wait_until(live, timeout, "busctl monitor to start", interval=0.2)
        return self

    _seen_any = False

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            self._seen_any = True
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if m.get("type") != "signal" or m.get("path", "").startswith("/org/freedesktop/DBus"):
                continue
            rec = {"interface": m.get("interface"), "member": m.get("member"), "path": m.get("path"),
                   "signature": m.get("payload", {}).get("type", ""),
                   "data": m.get("payload", {}).get("data", []),
                   "at": m.get("timestamp-realtime", 0) / 1e6}
            with self._lock:
                self._signals.append(rec)

    def signals(self, member=None, interface=None):
        with self._lock:
            return [s for s in self._signals
                    if (member is None or s["member"] == member)
                    and (interface is None or s["interface"] == interface)]

    def clear(self):
        with self._lock:
            self._signals.clear()

    def wait_for(self, member, count=1, timeout=30, interface=None):
        """Waits until at least `count` signals named `member` arrived; returns them all."""
        wait_until(lambda: len(self.signals(member, interface)) >= count, timeout,
                   f"{count} x signal {member}")
        return self.signals(member, interface)

    def stop(self):
        if self._token:
            drop_cleanup(self._token)
            self._token = None
        if self.proc:
            stop_process(self.proc)
            self.proc = None


# ---------------------------------------------------------------------------------------------
# The daemon.

# Flows are evicted from ListFlows once idle for flows.idle_timeout (default 15 s); a slow (loaded)
# test window must not lose its flows to that.
NO_EVICTION = {"idle_timeout": "1h", "active_timeout": "2h"}


def config_yaml(state_dir, poll="200ms", interfaces=(("lan0", "lan"), ("wan0", "wan")), extra="",
                pin_dir=None, flows=None):
    """A nettallyd config. pin_dir: where the counting maps are pinned; every test daemon needs its
    own, or daemons in different namespaces (same ifindexes!) and runs would share counts.
    flows: the flows: section as a dict (max_entries, idle_timeout, ...)."""
    lines = ["interfaces:"]
    for name, role in interfaces:
        lines.append(f"  - name: {name}")
        lines.append(f"    role: {role}")
    lines.append(f"poll_interval: {poll}")
    lines.append(f"state_dir: {state_dir}")
    if pin_dir:
        lines.append(f"pin_dir: {pin_dir}")
    if flows:
        lines.append("flows:")
        lines += [f"  {k}: {v}" for k, v in flows.items()]
    lines.append("log_level: debug")
    return "\n".join(lines) + "\n" + extra


def make_pin_dir(tag=None):
    """A unique pin directory in bpffs (not created: nettallyd does), removed at exit."""
    path = os.path.join(BPFFS_DIR, f"{tag or unique_tag()}-{random.randrange(1 << 30):08x}")
    add_cleanup(shutil.rmtree, path, True)
    return path


def isolated_env():
    """Environment for a nettallyd run without a test bus: it must never reach the host's system bus."""
    e = dict(os.environ)
    e.pop("NOTIFY_SOCKET", None)
    e["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent/ntt-no-bus"
    return e


class Daemon:
    """nettallyd in the gateway namespace, on the private bus, with a notify socket."""

    def __init__(self, topo, bus, workdir, config_text=None, poll="200ms", **config_args):
        """config_text: the whole config ("{state_dir}" and "{pin_dir}" are filled in), or None
        for config_yaml(poll=poll, **config_args) with this daemon's state and pin dirs."""
        self.topo, self.bus = topo, bus
        self.dir = os.path.join(workdir, f"daemon-{random.randrange(1 << 30)}")
        os.makedirs(self.dir)
        self.state_dir = os.path.join(self.dir, "state")
        self.pin_dir = make_pin_dir(topo.tag)
        self.config_args = dict(poll=poll, **config_args)
        self.config_path = os.path.join(self.dir, "nettally.yaml")
        self.log_path = os.path.join(self.dir, "nettallyd.log")
        self.notify_path = os.path.join(self.dir, "notify")
        if config_text is None:
            config_text = self.config()
        config_text = config_text.replace("{state_dir}", self.state_dir).replace("{pin_dir}", self.pin_dir)
        self.write_config(config_text)
        self.proc = None
        self.log_start = 0
        self.notify = []  # every sd_notify message of the current run, in order
        self.env = {}     # added to its environment (e.g. CREDENTIALS_DIRECTORY)
        self.wrapper = []  # argv before nettallyd's (e.g. setpriv: another user, fewer capabilities)
        self.owner = None  # a user the daemon's files are given to before it starts (with wrapper)
        self._sock = None
        self._reader = None
        self._token = None

    def config(self, **kw):
        """config_yaml with this daemon's state and pin dirs (reloads must keep them) and the
        constructor's config arguments, overridden by kw."""
        args = dict(self.config_args)
        args.update(kw)
        return config_yaml(self.state_dir, pin_dir=self.pin_dir, **args)

    def write_config(self, text):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_path)

    def start(self, timeout=20):
        """Starts nettallyd (again, after stop(keep_pins=True)) and waits for READY=1."""
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
        self.notify = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.notify_path)
        self._sock.settimeout(0.2)
        if self.owner is not None:
            # The daemon reads its config, writes its state and sends to the notify socket as that
            # user: its directory is given to it and the directories above made searchable.
            pw = pwd.getpwnam(self.owner)
            for d in (os.path.dirname(self.dir),):
                os.chmod(d, os.stat(d).st_mode | 0o001)
            for root, dirs, files in os.walk(self.dir):
                for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.lchown(n, pw.pw_uid, pw.pw_gid)
        default_pins_before = os.path.exists(DEFAULT_PIN_DIR)
        env = self.bus.env() if self.bus else isolated_env()
        env["NOTIFY_SOCKET"] = self.notify_path
        env.update(self.env)
        argv = self.topo.nsenter_argv(self.topo.gw,
                                      self.wrapper + [nettallyd_path(), "--config", self.config_path])
        with open(self.log_path, "a") as logf:
            self.log_start = logf.tell()
            self.proc = spawn(argv, env=env, stdout=logf, stderr=subprocess.STDOUT)
        self._token = add_cleanup(self.stop)
        # Drain the notify socket for the daemon's whole life: a full datagram queue would block
        # its sd_notify (STATUS= every poll) and freeze it.
        self._reader = threading.Thread(target=self._read_notify, daemon=True)
        self._reader.start()
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"nettallyd exited with {self.proc.returncode} before READY=1:\n"
                                     f"{self.log_tail()}")
            return any("READY=1" in m.split("\n") for m in list(self.notify))
        try:
            wait_until(ready, timeout, "READY=1 from nettallyd")
        except AssertionError as e:
            if self.proc.poll() is not None:
                raise  # ready() said why
            raise AssertionError(f"{e}:\n{self.log_tail()}") from None
        if not os.path.isdir(self.pin_dir):
            # A nettallyd that ignores pin_dir shares its counts with every other test daemon
            # (same ifindexes in every namespace) and with the host's: stop it, and take back the
            # default pins it has just created.
            self.stop()
            if not default_pins_before and os.path.isdir(DEFAULT_PIN_DIR):
                shutil.rmtree(DEFAULT_PIN_DIR, ignore_errors=True)
            raise AssertionError(f"nettallyd did not pin its maps in the configured pin_dir {self.pin_dir}")
        # A test that reads the daemon's first figures takes them on a quiet network: a daemon that
        # starts within SETTLE_S of link-up would otherwise count the MLD reports of link-up.
        self.topo.settle()
        return self

    def _read_notify(self):
        while self._sock is not None:
            try:
                data = self._sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.notify.append(data.decode(errors="replace"))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text()[self.log_start:].splitlines()[-n:])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15, keep_pins=False):
        """SIGTERM; returns the exit code (None if it had to be killed). nettallyd leaves its
        programs attached and counting into the pinned maps; unless keep_pins (for a restart), the
        pins go (the programs go with the namespace)."""
        if self._token:
            drop_cleanup(self._token)
            self._token = None
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                    rc = None
            else:
                rc = self.proc.returncode
        if self._sock is not None:
            s, self._sock = self._sock, None
            s.close()
        if not keep_pins:
            shutil.rmtree(self.pin_dir, ignore_errors=True)
        return rc

    def detach(self):
        """`nettallyd --detach` in the gateway namespace (never elsewhere: it removes every nettally
        program of the namespace it runs in). Returns the CompletedProcess."""
        argv = self.topo.nsenter_argv(self.topo.gw,
                                      [nettallyd_path(), "--detach", "--config", self.config_path])
        return run(argv, check=False, timeout=30, env=isolated_env())

    def wait_polls(self, n=2, timeout=15):
        """Waits until n more polls have completed (GetStatus polls)."""
        start = int(self.bus.status()["polls"])

        def done():
            st = self.bus.status()
            return st if int(st["polls"]) >= start + n else None
        return wait_until(done, timeout, f"{n} polls")


class Ctl:
    """nettallyctl against the private bus."""

    def __init__(self, bus_address):
        self.address = bus_address

    def run(self, *args, user=None, timeout=30):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        argv = [nettallyctl_path()] + [str(a) for a in args]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + argv
        return run(argv, check=False, timeout=timeout, env=env)

    def json(self, *args):
        p = self.run("--json", *args)
        if p.returncode != 0:
            raise AssertionError(f"nettallyctl --json {' '.join(map(str, args))} exited {p.returncode}: "
                                 f"{p.stderr.strip()}")
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError(f"nettallyctl --json {' '.join(map(str, args))}: bad JSON ({e}): "
                                 f"{p.stdout[:500]!r}")

    def snapshot(self):
        """Interfaces, flows and hosts, each keyed for delta computation."""
        ifs = self.json("interfaces")["interfaces"]
        flows = self.json("flows", "--top", 100000, "--sort", "packets")["flows"]
        hosts = self.json("hosts", "--top", 100000, "--sort", "l2")["hosts"]
        return Snapshot(ifs, flows, hosts)


class Snapshot:
    def __init__(self, ifaces, flows, hosts):
        self.raw_ifaces, self.raw_flows, self.raw_hosts = ifaces, flows, hosts
        self.ifaces = {}   # (iface, dir) -> C
        self.buckets = {}  # (iface, dir, bucket) -> C
        for i in ifaces:
            for d in DIRECTIONS:
                self.ifaces[(i["name"], d)] = cget(i[d])
            for k, c in i.get("unattributed", {}).items():
                d, b = k.split(".", 1)
                self.buckets[(i["name"], d, b)] = cget(c)
            # Finished (evicted) flows: nettallyctl's "finished_flows" key, ListInterfaces'
            # finished_ingress and finished_egress fields. Kept with the buckets for the sums.
            for d, c in i.get("finished_flows", {}).items():
                self.buckets[(i["name"], d, "finished_flows")] = cget(c)
        self.flows = {}
        for f in flows:
            key = (f["interface"], f["direction"], str(f["proto"]), norm_ip(f["src"]), int(f["sport"]),
                   norm_ip(f["dst"]), int(f["dport"]))
            if key in self.flows:
                raise AssertionError(f"nettallyctl flows lists {key} twice")
            self.flows[key] = cget(f)
        self.hosts = {}
        for h in hosts:
            key = (h["interface"], h["mac"].lower(), norm_ip(h["ip"]))
            if key in self.hosts:
                raise AssertionError(f"nettallyctl hosts lists {key} twice")
            self.hosts[key] = {"sent": cget(h["sent"]), "received": cget(h["received"])}


def bus_snapshot(bus):
    """The same Snapshot as Ctl.snapshot(), read with busctl straight from the D-Bus API."""
    ifs = bus.call_ok("ListInterfaces")[0]
    flows = bus.call_ok("ListFlows", "su", "packets", 100000)[0]
    hosts = bus.call_ok("ListHosts", "su", "l2", 100000)[0]
    C = lambda t: dict(zip(FIGURES, t))  # noqa: E731
    s = Snapshot(
        [{"name": n, "role": r, "ifindex": x, "ingress": C(i), "egress": C(e),
          "unattributed": {k: C(v) for k, v in u.items()},
          "finished_flows": {"ingress": C(fi), "egress": C(fe)}} for n, r, x, i, e, u, fi, fe in ifs],
        [dict(interface=f[0], direction=f[1], proto=proto_name(f[2]), src=f[3], sport=f[4], dst=f[5],
              dport=f[6], **C(f[7])) for f in flows],
        [{"mac": m, "ip": ip, "interface": i, "sent": C(s_), "received": C(r)}
         for m, ip, i, s_, r, _f, _l, *_wan in hosts])
    s.bus_ifaces = ifs  # the raw tuples
    s.bus_flows = {}    # flow key -> (first_seen, last_seen, tcp_flags, raw tuple)
    for f in flows:
        key = (f[0], f[1], proto_name(f[2]), norm_ip(f[3]), f[4], norm_ip(f[5]), f[6])
        s.bus_flows[key] = (f[8], f[9], f[10], f)
    s.bus_hosts = {(x[2], x[0].lower(), norm_ip(x[1])): x for x in hosts}
    return s


def window_problems(before, after, cap, ifaces=("lan0", "wan0"), flows=True, hosts=False, buckets=True):
    """Every difference between nettally's deltas (after - before, Snapshots) and the capture's
    sums, as labelled lines; [] when they agree exactly."""
    problems = []

    def delta(a, b, k):
        return csub(a.get(k, zero()), b.get(k, zero()))
    for iface in ifaces:
        for d in DIRECTIONS:
            got, want = delta(after.ifaces, before.ifaces, (iface, d)), cap.iface(iface, d)
            for f in FIGURES:
                if got[f] != want[f]:
                    problems.append(f"  {iface} {d} {f}: nettally {got[f]} != capture {want[f]}")
            for b in BUCKETS if buckets else ():
                k = (iface, d, b)
                got, want = delta(after.buckets, before.buckets, k), cap.buckets.get(k, zero())
                if got != want:
                    problems.append(f"  {iface} {d}.{b}: nettally {fmt_c(got)} != capture {fmt_c(want)}")
    if flows:
        keys = set(cap.flows) | {k for k in after.flows if delta(after.flows, before.flows, k) != zero()}
        for k in sorted(keys, key=str):
            got, want = delta(after.flows, before.flows, k), cap.flows.get(k, zero())
            if got != want:
                problems.append(f"  flow {k}:\n      nettally {fmt_c(got)}\n      capture  {fmt_c(want)}")
    if hosts:
        empty = {"sent": zero(), "received": zero()}
        keys = set(cap.hosts) | set(after.hosts)
        for k in sorted(keys):
            a, b, want = after.hosts.get(k, empty), before.hosts.get(k, empty), cap.hosts.get(k, empty)
            for side in ("sent", "received"):
                got = csub(a[side], b[side])
                if got != want[side]:
                    problems.append(f"  host {k} {side}:\n      nettally {fmt_c(got)}\n"
                                    f"      capture  {fmt_c(want[side])}")
    return problems


# ---------------------------------------------------------------------------------------------
# Accounting record files (README "Accounting records").

# Record field -> FIGURES name.
RECORD_FIGURES = {"packets": "packets", "l2_bytes": "l2", "l3_bytes": "l3", "l4_bytes": "l4",
                  "payload_bytes": "payload"}
RECORD_NAME_RE = re.compile(r"^(?P<host>[A-Za-z0-9.-]+)_"
                            r"(?P<type>interface|host|cgroup|flow|alert|class)_"
                            r"(?P<start>\d{8}T\d{6}Z)_(?P<seq>\d{6,})\.(?P<fmt>csv|jsonl)(?P<gz>\.gz)?$")


def read_record_file(path):
    """The records of one closed file (CSV with header, or JSON Lines; .gz transparently) as a list
    of dicts (CSV values stay text). Raises AssertionError on a malformed file."""
    import csv
    import gzip
    import io
    name = os.path.basename(path)
    m = RECORD_NAME_RE.match(name)
    if not m:
        raise AssertionError(f"{name}: not a record file name")
    with open(path, "rb") as f:
        raw = f.read()
    if m.group("gz"):
        raw = gzip.decompress(raw)
    text = raw.decode()
    if text and not text.endswith("\n"):
        raise AssertionError(f"{name}: last line is incomplete")
    if m.group("fmt") == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise AssertionError(f"{name}: no header line")
    header = rows[0]
    for r in rows[1:]:
        if len(r) != len(header):
            raise AssertionError(f"{name}: {len(r)} fields, header has {len(header)}: {r}")
    return [dict(zip(header, r)) for r in rows[1:]]


def read_records(directory, rtype=None):
    """Every record in the closed files of `directory` (a spool, or an upload target), oldest file
    first (by sequence number): a list of dicts, each with "_file" and "_type" added."""
    out = []
    files = []
    for n in os.listdir(directory):
        m = RECORD_NAME_RE.match(n)
        if m and (rtype is None or m.group("type") == rtype):
            files.append((int(m.group("seq")), n, m.group("type")))
    for _seq, n, t in sorted(files):
        for r in read_record_file(os.path.join(directory, n)):
            r["_file"], r["_type"] = n, t
            out.append(r)
    return out


def record_counts(r):
    """The counter figures of one record as a FIGURES dict (l2 0 where the type has none)."""
    c = zero()
    for field, fig in RECORD_FIGURES.items():
        if field in r:
            c[fig] = int(r[field])
    return c


def sum_records(records, key):
    """Sums record_counts per key(record): {key: C}."""
    out = {}
    for r in records:
        k = key(r)
        out[k] = cadd(out.get(k, zero()), record_counts(r))
    return out


# ---------------------------------------------------------------------------------------------
# Running a test module.

class OrderedLoader(unittest.TestLoader):
    """The test order NT_TEST_ORDER asks for, to prove that no test depends on another running
    first: "" or "name" (unittest's default: classes and methods by name), "reverse" (both
    reversed), "shuffle" or "shuffle:SEED" (both shuffled; the seed is logged, so a failing order
    can be replayed). A class's methods stay together, so each setUpClass still runs once."""

    def __init__(self, order):
        super().__init__()
        kind, _, seed = order.partition(":")
        if kind not in ("", "name", "reverse", "shuffle"):
            raise SystemExit(f"NT_TEST_ORDER={order!r}: expected name, reverse or shuffle[:SEED]")
        self.kind = kind
        if kind == "shuffle":
            seed = int(seed) if seed else random.randrange(1 << 32)
            self.rng = random.Random(seed)
            log(f"NT_TEST_ORDER=shuffle:{seed}")

    def _reorder(self, items):
        items = list(items)
        if self.kind == "reverse":
            items.reverse()
        elif self.kind == "shuffle":
            self.rng.shuffle(items)
        return items

    def getTestCaseNames(self, testCaseClass):
        return self._reorder(super().getTestCaseNames(testCaseClass))

    def loadTestsFromModule(self, module, *args, **kw):
        suite = super().loadTestsFromModule(module, *args, **kw)
        return self.suiteClass(self._reorder(suite))  # one sub-suite per class


def run_tests(module_name="__main__"):
    """unittest.main that exits 77 when every test was skipped for lack of root/kernel features.
    NT_TEST_ORDER (see OrderedLoader) changes the order the tests run in."""
    install_handlers()
    if os.geteuid() == 0:
        sweep_stale()
    loader = OrderedLoader(os.environ.get("NT_TEST_ORDER", ""))
    prog = unittest.main(module=module_name, exit=False, verbosity=2, testLoader=loader)
    res = prog.result
    run_cleanups()
    if not res.wasSuccessful():
        sys.exit(1)
    # A skip in setUpClass is recorded against the class, not counted in testsRun.
    test_skips = sum(1 for t, _ in res.skipped if isinstance(t, unittest.TestCase))
    all_env = bool(res.skipped) and all(r.startswith(ENV_SKIP_PREFIX) for _, r in res.skipped)
    if all_env and res.testsRun - test_skips == 0:
        sys.exit(SKIP_RC)
    sys.exit(0)


if __name__ == "__main__":
    traffic_main(sys.argv[1:])
