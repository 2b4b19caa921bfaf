// Subscribers: who was behind an address when the bytes flowed. A binding ties an address or
// prefix to a user for an interval (since .. until) and comes from one identity source (static
// config now; DHCP leases and RADIUS accounting later). The BindingTable keeps the intervals,
// open and recently closed, decides which open binding a prefix takes in the kernel (source
// precedence), and says what changed so the daemon can update the kernel map and signal it.
// UserIds hands out the small numbers the kernel counts users under. Pure: unit-tested without
// root (README "Subscribers").
#pragma once

#include "core/abi.h"

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nettally {

// An IPv4 or IPv6 prefix; the address bits past len are zero.
struct Prefix {
    uint8_t family = NT_AF_INET;    // NT_AF_INET | NT_AF_INET6
    std::array<uint32_t, 4> addr{}; // network byte order, IPv4 in addr[0]
    uint8_t len = 32;

    // "198.18.1.2", "198.18.1.0/24", "fd00:1::/64"; an address without /len is a host (/32, /128).
    // Bits set past the length are refused (why says so), as a typo more likely than intended.
    static std::optional<Prefix> parse(std::string_view text, std::string* why = nullptr);
    std::string to_string() const; // a host prints without /len
    // True when the address (family, addr as in the BPF keys) is inside this prefix.
    bool contains(uint8_t fam, const uint32_t a[4]) const;
    nt_bind_key kernel_key() const;
    auto operator<=>(const Prefix&) const = default;
};

// "aa:bb:cc:dd:ee:ff" (or with '-'), any case, into the lower-case colon form; nullopt if malformed.
std::optional<std::string> normalize_mac(std::string_view text);

// A user name as the kernel map and the records carry it: 1..63 bytes, printable ASCII, no
// whitespace, no '|' (why says which rule failed).
bool valid_user_name(std::string_view name, std::string* why = nullptr);

// Where a binding came from. A prefix bound by more than one source goes to the highest
// precedence: static (the operator's explicit word) over RADIUS (the access server's
// authentication) over DHCP (a lease).
enum class BindingSource : uint8_t { Static = 0, Radius = 1, Dhcp = 2 };
int precedence(BindingSource s); // higher wins
std::string_view to_string(BindingSource s);
std::optional<BindingSource> parse_binding_source(std::string_view s);

struct Binding {
    std::string user;
    Prefix prefix;
    BindingSource source = BindingSource::Static;
    std::string session; // the source's session (lease MAC, Acct-Session-Id); "" for static entries
    std::string mac;     // the device's MAC when known ("" otherwise)
    uint64_t since_us = 0;
    uint64_t until_us = 0; // 0 = open

    bool open() const { return until_us == 0; }
    bool operator==(const Binding&) const = default;
};

// What a source wants bound now (BindingTable::sync_source).
struct WantedBinding {
    std::string user;
    Prefix prefix;
    std::string session;
    std::string mac;
};

// One change, for the log and the SubscriberChanged signal.
struct BindingChange {
    enum class Kind { Opened, Closed };
    Kind kind = Kind::Opened;
    Binding binding; // as it is after the change (until_us set when closed)
};
std::string_view to_string(BindingChange::Kind k);

class BindingTable {
public:
    // Open bindings of `source` become exactly `want` at now_us: an entry with the same prefix,
    // user and session stays open (its since is kept), the others close, new ones open.
    std::vector<BindingChange> sync_source(BindingSource source, const std::vector<WantedBinding>& want,
                                           uint64_t now_us);
    // Opens one binding; an open binding of the same source and prefix is closed first (an
    // address re-assigned). Returns the changes (empty when that exact binding is already open).
    std::vector<BindingChange> open(BindingSource source, const WantedBinding& w, uint64_t now_us);
    // Closes the open binding of this source and prefix (and session when not empty).
    std::vector<BindingChange> close(BindingSource source, const Prefix& prefix, const std::string& session,
                                     uint64_t now_us);
    // Forgets closed bindings that ended more than keep_us before now_us; returns how many.
    size_t expire(uint64_t now_us, uint64_t keep_us);

    // The prefix -> user table for the kernel: per prefix, the open binding of the highest
    // precedence source (the earliest opened among equals).
    std::map<Prefix, std::string> effective() const;
    // The same, the chosen binding itself (pointers into bindings(), valid until the next change).
    std::map<Prefix, const Binding*> effective_bindings() const;
    // effective_bindings() for one prefix (nullptr when none is open).
    const Binding* effective_for(const Prefix& prefix) const;
    // The user bound to an address at a time (open or closed interval, longest prefix,
    // precedence as in effective()); "" when none.
    std::string user_at(uint8_t family, const uint32_t addr[4], uint64_t at_us) const;
    // Open first, then closed; each group by since.
    const std::vector<Binding>& bindings() const { return bindings_; }

    nlohmann::json to_json() const;
    static BindingTable from_json(const nlohmann::json& j); // throws std::exception on bad input

private:
    std::vector<Binding> bindings_;
};

// User name <-> the id the kernel counts under. 0 is the unbound pseudo-user. Ids are never
// reused while the daemon runs, and are restored from the pinned name map after a restart.
class UserIds {
public:
    uint32_t id_of(const std::string& user); // allocates a new id when needed
    std::optional<uint32_t> find(const std::string& user) const;
    const std::string& name_of(uint32_t id) const; // "" for 0 and unknown ids
    void restore(uint32_t id, const std::string& user);
    const std::map<uint32_t, std::string>& names() const { return names_; }

private:
    std::map<uint32_t, std::string> names_;
    std::map<std::string, uint32_t> ids_;
    uint32_t next_ = 1;
};

} // namespace nettally
