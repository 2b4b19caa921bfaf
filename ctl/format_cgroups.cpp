// cgroups (ListCgroups): JSON shapes, flat or nested, and the table, flat or drawn as a tree.
#include "format.h"

#include <algorithm>

namespace nettally::ctl {

Json counters4_json(const Counters4& c) {
    return Json{{"packets", c.packets}, {"l2", nullptr}, {"l3", c.l3}, {"l4", c.l4}, {"payload", c.payload}};
}

namespace {

Json cgroup_json(const CgroupEntry& r) {
    return Json{{"path", r.path},
                {"unit", r.unit},
                {"ingress", counters4_json(r.ingress)},
                {"egress", counters4_json(r.egress)},
                {"self", Json{{"ingress", counters4_json(r.self_ingress)},
                              {"egress", counters4_json(r.self_egress)}}},
                {"gone", r.gone}};
}

// "/a/b" is below "/a"; everything is below "/".
bool below(std::string_view path, std::string_view parent) {
    if (parent == "/")
        return path.size() > 1 && path[0] == '/';
    return path.size() > parent.size() && path.substr(0, parent.size()) == parent &&
           path[parent.size()] == '/';
}

// For each row, the index of its nearest listed ancestor (rows come parents first), or -1.
std::vector<long> tree_parents(const std::vector<CgroupEntry>& rows) {
    std::vector<long> parent(rows.size(), -1);
    std::vector<std::size_t> stack;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        while (!stack.empty() && !below(rows[i].path, rows[stack.back()].path))
            stack.pop_back();
        parent[i] = stack.empty() ? -1 : static_cast<long>(stack.back());
        stack.push_back(i);
    }
    return parent;
}

std::string last_component(const std::string& path) {
    const auto slash = path.rfind('/');
    return path == "/" || slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

Json cgroups_json(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree) {
    Json list = Json::array();
    if (!tree) {
        for (const auto& r : rows)
            list.push_back(cgroup_json(r));
    } else {
        const auto parent = tree_parents(rows);
        std::vector<Json> nodes;
        nodes.reserve(rows.size());
        for (const auto& r : rows) {
            nodes.push_back(cgroup_json(r));
            nodes.back()["children"] = Json::array();
        }
        // Children come after their parent: attach from the end so every subtree is complete
        // before it is moved into its parent, then restore file order.
        for (std::size_t k = rows.size(); k-- > 0;) {
            if (parent[k] >= 0) {
                auto& kids = nodes[static_cast<std::size_t>(parent[k])]["children"];
                kids.insert(kids.begin(), std::move(nodes[k]));
            }
        }
        for (std::size_t i = 0; i < rows.size(); ++i)
            if (parent[i] < 0)
                list.push_back(std::move(nodes[i]));
    }
    return Json{{"cgroups", std::move(list)}, {"buckets", object_json(buckets, counters4_json)}};
}

std::string cgroups_text(const std::vector<CgroupEntry>& rows, const CgroupBuckets& buckets, bool tree) {
    const std::vector<Column> cols = {{tree ? "CGROUP" : "PATH"},
                                      {"UNIT"},
                                      right("IN PKTS"),
                                      right("IN L3"),
                                      right("IN PAYLOAD"),
                                      right("OUT PKTS"),
                                      right("OUT L3"),
                                      right("OUT PAYLOAD"),
                                      {"STATE"}};
    std::vector<std::string> names(rows.size());
    if (!tree) {
        for (std::size_t i = 0; i < rows.size(); ++i)
            names[i] = rows[i].path;
    } else {
        // systemd-cgls style: "├─ " before a child that has later siblings, "└─ " before the last
        // one, and "│  " / "   " under them for the deeper levels.
        const auto parent = tree_parents(rows);
        std::vector<bool> last(rows.size(), true);
        for (std::size_t i = 0; i < rows.size(); ++i)
            for (std::size_t j = i + 1; j < rows.size(); ++j)
                if (parent[j] == parent[i]) {
                    last[i] = false;
                    break;
                }
        for (std::size_t i = 0; i < rows.size(); ++i) {
            std::string prefix;
            for (long a = parent[i]; a >= 0 && parent[static_cast<std::size_t>(a)] >= 0;
                 a = parent[static_cast<std::size_t>(a)])
                prefix.insert(0, last[static_cast<std::size_t>(a)] ? "   " : "│  ");
            if (parent[i] >= 0)
                prefix += last[i] ? "└─ " : "├─ ";
            names[i] = prefix + (parent[i] >= 0 ? last_component(rows[i].path) : rows[i].path);
        }
    }
    std::vector<std::vector<std::string>> cells;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        cells.push_back({names[i], r.unit.empty() ? "-" : r.unit, std::to_string(r.ingress.packets),
                         human_bytes(r.ingress.l3), human_bytes(r.ingress.payload),
                         std::to_string(r.egress.packets), human_bytes(r.egress.l3),
                         human_bytes(r.egress.payload), r.gone ? "gone" : ""});
    }
    std::string out = render_table(cols, cells);

    const std::vector<Column> bucket_cols = {{"DIR"},     {"BUCKET"},  right("PACKETS"),
                                             right("L3"), right("L4"), right("PAYLOAD")};
    std::vector<std::vector<std::string>> bucket_cells;
    for (const auto& [key, c] : buckets) {
        if (c == Counters4{})
            continue;
        const auto dot = key.find('.');
        bucket_cells.push_back({dot == std::string::npos ? "-" : key.substr(0, dot),
                                dot == std::string::npos ? key : key.substr(dot + 1),
                                std::to_string(c.packets), human_bytes(c.l3), human_bytes(c.l4),
                                human_bytes(c.payload)});
    }
    if (!bucket_cells.empty())
        out += "\nNot in any cgroup row (non-zero buckets):\n" + render_table(bucket_cols, bucket_cells);
    return out;
}

} // namespace nettally::ctl
