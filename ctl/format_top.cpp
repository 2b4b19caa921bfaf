// See format_top.h.
#include "format_top.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

namespace nettally::ctl {
namespace {

using FlowKey = std::tuple<std::string, std::string, std::uint8_t, std::string, std::uint16_t, std::string,
                           std::uint16_t>;

FlowKey key_of(const FlowRow& r) {
    return {r.interface, r.direction, r.proto, r.src, r.sport, r.dst, r.dport};
}

std::uint64_t layer_of(const Counters& c, std::string_view layer) {
    return layer == "l3" ? c.l3 : layer == "l4" ? c.l4 : layer == "payload" ? c.payload : c.l2;
}

// Counters grow; one that went down was reset in between (a restart without state): all new.
double grown(std::uint64_t after, std::uint64_t before) {
    return static_cast<double>(after >= before ? after - before : after);
}

Rate rate(const Counters& after, const Counters& before, std::string_view layer, double seconds) {
    return {grown(after.packets, before.packets) / seconds,
            grown(layer_of(after, layer), layer_of(before, layer)) / seconds};
}

double weight(const Rate& r, bool by_packets) {
    return by_packets ? r.packets : r.bytes;
}

Json rate_json(const Rate& r) {
    return Json{{"packets_per_s", r.packets}, {"bytes_per_s", r.bytes}};
}

std::string cut(std::string line, std::size_t width) {
    if (width > 0 && line.size() > width)
        line.resize(width);
    return line;
}

std::string flow_text(const FlowRow& r) {
    const bool icmp = r.proto == 1 || r.proto == 58;
    const std::string dport =
        icmp ? std::to_string(r.dport >> 8) + "/" + std::to_string(r.dport & 0xFF) : std::to_string(r.dport);
    return r.interface + " " + r.direction + " " + proto_name(r.proto) + " " + r.src +
           (icmp ? "" : ":" + std::to_string(r.sport)) + " > " + r.dst + (icmp ? " " : ":") + dport;
}

void hosts_of(const TopReading& before, const TopReading& after, TopFrame& f) {
    std::map<std::tuple<std::string, std::string, std::string>, const HostRow*> old;
    for (const auto& h : before.hosts)
        old[{h.interface, h.mac, h.ip}] = &h;
    const HostRow zero;
    for (const auto& h : after.hosts) {
        const auto it = old.find({h.interface, h.mac, h.ip});
        const HostRow& b = it == old.end() ? zero : *it->second;
        TopHost t{h.interface, h.mac, h.ip, rate(h.sent, b.sent, f.layer, f.seconds),
                  rate(h.received, b.received, f.layer, f.seconds)};
        if (t.sent.packets + t.received.packets > 0)
            f.hosts.push_back(std::move(t));
    }
    std::stable_sort(f.hosts.begin(), f.hosts.end(), [&](const TopHost& a, const TopHost& b) {
        return weight(a.sent, f.by_packets) + weight(a.received, f.by_packets) >
               weight(b.sent, f.by_packets) + weight(b.received, f.by_packets);
    });
}

void flows_of(const TopReading& before, const TopReading& after, TopFrame& f) {
    std::map<FlowKey, const Counters*> old;
    for (const auto& r : before.flows)
        old[key_of(r)] = &r.counters;
    const Counters zero;
    for (const auto& r : after.flows) {
        const auto it = old.find(key_of(r));
        TopFlow t{r, rate(r.counters, it == old.end() ? zero : *it->second, f.layer, f.seconds)};
        if (t.rate.packets > 0)
            f.flows.push_back(std::move(t));
    }
    std::stable_sort(f.flows.begin(), f.flows.end(), [&](const TopFlow& a, const TopFlow& b) {
        return weight(a.rate, f.by_packets) > weight(b.rate, f.by_packets);
    });
}

} // namespace

bool top_sort_key(std::string_view key) {
    return key == "packets" || key == "l2" || key == "l3" || key == "l4" || key == "payload";
}

TopFrame top_frame(const TopReading& before, const TopReading& after, std::string_view sort) {
    TopFrame f;
    f.seconds = static_cast<double>(after.poll_us - before.poll_us) / 1e6;
    f.by_packets = sort == "packets";
    f.layer = f.by_packets ? "l2" : std::string(sort);
    std::map<std::string, const InterfaceRow*> old;
    for (const auto& i : before.interfaces)
        old[i.name] = &i;
    const InterfaceRow zero;
    for (const auto& i : after.interfaces) {
        const auto it = old.find(i.name);
        const InterfaceRow& b = it == old.end() ? zero : *it->second;
        f.interfaces.push_back({i.name, rate(i.ingress, b.ingress, f.layer, f.seconds),
                                rate(i.egress, b.egress, f.layer, f.seconds)});
    }
    hosts_of(before, after, f);
    flows_of(before, after, f);
    return f;
}

std::string bit_rate(double bytes_per_s) {
    static constexpr const char* kUnits[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
    double v = bytes_per_s * 8;
    std::size_t u = 0;
    while (v >= 1000 && u + 1 < std::size(kUnits)) {
        v /= 1000;
        u++;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[u]);
    return buf;
}

std::string packet_rate(double per_s) {
    char buf[32];
    if (per_s >= 1000)
        std::snprintf(buf, sizeof buf, "%.1f kpkt/s", per_s / 1000);
    else
        std::snprintf(buf, sizeof buf, "%.0f pkt/s", per_s);
    return buf;
}

Json top_json(const TopFrame& f, std::size_t max_rows) {
    Json ifaces = Json::array(), hosts = Json::array(), flows = Json::array();
    for (const auto& i : f.interfaces)
        ifaces.push_back(
            {{"name", i.name}, {"ingress", rate_json(i.ingress)}, {"egress", rate_json(i.egress)}});
    for (std::size_t n = 0; n < f.hosts.size() && n < max_rows; n++) {
        const TopHost& h = f.hosts[n];
        hosts.push_back({{"interface", h.interface},
                         {"mac", h.mac},
                         {"ip", h.ip},
                         {"sent", rate_json(h.sent)},
                         {"received", rate_json(h.received)}});
    }
    for (std::size_t n = 0; n < f.flows.size() && n < max_rows; n++) {
        Json j = flows_json({f.flows[n].flow})["flows"][0];
        j["rate"] = rate_json(f.flows[n].rate);
        flows.push_back(std::move(j));
    }
    return Json{{"interval_s", f.seconds},
                {"layer", f.layer},
                {"interfaces", ifaces},
                {"hosts", hosts},
                {"flows", flows}};
}

std::string top_text(const TopFrame& f, std::size_t width, std::size_t height, std::size_t max_rows) {
    std::vector<std::string> lines;
    char head[160];
    std::snprintf(head, sizeof head, "nettally top: rates over %.2f s, bytes at %s, sorted by %s; q quits",
                  f.seconds, f.layer.c_str(), f.by_packets ? "packets" : f.layer.c_str());
    lines.push_back(head);
    std::vector<std::vector<std::string>> rows;
    for (const auto& i : f.interfaces)
        rows.push_back({i.name, bit_rate(i.ingress.bytes), packet_rate(i.ingress.packets),
                        bit_rate(i.egress.bytes), packet_rate(i.egress.packets)});
    std::istringstream ifaces(render_table({{"INTERFACE"},
                                            {"IN", Align::Right},
                                            {"IN PKTS", Align::Right},
                                            {"OUT", Align::Right},
                                            {"OUT PKTS", Align::Right}},
                                           rows));
    for (std::string l; std::getline(ifaces, l);)
        lines.push_back(l);
    // What is left is shared by hosts and flows, a header line each.
    const std::size_t left =
        height == 0 ? 2 * max_rows + 2 : (height > lines.size() + 2 ? height - lines.size() : 0);
    const std::size_t nhosts =
        std::min({f.hosts.size(), max_rows, left >= 2 ? (left - 2) / 2 : std::size_t{0}});
    const std::size_t nflows =
        std::min({f.flows.size(), max_rows, left >= 2 + nhosts ? left - 2 - nhosts : 0});
    rows.clear();
    for (std::size_t n = 0; n < nhosts; n++) {
        const TopHost& h = f.hosts[n];
        rows.push_back({h.ip, h.mac, h.interface, bit_rate(h.sent.bytes), bit_rate(h.received.bytes)});
    }
    std::istringstream hosts(render_table(
        {{"HOST"}, {"MAC"}, {"IFACE"}, {"SENT", Align::Right}, {"RECEIVED", Align::Right}}, rows));
    for (std::string l; std::getline(hosts, l);)
        lines.push_back(l);
    rows.clear();
    for (std::size_t n = 0; n < nflows; n++)
        rows.push_back({flow_text(f.flows[n].flow), bit_rate(f.flows[n].rate.bytes),
                        packet_rate(f.flows[n].rate.packets)});
    std::istringstream flows(render_table({{"FLOW"}, {"RATE", Align::Right}, {"PKTS", Align::Right}}, rows));
    for (std::string l; std::getline(flows, l);)
        lines.push_back(l);
    std::string out;
    for (std::size_t n = 0; n < lines.size() && (height == 0 || n < height); n++)
        out += cut(lines[n], width) + "\n";
    return out;
}

} // namespace nettally::ctl
