// nt_bench_kernel: in-kernel cost per packet of nettally's TC programs,
// measured with BPF_PROG_TEST_RUN in one harness, on one pinned CPU.
//
// Programs, all run on the same packets:
//   empty        bench/bpf/empty.bpf.c: returns at once (the harness' own cost)
//   wan          nt_tc_ingress_wan: parse + interface total + flow
//   lan hosts=0  nt_tc_ingress_lan loaded with cfg_count_hosts=0 (sharing the
//                maps of the one below): what a lan interface costs without
//                per-host counting
//   lan          nt_tc_ingress_lan, cfg_count_hosts=1 (the default): parse +
//                interface total + flow + host
//   lan subs     nt_tc_ingress_lan with subscribers on (nt_users_on = 1, sharing
//                the maps of "lan") and --bindings N entries in the binding
//                trie, the measured packet's source among them: "lan" + the
//                binding lookup (LPM trie) + the per-user counter (issue 18's
//                budget: <= +15 ns over "lan")
//   hash-update  bench/bpf/hash_update.bpf.c: one lookup + in-place add in a
//                PERCPU_HASH with nettally's flow key/value sizes (no parse)
// A parse-only program needs a hook in bpf/ (nettally has no knob that turns
// the flow map off); until then the parse's share is what is left of the wan
// figure after the hash-update reference.
//
// Map sizes: nt_flows and the hash-update map are created with max_entries =
// 2^20 and filled from userspace (bpf_map_update_batch) to N live entries.
// The measured packet's own flow is created by a warm-up run first, so every
// measured run is the hot path (lookup hit, add in place). With N = 1 the map
// holds exactly the measured flow.
//
// Each figure is the median over --rounds calls of bpf_prog_test_run_opts
// with --repeat repetitions; the kernel reports the mean per repetition with
// the time the loop was scheduled out excluded, truncated to whole ns.
// The hot rows run the same packet and the same map entry a million times, so
// the entry is always in cache. On a gateway, a packet of one of 1M flows
// usually misses the cache for its bucket and entry: the "walk" rows (after the
// last N) send --walk packets of distinct live flows (ipv4/udp 64 B, ingress),
// in random order, one test run (repeat 1) each, and take the mean; the
// reference walks its own map the same way (nt_bench_hash_update_pkt, key in
// the packet). Each run's figure includes the kernel's timer reads, which the
// empty program's walk measures and the "+" figures subtract.
#include "bench_util.h"
#include "nettally.skel.h"
#include "nettally_cg.skel.h"
#include "nt_bench_empty.skel.h"
#include "nt_bench_hash.skel.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace nettally::bench;

namespace {

constexpr uint32_t kMapEntries = 1u << 20;

struct Options {
    int repeat = 1000000;
    int rounds = 5;
    int cpu = -1;
    std::vector<uint64_t> flows{1, 1000, 100000, 1000000};
    std::string json_path;
    std::string profile; // wan | lan | hash: run only this program, for a profiler
    double seconds = 5;
    uint32_t bindings = 10000;
    uint64_t walk = 131072; // packets of the walk rows (0: no walk rows)
};

[[noreturn]] void usage(int rc) {
    std::fprintf(
        rc ? stderr : stdout,
        "Usage: nt_bench_kernel [--repeat N] [--rounds N] [--cpu N] [--flows N,N,...] [--bindings N]\n"
        "                       [--walk N] [--json PATH]\n"
        "       nt_bench_kernel --profile wan|lan|hash [--flows N] [--seconds S]\n"
        "In-kernel cost per packet of nettally's TC programs (BPF_PROG_TEST_RUN). Needs root.\n"
        "--profile runs one program on ipv4/udp 64B at the first N for S seconds, for perf.\n");
    std::exit(rc);
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc)
                usage(2);
            return argv[++i];
        };
        if (a == "--repeat")
            o.repeat = std::stoi(next());
        else if (a == "--rounds")
            o.rounds = std::stoi(next());
        else if (a == "--cpu")
            o.cpu = std::stoi(next());
        else if (a == "--json")
            o.json_path = next();
        else if (a == "--profile")
            o.profile = next();
        else if (a == "--bindings")
            o.bindings = static_cast<uint32_t>(std::stoul(next()));
        else if (a == "--seconds")
            o.seconds = std::stod(next());
        else if (a == "--walk")
            o.walk = std::stoull(next());
        else if (a == "--flows") {
            o.flows.clear();
            std::string s = next();
            size_t pos = 0;
            while (pos < s.size()) {
                size_t comma = s.find(',', pos);
                o.flows.push_back(std::stoull(s.substr(pos, comma - pos)));
                pos = comma == std::string::npos ? s.size() : comma + 1;
            }
        } else if (a == "-h" || a == "--help")
            usage(0);
        else
            usage(2);
    }
    return o;
}

