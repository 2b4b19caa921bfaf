#!/usr/bin/python3
"""RADIUS accounting load on nettallyd (README "RADIUS accounting"): prints figures, passes nothing.

nettallyd runs in the gateway namespace of tests/integration/ntharness.py's topology with 10,000
static bindings (198.19.0.0 .. 198.19.39.15) and the RADIUS listener on 127.0.0.1 there. radclient
(freeradius-utils), in the same namespace, sends SESSIONS Starts (each a new user and session on
198.19.64.0 + i), then the SESSIONS Stops, each batch at RATE requests/s (radclient -n RATE,
-p PARALLEL outstanding; with --clients K, K radclient processes each send a slice at RATE/K, since
one radclient tops out near 1,500 requests/s here). Printed: requests sent, achieved request rate, answered (radclient's summary and the daemon's
radius_responses), lost, wall time, the daemon's CPU time over the run (utime + stime from
/proc/PID/stat) and per request, and the bindings open at the end of the Starts.

Usage (root): bench/radius_bench.py [--sessions N] [--rate R] [--parallel P] [--clients K] [--json FILE]
Needs the build (NT_BUILD_DIR, default build/) and radclient.
"""

import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import ntharness as h  # noqa: E402

SECRET = "nt-radius-bench"
LISTEN = ("127.0.0.1", 18140)
STATIC_BASE = ipaddress.ip_address("198.19.0.0")
RADIUS_BASE = ipaddress.ip_address("198.19.64.0")


def config_extra(secret_path, n_static):
    lines = ["subscribers:", "  keep_closed: 1h", "  radius:", f"    listen: {LISTEN[0]}:{LISTEN[1]}",
             "    clients:", "      - address: 127.0.0.0/8", f"        secret_file: {secret_path}", "  static:"]
    for i in range(n_static):
        lines += [f"    - user: s{i}", f"      prefix: {STATIC_BASE + i}"]
    return "\n".join(lines) + "\n"


def requests_file(path, status, first, n):
    with open(path, "w") as f:
        for i in range(first, first + n):
            f.write(f'Acct-Status-Type = {status}\nUser-Name = "r{i}"\nAcct-Session-Id = "bench-{i}"\n'
                    f'Framed-IP-Address = {RADIUS_BASE + i}\nNAS-Identifier = "bench"\n\n')


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(text):
    """radclient -s: 'Accepted', 'Rejected', 'Lost' counts (whatever it prints, by name)."""
    out = {}
    for name in ("Accepted", "Rejected", "Lost", "Passed filter", "Failed filter"):
        m = re.search(rf"{name}\s*:\s*(\d+)", text)
        if m:
            out[name.lower().replace(" ", "_")] = int(m.group(1))
    return out


def batch(topo, workdir, status, n, rate, parallel, clients):
    """n requests of one status from `clients` radclient processes at once, rate/clients each."""
    procs, share = [], (n + clients - 1) // clients
    t0 = time.monotonic()
    for k in range(clients):
        first, count = k * share, min(share, n - k * share)
        if count <= 0:
            break
        path = os.path.join(workdir, f"{status}-{k}.txt")
        requests_file(path, status, first, count)
        argv = ["radclient", "-s", "-q", "-r", "3", "-t", "2", "-n", str(max(1, rate // clients)), "-p",
                str(parallel), "-f", path, f"{LISTEN[0]}:{LISTEN[1]}", "acct", SECRET]
        procs.append(subprocess.Popen(topo.exec_argv(topo.gw, argv), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    seconds = time.monotonic() - t0
    total = {}
    for text in outs:
        for k, v in summary(text).items():
            total[k] = total.get(k, 0) + v
    return {"status": status, "sent": n, "clients": len(procs), "seconds": round(seconds, 3),
            "requests_per_s": round(n / seconds, 1) if seconds else 0,
            "exit": max(p.returncode for p in procs), "radclient": total}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--static", type=int, default=10000)
    # radclient -n delivers less than asked (about 80-90 % here): 3,000 asked gives >= 2,000/s.
    ap.add_argument("--rate", type=int, default=3000)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--json")
    a = ap.parse_args()
    h.require_root()
    env = type("Env", (), {})()
    h.open_env(env)
    try:
        secret_path = os.path.join(env.workdir, "radius.secret")
        with open(secret_path, "w") as f:
            f.write(SECRET)
        d = h.Daemon(env.topo, env.bus, env.workdir, poll="1s", extra=config_extra(secret_path, a.static))
        d.start(timeout=120)
        try:
            ctl = h.Ctl(env.bus.address)
            st0 = env.bus.status()
            cpu0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            starts = batch(env.topo, env.workdir, "Start", a.sessions, a.rate, a.parallel, a.clients)
            open_after_starts = int(env.bus.status()["subscriber_bindings_open"])
            stops = batch(env.topo, env.workdir, "Stop", a.sessions, a.rate, a.parallel, a.clients)
            wall, cpu = time.monotonic() - t0, cpu_seconds(d.proc.pid) - cpu0
            st1 = env.bus.status()
            radius = ctl.json("subscribers")["radius"]
        finally:
            d.stop()
    finally:
        env.bus.stop()
        env.topo.down()
    sent = 2 * a.sessions
    result = {
        "static_bindings": a.static, "sessions": a.sessions, "rate": a.rate, "parallel": a.parallel, "clients": a.clients,
        "requests_sent": sent,
        "daemon_requests": int(st1["radius_requests"]) - int(st0["radius_requests"]),
        "daemon_responses": int(st1["radius_responses"]) - int(st0["radius_responses"]),
        "daemon_dropped": int(st1["radius_dropped"]) - int(st0["radius_dropped"]),
        "retransmissions": int(st1["radius_retransmissions"]) - int(st0["radius_retransmissions"]),
        "bindings_open_after_starts": open_after_starts,
        "bindings_open_at_end": int(st1["subscriber_bindings_open"]),
        "wall_seconds": round(wall, 3), "daemon_cpu_seconds": round(cpu, 3),
        "daemon_cpu_us_per_request": round(cpu * 1e6 / sent, 1),
        "daemon_cpu_share": round(cpu / wall, 3) if wall else 0,
        "batches": [starts, stops], "radius": radius,
    }
    print(json.dumps(result, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
