// The kernel's connection tracking table of the daemon's network namespace, over netlink with
// libnetfilter-conntrack: a dump of the IPv4 entries, and a subscription to the NEW and DESTROY
// events (NFNLGRP_CONNTRACK_NEW / _DESTROY) read without blocking. Chosen over the BPF conntrack
// kfuncs (bpf_skb_ct_lookup, kernel 6.0+): a lookup from the datapath would add work to every
// packet and a second flow-map layout, while the NAT of a connection is fixed once it is
// confirmed, so one event per connection is all nettally needs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

struct nfct_handle;

namespace nettally {

// One entry as read: IPv4 addresses in network byte order, ports in host order.
struct ConntrackEntry {
    uint8_t proto = 0;
    uint32_t orig_src = 0, orig_dst = 0, reply_src = 0, reply_dst = 0;
    uint16_t orig_sport = 0, orig_dport = 0, reply_sport = 0, reply_dport = 0;
};

enum class ConntrackEvent { New, Destroy };

class Conntrack {
public:
    using OnEvent = std::function<void(ConntrackEvent, const ConntrackEntry&)>;

    // Subscribes (throws SysError when netlink or the conntrack subsystem is not there).
    explicit Conntrack(OnEvent on_event);
    ~Conntrack();
    Conntrack(const Conntrack&) = delete;
    Conntrack& operator=(const Conntrack&) = delete;

    // The table's IPv4 TCP/UDP entries now (a blocking netlink dump; throws SysError).
    static std::vector<ConntrackEntry> dump();
    // Reads the events queued on the subscription without blocking. False when the kernel dropped
    // events (ENOBUFS): the caller resynchronizes with dump().
    bool drain();
    int fd() const;

private:
    nfct_handle* events_ = nullptr;
    OnEvent on_event_;
};

} // namespace nettally
