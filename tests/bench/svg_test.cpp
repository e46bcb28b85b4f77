// bench.svg's throughput chart: drawn from a hand-built report, with and without a floor, and
// the whole document still well formed.
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

}  // namespace
}  // namespace drover::bench
