#!/usr/bin/python3
"""Upload of spooled accounting files to real servers the test starts itself.

Topology: ntharness.py. nettallyd runs in the gateway namespace; the file servers (upload_servers.py)
run in the same namespace on 127.0.0.1, each with its own generated config, a test user created for
the run (random password, removed afterwards). Files come from nettallyd's own recorder (records
enabled, small files, Rotate over D-Bus), never from the test.

- FTP (vsftpd), WebDAV (nginx, basic auth) and SFTP (sshd's internal-sftp, host key pinned by its
  SHA-256): the server is down at first (several retry rounds, UploadFailed "transient" seen), then
  started; every file arrives exactly once under its spool name, byte-identical to the spooled
  file (sha256 taken while it waited), with no temporary ".part" left; files rotated while the
  server is up arrive too; the interface records on the server sum to ListInterfaces.
- Flaky HTTP server: 503 + Retry-After twice, then success: the retries wait at least Retry-After;
  a connection cut mid-body leaves a torn temporary file that never gets the final name, and the
  retry delivers the whole file once.
- Wrong password (nginx 401; sshd; vsftpd 530, and a 530 given later than connect_timeout): one
  attempt, then a pause (no retry storm, state auth_failed, a clear error); `nettallyctl upload
  now` makes exactly one more attempt; `nettallyctl upload set-target --password-stdin` with the
  right one resumes at once.
- TLS: https (nginx), ftps and ftpes (vsftpd, implicit and explicit TLS) work the same
  way with the server's certificate trusted through upload.ca_file; a certificate the CA file
  does not vouch for fails once as "auth" (could not be verified) and pauses, sending nothing.
- Spool cap: with the server down and spool_max_files 3, the oldest files are dropped and
  SpoolDropped is seen; the newest stay.
- Credentials: the password read from upload.password_file, and from upload.password_credential
  in $CREDENTIALS_DIRECTORY (systemd LoadCredential=), uploads every file.
- libcurl not installed (libcurl.so.4 covered in the daemon's mount namespace; nettallyd loads it
  at its first transfer, never at start): nettallyd starts, every attempt fails naming the
  library and is counted (UploadFailed, failed_attempts), the file stays in the spool, nothing
  reaches the server and the counters go on counting; restarted with libcurl, the file goes out.
- In every test the password appears nowhere in the daemon's log, any process's command line, or
  any D-Bus reply.
"""

import glob
import hashlib
import json
import os
import pwd
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402
import upload_servers as us  # noqa: E402

PORT = 5301
IFACES = ("lan0", "wan0")
UPLOAD_IFACE = "org.nettally.Accounting1.Upload"
RECORDS_IFACE = "org.nettally.Accounting1.Records"
RECORDS = {"enabled": "true", "period": "1h", "interval": "1s", "max_file_size": 1500,
           "types": "[interface, host]"}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def section(name, values):
    lines = [f"{name}:"]
    for k, v in values.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


