// The contract between the alert logic (thresholds, bursts, rates: core/thresholds)
// and the code that enforces an action in the kernel (daemon/enforcer): what a
// threshold's subject is, which action it asks for, and the enforcer's promise.
// Pure declarations; the alert logic is unit-tested against a fake enforcer.
#pragma once

#include "core/enum_names.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// What a threshold watches. `value` by kind:
//   Interface      interface name ("lan0")
//   Host           MAC ("aa:bb:cc:dd:ee:ff", lowercase) or IP address (v4 or v6, canonical text)
//   Cgroup         cgroup path as in /proc/PID/cgroup ("/system.slice/x.service"); a unit
//                  name given by the user is resolved to its path before it gets here
//   FlowAggregate  a flow filter, documented with the thresholds D-Bus API
//   User           a subscriber's user name (subscribers:): every address and prefix bound
//                  to the user, on every lan interface, whichever source bound it
//   Class          a traffic class of the active ruleset (rules:): "NAME", the class on every
//                  lan interface (sent: from the lan's hosts, received: to them, as hosts and
//                  users count), or "NAME@IFACE", the class on that one interface (sent:
//                  egress, received: ingress, as interface subjects count)
enum class SubjectKind { Interface, Host, Cgroup, FlowAggregate, User, Class };

// "interface", "host", "cgroup", "flow", "user", "class": the names of the D-Bus API and the
// config file.
constexpr std::string_view to_string(SubjectKind k) {
    constexpr std::array<std::string_view, 6> kNames{"interface", "host", "cgroup", "flow", "user", "class"};
    return enum_name(kNames, k);
}

struct Subject {
    SubjectKind kind = SubjectKind::Interface;
    std::string value;
    bool operator==(const Subject&) const = default;
};

// Notify: signals only (default). Throttle: the subject's traffic is paced to
// a rate in the kernel. Block: the subject's traffic is dropped in the kernel.
enum class ActionKind { Notify, Throttle, Block };

constexpr std::string_view to_string(ActionKind a) {
    constexpr std::array<std::string_view, 3> kNames{"notify", "throttle", "block"};
    return enum_name(kNames, a);
}

class ActionEnforcer {
public:
    virtual ~ActionEnforcer() = default;

    // "" when `action` can be enforced for `subject` on this machine; otherwise one
    // line saying why not (it becomes the InvalidArgument message of the D-Bus call
    // that asked for it, so nothing is half-applied). Notify is always "".
    virtual std::string check(const Subject& subject, ActionKind action, uint64_t rate_bytes_per_s) const = 0;

    // Enforces `action` on `subject` under `id` (the threshold's name) from now on,
    // replacing whatever this id enforced before. rate_bytes_per_s is used by
    // Throttle only. Throws std::runtime_error (message for logs and D-Bus) on failure.
    virtual void apply(const std::string& id, const Subject& subject, ActionKind action,
                       uint64_t rate_bytes_per_s) = 0;

    // Stops enforcing whatever `id` enforced; no-op for an unknown id. Never throws.
    virtual void lift(const std::string& id) = 0;

    // The ids being enforced now.
    virtual std::vector<std::string> active() const = 0;
};

} // namespace nettally
