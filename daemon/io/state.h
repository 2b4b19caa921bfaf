// The state file: nettallyd's totals on disk, written atomically (temp file,
// fsync, rename, fsync of the directory) with the previous good copy kept
// beside it. A checksum header detects torn or corrupted files; a bad file is
// reported and the previous copy used.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nettally {

class StateFile {
public:
    // dir/name holds the newest state, dir/name.prev the one before it.
    StateFile(std::filesystem::path dir, std::string name);

    // Throws SysError. After it returns, the new content is durable.
    void write(const std::string& content);

    struct Loaded {
        std::string content;
        std::string from;                  // the file it came from
        std::vector<std::string> problems; // files skipped, and why
    };
    // nullopt when no usable file exists (problems say why, if any existed).
    std::optional<Loaded> read(std::vector<std::string>* problems = nullptr) const;

    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path dir_;
    std::filesystem::path path_;
    std::filesystem::path prev_;
};

// Parses "<header>\n<body>" and checks the header's length and CRC32.
// Returns the body, or nullopt with the reason in *why.
std::optional<std::string> unwrap_state(const std::string& file, std::string* why);
std::string wrap_state(const std::string& body);

} // namespace nettally
