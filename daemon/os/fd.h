// An owning file descriptor: closes in its destructor, move-only. Every fd
// nettallyd opens itself (files, directories, netlink and other sockets) is
// held in one, so no error path leaks it and no code closes by hand.
#pragma once

#include <unistd.h>

#include <utility>

namespace nettally {

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o)
            reset(o.release());
        return *this;
    }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    // Gives up ownership: the caller closes the returned fd.
    int release() { return std::exchange(fd_, -1); }
    // Closes the held fd (if any) and holds `fd` instead.
    void reset(int fd = -1) {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

} // namespace nettally
