// Root qdisc control over raw rtnetlink. See qdisc.h.
#include "kernel/qdisc.h"

#include "os/fd.h"

#include <cerrno>
#include <cstring>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <optional>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace nettally {
namespace {

struct RootQdisc {
    uint32_t handle = 0;
    std::string kind;
};

class Rtnl {
public:
    Rtnl() : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {
        if (fd_) {
            timeval tv{2, 0};
            setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        }
    }
    Rtnl(const Rtnl&) = delete;
    Rtnl& operator=(const Rtnl&) = delete;
    bool ok() const { return static_cast<bool>(fd_); }

    // Sends one request; returns 0 or -errno from the kernel's ack.
    int request(std::vector<char>& msg) {
        auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
        nlh->nlmsg_len = static_cast<uint32_t>(msg.size());
        nlh->nlmsg_seq = ++seq_;
        if (send(fd_.get(), msg.data(), msg.size(), 0) < 0)
            return -errno;
        char buf[8192];
        for (;;) {
            const ssize_t got = recv(fd_.get(), buf, sizeof(buf), 0);
            if (got < 0)
                return -errno;
            int n = static_cast<int>(got);
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_seq != seq_)
                    continue;
                if (h->nlmsg_type == NLMSG_ERROR)
                    return reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
            }
        }
    }

    std::optional<RootQdisc> root_of(uint32_t ifindex) {
        std::vector<char> msg(NLMSG_SPACE(sizeof(tcmsg)), 0);
        auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
        nlh->nlmsg_type = RTM_GETQDISC;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_len = static_cast<uint32_t>(msg.size());
        nlh->nlmsg_seq = ++seq_;
        auto* tc = reinterpret_cast<tcmsg*>(NLMSG_DATA(nlh));
        tc->tcm_family = AF_UNSPEC;
        tc->tcm_ifindex = static_cast<int>(ifindex);
        if (send(fd_.get(), msg.data(), msg.size(), 0) < 0)
            return std::nullopt;
        std::optional<RootQdisc> found;
        char buf[16384];
        for (;;) {
            const ssize_t got = recv(fd_.get(), buf, sizeof(buf), 0);
            if (got < 0)
                return std::nullopt;
            int n = static_cast<int>(got);
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
                    return found;
                if (h->nlmsg_type != RTM_NEWQDISC)
                    continue;
                const auto* t = reinterpret_cast<const tcmsg*>(NLMSG_DATA(h));
                if (static_cast<uint32_t>(t->tcm_ifindex) != ifindex || t->tcm_parent != TC_H_ROOT)
                    continue;
                RootQdisc r;
                r.handle = t->tcm_handle;
                int len = static_cast<int>(h->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(tcmsg)));
                for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(t) +
                                                               NLMSG_ALIGN(sizeof(tcmsg)));
                     RTA_OK(a, len); a = RTA_NEXT(a, len))
                    if (a->rta_type == TCA_KIND)
                        r.kind = static_cast<const char*>(RTA_DATA(a));
                found = r;
            }
        }
    }

private:
    Fd fd_;
    uint32_t seq_ = 0;
};

void add_attr(std::vector<char>& msg, uint16_t type, const void* data, size_t len) {
    const size_t off = NLMSG_ALIGN(msg.size());
    msg.resize(off + RTA_SPACE(len), 0);
    auto* a = reinterpret_cast<rtattr*>(msg.data() + off);
    a->rta_type = type;
    a->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    if (len > 0) // an empty attribute may come with no data pointer
        std::memcpy(RTA_DATA(a), data, len);
}

std::vector<char> qdisc_msg(uint16_t type, uint16_t flags, uint32_t ifindex, uint32_t handle) {
    std::vector<char> msg(NLMSG_SPACE(sizeof(tcmsg)), 0);
    auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    auto* tc = reinterpret_cast<tcmsg*>(NLMSG_DATA(nlh));
    tc->tcm_family = AF_UNSPEC;
    tc->tcm_ifindex = static_cast<int>(ifindex);
    tc->tcm_parent = TC_H_ROOT;
    tc->tcm_handle = handle;
    return msg;
}

} // namespace

std::string QdiscControl::probe_fq() {
    Rtnl nl;
    if (!nl.ok())
        return std::string("rtnetlink socket: ") + std::strerror(errno);
    const uint32_t lo = if_nametoindex("lo");
    if (!lo)
        return "no loopback interface to probe on";
    // fq with a 1-byte TCA_FQ_PLIMIT (a u32): refused by fq's option parser
    // when fq exists, before anything is grafted.
    auto msg = qdisc_msg(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, lo, 0);
    add_attr(msg, TCA_KIND, "fq", 3);
    const size_t opt_off = NLMSG_ALIGN(msg.size());
    add_attr(msg, TCA_OPTIONS, nullptr, 0);
    const uint8_t bad = 1;
    add_attr(msg, TCA_FQ_PLIMIT, &bad, 1);
    reinterpret_cast<rtattr*>(msg.data() + opt_off)->rta_len = static_cast<uint16_t>(msg.size() - opt_off);
    const int err = nl.request(msg);
    if (err == -ENOENT)
        return "the kernel has no fq qdisc";
    if (err == 0) {
        // Accepted after all (a kernel that ignores the bad option): undo it.
        auto del = qdisc_msg(RTM_DELQDISC, 0, lo, 0);
        nl.request(del);
    }
    return "";
}

std::string QdiscControl::install_fq(uint32_t ifindex) {
    Rtnl nl;
    if (!nl.ok())
        return std::string("rtnetlink socket: ") + std::strerror(errno);
    const auto root = nl.root_of(ifindex);
    if (root && root->handle == kHandle && root->kind == "fq")
        return "";
    if (root && root->handle != 0)
        return "its root qdisc " + root->kind + " was configured by somebody else; not replaced";
    auto msg = qdisc_msg(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, ifindex, kHandle);
    add_attr(msg, TCA_KIND, "fq", 3);
    const int err = nl.request(msg);
    if (err)
        return std::string("installing fq: ") + std::strerror(-err);
    return "";
}

void QdiscControl::remove_fq(uint32_t ifindex) {
    Rtnl nl;
    if (!nl.ok())
        return;
    const auto root = nl.root_of(ifindex);
    if (!root || root->handle != kHandle)
        return;
    auto msg = qdisc_msg(RTM_DELQDISC, 0, ifindex, kHandle);
    nl.request(msg);
}

} // namespace nettally
