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

} // namespace nettally
