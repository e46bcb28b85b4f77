// SVG charts, written by hand: p50 per combination split by each namespace's marginal cost
// (floor marked), the marginal cost of each namespace, a stacked per-stage breakdown, the
// peers, and sustained throughput against its floor. Readable on its own: every chart has a
// title, an axis sized to its bars, a legend (or named rows) and value labels.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <sstream>

#include "bench/report.hpp"
#include "bench/text.hpp"

namespace drover::bench {

namespace {

constexpr double width = 1180;
constexpr double label_w = 270;  // combination names
constexpr double plot_w = 660;   // bars
constexpr double left = 10;
constexpr double bar_x = left + label_w;

constexpr const char* ns_colors[ns_count] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1",
                                             "#edc948", "#e15759", "#76b7b2", "#9c755f"};
constexpr const char* base_color = "#bab0ac";
constexpr const char* stage_colors[stage_count] = {"#bab0ac", "#4e79a7", "#f28e2b", "#59a14f",
                                                   "#e15759", "#76b7b2", "#b07aa1"};

std::string num(double v) { return fmt::format("{:.1f}", v); }

// An axis from lo to hi in steps of 1, 2, 2.5 or 5 times a power of ten, at most six of
// them: the bars fill most of the plot (a 2.1 ms maximum gets a 2.5 ms axis, not 5 ms).
struct axis_range {
    double lo = 0, hi = 1, step = 0.2;
    double x(double v) const { return bar_x + plot_w * (v - lo) / (hi - lo); }
    double per_unit() const { return plot_w / (hi - lo); }
};

axis_range nice_axis(double lo, double hi) {
    lo = std::min(lo, 0.0);
    hi = std::max(hi, 0.0);
    if (!(hi - lo > 0) || !std::isfinite(hi - lo)) return {};
    const double p = std::pow(10.0, std::floor(std::log10((hi - lo) / 6)));
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
        const double step = m * p;
        const double a = std::floor(lo / step) * step, b = std::ceil(hi / step) * step;
        if ((b - a) / step <= 6.0 + 1e-9) return {a, b, step};
    }
    return {std::floor(lo / (20 * p)) * 20 * p, std::ceil(hi / (20 * p)) * 20 * p, 20 * p};
}

enum class ticks_at { below, above, both };

struct svg_out {
    std::ostringstream o;
    double y = 0;

    void text(double x, double ty, const std::string& s, const char* extra = "") {
        o << "<text x=\"" << num(x) << "\" y=\"" << num(ty) << "\" " << extra << ">" << esc(s)
          << "</text>\n";
    }
    void rect(double x, double ry, double w, double h, const char* fill,
              const std::string& title = {}) {
        if (w <= 0) return;
        o << "<rect x=\"" << num(x) << "\" y=\"" << num(ry) << "\" width=\"" << num(w)
          << "\" height=\"" << num(h) << "\" fill=\"" << fill << "\">";
        if (!title.empty()) o << "<title>" << esc(title) << "</title>";
        o << "</rect>\n";
    }
    void line(double x1, double y1, double x2, double y2, const char* stroke, double sw = 1,
              const char* dash = nullptr) {
        o << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2)
          << "\" y2=\"" << num(y2) << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(sw)
          << "\"";
        if (dash) o << " stroke-dasharray=\"" << dash << "\"";
        o << "/>\n";
    }
    // Vertical grid lines over `rows_h` of height and a tick label at every step of `a`:
    // below the rows, above them (the caller leaves 14 px), or both. `unit` goes in the label
    // column beside the ticks, for `tick` formats that write bare numbers.
    void axis(const axis_range& a, double top, double rows_h, ticks_at at = ticks_at::below,
              std::string (*tick)(double) = human_ns, const std::string& unit = {}) {
        const bool above = at != ticks_at::below, below = at != ticks_at::above;
        const int steps = static_cast<int>(std::lround((a.hi - a.lo) / a.step));
        for (int i = 0; i <= steps; ++i) {
            double v = a.lo + a.step * i;
            if (std::fabs(v) < a.step * 1e-6) v = 0;  // no "-0 ns" from rounding
            const double x = a.x(v);
            line(x, top, x, top + rows_h, v == 0 ? "#888" : "#ddd");
            if (above) text(x, top - 5, tick(v), "text-anchor=\"middle\" class=\"tick\"");
            if (below) text(x, top + rows_h + 14, tick(v), "text-anchor=\"middle\" class=\"tick\"");
        }
        if (unit.empty()) return;
        if (above) text(bar_x - 6, top - 5, unit, "text-anchor=\"end\" class=\"tick\"");
        if (below) text(bar_x - 6, top + rows_h + 14, unit, "text-anchor=\"end\" class=\"tick\"");
    }
    void title(const std::string& t, const std::string& sub) {
        y += 28;
        text(left, y, t, "class=\"title\"");
        y += 16;
        text(left, y, sub, "class=\"sub\"");
        y += 12;
    }
    void legend(const std::vector<std::pair<std::string, const char*>>& items) {
        double x = left;
        y += 4;
        for (const auto& [label, color] : items) {
            rect(x, y, 12, 12, color);
            text(x + 16, y + 10, label, "class=\"tick\"");
            x += 28 + 7.0 * static_cast<double>(label.size());
        }
        y += 22;
    }
};

