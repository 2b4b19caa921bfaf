// HistoryFeed: see history_feed.h.
#include "core/history_feed.h"

namespace nettally {
namespace {

std::string proto_label(uint8_t proto) {
    switch (proto) {
    case 6:
        return "tcp";
    case 17:
        return "udp";
    case 1:
        return "icmp";
    case 58:
        return "icmpv6";
    default:
        return std::to_string(proto);
    }
}

} // namespace

std::string flow_aggregate(const FlowEntry& f, const std::string& interface) {
    std::string svc = proto_label(f.key.proto);
    if (f.key.proto == 6 || f.key.proto == 17)
        svc += "/" + std::to_string(std::min(f.key.sport, f.key.dport));
    return "flow:" + interface + ":" + std::string(to_string(static_cast<Direction>(f.key.dir))) + ":" + svc;
}

void HistoryFeed::on_flow_finished(const FlowEntry& f, const std::string& interface) {
    if (!interface.empty())
        finished_flows_[flow_aggregate(f, interface)] += f.counts;
}

std::map<std::string, Counts> HistoryFeed::cumulative(const Collector& c) {
    std::map<std::string, Counts> cum;
    for (const auto& [name, st] : c.interfaces())
        for (uint8_t d = 0; d < NT_DIR_MAX; d++)
            cum["iface:" + name + ":" + std::string(to_string(static_cast<Direction>(d)))] =
                st.dir[d].total.total();
    for (const auto& [key, h] : c.hosts()) {
        cum["host:" + key + ":sent"] = h.sent.total();
        cum["host:" + key + ":received"] = h.received.total();
    }
    for (const auto& [key, u] : c.users()) {
        if (u.user.empty())
            continue;
        cum["user:" + u.user + ":sent"] += u.sent.total();
        cum["user:" + u.user + ":received"] += u.received.total();
    }
    // A class's subject names the interface: summed over interfaces a forwarded packet would
    // count twice (lan ingress, wan egress). Kept by the class's stable id (a renamed class
    // continues, its traffic is not added again under the new name), recorded under its name.
    labels_.clear();
    for (const auto& [key, t] : c.classes()) {
        const std::string where =
            "@" + t.interface + ":" + std::string(to_string(static_cast<Direction>(t.dir)));
        const std::string id = "class#" + std::to_string(t.id) + where;
        cum[id] = t.counts.total();
        labels_[id] = "class:" + t.name + where;
    }
    std::map<std::string, Counts> agg = finished_flows_;
    for (const auto& f : c.flows()) {
        const std::string& iface = c.name_of(f.key.ifindex);
        if (!iface.empty())
            agg[flow_aggregate(f, iface)] += f.counts;
    }
    for (const auto& [k, v] : agg)
        cum[k] = flowagg_[k].observe_parts(v);
    return cum;
}

void HistoryFeed::feed(const Collector& c, int64_t now_us) {
    auto cum = cumulative(c);
    if (have_last_)
        for (const auto& [subject, total] : cum) {
            auto it = last_.find(subject);
            const Counts delta = it == last_.end() ? total : delta_since(total, it->second);
            if (delta == Counts{})
                continue;
            auto label = labels_.find(subject);
            history_.add(label == labels_.end() ? subject : label->second, delta, now_us);
        }
    last_ = std::move(cum);
    have_last_ = true;
}

nlohmann::json HistoryFeed::to_json() const {
    nlohmann::json last = nlohmann::json::object(), finished = nlohmann::json::object(),
                   agg = nlohmann::json::object();
    for (const auto& [k, v] : last_)
        last[k] = nettally::to_json(v);
    for (const auto& [k, v] : finished_flows_)
        finished[k] = nettally::to_json(v);
    for (const auto& [k, v] : flowagg_)
        agg[k] = v.to_json();
    return {{"history", history_.to_json()}, {"last", last}, {"finished_flows", finished}, {"flowagg", agg}};
}

void HistoryFeed::restore(const nlohmann::json& j, const PeriodSpec& spec, bool same_counters) {
    History h = History::from_json(j.at("history"), spec);
    std::map<std::string, Counts> last, finished;
    std::map<std::string, MonotonicCounts> agg;
    for (const auto& [k, v] : j.at("last").items())
        last[k] = counts_from_json(v);
    // An aggregate's reading is its finished flows plus its live ones. With the same flow
    // map both are as saved (plus growth) and the aggregate continues exactly. With a new
    // one the live flows are gone and the finished ones are in the saved total already: the
    // reading starts again from zero on top of that total.
    if (same_counters)
        for (const auto& [k, v] : j.at("finished_flows").items())
            finished[k] = counts_from_json(v);
    for (const auto& [k, v] : j.at("flowagg").items())
        agg[k].restore(v, same_counters);
    history_ = std::move(h);
    last_ = std::move(last);
    finished_flows_ = std::move(finished);
    flowagg_ = std::move(agg);
    have_last_ = true;
}

} // namespace nettally
