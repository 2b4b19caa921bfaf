// Thin OS queries nettallyd needs at start-up and reload: the links of the
// current network namespace, kernel BTF, and the process's capabilities.
#pragma once

#include "os/fd.h"

#include <cstdint>
#include <string>
#include <vector>

namespace nettally {

// A link as the kernel reports it (the app hands these to core/interfaces.h's planner).
struct SystemLink {
    std::string name;
    uint32_t ifindex = 0;
    bool loopback = false;
    bool l3 = false; // no link-layer header (ppp, wireguard, tun, ip tunnels)
};

// Links of the current network namespace (netlink through if_nameindex; no
// /sys, which belongs to another namespace under `ip netns exec`/nsenter).
std::vector<SystemLink> list_links(); // throws SysError

// A non-blocking rtnetlink socket subscribed to link changes (new, gone,
// renamed). An empty Fd when the socket cannot be opened (*err: the errno);
// throws SysError when the subscription fails.
Fd subscribe_link_events(int* err);
// Reads and discards whatever is queued on a non-blocking socket.
void drain_socket(int fd);

// /proc/sys/kernel/random/boot_id: tells a reboot from a daemon restart.
std::string read_boot_id();

// Empty when fine, else one line saying what is missing.
std::string check_btf();
std::string check_capabilities();

} // namespace nettally
