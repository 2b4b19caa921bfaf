#!/usr/bin/python3
"""Acceptance test for the Prometheus metrics (README "Prometheus metrics").

nettallyd runs in the gateway namespace on lan0 (lan) and wan0 (wan) (topology in ntharness.py) with
metrics.listen on 127.0.0.1 and [::1] of that namespace, metrics.max_hosts small, and the textfile.
The client sends UDP and TCP over IPv4 and IPv6 through the gateway, from its own addresses and
from HOSTS extra addresses (each sending a different amount), so there are more hosts than
max_hosts. A real Prometheus server (Debian `prometheus`), started in the gateway namespace with a
temporary config, scrapes nettallyd every second.

Checked, once the network is quiet again:
- Prometheus' HTTP query API, read at one scrape, returns for every interface x direction x layer,
  every interface x direction packet count, and every exported host exactly what
  `nettallyctl --json interfaces` / `hosts` show, at polls that include that scrape's poll (the
  ctl readings are the same before and after it, and the scrape's nettally_polls_total lies between).
- nettally_threshold_usage_bytes and _limit_bytes of a config threshold equal
  `nettallyctl --json thresholds usage`.
- The host label set is bounded: exactly max_hosts hosts are exported, and they are the largest
  by l2 volume per `nettallyctl hosts`.
- `promtool check metrics` finds no problem in the exposition, read from both listen addresses
  and from the textfile.
"""

import json
import os
import random
import re
import sys
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402

PORT = 5001
HOSTS = 24      # extra client addresses, each a host of its own
MAX_HOSTS = 6   # metrics.max_hosts: fewer than the hosts there are
LAYERS = ("l2", "l3", "l4", "payload")
# Exported with cgroups.enabled (README "Prometheus metrics"; the unit test checks their values).
CGROUP_FAMILIES = {"nettally_cgroup_bytes_total", "nettally_cgroup_packets_total", "nettally_cgroup_entries",
                   "nettally_cgroup_capacity", "nettally_cgroup_overflow_packets_total",
                   "nettally_cgroup_untracked_packets_total", "nettally_cgroup_reconcile_checks_total",
                   "nettally_cgroup_reconcile_violations_total"}

