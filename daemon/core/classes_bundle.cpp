// The binary form of compiled traffic classes (classes_bundle.h): writer and checking reader.
// A bundle comes from the network or a D-Bus caller, so the reader trusts nothing: every length
// is checked against what is left of the buffer before it is used, every id against its table.
#include "core/classes_bundle.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <functional>
#include <set>
#include <tuple>
#include <utility>

namespace nettally {
namespace {

constexpr uint8_t kMagic[4] = {'N', 'T', 'C', 'B'};

enum Section : uint16_t {
    kName = 1,
    kClasses,
    kRules,
    kDir,
    kProto,
    kSport,
    kDport,
    kDscp,
    kVlan,
    kSrc,
    kDst,
    kMac,
    kSectionCount = kMac,
};

class Writer {
public:
    void u8(uint8_t v) { out_.push_back(v); }
    void u16(uint16_t v) { le(v, 2); }
    void u32(uint32_t v) { le(v, 4); }
    void u64(uint64_t v) { le(v, 8); }
    void bytes(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        out_.insert(out_.end(), b, b + n);
    }
    void text(const std::string& s) {
        u16(static_cast<uint16_t>(s.size()));
        bytes(s.data(), s.size());
    }
    size_t size() const { return out_.size(); }
    void patch_u32(size_t at, uint32_t v) {
        for (int i = 0; i < 4; i++)
            out_[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
    }
    std::vector<uint8_t>& data() { return out_; }

private:
    void le(uint64_t v, int n) {
        for (int i = 0; i < n; i++)
            out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    std::vector<uint8_t> out_;
};

class Reader {
public:
    Reader(std::span<const uint8_t> d, std::string what) : d_(d), what_(std::move(what)) {}

    [[noreturn]] void fail(const std::string& problem) const { throw BundleError(what_ + ": " + problem); }
    void need(size_t n) const {
        if (n > d_.size() - pos_)
            fail("truncated (needs " + std::to_string(n) + " more bytes at offset " + std::to_string(pos_) +
                 ", has " + std::to_string(d_.size() - pos_) + ")");
    }
    uint64_t le(int n) {
        need(static_cast<size_t>(n));
        uint64_t v = 0;
        for (int i = 0; i < n; i++)
            v |= uint64_t{d_[pos_ + static_cast<size_t>(i)]} << (8 * i);
        pos_ += static_cast<size_t>(n);
        return v;
    }
    uint8_t u8() { return static_cast<uint8_t>(le(1)); }
    uint16_t u16() { return static_cast<uint16_t>(le(2)); }
    uint32_t u32() { return static_cast<uint32_t>(le(4)); }
    uint64_t u64() { return le(8); }
    void bytes(void* to, size_t n) {
        need(n);
        std::memcpy(to, d_.data() + pos_, n);
        pos_ += n;
    }
    std::string text() {
        const uint16_t n = u16();
        std::string s(n, '\0');
        bytes(s.data(), n);
        return s;
    }
    // A count of items of at least min_size bytes each: no more than the rest could hold.
    uint32_t count(size_t min_size, size_t max, const char* what) {
        const uint32_t n = u32();
        if (n > max || size_t{n} * min_size > d_.size() - pos_)
            fail(std::string(what) + " count " + std::to_string(n) + " does not fit");
        return n;
    }
    Reader sub(size_t n, std::string what) {
        need(n);
        Reader r(d_.subspan(pos_, n), std::move(what));
        pos_ += n;
        return r;
    }
    bool done() const { return pos_ == d_.size(); }
    void expect_done() const {
        if (!done())
            fail(std::to_string(d_.size() - pos_) + " bytes left over");
    }

private:
    std::span<const uint8_t> d_;
    size_t pos_ = 0;
    std::string what_;
};

void write_eqs(Writer& w, const EqTable& t) {
    w.u32(t.size());
    for (const uint64_t m : t.masks)
        w.u64(m);
}

void write_scalar(Writer& w, const ScalarDim& d) {
    w.u32(d.domain);
    w.u32(d.none_eq);
    w.u32(static_cast<uint32_t>(d.runs.size()));
    for (const auto& r : d.runs) {
        w.u32(r[0]);
        w.u32(r[1]);
    }
    write_eqs(w, d.eqs);
}

void write_prefixes(Writer& w, const PrefixDim& d) {
    w.u32(static_cast<uint32_t>(d.entries.size()));
    for (const PrefixEntry& e : d.entries) {
        w.u8(e.family);
        w.u8(e.len);
        w.u16(0);
        w.bytes(e.addr.data(), 16); // network order, as the kernel's keys
        w.u32(e.eq);
    }
    write_eqs(w, d.eqs);
}

void write_macs(Writer& w, const MacDim& d) {
    w.u32(d.none_eq);
    w.u32(static_cast<uint32_t>(d.entries.size()));
    for (const MacEntry& e : d.entries) {
        w.bytes(e.mac.data(), 6);
        w.u16(0);
        w.u32(e.eq);
    }
    write_eqs(w, d.eqs);
}

void write_section(Writer& w, Section kind, const std::function<void(Writer&)>& body) {
    w.u16(kind);
    w.u16(0);
    const size_t len_at = w.size();
    w.u32(0);
    body(w);
    w.patch_u32(len_at, static_cast<uint32_t>(w.size() - len_at - 4));
}

void write_body(Writer& w, const Bundle& b) {
    write_section(w, kName, [&](Writer& s) { s.text(b.name); });
    write_section(w, kClasses, [&](Writer& s) {
        s.u32(static_cast<uint32_t>(b.classes.size()));
        for (const TrafficClass& c : b.classes) {
            s.u32(c.id);
            s.text(c.name);
        }
    });
    write_section(w, kRules, [&](Writer& s) {
        s.u32(static_cast<uint32_t>(b.rules.size()));
        for (const BundleRule& r : b.rules) {
            s.u32(r.class_id);
            s.u16(static_cast<uint16_t>(r.interfaces.size()));
            for (const std::string& g : r.interfaces)
                s.text(g);
        }
    });
    const std::pair<Section, const ScalarDim*> scalars[] = {{kDir, &b.dir},     {kProto, &b.proto},
                                                            {kSport, &b.sport}, {kDport, &b.dport},
                                                            {kDscp, &b.dscp},   {kVlan, &b.vlan}};
    for (const auto& section : scalars) {
        const ScalarDim& dim = *section.second; // clang 14 cannot capture a structured binding
        write_section(w, section.first, [&](Writer& s) { write_scalar(s, dim); });
    }
    write_section(w, kSrc, [&](Writer& s) { write_prefixes(s, b.src); });
    write_section(w, kDst, [&](Writer& s) { write_prefixes(s, b.dst); });
    write_section(w, kMac, [&](Writer& s) { write_macs(s, b.mac); });
}

// ---- reading ----------------------------------------------------------------------------------

struct Header {
    uint64_t version = 0;
    uint64_t hash = 0;
    uint32_t body_size = 0;
    uint32_t rules = 0;
    uint32_t classes = 0;
    uint32_t words = 0;
};

Header read_header(Reader& r, size_t total) {
    uint8_t magic[4];
    r.bytes(magic, 4);
    if (std::memcmp(magic, kMagic, 4) != 0)
        r.fail("not a traffic class bundle (bad magic)");
    const uint16_t format = r.u16();
    if (format != kBundleFormat)
        r.fail("unknown format version " + std::to_string(format) + " (this nettally reads " +
               std::to_string(kBundleFormat) + ")");
    if (r.u16() != kBundleHeaderSize)
        r.fail("unexpected header size");
    Header h;
    h.version = r.u64();
    h.hash = r.u64();
    h.body_size = r.u32();
    h.rules = r.u32();
    h.classes = r.u32();
    h.words = r.u32();
    const uint32_t sections = r.u32();
    const uint32_t flags = r.u32();
    if (h.version == 0 || h.version > uint64_t{INT64_MAX})
        r.fail("ruleset version " + std::to_string(h.version) + " out of range");
    if (h.body_size != total - kBundleHeaderSize)
        r.fail("body size " + std::to_string(h.body_size) + " in the header, " +
               std::to_string(total - kBundleHeaderSize) + " bytes present");
    if (h.rules > classes_limits::max_rules || h.classes > classes_limits::max_classes)
        r.fail("too many rules or classes");
    if (h.words != std::max<uint32_t>(1, (h.rules + 63) / 64))
        r.fail("bitmask width " + std::to_string(h.words) + " does not fit " + std::to_string(h.rules) +
               " rules");
    if (sections != kSectionCount || flags != 0)
        r.fail("unknown sections or flags");
    return h;
}

void check_name(const Reader& r, const std::string& name, const char* what) {
    const bool ok =
        !name.empty() && name.size() <= classes_limits::max_name_len &&
        std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        });
    if (!ok)
        r.fail(std::string("invalid ") + what + " name");
}

EqTable read_eqs(Reader& r, uint32_t words, uint32_t rules) {
    EqTable t;
    t.words = words;
    const uint32_t n = r.count(size_t{8} * words, kBundleMaxEq, "equivalence id");
    if (n == 0)
        r.fail("empty equivalence table");
    t.masks.resize(size_t{n} * words);
    for (uint64_t& m : t.masks)
        m = r.u64();
    // Bits past the last rule would select a rule that does not exist.
    for (uint32_t e = 0; e < n; e++)
        for (uint32_t w = 0; w < words; w++) {
            const uint32_t first = w * 64;
            const uint64_t valid = first >= rules        ? 0
                                   : rules - first >= 64 ? ~uint64_t{0}
                                                         : (uint64_t{1} << (rules - first)) - 1;
            if (t.masks[size_t{e} * words + w] & ~valid)
                r.fail("a bitmask names a rule past the last one");
        }
    return t;
}

ScalarDim read_scalar(Reader& r, uint32_t domain, uint32_t words, uint32_t rules) {
    ScalarDim d;
    d.domain = r.u32();
    if (d.domain != domain)
        r.fail("domain " + std::to_string(d.domain) + ", expected " + std::to_string(domain));
    d.none_eq = r.u32();
    const uint32_t n = r.count(8, domain, "run");
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t start = r.u32();
        const uint32_t eq = r.u32();
        if (i == 0 ? start != 0 : start <= d.runs.back()[0] || start >= domain)
            r.fail("runs must start at 0 and ascend within the domain");
        d.runs.push_back({start, eq});
    }
    if (d.runs.empty())
        r.fail("no runs");
    d.eqs = read_eqs(r, words, rules);
    for (const auto& run : d.runs)
        if (run[1] >= d.eqs.size())
            r.fail("equivalence id " + std::to_string(run[1]) + " out of range");
    if (d.none_eq >= d.eqs.size())
        r.fail("equivalence id out of range");
    r.expect_done();
    return d;
}

PrefixDim read_prefixes(Reader& r, uint32_t words, uint32_t rules) {
    PrefixDim d;
    const uint32_t n =
        r.count(24, size_t{classes_limits::max_rules} * classes_limits::max_values * 2 + 2, "prefix");
    bool any4 = false;
    bool any6 = false;
    for (uint32_t i = 0; i < n; i++) {
        PrefixEntry e;
        e.family = r.u8();
        e.len = r.u8();
        if (r.u16() != 0)
            r.fail("padding not zero");
        r.bytes(e.addr.data(), 16);
        e.eq = r.u32();
        const int max = e.family == NT_AF_INET ? 32 : e.family == NT_AF_INET6 ? 128 : -1;
        if (max < 0 || e.len > max)
            r.fail("prefix of unknown family or too long");
        Prefix p;
        p.family = e.family;
        p.len = e.len;
        p.addr = e.addr;
        if (!p.contains(e.family, e.addr.data()) ||
            (e.family == NT_AF_INET && (e.addr[1] | e.addr[2] | e.addr[3])))
            r.fail("prefix with host bits set");
        any4 |= e.family == NT_AF_INET && e.len == 0;
        any6 |= e.family == NT_AF_INET6 && e.len == 0;
        d.entries.push_back(e);
    }
    if (!any4 || !any6)
        r.fail("a /0 entry per family is missing");
    d.eqs = read_eqs(r, words, rules);
    std::set<std::tuple<uint8_t, std::array<uint32_t, 4>, uint8_t>> seen;
    for (const PrefixEntry& e : d.entries) {
        if (e.eq >= d.eqs.size())
            r.fail("equivalence id " + std::to_string(e.eq) + " out of range");
        if (!seen.insert({e.family, e.addr, e.len}).second)
            r.fail("prefix listed twice");
    }
    r.expect_done();
    return d;
}

MacDim read_macs(Reader& r, uint32_t words, uint32_t rules) {
    MacDim d;
    d.none_eq = r.u32();
    const uint32_t n = r.count(12, size_t{classes_limits::max_rules} * classes_limits::max_values, "MAC");
    for (uint32_t i = 0; i < n; i++) {
        MacEntry e;
        r.bytes(e.mac.data(), 6);
        if (r.u16() != 0)
            r.fail("padding not zero");
        e.eq = r.u32();
        if (!d.entries.empty() && !(d.entries.back().mac < e.mac))
            r.fail("MACs must ascend, each once");
        d.entries.push_back(e);
    }
    d.eqs = read_eqs(r, words, rules);
    if (d.none_eq >= d.eqs.size() || std::any_of(d.entries.begin(), d.entries.end(),
                                                 [&](const MacEntry& e) { return e.eq >= d.eqs.size(); }))
        r.fail("equivalence id out of range");
    r.expect_done();
    return d;
}

void read_classes(Reader& r, Bundle& b, uint32_t expected) {
    if (r.count(6, classes_limits::max_classes, "class") != expected)
        r.fail("class count does not match the header");
    std::set<uint32_t> ids;
    std::set<std::string> names;
    for (uint32_t i = 0; i < expected; i++) {
        TrafficClass c;
        c.id = r.u32();
        c.name = r.text();
        check_name(r, c.name, "class");
        if (c.id == kClassOther || c.id > classes_limits::max_class_id || c.name == kClassOtherName)
            r.fail("class id " + std::to_string(c.id) + " or name reserved or out of range");
        if (!ids.insert(c.id).second || !names.insert(c.name).second)
            r.fail("class id or name used twice");
        b.classes.push_back(std::move(c));
    }
    r.expect_done();
}

void read_rules(Reader& r, Bundle& b, uint32_t expected) {
    if (r.count(6, classes_limits::max_rules, "rule") != expected)
        r.fail("rule count does not match the header");
    for (uint32_t i = 0; i < expected; i++) {
        BundleRule rule;
        rule.class_id = r.u32();
        if (std::none_of(b.classes.begin(), b.classes.end(),
                         [&](const TrafficClass& c) { return c.id == rule.class_id; }))
            r.fail("rule " + std::to_string(i) + " names class id " + std::to_string(rule.class_id) +
                   ", which is not defined");
        const uint16_t globs = r.u16();
        for (uint16_t g = 0; g < globs; g++) {
            std::string glob = r.text();
            if (!valid_interface_glob(glob))
                r.fail("invalid interface glob");
            rule.interfaces.push_back(std::move(glob));
        }
        b.rules.push_back(std::move(rule));
    }
    r.expect_done();
}

const char* section_name(uint16_t kind) {
    static constexpr const char* names[] = {"",         "name",  "classes", "rules", "direction",
                                            "protocol", "sport", "dport",   "dscp",  "vlan",
                                            "src",      "dst",   "mac"};
    return kind <= kSectionCount ? names[kind] : "unknown";
}

void read_section(Reader& body, uint16_t want, const Header& h, Bundle& b) {
    const uint16_t kind = body.u16();
    if (kind != want)
        body.fail("section " + std::to_string(kind) + " where '" + section_name(want) + "' was expected");
    if (body.u16() != 0)
        body.fail("section padding not zero");
    const uint32_t len = body.u32();
    Reader r = body.sub(len, std::string("section '") + section_name(kind) + "'");
    const uint32_t w = h.words;
    switch (kind) {
    case kName:
        b.name = r.text();
        check_name(r, b.name, "ruleset");
        r.expect_done();
        break;
    case kClasses:
        read_classes(r, b, h.classes);
        break;
    case kRules:
        read_rules(r, b, h.rules);
        break;
    case kDir:
        b.dir = read_scalar(r, NT_DIR_MAX, w, h.rules);
        break;
    case kProto:
        b.proto = read_scalar(r, 256, w, h.rules);
        break;
    case kSport:
    case kDport:
        (kind == kSport ? b.sport : b.dport) = read_scalar(r, 65536, w, h.rules);
        break;
    case kDscp:
        b.dscp = read_scalar(r, 64, w, h.rules);
        break;
    case kVlan:
        b.vlan = read_scalar(r, 4096, w, h.rules);
        break;
    case kSrc:
    case kDst:
        (kind == kSrc ? b.src : b.dst) = read_prefixes(r, w, h.rules);
        break;
    default:
        b.mac = read_macs(r, w, h.rules);
        break;
    }
}

} // namespace

