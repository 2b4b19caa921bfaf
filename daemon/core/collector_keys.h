// The collector's ledger keys (collector.cpp, collector_state.cpp): how hosts_, users_, classes_
// and host_classes_ are keyed, in memory and when a state file is read back.
#pragma once

#include <cstdint>
#include <string>

namespace nettally::ledger {

// A host's key: interface, MAC and address, as HistoryFeed's subjects use it.
inline std::string host_id(const std::string& iface, const std::string& mac, const std::string& ip) {
    return iface + "|" + mac + "|" + ip;
}

// A user's key: interface and user name ("" = unbound).
inline std::string user_key(const std::string& iface, const std::string& user) {
    return iface + "|" + user;
}

// A class's key: interface, direction and stable class id.
inline std::string class_key(const std::string& iface, uint8_t dir, uint32_t id) {
    return iface + "|" + std::to_string(dir) + "|" + std::to_string(id);
}

// A host and class's key: the host's key and the stable class id.
inline std::string host_class_key(const std::string& host, uint32_t id) {
    return host + "|" + std::to_string(id);
}

} // namespace nettally::ledger
