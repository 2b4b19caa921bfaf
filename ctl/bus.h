// What every nettallyctl command does around its D-Bus calls: connect to the system bus with
// the call timeout, and turn a D-Bus error into one line on stderr and its exit status.
#pragma once

#include "args.h"

#include <functional>
#include <memory>
#include <string>

#include <sdbus-c++/sdbus-c++.h>

namespace nettally::ctl {

// --timeout, or the default when it was not given.
inline double timeout_of(const Options& opt) {
    return opt.timeout_sec > 0 ? opt.timeout_sec : kDefaultTimeoutSec;
}

// A system-bus connection whose method calls time out after `timeout_sec`. Throws sdbus::Error.
std::unique_ptr<sdbus::IConnection> connect_system_bus(double timeout_sec);

// Prints the error ("not reachable" when the daemon or the bus is missing) and returns the exit
// status format.h's classify_dbus_error gives it.
int report_dbus_error(const sdbus::Error& e, bool while_connecting);

// Connects, runs `body` and prints what it returns; returns kExitOk or the D-Bus error's status.
int run_on_bus(double timeout_sec, const std::function<std::string(sdbus::IConnection&)>& body);

// A usage error found after parsing (e.g. an unreadable --password-file): message, hint, 2.
int report_usage_error(const std::string& message);

} // namespace nettally::ctl
