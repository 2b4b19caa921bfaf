// Link events: see links.h.
#include "app/links.h"

#include "os/error.h"
#include "os/system.h"

#include <cstring>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

namespace nettally {

LinkWatch::LinkWatch(sd_event* ev, std::function<void()> on_change) {
    int err = 0;
    fd_ = subscribe_link_events(&err);
    if (!fd_) {
        spdlog::warn("hotplug: cannot open rtnetlink ({}); interfaces are planned at start and reload only",
                     std::strerror(err));
        return;
    }
    const int r = sd_event_add_io(ev, io_.put(), fd_.get(), EPOLLIN, on_event, this);
    if (r < 0)
        throw SysError(-r, "adding link events to the event loop");
    settle_.attach(ev, CLOCK_MONOTONIC, std::move(on_change));
}

int LinkWatch::on_event(sd_event_source*, int fd, uint32_t, void* self) {
    drain_socket(fd);
    static_cast<LinkWatch*>(self)->settle_.arm_in(100000);
    return 0;
}

} // namespace nettally
