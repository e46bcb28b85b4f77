// bench compare on made-up runs: each run against the first, intervals combined into a
// verdict, combinations missing from a run, and notes on what makes runs less comparable.
#include <gtest/gtest.h>

#include "bench/compare.hpp"

namespace drover::bench {
namespace {

combo_result combo(namespace_set set, double p50, interval ci, double floor_p50) {
    combo_result c;
    c.set = set;
    c.drover.n = c.floor.n = 50;
    c.drover.p50 = p50;
    c.floor.p50 = floor_p50;
    c.drover_p50_ci = ci;
    return c;
}

bench_report run(std::vector<combo_result> combos, std::string workload = "exec-static") {
    bench_report r;
    r.params.workload = std::move(workload);
    r.machine.kernel = "6.1";
    r.combos = std::move(combos);
    return r;
}

TEST(BenchCompare, VerdictsFollowTheIntervals) {
    const namespace_set none{}, user{ns::user}, net{ns::net};
    bench_report a = run({combo(none, 400e3, {390e3, 410e3}, 380e3), combo(user, 500e3, {480e3, 520e3}, 470e3),
                          combo(net, 900e3, {850e3, 950e3}, 880e3)});
    // none clearly faster, user clearly slower, net within the noise; `b` lacks nothing.
    bench_report b = run({combo(none, 300e3, {295e3, 305e3}, 290e3), combo(user, 600e3, {590e3, 610e3}, 560e3),
                          combo(net, 910e3, {860e3, 960e3}, 890e3)});
    comparison c = compare_reports({a, b}, {"a.json", "b.json"});
    ASSERT_EQ(c.rows.size(), 3u);
    EXPECT_EQ(c.rows[0].set, none);  // ordered by the first run's p50
    const compared_cell& n = *c.rows[0].cells[1];
    EXPECT_NEAR(n.vs_first, 0.75, 1e-12);
    EXPECT_NEAR(n.vs_first_ci.low, 295.0 / 410.0, 1e-12);
    EXPECT_NEAR(n.vs_first_ci.high, 305.0 / 390.0, 1e-12);
    EXPECT_EQ(n.verdict, "faster");
    EXPECT_EQ(c.rows[1].cells[1]->verdict, "slower");
    EXPECT_EQ(c.rows[2].cells[1]->verdict, "no difference");
    EXPECT_TRUE(c.rows[0].cells[0]->verdict.empty());  // the reference has none
    EXPECT_NEAR(c.rows[1].cells[0]->floor_ratio, 500.0 / 470.0, 1e-12);
    EXPECT_TRUE(c.notes.empty());
    std::string table = format_comparison_table(c);
    EXPECT_NE(table.find("faster"), std::string::npos);
    EXPECT_NE(table.find("0.75×"), std::string::npos) << table;
}

TEST(BenchCompare, MissingCombinationsAndDifferentWorkloadsAreSaid) {
    const namespace_set none{}, user{ns::user};
    bench_report a = run({combo(none, 400e3, {390e3, 410e3}, 380e3), combo(user, 500e3, {480e3, 520e3}, 470e3)});
    bench_report b = run({combo(none, 410e3, {400e3, 420e3}, 390e3)}, "exit");
    b.warnings = {"the machine was busy"};
    comparison c = compare_reports({a, b, a}, {"a.json", "b.json", "again.json"});
    ASSERT_EQ(c.rows.size(), 2u);
    EXPECT_FALSE(c.rows[1].cells[1].has_value());
    EXPECT_TRUE(c.rows[1].cells[2].has_value());
    EXPECT_EQ(c.rows[1].cells[2]->verdict, "no difference");  // a run against itself
    ASSERT_EQ(c.notes.size(), 2u);
    EXPECT_NE(c.notes[0].find("workload exit"), std::string::npos) << c.notes[0];
    EXPECT_NE(c.notes[1].find("busy"), std::string::npos) << c.notes[1];
    EXPECT_NE(format_comparison_table(c).find("not measured"), std::string::npos);
    EXPECT_NE(format_comparison_markdown(c).find("not measured"), std::string::npos);
    std::string svg = format_comparison_svg(c);
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_NE(svg.find("not measured"), std::string::npos);
    EXPECT_NE(svg.find("again.json"), std::string::npos);  // the legend names each run
}

}  // namespace
}  // namespace drover::bench
