// Owning handles for sd-event objects. An EventSource is disabled and
// unreferenced in its destructor, so an object that owns its timers, io and
// signal sources by value tears them down in member order, before whatever
// they call back into is gone, with no hand-written unref on any path.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <utility>

namespace nettally {

class EventSource {
public:
    EventSource() = default;
    explicit EventSource(sd_event_source* s) : s_(s) {}
    ~EventSource() { reset(); }
    EventSource(const EventSource&) = delete;
    EventSource& operator=(const EventSource&) = delete;
    EventSource(EventSource&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    EventSource& operator=(EventSource&& o) noexcept {
        if (this != &o)
            reset(std::exchange(o.s_, nullptr));
        return *this;
    }

    sd_event_source* get() const { return s_; }
    explicit operator bool() const { return s_ != nullptr; }
    // For sd_event_add_*(ev, src.put(), ...): drops the old source first.
    sd_event_source** put() {
        reset();
        return &s_;
    }
    void reset(sd_event_source* s = nullptr) {
        if (s_)
            sd_event_source_disable_unref(s_);
        s_ = s;
    }

private:
    sd_event_source* s_ = nullptr;
};

// The thread's default loop, referenced for the owner's lifetime.
class EventLoop {
public:
    EventLoop() = default;
    ~EventLoop() {
        if (ev_)
            sd_event_unref(ev_);
    }
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    static EventLoop default_loop(); // throws SysError
    sd_event* get() const { return ev_; }

    EventLoop(EventLoop&& o) noexcept : ev_(std::exchange(o.ev_, nullptr)) {}
    EventLoop& operator=(EventLoop&& o) noexcept {
        if (this != &o) {
            if (ev_)
                sd_event_unref(ev_);
            ev_ = std::exchange(o.ev_, nullptr);
        }
        return *this;
    }

private:
    explicit EventLoop(sd_event* ev) : ev_(ev) {}
    sd_event* ev_ = nullptr;
};

// A one-shot timer on a loop: created disarmed, armed again after each run.
// Its callback must not throw. Not movable (the loop holds its address).
class Timer {
public:
    using Callback = std::function<void()>;
    Timer() = default;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    // accuracy_us 0 is sd-event's default (250 ms). Throws SysError.
    void attach(sd_event* ev, clockid_t clock, Callback cb, uint64_t accuracy_us = 0);
    bool attached() const { return static_cast<bool>(src_); }
    void arm_in(uint64_t usec); // relative to the loop's current iteration time
    void arm_at(uint64_t usec); // absolute, on the timer's clock
    void disarm();

private:
    static int on_time(sd_event_source*, uint64_t, void* self);
    Callback cb_;
    EventSource src_;
};

} // namespace nettally
