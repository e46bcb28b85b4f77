// Statistics of latency samples: percentiles, mean ± stddev, and each namespace's marginal cost.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "drover/spawn/namespaces.hpp"

namespace drover::bench {

/// Summary of a set of samples in nanoseconds. A value type; n == 0 means no data.
struct summary {
    std::size_t n = 0;
    double p50 = 0, p90 = 0, p99 = 0, max = 0, min = 0, mean = 0, stddev = 0;
    std::size_t outliers = 0;  ///< samples beyond Tukey's fences (1.5 IQR outside the quartiles)
    bool bimodal = false;      ///< two well-separated clusters (see looks_bimodal)

    /// Coefficient of variation, stddev ÷ mean (0 without data).
    [[nodiscard]] double cv() const noexcept { return mean > 0 ? stddev / mean : 0; }
    friend bool operator==(const summary&, const summary&) = default;
};

/// A confidence interval; low == high == 0 when there was no data.
struct interval {
    double low = 0, high = 0;
    friend bool operator==(const interval&, const interval&) = default;
};

/// The q-quantile (0 <= q <= 1) of sorted data, linear interpolation between closest ranks
/// (the "R-7" rule: position q*(n-1)). 0 for empty data.
double quantile_sorted(std::span<const double> sorted, double q) noexcept;

/// Whether sorted data falls into two clusters: the best split into two groups (least
/// within-group variance) leaves at least a tenth of the samples on each side and the groups
/// are separated by Ashman's D > 4 (D = √2·|μ1 − μ2| ÷ √(σ1² + σ2²)). D > 2 is the usual test
/// for two normal modes, but the best split of one uniform block already gives D = √12 ≈ 3.46
/// and of one normal 2.65; 4 flags only clusters with a clear gap. Needs 20 samples.
bool looks_bimodal(std::span<const double> sorted) noexcept;

/// 95 % percentile-bootstrap interval of p50(a) ÷ p50(b), or of p50(a) alone when `b` is
/// empty: `resamples` resamplings with replacement, seeded (the same data and seed give the
/// same interval).
interval bootstrap_p50_ratio(std::span<const std::int64_t> a, std::span<const std::int64_t> b,
                             std::uint64_t seed, int resamples = 1000);

/// Summarizes `samples` (any order). stddev is the sample standard deviation (n-1).
summary summarize(std::vector<double> samples);
summary summarize(std::span<const std::int64_t> samples);

/// One namespace's marginal cost: cost(S) − cost(S without it), over every measured S that
/// contains it and whose S-without-it was measured too.
struct marginal {
    ns what = ns::user;
    std::optional<double> over_none;  ///< cost({what}) − cost({}) if both were measured
    std::size_t pairs = 0;            ///< how many (S, S−what) pairs were measured
    double median = 0, min = 0, max = 0;
    friend bool operator==(const marginal&, const marginal&) = default;
};

/// Marginal costs from a cost per combination (typically the p50 of spawn→reap).
/// Namespaces without a single measured pair are left out.
std::vector<marginal> marginal_costs(const std::map<std::uint8_t, double>& cost_by_bits);

/// For one combination: what each of its members adds, cost(S) − cost(S − n), where S − n
/// was measured. Keyed by namespace.
std::map<ns, double> marginal_within(namespace_set s,
                                     const std::map<std::uint8_t, double>& cost_by_bits);

/// p50 of the samples of the first and of the last tenth (in the order given): how latency
/// drifted over a sustained run. Needs at least 10 samples (else both are the overall p50).
std::pair<double, double> decile_drift(std::span<const double> in_order);

}  // namespace drover::bench
