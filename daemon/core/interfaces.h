// Which of the system's links nettally accounts, and in which role: the
// config's rules (first match wins) applied to the links that exist. Pure.
#pragma once

#include "core/collector.h"
#include "core/config.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace nettally {

struct LinkInfo {
    std::string name;
    uint32_t ifindex = 0;
    bool loopback = false;
    bool l3 = false; // no link-layer header (ppp, wireguard, tun, ip tunnels)
};

// A rule names an interface that does not exist, or nothing is left to account.
class InterfaceError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct InterfacePlan {
    std::vector<InterfaceInfo> interfaces;
    std::vector<std::string> warnings; // globs that matched nothing, loopback skipped
};

// Loopback is never accounted. When strict (start-up, reload), a literal
// (non-glob) rule must match an existing link and something must be left to
// account; when not (hotplug: links come and go), both are warnings.
InterfacePlan plan_interfaces(const Config& cfg, const std::vector<LinkInfo>& links, bool strict = true);

} // namespace nettally
