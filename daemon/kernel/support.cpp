// Kernel support probes and libbpf's log routing. See support.h.
#include "kernel/support.h"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace nettally {
namespace {

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
    std::string msg(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
    while (!msg.empty() && msg.back() == '\n')
        msg.pop_back();
    switch (level) {
    case LIBBPF_WARN:
        spdlog::info("{}", msg);
        break;
    case LIBBPF_INFO:
        spdlog::debug("{}", msg);
        break;
    default:
        spdlog::trace("{}", msg);
        break;
    }
    return n;
}

} // namespace

std::string helper_refusal(bpf_prog_type type, bpf_func_id helper) {
    // call helper (r1 = ctx, the other arguments unset); r0 = 0; exit
    const bpf_insn insns[] = {
        {0x85, 0, 0, 0, helper},
        {0xb7, 0, 0, 0, 0},
        {0x95, 0, 0, 0, 0},
    };
    std::string log(4096, '\0');
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1, .log_size = static_cast<uint32_t>(log.size()),
                .log_buf = log.data());
    const int fd = bpf_prog_load(type, "nt_probe", "GPL", insns, std::size(insns), &opts);
    if (fd >= 0) {
        close(fd);
        return {};
    }
    const int err = errno;
    if (err != EINVAL)
        return std::strerror(err);
    log.resize(std::strlen(log.c_str()));
    for (size_t at = 0; at < log.size();) {
        const size_t end = std::min(log.find('\n', at), log.size());
        if (const std::string line = log.substr(at, end - at);
            line.find("unknown func") != std::string::npos ||
            line.find("invalid func") != std::string::npos ||
            line.find("cannot use helper") != std::string::npos)
            return line;
        at = end + 1;
    }
    return {}; // refused for its unset arguments: the helper is there
}

const std::string& xdp_unavailable() {
    static const std::string why = [] {
        for (const bpf_func_id helper : {BPF_FUNC_xdp_adjust_meta, BPF_FUNC_xdp_load_bytes})
            if (std::string r = helper_refusal(BPF_PROG_TYPE_XDP, helper); !r.empty())
                return "the kernel refuses an XDP program calling bpf_xdp_adjust_meta and "
                       "bpf_xdp_load_bytes: " +
                       r;
        return std::string();
    }();
    return why;
}

void route_libbpf_logs() {
    libbpf_set_print(libbpf_print);
}

} // namespace nettally
