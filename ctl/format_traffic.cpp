// interfaces, hosts and flows (ListInterfaces, ListHosts, ListFlows): JSON shapes and tables.
#include "format.h"

#include <algorithm>

namespace nettally::ctl {
namespace {

bool is_icmp(std::uint8_t proto) {
    return proto == 1 || proto == 58;
}

// Which Counters field a sort key names, for the hosts table's byte columns.
struct Layer {
    std::string_view header;
    std::uint64_t Counters::*field;
};

Layer layer_for(std::string_view sort_key) {
    if (sort_key == "l3")
        return {"L3", &Counters::l3};
    if (sort_key == "l4")
        return {"L4", &Counters::l4};
    if (sort_key == "payload")
        return {"PAYLOAD", &Counters::payload};
    return {"L2", &Counters::l2};
}

} // namespace

Json interfaces_json(const std::vector<InterfaceRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows) {
        list.push_back(Json{{"name", r.name},
                            {"role", r.role},
                            {"ifindex", r.ifindex},
                            {"ingress", counters_json(r.ingress)},
                            {"egress", counters_json(r.egress)},
                            {"unattributed", object_json(r.unattributed, counters_json)},
                            {"finished_flows", Json{{"ingress", counters_json(r.finished_ingress)},
                                                    {"egress", counters_json(r.finished_egress)}}}});
    }
    return Json{{"interfaces", std::move(list)}};
}

Json hosts_json(const std::vector<HostRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"mac", r.mac},
                            {"ip", r.ip},
                            {"interface", r.interface},
                            {"sent", counters_json(r.sent)},
                            {"received", counters_json(r.received)},
                            {"wan_sent", counters_json(r.wan_sent)},
                            {"wan_received", counters_json(r.wan_received)},
                            {"first_seen", time_json(r.first_seen)},
                            {"last_seen", time_json(r.last_seen)}});
    // "user" only where the daemon has subscribers; null for an unbound host.
    for (size_t i = 0; i < rows.size(); i++)
        if (rows[i].user)
            list[i]["user"] = rows[i].user->empty() ? Json(nullptr) : Json(*rows[i].user);
    return Json{{"hosts", std::move(list)}};
}

Json flows_json(const std::vector<FlowRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows) {
        // Counters sit flat in the flow object (the documented shape), unlike hosts.
        Json f = {{"interface", r.interface},
                  {"direction", r.direction},
                  {"proto", proto_name(r.proto)},
                  {"src", r.src},
                  {"sport", r.sport},
                  {"dst", r.dst},
                  {"dport", r.dport}};
        f.update(counters_json(r.counters));
        f["first_seen"] = time_json(r.first_seen);
        f["last_seen"] = time_json(r.last_seen);
        // Flag letters only mean something for tcp; other protocols pass the raw byte through.
        f["tcp_flags"] = r.proto == 6 ? Json(tcp_flags_string(r.tcp_flags)) : Json(r.tcp_flags);
        if (is_icmp(r.proto)) {
            f["icmp_type"] = r.dport >> 8;
            f["icmp_code"] = r.dport & 0xFF;
        }
        // "user" only where the daemon has subscribers; null for an unbound host.
        if (r.user)
            f["user"] = r.user->empty() ? Json(nullptr) : Json(*r.user);
        // null: no ruleset in force, or no packet of the flow classified yet.
        f["class"] = r.cls.empty() ? Json(nullptr) : Json(r.cls);
        list.push_back(std::move(f));
    }
    return Json{{"flows", std::move(list)}};
}

std::string interfaces_text(const std::vector<InterfaceRow>& rows) {
    const std::vector<Column> counter_columns = {right("PACKETS"), right("L2"), right("L3"), right("L4"),
                                                 right("PAYLOAD")};
    std::vector<Column> totals_cols = {{"NAME"}, {"ROLE"}, {"DIR"}};
    totals_cols.insert(totals_cols.end(), counter_columns.begin(), counter_columns.end());
    std::vector<Column> bucket_cols = {{"NAME"}, {"DIR"}, {"BUCKET"}};
    bucket_cols.insert(bucket_cols.end(), counter_columns.begin(), counter_columns.end());

    std::vector<std::vector<std::string>> totals;
    std::vector<std::vector<std::string>> buckets;
    for (const auto& r : rows) {
        for (const auto& [dir, c] : {std::pair{"ingress", &r.ingress}, std::pair{"egress", &r.egress}}) {
            std::vector<std::string> cells = {r.name, r.role, dir};
            auto nums = counter_cells(*c);
            cells.insert(cells.end(), nums.begin(), nums.end());
            totals.push_back(std::move(cells));
        }
        // Zero buckets are the normal case; listing them would bury the ones that matter.
        for (const auto& [key, c] : r.unattributed) {
            if (c == Counters{})
                continue;
            const auto dot = key.find('.');
            std::vector<std::string> cells = {r.name, dot == std::string::npos ? "-" : key.substr(0, dot),
                                              dot == std::string::npos ? key : key.substr(dot + 1)};
            auto nums = counter_cells(c);
            cells.insert(cells.end(), nums.begin(), nums.end());
            buckets.push_back(std::move(cells));
        }
    }

    std::string out = render_table(totals_cols, totals);
    if (!buckets.empty())
        out += "\nUnattributed (non-zero buckets):\n" + render_table(bucket_cols, buckets);
    return out;
}