class UploadBase(unittest.TestCase):
    def setUp(self):
        h.require_all()
        h.require_tools("vsftpd", "nginx", "sshd", "ssh-keygen", "openssl", "useradd", "chpasswd")
        h.open_env(self, add_cleanup=self.addCleanup)
        self.user = us.TestUser(self.workdir, self.tag).create()
        self.addCleanup(self.user.remove)
        self.monitor = h.SignalMonitor(self.bus).start()
        self.addCleanup(self.monitor.stop)
        self.traffic_server = h.TrafficServer(self.topo, PORT, [self.topo.SRV4]).start()
        self.addCleanup(self.traffic_server.stop)
        self.daemon = None
        self.secrets = [self.user.password]
        self.replies = []

    def tearDown(self):
        if self.daemon is not None:
            self.daemon.stop()

    def start_daemon(self, upload, records=RECORDS, env=None, wrapper=None):
        upload = dict({"retry_min": "200ms", "retry_max": "1s", "connect_timeout": "2s", "stall_timeout": "3s"},
                      **upload)
        text = h.config_yaml("{state_dir}", poll="200ms", pin_dir="{pin_dir}",
                             extra=section("records", records) + section("upload", upload))
        self.daemon = h.Daemon(self.topo, self.bus, self.workdir, config_text=text)
        self.daemon.env.update(env or {})
        self.daemon.wrapper = list(wrapper or [])
        os.chmod(self.daemon.config_path, 0o600)
        self.daemon.start()
        self.spool = os.path.join(self.daemon.state_dir, "spool")
        return self.daemon

    # -- D-Bus -------------------------------------------------------------------------------

    def ucall(self, method, sig="", *args, user=None, iface=UPLOAD_IFACE):
        a = ["--json=short", "call", h.BUS_NAME, h.BUS_PATH, iface, method]
        if sig:
            a += [sig] + [str(x) for x in args]
        p = self.bus.busctl(*a, user=user)
        self.replies.append(p.stdout + p.stderr)
        data = json.loads(p.stdout)["data"] if p.returncode == 0 and p.stdout.strip() else None
        return p, data

    def ucall_ok(self, method, sig="", *args, iface=UPLOAD_IFACE):
        p, data = self.ucall(method, sig, *args, iface=iface)
        self.assertEqual(p.returncode, 0, f"{method} failed: {p.stderr.strip()}\n{self.daemon.log_tail()}")
        return data

    def status(self):
        return {k: v["data"] for k, v in self.ucall_ok("GetUploadStatus")[0].items()}

    def spool_list(self):
        return self.ucall_ok("ListSpool")[0]

    def rotate(self):
        return self.ucall_ok("Rotate", iface=RECORDS_IFACE)[0]

    def traffic(self, n=1):
        t = self.topo
        for i in range(n):
            h.client_run(t, "udp", t.SRV4, PORT, "100,400,1000", 15, 41000 + i)
            h.client_run(t, "tcp", t.SRV4, PORT, 20000, 30000)

    def rotated_names(self):
        return {s["data"][0]: s["data"][3] for s in self.monitor.signals("FileRotated", RECORDS_IFACE)}

    def succeeded(self):
        return [s["data"] for s in self.monitor.signals("UploadSucceeded", UPLOAD_IFACE)]

    def failed(self, kind=None):
        return [s["data"] for s in self.monitor.signals("UploadFailed", UPLOAD_IFACE)
                if kind is None or s["data"][1] == kind]

    def wait_spool_empty(self, timeout=30):
        def empty():
            return not self.spool_list() and not [n for n in os.listdir(self.spool) if not n.startswith(".")]
        try:
            h.wait_until(empty, timeout, "the spool to be empty (every file uploaded)", interval=0.2)
        except AssertionError:
            raise AssertionError(f"spool not emptied: {self.spool_list()}\nstatus {self.status()}\n"
                                 f"{self.daemon.log_tail(40)}")

    def list_interfaces(self):
        out = {}
        for name, _role, _idx, ing, eg, *_rest in self.bus.call_ok("ListInterfaces")[0]:
            out[(name, "ingress")] = dict(zip(h.FIGURES, ing))
            out[(name, "egress")] = dict(zip(h.FIGURES, eg))
        return out

    # -- checks ------------------------------------------------------------------------------

    def check_server_dir(self, server_dir, expected_sha):
        """The server holds exactly the rotated files, once each, complete; the ones whose spool
        checksum we took are byte-identical; no temporary file is left; records sum to the totals."""
        rotated = self.rotated_names()
        on_server = sorted(os.listdir(server_dir))
        h.log(f"server: {len(on_server)} files; rotated: {len(rotated)}; checksummed in the spool: "
              f"{len(expected_sha)}")
        self.assertFalse([n for n in on_server if n.endswith(".part")], f"temporary files left: {on_server}")
        self.assertEqual(sorted(rotated), on_server, "server files != files the recorder rotated")
        for n, size in rotated.items():
            self.assertEqual(os.path.getsize(os.path.join(server_dir, n)), size, f"{n}: size on the server")
        for n, digest in expected_sha.items():
            self.assertEqual(sha256(os.path.join(server_dir, n)), digest, f"{n}: content differs from the spool")
        ok = self.succeeded()
        self.assertEqual(sorted(d[0] for d in ok), on_server, "one UploadSucceeded per file, none twice")
        records = h.read_records(server_dir)
        sums = h.sum_records([r for r in records if r["_type"] == "interface"],
                             lambda r: (r["interface"], r["direction"]))
        api = self.list_interfaces()
        for iface in IFACES:
            for d in h.DIRECTIONS:
                self.assertEqual(sums.get((iface, d), h.zero()), api[(iface, d)],
                                 f"{iface} {d}: interface records on the server != ListInterfaces")
        h.log(f"records on the server sum to ListInterfaces: "
              + "; ".join(f"{k[0]} {k[1]} {v['packets']} pkts {v['l2']} B" for k, v in sorted(sums.items())))

    def identity_refused(self, upload, what):
        """A server that is not the one configured (certificate, host key): one attempt ends as
        an auth failure saying so, then uploads pause. The caller checks the server got nothing."""
        self.start_daemon(dict({"username": self.user.name, "password": self.user.password, "auth_retry": "1h"},
                               **upload))
        self.traffic(1)
        self.rotate()
        h.wait_until(lambda: self.failed("auth"), 20, "UploadFailed(auth)")
        time.sleep(2)  # time: a window in which an unpaused uploader would try again
        st = self.status()
        h.log(f"{what}: state {st['state']}; error: {st['last_error']}")
        self.assertEqual(len(self.failed()), 1, "one attempt, then a pause")
        self.assertEqual(st["state"], "auth_failed", st)
        self.assertIn("could not be verified", st["last_error"])

    def check_no_leak(self):
        """The password is in no log line, command line, or D-Bus reply."""
        for s in self.secrets:
            self.assertNotIn(s, self.daemon.log_text(), "password in nettallyd's log")
            for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    with open(cmdline, "rb") as f:
                        data = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                self.assertNotIn(s, data, f"password in {cmdline}: {data[:200]}")
            replies = list(self.replies)
            for m in ("GetUploadStatus", "ListSpool"):
                p, _ = self.ucall(m)
                replies.append(p.stdout)
            replies.append(json.dumps(self.bus.call_ok("GetStatus")))
            p = self.bus.busctl("introspect", h.BUS_NAME, h.BUS_PATH)
            replies.append(p.stdout)
            replies.append(json.dumps(self.monitor.signals()))
            for r in replies:
                self.assertNotIn(s, r, "password in a D-Bus reply or signal")
            p = h.Ctl(self.bus.address).run("upload", "status")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn(s, p.stdout + p.stderr)
        h.log("password: not in the log, any /proc/*/cmdline, D-Bus replies or signals")

    def down_then_up(self, server, url, server_dir, upload_extra=None):
        """Server down for several retry rounds, then started: every file arrives once."""
        self.start_daemon(dict({"url": url, "username": self.user.name, "password": self.user.password},
                               **(upload_extra or {})))
        self.traffic(2)
        names = self.rotate()
        self.assertTrue(names, "Rotate closed no file")
        h.wait_until(lambda: len(self.failed("transient")) >= 3, 20, "3 failed attempts while the server is down")
        st = self.status()
        self.assertIn(st["state"], ("waiting", "uploading"), st)  # retrying (an attempt may be running)
        self.assertGreaterEqual(st["consecutive_failures"], 3, st)
        self.assertTrue(st["last_error"], st)
        spooled = {n: sha256(os.path.join(self.spool, n)) for n in os.listdir(self.spool) if not n.startswith(".")}
        self.assertEqual(sorted(spooled), sorted(self.rotated_names()), "spool != rotated files")
        h.log(f"server down: {len(self.failed('transient'))} failed attempts, {len(spooled)} files waiting; "
              f"last error: {st['last_error']}")
        server.start()
        t0 = time.monotonic()
        self.wait_spool_empty()
        h.log(f"server up: {len(spooled)} files uploaded in {time.monotonic() - t0:.2f} s")
        # While the server is up, new files go straight out.
        self.traffic(1)
        self.rotate()
        self.wait_spool_empty()
        h.wait_until(lambda: len(self.succeeded()) == len(self.rotated_names()), 10, "UploadSucceeded for each")
        self.check_server_dir(server_dir, spooled)
        st = self.status()
        self.assertEqual((st["state"], st["uploaded_files"], st["last_error"]),
                         ("idle", len(self.rotated_names()), ""), st)
        self.check_no_leak()

    def wrong_password_then_resume(self, url, attempts, code, **upload):
        """Wrong password: one login attempt, then a pause (no retry storm), state auth_failed with a
        clear error naming `code`; `nettallyctl upload set-target --password-stdin` with the right
        one resumes at once. `attempts()` lists the server's log lines of login attempts."""
        wrong = "wrong-" + self.user.password[::-1]
        self.secrets.append(wrong)
        self.start_daemon(dict({"url": url, "username": self.user.name, "password": wrong, "auth_retry": "1h"},
                               **upload))
        self.traffic(1)
        self.rotate()
        h.wait_until(lambda: self.failed("auth"), 20, "UploadFailed(auth)")
        time.sleep(3)  # 3 s = many retry_max rounds: an unpaused uploader would try again and again
        tries = attempts()
        st = self.status()
        h.log(f"wrong password: {len(tries)} attempts in 3 s; state {st['state']}; error: {st['last_error']}")
        self.assertEqual(len(tries), 1, f"retry storm on a wrong password: {tries}")
        self.assertEqual(len(self.failed("auth")), 1)
        self.assertEqual(st["state"], "auth_failed", st)
        self.assertIn(code, st["last_error"])
        self.assertIn("check upload.username and the password", st["last_error"])
        self.assertIn("check upload.username and the password", self.daemon.log_text())
        self.assertTrue(self.spool_list(), "the file must stay in the spool")
        # `nettallyctl upload now` ends the pause for one attempt: still the wrong password.
        ctl = h.Ctl(self.bus.address)
        p = ctl.run("upload", "now")
        self.assertEqual(p.returncode, 0, p.stderr)
        h.wait_until(lambda: len(self.failed("auth")) == 2, 20, "a second UploadFailed(auth) after UploadNow")
        h.wait_until(lambda: len(attempts()) == 2, 10, "the server to log the second login")
        time.sleep(1)  # time: a window in which a third, unwanted attempt would show
        self.assertEqual((len(attempts()), self.status()["state"]), (2, "auth_failed"), "one attempt per UploadNow")
        # The right password through nettallyctl (stdin, never argv) resumes at once.
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        p = h.run([h.nettallyctl_path(), "upload", "set-target", url, "--user", self.user.name,
                   "--password-stdin"], input=self.user.password + "\n", env=env, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = ctl.run("upload", "set-target", url, "--password=x")
        self.assertEqual(p.returncode, 2, "a password on the command line is refused")
        p = ctl.run("upload", "set-target", url, "--password-stdin", user=h.NOBODY)
        self.assertNotEqual(p.returncode, 0, "set-target is refused to nobody")
        self.wait_spool_empty()
        st = self.status()
        self.assertEqual((st["target_source"], st["state"]), ("dbus", "idle"), st)
        self.assertFalse(st.get("password") if isinstance(st.get("password"), str) else False)
        override = os.path.join(self.daemon.state_dir, "upload.json")
        self.assertEqual(os.stat(override).st_mode & 0o777, 0o600, "upload.json mode")
        self.check_no_leak()


class FtpTest(UploadBase):
    def test_vsftpd_down_then_up_exactly_once(self):
        server = us.Vsftpd(self.topo, self.workdir, self.user)
        self.addCleanup(server.stop)
        self.down_then_up(server, server.url("incoming/nettally"),
                          os.path.join(self.user.home, "incoming", "nettally"))

    def test_wrong_password_530_pauses_then_set_target_resumes(self):
        # vsftpd answers a wrong password with 530 after PAM's failure delay (pam_unix: ~2 s) and
        # its own delay_failed_login; the login phase counts against connect_timeout.
        server = us.Vsftpd(self.topo, self.workdir, self.user, delay_failed_login=0).start()
        self.addCleanup(server.stop)
        self.wrong_password_then_resume(server.url("incoming/nettally"), server.failed_logins, "530",
                                        connect_timeout="10s")

    def test_slow_refusal_is_an_auth_failure_not_a_timeout_storm(self):
        # PAM's delay plus delay_failed_login 4 s > connect_timeout 2 s: the client gives up after
        # reply 331 before the 530 comes; that is a refused password too, not a timeout to retry.
        server = us.Vsftpd(self.topo, self.workdir, self.user, delay_failed_login=4).start()
        self.addCleanup(server.stop)
        self.wrong_password_then_resume(server.url("incoming/nettally"), server.failed_logins, "reply 331")


class WebdavTest(UploadBase):
    def test_nginx_webdav_down_then_up_exactly_once(self):
        server = us.Nginx(self.topo, self.workdir, self.user.name, self.user.password)
        self.addCleanup(server.stop)
        self.down_then_up(server, server.url("incoming"), server.path("incoming"))
        puts = [x for x in server.access_log() if '"PUT ' in x]
        moves = [x for x in server.access_log() if '"MOVE ' in x]
        h.log(f"nginx: {len(puts)} PUT, {len(moves)} MOVE")
        self.assertTrue(all(".part " in x for x in puts), "every PUT goes to a temporary name")

    def test_wrong_password_pauses_then_set_target_resumes(self):
        server = us.Nginx(self.topo, self.workdir, self.user.name, self.user.password).start()
        self.addCleanup(server.stop)

        def attempts():
            return [x for x in server.access_log() if '"PUT ' in x]
        self.wrong_password_then_resume(server.url("in"), attempts, "401")
        self.assertIn(" 401 ", attempts()[0])


class SftpTest(UploadBase):
    def user_dir(self, name):
        path = os.path.join(self.user.home, name)
        os.makedirs(path)
        pw = pwd.getpwnam(self.user.name)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        return path

    def sshd(self, start=False):
        """(server, target directory in the test user's home, sftp URL of it); started or not."""
        server = us.Sshd(self.topo, self.workdir, self.user)
        if start:
            server.start()
        self.addCleanup(server.stop)
        target = self.user_dir("acct")
        return server, target, f"sftp://127.0.0.1:{server.port}{target}/"

    def test_sftp_down_then_up_exactly_once(self):
        server, target, url = self.sshd()
        self.down_then_up(server, url, target, {"ssh_host_key_sha256": server.host_key_sha256})

    def test_wrong_password_pauses_then_set_target_resumes(self):
        server, _, url = self.sshd(start=True)
        self.wrong_password_then_resume(url, server.failed_logins, "login denied",
                                        ssh_host_key_sha256=server.host_key_sha256)

    def known_hosts(self, server, key_pub):
        """An OpenSSH known_hosts file naming the server (host and port) with the key in key_pub."""
        with open(key_pub) as f:
            kind, blob = f.read().split()[:2]
        path = os.path.join(self.workdir, f"known_hosts-{server.port}-{os.path.basename(key_pub)}")
        with open(path, "w") as f:
            f.write(f"[127.0.0.1]:{server.port} {kind} {blob}\n")
        return path

    def test_known_hosts_file_down_then_up_exactly_once(self):
        server, target, url = self.sshd()
        self.down_then_up(server, url, target, {"ssh_known_hosts": self.known_hosts(server, server.key + ".pub")})

    def test_other_host_key_pauses_uploads(self):
        """known_hosts (or the pinned SHA-256) names another key: the server is not the one
        configured, so no password goes to it: one auth failure, the file stays."""
        other = os.path.join(self.workdir, "other_ed25519")
        h.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other])
        server, target, url = self.sshd(start=True)
        fp = h.run(["ssh-keygen", "-l", "-E", "sha256", "-f", other + ".pub"]).stdout.split()[1][len("SHA256:"):]
        for how, opts in [("known_hosts", {"ssh_known_hosts": self.known_hosts(server, other + ".pub")}),
                          ("ssh_host_key_sha256", {"ssh_host_key_sha256": fp})]:
            with self.subTest(how):
                self.identity_refused(dict({"url": url}, **opts),
                                      f"other host key by {how}")
                log = server.log_text()
                self.assertFalse([x for x in log.splitlines() if "password for" in x],
                                 f"a password went to a server with another key:\n{log}")
                self.assertEqual(os.listdir(target), [], "nothing was sent to that server")
                self.assertTrue(self.spool_list(), "the file must stay in the spool")
                self.check_no_leak()
                self.daemon.stop()
                self.monitor.clear()


