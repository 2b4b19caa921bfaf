"""File servers for the upload tests, started by the test itself in a test namespace (the gateway's,
where nettallyd runs, on its loopback), each with a generated config, state and logs under the
test's workdir, and stopped (and their user removed) in cleanup even when the test fails.

- TestUser: a uniquely named local user (useradd) with a random password set through chpasswd's
  stdin (never on a command line); its home is the upload directory.
- Vsftpd: vsftpd with its own config (background=NO, local users, passive ports); tls="implicit"
  makes it an ftps:// server (TLS from the first byte), tls="explicit" an ftpes:// one (AUTH TLS,
  logins and data refused without TLS).
- Nginx: nginx (WebDAV PUT/MOVE/DELETE) behind basic auth, htpasswd from `openssl passwd -apr1 -stdin`;
  tls=True serves https.
- self_signed_cert: a fresh key and self-signed certificate for 127.0.0.1 (subjectAltName IP), the
  cert being its own CA: nettallyd trusts it through upload.ca_file.
- Sshd: OpenSSH's sshd with its own ed25519 host key, password auth for the test user,
  `Subsystem sftp internal-sftp`; host_key_sha256 is what nettallyd must be told.
- Flaky: a Python WebDAV-ish HTTP server (PUT, MOVE) whose answers follow a plan: "503:S" (503 with
  Retry-After: S), "cut:N" (read N bytes of the body, write them, drop the connection), "ok". It
  writes a PUT body straight into the named file (a naive server: a cut leaves a torn file under
  the name the client used) and logs every request as a JSON line.

Run as a script (`upload_servers.py flaky PORT DIR CONTROL_DIR`) it is that flaky server.
"""

import base64
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntharness as h  # noqa: E402


def free_port():
    """A port number unlikely to be in use in a fresh namespace (the namespace has nothing else)."""
    return random.randrange(20000, 40000)


def wait_tcp(topo, port, timeout=15, what="server"):
    """Waits until something accepts on 127.0.0.1:port in the gateway namespace."""
    def up():
        p = h.run(topo.exec_argv(topo.gw, [h.PYTHON, "-c",
                                           "import socket,sys; s=socket.socket(); s.settimeout(0.5); "
                                           f"sys.exit(s.connect_ex(('127.0.0.1',{port})))"]), check=False)
        return p.returncode == 0
    h.wait_until(up, timeout, f"{what} on 127.0.0.1:{port}", interval=0.2)


