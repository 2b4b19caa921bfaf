// The error every OS-facing function throws: errno plus what was being done.
// Caught once, at a boundary (start-up, a timer callback, a D-Bus method),
// where it is logged with the subsystem's prefix or turned into a D-Bus error.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

namespace nettally {

class SysError : public std::runtime_error {
public:
    SysError(int err, const std::string& what)
        : std::runtime_error(what + ": " + std::strerror(err)), err_(err) {}
    int err() const { return err_; }

private:
    int err_;
};

} // namespace nettally