class TlsTest(UploadBase):
    """https (nginx WebDAV), ftps (implicit TLS) and ftpes (explicit TLS) with vsftpd, the
    server's self-signed certificate trusted through upload.ca_file; a certificate from another CA
    is an auth failure."""

    def test_https_webdav_down_then_up_exactly_once(self):
        server = us.Nginx(self.topo, self.workdir, self.user.name, self.user.password, tls=True)
        self.addCleanup(server.stop)
        self.down_then_up(server, server.url("incoming"), server.path("incoming"), {"ca_file": server.cert})

    def test_ftps_implicit_down_then_up_exactly_once(self):
        server = us.Vsftpd(self.topo, self.workdir, self.user, tls="implicit")
        self.addCleanup(server.stop)
        self.down_then_up(server, server.url("incoming/nettally"),
                          os.path.join(self.user.home, "incoming", "nettally"), {"ca_file": server.cert})

    def test_ftpes_explicit_down_then_up_exactly_once(self):
        server = us.Vsftpd(self.topo, self.workdir, self.user, tls="explicit")
        self.addCleanup(server.stop)
        self.down_then_up(server, server.url("incoming/nettally"),
                          os.path.join(self.user.home, "incoming", "nettally"), {"ca_file": server.cert})
        self.assertTrue(self.succeeded()[0][1].startswith("ftpes://"), self.succeeded()[0])

    def test_untrusted_certificate_pauses_uploads(self):
        server = us.Nginx(self.topo, self.workdir, self.user.name, self.user.password, tls=True).start()
        self.addCleanup(server.stop)
        other_ca, _ = us.self_signed_cert(self.workdir, "other")
        self.identity_refused({"url": server.url("in"), "ca_file": other_ca}, "untrusted certificate")
        self.assertFalse([x for x in server.access_log() if '"PUT ' in x], "nothing was sent to that server")
        self.assertTrue(self.spool_list(), "the file must stay in the spool")
        self.check_no_leak()


