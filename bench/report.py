#!/usr/bin/env python3
"""Summary table of a bench/run.sh run: every targeted figure next to its target.

Usage: report.py RESULTS_DIR [--before BEFORE_DIR]
  (reads machine.json, kernel.json, classes.json, poll-*.json, system.json, export.json, fanin.json,
  radius.json written by run.sh)
With --before, the "before" column is what the same figures were in BEFORE_DIR, the results of an
earlier run (run.sh's NT_BENCH_BEFORE: e.g. the commit before a change, run on the same machine),
read by the same code; without it, the figures the performance work started from (BEFORE below).
Benches print figures; they do not pass or fail. "met" / "MISSED by" is information for the reader only,
and this script always exits 0 when it could read the results.
"""

import glob
import json
import os
import statistics
import sys


# "Before" figures: the run the performance work started from (bench/README.md "Latest results",
# 2026-11-24, the same 2-CPU machine), as the performance issue lists them.
BEFORE_SOURCE = "bench/run.sh of 2026-11-24 on this machine type (bench/README.md), the figures the work started from"
BEFORE = {"wan": "+94 ns", "lan": "+120 ns", "ratio_1m": "4.3x", "poll": "1.64 us", "evict": "9.6 / 10.2 us",
          "rss_1m": "171 (283) MiB", "idle": "9.8 MiB", "ready": "355 ms", "bpf_stats": "715 ns"}


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


