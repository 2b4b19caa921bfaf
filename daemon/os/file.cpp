// Atomic and append-only files: see file.h.
#include "os/file.h"

#include "os/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace nettally {
namespace fs = std::filesystem;

namespace {

Fd open_or_throw(const fs::path& p, int flags, mode_t mode, const char* doing) {
    int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0)
        throw SysError(errno, std::string(doing) + " " + p.string());
    return Fd(fd);
}

fs::path dir_of(const fs::path& p) {
    fs::path d = p.parent_path();
    return d.empty() ? fs::path(".") : d;
}

} // namespace

void write_all(int fd, std::string_view data, const std::string& what) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw SysError(errno, "writing " + what);
        }
        done += static_cast<size_t>(n);
    }
}

fs::path atomic_temp_path(const fs::path& path) {
    return dir_of(path) / ("." + path.filename().string() + ".tmp");
}

void write_file_atomic(const fs::path& path, std::string_view data, mode_t mode,
                       const fs::path& keep_previous) {
    const fs::path tmp = atomic_temp_path(path);
    // A temp file left by a crash (or anything planted there) is removed, not
    // reused: unlink never follows a symlink, and O_EXCL|O_NOFOLLOW refuses
    // whatever appears at the name meanwhile.
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT)
        throw SysError(errno, "removing stale " + tmp.string());
    Fd fd = open_or_throw(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode, "creating");
    try {
        if (::fchmod(fd.get(), mode) != 0)
            throw SysError(errno, "setting the mode of " + tmp.string());
        write_all(fd.get(), data, tmp.string());
        if (::fsync(fd.get()) != 0)
            throw SysError(errno, "syncing " + tmp.string());
        fd.reset();
        if (!keep_previous.empty() && ::rename(path.c_str(), keep_previous.c_str()) != 0 && errno != ENOENT)
            throw SysError(errno, "keeping the previous copy as " + keep_previous.string());
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            throw SysError(errno, "renaming " + tmp.string() + " to " + path.string());
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    sync_path(dir_of(path));
}

void sync_path(const fs::path& path) {
    Fd fd = open_or_throw(path, O_RDONLY, 0, "opening");
    if (::fsync(fd.get()) != 0)
        throw SysError(errno, "syncing " + path.string());
}

void truncate_file(const fs::path& path, uint64_t size) {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0)
        throw SysError(errno, "truncating " + path.string());
}

Fd open_directory(const fs::path& path) {
    return open_or_throw(path, O_RDONLY | O_DIRECTORY, 0, "opening");
}

AppendFile AppendFile::create(const fs::path& path, mode_t mode) {
    Fd fd = open_or_throw(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW, mode, "creating");
    return AppendFile(std::move(fd), path);
}

void AppendFile::append(std::string_view data) {
    if (!fd_)
        throw SysError(EBADF, "writing " + path_.string() + " (closed)");
    write_all(fd_.get(), data, path_.string());
}

void AppendFile::datasync() {
    if (fd_ && ::fdatasync(fd_.get()) != 0)
        throw SysError(errno, "syncing " + path_.string());
}

void AppendFile::close() {
    fd_.reset();
}

std::string read_secret(const std::filesystem::path& path, const std::string& key) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(key + ": cannot read " + path.string() + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    // One trailing newline is the file's, not the secret's.
    if (!s.empty() && s.back() == '\n')
        s.pop_back();
    if (!s.empty() && s.back() == '\r')
        s.pop_back();
    return s;
}

std::filesystem::path credential_path(const std::string& name, const std::string& key) {
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir)
        throw std::runtime_error(key + ": $CREDENTIALS_DIRECTORY is not set (use LoadCredential=" + name +
                                 ":PATH in the unit)");
    return std::filesystem::path(dir) / name;
}

} // namespace nettally
