// The bench statistics on known data: percentiles, moments, marginal costs, decile drift.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "bench/stats.hpp"

namespace drover::bench {
namespace {

TEST(BenchStats, PercentilesOfOneToHundredInterpolateBetweenRanks) {
    std::vector<double> v(100);
    std::iota(v.begin(), v.end(), 1.0);  // 1..100, shuffled order must not matter
    std::reverse(v.begin(), v.end());
    summary s = summarize(v);
    EXPECT_EQ(s.n, 100u);
    EXPECT_DOUBLE_EQ(s.p50, 50.5);   // position 49.5
    EXPECT_DOUBLE_EQ(s.p90, 90.1);   // position 89.1
    EXPECT_DOUBLE_EQ(s.p99, 99.01);  // position 98.01
    EXPECT_DOUBLE_EQ(s.max, 100);
    EXPECT_DOUBLE_EQ(s.min, 1);
    EXPECT_DOUBLE_EQ(s.mean, 50.5);
    // Sample standard deviation of 1..n is sqrt(n(n+1)/12).
    EXPECT_NEAR(s.stddev, std::sqrt(100.0 * 101.0 / 12.0), 1e-9);
}

TEST(BenchStats, SmallSetsAndEdges) {
    summary one = summarize(std::vector<double>{7});
    EXPECT_EQ(one.n, 1u);
    EXPECT_DOUBLE_EQ(one.p50, 7);
    EXPECT_DOUBLE_EQ(one.p99, 7);
    EXPECT_DOUBLE_EQ(one.stddev, 0);
    summary empty = summarize(std::vector<double>{});
    EXPECT_EQ(empty.n, 0u);
    EXPECT_DOUBLE_EQ(empty.p50, 0);
    summary four = summarize(std::vector<double>{10, 40, 20, 30});
    EXPECT_DOUBLE_EQ(four.p50, 25);
    EXPECT_DOUBLE_EQ(four.p90, 37);  // 30 + 0.7 * 10
    EXPECT_NEAR(four.stddev, std::sqrt(500.0 / 3.0), 1e-9);
    std::vector<std::int64_t> ints = {3, 1, 2};
    EXPECT_DOUBLE_EQ(summarize(std::span<const std::int64_t>(ints)).p50, 2);
}

// Costs from a model: base 100, user +50, pid +20, net +400, and user+net costs 30 extra
// together (an interaction), so net's marginal differs with and without user.
std::map<std::uint8_t, double> model_costs() {
    std::map<std::uint8_t, double> c;
    for (unsigned b = 0; b < 256; ++b) {
        namespace_set s = namespace_set::from_bits(static_cast<std::uint8_t>(b));
        if (s.has(ns::mnt) || s.has(ns::uts) || s.has(ns::ipc) || s.has(ns::cgroup) ||
            s.has(ns::time))
            continue;
        double v = 100;
        if (s.has(ns::user)) v += 50;
        if (s.has(ns::pid)) v += 20;
        if (s.has(ns::net)) v += 400;
        if (s.has(ns::user) && s.has(ns::net)) v += 30;
        c[s.bits()] = v;
    }
    return c;
}

TEST(BenchStats, MarginalCostsRecoverTheModel) {
    auto ms = marginal_costs(model_costs());
    ASSERT_EQ(ms.size(), 3u);  // only user, pid, net were measured
    EXPECT_EQ(ms[0].what, ns::user);
    EXPECT_EQ(ms[1].what, ns::pid);
    EXPECT_EQ(ms[2].what, ns::net);
    // user: pairs over {}, {pid}, {net}, {pid,net}: deltas 50, 50, 80, 80.
    EXPECT_EQ(ms[0].pairs, 4u);
    EXPECT_DOUBLE_EQ(ms[0].median, 65);
    EXPECT_DOUBLE_EQ(ms[0].min, 50);
    EXPECT_DOUBLE_EQ(ms[0].max, 80);
    ASSERT_TRUE(ms[0].over_none.has_value());
    EXPECT_DOUBLE_EQ(*ms[0].over_none, 50);
    EXPECT_DOUBLE_EQ(ms[1].median, 20);
    EXPECT_DOUBLE_EQ(ms[1].min, 20);
    EXPECT_DOUBLE_EQ(ms[1].max, 20);
    EXPECT_DOUBLE_EQ(*ms[2].over_none, 400);
    EXPECT_DOUBLE_EQ(ms[2].max, 430);
}

TEST(BenchStats, MarginalWithinOneCombination) {
    auto c = model_costs();
    auto m = marginal_within(namespace_set{ns::user, ns::net}, c);
    ASSERT_EQ(m.size(), 2u);
    EXPECT_DOUBLE_EQ(m.at(ns::user), 80);  // 580 - 500
    EXPECT_DOUBLE_EQ(m.at(ns::net), 430);  // 580 - 150
    // A member whose complement was not measured is left out.
    c.erase(namespace_set{ns::net}.bits());
    m = marginal_within(namespace_set{ns::user, ns::net}, c);
    EXPECT_EQ(m.size(), 1u);
    EXPECT_TRUE(m.contains(ns::net));
}

TEST(BenchStats, MarginalWithoutPairsIsLeftOut) {
    std::map<std::uint8_t, double> c = {{namespace_set{ns::user, ns::pid}.bits(), 10}};
    EXPECT_TRUE(marginal_costs(c).empty());
}

TEST(BenchStats, DecileDriftComparesFirstAndLastTenth) {
    std::vector<double> v;
    for (int i = 0; i < 100; ++i) v.push_back(i < 10 ? 100 : (i >= 90 ? 300 + i : 200));
    auto [first, last] = decile_drift(v);
    EXPECT_DOUBLE_EQ(first, 100);
    EXPECT_DOUBLE_EQ(last, 394.5);  // median of 390..399
    std::vector<double> few = {5, 1, 3};
    auto [a, b] = decile_drift(few);
    EXPECT_DOUBLE_EQ(a, 3);
    EXPECT_DOUBLE_EQ(b, 3);
}

TEST(BenchStats, OutliersAndBimodalityAreNoticed) {
    std::vector<double> steady;
    for (int i = 0; i < 100; ++i) steady.push_back(1000 + (i % 10));
    summary a = summarize(steady);
    EXPECT_EQ(a.outliers, 0u);
    EXPECT_FALSE(a.bimodal);
    steady.push_back(50'000);  // one far-off sample
    summary b = summarize(steady);
    EXPECT_EQ(b.outliers, 1u);
    EXPECT_FALSE(b.bimodal);  // one sample is no cluster
    // Two clusters of 60 and 40 samples, far apart: the second mode is found.
    std::vector<double> two;
    for (int i = 0; i < 60; ++i) two.push_back(1000 + (i % 7));
    for (int i = 0; i < 40; ++i) two.push_back(3000 + (i % 7));
    EXPECT_TRUE(summarize(two).bimodal);
    // A long right tail (latency's usual shape) is not two clusters.
    std::vector<double> tail;
    for (int i = 1; i <= 200; ++i) tail.push_back(1000.0 * (1 + 1.0 / (201 - i)));
    EXPECT_FALSE(summarize(tail).bimodal);
    EXPECT_NEAR(summarize(std::vector<double>{1, 3}).cv(), std::sqrt(2.0) / 2, 1e-9);
}

TEST(BenchStats, BootstrapIntervalIsSeededAndCoversTheRatio) {
    std::vector<std::int64_t> a, b;
    for (int i = 0; i < 200; ++i) {
        a.push_back(1100 + (i * 37) % 100);  // p50 about 1150
        b.push_back(1000 + (i * 53) % 100);  // p50 about 1050
    }
    interval x = bootstrap_p50_ratio(a, b, 42);
    interval y = bootstrap_p50_ratio(a, b, 42);
    EXPECT_EQ(x, y);
    EXPECT_LT(x.low, 1150.0 / 1050.0);
    EXPECT_GT(x.high, 1150.0 / 1050.0);
    EXPECT_GT(x.low, 1.0);   // the two are told apart
    EXPECT_LT(x.high, 1.2);  // and the interval is tight for 200 samples
    interval alone = bootstrap_p50_ratio(a, {}, 1);
    EXPECT_LE(alone.low, 1150);
    EXPECT_GE(alone.high, 1140);
    EXPECT_EQ(bootstrap_p50_ratio({}, b, 1), interval{});
}

}  // namespace
}  // namespace drover::bench