def summarize(d):
    """(machine, rows, errors) of the results in d; a row: (figure, measured, target, verdict, before)."""
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
                target = 50 if prog == "wan" else 65
                rows.append((f"in-kernel overhead over empty, 1 flow, min-size packets, {label}",
                             f"{med:.0f} ns median, {worst[0]:.0f} ns worst ({worst[1]})", f"<= {target} ns",
                             verdict(worst[0], target, unit=" ns"), BEFORE[prog]))
        hash_1m = [r for r in res if r["prog"] == "hash-update" and r["flows"] == 1000000]
        if hash_1m:
            h = hash_1m[0]
            href = h["ns"] - h["empty_ns"]
            for prog, label in (("wan", "wan"), ("lan", "lan")):
                o = over(prog, 1000000, h["packet"])
                if o is None or href <= 0:
                    continue
                ratio = o / href
                rows.append((f"in-kernel at 1M live flows vs one per-CPU hash update, hot entry ({label}, {h['packet']})",
                             f"{o:.0f} ns vs {href:.0f} ns = {ratio:.1f}x", "<= 2.0x",
                             "met" if ratio <= 2.0 else f"MISSED: {ratio:.1f}x ({o - 2.0 * href:.0f} ns over)",
                             BEFORE["ratio_1m"] if prog == "wan" else "-"))
        def at(prog, packet="ipv4/udp 64B", flows=None):
            for r in res:
                if r["prog"] == prog and r["packet"] == packet and (flows is None or r["flows"] == flows):
                    return r["ns"]
            return None

        for label, with_f, without_f, flows, target in (
                ("hosts (lan vs lan hosts=0)", "lan", "lan_nohosts", 1, None),
                ("subscribers (lan subs vs lan: binding lookup + per-user counter)", "lan_subscribers", "lan", 1, 15),
                ("threshold actions (a throttle in force on the host vs none)", "lan_actions", "lan_feature_base", None,
                 None),
                ("cgroups (the cgroup_skb program, on its own hook)", "cgroup", "empty", None, None)):
            a, b = at(with_f, flows=flows), at(without_f, flows=flows)
            if a is None or b is None:
                continue
            rows.append((f"feature cost per packet, ipv4/udp 64B: {label}", f"+{a - b:.0f} ns",
                         f"<= {target} ns" if target else "figure only",
                         verdict(a - b, target, unit=" ns") if target else "-", "-"))
        walk = {r["prog"]: r for r in res if r["prog"].endswith("_walk")}
        ref = walk.get("hash-update_walk")
        for prog in ("wan", "lan"):
            w = walk.get(f"{prog}_walk")
            if not w or not ref or ref["ns"] <= ref["empty_ns"]:
                continue
            o, href = w["ns"] - w["empty_ns"], ref["ns"] - ref["empty_ns"]
            ratio = o / href
            rows.append((f"in-kernel walking {w['flows']} live flows (cache misses) vs the hash update walking its own ({prog})",
                         f"{o:.0f} ns vs {href:.0f} ns = {ratio:.2f}x", "<= 2.0x",
                         "met" if ratio <= 2.0 else f"MISSED: {ratio:.2f}x", "not measured"))

    tp = system.get("throughput", {})
    for test, target, label in (("tcp", 97, "TCP"), ("udp64", 95, "small UDP (64 B payload)")):
        for tool in ("nettally", "nettally (lan0+wan0)"):
            s = tp.get(f"{tool}|{test}")
            if s and s.get("relative"):
                rel = s["relative"] * 100
                rows.append((f"throughput with {tool} vs none, {label}",
                             f"{rel:.1f}% (runs: {s['min'] / s['median'] * rel:.0f}..{s['max'] / s['median'] * rel:.0f}%)",
                             f">= {target}%", verdict(rel, target, higher_is_better=True, unit=" points"), "-"))
    for test, label in (("tcp", "TCP"), ("udp64", "small UDP (64 B payload)")):
        s = tp.get(f"empty TC program|{test}")
        if s and s.get("relative"):
            rel = s["relative"] * 100
            rows.append((f"throughput with an empty TC program on lan0 (the hook's own cost) vs none, {label}",
                         f"{rel:.1f}% (runs: {s['min'] / s['median'] * rel:.0f}..{s['max'] / s['median'] * rel:.0f}%)",
                         "figure only", "-", "-"))
    bs = tp.get("nettally+bpf_stats|udp64")
    if bs and bs.get("bpf_ns_per_run"):
        rows.append(("in-kernel ns per forwarded small UDP packet (bpf_stats, real traffic, lan0)",
                     f"{bs['bpf_ns_per_run']:.0f} ns", "<= 300 ns", verdict(bs["bpf_ns_per_run"], 300, unit=" ns"),
                     BEFORE["bpf_stats"]))

    for p in polls:
        if p["flows"] == 1000000:
            rows.append(("poll time per live flow at 1M flows (Collector::poll over the real Datapath)",
                         f"{p['per_flow_us']:.2f} us ({p['poll_ms']:.0f} ms per poll)", "<= 0.5 us",
                         verdict(p["per_flow_us"], 0.5, unit=" us"), BEFORE["poll"]))
    evicts = sorted(filter(None, (load(p) for p in glob.glob(os.path.join(d, "evict-*.json")))),
                    key=lambda e: e["flows"])
    if evicts:
        worst = max(e.get("evict_cpu_us_per_flow", e["evict_us_per_flow"]) for e in evicts)
        rows.append(("eviction (finishing flows) per flow at " + ", ".join(f"{e['flows']}" for e in evicts) +
                     ": wall (CPU); verdict on CPU",
                     " / ".join(f"{e['evict_us_per_flow']:.2f} " + (f"({e['evict_cpu_us_per_flow']:.2f})"
                                                                      if "evict_cpu_us_per_flow" in e else "(-)")
                                for e in evicts) + " us", "<= 1 us", verdict(worst, 1, unit=" us"), BEFORE["evict"]))
        for e in evicts:
            if "per_key_evict_us_per_flow" in e:
                rows.append((f"  same, one syscall per flow (the path before; older kernels), {e['flows']}",
                             f"{e['per_key_evict_us_per_flow']:.2f} ({e['per_key_evict_cpu_us_per_flow']:.2f}) us",
                             "figure only", "-", "-"))
    dm = system.get("daemon", {})
    for a in dm.get("at_flows", []):
        if a["flows"] == 1000000:
            rss = a["rss_kib"] / 1024
            rows.append(("nettallyd VmRSS at 1M live flows (peak VmHWM in brackets)",
                         f"{rss:.0f} MiB ({a['hwm_kib'] / 1024:.0f} MiB)", "<= 64 (96) MiB",
                         verdict(rss, 64, unit=" MiB"), BEFORE["rss_1m"]))
    idle = dm.get("idle")
    if idle:
        rss = idle["rss_kib"] / 1024
        rows.append(("nettallyd VmRSS idle (peak VmHWM in brackets)", f"{rss:.1f} MiB ({idle['hwm_kib'] / 1024:.1f} MiB)",
                     "<= 8 MiB", verdict(rss, 8, unit=" MiB"), BEFORE["idle"]))
        fl = idle.get("library_floor")
        if idle.get("anon_kib") is not None and fl:
            rows.append(("  of which anonymous (heap, stacks) / file-backed; floor: sleep(1) with its shared libraries",
                         f"{idle['anon_kib'] / 1024:.1f} / {idle['file_kib'] / 1024:.1f} MiB; "
                         f"floor {fl['sleep + libraries']['VmRSS'] / 1024:.1f} MiB", "figure only", "-", "-"))
    if dm.get("ready_ms"):
        r = statistics.median(dm["ready_ms"])
        rows.append(("nettallyd start to READY=1 (flows.max_entries 65536, median)", f"{r:.0f} ms", "<= 250 ms",
                     verdict(r, 250, unit=" ms"), BEFORE["ready"]))
    for test in ("tcp", "udp64"):
        s = tp.get(f"nettally|{test}")
        if s and s.get("accuracy"):
            worst = min(a["pct_wire"] for a in s["accuracy"] if a["pct_wire"] is not None)
            best = max(a["pct_wire"] for a in s["accuracy"] if a["pct_wire"] is not None)
            exact = all(a["packets"] == a["wire_packets"] for a in s["accuracy"])
            rows.append((f"accuracy: nettally packets on lan0 / wire packets, {test}",
                         f"{worst:.4f}%..{best:.4f}%", "100%", "met" if exact else
                         f"off by {max(abs(a['packets'] - a['wire_packets']) for a in s['accuracy'])} packets", "100%"))

    export = load(os.path.join(d, "export.json"))
    if export:
        rows.append((f"IPFIX export CPU per record at {export['rate']} finished flows/s",
                     f"{export['ns_per_record']:.0f} ns ({export['cpu_pct']:.2f}% of one CPU)", "figure only", "-", "-"))
    fanin = load(os.path.join(d, "fanin.json"))
    if fanin:
        t = fanin["total"]
        rows.append((f"fan-in: {fanin['gateways']} gateways x {fanin['flows_per_gateway']} flows -> one nfcapd, "
                     "records missing", f"{t['missing']} of {t['flows']} (extra {t['extra']})", "0",
                     "met" if t["missing"] == 0 and t["extra"] == 0 else f"MISSED: {t['missing']} missing", "-"))

    classes = load(os.path.join(d, "classes.json"))
    if classes:
        by_case = {c["case"]: c for c in classes}
        # The target: <= +30 ns over no classes at 1,000 rules (cached and classified paths).
        # Before: the 1,024-rule kernel of 2026-12-05 (bench/README.md "Traffic classes"), at 1,000 rules.
        for kind, what, before in (("cached", "a flow's cached class", "+16..18 ns"),
                                   ("first", "classified, first rule matches", "+104 ns"),
                                   ("miss", "classified, no rule matches", "+458 ns")):
            at = [by_case.get(f"{n} {kind}") for n in (1, 100, 1000, 10000)]
            if not all(at):
                continue
            rows.append((f"traffic classes, {what}: ns over no ruleset at 1 / 100 / 1,000 / 10,000 rules",
                         " / ".join(f"+{c['over_none_ns']:.0f}" for c in at), "<= +30 ns at 1,000",
                         verdict(at[2]["over_none_ns"], 30, unit=" ns"), before))
        swaps = [c for c in classes if c["rules"] > 0]
        rows.append(("traffic classes: swap time (KernelClasses::load) at 1 / 100 / 1,000 / 10,000 rules",
                     " / ".join(f"{max(c['swap_ms'] for c in swaps if c['case'].startswith(f'{n} ')):.1f}"
                                for n in (1, 100, 1000, 10000) if any(c['case'].startswith(f'{n} ') for c in swaps))
                     + " ms (slowest case)", "-", "-", "-"))

    radius = load(os.path.join(d, "radius.json"))
    if radius:
        rates = [b["requests_per_s"] for b in radius["batches"]]
        answered = radius["daemon_responses"] == radius["requests_sent"] and all(
            b["radclient"].get("lost", 0) == 0 for b in radius["batches"])
        rows.append((f"RADIUS Start/Stop, {radius['static_bindings']} bindings: request rate, all answered",
                     f"{min(rates):.0f}..{max(rates):.0f} req/s, {radius['daemon_responses']} of "
                     f"{radius['requests_sent']} answered, {radius['daemon_cpu_us_per_request']:.0f} us CPU/req",
                     ">= 2,000/s, all", "met" if answered and min(rates) >= 2000 else "MISSED", "-"))

    errors = list(system.get("errors", []))
    for name, present in (("kernel.json (nt_bench_kernel)", kernel), ("poll-*.json (nt_bench_poll)", polls),
                          ("system.json (system_bench.py)", system)):
        if not present:
            errors.append(f"no {name}")
    return machine, rows, errors


