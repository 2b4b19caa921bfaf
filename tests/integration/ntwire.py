"""Helpers for tests/integration/test_wire.py ("exact on the wire"), on top of ntharness.py.

- Frame building (eth/vlan/pppoe/ipv4/ipv6/extension headers/tcp/udp/icmp, ARP, LLDP, STP) with
  valid checksums unless a test breaks a field on purpose. Standard library only.
- FrameSender: a long-lived helper inside a namespace that sends raw frames through an AF_PACKET
  socket (one line per frame, answered at once: no process start per frame) and attaches tiny
  TCX programs that push VLAN tags into skb metadata (bpf_skb_vlan_push), the way an 802.1Q device
  or a NIC with rx-vlan offload hands a frame to the stack. The program is 8-10 BPF instructions
  loaded with the bpf(2) syscall through ctypes: no compiler needed at test time.
- UdpSink / udp_gso(): fixed-port UDP sinks and a UDP_SEGMENT sender (deterministic traffic).
- PeerCapture: dumpcap on the far end of a gateway veth, labelled as the gateway interface, so
  ntharness.analyse() reads it as that interface's traffic (direction from the Ethernet source).
  On a veth pair what one end sends is exactly what the other receives, frame for frame.
- Offload switches, daemon configs with a per-interface mode, the measuring window.

Run as a script (inside a namespace) it is the traffic side:
  ntwire.py framesrv                   frames and TCX programs, commands on stdin (FrameSender)
  ntwire.py sink PORT ADDR...          UDP sinks; prints READY
  ntwire.py udpgso DST PORT SPORT SPEC  SPEC = gso:len[xN],...  (UDP_SEGMENT sends)
  ntwire.py udp DST PORT SPORT SIZES COUNT  plain datagrams, no echo expected
"""

import ctypes
import errno
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

THIS = os.path.abspath(__file__)

# ---------------------------------------------------------------------------------------------
# Frames.

ETH_IP, ETH_IP6, ETH_ARP = 0x0800, 0x86DD, 0x0806
ETH_8021Q, ETH_8021AD = 0x8100, 0x88A8
ETH_PPP_DISC, ETH_PPP_SES, ETH_LLDP = 0x8863, 0x8864, 0x88CC
ETH_EXPERIMENTAL = 0x88B5  # IEEE 802 local experimental 1
PPP_IP, PPP_IP6, PPP_LCP, PPP_IPCP = 0x0021, 0x0057, 0xC021, 0x8021


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def ip4(text):
    return socket.inet_pton(socket.AF_INET, text)


def ip6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst, src, ethertype):
    return mac(dst) + mac(src) + struct.pack("!H", ethertype)


def vlan(vid, ethertype, pcp=0):
    """The 4 bytes after a TPID: TCI and the next EtherType (the TPID is the previous field)."""
    return struct.pack("!HH", (pcp << 13) | vid, ethertype)


def pppoe_session(session, ppp_proto, payload, length=None):
    """PPPoE session header (ver/type 0x11, code 0) + PPP protocol + payload."""
    body = struct.pack("!H", ppp_proto) + payload
    return struct.pack("!BBHH", 0x11, 0, session, len(body) if length is None else length) + body


def pppoe_discovery(code, session=0, tags=b""):
    return struct.pack("!BBHH", 0x11, code, session, len(tags)) + tags


def ppp_lcp(code, ident, data=b""):
    return struct.pack("!BBH", code, ident, 4 + len(data)) + data


