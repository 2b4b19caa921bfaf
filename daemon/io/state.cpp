// State file: see state.h. Format: one header line
//   nettally-state 1 length=<bytes> crc32=<8 hex digits>
// then exactly <bytes> bytes of body (JSON).
#include "io/state.h"

#include "os/error.h"

#include <cinttypes>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <zlib.h>

namespace nettally {
namespace {

constexpr const char* kMagic = "nettally-state 1";

uint32_t crc_of(const std::string& s) {
    return static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

void write_all(int fd, const std::string& data, const std::string& what) {
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

void fsync_dir(const std::filesystem::path& dir) {
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        throw SysError(errno, "opening " + dir.string());
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0)
        throw SysError(e, "syncing " + dir.string());
}

} // namespace

std::string wrap_state(const std::string& body) {
    char header[96];
    std::snprintf(header, sizeof(header), "%s length=%zu crc32=%08" PRIx32 "\n", kMagic, body.size(),
                  crc_of(body));
    return header + body;
}

std::optional<std::string> unwrap_state(const std::string& file, std::string* why) {
    auto fail = [&](const std::string& w) -> std::optional<std::string> {
        if (why)
            *why = w;
        return std::nullopt;
    };
    const size_t nl = file.find('\n');
    if (file.empty())
        return fail("empty file");
    if (nl == std::string::npos || file.compare(0, std::string(kMagic).size(), kMagic) != 0)
        return fail("not a nettally state file (bad header)");
    size_t length = 0;
    unsigned crc = 0;
    if (std::sscanf(file.c_str() + std::string(kMagic).size(), " length=%zu crc32=%8x", &length, &crc) != 2)
        return fail("bad header");
    std::string body = file.substr(nl + 1);
    if (body.size() != length)
        return fail("truncated: " + std::to_string(body.size()) + " of " + std::to_string(length) +
                    " bytes (torn write?)");
    if (crc_of(body) != crc)
        return fail("checksum mismatch (corrupted)");
    return body;
}

StateFile::StateFile(std::filesystem::path dir, std::string name)
    : dir_(std::move(dir)), path_(dir_ / name), prev_(dir_ / (name + ".prev")) {}

void StateFile::write(const std::string& content) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec)
        throw SysError(ec.value(), "creating state directory " + dir_.string());
    const std::filesystem::path tmp = path_.string() + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        throw SysError(errno, "creating " + tmp.string());
    try {
        write_all(fd, wrap_state(content), tmp.string());
        if (fsync(fd) != 0)
            throw SysError(errno, "syncing " + tmp.string());
    } catch (...) {
        close(fd);
        unlink(tmp.c_str());
        throw;
    }
    close(fd);
    // Keep the last good copy: a crash between the two renames leaves only
    // .prev, which read() falls back to.
    if (std::filesystem::exists(path_) && rename(path_.c_str(), prev_.c_str()) != 0)
        throw SysError(errno, "keeping previous state " + prev_.string());
    if (rename(tmp.c_str(), path_.c_str()) != 0)
        throw SysError(errno, "renaming " + tmp.string());
    fsync_dir(dir_);
}

std::optional<StateFile::Loaded> StateFile::read(std::vector<std::string>* problems) const {
    Loaded out;
    for (const auto& p : {path_, prev_}) {
        std::ifstream in(p, std::ios::binary);
        if (!in)
            continue;
        std::stringstream ss;
        ss << in.rdbuf();
        std::string why;
        if (auto body = unwrap_state(ss.str(), &why)) {
            out.content = std::move(*body);
            out.from = p.string();
            return out;
        }
        out.problems.push_back(p.string() + ": " + why);
    }
    if (problems)
        *problems = out.problems;
    return std::nullopt;
}

} // namespace nettally
