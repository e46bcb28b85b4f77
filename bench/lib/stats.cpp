// Percentiles, moments and marginal costs: plain arithmetic, tested against known data.
#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

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
    return s;
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
