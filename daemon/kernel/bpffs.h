// The bpffs where nettallyd pins its counting maps (pin_dir): finding or mounting it, and handing
// the pin directory to the unprivileged user the systemd unit runs nettallyd as.
//
// The unit runs nettallyd as the system user "nettally" with only CAP_BPF, CAP_PERFMON and
// CAP_NET_ADMIN. Pins are files: opening one takes search permission on every directory above it
// and read-write permission on the pin itself, which capabilities other than CAP_DAC_* do not
// give. systemd mounts /sys/fs/bpf with mode 0700 (root only), so before the daemon starts the
// unit's `ExecStartPre=+nettallyd --prepare-pins nettally` (run with full privileges) calls
// prepare_pin_dir(): it adds search permission for others (o+x, no read: names cannot be listed)
// to the bpffs directories above pin_dir, creates pin_dir (mode 0700) and gives it and every pin
// in it to that user. The pins keep their own mode (0600, created by the kernel for their owner),
// so a pin of another program stays closed to nettally and the other way round. The same step
// with user root (a unit without User=) gives the pins back to root, so switching either way keeps
// the counts.
#pragma once

#include <filesystem>
#include <string>
#include <sys/types.h>

namespace nettally {

// Makes sure dir is, or will be created, inside a mounted bpffs (its nearest existing ancestor is
// on one): mounts one at /sys/fs/bpf when dir's parent is /sys/fs/bpf and nothing is mounted there
// (containers, minimal systems, test machines). Throws SysError (ENOTSUP) when dir is elsewhere
// and not on a bpffs, or when the mount fails.
void ensure_bpffs(const std::filesystem::path& dir);

// The changes prepare_pin_dir made, for its log line.
struct PinDirChanges {
    int searchable = 0; // directories above pin_dir given o+x
    int created = 0;    // directories created (pin_dir and missing parents)
    int chowned = 0;    // pin_dir and pins given to the user
};

// Prepares dir (pin_dir) for a daemon running as uid/gid: see the file comment. Idempotent.
// Throws SysError on any failure, naming the path.
PinDirChanges prepare_pin_dir(const std::filesystem::path& dir, uid_t uid, gid_t gid);

} // namespace nettally
