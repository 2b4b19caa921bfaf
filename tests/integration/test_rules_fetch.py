#!/usr/bin/python3
"""The rule bundle pull (daemon/io/rules_fetch.h) against a real nginx.

nginx (upload_servers.Nginx: private config, static files under its root) runs in the test's
gateway namespace on 127.0.0.1; nt_rules_fetch_driver (tests/integration/rules_fetch_driver.cpp)
runs a RulesFetcher on an sd-event loop in the same namespace and prints a JSON line per finished
request ("attempt") and per bundle handed over ("bundle", with the signature checked against the
test's key and the bundle read). The bundles are real: `nettallyctl rules keygen` and
`rules compile --sign`. Refresh is 2 s, jitter 0, so the backoff schedule is exact:
250, 500, 1000, 2000, 2000 ms after 1, 2, 3, 4, 5 failures.

- Pull: first request 200 -> one bundle, signature ok, version 1; the next refresh sends
  If-None-Match and gets 304 -> counted, no bundle; the file replaced on the server -> 200 with
  version 2 within one refresh; nginx stopped -> failures counted, the waits between attempts
  follow the backoff schedule, no bundle; the file replaced meanwhile and nginx back -> version 3
  fetched at the next attempt, the failure count reset.
- The remembered ETag given at start (as the daemon restores it) -> the first answer is a 304.
- max_size smaller than the bundle -> every attempt fails ("larger than rules.max_size"), no bundle.
- https: with the server's CA as ca_file the bundle arrives; without it the request fails
  (certificate not trusted), no bundle.
- A bundle signed by another key is fetched and refused by the check ("signature by unknown key").
- libcurl not installed (libcurl.so.4 covered in the driver's mount namespace; it is loaded at the
  first pull): every attempt fails naming the library and is counted, nothing reaches nginx.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402
import upload_servers as us  # noqa: E402

REFRESH_MS = 2000
BACKOFF_MS = [250, 500, 1000, 2000, 2000]


def driver_path():
    return os.path.join(h.BUILD_DIR, "tests", "integration", "nt_rules_fetch_driver")


def rules_doc(version, classes):
    lines = [f"name: test\nversion: {version}\nclasses:"]
    for i in range(classes):
        lines.append(f"  - name: c{i}\n    id: {10 + i}\n    match: {{protocol: tcp, dport: {1000 + i}}}")
    return "\n".join(lines) + "\n"


class Driver:
    """The driver process in the gateway namespace, its JSON lines collected by a thread."""

    def __init__(self, topo, workdir, url, *args, wrapper=()):
        argv = topo.exec_argv(topo.gw, list(wrapper) + [driver_path(), url, str(REFRESH_MS)] + list(args))
        self.log = os.path.join(workdir, f"driver-{time.monotonic_ns()}.log")  # its spdlog lines
        with open(self.log, "w") as logf:
            self.proc = h.spawn(argv, stdout=subprocess.PIPE, stderr=logf)
        self._token = h.add_cleanup(self.stop)
        self.events = queue.Queue()
        self.all = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            ev["wall"] = time.monotonic()
            self.all.append(ev)
            self.events.put(ev)

    def next(self, timeout, what):
        try:
            return self.events.get(timeout=timeout * h.TIME_SCALE)
        except queue.Empty:
            with open(self.log, errors="replace") as f:
                err = f.read()[-2000:]
            raise AssertionError(f"no event within {timeout}s waiting for {what}; seen: {self.all[-5:]}; log: {err}")

    def next_attempt(self, timeout, what):
        """The next attempt event, with the bundle events before it."""
        bundles = []
        while True:
            ev = self.next(timeout, what)
            if ev["event"] == "bundle":
                bundles.append(ev)
                continue
            return ev, bundles

    def stop(self):
        if self._token:
            h.drop_cleanup(self._token)
            self._token = None
        if self.proc:
            h.stop_process(self.proc)
            self.proc = None


class RulesFetchTest(unittest.TestCase):
    def setUp(self):
        h.require_root()
        h.require_tools("ip", "nginx", "openssl")
        for p in (driver_path(), h.nettallyctl_path()):
            if not os.access(p, os.X_OK):
                raise AssertionError(f"not built: {p} (NT_BUILD_DIR={h.BUILD_DIR})")
        h.open_env(self, bus=False, add_cleanup=self.addCleanup)
        self.keys = os.path.join(self.workdir, "keys")
        os.makedirs(self.keys)
        self.ctl("rules", "keygen", os.path.join(self.keys, "signer"))
        self.ctl("rules", "keygen", os.path.join(self.keys, "stranger"))
        self.pub = os.path.join(self.keys, "signer.pub")

    def ctl(self, *args):
        return h.run([h.nettallyctl_path()] + list(args))

    def bundle(self, version, classes=1, key="signer"):
        doc = os.path.join(self.workdir, f"rules-{version}-{classes}-{key}.yaml")
        out = doc[:-5] + ".bundle"
        with open(doc, "w") as f:
            f.write(rules_doc(version, classes))
        self.ctl("rules", "compile", doc, "-o", out, "--sign", os.path.join(self.keys, key + ".key"))
        with open(out, "rb") as f:
            return f.read()

    def serve(self, server, data, mtime_offset=0):
        """Puts `data` at /rules/gw.bundle, replacing the file atomically (rename), its mtime moved
        by mtime_offset seconds so nginx's ETag (mtime-size) changes even within one second."""
        d = os.path.join(server.root, "rules")
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, ".gw.bundle.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        t = time.time() + mtime_offset
        os.utime(tmp, (t, t))
        os.rename(tmp, os.path.join(d, "gw.bundle"))
        return f"{'https' if server.tls else 'http'}://127.0.0.1:{server.port}/rules/gw.bundle"

    def nginx(self, tls=False):
        server = us.Nginx(self.topo, self.workdir, "nt", "unused", tls=tls)
        self.addCleanup(server.stop)
        return server

    def test_pull_not_modified_change_outage_backoff_and_return(self):
        server = self.nginx().start()
        url = self.serve(server, self.bundle(1))
        d = Driver(self.topo, self.workdir, url, "--key", self.pub)
        self.addCleanup(d.stop)

        # 1. The first request: 200, one bundle, signed by the trusted key.
        a1, bundles = d.next_attempt(10, "the first request")
        self.assertEqual((a1["fetches"], a1["not_modified"], a1["failures"]), (1, 0, 0), a1)
        self.assertEqual(len(bundles), 1, bundles)
        self.assertEqual(bundles[0]["verify"], "", bundles[0])
        self.assertEqual(bundles[0]["version"], 1)
        self.assertTrue(a1["etag"].startswith('"'), a1)  # nginx's ETag, remembered
        self.assertAlmostEqual(a1["next_ms"], REFRESH_MS, delta=150)

        # 2. One refresh later: If-None-Match -> 304, counted, no bundle.
        a2, bundles = d.next_attempt(REFRESH_MS / 1000 + 3, "the second request")
        self.assertEqual((a2["attempts"], a2["fetches"], a2["not_modified"], a2["failures"]), (2, 1, 1, 0), a2)
        self.assertEqual(bundles, [])
        self.assertAlmostEqual(a2["t_ms"] - a1["t_ms"], REFRESH_MS, delta=400)
        log = [x for x in server.access_log() if "/rules/gw.bundle" in x]
        self.assertEqual([(" 200 " in x, " 304 " in x) for x in log], [(True, False), (False, True)], log)

        # 3. The file replaced: the next request (within one refresh) brings version 2.
        replaced = time.monotonic()
        self.serve(server, self.bundle(2, classes=2), mtime_offset=5)
        a3, bundles = d.next_attempt(REFRESH_MS / 1000 + 3, "the request after the change")
        self.assertLessEqual(a3["wall"] - replaced, REFRESH_MS / 1000 + 0.5)
        self.assertEqual((a3["fetches"], a3["not_modified"], a3["failures"]), (2, 1, 0), a3)
        self.assertEqual([(b["version"], b["verify"]) for b in bundles], [(2, "")])
        self.assertNotEqual(a3["etag"], a1["etag"])

        # 4. nginx stopped: failures, the waits follow the backoff schedule, no bundle.
        server.stop()
        fails = []
        while len(fails) < len(BACKOFF_MS) + 1:
            a, bundles = d.next_attempt(REFRESH_MS / 1000 + 3, "failed requests")
            self.assertEqual(bundles, [])
            self.assertEqual(a["fetches"], 2, a)
            fails.append(a)
        for i, a in enumerate(fails):
            self.assertEqual(a["consecutive_failures"], i + 1, a)
            self.assertEqual(a["failures"], i + 1, a)
            self.assertNotEqual(a["last_error"], "", a)
            self.assertAlmostEqual(a["next_ms"], BACKOFF_MS[min(i, len(BACKOFF_MS) - 1)], delta=60, msg=a)
        gaps = [b["t_ms"] - a["t_ms"] for a, b in zip(fails, fails[1:])]
        h.log(f"failed attempts {[a['t_ms'] for a in fails]}, gaps {gaps} ms, error {fails[0]['last_error']!r}")
        for gap, want in zip(gaps, BACKOFF_MS):
            self.assertGreaterEqual(gap, want - 20, gaps)
            self.assertLessEqual(gap, want + 300, gaps)

        # 5. The file replaced while the server was away, nginx back: version 3 at the next attempt.
        self.serve(server, self.bundle(3, classes=3), mtime_offset=10)
        server.start()
        back = time.monotonic()
        a, bundles = d.next_attempt(REFRESH_MS / 1000 + 3, "the request after nginx came back")
        self.assertLessEqual(a["wall"] - back, REFRESH_MS / 1000 + 0.5)
        self.assertEqual((a["fetches"], a["consecutive_failures"], a["last_error"]), (3, 0, ""), a)
        self.assertEqual([(b["version"], b["verify"]) for b in bundles], [(3, "")])
        self.assertEqual(len([e for e in d.all if e["event"] == "bundle"]), 3)

    def test_remembered_etag_gives_304_at_start(self):
        server = self.nginx().start()
        url = self.serve(server, self.bundle(1))
        d = Driver(self.topo, self.workdir, url)
        self.addCleanup(d.stop)
        a1, bundles = d.next_attempt(10, "the first request")
        self.assertEqual(len(bundles), 1)
        d.stop()
        # A restart with the ETag kept: nothing to fetch.
        d2 = Driver(self.topo, self.workdir, url, "--etag", a1["etag"])
        self.addCleanup(d2.stop)
        a, bundles = d2.next_attempt(10, "the first request after the restart")
        self.assertEqual((a["fetches"], a["not_modified"], bundles), (0, 1, []), a)
        self.assertEqual(a["etag"], a1["etag"])

    def test_larger_than_max_size_is_a_failure(self):
        server = self.nginx().start()
        data = self.bundle(1, classes=4)
        url = self.serve(server, data)
        d = Driver(self.topo, self.workdir, url, "--max-size", str(len(data) - 1))
        self.addCleanup(d.stop)
        for i in range(2):
            a, bundles = d.next_attempt(10, "a refused request")
            self.assertEqual(bundles, [])
            self.assertEqual((a["fetches"], a["failures"]), (0, i + 1), a)
            self.assertEqual(a["last_error"], f"larger than rules.max_size ({len(data) - 1} bytes)")
        d.stop()
        d = Driver(self.topo, self.workdir, url, "--max-size", str(len(data)))
        self.addCleanup(d.stop)
        a, bundles = d.next_attempt(10, "an accepted request")
        self.assertEqual((a["fetches"], len(bundles), bundles[0]["bytes"]), (1, 1, len(data)), a)

    def test_without_libcurl_every_attempt_fails_and_is_counted(self):
        server = self.nginx().start()
        url = self.serve(server, self.bundle(1))
        d = Driver(self.topo, self.workdir, url, "--key", self.pub, wrapper=h.without_library("libcurl.so.4"))
        self.addCleanup(d.stop)
        for i in range(2):
            a, bundles = d.next_attempt(10, "a request without libcurl")
            self.assertEqual(bundles, [])
            self.assertEqual((a["fetches"], a["failures"], a["consecutive_failures"]), (0, i + 1, i + 1), a)
            self.assertIn("libcurl.so.4", a["last_error"])
        h.log(f"without libcurl: {a['last_error']!r}")
        self.assertFalse([x for x in server.access_log() if "/rules/gw.bundle" in x], "a request reached nginx")
        d.stop()
        # The same driver with libcurl: the bundle arrives.
        d = Driver(self.topo, self.workdir, url, "--key", self.pub)
        self.addCleanup(d.stop)
        a, bundles = d.next_attempt(10, "the request with libcurl")
        self.assertEqual((a["fetches"], a["failures"], len(bundles)), (1, 0, 1), a)

    def test_https_with_and_without_the_ca_file(self):
        server = self.nginx(tls=True).start()
        url = self.serve(server, self.bundle(1))
        self.assertTrue(url.startswith("https://"))
        d = Driver(self.topo, self.workdir, url, "--ca-file", server.cert, "--key", self.pub)
        self.addCleanup(d.stop)
        a, bundles = d.next_attempt(10, "the https request")
        self.assertEqual((a["fetches"], a["failures"]), (1, 0), a)
        self.assertEqual([(b["version"], b["verify"]) for b in bundles], [(1, "")])
        d.stop()
        d = Driver(self.topo, self.workdir, url)
        self.addCleanup(d.stop)
        a, bundles = d.next_attempt(10, "the untrusted https request")
        self.assertEqual((a["fetches"], a["failures"], bundles), (0, 1, []), a)
        self.assertIn("certificate", a["last_error"].lower(), a)

    def test_bundle_by_unknown_key_is_fetched_and_refused(self):
        server = self.nginx().start()
        url = self.serve(server, self.bundle(1, key="stranger"))
        d = Driver(self.topo, self.workdir, url, "--key", self.pub)
        self.addCleanup(d.stop)
        a, bundles = d.next_attempt(10, "the request")
        self.assertEqual(a["fetches"], 1, a)
        self.assertEqual(len(bundles), 1)
        self.assertTrue(bundles[0]["verify"].startswith("signature by unknown key "), bundles[0])


if __name__ == "__main__":
    h.run_tests()
