#!/usr/bin/env bash
# The one command for nettally's benchmarks (bench/README.md): as root, `bash bench/run.sh`.
#
# Installs the Debian packages (scripts/deps.sh), builds the bench targets in their own build
# directory, then runs, in order:
#   1. nt_bench_kernel   in-kernel cost per packet (BPF_PROG_TEST_RUN), ~1.5 min
#   1b. nt_bench_classes_kernel  traffic classes: cost per packet at 1 .. 10,000 rules, swap time, ~2 min
#   2. nt_bench_poll     Collector::poll() over the real Datapath at 10k/100k/1M flows, ~1 min
#   3. system_bench.py   real nettallyd: READY time, idle, RSS/CPU at N flows; iperf3 over veth
#                        between namespaces with nettally / pmacctd / softflowd; accuracy, ~5 min
#   3b. nt_bench_export  CPU per exported IPFIX record at 10k finished flows/s, ~5 s
#       fanin_bench.py   20 gateways (a nettallyd each) exporting to one nfcapd: records missing, ~1 min
#   3c. radius_bench.py  RADIUS Start/Stop from 8 radclients at >= 2,000 requests/s: all answered, ~30 s
#   4. profiles          perf (software cpu-clock) of the hot spots, when perf works here, ~1 min
#   5. report.py         the summary table: every targeted figure next to its target
# Benches print figures; they do not pass or fail (exit status 0 unless a bench could not run).
#
# Environment: NT_BENCH_BUILD (build dir, default build-bench), NT_BENCH_OUT (results dir, default
# $NT_BENCH_BUILD/bench-results), NT_BENCH_QUICK=1 (shorter runs, for trying the script out),
# NT_BENCH_SKIP="kernel poll system export radius profile" (any subset), NT_BENCH_BEFORE (the results
# directory of an earlier run, e.g. of the commit before a change on the same machine: the summary's
# "before" column then shows that run's figures).
#
# Network: traffic flows only between the namespaces this script creates (ntb-<pid>-*), with
# addresses from 198.18.0.0/15. Every namespace, pin and process is removed on exit, on failure
# and on Ctrl-C; leftovers of an earlier run that was killed outright are swept at start.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: needs root (BPF programs, network namespaces)" >&2
	exit 1
fi

build=${NT_BENCH_BUILD:-build-bench}
out=${NT_BENCH_OUT:-$build/bench-results}
skip=" ${NT_BENCH_SKIP:-} "
prefix="ntb-$$"
quick=${NT_BENCH_QUICK:-0}

# ---- cleanup: ours only (names carry this shell's pid) -------------------------------------
stats_saved=$(cat /proc/sys/kernel/bpf_stats_enabled)
children=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	for p in "${children[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf /sys/fs/bpf/"${prefix}"-* /sys/fs/bpf/ntb-poll-* 2>/dev/null || true
	rm -rf /tmp/"${prefix}"-* 2>/dev/null || true
	echo "$stats_saved" >/proc/sys/kernel/bpf_stats_enabled 2>/dev/null || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Leftovers of killed runs: ntb-<pid>-* whose <pid> no longer runs.
sweep() {
	local name pid
	for name in $(ip netns list 2>/dev/null | awk '{print $1}') $(ls /sys/fs/bpf 2>/dev/null) $(ls /tmp 2>/dev/null); do
		case "$name" in
		ntb-poll-*) pid=${name#ntb-poll-} ;;
		ntb-*-*) pid=${name#ntb-}; pid=${pid%%-*} ;;
		*) continue ;;
		esac
		[[ "$pid" =~ ^[0-9]+$ ]] || continue
		kill -0 "$pid" 2>/dev/null && continue
		ip netns del "$name" 2>/dev/null || rm -rf "/sys/fs/bpf/$name" "/tmp/$name" 2>/dev/null || true
	done
}
sweep

# ---- packages and build --------------------------------------------------------------------
bash scripts/deps.sh
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
echo "== building bench targets in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target nt_bench
# nettallyctl is optional: without it system_bench reads nettally's counts from its maps.
cmake --build "$build" -j"$(nproc)" --target nettallyctl >/dev/null 2>&1 ||
	echo "bench/run.sh: nettallyctl did not build; nettally's counts will be read from its maps" >&2
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt

# ---- the machine ---------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$out/machine.json" "$cpu" "$load" <<'EOF'
import json, os, subprocess, sys, time
def ver(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines()[0]
    except Exception:
        return None
json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": sys.argv[2], "nproc": os.cpu_count(),
           "kernel": os.uname().release, "loadavg": sys.argv[3], "mem_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30),
           "iperf3": ver(["iperf3", "--version"]), "pmacctd": ver(["pmacctd", "-V"]), "softflowd": ver(["sh", "-c", "softflowd -h 2>&1 | grep -o 'softflowd version [0-9.]*'"]),
           "bpftool": ver(["bpftool", "version"]), "clang": ver(["clang", "--version"])},
          open(sys.argv[1], "w"), indent=2)