std::vector<const combo_result*> measured_by_cost(const bench_report& r) {
    std::vector<const combo_result*> v;
    for (const combo_result& c : r.combos)
        if (c.drover.n) v.push_back(&c);
    std::stable_sort(v.begin(), v.end(), [](const combo_result* a, const combo_result* b) {
        return a->drover.p50 < b->drover.p50;
    });
    return v;
}

double row_height(std::size_t rows) {
    return rows > 64 ? 12 : 18;
}

// Taller than this, a chart's axis at one end is out of view from the other end's rows: the
// ticks go at both ends.
constexpr double long_chart_h = 240;

// Where a chart's top starts and where its ticks go: below the rows, or at both ends of a long
// chart (the labels above need 14 px).
struct chart_frame {
    double top;
    ticks_at at;
};

chart_frame frame_for(const svg_out& s, double rows_h) {
    if (rows_h > long_chart_h) return {s.y + 14, ticks_at::both};
    return {s.y, ticks_at::below};
}

void p50_chart(svg_out& s, const bench_report& r) {
    auto rows = measured_by_cost(r);
    if (rows.empty()) return;
    const combo_result* none = nullptr;
    for (const combo_result& c : r.combos)
        if (c.set.empty() && c.drover.n) none = &c;
    double median_marg[ns_count] = {};
    for (const marginal& m : r.marginals)
        median_marg[static_cast<int>(m.what)] = std::max(0.0, m.median);

    s.title(
        "spawn→reap p50 per namespace combination (" + r.params.workload + ")",
        "bar: drover p50, split into the no-namespace base and each member's share by its median "
        "marginal cost; black tick: raw floor p50; label: p50 and drover ÷ floor");
    std::vector<std::pair<std::string, const char*>> legend = {{"base (none)", base_color}};
    for (int i = 0; i < ns_count; ++i)
        legend.push_back({std::string(ns_name(static_cast<ns>(i))), ns_colors[i]});
    legend.push_back({"floor p50", "#000"});
    s.legend(legend);

    double max = 0;
    for (auto* c : rows) max = std::max({max, c->drover.p50, c->floor.p50});
    const axis_range a = nice_axis(0, max);
    const double h = row_height(rows.size());
    const double rows_h = h * static_cast<double>(rows.size());
    const auto [top, at] = frame_for(s, rows_h);
    s.axis(a, top, rows_h, at);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const combo_result& c = *rows[i];
        double y = top + h * static_cast<double>(i);
        s.text(bar_x - 6, y + h * 0.75, c.set.str(), "text-anchor=\"end\" class=\"lbl\"");
        double total = c.drover.p50;
        double base = none ? std::min(none->drover.p50, total) : 0;
        double share_sum = 0;
        for (int k = 0; k < ns_count; ++k)
            if (c.set.has(static_cast<ns>(k))) share_sum += median_marg[k];
        double x = bar_x;
        const double scale = a.per_unit();
        s.rect(x, y + 1, base * scale, h - 2, base_color,
               "base (no namespaces): " + human_ns(base));
        x += base * scale;
        double rest = total - base;
        for (int k = 0; k < ns_count; ++k) {
            auto n = static_cast<ns>(k);
            if (!c.set.has(n)) continue;
            double part = share_sum > 0 ? rest * median_marg[k] / share_sum
                                        : rest / std::max(1, c.set.size());
            std::string tip = std::string(ns_name(n)) + ": ~" + human_ns(part);
            if (auto it = c.marginal.find(n); it != c.marginal.end())
                tip += " (this set minus it: " + human_ns(it->second) + ")";
            s.rect(x, y + 1, part * scale, h - 2, ns_colors[k], tip);
            x += part * scale;
        }
        if (c.floor.n) {
            double fx = bar_x + c.floor.p50 * scale;
            s.line(fx, y, fx, y + h, "#000", 2);
        }
        std::string label = human_ns(total);
        if (c.ratio() > 0) label += fmt::format("  {:.2f}× floor", c.ratio());
        s.text(bar_x + std::max(total, c.floor.p50) * scale + 6, y + h * 0.75, label,
               "class=\"val\"");
    }
    s.y = top + rows_h + 22;
}