def ipv4(src, dst, proto, payload, ident=0x4e54, ttl=64, frag_off=0, mf=False, df=False, options=b"",
         ihl=None, tot_len=None, version=4, bad_csum=False):
    """An IPv4 datagram; frag_off in 8-byte units. ihl/tot_len/version override the real values."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    hl = 20 + len(options)
    flags = (0x2000 if mf else 0) | (0x4000 if df else 0) | frag_off
    v_ihl = (version << 4) | (ihl if ihl is not None else hl // 4)
    tl = hl + len(payload) if tot_len is None else tot_len
    hdr = struct.pack("!BBHHHBBH4s4s", v_ihl, 0, tl, ident, flags, ttl, proto, 0, ip4(src), ip4(dst)) + options
    c = csum(hdr) ^ (0xFFFF if bad_csum else 0)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def ipv6(src, dst, nxt, payload, plen=None, hop=64, version=6):
    return (struct.pack("!IHBB", version << 28, len(payload) if plen is None else plen, nxt, hop)
            + ip6(src) + ip6(dst) + payload)


def ip6_opts(nxt, hdr_ext_len=0):
    """Hop-by-hop or destination options header of (hdr_ext_len + 1) * 8 bytes, PadN filled."""
    n = (hdr_ext_len + 1) * 8
    opts, rem = b"", n - 2
    while rem:
        if rem == 1:
            opts, rem = opts + b"\0", 0  # Pad1
            continue
        d = min(rem - 2, 255)
        if rem - (d + 2) == 1:
            d -= 1
        opts, rem = opts + bytes([1, d]) + bytes(d), rem - (d + 2)
    return bytes([nxt, hdr_ext_len]) + opts


def ip6_frag(nxt, offset=0, more=False, ident=0x4e540001):
    """Fragment header (8 bytes); offset in 8-byte units."""
    return struct.pack("!BBHI", nxt, 0, (offset << 3) | (1 if more else 0), ident)


def ip6_ah(nxt, icv=12):
    """Authentication header: 12 + icv bytes; its length field is in 4-byte units minus 2."""
    n = 12 + icv
    return struct.pack("!BBHII", nxt, n // 4 - 2, 0, 0x100, 1) + b"\xab" * icv


def _pseudo(src, dst, proto, length):
    if ":" in src:
        return ip6(src) + ip6(dst) + struct.pack("!IxxxB", length, proto)
    return ip4(src) + ip4(dst) + struct.pack("!xBH", proto, length)


def udp(src, dst, sport, dport, data, length=None):
    ln = 8 + len(data) if length is None else length
    c = csum(_pseudo(src, dst, 17, 8 + len(data)) + struct.pack("!HHHH", sport, dport, ln, 0) + data)
    return struct.pack("!HHHH", sport, dport, ln, c or 0xFFFF) + data


def tcp(src, dst, sport, dport, data=b"", flags=0x18, seq=1, ack=1, options=b"", doff=None):
    if len(options) % 4:
        options += b"\1" * (4 - len(options) % 4)
    d = (20 + len(options)) // 4 if doff is None else doff
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, d << 4, flags, 65535, 0, 0) + options
    c = csum(_pseudo(src, dst, 6, len(hdr) + len(data)) + hdr + data)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + data


def tcp_ts_option(tsval=1, tsecr=0):
    return b"\1\1" + struct.pack("!BBII", 8, 10, tsval, tsecr)


def icmp(typ, code, data=b"", ident=0x4e54, seq=1):
    hdr = struct.pack("!BBHHH", typ, code, 0, ident, seq)
    return struct.pack("!BBHHH", typ, code, csum(hdr + data), ident, seq) + data


def icmp6(src, dst, typ, code, data=b"", ident=0x4e54, seq=1):
    hdr = struct.pack("!BBHHH", typ, code, 0, ident, seq)
    c = csum(_pseudo(src, dst, 58, len(hdr) + len(data)) + hdr + data)
    return struct.pack("!BBHHH", typ, code, c, ident, seq) + data


def arp_request(smac, sip, tip):
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, 1, mac(smac), ip4(sip), b"\0" * 6, ip4(tip))


def lldp(chassis_mac):
    tlv = lambda t, v: struct.pack("!H", (t << 9) | len(v)) + v  # noqa: E731
    return (tlv(1, b"\x04" + mac(chassis_mac)) + tlv(2, b"\x07" + b"eth0") + tlv(3, struct.pack("!H", 120))
            + tlv(0, b""))


def stp_bpdu():
    """An 802.3 frame's body after the length field: LLC (DSAP/SSAP 0x42, UI) + a config BPDU."""
    return b"\x42\x42\x03" + b"\0\0\0\0" + b"\0" * 31


def pattern(n, seed=0):
    return bytes((seed + i) & 0xFF for i in range(n))


# ---------------------------------------------------------------------------------------------
# TCX programs that push VLAN tags (bpf(2) through ctypes).

_NR_BPF = 321  # x86_64
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
BPF_FUNC_skb_vlan_push = 18


