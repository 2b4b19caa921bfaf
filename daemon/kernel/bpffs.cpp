// bpffs helpers: see bpffs.h.
#include "kernel/bpffs.h"

#include "os/error.h"

#include <cerrno>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <vector>

namespace nettally {

namespace fs = std::filesystem;

namespace {

bool is_bpffs(const fs::path& path) {
    struct statfs st {};
    return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

// The nearest of p and its ancestors that exists; those that do not go to missing (nearest last).
fs::path nearest_existing(fs::path p, std::vector<fs::path>* missing = nullptr) {
    for (struct stat st{}; stat(p.c_str(), &st) != 0 && p != p.root_path(); p = p.parent_path())
        if (missing)
            missing->push_back(p);
    return p;
}

} // namespace

void ensure_bpffs(const fs::path& dir) {
    // dir, or the directory its creation starts from.
    const fs::path p = nearest_existing(dir);
    if (is_bpffs(p))
        return;
    if (p != "/sys/fs/bpf" || dir.parent_path() != p)
        throw SysError(ENOTSUP, "pin_dir " + dir.string() + " is not inside a mounted bpffs");
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0)
        throw SysError(errno, "bpffs is not mounted at /sys/fs/bpf and mounting it failed");
    spdlog::info("datapath: mounted bpffs at /sys/fs/bpf");
}

PinDirChanges prepare_pin_dir(const fs::path& dir, uid_t uid, gid_t gid) {
    ensure_bpffs(dir);
    PinDirChanges done;
    // The directories to create above dir, then those that exist on the bpffs up to its root.
    std::vector<fs::path> missing, above;
    for (fs::path p = nearest_existing(dir.parent_path(), &missing); is_bpffs(p); p = p.parent_path()) {
        above.push_back(p);
        if (p == p.root_path())
            break;
    }
    for (const fs::path& d : above) {
        struct stat st {};
        if (stat(d.c_str(), &st) != 0)
            throw SysError(errno, "stat " + d.string());
        if (st.st_uid == uid || (st.st_mode & S_IXOTH) != 0)
            continue;
        if (chmod(d.c_str(), (st.st_mode & 07777) | S_IXOTH) != 0)
            throw SysError(errno, "chmod o+x " + d.string());
        done.searchable++;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (mkdir(it->c_str(), 0711) != 0 && errno != EEXIST)
            throw SysError(errno, "creating " + it->string());
        done.created++;
    }
    if (mkdir(dir.c_str(), 0700) == 0)
        done.created++;
    else if (errno != EEXIST)
        throw SysError(errno, "creating pin directory " + dir.string());

    auto give = [&](const fs::path& p) {
        struct stat st {};
        if (lstat(p.c_str(), &st) != 0)
            throw SysError(errno, "stat " + p.string());
        if (st.st_uid == uid && st.st_gid == gid)
            return;
        if (lchown(p.c_str(), uid, gid) != 0)
            throw SysError(errno, "chown " + p.string());
        done.chowned++;
    };
    give(dir);
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        give(it->path());
    if (ec)
        throw SysError(ec.value(), "listing " + dir.string());
    return done;
}

} // namespace nettally
