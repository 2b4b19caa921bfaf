// OS queries: see system.h.
#include "os/system.h"

#include "os/error.h"

#include <linux/capability.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace nettally {

void list_links(
    const std::function<void(const std::string& name, uint32_t ifindex, bool loopback, bool l3)>& fn) {
    struct if_nameindex* ifs = if_nameindex();
    if (!ifs)
        throw SysError(errno, "listing network interfaces");
    // Any socket serves for SIOCGIFFLAGS; AF_UNIX keeps the unit free of IP sockets.
    const Fd sock_fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const int sock = sock_fd.get();
    for (auto* i = ifs; i->if_index != 0; i++) {
        bool loopback = false;
        bool l3 = false;
        struct ifreq ifr {};
        std::strncpy(ifr.ifr_name, i->if_name, IFNAMSIZ - 1);
        if (sock >= 0 && ioctl(sock, SIOCGIFFLAGS, &ifr) == 0)
            loopback = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
        struct ifreq hw {};
        std::strncpy(hw.ifr_name, i->if_name, IFNAMSIZ - 1);
        if (sock >= 0 && ioctl(sock, SIOCGIFHWADDR, &hw) == 0)
            l3 = hw.ifr_hwaddr.sa_family != ARPHRD_ETHER && !loopback;
        fn(i->if_name, i->if_index, loopback, l3);
    }
    if_freenameindex(ifs);
}

Fd subscribe_link_events(int* err) {
    Fd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!fd) {
        *err = errno;
        return fd;
    }
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        throw SysError(errno, "subscribing to link events");
    return fd;
}

void drain_socket(int fd) {
    char buf[8192];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

std::string read_boot_id() {
    char buf[64] = {};
    FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return {};
    size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::fclose(f);
    std::string id(buf, n);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' '))
        id.pop_back();
    return id;
}

std::string check_btf() {
    static constexpr const char* kBtf = "/sys/kernel/btf/vmlinux";
    if (access(kBtf, R_OK) != 0)
        return std::string("kernel BTF not readable at ") + kBtf + " (" + std::strerror(errno) +
               "): nettally needs a kernel built with CONFIG_DEBUG_INFO_BTF=y";
    return {};
}

std::string check_capabilities() {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (syscall(SYS_capget, &hdr, data) != 0)
        return std::string("cannot read capabilities: ") + std::strerror(errno);
    auto has = [&](int cap) { return (data[cap / 32].effective & (1u << (cap % 32))) != 0; };
    std::string missing;
    auto need = [&](bool ok, const char* name) {
        if (!ok)
            missing += std::string(missing.empty() ? "" : ", ") + name;
    };
    const bool sys_admin = has(CAP_SYS_ADMIN);
    need(has(CAP_BPF) || sys_admin, "CAP_BPF");
    need(has(CAP_PERFMON) || sys_admin, "CAP_PERFMON");
    need(has(CAP_NET_ADMIN), "CAP_NET_ADMIN");
    if (missing.empty())
        return {};
    return "missing privileges: " + missing +
           " (run nettallyd as root or through its systemd unit, which grants them)";
}

bool internet_sockets_allowed() {
    for (const int family : {AF_INET, AF_INET6}) {
        const Fd fd(socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (fd || errno != EAFNOSUPPORT)
            return true;
    }
    return false;
}

socklen_t socket_address(int family, const void* addr, uint16_t port, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    if (family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        std::memcpy(&a->sin6_addr, addr, 16);
        return sizeof(sockaddr_in6);
    }
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    std::memcpy(&a->sin_addr, addr, 4);
    return sizeof(sockaddr_in);
}

} // namespace nettally