void marginal_chart(svg_out& s, const bench_report& r) {
    if (r.marginals.empty()) return;
    s.title("Marginal cost of each namespace",
            "cost(S) − cost(S without it), p50, over every measured pair S; bar: median, whisker: "
            "min…max, dot: added to no namespaces at all; left of 0: the set was faster with it "
            "(noise)");
    double lo = 0, hi = 0;
    for (const marginal& m : r.marginals) {
        lo = std::min({lo, m.min, m.median, m.over_none.value_or(0)});
        hi = std::max({hi, m.max, m.median, m.over_none.value_or(0)});
    }
    const axis_range a = nice_axis(lo, hi);
    const double h = 20;
    const double rows_h = h * static_cast<double>(r.marginals.size());
    const auto [top, at] = frame_for(s, rows_h);
    s.axis(a, top, rows_h, at);
    for (std::size_t i = 0; i < r.marginals.size(); ++i) {
        const marginal& m = r.marginals[i];
        int k = static_cast<int>(m.what);
        double y = top + h * static_cast<double>(i);
        s.text(bar_x - 6, y + 14, std::string(ns_name(m.what)),
               "text-anchor=\"end\" class=\"lbl\"");
        s.rect(a.x(std::min(0.0, m.median)), y + 3, std::fabs(m.median) * a.per_unit(), h - 6,
               ns_colors[k], std::string(ns_name(m.what)) + ": median " + human_ns(m.median));
        s.line(a.x(m.min), y + h / 2, a.x(m.max), y + h / 2, "#333", 1);
        if (m.over_none)
            s.o << "<circle cx=\"" << num(a.x(*m.over_none)) << "\" cy=\"" << num(y + h / 2)
                << "\" r=\"3.5\" fill=\"#000\"/>\n";
        const double right = std::max({m.max, m.median, m.over_none.value_or(m.max), 0.0});
        s.text(a.x(right) + 6, y + 14,
               "median " + human_ns(m.median) + "  (" + std::to_string(m.pairs) +
                   (m.pairs == 1 ? " pair)" : " pairs)"),
               "class=\"val\"");
    }
    s.y = top + rows_h + 22;
}

void stage_chart(svg_out& s, const bench_report& r) {
    auto rows = measured_by_cost(r);
    if (rows.empty()) return;
    s.title("Where the time goes: drover's stages, p50 of each, stacked",
            "prepare: drover before clone3 (pipes) and around; clone: clone3 in the parent; "
            "id_maps: uid/gid map writes; setup: the child's own setup; "
            "exec: execve until the parent saw it; run: to exit; reap: waitid");
    s.y -= 4;
    s.text(left, s.y + 12,
           "The stacked medians need not add up to the median of the whole (black tick, the "
           "first chart's bar): each stage's p50 may come from a different spawn.",
           "class=\"sub\"");
    s.y += 16;
    std::vector<std::pair<std::string, const char*>> legend;
    for (std::size_t k = 0; k < stage_count; ++k)
        legend.push_back({stage_names[k], stage_colors[k]});
    legend.push_back({"spawn→reap p50", "#000"});
    s.legend(legend);
    double max = 0;
    for (auto* c : rows) {
        double sum = 0;
        for (const summary& st : c->stages) sum += st.p50;
        max = std::max({max, sum, c->drover.p50});
    }
    const axis_range a = nice_axis(0, max);
    const double scale = a.per_unit();
    const double h = row_height(rows.size());
    const double rows_h = h * static_cast<double>(rows.size());
    const auto [top, at] = frame_for(s, rows_h);
    s.axis(a, top, rows_h, at);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const combo_result& c = *rows[i];
        double y = top + h * static_cast<double>(i);
        s.text(bar_x - 6, y + h * 0.75, c.set.str(), "text-anchor=\"end\" class=\"lbl\"");
        double x = bar_x;
        double sum = 0;
        for (std::size_t k = 0; k < stage_count; ++k) {
            double v = c.stages[k].p50;
            s.rect(x, y + 1, v * scale, h - 2, stage_colors[k],
                   std::string(stage_names[k]) + ": " + human_ns(v));
            x += v * scale;
            sum += v;
        }
        const double whole = a.x(c.drover.p50);
        s.line(whole, y, whole, y + h, "#000", 2);
        s.text(std::max(x, whole) + 6, y + h * 0.75,
               "sum " + human_ns(sum) + " · spawn→reap p50 " + human_ns(c.drover.p50),
               "class=\"val\"");
    }
    s.y = top + rows_h + 22;
}