class CredentialsTest(UploadBase):
    """The password from upload.password_file, and from upload.password_credential as systemd's
    LoadCredential= hands it over ($CREDENTIALS_DIRECTORY/<name>): the config holds no password."""

    def upload_with(self, upload, env=None):
        server = us.Nginx(self.topo, self.workdir, self.user.name, self.user.password).start()
        self.addCleanup(server.stop)
        self.start_daemon(dict({"url": server.url("in"), "username": self.user.name}, **upload), env=env)
        with open(self.daemon.config_path) as f:
            self.assertNotIn(self.user.password, f.read())
        self.traffic(1)
        self.assertTrue(self.rotate())
        self.wait_spool_empty()
        self.assertEqual(sorted(os.listdir(server.path("in"))), sorted(self.rotated_names()))
        self.check_no_leak()

    def secret_file(self, directory, name):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(self.user.password + "\n")
        os.chmod(path, 0o600)
        return path

    def test_password_file(self):
        self.upload_with({"password_file": self.secret_file(os.path.join(self.workdir, "secret"), "pw")})

    def test_systemd_credential(self):
        creds = os.path.join(self.workdir, "credentials")
        self.secret_file(creds, "upload-password")
        self.upload_with({"password_credential": "upload-password"}, env={"CREDENTIALS_DIRECTORY": creds})


