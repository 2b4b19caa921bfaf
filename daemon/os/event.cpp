// sd-event handles: see event.h.
#include "os/event.h"

#include "os/error.h"

namespace nettally {

EventLoop EventLoop::default_loop() {
    sd_event* ev = nullptr;
    const int r = sd_event_default(&ev);
    if (r < 0)
        throw SysError(-r, "creating the event loop");
    return EventLoop(ev);
}

void Timer::attach(sd_event* ev, clockid_t clock, Callback cb, uint64_t accuracy_us) {
    cb_ = std::move(cb);
    const int r = sd_event_add_time(ev, src_.put(), clock, UINT64_MAX, accuracy_us, on_time, this);
    if (r < 0)
        throw SysError(-r, "adding a timer to the event loop");
    sd_event_source_set_enabled(src_.get(), SD_EVENT_OFF);
}

void Timer::arm_in(uint64_t usec) {
    sd_event_source_set_time_relative(src_.get(), usec);
    sd_event_source_set_enabled(src_.get(), SD_EVENT_ONESHOT);
}

void Timer::arm_at(uint64_t usec) {
    sd_event_source_set_time(src_.get(), usec);
    sd_event_source_set_enabled(src_.get(), SD_EVENT_ONESHOT);
}

void Timer::disarm() {
    if (src_)
        sd_event_source_set_enabled(src_.get(), SD_EVENT_OFF);
}

int Timer::on_time(sd_event_source*, uint64_t, void* self) {
    static_cast<Timer*>(self)->cb_();
    return 0;
}

} // namespace nettally