void peers_chart(svg_out& s, const bench_report& r) {
    if (r.peers.empty()) return;
    s.title("The same sandbox (" + r.peer_set + ", /bin/true) started by each tool",
            "p50 spawn→reap, each peer spawned by drover without namespaces of its own");
    s.legend({{"drover", "#4e79a7"}, {"drover-warm (namespaces made ahead)", "#59a14f"},
              {"other tools", "#bab0ac"}});
    double max = 0;
    const peer_result* d = nullptr;
    for (const peer_result& p : r.peers) {
        if (p.ran && p.total.n) max = std::max(max, p.total.p50);
        if (p.name == "drover") d = &p;
    }
    const axis_range a = nice_axis(0, max);
    const double h = 22;
    const double rows_h = h * static_cast<double>(r.peers.size());
    const auto [top, at] = frame_for(s, rows_h);
    s.axis(a, top, rows_h, at);
    for (std::size_t i = 0; i < r.peers.size(); ++i) {
        const peer_result& p = r.peers[i];
        double y = top + h * static_cast<double>(i);
        s.text(bar_x - 6, y + 15, p.name, "text-anchor=\"end\" class=\"lbl\"");
        if (!p.ran || !p.total.n) {
            s.text(bar_x + 4, y + 15, "skipped: " + p.note, "class=\"val\"");
            continue;
        }
        double w = p.total.p50 * a.per_unit();
        const bool warm = p.name == "drover-warm";
        s.rect(bar_x, y + 3, w, h - 6, p.name == "drover" ? "#4e79a7" : warm ? "#59a14f" : "#bab0ac");
        std::string label = human_ns(p.total.p50);
        if (warm && d && d->total.n && p.total.p50 > 0)
            label += fmt::format("  ({:.1f}× faster than cold drover)", d->total.p50 / p.total.p50);
        else if (d && p.name != "drover" && d->total.n && d->total.p50 > 0)
            label += fmt::format("  (drover {:.1f}× faster)", p.total.p50 / d->total.p50);
        s.text(bar_x + w + 6, y + 15, label, "class=\"val\"");
    }
    s.y = top + rows_h + 22;
}

// Spawns/s as a tick label: "4000", "20k" (the unit is written once, beside the ticks).
std::string rate_tick(double v) {
    return v >= 10000 ? fmt::format("{:g}k", v / 1000) : fmt::format("{:g}", v);
}

