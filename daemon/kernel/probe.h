// What this kernel lets nettallyd's programs do, asked the one way that holds on every kernel: by
// loading a small program that is valid wherever the feature exists, and reading the verifier's
// reason when it is refused. libbpf 1.1's libbpf_probe_bpf_helper is not used: it decides from
// the wording of the refusal, and takes the wording of newer kernels ("program of this type cannot
// use helper", where 6.1 said "unknown func") for support.
#pragma once

#include <cstddef>
#include <linux/bpf.h>
#include <string>

namespace nettally {

// "" when the kernel loads the program (it is closed again at once), else why not: the verifier's
// line naming a helper or function when there is one, else the error's text.
std::string program_refusal(bpf_prog_type type, bpf_attach_type expected_attach, const char* name,
                            const bpf_insn* insns, size_t count);

// Why this kernel cannot run nettally's XDP programs, "" when it can. They call
// bpf_xdp_load_bytes (Linux 5.18) and bpf_xdp_adjust_meta, and a kernel may refuse either to XDP
// programs. Asked once, by loading a program that calls both.
const std::string& xdp_unavailable();

// Why cgroup_skb programs cannot call bpf_get_netns_cookie here (Linux 6.15), "" when they can.
std::string netns_cookie_unavailable();

} // namespace nettally
