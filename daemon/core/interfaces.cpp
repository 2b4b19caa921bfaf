// Interface planning: see interfaces.h.
#include "core/interfaces.h"

#include <algorithm>

namespace nettally {

InterfacePlan plan_interfaces(const Config& cfg, const std::vector<LinkInfo>& links, bool strict) {
    InterfacePlan plan;
    std::vector<size_t> hits(cfg.interfaces.size(), 0);

    for (const auto& link : links) {
        const InterfaceRule* rule = match_interface(cfg, link.name);
        if (!rule)
            continue;
        if (link.loopback) {
            if (!interface_is_glob(rule->name))
                plan.warnings.push_back("interface '" + link.name +
                                        "' is loopback; loopback is never accounted");
            continue;
        }
        hits[static_cast<size_t>(rule - cfg.interfaces.data())]++;
        InterfaceInfo info{link.name, std::string(to_string(rule->role)), link.ifindex,
                           rule->mode == AttachMode::Xdp, link.l3};
        if (link.l3 && info.xdp) {
            plan.warnings.push_back("interface '" + link.name +
                                    "' has no Ethernet header: XDP mode is for Ethernet links, using tc");
            info.xdp = false;
        }
        if (link.l3 && rule->role == Role::Lan)
            plan.warnings.push_back("interface '" + link.name +
                                    "' has no Ethernet header: no per-host (MAC) accounting on it");
        plan.interfaces.push_back(std::move(info));
    }

    for (size_t i = 0; i < cfg.interfaces.size(); i++) {
        const auto& rule = cfg.interfaces[i];
        if (hits[i])
            continue;
        const bool exists =
            std::any_of(links.begin(), links.end(), [&](const LinkInfo& l) { return l.name == rule.name; });
        if (!interface_is_glob(rule.name) && !exists) {
            const std::string msg = "interface '" + rule.name + "' (" + cfg.path + ":" +
                                    std::to_string(rule.line) + ") does not exist";
            if (strict)
                throw InterfaceError(msg);
            plan.warnings.push_back(msg + " (yet): it is attached when it appears");
        }
        if (interface_is_glob(rule.name))
            plan.warnings.push_back("interface pattern '" + rule.name + "' matches no interface");
    }
    if (plan.interfaces.empty() && strict)
        throw InterfaceError("no interface to account: the config's interfaces match no non-loopback link");
    std::sort(plan.interfaces.begin(), plan.interfaces.end(),
              [](const InterfaceInfo& a, const InterfaceInfo& b) { return a.ifindex < b.ifindex; });
    return plan;
}

} // namespace nettally
