// Kernel feature probes: see probe.h.
#include "kernel/probe.h"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <unistd.h>

namespace nettally {

std::string program_refusal(bpf_prog_type type, bpf_attach_type expected_attach, const char* name,
                            const bpf_insn* insns, size_t count) {
    std::string log(4096, '\0');
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = expected_attach, .log_level = 1,
                .log_size = static_cast<uint32_t>(log.size()), .log_buf = log.data());
    const int fd = bpf_prog_load(type, name, "GPL", insns, count, &opts);
    if (fd >= 0) {
        close(fd);
        return {};
    }
    const int err = errno;
    log.resize(std::strlen(log.c_str()));
    for (size_t at = 0; at < log.size();) {
        const size_t end = std::min(log.find('\n', at), log.size());
        if (std::string line = log.substr(at, end - at);
            line.find("helper") != std::string::npos || line.find("func") != std::string::npos)
            return line;
        at = end + 1;
    }
    return std::strerror(err);
}

std::string netns_cookie_unavailable() {
    // r1 is the context; r0 = bpf_get_netns_cookie(ctx); return 1 (pass)
    const bpf_insn insns[] = {
        {0x85, 0, 0, 0, BPF_FUNC_get_netns_cookie}, // call
        {0xb7, 0, 0, 0, 1},                         // r0 = 1
        {0x95, 0, 0, 0, 0},                         // exit
    };
    return program_refusal(BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS, "nt_netns_probe", insns,
                           std::size(insns));
}

const std::string& xdp_unavailable() {
    static const std::string why = [] {
        // r6 = ctx; bpf_xdp_adjust_meta(ctx, -4); bpf_xdp_load_bytes(ctx, 0, fp - 8, 1); return XDP_PASS
        const bpf_insn insns[] = {
            {0xbf, 6, 1, 0, 0},                        // r6 = r1
            {0xb7, 2, 0, 0, -4},                       // r2 = -4
            {0x85, 0, 0, 0, BPF_FUNC_xdp_adjust_meta}, // call
            {0xbf, 1, 6, 0, 0},                        // r1 = r6
            {0xb7, 2, 0, 0, 0},                        // r2 = 0
            {0xbf, 3, 10, 0, 0},                       // r3 = r10
            {0x07, 3, 0, 0, -8},                       // r3 += -8
            {0xb7, 4, 0, 0, 1},                        // r4 = 1
            {0x85, 0, 0, 0, BPF_FUNC_xdp_load_bytes},  // call
            {0xb7, 0, 0, 0, XDP_PASS},                 // r0 = XDP_PASS
            {0x95, 0, 0, 0, 0},                        // exit
        };
        const std::string reason =
            program_refusal(BPF_PROG_TYPE_XDP, BPF_XDP, "nt_xdp_probe", insns, std::size(insns));
        if (reason.empty())
            return reason;
        return "the kernel refuses an XDP program calling bpf_xdp_adjust_meta and bpf_xdp_load_bytes: " +
               reason;
    }();
    return why;
}

} // namespace nettally
