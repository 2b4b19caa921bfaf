// Bundle checks before a load: see rules_check.h.
#include "core/rules_check.h"

namespace nettally {
namespace {

std::string version_text(const Bundle& b) {
    return std::to_string(b.version) + " (hash " + hash_text(b.hash) + ")";
}

} // namespace

std::string size_refusal(size_t bytes, uint64_t max_size) {
    if (bytes <= max_size)
        return "";
    return "bundle is " + std::to_string(bytes) + " bytes, more than rules.max_size (" +
           std::to_string(max_size) + " bytes)";
}

std::string version_refusal(const Bundle* active, const Bundle& next) {
    if (!active || next.version > active->version)
        return "";
    return "bundle version " + version_text(next) + " is not newer than the active version " +
           version_text(*active);
}

} // namespace nettally
