#include "bus.h"

#include "format.h"

#include <cmath>
#include <cstdint>
#include <iostream>

namespace nettally::ctl {

std::unique_ptr<sdbus::IConnection> connect_system_bus(double timeout_sec) {
    auto conn = sdbus::createSystemBusConnection();
    conn->setMethodCallTimeout(static_cast<std::uint64_t>(std::llround(timeout_sec * 1e6)));
    return conn;
}

int report_dbus_error(const sdbus::Error& e, bool while_connecting) {
    const ExitCode code = classify_dbus_error(e.getName(), while_connecting);
    if (code == kExitUnreachable)
        std::cerr << "nettallyctl: nettallyd is not reachable on the system bus (" << e.getName() << ": "
                  << e.getMessage() << ")\n";
    else
        std::cerr << "nettallyctl: " << e.getName() << ": " << e.getMessage() << "\n";
    return code;
}

int run_on_bus(double timeout_sec, const std::function<std::string(sdbus::IConnection&)>& body) {
    std::unique_ptr<sdbus::IConnection> conn;
    try {
        conn = connect_system_bus(timeout_sec);
    } catch (const sdbus::Error& e) {
        return report_dbus_error(e, true);
    }
    std::string out;
    try {
        out = body(*conn);
    } catch (const sdbus::Error& e) {
        return report_dbus_error(e, false);
    }
    std::cout << out << std::flush;
    return kExitOk;
}

} // namespace nettally::ctl

namespace nettally::ctl {

int report_usage_error(const std::string& message) {
    std::cerr << "nettallyctl: " << message << "\nTry 'nettallyctl --help' for more information.\n";
    return kExitUsage;
}

} // namespace nettally::ctl