EOF
echo "== machine: $(nproc) x $cpu, kernel $(uname -r), load average $load"
if awk -v l="${load%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
	echo "bench/run.sh: warning: the machine is busy (load $load on $(nproc) CPUs): figures will be noisy" >&2
fi
if [ "$stats_saved" != 0 ]; then
	echo "bench/run.sh: warning: kernel.bpf_stats_enabled=$stats_saved: every BPF program run pays for stats" >&2
fi

bin=$build/bench
failed=()
if [ "$quick" = 1 ]; then
	kernel_args=(--repeat 200000 --rounds 3 --flows 1,1000000)
	classes_args=(--repeat 100000 --rounds 3)
	poll_flows=(10000 100000)
	system_args=(--reps 1 --seconds 3 --ready-runs 2 --idle-seconds 3 --daemon-flows 10000)
else
	kernel_args=()
	classes_args=()
	poll_flows=(10000 100000 1000000)
	system_args=()
fi

# ---- 1. in-kernel cost ---------------------------------------------------------------------
if [[ "$skip" != *" kernel "* ]]; then
	echo
	echo "== 1. in-kernel cost per packet"
	"$bin/nt_bench_kernel" "${kernel_args[@]}" --json "$out/kernel.json" | tee "$out/kernel.txt" ||
		failed+=(nt_bench_kernel)
fi

# ---- 1b. traffic classes in the kernel --------------------------------------------------------
if [[ "$skip" != *" kernel "* ]]; then
	echo
	echo "== 1b. traffic classes: cost per packet over no ruleset at 1, 100, 1,000, 10,000 rules; swap time"
	"$bin/nt_bench_classes_kernel" "${classes_args[@]}" --json "$out/classes.json" | tee "$out/classes.txt" ||
		failed+=(nt_bench_classes_kernel)
fi

# ---- 2. daemon poll cost -------------------------------------------------------------------
if [[ "$skip" != *" poll "* ]]; then
	echo
	echo "== 2. daemon cost: Collector::poll() over the real Datapath (one process per N)"
	for n in "${poll_flows[@]}"; do
		"$bin/nt_bench_poll" --flows "$n" --json "$out/poll-$n.json" | tee -a "$out/poll.txt" ||
			failed+=("nt_bench_poll --flows $n")
	done
	echo "-- flow eviction (finishing every flow with lookup-and-delete)"
	for n in 100000 1000000; do
		"$bin/nt_bench_evict" --flows "$n" --json "$out/evict-$n.json" | tee -a "$out/evict.txt" ||
			failed+=("nt_bench_evict --flows $n")
	done
	echo "-- Prometheus scrape (10,000 hosts, 100,000 flows)"
	"$bin/nt_bench_scrape" --hosts 10000 --flows 100000 --json "$out/scrape.json" | tee "$out/scrape.txt" ||
		failed+=(nt_bench_scrape)
fi

# ---- 3. real daemon, throughput, accuracy --------------------------------------------------
if [[ "$skip" != *" system "* ]]; then
	echo
	echo "== 3. real nettallyd; throughput and accuracy over veth between namespaces"
	perf_args=()
	if [[ "$skip" != *" profile "* ]] && perf stat -e cpu-clock true >/dev/null 2>&1; then
		perf_args=(--perf-data "$out/udp.perf")
	fi
	python3 bench/system_bench.py --build "$build" --source "$src" --prefix "$prefix" "${system_args[@]}" \
		"${perf_args[@]}" --json "$out/system.json" | tee "$out/system.txt" &
	children+=($!)
	wait "${children[-1]}" || failed+=(system_bench.py)
fi

# ---- 3b. flow export ----------------------------------------------------------------------
if [[ "$skip" != *" export "* ]]; then
	echo
	echo "== 3b. IPFIX export: CPU per record at 10k finished flows/s; fan-in of 20 gateways to one nfcapd"
	"$bin/nt_bench_export" --rate 10000 --seconds 5 --json "$out/export.json" | tee "$out/export.txt" ||
		failed+=(nt_bench_export)
	fanin_args=()
	[ "$quick" = 1 ] && fanin_args=(--gateways 4 --flows 500)
	python3 bench/fanin_bench.py --nettallyd "$build/daemon/nettallyd" --nettallyctl "$build/ctl/nettallyctl" \
		--prefix "$prefix-f" "${fanin_args[@]}" --json "$out/fanin.json" | tee "$out/fanin.txt" &
	children+=($!)
	wait "${children[-1]}" || failed+=(fanin_bench.py)