# Fetches a URL inside a namespace (the test's own namespace cannot reach the gateway's loopback).
FETCH = ("import sys,urllib.request\n"
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n")


def free_port():
    return random.randrange(20000, 30000)


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_all()
        h.require_tools("prometheus", "promtool")
        h.open_env(cls)
        try:
            cls._start()
            cls._traffic()
            cls._measure()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _start(cls):
        cls.metrics_port, cls.prom_port = free_port(), free_port() + 10000
        cls.textfile_dir = os.path.join(cls.workdir, "textfile")
        os.makedirs(cls.textfile_dir)
        # IPv6 listen addresses: ListenTest.
        extra = (f"metrics:\n  listen: 127.0.0.1:{cls.metrics_port}\n  max_hosts: {MAX_HOSTS}\n"
                 f"  textfile_dir: {cls.textfile_dir}\n  textfile_interval: 1s\n"
                 "thresholds:\n  - name: lan-since\n    subject_kind: interface\n    subject: lan0\n"
                 "    period: since\n    step: 1G\n    limit: 10G\n")
        cls.daemon = h.Daemon(cls.topo, cls.bus, cls.workdir, poll="200ms", flows=h.NO_EVICTION, extra=extra)
        cls.ctl = h.Ctl(cls.bus.address)
        cls.daemon.start()
        cls.server = h.TrafficServer(cls.topo, PORT, [cls.topo.SRV4, cls.topo.SRV6]).start()
        cls._add_hosts()
        cls.prom = cls._start_prometheus()
        cls.topo.settle()

    @classmethod
    def _add_hosts(cls):
        """HOSTS more addresses on the client, with permanent neighbour entries on the gateway so
        the echoed replies need no ARP."""
        topo = cls.topo
        cls.extra_ips = [f"198.18.1.{100 + i}" for i in range(HOSTS)]
        for ip in cls.extra_ips:
            h.run(["ip", "-n", topo.cli, "addr", "add", f"{ip}/24", "dev", "eth0"])
            h.run(["ip", "-n", topo.gw, "neigh", "replace", ip, "lladdr", h.Topology.MAC["cli"], "dev", "lan0",
                   "nud", "permanent"])

    @classmethod
    def _start_prometheus(cls):
        pdir = os.path.join(cls.workdir, "prometheus")
        os.makedirs(os.path.join(pdir, "data"))
        conf = os.path.join(pdir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "scrape_configs:\n  - job_name: nettally\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{cls.metrics_port}']\n")
        h.run(["promtool", "check", "config", conf])
        cls.prom_log = open(os.path.join(pdir, "prometheus.log"), "w")
        argv = cls.topo.exec_argv(cls.topo.gw, [
            "prometheus", f"--config.file={conf}", f"--storage.tsdb.path={pdir}/data",
            f"--web.listen-address=127.0.0.1:{cls.prom_port}", "--log.level=warn"])
        proc = h.spawn(argv, stdout=cls.prom_log, stderr=cls.prom_log)
        h.add_cleanup(h.stop_process, proc)

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}: {cls._prom_log()}")
            try:
                return "Ready" in cls.fetch(f"http://127.0.0.1:{cls.prom_port}/-/ready")
            except AssertionError:
                return False
        h.wait_until(ready, 60, "prometheus ready", interval=0.5)
        # A first scrape before the traffic, so increase() over the test sees all of it.
        h.wait_until(lambda: cls.query("nettally_build_info"), 30, "prometheus' first scrape", interval=0.5)
        return proc

    @classmethod
    def _prom_log(cls):
        with open(cls.prom_log.name, errors="replace") as f:
            return f.read()[-3000:]

    @classmethod
    def fetch(cls, url):
        p = h.run(cls.topo.exec_argv(cls.topo.gw, [h.PYTHON, "-c", FETCH, url]), check=False, timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"GET {url} in the gateway namespace failed: {p.stderr.strip()[-500:]}")
        return p.stdout

    @classmethod
    def query(cls, expr, at=None):
        """Prometheus instant query: {labels (without __name__, instance, job) as a sorted tuple: (value, ts)}."""
        url = f"http://127.0.0.1:{cls.prom_port}/api/v1/query?query=" + urllib.parse.quote(expr)
        if at is not None:
            url += f"&time={at}"
        reply = json.loads(cls.fetch(url))
        if reply.get("status") != "success":
            raise AssertionError(f"query {expr}: {reply}")
        out = {}
        for r in reply["data"]["result"]:
            labels = tuple(sorted((k, v) for k, v in r["metric"].items()
                                  if k not in ("__name__", "instance", "job")))
            ts, value = r["value"]
            out[labels] = (float(value), float(ts))
        return out

    @classmethod
    def _traffic(cls):
        topo = cls.topo
        for fam, srv in ((4, topo.SRV4), (6, topo.SRV6)):
            h.client_run(topo, "udp", srv, PORT, "100,1000,1400", 3)
            h.client_run(topo, "tcp", srv, PORT, 200_000, 300_000)
        # Host i sends (i + 1) datagrams of 500 bytes from its own address: volumes all differ.
        code = ("import socket,sys\n"
                "srv,port=sys.argv[1],int(sys.argv[2])\n"
                "for i,ip in enumerate(sys.argv[3:]):\n"
                "    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "    s.bind((ip,0)); s.settimeout(5)\n"
                "    for _ in range(i+1):\n"
                "        s.sendto(bytes(500),(srv,port)); s.recvfrom(65535)\n"
                "    s.close()\n")
        h.run(topo.exec_argv(topo.cli, [h.PYTHON, "-c", code, topo.SRV4, str(PORT)] + cls.extra_ips))

    @classmethod
    def _measure(cls):
        """ctl readings around one Prometheus scrape, the network quiet."""
        cls.daemon.wait_polls(3)
        cls.status_a = cls.bus.status()
        cls.ifs_a = cls.ctl.json("interfaces")["interfaces"]
        cls.hosts_a = cls.ctl.json("hosts", "--top", 100000, "--sort", "l2")["hosts"]
        cls.usage_a = cls.ctl.json("thresholds", "usage")["usage"]
        polls_a = int(cls.status_a["polls"])

        # A scrape made after the first reading.
        def scraped():
            r = cls.query("nettally_polls_total")
            return r if r and next(iter(r.values()))[0] > polls_a else None
        polls = h.wait_until(scraped, 30, "a scrape after the ctl reading", interval=0.5)
        cls.scrape_polls, cls.scrape_ts = next(iter(polls.values()))
        cls.daemon.wait_polls(2)
        cls.ifs_b = cls.ctl.json("interfaces")["interfaces"]
        cls.hosts_b = cls.ctl.json("hosts", "--top", 100000, "--sort", "l2")["hosts"]
        cls.usage_b = cls.ctl.json("thresholds", "usage")["usage"]
        cls.status_b = cls.bus.status()
        at = cls.scrape_ts
        cls.prom_if_bytes = cls.query("nettally_interface_bytes_total", at)
        cls.prom_if_packets = cls.query("nettally_interface_packets_total", at)
        cls.prom_host_bytes = cls.query("nettally_host_bytes_total", at)
        cls.prom_host_packets = cls.query("nettally_host_packets_total", at)
        cls.prom_polls = cls.query("nettally_polls_total", at)
        cls.prom_flows = cls.query("nettally_flows_active", at)
        cls.prom_build = cls.query("nettally_build_info", at)
        cls.prom_usage = cls.query("nettally_threshold_usage_bytes", at)
        cls.prom_limit = cls.query("nettally_threshold_limit_bytes", at)

    @classmethod
    def _teardown(cls):
        h.run_cleanups()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    # -----------------------------------------------------------------------------------------

    def test_same_poll(self):
        """The scrape's poll lies between the two ctl readings, and they are equal (quiet network)."""
        self.assertEqual(len(self.prom_polls), 1)
        self.assertLessEqual(int(self.status_a["polls"]), self.scrape_polls)
        self.assertLessEqual(self.scrape_polls, int(self.status_b["polls"]))
        self.assertEqual(self.ifs_a, self.ifs_b, "the counts changed while the network was quiet")
        # first_seen/last_seen are converted from the kernel's boot clock at every poll and may move
        # by a microsecond; the counts must not move at all.
        counts = lambda hosts: [{k: v for k, v in x.items() if k not in ("first_seen", "last_seen")} for x in hosts]
        self.assertEqual(counts(self.hosts_a), counts(self.hosts_b),
                         "the host counts changed while the network was quiet")

    def test_interfaces_equal_ctl(self):
        want_bytes, want_packets = {}, {}
        for i in self.ifs_a:
            for d in ("ingress", "egress"):
                for layer in LAYERS:
                    key = (("direction", d), ("interface", i["name"]), ("layer", layer))
                    want_bytes[key] = float(i[d][layer])
                want_packets[(("direction", d), ("interface", i["name"]))] = float(i[d]["packets"])
        self.assertEqual(sorted(dict(k)["interface"] for k in want_packets), ["lan0", "lan0", "wan0", "wan0"])
        self.assertGreater(want_bytes[(("direction", "ingress"), ("interface", "lan0"), ("layer", "l2"))],
                           500_000, "the traffic is not in the totals")
        self.assertEqual({k: v[0] for k, v in self.prom_if_bytes.items()}, want_bytes)
        self.assertEqual({k: v[0] for k, v in self.prom_if_packets.items()}, want_packets)

    def test_hosts_equal_ctl_and_bounded(self):
        """Exactly MAX_HOSTS hosts, the largest by l2 volume, with the figures ctl shows."""
        self.assertGreater(len(self.hosts_a), MAX_HOSTS + HOSTS // 2, "the extra hosts were not counted")
        volume = {(x["interface"], x["ip"], x["mac"]): x["sent"]["l2"] + x["received"]["l2"] for x in self.hosts_a}
        ranked = sorted(volume, key=lambda k: -volume[k])
        self.assertGreater(volume[ranked[MAX_HOSTS - 1]], volume[ranked[MAX_HOSTS]],
                           "a tie at the cut: the expected top hosts are not defined")
        top = set(ranked[:MAX_HOSTS])
        want_bytes, want_packets = {}, {}
        for x in self.hosts_a:
            k = (x["interface"], x["ip"], x["mac"])
            if k not in top:
                continue
            for d in ("sent", "received"):
                base = (("direction", d), ("host", x["ip"]), ("interface", x["interface"]))
                for layer in LAYERS:
                    want_bytes[base + (("layer", layer), ("mac", x["mac"]))] = float(x[d][layer])
                want_packets[base + (("mac", x["mac"]),)] = float(x[d]["packets"])
        got_hosts = {(dict(k)["interface"], dict(k)["host"], dict(k)["mac"]) for k in self.prom_host_bytes}
        self.assertEqual(got_hosts, top)
        self.assertEqual(len(self.prom_host_bytes), MAX_HOSTS * 2 * len(LAYERS))
        self.assertEqual({k: v[0] for k, v in self.prom_host_bytes.items()}, want_bytes)
        self.assertEqual({k: v[0] for k, v in self.prom_host_packets.items()}, want_packets)

    def test_status_figures(self):
        self.assertEqual(next(iter(self.prom_flows.values()))[0], float(self.status_a["flows"]))
        self.assertEqual(len(self.prom_build), 1)
        self.assertIn(("version", self.status_a["version"]), next(iter(self.prom_build)))

    def test_threshold_usage_equal_ctl(self):
        # rate_bps_now decays while the network is quiet; usage and limit must not move.
        figures = lambda usage: [(u["name"], u["usage"], u["limit"]) for u in usage]
        self.assertEqual(figures(self.usage_a), figures(self.usage_b), "the usage changed while the network was quiet")
        want = {(("threshold", u["name"]),): float(u["usage"]) for u in self.usage_a}
        self.assertGreater(want[(("threshold", "lan-since"),)], 0, "the traffic is not in the threshold's usage")
        self.assertEqual({k: v[0] for k, v in self.prom_usage.items()}, want)
        self.assertEqual({k: v[0] for k, v in self.prom_limit.items()},
                         {(("threshold", u["name"]),): float(u["limit"]) for u in self.usage_a})

    def test_grafana_dashboard(self):
        """contrib/grafana/nettally.json: every query is valid PromQL for this Prometheus server and
        names only metrics the exposition has."""
        with open(os.path.join(h.SOURCE_DIR, "contrib", "grafana", "nettally.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreater(len(exprs), 5)
        served = self.fetch(f"http://127.0.0.1:{self.metrics_port}/metrics")
        families = {ln.split()[2] for ln in served.splitlines() if ln.startswith("# TYPE ")}
        # This daemon runs without cgroups.enabled: the cgroup families are not there.
        self.assertFalse(self.status_a["cgroups_enabled"])
        for e in exprs:
            for name in re.findall(r"\bnettally_[a-z0-9_]+", e):
                if name.startswith("nettally_cgroup_"):
                    self.assertIn(name, CGROUP_FAMILIES, f"dashboard query {e!r}: unknown cgroup metric")
                    continue
                self.assertIn(name, families, f"dashboard query {e!r} names a metric nettallyd does not export")
            q = e.replace("$instance", ".*").replace("$__rate_interval", "5s")
            self.query(q)  # raises unless Prometheus accepts it
        # The interface throughput panel shows the traffic sent.
        rate = self.query('sum(increase(nettally_interface_bytes_total{layer="l2"}[1h]))')
        self.assertGreater(next(iter(rate.values()))[0], 0)

    def test_promtool_check_metrics(self):
        text = self.fetch(f"http://127.0.0.1:{self.metrics_port}/metrics")
        self.assertIn("nettally_interface_bytes_total{", text)
        p = h.run(["promtool", "check", "metrics"], check=False, input=text)
        self.assertEqual(p.returncode, 0, f"promtool check metrics:\n{p.stdout}{p.stderr}")
        self.assertEqual((p.stdout + p.stderr).strip(), "", "promtool reported problems")

    def test_textfile(self):
        """The textfile is there, passes promtool and has the same families as the endpoint."""
        path = os.path.join(self.textfile_dir, "nettally.prom")
        h.wait_until(lambda: os.path.exists(path), 10, "the textfile")
        with open(path) as f:
            text = f.read()
        self.assertEqual(sorted(os.listdir(self.textfile_dir)), ["nettally.prom"], "a temp file was left")
        p = h.run(["promtool", "check", "metrics"], check=False, input=text)
        self.assertEqual(p.returncode, 0, f"promtool check metrics (textfile):\n{p.stdout}{p.stderr}")
        self.assertEqual((p.stdout + p.stderr).strip(), "")
        served = self.fetch(f"http://127.0.0.1:{self.metrics_port}/metrics")
        # The endpoint also has prometheus-cpp's own exposer_* families and the scrape's cost.
        families = lambda t: sorted(ln.split()[2] for ln in t.splitlines()
                                    if ln.startswith("# TYPE nettally_"))
        self.assertEqual(families(text), [f for f in families(served) if f != "nettally_scrape_collect_cpu_seconds"])


class ListenTest(unittest.TestCase):
    """metrics.listen on IPv6, and an address that cannot be listened on."""

    def setUp(self):
        h.require_all()
        h.require_tools("promtool")
        h.open_env(self, add_cleanup=self.addCleanup)

    def fetch(self, url):
        p = h.run(self.topo.exec_argv(self.topo.gw, [h.PYTHON, "-c", FETCH, url]), check=False, timeout=30)
        self.assertEqual(p.returncode, 0, f"GET {url}: {p.stderr.strip()[-500:]}")
        return p.stdout

    def test_ipv6(self):
        port = free_port()
        d = h.Daemon(self.topo, self.bus, self.workdir, extra=f"metrics:\n  listen: \"[::1]:{port}\"\n")
        d.start()
        self.addCleanup(d.stop)
        text = self.fetch(f"http://[::1]:{port}/metrics")
        self.assertIn("nettally_build_info{", text)
        p = h.run(["promtool", "check", "metrics"], check=False, input=text)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_address_not_here(self):
        """An address of no interface: nettallyd refuses to start and names the key."""
        d = h.Daemon(self.topo, self.bus, self.workdir, extra="metrics:\n  listen: 198.18.99.1:9847\n")
        with self.assertRaises(AssertionError):
            d.start(timeout=10)
        self.assertIn("metrics.listen", d.log_text())
        self.assertIn("198.18.99.1:9847", d.log_text())


if __name__ == "__main__":
    h.run_tests()