// One test run of a program: the kernel's mean ns per repetition.
double run_ns(int prog_fd, const TestPacket& pkt, int repeat) {
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = pkt.bytes.data(),
                .data_size_in = static_cast<uint32_t>(pkt.bytes.size()), .repeat = repeat);
    int err = bpf_prog_test_run_opts(prog_fd, &run);
    if (err)
        throw std::runtime_error(std::string("bpf_prog_test_run_opts: ") + std::strerror(-err));
    return run.duration;
}

// Median per-packet ns of each program over rounds; the programs take turns
// within a round so that a disturbance (another process, frequency) spreads
// over all of them instead of biasing one.
std::vector<double> measure(const std::vector<int>& prog_fds, const TestPacket& pkt, const Options& o) {
    std::vector<std::vector<double>> per_prog(prog_fds.size());
    for (int r = 0; r < o.rounds; r++)
        for (size_t i = 0; i < prog_fds.size(); i++)
            per_prog[i].push_back(run_ns(prog_fds[i], pkt, o.repeat));
    std::vector<double> out;
    for (auto& v : per_prog)
        out.push_back(median(v));
    return out;
}

void run_once(int prog_fd, const TestPacket& pkt) {
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = pkt.bytes.data(),
                .data_size_in = static_cast<uint32_t>(pkt.bytes.size()), .repeat = 1);
    int err = bpf_prog_test_run_opts(prog_fd, &run);
    if (err)
        throw std::runtime_error(std::string("bpf_prog_test_run_opts (warm-up): ") + std::strerror(-err));
}

struct SkelDeleter {
    void operator()(nettally_bpf* s) const { nettally_bpf__destroy(s); }
    void operator()(nt_bench_empty_bpf* s) const { nt_bench_empty_bpf__destroy(s); }
    void operator()(nt_bench_hash_bpf* s) const { nt_bench_hash_bpf__destroy(s); }
    void operator()(nettally_cg_bpf* s) const { nettally_cg_bpf__destroy(s); }
};

// The cgroup_skb object with the cgroup v2 root tracked: BPF_PROG_TEST_RUN gives the skb a socket
// in this process's cgroup, so a run counts into that cgroup's entry (the first run creates it).
std::unique_ptr<nettally_cg_bpf, SkelDeleter> load_cgroup() {
    std::unique_ptr<nettally_cg_bpf, SkelDeleter> s(nettally_cg_bpf__open_and_load());
    if (!s)
        throw std::runtime_error("loading the cgroup_skb object");
    const uint64_t root = 1;
    const uint8_t one = 1;
    if (bpf_map__update_elem(s->maps.nt_cg_subtrees, &root, sizeof(root), &one, sizeof(one), BPF_ANY))
        throw std::runtime_error("tracking the cgroup v2 root");
    return s;
}

// A throttle on each packet's source in nt_policy, at a rate no test run reaches (never drops).
void fill_policy(int map_fd, const std::vector<TestPacket>& packets, uint32_t ifindex) {
    for (const auto& p : packets) {
        const nt_flow_key fk = flow_key_of(p, ifindex, NT_DIR_INGRESS);
        nt_policy_key k{};
        k.family = static_cast<uint8_t>(p.family);
        std::memcpy(k.addr, fk.src, sizeof(k.addr));
        nt_policy_val v{};
        v.action = NT_POLICY_THROTTLE;
        v.rate = 1ull << 50;
        v.burst_ns = 1000000000ull;
        if (bpf_map_update_elem(map_fd, &k, &v, BPF_ANY))
            throw std::runtime_error(std::string("filling nt_policy: ") + std::strerror(errno));
    }
}

