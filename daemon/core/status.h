// GetStatus as plain data: each subsystem adds its keys to a Status with
// add_status(Status&); only the bus layer (bus/accounting.cpp) turns the
// values into D-Bus variants. The alternatives are the D-Bus types the keys
// have always had (b, u, t, x, d, s), so a key's type on the bus is the
// C++ type put in here. Put std::string, never a string literal (a
// `const char*` would silently become the bool).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>

namespace nettally {

using StatusValue = std::variant<bool, uint32_t, uint64_t, int64_t, double, std::string>;
using Status = std::map<std::string, StatusValue>;

} // namespace nettally
