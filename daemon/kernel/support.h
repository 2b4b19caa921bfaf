// What this kernel lets nettally's BPF programs do, asked of the kernel itself, and libbpf's
// messages routed into the project logger.
#pragma once

#include <linux/bpf.h>

#include <string>

namespace nettally {

// Why the kernel refuses helper to programs of type, "" when it allows it. Asked by loading a
// program that calls it: the verifier looks the helper up before it checks the arguments, so a
// refusal names the helper ("unknown func", "invalid func", and since newer kernels "program of
// this type cannot use helper"); any other verdict means the helper is there. libbpf 1.1's
// libbpf_probe_bpf_helper() knows only the first two wordings and takes the third for support.
// A program that cannot be loaded at all (no privileges) gives the errno's text.
std::string helper_refusal(bpf_prog_type type, bpf_func_id helper);

// Why this kernel cannot run nettally's XDP programs, "" when it can: they call
// bpf_xdp_load_bytes (Linux 5.18) and bpf_xdp_adjust_meta, either of which a kernel may refuse to
// XDP programs. Asked once.
const std::string& xdp_unavailable();

// Installs libbpf's print callback into the project logger, one level down.
void route_libbpf_logs();

} // namespace nettally
