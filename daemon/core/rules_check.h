// The checks of a traffic-class bundle that do not read it (app/rules.h runs read_bundle and the
// signature check besides): its file size against rules.max_size, and its version against the
// ruleset in force. Pure; each returns "" when the bundle passes, else the one-line reason.
#pragma once

#include "core/classes_bundle.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace nettally {

// A bundle file larger than rules.max_size is refused before it is read.
std::string size_refusal(size_t bytes, uint64_t max_size);
// A bundle loads only when its version is greater than the active one's (any version when none
// is active). A rollback does not ask: it may go back to a lower version.
std::string version_refusal(const Bundle* active, const Bundle& next);

} // namespace nettally