fi

# ---- 3c. RADIUS accounting load --------------------------------------------------------------
if [[ "$skip" != *" radius "* ]] && command -v radclient >/dev/null; then
	echo
	echo "== 3c. RADIUS accounting: 10,000 Starts then 10,000 Stops, 10,000 static bindings"
	radius_args=()
	[ "$quick" = 1 ] && radius_args=(--sessions 2000 --static 1000)
	NT_BUILD_DIR="$build" python3 bench/radius_bench.py "${radius_args[@]}" --json "$out/radius.json" \
		>"$out/radius.txt" &
	children+=($!)
	wait "${children[-1]}" || failed+=(radius_bench.py)
fi

# ---- 4. profiles ---------------------------------------------------------------------------
# Software cpu-clock sampling: this machine (a VM) has no hardware counters.
# perf_top DATA COMM self|children [REGEX]: the top symbols of one process in a recording.
perf_top() {
	local data=$1 comm=$2 mode=$3 regex=${4:-.}
	perf report -i "$data" --stdio "--$mode" --comm "$comm" --percentage relative --sort sym 2>/dev/null |
		grep -E '^ +[0-9.]+%' | grep -Ev '\] (0x)?[0-9a-f]+$' | grep -E "$regex" | head -n 14
	rm -f "$data"
}
if [[ "$skip" != *" profile "* ]]; then
	echo
	echo "== 4. profiles (perf record -e cpu-clock -g)"
	if perf stat -e cpu-clock true >/dev/null 2>&1; then
		pf=1000000
		[ "$quick" = 1 ] && pf=100000
		{
			# -D: start sampling after the set-up (map allocation, verification).
			if perf record -q -e cpu-clock -F 2999 -g -D 3000 -o "$out/k.perf" -- \
				"$bin/nt_bench_kernel" --profile wan --seconds 5 >/dev/null 2>&1; then
				echo "-- nt_tc_ingress_wan on ipv4/udp 64B, 1 flow, in BPF_PROG_TEST_RUN: self time"
				perf_top "$out/k.perf" nt_bench_kernel no-children
			fi
			if perf record -q -e cpu-clock -F 2999 -g -o "$out/p.perf" -- \
				"$bin/nt_bench_poll" --flows "$pf" --polls 3 >/dev/null 2>&1; then
				echo "-- nt_bench_poll --flows $pf (load, fill, 4 polls, 3 read_flows): with callees"
				perf_top "$out/p.perf" nt_bench_poll children \
					'read_flows|Collector::|lookup_and_delete_batch|exc_page_fault|_M_realloc_insert|fold_percpu|pvm_irq_enable|htab_map_alloc|bpf_prog_load|do_syscall_64'
			fi
			if perf record -q -e cpu-clock -F 4999 -g -o "$out/s.perf" -- \
				"$bin/nt_bench_poll" --flows 1000 --max-entries 65536 --polls 1 >/dev/null 2>&1; then
				echo "-- Datapath start-up (nt_bench_poll --flows 1000: load dominates): with callees"
				perf_top "$out/s.perf" nt_bench_poll children \
					'bpf_prog_load|bpf_check|map_create|htab_map_alloc|kernfs_fop_read|bpf_object__load|__sys_bpf|pvm_irq_enable|do_syscall_64'
			fi
			if [ -s "$out/udp.perf" ]; then
				echo "-- whole machine during nettally's udp64 iperf3 run (perf record -a): with callees, % of all samples"
				perf report -i "$out/udp.perf" --stdio --children --sort sym 2>/dev/null | grep -E '^ +[0-9.]+%' |
					grep -E 'nt_tc_|htab_map_hash|pvclock|ktime_get|bpf_skb_load_bytes|lookup_nulls|__netif_receive_skb_core|tcf_classify|udp_sendmsg|veth_xmit' |
					head -n 14
				rm -f "$out/udp.perf" "$out/udp.perf.log" "$out/udp.perf.old"
			fi
		} | tee "$out/profiles.txt"
	else
		echo "perf cannot sample here (perf stat -e cpu-clock failed): no profiles" | tee "$out/profiles.txt"
	fi
fi

# ---- 5. summary ----------------------------------------------------------------------------
python3 bench/report.py "$out" ${NT_BENCH_BEFORE:+--before "$NT_BENCH_BEFORE"} | tee "$out/summary.txt"
echo
echo "results: $out (*.json, *.txt)"
if [ ${#failed[@]} -gt 0 ]; then
	echo "bench/run.sh: could not run everything: ${failed[*]}" >&2
	exit 1
fi