class FlakyHttpTest(UploadBase):
    def test_503_retry_after_then_cut_mid_transfer(self):
        server = us.Flaky(self.topo, self.workdir, self.user.name, self.user.password,
                          plan=["503:1", "503:1", "ok", "cut:300"]).start()
        self.addCleanup(server.stop)
        self.start_daemon({"url": server.url("in"), "username": self.user.name, "password": self.user.password})
        self.traffic(1)
        # One file at a time, so the plan meets the files in a known order.
        first = self.rotate()
        self.wait_spool_empty(timeout=30)
        reqs = server.requests()
        puts = [r for r in reqs if r["method"] == "PUT"]
        self.assertEqual([r["status"] for r in puts[:3]], [503, 503, 201], reqs)
        gaps = [puts[i + 1]["t"] - puts[i]["t"] for i in range(2)]
        h.log(f"503 + Retry-After: 1 twice: retries after {gaps[0]:.2f} s and {gaps[1]:.2f} s")
        for g in gaps:
            self.assertGreaterEqual(g, 0.95, "retried before Retry-After")
        self.assertGreaterEqual(len(self.failed("transient")), 2)
        self.assertIn("503", self.failed("transient")[0][2])
        # The fourth PUT (whichever file it carries) is cut mid-body: a torn temporary file on the
        # server, never under the final name; the retry sends the whole file.
        self.traffic(1)
        second = self.rotate()
        self.wait_spool_empty(timeout=30)
        reqs = server.requests()
        cut = [i for i, r in enumerate(reqs) if r["status"] == "cut"]
        self.assertEqual(len(cut), 1, reqs)
        torn = reqs[cut[0]]
        self.assertTrue(torn["path"].endswith(".part"), torn)
        after = [r for r in reqs[cut[0] + 1:] if r["path"] == torn["path"]]
        self.assertEqual([(r["method"], r["status"]) for r in after[:2]], [("PUT", 201), ("MOVE", 201)], reqs)
        h.log(f"cut after {torn['bytes']} bytes of {torn['path']}; retried whole, then moved into place")
        self.assertTrue(first and second)
        self.check_server_dir(os.path.join(server.root, "in"), {})
        self.check_no_leak()


