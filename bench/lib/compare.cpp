// Comparing bench runs: per combination, each run's p50 against the first run's, with the
// runs' bootstrap intervals combined into a verdict.
#include "bench/compare.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <sstream>

#include "bench/report.hpp"
#include "bench/text.hpp"

namespace drover::bench {

namespace {

const combo_result* find(const bench_report& r, namespace_set s) {
    for (const combo_result& c : r.combos)
        if (c.set == s && c.drover.n) return &c;
    return nullptr;
}

std::string ratio_cell(const compared_cell& c) {
    return fmt::format("{:.2f}× [{:.2f}–{:.2f}]", c.vs_first, c.vs_first_ci.low, c.vs_first_ci.high);
}

std::string machine_line(const machine_info& m) {
    return m.date + ", kernel " + m.kernel + ", " + m.cpu_model + " (" + std::to_string(m.cores) +
           " CPUs), cgroup " + m.cgroup_mode + ", drover " + m.drover_version + " (" + m.drover_commit +
           "), clone " + (m.clone_method.empty() ? "–" : m.clone_method);
}

}  // namespace

comparison compare_reports(const std::vector<bench_report>& runs, const std::vector<std::string>& labels) {
    comparison c;
    c.labels = labels;
    for (const bench_report& r : runs) {
        c.machines.push_back(r.machine);
        c.workloads.push_back(r.params.workload);
    }
    if (runs.empty()) return c;
    for (std::size_t k = 1; k < runs.size(); ++k) {
        if (runs[k].params.workload != runs[0].params.workload)
            c.notes.push_back(labels[k] + " ran workload " + runs[k].params.workload + ", " + labels[0] +
                              " ran " + runs[0].params.workload + ": their times measure different work");
        if (!runs[k].warnings.empty())
            c.notes.push_back(labels[k] + " carries " + std::to_string(runs[k].warnings.size()) +
                              " noise warning(s): " + runs[k].warnings.front());
    }
    if (!runs[0].warnings.empty())
        c.notes.push_back(labels[0] + " carries " + std::to_string(runs[0].warnings.size()) +
                          " noise warning(s): " + runs[0].warnings.front());
    for (const combo_result& base : runs[0].combos) {
        if (!base.drover.n) continue;
        compared_row row;
        row.set = base.set;
        for (const bench_report& r : runs) {
            const combo_result* x = find(r, base.set);
            if (!x) {
                row.cells.emplace_back();
                continue;
            }
            compared_cell cell;
            cell.p50 = x->drover.p50;
            cell.p50_ci = x->drover_p50_ci;
            cell.floor_ratio = x->ratio();
            if (&r != &runs[0]) {
                cell.vs_first = x->drover.p50 / base.drover.p50;
                const interval& a = base.drover_p50_ci;
                const interval& b = x->drover_p50_ci;
                if (a.low > 0 && a.high > 0 && b.low > 0)
                    cell.vs_first_ci = {b.low / a.high, b.high / a.low};
                else
                    cell.vs_first_ci = {cell.vs_first, cell.vs_first};
                cell.verdict = cell.vs_first_ci.high < 1  ? "faster"
                               : cell.vs_first_ci.low > 1 ? "slower"
                                                          : "no difference";
            }
            row.cells.push_back(cell);
        }
        c.rows.push_back(std::move(row));
    }
    std::stable_sort(c.rows.begin(), c.rows.end(), [](const compared_row& a, const compared_row& b) {
        return a.cells[0]->p50 < b.cells[0]->p50;
    });
    return c;
}

std::string format_comparison_table(const comparison& c) {
    std::ostringstream o;
    o << "drover bench compare — drover's spawn→reap p50 per run, each against " << c.labels.at(0) << "\n";
    for (std::size_t k = 0; k < c.labels.size(); ++k)
        o << "  [" << k + 1 << "] " << c.labels[k] << ": " << machine_line(c.machines[k]) << ", workload "
          << c.workloads[k] << "\n";
    o << "\n" << pad("namespaces", 30, false);
    for (std::size_t k = 0; k < c.labels.size(); ++k) {
        o << pad("[" + std::to_string(k + 1) + "] p50", 12) << pad("÷floor", 8);
        if (k) o << pad("÷[1] [95% CI]", 22) << pad("", 15);
    }
    o << "\n";
    for (const compared_row& r : c.rows) {
        o << pad(r.set.str(), 30, false);
        for (std::size_t k = 0; k < r.cells.size(); ++k) {
            if (!r.cells[k]) {
                o << pad("–", 12) << pad("", 8);
                if (k) o << pad("not measured", 22) << pad("", 15);
                continue;
            }
            const compared_cell& x = *r.cells[k];
            o << pad(human_ns(x.p50), 12) << pad(x.floor_ratio > 0 ? fmt::format("{:.2f}×", x.floor_ratio) : "–", 8);
            if (k) o << pad(ratio_cell(x), 22) << "  " << pad(x.verdict, 13, false);
        }
        o << "\n";
    }
    o << "\nfaster/slower: the interval of the p50 ratio lies wholly below/above 1 (intervals from "
         "each run's bootstrap); otherwise no difference.\n";
    for (const std::string& n : c.notes) o << "note: " << n << "\n";
    return o.str();
}

std::string format_comparison_markdown(const comparison& c) {
    std::ostringstream o;
    o << "Runs compared (each against the first):\n\n";
    for (std::size_t k = 0; k < c.labels.size(); ++k)
        o << k + 1 << ". `" << c.labels[k] << "`: " << machine_line(c.machines[k]) << ", workload `"
          << c.workloads[k] << "`\n";
    o << "\n| namespaces |";
    for (std::size_t k = 0; k < c.labels.size(); ++k) {
        o << " [" << k + 1 << "] p50 | [" << k + 1 << "] ÷ floor |";
        if (k) o << " [" << k + 1 << "] ÷ [1] (95 % CI) | verdict |";
    }
    o << "\n|---|";
    for (std::size_t k = 0; k < c.labels.size(); ++k) o << (k ? "---:|---:|---:|---|" : "---:|---:|");
    o << "\n";
    for (const compared_row& r : c.rows) {
        o << "| " << r.set.str() << " |";
        for (std::size_t k = 0; k < r.cells.size(); ++k) {
            if (!r.cells[k]) {
                o << (k ? " – | – | not measured | |" : " – | – |");
                continue;
            }
            const compared_cell& x = *r.cells[k];
            o << " " << human_ns(x.p50) << " | " << (x.floor_ratio > 0 ? fmt::format("{:.2f}×", x.floor_ratio) : "–")
              << " |";
            if (k) o << " " << ratio_cell(x) << " | " << x.verdict << " |";
        }
        o << "\n";
    }
    if (!c.notes.empty()) {
        o << "\n";
        for (const std::string& n : c.notes) o << "- " << n << "\n";
    }
    return o.str();
}

std::string format_comparison_svg(const comparison& c) {
    constexpr const char* colors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"};
    constexpr double label_w = 260, plot_w = 620, left = 10, row_h = 22, top = 90;
    const double x0 = left + label_w;
    // A log axis symmetric around 1, wide enough for every interval.
    double span = 1.1;
    for (const compared_row& r : c.rows)
        for (const auto& cell : r.cells)
            if (cell && cell->vs_first > 0)
                span = std::max({span, cell->vs_first_ci.high, 1 / std::max(cell->vs_first_ci.low, 1e-3)});
    span = std::min(span, 100.0);
    const double lmax = std::log(span);
    auto xpos = [&](double ratio) {
        double l = std::clamp(std::log(std::max(ratio, 1e-3)), -lmax, lmax);
        return x0 + plot_w / 2 + l / lmax * plot_w / 2;
    };
    const std::size_t later = c.labels.size() > 1 ? c.labels.size() - 1 : 1;
    const double height = top + static_cast<double>(c.rows.size()) * row_h * static_cast<double>(later) + 70;
    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << x0 + plot_w + 40 << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    o << "<text x=\"" << left << "\" y=\"20\" font-size=\"15\" font-weight=\"bold\">drover spawn→reap p50, each run ÷ "
      << esc(c.labels.at(0)) << " (95 % interval; left of 1: faster)</text>\n";
    // Legend: one colour per later run.
    for (std::size_t k = 1; k < c.labels.size(); ++k) {
        double y = 36 + static_cast<double>(k - 1) * 16;
        o << "<rect x=\"" << left << "\" y=\"" << y - 10 << "\" width=\"12\" height=\"12\" fill=\""
          << colors[(k - 1) % std::size(colors)] << "\"/><text x=\"" << left + 18 << "\" y=\"" << y << "\">["
          << k + 1 << "] " << esc(c.labels[k]) << "</text>\n";
    }
    auto axis = [&](double y, bool labels_above) {
        o << "<line x1=\"" << x0 << "\" y1=\"" << y << "\" x2=\"" << x0 + plot_w << "\" y2=\"" << y
          << "\" stroke=\"#333\"/>\n";
        for (double t : {1 / span, std::sqrt(1 / span), 1.0, std::sqrt(span), span}) {
            double x = xpos(t);
            o << "<line x1=\"" << x << "\" y1=\"" << y - 3 << "\" x2=\"" << x << "\" y2=\"" << y + 3
              << "\" stroke=\"#333\"/><text x=\"" << x << "\" y=\"" << (labels_above ? y - 6 : y + 15)
              << "\" text-anchor=\"middle\">" << fmt::format("{:.2f}×", t) << "</text>\n";
        }
    };
    double y = top;
    axis(y - 8, true);
    o << "<line x1=\"" << xpos(1) << "\" y1=\"" << y - 8 << "\" x2=\"" << xpos(1) << "\" y2=\""
      << top + static_cast<double>(c.rows.size() * later) * row_h << "\" stroke=\"#999\" stroke-dasharray=\"3,3\"/>\n";
    for (const compared_row& r : c.rows) {
        o << "<text x=\"" << left << "\" y=\"" << y + 14 << "\">" << esc(r.set.str()) << "</text>\n";
        for (std::size_t k = 1; k < r.cells.size(); ++k) {
            const char* col = colors[(k - 1) % std::size(colors)];
            double cy = y + row_h / 2;
            if (r.cells[k]) {
                const compared_cell& x = *r.cells[k];
                o << "<line x1=\"" << xpos(x.vs_first_ci.low) << "\" y1=\"" << cy << "\" x2=\""
                  << xpos(x.vs_first_ci.high) << "\" y2=\"" << cy << "\" stroke=\"" << col
                  << "\" stroke-width=\"2\"/><circle cx=\"" << xpos(x.vs_first) << "\" cy=\"" << cy
                  << "\" r=\"4\" fill=\"" << col << "\"/><text x=\"" << xpos(x.vs_first_ci.high) + 6 << "\" y=\""
                  << cy + 4 << "\">" << fmt::format("{:.2f}×", x.vs_first) << " " << x.verdict << "</text>\n";
            } else {
                o << "<text x=\"" << xpos(1) + 6 << "\" y=\"" << cy + 4 << "\" fill=\"#999\">not measured</text>\n";
            }
            y += row_h;
        }
    }
    axis(y + 8, false);
    o << "</svg>\n";
    return o.str();
}

}  // namespace drover::bench
