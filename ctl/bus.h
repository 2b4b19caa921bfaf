// What every nettallyctl command does around its D-Bus calls: connect to the system bus with
// the call timeout, and turn a D-Bus error into one line on stderr and its exit status.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <sdbus-c++/sdbus-c++.h>

namespace nettally::ctl {

// A system-bus connection whose method calls time out after `timeout_sec`. Throws sdbus::Error.
std::unique_ptr<sdbus::IConnection> connect_system_bus(double timeout_sec);

// Prints the error ("not reachable" when the daemon or the bus is missing) and returns the exit
// status format.h's classify_dbus_error gives it.
int report_dbus_error(const sdbus::Error& e, bool while_connecting);

// Connects, runs `body` and prints what it returns; returns kExitOk or the D-Bus error's status.
int run_on_bus(double timeout_sec, const std::function<std::string(sdbus::IConnection&)>& body);

} // namespace nettally::ctl
