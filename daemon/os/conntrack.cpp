// Connection tracking over netlink. See conntrack.h.
#include "os/conntrack.h"

#include "os/error.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>

#include <cerrno>

namespace nettally {

namespace {

bool read_entry(const nf_conntrack* ct, ConntrackEntry& e) {
    if (nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO) != AF_INET)
        return false;
    e.proto = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
    if (e.proto != IPPROTO_TCP && e.proto != IPPROTO_UDP)
        return false;
    e.orig_src = nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_SRC);
    e.orig_dst = nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST);
    e.reply_src = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC);
    e.reply_dst = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_DST);
    e.orig_sport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC));
    e.orig_dport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST));
    e.reply_sport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
    e.reply_dport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
    return true;
}

int on_dump(nf_conntrack_msg_type, nf_conntrack* ct, void* data) {
    ConntrackEntry e;
    if (read_entry(ct, e))
        static_cast<std::vector<ConntrackEntry>*>(data)->push_back(e);
    return NFCT_CB_CONTINUE;
}

int on_event(nf_conntrack_msg_type type, nf_conntrack* ct, void* data) {
    ConntrackEntry e;
    if ((type == NFCT_T_NEW || type == NFCT_T_DESTROY) && read_entry(ct, e))
        (*static_cast<Conntrack::OnEvent*>(data))(
            type == NFCT_T_NEW ? ConntrackEvent::New : ConntrackEvent::Destroy, e);
    return NFCT_CB_CONTINUE;
}

} // namespace

Conntrack::Conntrack(OnEvent on_event) : on_event_(std::move(on_event)) {
    events_ = nfct_open(CONNTRACK, NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_DESTROY);
    if (!events_)
        throw SysError(errno, "subscribing to conntrack events");
    const int fd = nfct_fd(events_);
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        const int err = errno;
        nfct_close(events_);
        throw SysError(err, "conntrack events: O_NONBLOCK");
    }
    nfct_callback_register(events_, NFCT_T_ALL, nettally::on_event, &on_event_);
}

Conntrack::~Conntrack() {
    nfct_close(events_);
}

int Conntrack::fd() const {
    return nfct_fd(events_);
}

bool Conntrack::drain() {
    // nfct_catch reads until the socket has nothing more (EAGAIN on the non-blocking socket).
    if (nfct_catch(events_) < 0 && errno == ENOBUFS)
        return false;
    return true;
}

std::vector<ConntrackEntry> Conntrack::dump() {
    nfct_handle* h = nfct_open(CONNTRACK, 0);
    if (!h)
        throw SysError(errno, "opening conntrack netlink");
    std::vector<ConntrackEntry> out;
    nfct_callback_register(h, NFCT_T_ALL, on_dump, &out);
    uint32_t family = AF_INET;
    const int r = nfct_query(h, NFCT_Q_DUMP, &family);
    const int err = errno;
    nfct_close(h);
    if (r < 0)
        throw SysError(err, "dumping the conntrack table");
    return out;
}

} // namespace nettally
