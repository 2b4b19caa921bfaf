// The daemon's own check for state-changing D-Bus methods, shared by every
// interface nettallyd serves: the bus policy is the first gate, this is the
// second, so a looser policy installed elsewhere does not open them up.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

namespace nettally {

inline constexpr const char* kErrAccessDenied = "org.freedesktop.DBus.Error.AccessDenied";

// Returns when the caller of the message being processed on `object` is root
// or a member of group "nettally" (effective uid and gids as the bus saw them,
// never from /proc); otherwise logs once and throws AccessDenied naming the method.
void require_privileged(sdbus::IObject& object, const char* method);

} // namespace nettally