def _insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def vlan_push_insns(tags):
    """r6 = skb; for each (tpid, vid): bpf_skb_vlan_push(skb, htons(tpid), vid); return TCX_NEXT.
    Each push moves an existing metadata tag into the frame first, so the last tag is outermost."""
    code = _insn(0xBF, dst=6, src=1)  # r6 = r1
    for tpid, vid in tags:
        code += _insn(0xBF, dst=1, src=6)                                      # r1 = r6
        code += _insn(0xB7, dst=2, imm=struct.unpack("<H", struct.pack("!H", tpid))[0])  # __be16
        code += _insn(0xB7, dst=3, imm=vid)
        code += _insn(0x85, imm=BPF_FUNC_skb_vlan_push)
    code += _insn(0xB7, dst=0, imm=-1)  # TCX_NEXT / TC_ACT_UNSPEC: the next program decides
    code += _insn(0x95)
    return code


class _Bpf:
    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def call(self, cmd, attr):
        buf = ctypes.create_string_buffer(bytes(attr), 128)
        r = self.libc.syscall(_NR_BPF, cmd, buf, 128)
        if r < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
        return r

    def load_sched_cls(self, insns, name=b"ntw_vlan_push"):
        ibuf = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(65536)
        attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_SCHED_CLS, len(insns) // 8, ctypes.addressof(ibuf),
                           ctypes.addressof(lic), 1, len(log), ctypes.addressof(log), 0, 0, name[:15])
        try:
            return self.call(BPF_PROG_LOAD, attr)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror}: {log.value.decode(errors='replace')[:500]}")

    def tcx(self, cmd, ifindex, prog_fd, attach_type, flags=0):
        attr = struct.pack("<IIIIII", ifindex, prog_fd, attach_type, flags, 0, 0)
        return self.call(cmd, attr)


TUNSETIFF, TUNSETOFFLOAD = 0x400454CA, 0x400454D0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_GSO_TCPV6 = 1, 5, 4


def virtio_net_hdr(gso_type, hdr_len, gso_size, csum_start, csum_offset):
    """struct virtio_net_hdr (little endian, as a tap with IFF_VNET_HDR reads it)."""
    return struct.pack("<BBHHHH", VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type, hdr_len, gso_size, csum_start,
                       csum_offset)


def _framesrv():
    """Commands on stdin, one per line, each answered with 'ok ...' or 'err ERRNO text':
         send IFACE HEX[,HEX...]     one sendto per frame through AF_PACKET
         tap NAME                    create tap NAME (virtio-net headers), keep it open
         write NAME HEX[,HEX...]     one write per frame (virtio_net_hdr + frame) to tap NAME
         push IFACE DIR TPID:VID[,TPID:VID...]   TCX program pushing those tags (DIR ingress|egress)
         unpush IFACE DIR                        detach it
    """
    import fcntl
    bpf = _Bpf()
    socks, progs, taps = {}, {}, {}
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "send":
                iface = parts[1]
                s = socks.get(iface)
                if s is None:
                    s = socks[iface] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                    s.bind((iface, 0))
                frames = parts[2].split(",") if len(parts) > 2 else [""]
                sent = [s.send(bytes.fromhex(x)) for x in frames]
                print("ok " + ",".join(map(str, sent)), flush=True)
            elif parts[0] == "push":
                iface, d = parts[1], parts[2]
                tags = [tuple(int(x, 0) for x in t.split(":")) for t in parts[3].split(",")]
                fd = bpf.load_sched_cls(vlan_push_insns(tags))
                at = BPF_TCX_INGRESS if d == "ingress" else BPF_TCX_EGRESS
                bpf.tcx(BPF_PROG_ATTACH, socket.if_nametoindex(iface), fd, at)
                progs[(iface, d)] = fd
                print(f"ok {fd}", flush=True)
            elif parts[0] == "tap":
                # A tap device with virtio-net headers: what this process writes, the namespace
                # receives on it, GSO metadata included (tun_get_user -> virtio_net_hdr_to_skb).
                name = parts[1]
                fd = os.open("/dev/net/tun", os.O_RDWR)
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
                taps[name] = fd
                print("ok", flush=True)
            elif parts[0] == "write":
                fd = taps[parts[1]]
                sent = [os.write(fd, bytes.fromhex(x)) for x in parts[2].split(",")]
                print("ok " + ",".join(map(str, sent)), flush=True)
            elif parts[0] == "unpush":
                iface, d = parts[1], parts[2]
                fd = progs.pop((iface, d))
                at = BPF_TCX_INGRESS if d == "ingress" else BPF_TCX_EGRESS
                bpf.tcx(BPF_PROG_DETACH, socket.if_nametoindex(iface), fd, at)
                os.close(fd)
                print("ok", flush=True)
            else:
                print(f"err {errno.EINVAL} unknown command {parts[0]}", flush=True)
        except OSError as e:
            print(f"err {e.errno} {e.strerror}", flush=True)


