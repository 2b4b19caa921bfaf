// Fuzz target: the RADIUS accounting parser (core/radius.h). The input is one datagram from a
// client whose secret is "testing123", parsed at a fixed clock (2026-01-01); then the same
// datagram with its Request Authenticator made right (when its Length fits), so mutations reach
// the attribute parser past the MD5 check. Parsing never
// throws; a refusal names a reason and says what; an accepted request has a valid user name (or
// none), valid prefixes and an answer of 20 octets that echoes its identifier; applied to the
// sessions it leaves the table's open RADIUS bindings exactly the prefixes of the open sessions.
#include "core/radius.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace {

void check_accepted(const nettally::radius::AccountingRequest& r) {
    using namespace nettally;
    if (!r.user_name.empty() && !valid_user_name(r.user_name))
        std::abort();
    for (const auto& p : r.prefixes()) {
        const auto again = Prefix::parse(p.to_string());
        if (!again || *again != p)
            std::abort();
    }
    const auto answer = radius::accounting_response(r.identifier, r.authenticator, "testing123");
    if (answer.size() != radius::kHeaderLen || answer[0] != radius::kAccountingResponse ||
        answer[1] != r.identifier)
        std::abort();
    BindingTable table;
    radius::RadiusSessions sessions;
    std::vector<BindingChange> changes;
    sessions.apply(r, radius::RadiusSessions::nas_of(r, "198.18.0.1"), table, 1000, &changes);
    std::set<Prefix> held, bound;
    for (const auto& [key, s] : sessions.open())
        held.insert(s.prefixes.begin(), s.prefixes.end());
    for (const auto& b : table.bindings())
        if (b.open())
            bound.insert(b.prefix);
    if (held != bound)
        std::abort();
    const auto restored = radius::RadiusSessions::from_json(sessions.to_json());
    if (restored.open() != sessions.open())
        std::abort();
}

void check(const uint8_t* data, size_t size) {
    const auto res = nettally::radius::parse_accounting_request(data, size, "testing123", 1767225600);
    if (res.request)
        check_accepted(*res.request);
    else if (res.detail.empty() || res.reason == nettally::radius::Reason::Count ||
             res.reason == nettally::radius::Reason::UnknownClient)
        std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    check(data, size);
    if (size < nettally::radius::kHeaderLen)
        return 0;
    const size_t len = (size_t{data[2]} << 8) | data[3];
    if (len < nettally::radius::kHeaderLen || len > size)
        return 0;
    std::vector<uint8_t> signed_copy(data, data + size);
    const auto auth = nettally::radius::request_authenticator(signed_copy.data(), len, "testing123");
    std::copy(auth.begin(), auth.end(), signed_copy.begin() + 4);
    const auto res =
        nettally::radius::parse_accounting_request(signed_copy.data(), size, "testing123", 1767225600);
    if (res.reason == nettally::radius::Reason::BadAuthenticator && !res.request)
        std::abort(); // signed with the secret, it must verify
    check(signed_copy.data(), size);
    return 0;
}
