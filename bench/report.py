#!/usr/bin/env python3
"""Summary table of a bench/run.sh run: every targeted figure next to its target.

Usage: report.py RESULTS_DIR   (reads machine.json, kernel.json, poll-*.json, system.json, export.json, fanin.json written by run.sh)
Benches print figures; they do not pass or fail. "met" / "MISSED by" is information for the reader only,
and this script always exits 0 when it could read the results.
"""

import glob
import json
import os
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def verdict(value, target, higher_is_better=False, unit=""):
    if value is None:
        return "not measured"
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    if higher_is_better:
        return f"MISSED by {target - value:.1f}{unit}"
    return f"MISSED by {value - target:.1f}{unit} ({value / target:.1f}x the target)"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    machine = load(os.path.join(d, "machine.json")) or {}
    kernel = load(os.path.join(d, "kernel.json"))
    system = load(os.path.join(d, "system.json")) or {}
    polls = sorted(filter(None, (load(p) for p in glob.glob(os.path.join(d, "poll-*.json")))),
                   key=lambda p: p["flows"])
    rows = []  # (figure, measured, target, verdict)

    if kernel:
        res = kernel["results"]

        def over(prog, flows, packet):
            for r in res:
                if r["prog"] == prog and r["flows"] == flows and r["packet"] == packet:
                    return r["ns"] - r["empty_ns"]
            return None

        small = sorted({r["packet"] for r in res if r["packet"].endswith(("64B", "74B"))})
        for prog, label in (("wan", "wan (flow)"), ("lan", "lan (flow+host)")):
            vals = [(over(prog, 1, p), p) for p in small if over(prog, 1, p) is not None]
            if vals:
                worst = max(vals)
                med = statistics.median(v for v, _ in vals)
                rows.append((f"in-kernel overhead over empty, 1 flow, min-size packets, {label}",
                             f"{med:.0f} ns median, {worst[0]:.0f} ns worst ({worst[1]})", "<= 50 ns",
                             verdict(worst[0], 50, unit=" ns")))
        hash_1m = [r for r in res if r["prog"] == "hash-update" and r["flows"] == 1000000]
        if hash_1m:
            h = hash_1m[0]
            href = h["ns"] - h["empty_ns"]
            for prog, label in (("wan", "wan"), ("lan", "lan")):
                o = over(prog, 1000000, h["packet"])
                if o is None or href <= 0:
                    continue
                ratio = o / href
                rows.append((f"in-kernel at 1M live flows vs one per-CPU hash update ({label}, {h['packet']})",
                             f"{o:.0f} ns vs {href:.0f} ns = {ratio:.1f}x", "<= 1.5x",
                             "met" if ratio <= 1.5 else f"MISSED: {ratio:.1f}x ({o - 1.5 * href:.0f} ns over)"))

    tp = system.get("throughput", {})
    for test, target, label in (("tcp", 97, "TCP"), ("udp64", 95, "small UDP (64 B payload)")):
        for tool in ("nettally", "nettally (lan0+wan0)"):
            s = tp.get(f"{tool}|{test}")
            if s and s.get("relative"):
                rel = s["relative"] * 100
                rows.append((f"throughput with {tool} vs none, {label}",
                             f"{rel:.1f}% (runs: {s['min'] / s['median'] * rel:.0f}..{s['max'] / s['median'] * rel:.0f}%)",
                             f">= {target}%", verdict(rel, target, higher_is_better=True, unit=" points")))

    for p in polls:
        if p["flows"] == 1000000:
            rows.append(("poll time per live flow at 1M flows (Collector::poll over the real Datapath)",
                         f"{p['per_flow_us']:.2f} us ({p['poll_ms']:.0f} ms per poll)", "<= 0.6 us",
                         verdict(p["per_flow_us"], 0.6, unit=" us")))
    dm = system.get("daemon", {})
    for a in dm.get("at_flows", []):
        if a["flows"] == 1000000:
            rss = a["rss_kib"] / 1024
            rows.append(("nettallyd VmRSS at 1M live flows (peak VmHWM in brackets)",
                         f"{rss:.0f} MiB ({a['hwm_kib'] / 1024:.0f} MiB)", "<= 64 MiB", verdict(rss, 64, unit=" MiB")))
    idle = dm.get("idle")
    if idle:
        rss = idle["rss_kib"] / 1024
        rows.append(("nettallyd VmRSS idle (peak VmHWM in brackets)", f"{rss:.1f} MiB ({idle['hwm_kib'] / 1024:.1f} MiB)",
                     "<= 16 MiB", verdict(rss, 16, unit=" MiB")))
    if dm.get("ready_ms"):
        r = statistics.median(dm["ready_ms"])
        rows.append(("nettallyd start to READY=1 (flows.max_entries 65536, median)", f"{r:.0f} ms", "<= 300 ms",
                     verdict(r, 300, unit=" ms")))
    for test in ("tcp", "udp64"):
        s = tp.get(f"nettally|{test}")
        if s and s.get("accuracy"):
            worst = min(a["pct_wire"] for a in s["accuracy"] if a["pct_wire"] is not None)
            best = max(a["pct_wire"] for a in s["accuracy"] if a["pct_wire"] is not None)
            exact = all(a["packets"] == a["wire_packets"] for a in s["accuracy"])
            rows.append((f"accuracy: nettally packets on lan0 / wire packets, {test}",
                         f"{worst:.4f}%..{best:.4f}%", "100%", "met" if exact else
                         f"off by {max(abs(a['packets'] - a['wire_packets']) for a in s['accuracy'])} packets"))

    export = load(os.path.join(d, "export.json"))
    if export:
        rows.append((f"IPFIX export CPU per record at {export['rate']} finished flows/s",
                     f"{export['ns_per_record']:.0f} ns ({export['cpu_pct']:.2f}% of one CPU)", "figure only", "-"))
    fanin = load(os.path.join(d, "fanin.json"))
    if fanin:
        t = fanin["total"]
        rows.append((f"fan-in: {fanin['gateways']} gateways x {fanin['flows_per_gateway']} flows -> one nfcapd, "
                     "records missing", f"{t['missing']} of {t['flows']} (extra {t['extra']})", "0",
                     "met" if t["missing"] == 0 and t["extra"] == 0 else f"MISSED: {t['missing']} missing"))

    print(f"\nnettally benchmarks: {machine.get('date', '?')}; {machine.get('cpu', '?')}, "
          f"{machine.get('nproc', '?')} CPUs, kernel {machine.get('kernel', '?')}; "
          f"load average at start {machine.get('loadavg', '?')}")
    w0 = max([len(r[0]) for r in rows] + [6])
    w1 = max([len(r[1]) for r in rows] + [8])
    print(f"{'figure':<{w0}}  {'measured':<{w1}}  {'target':<10}  verdict")
    print(f"{'-' * w0}  {'-' * w1}  {'-' * 10}  {'-' * 7}")
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:<10}  {r[3]}")
    errors = list(system.get("errors", []))
    for name, present in (("kernel.json (nt_bench_kernel)", kernel), ("poll-*.json (nt_bench_poll)", polls),
                          ("system.json (system_bench.py)", system)):
        if not present:
            errors.append(f"no {name}")
    if errors:
        print("\nnot measured: " + "; ".join(errors))


if __name__ == "__main__":
    main()
