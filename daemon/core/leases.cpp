// DHCP lease files: see leases.h.
#include "core/leases.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <utility>

namespace nettally {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep, bool skip_empty) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    for (;;) {
        const size_t next = s.find(sep, pos);
        const std::string_view part =
            s.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
        if (!skip_empty || !part.empty())
            out.push_back(part);
        if (next == std::string_view::npos)
            return out;
        pos = next + 1;
    }
}

std::optional<uint64_t> number(std::string_view s) {
    uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size())
        return std::nullopt;
    return v;
}

std::string_view trim_cr(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.remove_suffix(1);
    return line;
}

// The file's non-empty lines (CR of CRLF removed), with their 1-based line numbers.
std::vector<std::pair<size_t, std::string_view>> numbered_lines(std::string_view text) {
    std::vector<std::pair<size_t, std::string_view>> out;
    size_t n = 0;
    for (std::string_view raw : split(text, '\n', false)) {
        n++;
        if (const std::string_view line = trim_cr(raw); !line.empty())
            out.emplace_back(n, line);
    }
    return out;
}

// A host address (no /len) of the given family; why says what is wrong.
std::optional<Prefix> host_address(std::string_view text, std::string* why) {
    if (text.find('/') != std::string_view::npos) {
        *why = "an address, not a prefix, expected: '" + std::string(text.substr(0, 64)) + "'";
        return std::nullopt;
    }
    auto p = Prefix::parse(text, why);
    if (!p)
        *why = "bad address '" + std::string(text.substr(0, 64)) + "': " + *why;
    return p;
}

// Kea writes a comma inside a value as "&#x2c".
std::string kea_unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s.substr(i, 5) == "&#x2c") {
            out += ',';
            i += 4;
        } else {
            out += s[i];
        }
    }
    return out;
}

} // namespace

std::string_view to_string(LeaseFormat f) {
    return f == LeaseFormat::Dnsmasq ? "dnsmasq" : "kea";
}

LeaseFile parse_dnsmasq_leases(std::string_view text) {
    LeaseFile out;
    bool v6 = false;
    for (const auto& [n, line] : numbered_lines(text)) {
        const auto f = split(line, ' ', true);
        if (f.size() == 2 && f[0] == "duid") {
            v6 = true;
            continue;
        }
        if (f.size() != 5) {
            out.problems.push_back(
                {n, "expected 5 fields (EXPIRY MAC|IAID ADDRESS HOSTNAME CLIENT-ID), got " +
                        std::to_string(f.size())});
            continue;
        }
        Lease l;
        const auto expiry = number(f[0]);
        if (!expiry) {
            out.problems.push_back({n, "bad expiry time '" + std::string(f[0].substr(0, 32)) + "'"});
            continue;
        }
        l.expires_s = *expiry;
        std::string why;
        const auto addr = host_address(f[2], &why);
        if (!addr) {
            out.problems.push_back({n, why});
            continue;
        }
        if ((addr->family == NT_AF_INET6) != v6) {
            out.problems.push_back(
                {n, v6 ? "an IPv4 address after the duid line" : "an IPv6 address before the duid line"});
            continue;
        }
        l.prefix = *addr;
        if (!v6) {
            // dnsmasq writes the hardware address as hex bytes with ':'; Ethernet has 6.
            const auto mac = normalize_mac(f[1]);
            if (!mac) {
                out.problems.push_back({n, "bad MAC address '" + std::string(f[1].substr(0, 64)) + "'"});
                continue;
            }
            l.mac = *mac;
        } else if (!number(f[1])) {
            out.problems.push_back({n, "bad IAID '" + std::string(f[1].substr(0, 32)) + "'"});
            continue;
        }
        if (f[3] != "*")
            l.hostname = std::string(f[3]);
        if (f[4] != "*")
            l.client_id = std::string(f[4]);
        out.leases.push_back(std::move(l));
    }
    return out;
}

