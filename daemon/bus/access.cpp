// See access.h.
#include "bus/access.h"

#include <algorithm>
#include <grp.h>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

namespace nettally {

void require_privileged(sdbus::IObject& object, const char* method) {
    const sdbus::Message* msg = object.getCurrentlyProcessedMessage();
    if (!msg)
        throw sdbus::Error(kErrAccessDenied, "caller unknown");
    uid_t uid;
    std::vector<gid_t> gids;
    try {
        uid = msg->getCredsEuid();
    } catch (const sdbus::Error&) {
        uid = msg->getCredsUid();
    }
    if (uid == 0)
        return;
    if (const group* g = getgrnam("nettally")) {
        try {
            gids = msg->getCredsSupplementaryGids();
            gids.push_back(msg->getCredsEgid());
        } catch (const sdbus::Error&) {
        }
        if (std::find(gids.begin(), gids.end(), g->gr_gid) != gids.end())
            return;
    }
    spdlog::warn("dbus: {} refused to uid {} (not root, not in group nettally)", method, uid);
    throw sdbus::Error(kErrAccessDenied, std::string(method) + " needs root or membership of group nettally");
}

} // namespace nettally
