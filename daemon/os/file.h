// Files the way nettallyd writes them. Every state, cursor, settings and
// spool file is replaced atomically by write_file_atomic: a temp file in the
// same directory (".NAME.tmp", created exclusively, never through a symlink,
// with the mode set by fchmod so an umask or an older file cannot widen it),
// written whole, fsynced, renamed over the target, then the directory fsynced.
// After it returns the new content is durable; a crash leaves the old or the
// new file, never a torn one. Record files that grow line by line are an
// AppendFile. Every failure is a SysError naming the operation and the path.
#pragma once

#include "os/fd.h"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace nettally {

// Writes every byte (retrying short writes and EINTR); `what` names the file in the error.
void write_all(int fd, std::string_view data, const std::string& what);

// The temp name write_file_atomic uses for `path`: ".NAME.tmp" beside it.
std::filesystem::path atomic_temp_path(const std::filesystem::path& path);

// Replaces `path` with `data` (see above). With `keep_previous`, an existing
// `path` is first renamed to it, so a crash between the renames leaves the
// previous copy. The directory must exist.
void write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode,
                       const std::filesystem::path& keep_previous = {});

// fsync of a file or a directory (after a rename, truncate or unlink in it).
void sync_path(const std::filesystem::path& path);

// Shortens `path` to `size` bytes (not synced: follow with sync_path).
void truncate_file(const std::filesystem::path& path, uint64_t size);

// A secret kept in a file (a password, a RADIUS shared secret): the whole file, less one trailing
// newline (and CR). Throws std::runtime_error naming `key` and the path, never the content.
std::string read_secret(const std::filesystem::path& path, const std::string& key);
// The file of a systemd credential: $CREDENTIALS_DIRECTORY/NAME. Throws std::runtime_error
// naming `key` when the variable is not set (the unit lacks LoadCredential=NAME:PATH).
std::filesystem::path credential_path(const std::string& name, const std::string& key);

// Opens a directory (O_DIRECTORY, read-only) as an owning Fd.
Fd open_directory(const std::filesystem::path& path);

// A file written by appending, created (truncated) at open, never through a symlink.
class AppendFile {
public:
    AppendFile() = default;
    static AppendFile create(const std::filesystem::path& path, mode_t mode);

    void append(std::string_view data);
    void datasync(); // fdatasync: the appended bytes are durable
    void close();    // closes now (a later append is an error)
    bool is_open() const { return static_cast<bool>(fd_); }
    const std::filesystem::path& path() const { return path_; }

private:
    AppendFile(Fd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
    Fd fd_;
    std::filesystem::path path_;
};

} // namespace nettally