std::string hosts_text(const std::vector<HostRow>& rows, std::string_view sort_key) {
    const Layer layer = layer_for(sort_key);
    const std::string l(layer.header);
    std::vector<Column> cols = {{"MAC"},
                                {"IP"},
                                {"IFACE"},
                                right("SENT PKTS"),
                                right("SENT " + l),
                                right("RECV PKTS"),
                                right("RECV " + l),
                                right("WAN SENT " + l),
                                right("WAN RECV " + l),
                                {"LAST SEEN"}};
    // A USER column where the daemon has subscribers ("-": unbound).
    const bool users =
        std::any_of(rows.begin(), rows.end(), [](const HostRow& r) { return r.user.has_value(); });
    if (users)
        cols.insert(cols.begin() + 3, Column{"USER"});
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        std::vector<std::string> row = {r.mac,
                                        r.ip,
                                        r.interface,
                                        std::to_string(r.sent.packets),
                                        human_bytes(r.sent.*layer.field),
                                        std::to_string(r.received.packets),
                                        human_bytes(r.received.*layer.field),
                                        human_bytes(r.wan_sent.*layer.field),
                                        human_bytes(r.wan_received.*layer.field),
                                        human_time(r.last_seen)};
        if (users)
            row.insert(row.begin() + 3, r.user && !r.user->empty() ? *r.user : "-");
        cells.push_back(std::move(row));
    }
    return render_table(cols, cells);
}

std::string flows_text(const std::vector<FlowRow>& rows) {
    std::vector<Column> cols = {{"IFACE"},   {"DIR"},          {"PROTO"},     {"SRC"},     right("SPORT"),
                                {"DST"},     right("DPORT"),   right("PKTS"), right("L2"), right("L3"),
                                right("L4"), right("PAYLOAD"), {"LAST SEEN"}};
    const bool users =
        std::any_of(rows.begin(), rows.end(), [](const FlowRow& r) { return r.user.has_value(); });
    if (users)
        cols.insert(cols.begin() + 7, Column{"USER"});
    // The class column only while some flow has one (a ruleset is in force).
    const bool classes =
        std::any_of(rows.begin(), rows.end(), [](const FlowRow& r) { return !r.cls.empty(); });
    if (classes)
        cols.insert(cols.begin() + 7 + (users ? 1 : 0), Column{"CLASS"});
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        // ICMP has no ports; the API packs type and code into dport, which reads better split.
        const bool icmp = is_icmp(r.proto);
        std::vector<std::string> row = {r.interface,
                                        r.direction,
                                        proto_name(r.proto),
                                        r.src,
                                        icmp ? "-" : std::to_string(r.sport),
                                        r.dst,
                                        icmp ? std::to_string(r.dport >> 8) + "/" +
                                                   std::to_string(r.dport & 0xFF)
                                             : std::to_string(r.dport)};
        if (users)
            row.push_back(r.user && !r.user->empty() ? *r.user : "-");
        if (classes)
            row.push_back(r.cls.empty() ? "-" : r.cls);
        auto nums = counter_cells(r.counters);
        row.insert(row.end(), nums.begin(), nums.end());
        row.push_back(human_time(r.last_seen));
        cells.push_back(std::move(row));
    }
    return render_table(cols, cells);
}

Json subscribers_json(const std::vector<SubscriberRow>& rows) {
    const auto or_null = [](const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); };
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"user", r.user},
                            {"prefix", r.prefix},
                            {"source", r.source},
                            {"session", or_null(r.session)},
                            {"mac", or_null(r.mac)},
                            {"since", time_json(r.since)},
                            {"until", time_json(r.until)},
                            {"effective", r.effective}});
    return Json{{"subscribers", std::move(list)}};
}