class WithoutLibcurlTest(UploadBase):
    def test_without_libcurl_attempts_fail_counting_goes_on_then_restart_sends(self):
        server = us.Nginx(self.topo, self.workdir, self.user.name, self.user.password).start()
        self.addCleanup(server.stop)
        self.start_daemon({"url": server.url("incoming"), "username": self.user.name,
                           "password": self.user.password}, wrapper=h.without_library("libcurl.so.4"))
        self.traffic(1)
        self.assertTrue(self.rotate(), "Rotate closed no file")
        h.wait_until(lambda: len(self.failed()) >= 2, 20, "2 failed attempts without libcurl")
        st = self.status()
        h.log(f"without libcurl: state {st['state']}, {st['failed_attempts']} failed attempts; "
              f"error: {st['last_error']}")
        self.assertIn("libcurl.so.4", st["last_error"])
        self.assertTrue(all("libcurl.so.4" in f[2] for f in self.failed()), self.failed())
        self.assertGreaterEqual(st["failed_attempts"], 2, st)
        self.assertEqual(st["uploaded_files"], 0, st)
        self.assertFalse([x for x in server.access_log() if '"PUT ' in x], "a request reached the server")
        spooled = {n: sha256(os.path.join(self.spool, n)) for n in os.listdir(self.spool) if not n.startswith(".")}
        self.assertEqual(sorted(spooled), sorted(self.rotated_names()), "spool != rotated files")
        # Counting goes on.
        before = self.list_interfaces()[("lan0", "ingress")]["packets"]
        self.traffic(1)
        h.wait_until(lambda: self.list_interfaces()[("lan0", "ingress")]["packets"] > before, 10,
                     "lan0 ingress to count the new traffic")
        self.assertTrue(self.daemon.alive())
        # With libcurl back (a restart outside the covering namespace), the spooled files go out.
        self.daemon.stop(keep_pins=True)
        self.daemon.wrapper = []
        self.daemon.start()
        self.wait_spool_empty()
        for n, digest in spooled.items():
            self.assertEqual(sha256(os.path.join(server.path("incoming"), n)), digest, f"{n} on the server")
        h.log(f"restarted with libcurl: {len(spooled)} spooled files uploaded")
        self.check_no_leak()