def describe(machine):
    return (f"{machine.get('date', '?')}; {machine.get('cpu', '?')}, {machine.get('nproc', '?')} CPUs, "
            f"kernel {machine.get('kernel', '?')}; load average at start {machine.get('loadavg', '?')}")


def main():
    args = sys.argv[1:]
    before_dir = None
    if len(args) == 3 and args[1] == "--before":
        before_dir = args[2]
    elif len(args) != 1:
        sys.exit(__doc__)
    machine, rows, errors = summarize(args[0])
    before_source = BEFORE_SOURCE
    if before_dir:
        # Any earlier layout of the results is read as far as it goes: a figure it lacks shows "-".
        try:
            b_machine, b_rows, _ = summarize(before_dir)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            sys.exit(f"report.py: cannot read the results in {before_dir}: {e!r}")
        earlier = {r[0]: r[1] for r in b_rows}
        rows = [r[:4] + (earlier.get(r[0], "-"),) for r in rows]
        before_source = f"the run in {before_dir}: {describe(b_machine)}"
    print(f"\nnettally benchmarks: {machine.get('date', '?')}; {machine.get('cpu', '?')}, "
          f"{machine.get('nproc', '?')} CPUs, kernel {machine.get('kernel', '?')}; "
          f"load average at start {machine.get('loadavg', '?')}")
    w0 = max([len(r[0]) for r in rows] + [6])
    w1 = max([len(r[1]) for r in rows] + [8])
    w4 = max([len(r[4]) for r in rows] + [6])
    print(f"{'figure':<{w0}}  {'before':<{w4}}  {'measured':<{w1}}  {'target':<14}  verdict")
    print(f"{'-' * w0}  {'-' * w4}  {'-' * w1}  {'-' * 14}  {'-' * 7}")
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[4]:<{w4}}  {r[1]:<{w1}}  {r[2]:<14}  {r[3]}")
    print(f"\nbefore: {before_source}")
    if errors:
        print("\nnot measured: " + "; ".join(errors))


if __name__ == "__main__":
    main()