// share: an already loaded nettally object whose maps this one uses instead of its own.
std::unique_ptr<nettally_bpf, SkelDeleter>
load_nettally(bool hosts, uint32_t max_flows, const nettally_bpf* share = nullptr, bool users = false) {
    std::unique_ptr<nettally_bpf, SkelDeleter> s(nettally_bpf__open());
    if (!s)
        throw std::runtime_error("opening nettally BPF object");
    s->rodata->cfg_count_hosts = hosts ? 1 : 0;
    bpf_map__set_max_entries(s->maps.nt_flows, max_flows);
    if (share) {
        bpf_map* m;
        bpf_object__for_each_map(m, s->obj) {
            const bpf_map* theirs = bpf_object__find_map_by_name(share->obj, bpf_map__name(m));
            // .rodata/.bss stay per object: the knobs differ.
            if (theirs && !bpf_map__is_internal(m) && bpf_map__reuse_fd(m, bpf_map__fd(theirs)) != 0)
                throw std::runtime_error(std::string("sharing map ") + bpf_map__name(m));
        }
    }
    // Only the TC programs are run here; anything else the object grows (XDP, ...) stays unloaded.
    bpf_object* obj = s->obj;
    bpf_program* p;
    bpf_object__for_each_program(p, obj) {
        const std::string name = bpf_program__name(p);
        bpf_program__set_autoload(p, name == "nt_tc_ingress_lan" || name == "nt_tc_ingress_wan");
    }
    int err = nettally_bpf__load(s.get());
    if (err)
        throw std::runtime_error(std::string("loading nettally BPF object: ") + std::strerror(-err));
    s->bss->nt_users_on = users ? 1 : 0;
    s->bss->nt_bind_serial = 1; // as nettallyd sets it: host entries cache their user under it
    return s;
}

// Reads the interface counters of the test runs: every packet parsed, none in a bucket.
struct IfaceCheck {
    uint32_t ifindex = 0;
    uint64_t total = 0, unparsable = 0, overflow = 0;
};

// n bindings: the measured packets' sources (user 1 .. 8, /32 and /128) and synthetic IPv4 /32s
// (198.18.0.0/15 upwards) and IPv6 /64s, half each, users 9 ...
void fill_bindings(int map_fd, const std::vector<TestPacket>& packets, uint32_t ifindex, uint32_t n) {
    uint32_t user = 1;
    for (const auto& p : packets) {
        const nt_flow_key fk = flow_key_of(p, ifindex, NT_DIR_INGRESS);
        nt_bind_key k{};
        k.prefixlen = NT_BIND_KEY_BITS + (p.family == NT_AF_INET ? 32 : 128);
        k.family = static_cast<uint8_t>(p.family);
        std::memcpy(k.addr, fk.src, sizeof(k.addr));
        const nt_bind_val v{user++, 0};
        if (bpf_map_update_elem(map_fd, &k, &v, BPF_ANY))
            throw std::runtime_error(std::string("binding a packet source: ") + std::strerror(errno));
    }
    for (uint32_t i = 0; i + packets.size() < n; i++) {
        nt_bind_key k{};
        if (i % 2 == 0) {
            k.prefixlen = NT_BIND_KEY_BITS + 32;
            k.family = NT_AF_INET;
            k.addr[0] = htonl((198u << 24 | 18u << 16) + i / 2 + 1);
        } else {
            k.prefixlen = NT_BIND_KEY_BITS + 64;
            k.family = NT_AF_INET6;
            k.addr[0] = htonl(0xfd000000u);
            k.addr[1] = htonl(i / 2 + 1);
        }
        const nt_bind_val v{user++, 0};
        if (bpf_map_update_elem(map_fd, &k, &v, BPF_ANY))
            throw std::runtime_error(std::string("filling the binding trie: ") + std::strerror(errno));
    }
}

IfaceCheck check_ifaces(int map_fd, int ncpus) {
    IfaceCheck c;
    nt_iface_key key{}, next{};
    void* prev = nullptr;
    std::vector<nt_iface_val> vals(static_cast<size_t>(ncpus));
    while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        if (bpf_map_lookup_elem(map_fd, &key, vals.data()) != 0)
            continue;
        c.ifindex = key.ifindex;
        for (const auto& v : vals) {
            c.total += v.total.packets;
            c.unparsable += v.bucket[NT_BUCKET_UNPARSABLE].packets;
            c.overflow += v.bucket[NT_BUCKET_FLOW_OVERFLOW].packets;
        }
    }
    return c;
}

