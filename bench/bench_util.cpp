// See bench_util.h.
#include "bench_util.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <time.h>
#include <unistd.h>

namespace nettally::bench {

bool pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        std::fprintf(stderr, "bench: cannot pin to CPU %d: %s\n", cpu, std::strerror(errno));
        return false;
    }
    return true;
}

double median(std::vector<double> v) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

namespace {
uint64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
} // namespace

uint64_t now_ns() {
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t cpu_ns(clockid_t clock) {
    return clock_ns(clock);
}

static std::string proc_path(pid_t pid, const char* leaf) {
    return pid == 0 ? std::string("/proc/self/") + leaf : "/proc/" + std::to_string(pid) + "/" + leaf;
}

std::optional<uint64_t> proc_status_kib(pid_t pid, const std::string& field) {
    std::ifstream f(proc_path(pid, "status"));
    std::string line;
    const std::string prefix = field + ":";
    while (std::getline(f, line)) {
        if (line.rfind(prefix, 0) == 0)
            return std::stoull(line.substr(prefix.size()));
    }
    return std::nullopt;
}

std::optional<uint64_t> proc_cpu_ticks(pid_t pid) {
    std::ifstream f(proc_path(pid, "stat"));
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // comm may hold spaces and parentheses: fields start after the last ')'.
    auto close = all.rfind(')');
    if (close == std::string::npos)
        return std::nullopt;
    std::istringstream in(all.substr(close + 2));
    std::string tok;
    uint64_t utime = 0, stime = 0;
    // After ')': state(3) ppid(4) ... utime is field 14, stime 15 (1-based over the whole line).
    for (int field = 3; field <= 15 && (in >> tok); field++) {
        if (field == 14)
            utime = std::stoull(tok);
        if (field == 15)
            stime = std::stoull(tok);
    }
    return utime + stime;
}

std::string read_small_file(const std::string& path) {
    std::ifstream f(path);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

int find_map_fd(pid_t pid, const std::string& name) {
    const std::string dir = proc_path(pid, "fdinfo");
    DIR* d = opendir(dir.c_str());
    if (!d)
        return -1;
    std::vector<uint32_t> ids;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        std::ifstream f(dir + "/" + e->d_name);
        std::string line;
        while (std::getline(f, line)) {
            if (line.rfind("map_id:", 0) == 0) {
                ids.push_back(static_cast<uint32_t>(std::stoul(line.substr(7))));
                break;
            }
        }
    }
    closedir(d);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
        int fd = bpf_map_get_fd_by_id(*it);
        if (fd < 0)
            continue;
        bpf_map_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && name == info.name)
            return fd;
        close(fd);
    }
    return -1;
}

nt_flow_key synthetic_flow_key(uint64_t i, uint32_t ifindex) {
    nt_flow_key k{};
    k.ifindex = ifindex;
    k.dir = static_cast<uint8_t>(i & 1);
    k.proto = (i & 2) ? 17 : 6;
    k.family = (i & 4) ? NT_AF_INET6 : NT_AF_INET;
    const uint64_t j = i >> 3;
    k.sport = static_cast<uint16_t>(1024 + (j % 60000));
    k.dport = static_cast<uint16_t>(j / 60000 % 65536);
    const uint32_t host = static_cast<uint32_t>(j / 60000 / 65536 + 1);
    if (k.family == NT_AF_INET) {
        k.src[0] = htonl((198u << 24) | (19u << 16) | (host & 0xFFFF));
        k.dst[0] = htonl((198u << 24) | (19u << 16) | 0xFFFE);
    } else {
        k.src[0] = htonl(0xfd00beefu);
        k.src[3] = htonl(host);
        k.dst[0] = htonl(0xfd00beefu);
        k.dst[3] = htonl(0xFFFE);
    }
    return k;
}

void fill_flows(int map_fd, int ncpus, uint64_t first, uint64_t count, uint32_t ifindex) {
    constexpr uint64_t kChunk = 16384;
    std::vector<nt_flow_key> keys;
    std::vector<nt_flow_val> vals;
    LIBBPF_OPTS(bpf_map_batch_opts, opts); // elem_flags: the kernel takes only BPF_F_LOCK here
    // Seen just now: the collector ages flows by last_ns (CLOCK_MONOTONIC) and would evict stale ones.
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
    for (uint64_t done = 0; done < count;) {
        const uint64_t n = std::min(kChunk, count - done);
        keys.resize(n);
        vals.assign(n * static_cast<uint64_t>(ncpus), nt_flow_val{});
        for (uint64_t i = 0; i < n; i++) {
            keys[i] = synthetic_flow_key(first + done + i, ifindex);
            nt_flow_val& v = vals[i * static_cast<uint64_t>(ncpus)];
            v.c.packets = 1;
            v.c.l2 = 100;
            v.c.l3 = 86;
            v.c.l4 = 66;
            v.c.payload = 46;
            v.first_ns = v.last_ns = now;
        }
        uint32_t cnt = static_cast<uint32_t>(n);
        int err = bpf_map_update_batch(map_fd, keys.data(), vals.data(), &cnt, &opts);
        if (err)
            throw std::runtime_error("bpf_map_update_batch after " + std::to_string(done + cnt) +
                                     " entries: " + std::strerror(-err));
        done += n;
    }
}

