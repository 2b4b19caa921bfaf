// Helpers shared by the C++ benches: CPU pinning, robust statistics, /proc
// readings, finding a BPF map among a process's file descriptors, synthetic
// flow keys and batched map filling, and test packets. Nothing here decides
// whether a figure is good: benches print, they do not pass or fail.
#pragma once

#include "core/abi.h"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace nettally::bench {

// Pins the calling thread to one CPU; returns false (and says why on stderr) if it cannot.
bool pin_to_cpu(int cpu);

double median(std::vector<double> v);

// Monotonic clock in nanoseconds.
uint64_t now_ns();
// CPU time in nanoseconds (user + system) of the calling thread (CLOCK_THREAD_CPUTIME_ID) or of
// the process (CLOCK_PROCESS_CPUTIME_ID): on a machine shared with other work, the CPU a step
// took is steadier than its wall time.
uint64_t cpu_ns(clockid_t clock = CLOCK_THREAD_CPUTIME_ID);

// A "Vm*:" field of /proc/PID/status in KiB (pid 0 = self), nullopt if absent.
std::optional<uint64_t> proc_status_kib(pid_t pid, const std::string& field);

// utime + stime of a process in clock ticks (pid 0 = self).
std::optional<uint64_t> proc_cpu_ticks(pid_t pid);

// Contents of a small file, trailing whitespace trimmed; "" if unreadable.
std::string read_small_file(const std::string& path);

// An fd (owned by the caller) for the BPF map called `name` that process `pid`
// (0 = self) holds open, found through /proc/PID/fdinfo; -1 when none. When
// the process holds several, the one with the highest map id wins.
int find_map_fd(pid_t pid, const std::string& name);

// Distinct synthetic flow keys: index i -> one key. Addresses come from
// 198.19.0.0/16 (IPv4) and fd00:bench::/64 (IPv6), so they never collide with
// the packets the benches send (198.18.0.0/16, fd00::/64 other prefix).
nt_flow_key synthetic_flow_key(uint64_t i, uint32_t ifindex);

// Inserts synthetic keys [first, first + count) into a per-CPU flow map with
// bpf_map_update_batch (values: one packet of 100 bytes on CPU 0, first and
// last seen now; an existing key is overwritten). Throws
// std::runtime_error on failure.
void fill_flows(int map_fd, int ncpus, uint64_t first, uint64_t count, uint32_t ifindex);

// Number of entries in a hash map (walks the keys).
uint64_t count_entries(int map_fd, uint32_t key_size);

// Deletes every entry of a hash map.
void clear_map(int map_fd, uint32_t key_size);

// One test frame: Ethernet + IPv4/IPv6 + TCP/UDP + zero payload, exactly
// frame_len bytes long (without FCS), checksums left zero (nothing checks
// them in BPF_PROG_TEST_RUN).
struct TestPacket {
    std::string name; // "ipv4/udp 64B"
    int family = 0;   // NT_AF_INET / NT_AF_INET6
    uint8_t proto = 0;
    uint32_t frame_len = 0;
    uint16_t sport = 0;
    uint16_t dport = 0;
    std::vector<uint8_t> bytes;
};

// Smallest legal frame for a header stack, without FCS.
uint32_t min_frame_len(int family, uint8_t proto);

TestPacket make_packet(int family, uint8_t proto, uint32_t frame_len);

// The nt_flow_key nettally's parser derives from a TestPacket seen on ifindex in direction dir.
nt_flow_key flow_key_of(const TestPacket& p, uint32_t ifindex, uint8_t dir);

} // namespace nettally::bench
