// Hotplug: any link change (new, gone, renamed) calls back after a short
// settle time, so a burst of events costs one re-plan of the interfaces.
// Without rtnetlink (a warning at start) interfaces are planned at start and
// reload only.
#pragma once

#include "os/event.h"
#include "os/fd.h"

#include <functional>

namespace nettally {

class LinkWatch {
public:
    // Throws SysError when the loop cannot take the socket or the subscription fails.
    LinkWatch(sd_event* ev, std::function<void()> on_change);
    LinkWatch(const LinkWatch&) = delete;
    LinkWatch& operator=(const LinkWatch&) = delete;

private:
    static int on_event(sd_event_source*, int fd, uint32_t, void* self);

    Fd fd_;
    EventSource io_;
    Timer settle_;
};

} // namespace nettally
