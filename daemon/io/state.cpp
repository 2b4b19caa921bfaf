// State file: see state.h (written through os/file.h write_file_atomic). Format: one header line
//   nettally-state 1 length=<bytes> crc32=<8 hex digits>
// then exactly <bytes> bytes of body (JSON).
#include "io/state.h"

#include "os/error.h"
#include "os/file.h"

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <zlib.h>

namespace nettally {
namespace {

constexpr const char* kMagic = "nettally-state 1";

uint32_t crc_of(const std::string& s) {
    return static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
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
    // Keep the last good copy: a crash between the two renames leaves only
    // .prev, which read() falls back to.
    write_file_atomic(path_, wrap_state(content), 0640, prev_);
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