uint64_t count_entries(int map_fd, uint32_t key_size) {
    std::vector<uint8_t> cur(key_size), next(key_size);
    uint64_t n = 0;
    void* prev = nullptr;
    while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
        n++;
        cur.swap(next);
        prev = cur.data();
    }
    return n;
}

void clear_map(int map_fd, uint32_t key_size) {
    std::vector<uint8_t> key(key_size);
    // Always restart from the first key: deleting invalidates the iteration.
    while (bpf_map_get_next_key(map_fd, nullptr, key.data()) == 0)
        bpf_map_delete_elem(map_fd, key.data());
}

uint32_t min_frame_len(int family, uint8_t proto) {
    const uint32_t l3 = family == NT_AF_INET ? 20 : 40;
    const uint32_t l4 = proto == 6 ? 20 : 8;
    return std::max<uint32_t>(60, 14 + l3 + l4);
}

TestPacket make_packet(int family, uint8_t proto, uint32_t frame_len) {
    TestPacket p;
    p.family = family;
    p.proto = proto;
    p.frame_len = std::max(frame_len, min_frame_len(family, proto));
    p.sport = 40000;
    p.dport = proto == 6 ? 443 : 53;
    p.name = std::string(family == NT_AF_INET ? "ipv4/" : "ipv6/") + (proto == 6 ? "tcp " : "udp ") +
             std::to_string(p.frame_len) + "B";
    p.bytes.assign(p.frame_len, 0);
    uint8_t* b = p.bytes.data();
    const uint8_t dmac[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x01};
    const uint8_t smac[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x02};
    std::memcpy(b, dmac, 6);
    std::memcpy(b + 6, smac, 6);
    size_t off = 14;
    const uint32_t ip_len = p.frame_len - 14;
    if (family == NT_AF_INET) {
        b[12] = 0x08;
        b[13] = 0x00;
        b[off + 0] = 0x45;
        b[off + 2] = static_cast<uint8_t>(ip_len >> 8);
        b[off + 3] = static_cast<uint8_t>(ip_len);
        b[off + 6] = 0x40; // DF
        b[off + 8] = 64;
        b[off + 9] = proto;
        const uint8_t src[4] = {198, 18, 0, 2}, dst[4] = {198, 18, 1, 2};
        std::memcpy(b + off + 12, src, 4);
        std::memcpy(b + off + 16, dst, 4);
        off += 20;
    } else {
        b[12] = 0x86;
        b[13] = 0xdd;
        b[off + 0] = 0x60;
        const uint32_t plen = ip_len - 40;
        b[off + 4] = static_cast<uint8_t>(plen >> 8);
        b[off + 5] = static_cast<uint8_t>(plen);
        b[off + 6] = proto;
        b[off + 7] = 64;
        const uint8_t src[16] = {0xfd, 0x00, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2};
        const uint8_t dst[16] = {0xfd, 0x00, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2};
        std::memcpy(b + off + 8, src, 16);
        std::memcpy(b + off + 24, dst, 16);
        off += 40;
    }
    b[off + 0] = static_cast<uint8_t>(p.sport >> 8);
    b[off + 1] = static_cast<uint8_t>(p.sport);
    b[off + 2] = static_cast<uint8_t>(p.dport >> 8);
    b[off + 3] = static_cast<uint8_t>(p.dport);
    if (proto == 6) {
        b[off + 12] = 5 << 4; // data offset: 20 bytes
        b[off + 13] = 0x10;   // ACK
        b[off + 14] = 0xff;   // window
    } else {
        const uint32_t ulen = p.frame_len - static_cast<uint32_t>(off);
        b[off + 4] = static_cast<uint8_t>(ulen >> 8);
        b[off + 5] = static_cast<uint8_t>(ulen);
    }
    return p;
}

nt_flow_key flow_key_of(const TestPacket& p, uint32_t ifindex, uint8_t dir) {
    nt_flow_key k{};
    k.ifindex = ifindex;
    k.dir = dir;
    k.proto = p.proto;
    k.family = static_cast<uint8_t>(p.family);
    k.sport = p.sport;
    k.dport = p.dport;
    const uint8_t* ip = p.bytes.data() + 14;
    if (p.family == NT_AF_INET) {
        std::memcpy(&k.src[0], ip + 12, 4);
        std::memcpy(&k.dst[0], ip + 16, 4);
    } else {
        std::memcpy(k.src, ip + 8, 16);
        std::memcpy(k.dst, ip + 24, 16);
    }
    return k;
}

} // namespace nettally::bench
