// Subscribers: see subscribers.h.
#include "core/subscribers.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace nettally {
namespace {

// The address bits past len of a host-order view of the prefix, cleared; false if any was set.
bool clear_host_bits(Prefix& p) {
    const int bits = p.family == NT_AF_INET ? 32 : 128;
    bool clean = true;
    for (int w = 0; w < bits / 32; w++) {
        const int keep = std::clamp(static_cast<int>(p.len) - w * 32, 0, 32);
        const uint32_t mask = keep == 0 ? 0 : keep == 32 ? 0xffffffffu : ~((1u << (32 - keep)) - 1);
        const uint32_t host = ntohl(p.addr[static_cast<size_t>(w)]);
        if (host & ~mask)
            clean = false;
        p.addr[static_cast<size_t>(w)] = htonl(host & mask);
    }
    return clean;
}

void set_why(std::string* why, std::string text) {
    if (why)
        *why = std::move(text);
}

} // namespace

std::optional<Prefix> Prefix::parse(std::string_view text, std::string* why) {
    Prefix p;
    std::string addr(text);
    int len = -1;
    if (const auto slash = text.find('/'); slash != std::string_view::npos) {
        addr = std::string(text.substr(0, slash));
        const std::string_view l = text.substr(slash + 1);
        int v = 0;
        const auto [ptr, ec] = std::from_chars(l.data(), l.data() + l.size(), v);
        if (l.empty() || ec != std::errc{} || ptr != l.data() + l.size()) {
            set_why(why, "the prefix length after '/' is not a number");
            return std::nullopt;
        }
        len = v;
    }
    if (inet_pton(AF_INET, addr.c_str(), p.addr.data()) == 1) {
        p.family = NT_AF_INET;
    } else if (inet_pton(AF_INET6, addr.c_str(), p.addr.data()) == 1) {
        p.family = NT_AF_INET6;
    } else {
        set_why(why, "not an IPv4 or IPv6 address");
        return std::nullopt;
    }
    const int max = p.family == NT_AF_INET ? 32 : 128;
    if (len < 0)
        len = max;
    if (len > max || len < 1) {
        set_why(why, "prefix length must be 1 .. " + std::to_string(max));
        return std::nullopt;
    }
    p.len = static_cast<uint8_t>(len);
    if (!clear_host_bits(p)) {
        set_why(why, "address bits are set past the prefix length (did you mean " + p.to_string() + "?)");
        return std::nullopt;
    }
    return p;
}

std::string Prefix::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == NT_AF_INET ? AF_INET : AF_INET6, addr.data(), buf, sizeof(buf));
    const int max = family == NT_AF_INET ? 32 : 128;
    return len == max ? std::string(buf) : std::string(buf) + "/" + std::to_string(len);
}

bool Prefix::contains(uint8_t fam, const uint32_t a[4]) const {
    if (fam != family)
        return false;
    Prefix other = *this;
    std::copy(a, a + 4, other.addr.begin());
    clear_host_bits(other);
    return other.addr == addr;
}

nt_bind_key Prefix::kernel_key() const {
    nt_bind_key k{};
    k.prefixlen = NT_BIND_KEY_BITS + len;
    k.family = family;
    std::copy(addr.begin(), addr.end(), k.addr);
    return k;
}

