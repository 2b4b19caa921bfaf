// Root qdisc control over raw rtnetlink, for EDT throttling: fq paces packets
// by skb->tstamp, which the TC program sets. nettally installs fq (handle
// 4e54:) as root only where the root is the kernel's default qdisc (handle 0:
// noqueue, pfifo_fast, mq, fq_codel as default_qdisc), and removes it again,
// which puts the kernel's default back. A qdisc somebody configured is never
// touched: that interface is policed instead.
#pragma once

#include <cstdint>
#include <string>

namespace nettally {

class QdiscControl {
public:
    // Whether the kernel has the fq qdisc. Probed without changing anything:
    // a create request for fq as root of lo with an invalid option fails in
    // fq's option check when fq exists and with ENOENT ("kind unknown") when it
    // does not. "" when available; otherwise why not.
    static std::string probe_fq();

    // Installs fq as root qdisc of ifindex. "" on success (or when ours is
    // there already); otherwise why not (a configured root qdisc, an error).
    std::string install_fq(uint32_t ifindex);
    // Removes our fq root from ifindex (the kernel's default comes back);
    // nothing when the root is not ours. Never throws.
    void remove_fq(uint32_t ifindex);

    static constexpr uint32_t kHandle = 0x4e540000; // 4e54:
};

} // namespace nettally