class SpoolCapTest(UploadBase):
    def test_cap_drops_oldest_and_signals(self):
        dead = us.free_port()
        self.start_daemon({"url": f"ftp://127.0.0.1:{dead}/x/", "username": self.user.name,
                           "password": self.user.password, "spool_max_files": 3})
        all_names = []
        for i in range(3):
            self.traffic(1)
            all_names += self.rotate()
        self.assertGreater(len(all_names), 3, f"need more than 3 files, got {all_names}")
        drops = self.monitor.wait_for("SpoolDropped", timeout=15, interface=UPLOAD_IFACE)
        h.wait_until(lambda: len(os.listdir(self.spool)) <= 3, 10, "spool within its cap")

        def dropped_names():
            return [n for s in self.monitor.signals("SpoolDropped", UPLOAD_IFACE) for n in s["data"][0]]

        # A file dropped later than the first signal (see below) comes with a signal of its own.
        h.wait_until(lambda: len(dropped_names()) + len(os.listdir(self.spool)) >= len(all_names), 10,
                     "a SpoolDropped signal for every file gone")
        drops = self.monitor.signals("SpoolDropped", UPLOAD_IFACE)
        dropped = dropped_names()
        left = sorted(n for n in os.listdir(self.spool) if not n.startswith("."))
        seq = {n: int(h.RECORD_NAME_RE.match(n).group("seq")) for n in all_names}
        # The cap drops the oldest files first, except one that is being sent at that moment (the
        # daemon says so in its log; it may be dropped afterwards when the spool is checked again).
        spared = set(re.findall(r"upload: (\S+) stays over the cap although it is older: it is being sent",
                                self.daemon.log_text()))
        h.log(f"cap 3: {len(all_names)} files rotated, dropped {len(dropped)} in {len(drops)} signals, "
              f"left {left}, spared while being sent {sorted(spared)}")
        self.assertEqual(len(left), 3)
        self.assertEqual(sorted(dropped + left), sorted(all_names), "every file is either kept or dropped")
        newest = sorted(all_names, key=seq.get)[-3:]
        self.assertLessEqual(set(left) - set(newest), spared, "the newest files stay")
        for d in set(dropped) - spared:
            for k in set(left) - spared:
                self.assertLess(seq[d], seq[k], f"{d} dropped while the newer {k} stays")
        self.assertIn("spool_max_files", drops[0]["data"][2])
        self.assertIn("dropped", self.daemon.log_text())
        st = self.status()
        self.assertEqual(st["dropped_files"], len(dropped), st)
        self.check_no_leak()


if __name__ == "__main__":
    h.run_tests()
