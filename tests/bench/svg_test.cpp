// bench.svg drawn from hand-built reports: the throughput chart with and without a floor, the
// axes (a scale the bars fill, negative marginal costs, ticks at both ends of long charts), the
// stage chart against the whole spawn, the peers' legend; the document always well formed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench/report.hpp"

namespace drover::bench {
namespace {

// Two rows: user+pid at concurrency 8 with a fork-style floor capped below it, and none at
// concurrency 1 whose floor helper was missing.
bench_report throughput_report() {
    bench_report r;
    r.params.workload = "exec-static";
    r.params.duration = 0.5;
    r.params.spawn_threads = 2;
    throughput_result with;
    with.set = namespace_set{ns::user, ns::pid};
    with.concurrency = 8;
    with.seconds = 0.5;
    with.spawns = 617;
    with.per_second = 1234;
    with.floor_method = "vfork";
    with.floor_processes = 8;
    with.floor_seconds = 0.5;
    with.floor_spawns = 1234;
    with.floor_per_second = 2468;  // drover ÷ floor = 0.50
    throughput_result without;
    without.concurrency = 1;
    without.seconds = 0.5;
    without.spawns = 431;
    without.per_second = 862;
    without.floor_note = "drover_floor not found (set DROVER_FLOOR)";
    r.throughput = {with, without};
    return r;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// The first element tag that does not close in order, or "" when every tag is balanced.
// Enough of XML for what format_svg writes: no comments, CDATA or '>' inside attributes.
std::string first_unbalanced_tag(const std::string& svg) {
    std::vector<std::string> open;
    for (auto lt = svg.find('<'); lt != std::string::npos; lt = svg.find('<', lt + 1)) {
        auto gt = svg.find('>', lt);
        if (gt == std::string::npos) return "unterminated tag";
        std::string tag = svg.substr(lt + 1, gt - lt - 1);
        if (tag.ends_with('/')) continue;  // self-closing
        if (tag.starts_with('/')) {
            if (open.empty() || open.back() != tag.substr(1)) return tag;
            open.pop_back();
        } else {
            open.push_back(tag.substr(0, tag.find(' ')));
        }
    }
    return open.empty() ? "" : open.back();
}

TEST(BenchSvg, ThroughputChartShowsBothRatesAndTheRatio) {
    const std::string svg = format_svg(throughput_report());
    EXPECT_NE(svg.find("Sustained throughput (exec-static, 0.5 s per point), 2 spawn threads"),
              std::string::npos);
    EXPECT_NE(svg.find(">1234/s<"), std::string::npos);  // drover's value label
    EXPECT_NE(svg.find(">2468/s<"), std::string::npos);  // the floor's
    EXPECT_NE(svg.find(">862/s<"), std::string::npos);
    EXPECT_NE(svg.find("drover ÷ floor 0.50×"), std::string::npos);
    EXPECT_NE(svg.find(">spawns/s<"), std::string::npos);  // the axis says its unit
    EXPECT_EQ(first_unbalanced_tag(svg), "");
}

TEST(BenchSvg, ThroughputRowWithoutAFloorHasNoFloorBarButItsReason) {
    const std::string svg = format_svg(throughput_report());
    // One floor bar, for the row that has a floor (the legend's swatch is the other fill).
    EXPECT_EQ(count(svg, "fill=\"#79706e\""), 2u);
    EXPECT_EQ(count(svg, "<title>floor ("), 1u);
    EXPECT_NE(svg.find("floor not measured: drover_floor not found (set DROVER_FLOOR)"),
              std::string::npos);
    EXPECT_EQ(count(svg, ">drover ÷ floor "), 1u);  // no ratio without a floor
}

TEST(BenchSvg, NoThroughputRowsNoThroughputChart) {
    bench_report r = throughput_report();
    r.throughput.clear();
    const std::string svg = format_svg(r);
    EXPECT_EQ(svg.find("Sustained throughput"), std::string::npos);
    EXPECT_EQ(svg.find("spawns/s"), std::string::npos);
    EXPECT_EQ(first_unbalanced_tag(svg), "");
}

// Past a screenful of groups the ticks are repeated below the bars.
TEST(BenchSvg, LongThroughputChartHasTheAxisAtBothEnds) {
    bench_report r = throughput_report();
    EXPECT_EQ(count(format_svg(r), ">spawns/s<"), 1u);
    for (int c = 2; c <= 12; ++c) {
        throughput_result t = r.throughput[0];
        t.concurrency = c;
        r.throughput.push_back(t);
    }
    const std::string svg = format_svg(r);
    EXPECT_EQ(count(svg, ">spawns/s<"), 2u);
    EXPECT_EQ(first_unbalanced_tag(svg), "");
}

// Combinations none, user, net and user+net with a p50 of 1.0, 1.1, 2.0 and 2.1 ms; marginal
// costs with a negative minimum; stage p50s that add up to 95 % of each whole.
bench_report matrix_report() {
    bench_report r;
    r.params.workload = "exec-static";
    const std::vector<std::pair<namespace_set, double>> sets = {
        {namespace_set{}, 1.0e6},
        {namespace_set{ns::user}, 1.1e6},
        {namespace_set{ns::net}, 2.0e6},
        {namespace_set{ns::user, ns::net}, 2.1e6}};
    for (const auto& [set, p50] : sets) {
        combo_result c;
        c.set = set;
        c.drover.n = c.floor.n = 100;
        c.drover.p50 = p50;
        c.floor.p50 = p50 / 1.05;
        c.stages[1].p50 = 0.15 * p50;  // clone
        c.stages[5].p50 = 0.80 * p50;  // run
        for (summary& st : c.stages) st.n = 100;
        r.combos.push_back(c);
    }
    marginal user;
    user.what = ns::user;
    user.pairs = 2;
    user.median = 0.1e6;
    user.min = -0.03e6;
    user.max = 0.1e6;
    user.over_none = 0.1e6;
    marginal net = user;
    net.what = ns::net;
    net.median = net.max = 1.0e6;
    net.min = 0.9e6;
    net.over_none = 1.0e6;
    r.marginals = {user, net};
    return r;
}

// The chart titled `title`, up to the next chart's title.
std::string chart(const std::string& svg, const std::string& title) {
    auto at = svg.find(title);
    if (at == std::string::npos) return {};
    auto next = svg.find("class=\"title\"", at);
    return svg.substr(at, next == std::string::npos ? std::string::npos : next - at);
}

// A 2.1 ms maximum gets a 2.50 ms axis in steps of 500 µs: not 5 ms, which left most of the
// plot empty.
TEST(BenchSvg, TheP50AxisEndsJustPastTheLongestBar) {
    const std::string p50 = chart(format_svg(matrix_report()), "spawn→reap p50 per namespace");
    ASSERT_FALSE(p50.empty());
    EXPECT_NE(p50.find(">2.50 ms</text>"), std::string::npos);
    EXPECT_NE(p50.find(">500.0 µs</text>"), std::string::npos);
    EXPECT_EQ(p50.find(">3.00 ms</text>"), std::string::npos);
    EXPECT_EQ(p50.find(">5.00 ms</text>"), std::string::npos);
    EXPECT_NE(p50.find("2.10 ms  1.05× floor"), std::string::npos);
}

// The per-namespace chart has an axis of its own, down to its negative whisker.
TEST(BenchSvg, TheMarginalChartHasAnAxisThroughZeroAndBelowIt) {
    const std::string m = chart(format_svg(matrix_report()), "Marginal cost of each namespace");
    ASSERT_FALSE(m.empty());
    EXPECT_NE(m.find(">−200.0 µs</text>"), std::string::npos);
    EXPECT_NE(m.find(">0 ns</text>"), std::string::npos);
    EXPECT_NE(m.find(">1.00 ms</text>"), std::string::npos);
    EXPECT_EQ(m.find("-0"), std::string::npos);
    EXPECT_NE(m.find("median 1.00 ms  (2 pairs)"), std::string::npos);
}

// Stage medians are stacked; the whole spawn's p50 is marked, and the chart says why the two
// can differ.
TEST(BenchSvg, TheStageChartMarksTheWholeSpawnAndSaysWhyTheSumDiffers) {
    const std::string st = chart(format_svg(matrix_report()), "Where the time goes");
    ASSERT_FALSE(st.empty());
    EXPECT_NE(st.find("sum 950.0 µs · spawn→reap p50 1.00 ms"), std::string::npos);
    EXPECT_NE(st.find("need not add up to the median of the whole"), std::string::npos);
    EXPECT_NE(st.find(">spawn→reap p50</text>"), std::string::npos);  // in the legend
    EXPECT_EQ(count(st, "stroke=\"#000\" stroke-width=\"2.0\""), 4u);  // a tick per row
}

// Twenty rows are taller than a screen: the p50 and stage charts repeat their ticks above.
TEST(BenchSvg, LongMatrixChartsHaveTheirAxisAtBothEnds) {
    bench_report r = matrix_report();
    EXPECT_EQ(count(chart(format_svg(r), "spawn→reap p50 per"), ">2.50 ms</text>"), 1u);
    const combo_result last = r.combos.back();
    for (std::uint8_t bits = 0; r.combos.size() < 20; ++bits) {
        combo_result c = last;
        c.set = namespace_set::from_bits(bits);
        c.drover.p50 = 1.5e6;
        r.combos.push_back(c);
    }
    const std::string svg = format_svg(r);
    EXPECT_EQ(count(chart(svg, "spawn→reap p50 per"), ">2.50 ms</text>"), 2u);
    EXPECT_EQ(count(chart(svg, "Where the time goes"), ">2.50 ms</text>"), 2u);
    EXPECT_EQ(first_unbalanced_tag(svg), "");
}

TEST(BenchSvg, ThePeersChartHasALegend) {
    bench_report r;
    for (auto [name, p50] : {std::pair{"drover", 1.5e6}, {"drover-warm", 1.2e6}, {"bwrap", 4.0e6}}) {
        peer_result p;
        p.name = name;
        p.ran = true;
        p.total.n = 50;
        p.total.p50 = p50;
        r.peers.push_back(p);
    }
    r.peer_set = "user+pid";
    const std::string peers = chart(format_svg(r), "The same sandbox");
    ASSERT_FALSE(peers.empty());
    EXPECT_NE(peers.find(">drover-warm (namespaces made ahead)</text>"), std::string::npos);
    EXPECT_NE(peers.find(">other tools</text>"), std::string::npos);
    EXPECT_NE(peers.find("(drover 2.7× faster)"), std::string::npos);
    EXPECT_NE(peers.find(">4.00 ms</text>"), std::string::npos);
    EXPECT_EQ(peers.find(">5.00 ms</text>"), std::string::npos);
}

}  // namespace
}  // namespace drover::bench