def self_signed_cert(directory, name="server"):
    """(cert, key) paths of a new P-256 key and a certificate for IP 127.0.0.1, valid a day."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    h.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
           "-addext", "subjectAltName=IP:127.0.0.1"])
    os.chmod(key, 0o600)
    return cert, key


class TestUser:
    def __init__(self, workdir, tag):
        self.name = "ntu" + tag.split("-")[-1][:6] + "%03d" % random.randrange(1000)
        self.password = secrets.token_urlsafe(18)
        self.home = os.path.join(workdir, "home-" + self.name)
        self._token = None

    def create(self):
        os.makedirs(self.home)
        h.run(["useradd", "-M", "-d", self.home, "-s", "/bin/sh", self.name])
        self._token = h.add_cleanup(self.remove)
        h.run(["chpasswd"], input=f"{self.name}:{self.password}\n")
        shutil.chown(self.home, self.name, self.name)
        os.chmod(self.home, 0o755)
        return self

    def remove(self):
        if self._token:
            h.drop_cleanup(self._token)
            self._token = None
        subprocess.run(["userdel", "-f", self.name], capture_output=True)


class _Server:
    name = "server"

    def __init__(self, topo, workdir):
        self.topo = topo
        self.dir = os.path.join(workdir, f"{self.name}-{random.randrange(1 << 30)}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.proc = None
        self._token = None
        self.log = os.path.join(self.dir, "server.log")

    def argv(self):
        raise NotImplementedError

    def start(self):
        with open(self.log, "a") as logf:
            self.proc = h.spawn(self.topo.exec_argv(self.topo.gw, self.argv()), stdout=logf,
                                stderr=subprocess.STDOUT)
        self._token = h.add_cleanup(self.stop)
        try:
            wait_tcp(self.topo, self.port, what=self.name)
        except AssertionError:
            raise AssertionError(f"{self.name} did not start: {self.log_text()[-2000:]}")
        return self

    def stop(self):
        if self._token:
            h.drop_cleanup(self._token)
            self._token = None
        if self.proc:
            h.stop_process(self.proc)
            self.proc = None

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Vsftpd(_Server):
    name = "vsftpd"

    def __init__(self, topo, workdir, user, delay_failed_login=1, tls=None):
        super().__init__(topo, workdir)
        self.user = user
        self.tls = tls
        tls_conf = ""
        if tls:
            self.cert, key = self_signed_cert(self.dir)
            # require_ssl_reuse off: libcurl does not resume the control session's TLS session
            # on every data connection.
            tls_conf = (f"ssl_enable=YES\nrsa_cert_file={self.cert}\nrsa_private_key_file={key}\n"
                        f"implicit_ssl={'YES' if tls == 'implicit' else 'NO'}\n"
                        "force_local_logins_ssl=YES\nforce_local_data_ssl=YES\nrequire_ssl_reuse=NO\n")
        self.conf = os.path.join(self.dir, "vsftpd.conf")
        self.xfer_log = os.path.join(self.dir, "vsftpd.xfer.log")
        pasv = self.port + 1
        os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(f"""listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={self.port}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=NO
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port={pasv}
pasv_max_port={pasv + 20}
seccomp_sandbox=NO
pam_service_name=vsftpd
userlist_enable=NO
xferlog_enable=YES
vsftpd_log_file={self.dir}/vsftpd.xfer.log
dual_log_enable=YES
xferlog_file={self.dir}/xferlog
secure_chroot_dir=/var/run/vsftpd/empty
delay_failed_login={delay_failed_login}
{tls_conf}""")
        os.chmod(self.conf, 0o600)

    def argv(self):
        return ["/usr/sbin/vsftpd", self.conf]

    def url(self, sub="incoming"):
        scheme = {None: "ftp", "implicit": "ftps", "explicit": "ftpes"}[self.tls]
        return f"{scheme}://127.0.0.1:{self.port}/{sub}/"

    def failed_logins(self):
        try:
            with open(self.xfer_log, errors="replace") as f:
                return [x for x in f if "FAIL LOGIN" in x]
        except FileNotFoundError:
            return []


class Nginx(_Server):
    name = "nginx"

    def __init__(self, topo, workdir, user, password, tls=False):
        super().__init__(topo, workdir)
        self.tls = tls
        listen_tls = ""
        if tls:
            self.cert, key = self_signed_cert(self.dir)
            listen_tls = f" ssl;\n        ssl_certificate {self.cert};\n        ssl_certificate_key {key}"
        self.root = os.path.join(self.dir, "www")
        self.dav = os.path.join(self.root, "dav")
        os.makedirs(self.dav)
        os.makedirs(os.path.join(self.dir, "tmp"))
        hashed = h.run(["openssl", "passwd", "-apr1", "-stdin"], input=password + "\n").stdout.strip()
        self.htpasswd = os.path.join(self.dir, "htpasswd")
        with open(self.htpasswd, "w") as f:
            f.write(f"{user}:{hashed}\n")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""daemon off;
user root;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/tmp;
    server {{
        listen 127.0.0.1:{self.port}{listen_tls};
        root {self.root};
        location /dav/ {{
            dav_methods PUT DELETE MOVE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 100m;
            auth_basic "nettally test";
            auth_basic_user_file {self.htpasswd};
        }}
    }}
}}
""")

    def argv(self):
        return ["/usr/sbin/nginx", "-c", self.conf, "-p", self.dir + "/", "-e", self.dir + "/error.log"]

    def url(self, sub="incoming"):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/dav/{sub}/"

    def path(self, sub="incoming"):
        return os.path.join(self.dav, sub)

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return f.read().splitlines()
        except OSError:
            return []


class Sshd(_Server):
    name = "sshd"

    def __init__(self, topo, workdir, user):
        super().__init__(topo, workdir)
        self.key = os.path.join(self.dir, "host_ed25519")
        h.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key])
        fp = h.run(["ssh-keygen", "-l", "-E", "sha256", "-f", self.key + ".pub"]).stdout.split()[1]
        assert fp.startswith("SHA256:"), fp
        self.host_key_sha256 = fp[len("SHA256:"):]
        # The same fingerprint computed here from the public key blob, as a cross-check.
        with open(self.key + ".pub") as f:
            blob = base64.b64decode(f.read().split()[1])
        import hashlib
        assert base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=") == self.host_key_sha256
        self.conf = os.path.join(self.dir, "sshd_config")
        with open(self.conf, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.key}
