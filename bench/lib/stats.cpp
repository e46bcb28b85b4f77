// Percentiles, moments and marginal costs: plain arithmetic, tested against known data.
#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace drover::bench {

double quantile_sorted(std::span<const double> v, double q) noexcept {
    if (v.empty()) return 0;
    q = std::clamp(q, 0.0, 1.0);
    double pos = q * static_cast<double>(v.size() - 1);
    auto lo = static_cast<std::size_t>(std::floor(pos));
    std::size_t hi = std::min(lo + 1, v.size() - 1);
    double frac = pos - static_cast<double>(lo);
    return v[lo] + (v[hi] - v[lo]) * frac;
}

summary summarize(std::vector<double> v) {
    summary s;
    s.n = v.size();
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    s.p50 = quantile_sorted(v, 0.50);
    s.p90 = quantile_sorted(v, 0.90);
    s.p99 = quantile_sorted(v, 0.99);
    s.min = v.front();
    s.max = v.back();
    s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    if (v.size() > 1) {
        double sq = 0;
        for (double x : v) sq += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(sq / static_cast<double>(v.size() - 1));
    }
    const double q1 = quantile_sorted(v, 0.25), q3 = quantile_sorted(v, 0.75);
    const double lo = q1 - 1.5 * (q3 - q1), hi = q3 + 1.5 * (q3 - q1);
    s.outliers = static_cast<std::size_t>(
        std::count_if(v.begin(), v.end(), [&](double x) { return x < lo || x > hi; }));
    s.bimodal = looks_bimodal(v);
    return s;
}

bool looks_bimodal(std::span<const double> v) noexcept {
    const std::size_t n = v.size();
    if (n < 20) return false;
    // Prefix sums of x and x² give each split's group moments in O(1).
    std::vector<double> sum(n + 1, 0), sq(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) {
        sum[i + 1] = sum[i] + v[i];
        sq[i + 1] = sq[i] + v[i] * v[i];
    }
    auto var = [&](std::size_t b, std::size_t e, double& mean) {
        double k = static_cast<double>(e - b);
        mean = (sum[e] - sum[b]) / k;
        return std::max(0.0, (sq[e] - sq[b]) / k - mean * mean);
    };
    const std::size_t min_side = n / 10;
    double best = -1, d = 0;
    for (std::size_t cut = min_side; cut + min_side <= n; ++cut) {
        if (cut == 0) continue;
        double m1 = 0, m2 = 0;
        double v1 = var(0, cut, m1), v2 = var(cut, n, m2);
        double within = v1 * static_cast<double>(cut) + v2 * static_cast<double>(n - cut);
        if (best >= 0 && within >= best) continue;
        best = within;
        d = (v1 + v2) > 0 ? std::sqrt(2.0) * std::abs(m2 - m1) / std::sqrt(v1 + v2)
                          : (m1 != m2 ? 1e9 : 0);
    }
    return d > 4;
}

namespace {

double p50_of(std::vector<double>& scratch) {
    auto mid = scratch.begin() + static_cast<std::ptrdiff_t>(scratch.size() / 2);
    std::nth_element(scratch.begin(), mid, scratch.end());
    double hi = *mid;
    if (scratch.size() % 2) return hi;
    double lo = *std::max_element(scratch.begin(), mid);
    return (lo + hi) / 2;
}

double resampled_p50(std::span<const std::int64_t> x, std::vector<double>& scratch, std::mt19937_64& rng) {
    std::uniform_int_distribution<std::size_t> pick(0, x.size() - 1);
    scratch.resize(x.size());
    for (double& s : scratch) s = static_cast<double>(x[pick(rng)]);
    return p50_of(scratch);
}

}  // namespace

interval bootstrap_p50_ratio(std::span<const std::int64_t> a, std::span<const std::int64_t> b,
                             std::uint64_t seed, int resamples) {
    if (a.empty() || resamples < 1) return {};
    std::mt19937_64 rng(seed);
    std::vector<double> scratch, stats;
    stats.reserve(static_cast<std::size_t>(resamples));
    for (int i = 0; i < resamples; ++i) {
        double top = resampled_p50(a, scratch, rng);
        if (b.empty()) {
            stats.push_back(top);
            continue;
        }
        double bottom = resampled_p50(b, scratch, rng);
        if (bottom > 0) stats.push_back(top / bottom);
    }
    if (stats.empty()) return {};
    std::sort(stats.begin(), stats.end());
    return {quantile_sorted(stats, 0.025), quantile_sorted(stats, 0.975)};
}

summary summarize(std::span<const std::int64_t> samples) {
    return summarize(std::vector<double>(samples.begin(), samples.end()));
}

std::map<ns, double> marginal_within(namespace_set s, const std::map<std::uint8_t, double>& cost) {
    std::map<ns, double> out;
    auto self = cost.find(s.bits());
    if (self == cost.end()) return out;
    for (int i = 0; i < ns_count; ++i) {
        auto n = static_cast<ns>(i);
        if (!s.has(n)) continue;
        auto base = cost.find(s.without(n).bits());
        if (base != cost.end()) out[n] = self->second - base->second;
    }
    return out;
}

std::vector<marginal> marginal_costs(const std::map<std::uint8_t, double>& cost) {
    std::vector<marginal> out;
    for (int i = 0; i < ns_count; ++i) {
        auto n = static_cast<ns>(i);
        std::vector<double> deltas;
        for (const auto& [bits, c] : cost) {
            namespace_set s = namespace_set::from_bits(bits);
            if (!s.has(n)) continue;
            auto base = cost.find(s.without(n).bits());
            if (base != cost.end()) deltas.push_back(c - base->second);
        }
        if (deltas.empty()) continue;
        marginal m;
        m.what = n;
        m.pairs = deltas.size();
        std::sort(deltas.begin(), deltas.end());
        m.median = quantile_sorted(deltas, 0.5);
        m.min = deltas.front();
        m.max = deltas.back();
        auto single = cost.find(namespace_set{n}.bits());
        auto none = cost.find(0);
        if (single != cost.end() && none != cost.end()) m.over_none = single->second - none->second;
        out.push_back(m);
    }
    return out;
}

std::pair<double, double> decile_drift(std::span<const double> v) {
    auto p50_of = [](std::span<const double> part) {
        std::vector<double> sorted(part.begin(), part.end());
        std::sort(sorted.begin(), sorted.end());
        return quantile_sorted(sorted, 0.5);
    };
    if (v.size() < 10) {
        double all = p50_of(v);
        return {all, all};
    }
    std::size_t tenth = v.size() / 10;
    return {p50_of(v.first(tenth)), p50_of(v.last(tenth))};
}

}  // namespace drover::bench