// Packets of up to k distinct live flows, ipv4/udp 64 B, ingress, in random order: synthetic flow
// indices 8j + 2 (synthetic_flow_key: bit 0 direction, bit 1 UDP, bit 2 IPv6) below `filled`. For
// nettally (`keyed` false) the packet carries the flow's addresses and ports; for the reference
// (`keyed` true) its first bytes are the flow key itself, with ifindex 999 as the reference map's.
std::vector<TestPacket> walk_packets(uint64_t filled, uint64_t k, uint32_t ifindex, bool keyed) {
    std::vector<uint64_t> js(filled / 8);
    for (uint64_t j = 0; j < js.size(); j++)
        js[j] = j;
    std::mt19937_64 rng(42);
    std::shuffle(js.begin(), js.end(), rng);
    js.resize(std::min<uint64_t>(k, js.size()));
    const TestPacket base = make_packet(NT_AF_INET, 17, 64);
    std::vector<TestPacket> out;
    out.reserve(js.size());
    for (uint64_t j : js) {
        TestPacket p = base;
        const nt_flow_key key = synthetic_flow_key(8 * j + 2, keyed ? 999 : ifindex);
        uint8_t* b = p.bytes.data();
        if (keyed) {
            std::memcpy(b, &key, sizeof(key));
        } else {
            std::memcpy(b + 14 + 12, &key.src[0], 4);
            std::memcpy(b + 14 + 16, &key.dst[0], 4);
            const uint16_t sport = htons(key.sport), dport = htons(key.dport);
            std::memcpy(b + 14 + 20, &sport, 2);
            std::memcpy(b + 14 + 22, &dport, 2);
            p.sport = key.sport;
            p.dport = key.dport;
        }
        out.push_back(std::move(p));
    }
    return out;
}

// Mean kernel ns of one test run per packet, over the packets in order.
double walk_ns(int prog_fd, const std::vector<TestPacket>& pkts) {
    double sum = 0;
    for (const auto& p : pkts)
        sum += run_ns(prog_fd, p, 1);
    return pkts.empty() ? 0 : sum / static_cast<double>(pkts.size());
}

std::string fmt(double ns, double base) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%6.1f (+%5.1f)", ns, ns - base);
    return buf;
}

} // namespace