std::vector<uint8_t> write_bundle(Bundle& b) {
    Writer body;
    write_body(body, b);
    b.hash = fnv1a64(body.data());
    Writer w;
    w.bytes(kMagic, 4);
    w.u16(b.format);
    w.u16(kBundleHeaderSize);
    w.u64(b.version);
    w.u64(b.hash);
    w.u32(static_cast<uint32_t>(body.size()));
    w.u32(static_cast<uint32_t>(b.rules.size()));
    w.u32(static_cast<uint32_t>(b.classes.size()));
    w.u32(b.words);
    w.u32(kSectionCount);
    w.u32(0);
    w.bytes(body.data().data(), body.size());
    return std::move(w.data());
}

Bundle read_bundle(std::span<const uint8_t> data) {
    Reader r(data, "bundle");
    if (data.size() > kBundleMaxSize)
        r.fail("too large (" + std::to_string(data.size()) + " bytes, at most " +
               std::to_string(kBundleMaxSize) + ")");
    if (data.size() < kBundleHeaderSize)
        r.fail("truncated (" + std::to_string(data.size()) + " bytes, the header alone is " +
               std::to_string(kBundleHeaderSize) + ")");
    const Header h = read_header(r, data.size());
    const std::span<const uint8_t> body_bytes = data.subspan(kBundleHeaderSize);
    if (fnv1a64(body_bytes) != h.hash)
        r.fail("the tables do not match the header's hash " + hash_text(h.hash) + " (damaged)");
    Bundle b;
    b.version = h.version;
    b.hash = h.hash;
    b.words = h.words;
    Reader body = r.sub(h.body_size, "bundle");
    for (uint16_t kind = kName; kind <= kSectionCount; kind++)
        read_section(body, kind, h, b);
    body.expect_done();
    return b;
}

} // namespace nettally
