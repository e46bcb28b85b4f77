// `drover bench compare`: the same combinations from several runs (two kernels, two machines,
// two drover versions) side by side, each run against the first, with intervals and a verdict.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bench/results.hpp"

namespace drover::bench {

/// One run's figures for one combination.
struct compared_cell {
    double p50 = 0;          ///< drover's spawn→reap p50 (ns)
    interval p50_ci;         ///< its 95 % bootstrap interval
    double floor_ratio = 0;  ///< drover ÷ floor in that run (the machine's own floor)
    /// Against the first run: p50 ÷ first p50, and the interval from both runs' intervals
    /// (low ÷ high, high ÷ low: conservative, the runs are independent).
    double vs_first = 0;
    interval vs_first_ci;
    /// "faster", "slower" or "no difference" (the interval contains 1); "" for the first run.
    std::string verdict;
};

struct compared_row {
    namespace_set set;
    std::vector<std::optional<compared_cell>> cells;  ///< per run; nullopt: not measured there
};

struct comparison {
    std::vector<std::string> labels;  ///< per run: the file name given
    std::vector<machine_info> machines;
    std::vector<std::string> workloads;
    std::vector<compared_row> rows;  ///< every combination measured in the first run
    std::vector<std::string> notes;  ///< differences that make runs less comparable
};

/// Compares `runs` (at least two) against the first.
comparison compare_reports(const std::vector<bench_report>& runs, const std::vector<std::string>& labels);

std::string format_comparison_table(const comparison& c);
std::string format_comparison_markdown(const comparison& c);
/// One chart: per combination, each later run's p50 ÷ the first's with its interval, on a
/// logarithmic axis around 1 (left: faster than the first run).
std::string format_comparison_svg(const comparison& c);

}  // namespace drover::bench