class FrameSender:
    """The framesrv helper in namespace ns (through `ip netns exec`)."""

    def __init__(self, topo, ns):
        self.topo, self.ns = topo, ns
        self.proc = h.spawn(topo.exec_argv(ns, [h.PYTHON, THIS, "framesrv"]), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._token = h.add_cleanup(self.close)

    def _cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if not reply:
            raise RuntimeError(f"framesrv in {self.ns} died: {self.proc.stderr.read()}")
        return reply

    def send(self, iface, *frames):
        """Sends frames; returns the byte counts. Raises OSError(errno) when the kernel refuses."""
        reply = self._cmd(f"send {iface} " + ",".join(f.hex() for f in frames))
        if reply.startswith("err "):
            code, _, text = reply[4:].partition(" ")
            raise OSError(int(code), text)
        return [int(x) for x in reply[3:].split(",")]

    def tap(self, name):
        reply = self._cmd(f"tap {name}")
        if not reply.startswith("ok"):
            raise OSError(int(reply.split()[1]), f"creating tap {name}: {reply}")

    def write_tap(self, name, *frames):
        reply = self._cmd(f"write {name} " + ",".join(f.hex() for f in frames))
        if not reply.startswith("ok"):
            raise OSError(int(reply.split()[1]), f"writing to tap {name}: {reply}")
        return [int(x) for x in reply[3:].split(",")]

    @staticmethod
    def _can_push(push, unpush, iface, direction):
        """One tag pushed with push and removed with unpush: whether that works here."""
        try:
            push(iface, direction, [(0x8100, 1)])
        except OSError:
            return False
        unpush(iface, direction)
        return True

    def tcx_supported(self, iface):
        """Whether this kernel attaches TCX programs (Linux 6.6): one push attached and removed."""
        return self._can_push(self.push_vlan, self.unpush_vlan, iface, "ingress")

    def tc_vlan_supported(self, iface):
        """Whether tc's vlan action (act_vlan, with cls_matchall) pushes tags here: one push
        added and removed with push_vlan_tc."""
        return self._can_push(self.push_vlan_tc, self.unpush_vlan_tc, iface, "egress")

    def push_vlan(self, iface, direction, tags):
        """Attaches a TCX program (first in the chain, so before nettally's clsact filter) that
        pushes tags [(tpid, vid), ...] into the skb: the last one ends up in metadata."""
        spec = ",".join(f"{tp:#x}:{vid}" for tp, vid in tags)
        reply = self._cmd(f"push {iface} {direction} {spec}")
        if not reply.startswith("ok"):
            raise OSError(int(reply.split()[1]), f"TCX vlan push on {iface} {direction}: {reply}")

    def unpush_vlan(self, iface, direction):
        reply = self._cmd(f"unpush {iface} {direction}")
        if not reply.startswith("ok"):
            raise OSError(int(reply.split()[1]), f"TCX detach on {iface} {direction}: {reply}")

    # The same pushes where the kernel has no TCX (before Linux 6.6): a clsact qdisc with a
    # matchall filter of vlan push actions, each one skb_vlan_push() as bpf_skb_vlan_push() is, so
    # the last tag ends up in metadata. It runs wherever the interface's clsact chain puts it: fit
    # for an interface no other program is attached to (a peer's eth0), not for nettally's own.
    TC_PUSH_PREF = 1

    def push_vlan_tc(self, iface, direction, tags):
        tc = ["tc", "-n", self.ns]
        h.run(tc + ["qdisc", "replace", "dev", iface, "clsact"], check=False)
        acts = []
        for tpid, vid in tags:
            acts += ["action", "vlan", "push", "id", str(vid), "protocol", {0x8100: "802.1Q", 0x88A8: "802.1ad"}[tpid]]
        p = h.run(tc + ["filter", "add", "dev", iface, direction, "pref", str(self.TC_PUSH_PREF), "matchall"] + acts,
                  check=False)
        if p.returncode != 0:
            raise OSError(errno.EOPNOTSUPP, f"tc vlan push on {iface} {direction}: {p.stderr.strip()}")

    def unpush_vlan_tc(self, iface, direction):
        p = h.run(["tc", "-n", self.ns, "filter", "del", "dev", iface, direction, "pref", str(self.TC_PUSH_PREF)],
                  check=False)
        if p.returncode != 0:
            raise OSError(errno.EINVAL, f"tc vlan push removal on {iface} {direction}: {p.stderr.strip()}")

    def close(self):
        if self._token:
            h.drop_cleanup(self._token)
            self._token = None
        if self.proc:
            h.stop_process(self.proc, timeout=5)
            self.proc = None


# ---------------------------------------------------------------------------------------------
# UDP: sinks and senders with fixed ports (the same flow keys in every run).

def _sink(port, addrs):
    import threading
    for a in addrs:
        fam = socket.AF_INET6 if ":" in a else socket.AF_INET
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        u.bind((a, port))

        def drain(u=u):
            while True:
                u.recv(65535)
        threading.Thread(target=drain, daemon=True).start()
    print("READY", flush=True)
    import signal
    signal.sigwait([signal.SIGTERM, signal.SIGINT])


class UdpSink:
    """UDP sinks on port in namespace ns (no ICMP port unreachable, no echo)."""

    def __init__(self, topo, ns, port, addrs):
        self.proc = h.spawn(topo.exec_argv(ns, [h.PYTHON, THIS, "sink", str(port)] + list(addrs)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._token = h.add_cleanup(self.stop)
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"UDP sink did not start: {line!r} {self.proc.stderr.read()}")

    def stop(self):
        if self._token:
            h.drop_cleanup(self._token)
            self._token = None
        if self.proc:
            h.stop_process(self.proc, timeout=5)
            self.proc = None


UDP_SEGMENT = 103  # linux/udp.h


def _udp_gso(dst, port, sport, spec, gap=0.002):
    """spec: [(gso_size, length, count)]: count sends of length bytes, segmented by gso_size."""
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.connect((dst, port))
    sends = 0
    for gso, length, count in spec:
        s.setsockopt(socket.SOL_UDP, UDP_SEGMENT, gso)
        for i in range(count):
            s.send(pattern(length, i))
            sends += 1
            time.sleep(gap)  # pacing: no burst larger than a veth ring or a backlog
    return {"sends": sends}


def _udp_plain(dst, port, sport, sizes, count, gap=0.001):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
    s.connect((dst, port))
    n = 0
    for size in sizes:
        for i in range(count):
            s.send(pattern(size, i))
            n += 1
            time.sleep(gap)  # pacing: no burst larger than a veth ring or a backlog
    return {"sent": n}


def parse_gso_spec(text):
    """"1000:20000x3,1400:4300" -> [(1000, 20000, 3), (1400, 4300, 1)]."""
    out = []
    for part in text.split(","):
        g, _, rest = part.partition(":")
        ln, _, cnt = rest.partition("x")
        out.append((int(g), int(ln), int(cnt or 1)))
    return out


def gso_spec_text(spec):
    return ",".join(f"{g}:{ln}x{c}" for g, ln, c in spec)


def run_in(topo, ns, *args, timeout=60):
    """Runs this file as a traffic command in namespace ns; returns its JSON report."""
    p = h.run(topo.exec_argv(ns, [h.PYTHON, THIS] + [str(a) for a in args]), timeout=timeout)
    return json.loads(p.stdout)


# ---------------------------------------------------------------------------------------------
# Offloads.

OFFLOADS_OFF = {"tso": "off", "gso": "off", "gro": "off", "tx": "off", "rx": "off", "sg": "off",
                "tx-udp-segmentation": "off", "rx-udp-gro-forwarding": "off"}


def set_features(topo, ns, dev, **features):
    """ethtool -K dev feature value...; '_' in a keyword stands for '-'. Checks the result, since
    ethtool exits 0 even when a feature it was asked for could not change."""
    args = []
    for k, v in features.items():
        args += [k.replace("_", "-"), v]
    p = h.run(topo.nsenter_argv(ns, ["ethtool", "-K", dev] + args), check=False)
    if p.returncode not in (0,):
        raise RuntimeError(f"ethtool -K {dev} {' '.join(args)}: rc={p.returncode} {p.stderr.strip()}")
    got = features_of(topo, ns, dev)
    long_names = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload",
                  "gro": "generic-receive-offload", "tx": "tx-checksumming", "rx": "rx-checksumming",
                  "sg": "scatter-gather", "rxvlan": "rx-vlan-offload", "txvlan": "tx-vlan-offload"}
    for k, v in features.items():
        name = long_names.get(k, k.replace("_", "-"))
        value, fixed = got.get(name, (None, True))
        if value != v:
            if fixed:  # this kernel's veth does not have it, or cannot change it
                raise h.EnvSkip(f"{dev}: offload {name} is {value or 'missing'}{' [fixed]' if value else ''}, "
                                f"cannot be turned {v}")
            raise RuntimeError(f"{dev} in {ns}: {name} is {value!r} after ethtool -K, wanted {v}")


def features_of(topo, ns, dev):
    """{feature: (on|off, fixed)} from ethtool -k."""
    out = h.run(topo.nsenter_argv(ns, ["ethtool", "-k", dev])).stdout
    feats = {}
    for line in out.splitlines()[1:]:
        k, _, v = line.strip().partition(":")
        words = v.split()
        feats[k.strip()] = (words[0] if words else "", "[fixed]" in words)
    return feats


def set_mtu(topo, ns, dev, mtu):
    h.run(["ip", "-n", ns, "link", "set", "dev", dev, "mtu", str(mtu)])


# ---------------------------------------------------------------------------------------------
# Captures.

class PeerCapture(h.Capture):
    """dumpcap on `dev` in namespace ns (the far end of gateway interface `iface`), read as
    gateway interface `iface`: a frame whose source MAC is iface's was sent by the gateway
    (egress), any other was received by it (ingress)."""

    def __init__(self, topo, iface, workdir, ns, dev="eth0"):
        super().__init__(topo, iface, workdir, ns=ns)
        self.dev = dev
        self.path = self.path.replace(".pcapng", f"-peer-{dev}.pcapng")
        self.errpath = self.path + ".stderr"

    def start(self):
        with open(self.errpath, "w") as err:
            self.proc = h.spawn(self.topo.exec_argv(self.ns, ["dumpcap", "-q", "-B", str(h.CAPTURE_BUFFER_MIB),
                                                              "-i", self.dev, "-w", self.path]),
                                stdout=subprocess.DEVNULL, stderr=err)
        self._token = h.add_cleanup(self.stop)
        return self


class DevCapture(PeerCapture):
    """dumpcap on any interface dev of namespace ns, labelled iface, with its own MAC for the
    direction (VLAN sub-interfaces)."""

    def __init__(self, topo, iface, workdir, ns, dev, own_mac):
        super().__init__(topo, "lan0", workdir, ns, dev)  # any name Topology.MAC knows
        self.iface, self.mac = iface, own_mac.lower()
        self.path = self.path.replace("lan0-", f"{iface}-")
        self.errpath = self.path + ".stderr"


def packets(cap):
    """cap.read(), dissected once and kept (after cap.stop())."""
    if getattr(cap, "_ntw_packets", None) is None:
        cap._ntw_packets = cap.read()
    return cap._ntw_packets


def result(caps, lan_ifaces=("lan0",)):
    """ntharness.analyse() over already-read captures."""
    r = h.CaptureResult([p for c in caps for p in packets(c)])
    for lan in lan_ifaces:
        r.add_hosts(lan)
    return r


def raw_frames(cap):
    """(frame.len, eth.src, frame.protocols) of every captured frame, without dissecting
    transports (aggregates and malformed frames are fine). After cap.stop()."""
    if cap.dropped():
        raise AssertionError(f"capture on {cap.iface} dropped packets: {cap.summary}")
    out = h.run(["tshark", "-r", cap.path, "-n", "-T", "fields", "-E", "separator=/t",
                 "-e", "frame.len", "-e", "eth.src", "-e", "frame.protocols"], timeout=120).stdout
    rows = []
    for line in out.splitlines():
        if line.strip():
            ln, src, protos = (line.split("\t") + ["", ""])[:3]
            rows.append((int(ln), src.lower(), protos))
    return rows


# ---------------------------------------------------------------------------------------------
# Daemon config and measuring.

QUIET_FLOWS = "flows:\n  idle_timeout: 1h\n"


def wire_config(interfaces, poll="200ms", extra=QUIET_FLOWS):
    """A config text for h.Daemon(config_text=...): interfaces = [(name, role, mode or None)].
    By default flows are not evicted for an hour: an eviction moves counts from a listed flow to
    finished_flows between the three reads of a snapshot and would blur per-window deltas."""
    lines = ["interfaces:"]
    for name, role, mode in interfaces:
        lines += [f"  - name: {name}", f"    role: {role}"]
        if mode:
            lines.append(f"    mode: {mode}")
    lines += [f"poll_interval: {poll}", "state_dir: {state_dir}", "pin_dir: {pin_dir}", "log_level: debug"]
    return "\n".join(lines) + "\n" + extra


_POLLS_RE = re.compile(r"(\d+) polls")


def _notified_polls(daemon):
    for m in reversed(list(daemon.notify)):
        for line in m.split("\n"):
            if line.startswith("STATUS="):
                x = _POLLS_RE.search(line)
                if x:
                    return int(x.group(1))
    return None


def wait_polls(daemon, n=2, timeout=15):
    """Waits until n more polls have completed. Reads the poll count from the STATUS= line
    nettallyd sends after every poll (no process per check); falls back to GetStatus."""
    start = _notified_polls(daemon)
    if start is None:
        return daemon.wait_polls(n, timeout)
    h.wait_until(lambda: (_notified_polls(daemon) or 0) >= start + n, timeout, f"{n} polls (STATUS=)",
                 interval=0.01)
    return None


def start_caps(caps):
    for c in caps:
        c.start()
    for c in caps:
        c.wait_running()
    return caps


def measure(daemon, ctl, caps, traffic):
    """capture running -> 2 polls -> baseline -> traffic() -> 2 polls -> final -> capture stopped.
    Returns (before, after, traffic's result). The caps are stopped, not read."""
    start_caps(caps)
    try:
        wait_polls(daemon)
        before = ctl.snapshot()
        result = traffic()
        wait_polls(daemon)
        after = ctl.snapshot()
    finally:
        for c in caps:
            c.stop()
    return before, after, result


def delta(after, before, key):
    return h.csub(after.get(key, h.zero()), before.get(key, h.zero()))


def invariant_problems(snap, ifaces):
    """total == sum(live flows) + every unattributed set (the buckets and finished_flows, the
    evicted flows' counts), per interface and direction, on one quiet snapshot."""
    problems = []
    for iface in ifaces:
        for d in h.DIRECTIONS:
            total = snap.ifaces.get((iface, d))
            if total is None:
                problems.append(f"  {iface} {d}: not listed by nettallyctl interfaces")
                continue
            s = h.zero()
            for k, c in snap.flows.items():
                if k[0] == iface and k[1] == d:
                    s = h.cadd(s, c)
            for (i, dd, _set), c in snap.buckets.items():
                if (i, dd) == (iface, d):
                    s = h.cadd(s, c)
            if s != total:
                problems.append(f"  {iface} {d}: total {h.fmt_c(total)} != flows + buckets {h.fmt_c(s)}")
    return problems


def flow_deltas(before, after, pred=lambda k: True):
    """Non-zero flow deltas. Only flows listed in after: a flow with packets in the window is live
    at its end (an earlier flow evicted meanwhile is not a negative delta)."""
    out = {}
    for k in after.flows:
        if pred(k):
            d = delta(after.flows, before.flows, k)
            if d != h.zero():
                out[k] = d
    return out


def C(packets=0, l2=0, l3=0, l4=0, payload=0):
    return {"packets": packets, "l2": l2, "l3": l3, "l4": l4, "payload": payload}


def main(argv):
    cmd = argv[0]
    if cmd == "framesrv":
        _framesrv()
        return
    if cmd == "sink":
        _sink(int(argv[1]), argv[2:])
        return
    if cmd == "udpgso":  # DST PORT SPORT SPEC
        r = _udp_gso(argv[1], int(argv[2]), int(argv[3]), parse_gso_spec(argv[4]))
    elif cmd == "udp":  # DST PORT SPORT SIZES COUNT
        r = _udp_plain(argv[1], int(argv[2]), int(argv[3]), [int(x) for x in argv[4].split(",")], int(argv[5]))
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:])