void throughput_chart(svg_out& s, const bench_report& r) {
    if (r.throughput.empty()) return;
    const unsigned threads = r.params.spawn_threads;
    s.title(fmt::format("Sustained throughput ({}, {} s per point), {}", r.params.workload,
                        r.params.duration,
                        threads ? fmt::format("{} spawn thread{}", threads, threads == 1 ? "" : "s")
                                : "spawn threads not recorded"),
            "bars: spawns/s of drover and of the raw floor (min(c, 64) drover_floor processes, "
            "right after drover's point); left: drover ÷ floor (1.00× = the floor's rate)");
    // Colours no other mark of this chart uses: drover's is the peers chart's drover.
    constexpr const char* drover_color = "#4e79a7";
    constexpr const char* floor_color = "#79706e";
    s.legend({{"drover", drover_color}, {"floor", floor_color}});

    double max = 0;
    for (const throughput_result& t : r.throughput)
        max = std::max({max, t.per_second, t.floor_per_second});
    const axis_range a = nice_axis(0, max);
    const double scale = a.per_unit();
    const auto groups = static_cast<double>(r.throughput.size());
    const double h = row_height(2 * r.throughput.size());  // one bar
    const double group_h = 2 * h + 6;                      // drover, floor and a gap
    const double rows_h = group_h * groups;
    const bool long_chart = rows_h > long_chart_h;
    const double top = s.y + 14;  // the tick labels above
    s.axis(a, top, rows_h, long_chart ? ticks_at::both : ticks_at::above, rate_tick, "spawns/s");
    for (std::size_t i = 0; i < r.throughput.size(); ++i) {
        const throughput_result& t = r.throughput[i];
        const double y = top + group_h * static_cast<double>(i) + 3;
        const double fy = y + h;  // the floor's bar
        s.text(bar_x - 6, y + h * 0.75,
               t.set.str() + ", concurrency " + std::to_string(t.concurrency),
               "text-anchor=\"end\" class=\"lbl\"");
        std::size_t failed = 0;
        for (const auto& [why, n] : t.failures) failed += n;
        const double w = t.per_second * scale;
        s.rect(
            bar_x, y + 1, w, h - 2, drover_color,
            fmt::format("drover: {} spawns in {:.2f} s, {} failed", t.spawns, t.seconds, failed));
        s.text(bar_x + w + 6, y + h * 0.75, fmt::format("{:.0f}/s", t.per_second), "class=\"val\"");
        if (t.floor_method.empty()) {
            // No bar: an empty slot would read as a floor of 0/s.
            s.text(bar_x + 4, fy + h * 0.75,
                   "floor not measured: " +
                       (t.floor_note.empty() ? "no reason recorded" : t.floor_note),
                   "class=\"val\"");
            continue;
        }
        // The same marks as the table's, spelled out: the reader has no footnote here.
        std::string marks;
        if (t.floor_method == "fork") marks = "fork-style";
        if (t.floor_processes < t.concurrency)
            marks += (marks.empty() ? "" : ", ") + std::to_string(t.floor_processes) + " processes";
        const double fw = t.floor_per_second * scale;
        s.rect(bar_x, fy + 1, fw, h - 2, floor_color,
               fmt::format("floor ({}, {} process{}): {} spawns in {:.2f} s", t.floor_method,
                           t.floor_processes, t.floor_processes == 1 ? "" : "es", t.floor_spawns,
                           t.floor_seconds));
        s.text(
            bar_x + fw + 6, fy + h * 0.75,
            fmt::format("{:.0f}/s", t.floor_per_second) + (marks.empty() ? "" : " (" + marks + ")"),
            "class=\"val\"");
        if (t.floor_ratio() > 0)
            s.text(bar_x - 6, fy + h * 0.75, fmt::format("drover ÷ floor {:.2f}×", t.floor_ratio()),
                   "text-anchor=\"end\" class=\"val\"");
    }
    s.y = top + rows_h + (long_chart ? 22 : 8);
}

}  // namespace

std::string format_svg(const bench_report& r) {
    svg_out s;
    const machine_info& m = r.machine;
    s.y = 8;
    s.title("drover bench: namespace setup cost",
            m.date + " · kernel " + m.kernel + " · " + m.cpu_model + " (" +
                std::to_string(m.cores) + " cores) · drover " + m.drover_version + " (" +
                m.drover_commit + ") · " + std::to_string(r.params.count) +
                " spawns per combination");
    p50_chart(s, r);
    marginal_chart(s, r);
    stage_chart(s, r);
    peers_chart(s, r);
    throughput_chart(s, r);
    std::ostringstream out;
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(width) << "\" height=\""
        << num(s.y + 10) << "\" viewBox=\"0 0 " << num(width) << ' ' << num(s.y + 10) << "\">\n"
        << "<style>text{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;fill:#222}"
           ".title{font-size:16px;font-weight:bold}.sub{font-size:11px;fill:#555}"
           ".lbl{font-size:10px}.val{font-size:10px;fill:#333}.tick{font-size:10px;fill:#555}</"
           "style>\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
        << s.o.str() << "</svg>\n";
    return out.str();
}

}  // namespace drover::bench