PidFile {self.dir}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
PermitRootLogin no
AllowUsers {user.name}
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
        os.makedirs("/run/sshd", exist_ok=True)

    def argv(self):
        return ["/usr/sbin/sshd", "-D", "-e", "-f", self.conf]

    def failed_logins(self):
        return [x for x in self.log_text().splitlines() if "Failed password" in x]


class Flaky(_Server):
    name = "flaky"

    def __init__(self, topo, workdir, user, password, plan=()):
        super().__init__(topo, workdir)
        self.root = os.path.join(self.dir, "www")
        os.makedirs(self.root)
        self.control = os.path.join(self.dir, "control")
        os.makedirs(self.control)
        # Credentials in a file only root reads: never on a command line.
        with open(os.path.join(self.control, "auth"), "w") as f:
            json.dump({"user": user, "password": password}, f)
        self.set_plan(plan)

    def set_plan(self, plan):
        tmp = os.path.join(self.control, "plan.tmp")
        with open(tmp, "w") as f:
            json.dump(list(plan), f)
        os.rename(tmp, os.path.join(self.control, "plan"))

    def argv(self):
        return [h.PYTHON, os.path.abspath(__file__), "flaky", str(self.port), self.root, self.control]

    def url(self, sub="incoming"):
        return f"http://127.0.0.1:{self.port}/{sub}/"

    def requests(self):
        try:
            with open(os.path.join(self.control, "requests.jsonl")) as f:
                return [json.loads(x) for x in f if x.strip()]
        except OSError:
            return []


# ---------------------------------------------------------------------------------------------
# The flaky server itself.

def flaky_main(port, root, control):
    import http.server
    import urllib.parse

    auth = json.load(open(os.path.join(control, "auth")))
    want = "Basic " + base64.b64encode(f"{auth['user']}:{auth['password']}".encode()).decode()
    reqlog = open(os.path.join(control, "requests.jsonl"), "a", buffering=1)

    def next_action():
        path = os.path.join(control, "plan")
        plan = json.load(open(path))
        if not plan:
            return "ok"
        action = plan.pop(0)
        tmp = path + ".tmp"
        json.dump(plan, open(tmp, "w"))
        os.rename(tmp, path)
        return action

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def record(self, status, extra=None):
            rec = {"t": time.time(), "method": self.command, "path": self.path, "status": status}
            rec.update(extra or {})
            reqlog.write(json.dumps(rec) + "\n")

        def reply(self, status, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.record(status)

        def local(self, url_path):
            p = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
            full = os.path.normpath(os.path.join(root, p.lstrip("/")))
            if not full.startswith(root + "/"):
                raise ValueError(p)
            return full

        def authorized(self):
            if self.headers.get("Authorization") != want:
                self.reply(401, [("WWW-Authenticate", 'Basic realm="flaky"')])
                self.drain()
                return False
            return True

        def drain(self):
            n = int(self.headers.get("Content-Length") or 0)
            while n > 0:
                chunk = self.rfile.read(min(n, 65536))
                if not chunk:
                    break
                n -= len(chunk)

        def do_PUT(self):
            if not self.authorized():
                return
            action = next_action()
            if action.startswith("503"):
                self.drain()
                self.reply(503, [("Retry-After", action.split(":")[1])])
                return
            path = self.local(self.path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            n = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Expect", "").lower() == "100-continue":
                self.send_response_only(100)
                self.end_headers()
            limit = int(action.split(":")[1]) if action.startswith("cut") else n
            with open(path, "wb") as f:
                got = 0
                while got < min(n, limit):
                    chunk = self.rfile.read(min(min(n, limit) - got, 65536))
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
            if action.startswith("cut"):
                self.record("cut", {"bytes": got})
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.reply(201)

        def do_MOVE(self):
            if not self.authorized():
                return
            src = self.local(self.path)
            dst = self.local(self.headers.get("Destination", ""))
            if not os.path.exists(src):
                self.reply(404)
                return
            existed = os.path.exists(dst)
            if existed and self.headers.get("Overwrite", "T") == "F":
                self.reply(412)
                return
            os.rename(src, dst)
            self.reply(204 if existed else 201)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "flaky":
        flaky_main(int(sys.argv[2]), os.path.abspath(sys.argv[3]), sys.argv[4])
    else:
        sys.exit("usage: upload_servers.py flaky PORT DIR CONTROL_DIR")