std::optional<std::string> normalize_mac(std::string_view text) {
    if (text.size() != 17)
        return std::nullopt;
    std::string out;
    for (size_t i = 0; i < text.size(); i++) {
        const char c = text[i];
        if (i % 3 == 2) {
            if (c != ':' && c != '-')
                return std::nullopt;
            out += ':';
        } else {
            if (!std::isxdigit(static_cast<unsigned char>(c)))
                return std::nullopt;
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return out;
}

bool valid_user_name(std::string_view name, std::string* why) {
    if (name.empty() || name.size() >= NT_USER_NAME_LEN) {
        set_why(why, "a user name is 1 .. " + std::to_string(NT_USER_NAME_LEN - 1) + " bytes");
        return false;
    }
    for (const char c : name)
        if (c <= ' ' || c > '~' || c == '|') {
            set_why(why, "a user name is printable ASCII without spaces or '|'");
            return false;
        }
    return true;
}

std::string_view to_string(BindingSource s) {
    switch (s) {
    case BindingSource::Static:
        return "static";
    case BindingSource::Radius:
        return "radius";
    case BindingSource::Dhcp:
        return "dhcp";
    }
    return "static";
}

int precedence(BindingSource s) {
    switch (s) {
    case BindingSource::Static:
        return 3;
    case BindingSource::Radius:
        return 2;
    case BindingSource::Dhcp:
        return 1;
    }
    return 0;
}

std::optional<BindingSource> parse_binding_source(std::string_view s) {
    for (const auto v : {BindingSource::Static, BindingSource::Radius, BindingSource::Dhcp})
        if (to_string(v) == s)
            return v;
    return std::nullopt;
}

std::string_view to_string(BindingChange::Kind k) {
    return k == BindingChange::Kind::Opened ? "opened" : "closed";
}

std::vector<BindingChange>
BindingTable::sync_source(BindingSource source, const std::vector<WantedBinding>& want, uint64_t now_us) {
    std::vector<BindingChange> changes;
    std::vector<bool> kept(want.size(), false);
    for (auto& b : bindings_) {
        if (!b.open() || b.source != source)
            continue;
        bool still = false;
        for (size_t i = 0; i < want.size(); i++)
            if (!kept[i] && want[i].prefix == b.prefix && want[i].user == b.user &&
                want[i].session == b.session && want[i].mac == b.mac) {
                kept[i] = still = true;
                break;
            }
        if (!still) {
            b.until_us = std::max(now_us, b.since_us);
            changes.push_back({BindingChange::Kind::Closed, b});
        }
    }
    for (size_t i = 0; i < want.size(); i++)
        if (!kept[i]) {
            Binding b{want[i].user, want[i].prefix, source, want[i].session, want[i].mac, now_us, 0};
            bindings_.push_back(b);
            changes.push_back({BindingChange::Kind::Opened, std::move(b)});
        }
    return changes;
}

std::vector<BindingChange> BindingTable::open(BindingSource source, const WantedBinding& w, uint64_t now_us) {
    std::vector<BindingChange> changes;
    for (auto& b : bindings_) {
        if (!b.open() || b.source != source || b.prefix != w.prefix)
            continue;
        if (b.user == w.user && b.session == w.session && b.mac == w.mac)
            return {};
        b.until_us = std::max(now_us, b.since_us);
        changes.push_back({BindingChange::Kind::Closed, b});
    }
    Binding b{w.user, w.prefix, source, w.session, w.mac, now_us, 0};
    bindings_.push_back(b);
    changes.push_back({BindingChange::Kind::Opened, std::move(b)});
    return changes;
}

std::vector<BindingChange> BindingTable::close(BindingSource source, const Prefix& prefix,
                                               const std::string& session, uint64_t now_us) {
    std::vector<BindingChange> changes;
    for (auto& b : bindings_)
        if (b.open() && b.source == source && b.prefix == prefix &&
            (session.empty() || b.session == session)) {
            b.until_us = std::max(now_us, b.since_us);
            changes.push_back({BindingChange::Kind::Closed, b});
        }
    return changes;
}

size_t BindingTable::expire(uint64_t now_us, uint64_t keep_us) {
    const size_t before = bindings_.size();
    std::erase_if(bindings_, [&](const Binding& b) { return !b.open() && b.until_us + keep_us < now_us; });
    return before - bindings_.size();
}

std::map<Prefix, const Binding*> BindingTable::effective_bindings() const {
    std::map<Prefix, const Binding*> best;
    for (const auto& b : bindings_) {
        if (!b.open())
            continue;
        auto [it, fresh] = best.try_emplace(b.prefix, &b);
        if (fresh)
            continue;
        const Binding& cur = *it->second;
        const int pb = precedence(b.source), pc = precedence(cur.source);
        if (pb > pc || (pb == pc && b.since_us < cur.since_us))
            it->second = &b;
    }
    return best;
}

const Binding* BindingTable::effective_for(const Prefix& prefix) const {
    const Binding* best = nullptr;
    for (const auto& b : bindings_) {
        if (!b.open() || b.prefix != prefix)
            continue;
        if (!best || precedence(b.source) > precedence(best->source) ||
            (precedence(b.source) == precedence(best->source) && b.since_us < best->since_us))
            best = &b;
    }
    return best;
}

std::map<Prefix, std::string> BindingTable::effective() const {
    std::map<Prefix, std::string> out;
    for (const auto& [p, b] : effective_bindings())
        out[p] = b->user;
    return out;
}

std::string BindingTable::user_at(uint8_t family, const uint32_t addr[4], uint64_t at_us) const {
    const Binding* best = nullptr;
    for (const auto& b : bindings_) {
        if (!b.prefix.contains(family, addr) || b.since_us > at_us || (!b.open() && b.until_us <= at_us))
            continue;
        if (!best || b.prefix.len > best->prefix.len ||
            (b.prefix.len == best->prefix.len && precedence(b.source) > precedence(best->source)))
            best = &b;
    }
    return best ? best->user : std::string();
}

nlohmann::json BindingTable::to_json() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : bindings_)
        out.push_back({{"user", b.user},
                       {"prefix", b.prefix.to_string()},
                       {"source", to_string(b.source)},
                       {"session", b.session},
                       {"mac", b.mac},
                       {"since_us", b.since_us},
                       {"until_us", b.until_us}});
    return out;
}

BindingTable BindingTable::from_json(const nlohmann::json& j) {
    BindingTable t;
    for (const auto& bj : j) {
        Binding b;
        b.user = bj.at("user").get<std::string>();
        std::string why;
        const auto p = Prefix::parse(bj.at("prefix").get<std::string>(), &why);
        if (!p)
            throw std::runtime_error("binding prefix: " + why);
        if (!valid_user_name(b.user, &why))
            throw std::runtime_error("binding user: " + why);
        const auto src = parse_binding_source(bj.at("source").get<std::string>());
        if (!src)
            throw std::runtime_error("binding source unknown");
        b.prefix = *p;
        b.source = *src;
        b.session = bj.at("session").get<std::string>();
        b.mac = bj.value("mac", std::string());
        b.since_us = bj.at("since_us").get<uint64_t>();
        b.until_us = bj.at("until_us").get<uint64_t>();
        t.bindings_.push_back(std::move(b));
    }
    return t;
}

uint32_t UserIds::id_of(const std::string& user) {
    if (auto it = ids_.find(user); it != ids_.end())
        return it->second;
    const uint32_t id = next_++;
    names_[id] = user;
    ids_[user] = id;
    return id;
}

std::optional<uint32_t> UserIds::find(const std::string& user) const {
    auto it = ids_.find(user);
    return it == ids_.end() ? std::nullopt : std::optional<uint32_t>(it->second);
}

const std::string& UserIds::name_of(uint32_t id) const {
    static const std::string none;
    auto it = names_.find(id);
    return it == names_.end() ? none : it->second;
}

void UserIds::restore(uint32_t id, const std::string& user) {
    if (id == NT_USER_UNBOUND || ids_.count(user) || names_.count(id))
        return;
    names_[id] = user;
    ids_[user] = id;
    next_ = std::max(next_, id + 1);
}

} // namespace nettally
