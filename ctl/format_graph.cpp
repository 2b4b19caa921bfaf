// See format_graph.h.
#include "format_graph.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace nettally::ctl {
namespace {

std::uint64_t largest(const std::vector<HistoryRow>& rows, std::string_view layer) {
    std::uint64_t max = 0;
    for (const auto& r : rows)
        for (const auto& [subject, c] : r.totals)
            max = std::max(max, figure(c, layer));
    return max;
}

std::string value_text(std::uint64_t v, std::string_view layer) {
    return layer == "packets" ? std::to_string(v) + " packets"
                              : std::to_string(v) + " B (" + human_bytes(v) + ")";
}

std::string xml_escape(std::string_view s) {
    std::string out;
    for (char ch : s) {
        switch (ch) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += ch;
        }
    }
    return out;
}

constexpr const char* kColours[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                    "#76b7b2", "#edc948", "#b07aa1"};

} // namespace

bool graph_layer(std::string_view layer) {
    return layer == "packets" || layer == "l2" || layer == "l3" || layer == "l4" || layer == "payload";
}

std::uint64_t figure(const Counters& c, std::string_view layer) {
    return layer == "packets"   ? c.packets
           : layer == "l3"      ? c.l3
           : layer == "l4"      ? c.l4
           : layer == "payload" ? c.payload
                                : c.l2;
}

std::string history_graph_text(const std::vector<HistoryRow>& rows, std::string_view layer,
                               std::size_t width) {
    const std::uint64_t max = largest(rows, layer);
    std::size_t label_w = 6, subject_w = 7;
    for (const auto& r : rows) {
        label_w = std::max(label_w, r.label.size());
        for (const auto& [subject, c] : r.totals)
            subject_w = std::max(subject_w, subject.size());
    }
    const std::size_t bar_w = width > label_w + subject_w + 40 ? width - label_w - subject_w - 36 : 10;
    std::ostringstream out;
    for (const auto& r : rows) {
        bool first = true;
        for (const auto& [subject, c] : r.totals) {
            const std::uint64_t v = figure(c, layer);
            const auto len =
                max == 0
                    ? std::size_t{0}
                    : static_cast<std::size_t>(std::llround(
                          static_cast<double>(bar_w) * static_cast<double>(v) / static_cast<double>(max)));
            std::string bar;
            for (std::size_t i = 0; i < len; i++)
                bar += "\u2588";
            out << std::string(first ? r.label : "")
                << std::string(label_w - (first ? r.label.size() : 0) + 2, ' ') << subject
                << std::string(subject_w - subject.size() + 2, ' ') << bar
                << std::string(bar_w - len + 2, ' ') << value_text(v, layer) << "\n";
            first = false;
        }
    }
    return out.str();
}

std::string history_graph_svg(const std::vector<HistoryRow>& rows, std::string_view layer,
                              std::string_view period) {
    std::set<std::string> subjects;
    for (const auto& r : rows)
        for (const auto& [s, c] : r.totals)
            subjects.insert(s);
    const std::vector<std::string> legend(subjects.begin(), subjects.end());
    const double bar_w = 18, gap = 14, plot_h = 240, left = 60, top = 40;
    const double group_w = static_cast<double>(std::max<std::size_t>(legend.size(), 1)) * bar_w + gap;
    const double width = left + static_cast<double>(std::max<std::size_t>(rows.size(), 1)) * group_w + 20;
    const double height = top + plot_h + 60 + 18 * static_cast<double>(legend.size());
    const std::uint64_t max = std::max<std::uint64_t>(largest(rows, layer), 1);
    std::ostringstream svg;
    svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\""
        << width << "\" height=\"" << height << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"" << left
        << "\" y=\"20\" font-size=\"14\">"
        << xml_escape(std::string("nettally: ") + std::string(layer) + " per " + std::string(period))
        << "</text>\n<line x1=\"" << left << "\" y1=\"" << top + plot_h << "\" x2=\"" << width - 10
        << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n<text x=\"4\" y=\"" << top + 4 << "\">"
        << xml_escape(layer == "packets" ? std::to_string(max) + " pkts" : human_bytes(max)) << "</text>\n";
    for (std::size_t i = 0; i < rows.size(); i++) {
        const double x0 = left + static_cast<double>(i) * group_w;
        for (std::size_t k = 0; k < legend.size(); k++) {
            const auto it = rows[i].totals.find(legend[k]);
            if (it == rows[i].totals.end())
                continue;
            const std::uint64_t v = figure(it->second, layer);
            const double h = plot_h * static_cast<double>(v) / static_cast<double>(max);
            svg << "<rect x=\"" << x0 + static_cast<double>(k) * bar_w << "\" y=\"" << top + plot_h - h
                << "\" width=\"" << bar_w - 2 << "\" height=\"" << h << "\" fill=\""
                << kColours[k % std::size(kColours)] << "\" data-period=\"" << xml_escape(rows[i].label)
                << "\" data-subject=\"" << xml_escape(legend[k]) << "\" data-value=\"" << v << "\"><title>"
                << xml_escape(rows[i].label + " " + legend[k] + ": " + value_text(v, layer))
                << "</title></rect>\n";
        }
        svg << "<text x=\"" << x0 << "\" y=\"" << top + plot_h + 14 << "\">" << xml_escape(rows[i].label)
            << "</text>\n";
    }
    for (std::size_t k = 0; k < legend.size(); k++) {
        const double y = top + plot_h + 34 + 18 * static_cast<double>(k);
        svg << "<rect x=\"" << left << "\" y=\"" << y - 10 << "\" width=\"12\" height=\"12\" fill=\""
            << kColours[k % std::size(kColours)] << "\"/><text x=\"" << left + 18 << "\" y=\"" << y << "\">"
            << xml_escape(legend[k]) << "</text>\n";
    }
    svg << "</svg>\n";
    return svg.str();
}

} // namespace nettally::ctl