namespace {

// A Kea memfile header: the columns by name.
struct KeaHeader {
    std::map<std::string, size_t> col;
    size_t ncols = 0;
    bool v6 = false; // lease6 (has a duid column)
};

std::optional<KeaHeader> kea_header(const std::vector<std::string_view>& f, std::string* why) {
    KeaHeader h;
    for (size_t i = 0; i < f.size(); i++)
        if (!h.col.emplace(std::string(f[i]), i).second) {
            *why = "the header names column '" + std::string(f[i].substr(0, 32)) + "' twice";
            return std::nullopt;
        }
    h.ncols = f.size();
    h.v6 = h.col.count("duid") != 0;
    for (const char* need : {"address", "valid_lifetime", "expire", "hostname", "state"})
        if (!h.col.count(need)) {
            *why = std::string("the header has no '") + need + "' column";
            return std::nullopt;
        }
    if (!h.v6 && !h.col.count("hwaddr")) {
        *why = "the header has no 'hwaddr' column";
        return std::nullopt;
    }
    return h;
}

// The leased address, or for an IPv6 prefix delegation (lease_type 2) the delegated prefix.
template <typename At> std::optional<Prefix> kea_prefix(const KeaHeader& h, const At& at, std::string* why) {
    auto addr = host_address(at("address"), why);
    if (!addr)
        return std::nullopt;
    if ((addr->family == NT_AF_INET6) != h.v6) {
        *why = h.v6 ? "an IPv4 address in a lease6 file" : "an IPv6 address in a lease4 file";
        return std::nullopt;
    }
    if (!h.v6 || at("lease_type") != "2")
        return addr;
    const auto len = number(at("prefix_len"));
    if (!len || *len < 1 || *len > 128) {
        *why = "bad prefix_len '" + std::string(at("prefix_len").substr(0, 16)) + "'";
        return std::nullopt;
    }
    auto p = Prefix::parse(std::string(at("address")) + "/" + std::to_string(*len), why);
    if (!p)
        *why = "bad delegated prefix: " + *why;
    return p;
}

std::optional<Lease> kea_lease(const KeaHeader& h, const std::vector<std::string_view>& f, std::string* why) {
    if (f.size() < h.ncols) {
        *why = "expected " + std::to_string(h.ncols) + " fields, got " + std::to_string(f.size());
        return std::nullopt;
    }
    const auto at = [&](const char* name) -> std::string_view {
        auto it = h.col.find(name);
        return it == h.col.end() || it->second >= f.size() ? std::string_view() : f[it->second];
    };
    Lease l;
    auto prefix = kea_prefix(h, at, why);
    if (!prefix)
        return std::nullopt;
    l.prefix = *prefix;
    const auto lifetime = number(at("valid_lifetime"));
    const auto expire = number(at("expire"));
    const auto state = number(at("state"));
    if (!lifetime || !expire || !state) {
        *why = "valid_lifetime, expire and state must be numbers";
        return std::nullopt;
    }
    l.expires_s = *expire;
    l.released = *state != 0 || *lifetime == 0;
    if (const std::string_view hw = at("hwaddr"); !hw.empty()) {
        const auto mac = normalize_mac(hw);
        if (!mac) {
            *why = "bad hwaddr '" + std::string(hw.substr(0, 64)) + "'";
            return std::nullopt;
        }
        l.mac = *mac;
    }
    l.hostname = kea_unescape(at("hostname"));
    while (!l.hostname.empty() && l.hostname.back() == '.')
        l.hostname.pop_back(); // Kea keeps the FQDN's final dot
    l.client_id = std::string(h.v6 ? at("duid") : at("client_id"));
    return l;
}

} // namespace

LeaseFile parse_kea_leases(std::string_view text) {
    LeaseFile out;
    std::optional<KeaHeader> header;
    for (const auto& [n, line] : numbered_lines(text)) {
        const auto f = split(line, ',', false);
        std::string why;
        if (!header) {
            header = kea_header(f, &why);
            if (!header) {
                out.problems.push_back({n, why});
                return out;
            }
            continue;
        }
        if (auto l = kea_lease(*header, f, &why))
            out.leases.push_back(std::move(*l));
        else
            out.problems.push_back({n, why});
    }
    if (!header && !text.empty())
        out.problems.push_back({1, "no header line"});
    return out;
}

LeaseFile parse_leases(LeaseFormat format, std::string_view text) {
    return format == LeaseFormat::Dnsmasq ? parse_dnsmasq_leases(text) : parse_kea_leases(text);
}

std::vector<WantedBinding>
lease_bindings(const std::vector<Lease>& leases, uint64_t now_s,
               const std::function<std::string(const std::string& mac)>& user_of_mac, size_t* skipped) {
    // The last line per address wins (Kea appends renewals and releases).
    std::map<Prefix, const Lease*> last;
    for (const auto& l : leases)
        last[l.prefix] = &l;
    std::vector<WantedBinding> out;
    size_t skip = 0;
    for (const auto& [prefix, l] : last) {
        if (l->released || (l->expires_s != 0 && l->expires_s <= now_s))
            continue;
        std::string user = l->mac.empty() || !user_of_mac ? std::string() : user_of_mac(l->mac);
        if (user.empty())
            user = l->hostname;
        if (!valid_user_name(user)) {
            skip++;
            continue;
        }
        out.push_back({user, prefix, l->mac.empty() ? l->client_id : l->mac, l->mac});
    }
    if (skipped)
        *skipped = skip;
    return out;
}

} // namespace nettally