int main(int argc, char** argv) {
    Options o = parse_args(argc, argv);
    const long ncpu_online = sysconf(_SC_NPROCESSORS_ONLN);
    if (o.cpu < 0)
        o.cpu = static_cast<int>(ncpu_online > 1 ? ncpu_online - 1 : 0);
    pin_to_cpu(o.cpu);
    const int ncpus = libbpf_num_possible_cpus();

    const std::string stats = read_small_file("/proc/sys/kernel/bpf_stats_enabled");
    if (stats != "0")
        std::fprintf(
            stderr,
            "nt_bench_kernel: warning: kernel.bpf_stats_enabled=%s: every run also pays for run-time "
            "stats, figures are higher than in production\n",
            stats.c_str());

    std::vector<TestPacket> packets;
    for (int fam : {NT_AF_INET, NT_AF_INET6})
        for (uint8_t proto : {uint8_t{6}, uint8_t{17}})
            for (uint32_t len : {64u, 1514u})
                packets.push_back(make_packet(fam, proto, len));

    nlohmann::json out;
    out["repeat"] = o.repeat;
    out["rounds"] = o.rounds;
    out["cpu"] = o.cpu;
    out["map_max_entries"] = kMapEntries;
    out["bpf_stats_enabled"] = stats;
    nlohmann::json& rows = out["results"] = nlohmann::json::array();
    auto record = [&](const std::string& prog, const std::string& pkt, uint64_t flows, double ns,
                      double empty) {
        rows.push_back({{"prog", prog}, {"packet", pkt}, {"flows", flows}, {"ns", ns}, {"empty_ns", empty}});
    };

    try {
        std::unique_ptr<nt_bench_empty_bpf, SkelDeleter> empty(nt_bench_empty_bpf__open_and_load());
        if (!empty)
            throw std::runtime_error("loading bench/bpf/empty.bpf.c");
        std::unique_ptr<nt_bench_hash_bpf, SkelDeleter> hash(nt_bench_hash_bpf__open());
        if (!hash)
            throw std::runtime_error("opening bench/bpf/hash_update.bpf.c");
        bpf_map__set_max_entries(hash->maps.bench_flows, kMapEntries);
        if (int err = nt_bench_hash_bpf__load(hash.get()))
            throw std::runtime_error(std::string("loading bench/bpf/hash_update.bpf.c: ") +
                                     std::strerror(-err));
        auto full = load_nettally(true, kMapEntries);
        auto no_hosts = load_nettally(false, kMapEntries, full.get());
        auto subs = load_nettally(true, kMapEntries, full.get(), true);

        const int empty_fd = bpf_program__fd(empty->progs.nt_bench_empty);
        const int hash_fd = bpf_program__fd(hash->progs.nt_bench_hash_update);
        const int hash_map = bpf_map__fd(hash->maps.bench_flows);
        const int hash_pkt_fd = bpf_program__fd(hash->progs.nt_bench_hash_update_pkt);
        const int lan_fd = bpf_program__fd(full->progs.nt_tc_ingress_lan);
        const int wan_fd = bpf_program__fd(full->progs.nt_tc_ingress_wan);
        const int lan0_fd = bpf_program__fd(no_hosts->progs.nt_tc_ingress_lan);
        const int subs_fd = bpf_program__fd(subs->progs.nt_tc_ingress_lan);
        const int flows_map = bpf_map__fd(full->maps.nt_flows);
        const int hosts_map = bpf_map__fd(full->maps.nt_hosts);

        std::printf("In-kernel cost per packet: BPF_PROG_TEST_RUN, repeat %d, median of %d rounds, CPU %d; "
                    "ns/packet (+ overhead over empty)\n",
                    o.repeat, o.rounds, o.cpu);
        std::printf("nt_flows and the hash-update map: max_entries %u, filled to N live flows; measured flow "
                    "always present (hot path)\n\n",
                    kMapEntries);

        // The device BPF_PROG_TEST_RUN puts in skb->dev (this netns' loopback): learnt from the map.
        run_once(wan_fd, packets[0]);
        const uint32_t ifindex = check_ifaces(bpf_map__fd(full->maps.nt_ifaces), ncpus).ifindex;
        fill_bindings(bpf_map__fd(full->maps.nt_bindings), packets, ifindex, o.bindings);
        out["bindings"] = o.bindings;
        std::printf("lan subs: subscribers on, %u bindings in the trie (the measured source bound)\n\n",
                    o.bindings);

        if (!o.profile.empty()) {
            const TestPacket& p = packets[2];
            const uint64_t n = o.flows.empty() ? 1 : o.flows.front();
            const bool hash_prog = o.profile == "hash";
            const int fd = hash_prog ? hash_fd : o.profile == "lan" ? lan_fd : wan_fd;
            if (hash_prog) {
                const nt_flow_key hk = synthetic_flow_key(0, 999);
                std::memcpy(&hash->bss->bench_key, &hk, sizeof(hk));
            }
            run_once(fd, p);
            if (n > 1)
                fill_flows(hash_prog ? hash_map : flows_map, ncpus, 1, n - 1, hash_prog ? 999 : ifindex);
            std::vector<double> ns;
            const uint64_t end = now_ns() + static_cast<uint64_t>(o.seconds * 1e9);
            while (now_ns() < end)
                ns.push_back(run_ns(fd, p, o.repeat));
            std::printf("%s, %s, %llu live flows: %.1f ns/packet (median of %zu runs of %d)\n",
                        o.profile.c_str(), p.name.c_str(), static_cast<unsigned long long>(n), median(ns),
                        ns.size(), o.repeat);
            return 0;
        }

        std::printf("%-16s %10s %15s %15s %15s %15s %15s\n", "packet", "live flows", "empty", "wan",
                    "lan hosts=0", "lan", "lan subs");
        auto measure_row = [&](const TestPacket& p, uint64_t n) {
            const std::vector<double> ns = measure({empty_fd, wan_fd, lan0_fd, lan_fd, subs_fd}, p, o);
            const double e = ns[0];
            record("empty", p.name, n, e, e);
            record("wan", p.name, n, ns[1], e);
            record("lan_nohosts", p.name, n, ns[2], e);
            record("lan", p.name, n, ns[3], e);
            record("lan_subscribers", p.name, n, ns[4], e);
            std::printf("%-16s %10llu %15s %15s %15s %15s %15s\n", p.name.c_str(),
                        static_cast<unsigned long long>(n), fmt(e, e).c_str(), fmt(ns[1], e).c_str(),
                        fmt(ns[2], e).c_str(), fmt(ns[3], e).c_str(), fmt(ns[4], e).c_str());
            std::fflush(stdout);
        };

        const TestPacket& hash_pkt = packets[2]; // ipv4/udp 64B: the hash program ignores the bytes
        uint64_t synthetic = 0;                  // synthetic entries in nt_flows so far
        uint64_t hash_synthetic = 0;
        uint64_t real_flows = 0; // flows of the measured packets
        struct HashRow {
            uint64_t n;
            double ns, empty;
        };
        std::vector<HashRow> hash_rows;
        for (uint64_t n : o.flows) {
            if (n == 0 || n > kMapEntries - 64) {
                std::fprintf(stderr, "nt_bench_kernel: skipping N=%llu (map holds %u)\n",
                             static_cast<unsigned long long>(n), kMapEntries);
                continue;
            }
            if (n < packets.size()) {
                // Exactly n live flows: start from an empty map for every packet.
                for (const auto& p : packets) {
                    clear_map(flows_map, sizeof(nt_flow_key));
                    clear_map(hosts_map, sizeof(nt_host_key));
                    run_once(lan_fd, p);
                    if (n > 1)
                        fill_flows(flows_map, ncpus, 0, n - 1, ifindex);
                    measure_row(p, n);
                }
                clear_map(flows_map, sizeof(nt_flow_key));
                synthetic = 0;
            } else {
                // The measured flows first, then synthetic ones up to n: new entries go to the
                // head of their bucket, so the measured flows are the old ones behind them.
                for (const auto& p : packets)
                    run_once(lan_fd, p);
                if (synthetic == 0)
                    real_flows = count_entries(flows_map, sizeof(nt_flow_key));
                if (n > real_flows + synthetic) {
                    fill_flows(flows_map, ncpus, synthetic, n - real_flows - synthetic, ifindex);
                    synthetic = n - real_flows;
                }
                for (const auto& p : packets) {
                    std::vector<nt_flow_val> probe(static_cast<size_t>(ncpus));
                    const nt_flow_key k = flow_key_of(p, ifindex, NT_DIR_INGRESS);
                    if (bpf_map_lookup_elem(flows_map, &k, probe.data()) != 0)
                        std::fprintf(stderr,
                                     "nt_bench_kernel: warning: flow of %s not found: not the hot path\n",
                                     p.name.c_str());
                    measure_row(p, n);
                }
            }

            // The reference: one per-CPU hash lookup + update in a map of n entries.
            const nt_flow_key hk = synthetic_flow_key(0, 999);
            std::memcpy(&hash->bss->bench_key, &hk, sizeof(hk));
            if (n < packets.size() || hash_synthetic == 0) {
                clear_map(hash_map, sizeof(nt_flow_key));
                run_once(hash_fd, hash_pkt); // inserts key 0 (ifindex 999)
                hash_synthetic = 0;
            }
            if (n > 1 + hash_synthetic) {
                fill_flows(hash_map, ncpus, 1 + hash_synthetic, n - 1 - hash_synthetic, 999);
                hash_synthetic = n - 1;
            }
            const std::vector<double> h = measure({empty_fd, hash_fd}, hash_pkt, o);
            record("hash-update", hash_pkt.name, n, h[1], h[0]);
            hash_rows.push_back({n, h[1], h[0]});
            std::printf("\n");
        }

        const uint64_t walk_filled = std::min(synthetic, hash_synthetic + 1);
        if (o.walk > 0 && walk_filled >= 8) {
            const auto pkts = walk_packets(walk_filled, o.walk, ifindex, false);
            const auto keyed = walk_packets(walk_filled, o.walk, ifindex, true);
            const uint64_t live = count_entries(flows_map, sizeof(nt_flow_key));
            std::vector<std::vector<double>> ns(4);
            for (int r = 0; r < std::max(o.rounds, 3); r++) {
                ns[0].push_back(walk_ns(empty_fd, pkts));
                ns[1].push_back(walk_ns(wan_fd, pkts));
                ns[2].push_back(walk_ns(lan_fd, pkts));
                ns[3].push_back(walk_ns(hash_pkt_fd, keyed));
            }
            const double e = median(ns[0]), wan = median(ns[1]), lan = median(ns[2]), ref = median(ns[3]);
            const std::string name = pkts.front().name;
            record("wan_walk", name, live, wan, e);
            record("lan_walk", name, live, lan, e);
            record("hash-update_walk", name, live, ref, e);
            out["walk"] = {{"packets", pkts.size()}, {"live_flows", live}};
            std::printf("Walk: %zu packets of distinct live flows among %llu, random order, one run each "
                        "(mean ns, + over empty):\n  empty %s  wan %s  lan %s  hash-update %s\n",
                        pkts.size(), static_cast<unsigned long long>(live), fmt(e, e).c_str(),
                        fmt(wan, e).c_str(), fmt(lan, e).c_str(), fmt(ref, e).c_str());
            if (count_entries(flows_map, sizeof(nt_flow_key)) != live)
                std::fprintf(stderr, "nt_bench_kernel: warning: the walk created flows: not all hits\n");
            std::printf("\n");
        }

        // Optional features, each as its own program next to plain "lan", on the hot path.
        {
            auto acts = load_nettally(true, kMapEntries, full.get());
            acts->bss->nt_policy_kinds = NT_POLICY_KIND_IP;
            fill_policy(bpf_map__fd(full->maps.nt_policy), packets, ifindex);
            auto cg = load_cgroup();
            const int acts_fd = bpf_program__fd(acts->progs.nt_tc_ingress_lan);
            const int cg_fd = bpf_program__fd(cg->progs.nt_cg_ingress);
            std::printf(
                "Optional features (hot path; + over empty): lan; lan actions = lan with a throttle in "
                "force on the packet's source (lookup + GCRA under the entry's lock, never dropping); "
                "cgroup = the cgroup_skb program alone (parse, total, the cgroup's entry)\n");
            std::printf("%-16s %15s %15s %15s %15s\n", "packet", "empty", "lan", "lan actions", "cgroup");
            for (const TestPacket* p : {&packets[2], &packets[4]}) {
                run_once(acts_fd, *p);
                run_once(cg_fd, *p);
                const std::vector<double> ns = measure({empty_fd, lan_fd, acts_fd, cg_fd}, *p, o);
                record("lan_actions", p->name, synthetic + real_flows, ns[2], ns[0]);
                record("lan_feature_base", p->name, synthetic + real_flows, ns[1], ns[0]);
                record("cgroup", p->name, synthetic + real_flows, ns[3], ns[0]);
                std::printf("%-16s %15s %15s %15s %15s\n", p->name.c_str(), fmt(ns[0], ns[0]).c_str(),
                            fmt(ns[1], ns[0]).c_str(), fmt(ns[2], ns[0]).c_str(), fmt(ns[3], ns[0]).c_str());
            }
            std::printf("\n");
        }

        std::printf("Reference: one PERCPU_HASH lookup + in-place update (%s), ns/packet (+ overhead over "
                    "empty)\n",
                    hash_pkt.name.c_str());
        for (const auto& h : hash_rows)
            std::printf("  %10llu live entries: %s\n", static_cast<unsigned long long>(h.n),
                        fmt(h.ns, h.empty).c_str());

        const IfaceCheck fc = check_ifaces(bpf_map__fd(full->maps.nt_ifaces), ncpus);
        out["checks"] = {
            {"unparsable", fc.unparsable}, {"flow_overflow", fc.overflow}, {"packets", fc.total}};
        if (fc.overflow || fc.unparsable)
            std::fprintf(
                stderr,
                "nt_bench_kernel: warning: %llu packets in the overflow bucket, %llu unparsable: some "
                "runs did not take the hot path\n",
                static_cast<unsigned long long>(fc.overflow), static_cast<unsigned long long>(fc.unparsable));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "nt_bench_kernel: %s\n", e.what());
        return 1;
    }

    if (!o.json_path.empty()) {
        std::ofstream f(o.json_path);
        f << out.dump(2) << "\n";
    }
    return 0;
}
