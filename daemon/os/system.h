// Thin OS queries nettallyd needs at start-up and reload: the links of the
// current network namespace, kernel BTF, and the process's capabilities.
#pragma once

#include "os/fd.h"

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nettally {

// Calls `fn` for each link of the current network namespace, as the kernel reports it:
// fn(name, ifindex, loopback, l3), where l3 means no link-layer header (ppp, wireguard, tun,
// ip tunnels). The caller builds its own record of a link (the app: core/interfaces.h's LinkInfo).
// Throws SysError.
void list_links(
    const std::function<void(const std::string& name, uint32_t ifindex, bool loopback, bool l3)>& fn);

// A non-blocking rtnetlink socket subscribed to link changes (new, gone,
// renamed). An empty Fd when the socket cannot be opened (*err: the errno);
// throws SysError when the subscription fails.
Fd subscribe_link_events(int* err);
// Reads and discards whatever is queued on a non-blocking socket.
void drain_socket(int fd);
// The socket address of an IPv4 (AF_INET: 4 bytes of addr) or IPv6 (AF_INET6: 16 bytes) address,
// in network order, and a port; returns its length.
socklen_t socket_address(int family, const void* addr, uint16_t port, sockaddr_storage& ss);

// /proc/sys/kernel/random/boot_id: tells a reboot from a daemon restart.
std::string read_boot_id();

// Empty when fine, else one line saying what is missing.
std::string check_btf();
std::string check_capabilities();

// Whether this process may create internet sockets (AF_INET or AF_INET6): false when
// socket() fails with EAFNOSUPPORT for both, as under the unit's RestrictAddressFamilies=.
bool internet_sockets_allowed();

} // namespace nettally