Json radius_json(const StatusMap& status) {
    Json out = Json::object();
    Json dropped = Json::object();
    for (const auto& [key, value] : status) {
        if (key.rfind("radius_", 0) != 0)
            continue;
        const std::string k = key.substr(7);
        if (k.rfind("dropped_", 0) == 0)
            dropped[k.substr(8)] = status_value_json(key, value);
        else if (k == "dropped")
            out["dropped_total"] = status_value_json(key, value);
        else
            out[k] = status_value_json(key, value);
    }
    out["dropped"] = std::move(dropped);
    return out;
}

Json users_json(const std::vector<UserRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"interface", r.interface},
                            {"user", r.user.empty() ? Json(nullptr) : Json(r.user)},
                            {"sent", counters_json(r.sent)},
                            {"received", counters_json(r.received)}});
    return Json{{"users", std::move(list)}};
}

Json classes_json(const std::vector<ClassRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"interface", r.interface},
                            {"direction", r.direction},
                            {"class_id", r.id},
                            {"class", r.name},
                            {"counters", counters_json(r.counters)},
                            {"gone", r.gone}});
    return Json{{"classes", std::move(list)}};
}

std::string classes_text(const std::vector<ClassRow>& rows) {
    const std::vector<Column> cols = {{"IFACE"},        {"DIR"},          {"CLASS"},
                                      right("PACKETS"), right("L2"),      right("L3"),
                                      right("L4"),      right("PAYLOAD"), {"GONE"}};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows) {
        std::vector<std::string> row{r.interface, r.direction, r.name};
        for (auto& c : counter_cells(r.counters))
            row.push_back(std::move(c));
        row.push_back(r.gone ? "gone" : "-");
        cells.push_back(std::move(row));
    }
    return render_table(cols, cells);
}

Json host_classes_json(const std::vector<HostClassRow>& rows) {
    Json list = Json::array();
    for (const auto& r : rows)
        list.push_back(Json{{"interface", r.interface},
                            {"mac", r.mac},
                            {"ip", r.ip},
                            {"class_id", r.id},
                            {"class", r.name},
                            {"sent", counters_json(r.sent)},
                            {"received", counters_json(r.received)},
                            {"gone", r.gone}});
    return Json{{"host_classes", std::move(list)}};
}

std::string host_classes_text(const std::vector<HostClassRow>& rows) {
    const std::vector<Column> cols = {
        {"IFACE"},          {"MAC"},          {"IP"},  {"CLASS"}, right("SENT_PKTS"), right("SENT_L2"),
        right("RECV_PKTS"), right("RECV_L2"), {"GONE"}};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows)
        cells.push_back({r.interface, r.mac, r.ip, r.name, std::to_string(r.sent.packets),
                         std::to_string(r.sent.l2), std::to_string(r.received.packets),
                         std::to_string(r.received.l2), r.gone ? "gone" : "-"});
    return render_table(cols, cells);
}

Json rules_status_json(const Dict& status) {
    return object_json(
        status, [](const std::string& key, const StatusValue& v) { return status_value_json(key, v); });
}

std::string rules_status_text(const Dict& status) {
    std::string out;
    for (const auto& [key, v] : status) {
        const Json j = status_value_json(key, v);
        out += key + ": " + (j.is_string() ? j.get<std::string>() : j.dump()) + "\n";
    }
    return out;
}

std::string subscribers_text(const std::vector<SubscriberRow>& rows) {
    const std::vector<Column> cols = {{"USER"},  {"BINDING"}, {"SOURCE"}, {"SESSION"},
                                      {"SINCE"}, {"UNTIL"},   {"STATE"}};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows)
        cells.push_back({r.user, r.prefix, r.source, r.session.empty() ? "-" : r.session, human_time(r.since),
                         r.until ? human_time(r.until) : "-",
                         r.until       ? "closed"
                         : r.effective ? "counting"
                                       : "outranked"});
    return render_table(cols, cells);
}

std::string users_text(const std::vector<UserRow>& rows) {
    const std::vector<Column> cols = {{"USER"},         {"IFACE"},          right("SENT PKTS"),
                                      right("SENT L2"), right("RECV PKTS"), right("RECV L2")};
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows)
        cells.push_back({r.user.empty() ? "(unbound)" : r.user, r.interface, std::to_string(r.sent.packets),
                         human_bytes(r.sent.l2), std::to_string(r.received.packets),
                         human_bytes(r.received.l2)});
    return render_table(cols, cells);
}

} // namespace nettally::ctl
