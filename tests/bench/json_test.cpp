// The JSON report: every field survives a round trip, and the document has the shape that
// docs/bench-schema.md describes.
#include <gtest/gtest.h>

#include "bench/report.hpp"

namespace drover::bench {
namespace {

summary sample_summary(double base) {
    return summary{12, base, base * 1.5, base * 2, base * 3, base * 0.5, base * 1.1, base * 0.2, 2, base > 5e5};
}

bench_report sample_report() {
    bench_report r;
    r.machine = {"2026-11-29T02:00:00Z", "6.18.0", "AMD EPYC", 2, "hybrid", "0.1.0", "abc1234",
                 "vfork", "helper /x/drover_floor", 0.25, 1.75, 2994.5, 3001.25};
    r.params.sets = {"none", "user+pid"};
    r.params.count = 12;
    r.params.warmup = 2;
    r.params.workload = "exec-static";
    r.params.workload_path = "/x/drover_static_true";
    r.params.seed = 18446744073709551615ULL;  // the whole uint64 range survives
    r.params.concurrency = {1, 8, 64};
    r.params.duration = 1.5;
    r.params.spawn_threads = 2;
    r.params.peers = true;
    combo_result none;
    none.drover = sample_summary(200e3);
    for (std::size_t k = 0; k < stage_count; ++k) none.stages[k] = sample_summary(10e3 * (k + 1));
    none.floor = sample_summary(190e3);
    combo_result up;
    up.set = namespace_set{ns::user, ns::pid};
    up.drover = sample_summary(400e3);
    up.floor = sample_summary(380e3);
    up.bare = sample_summary(330e3);
    up.fork = sample_summary(520e3);
    up.floor_method = "vfork";
    up.drover_method = "fork";
    up.ratio_ci = {0.97, 1.11};
    up.drover_p50_ci = {390e3, 410e3};
    up.bare_failures = {{"clone: Invalid argument", 1}};
    up.fork_failures = {{"floor child failed at execve", 3}};
    up.probe = sample_summary(335e3);
    up.probe_failures = {{"clone(user+pid): Operation not permitted", 1}};
    up.drover_failures = {{"clone3: Operation not permitted", 2}};
    up.floor_failures = {{"floor child failed at waiting for id maps", 1}};
    up.marginal = {{ns::user, 150e3}, {ns::pid, -3e3}};
    r.combos = {none, up};
    marginal m;
    m.what = ns::user;
    m.over_none = 150e3;
    m.pairs = 1;
    m.median = m.min = m.max = 150e3;
    marginal n2;
    n2.what = ns::net;
    n2.pairs = 3;
    n2.median = 4e5;
    n2.min = 3e5;
    n2.max = 5e5;
    r.marginals = {m, n2};
    r.floor_marginals = {m};
    r.posix_spawn =
        peer_result{"posix_spawn", {"/x/drover_static_true"}, true, "", sample_summary(150e3), {}};
    r.peer_set = "user+pid+mnt+uts+ipc+net";
    r.peers = {peer_result{"drover", {"/bin/true"}, true, "", sample_summary(1e6), {}},
               peer_result{"runc", {"runc"}, false, "not installed", {}, {}}};
    throughput_result t;
    t.set = namespace_set{ns::net};
    t.concurrency = 8;
    t.seconds = 1.01;
    t.spawns = 900;
    t.failures = {{"x", 1}};
    t.per_second = 891.1;
    t.latency = sample_summary(9e5);
    t.first_decile_p50 = 8e5;
    t.last_decile_p50 = 1.2e6;
    t.exit_to_callback = sample_summary(4.2e4);
    t.floor_method = "vfork";
    t.floor_processes = 8;
    t.floor_seconds = 1.02;
    t.floor_spawns = 1020;
    t.floor_failures = {{"floor child failed at execve", 2}};
    t.floor_per_second = 1000;
    throughput_result no_floor = t;
    no_floor.concurrency = 128;
    no_floor.floor_method.clear();
    no_floor.floor_processes = 0;
    no_floor.floor_seconds = 0;
    no_floor.floor_spawns = 0;
    no_floor.floor_failures.clear();
    no_floor.floor_per_second = 0;
    no_floor.floor_note = "drover_floor not found (set DROVER_FLOOR)";
    no_floor.exit_to_callback = {};  // a workload that does not stamp its exit
    r.throughput = {t, no_floor};
    r.elapsed = 12.5;
    r.warnings = {"the machine was busy: load average 0.2 before, 1.8 after"};
    return r;
}

TEST(BenchJson, RoundTripKeepsEveryField) {
    bench_report r = sample_report();
    std::string text = to_json(r).dump(2);
    bench_report back = report_from_json(nlohmann::json::parse(text));
    EXPECT_EQ(back.machine, r.machine);
    EXPECT_EQ(back.params, r.params);
    EXPECT_EQ(back.combos, r.combos);
    EXPECT_EQ(back.marginals, r.marginals);
    EXPECT_EQ(back.posix_spawn, r.posix_spawn);
    EXPECT_EQ(back.peers, r.peers);
    EXPECT_EQ(back.warnings, r.warnings);
    EXPECT_EQ(back.throughput, r.throughput);
    EXPECT_TRUE(back == r);
}

TEST(BenchJson, DocumentHasTheDocumentedShape) {
    nlohmann::json j = to_json(sample_report());
    EXPECT_EQ(j.at("schema"), "drover-bench/2");
    EXPECT_EQ(j.at("units"), "ns");
    for (const char* key :
         {"machine", "parameters", "combinations", "marginal", "floor_marginal", "posix_spawn",
          "peer_namespaces", "peers", "throughput", "elapsed_seconds", "warnings"})
        EXPECT_TRUE(j.contains(key)) << key;
    for (const char* key :
         {"date", "kernel", "cpu_model", "cores", "cgroup_mode", "drover_version", "drover_commit",
          "clone_method", "floor_source", "load_before", "load_after", "cpu_mhz_before", "cpu_mhz_after"})
        EXPECT_TRUE(j.at("machine").contains(key)) << key;
    const auto& c = j.at("combinations").at(1);
    EXPECT_EQ(c.at("namespaces"), "user+pid");
    EXPECT_EQ(c.at("bits"), 3);
    EXPECT_NEAR(c.at("ratio_p50").get<double>(), 400.0 / 380.0, 1e-12);
    EXPECT_NEAR(c.at("bare_ratio_p50").get<double>(), 400.0 / 330.0, 1e-12);
    EXPECT_NEAR(c.at("fork_ratio_p50").get<double>(), 400.0 / 520.0, 1e-12);
    EXPECT_NEAR(c.at("drover_share_p50").get<double>(), 20e3, 1e-6);
    EXPECT_NEAR(c.at("setup_share_p50").get<double>(), 50e3, 1e-6);
    EXPECT_EQ(c.at("ratio_p50_ci95"), nlohmann::json::array({0.97, 1.11}));
    for (const char* k : {"bare_floor", "fork_floor"}) EXPECT_EQ(c.at(k).at("n"), 12) << k;
    ASSERT_EQ(c.at("stages").size(), stage_count);
    for (const char* st : stage_names) {
        ASSERT_TRUE(c.at("stages").contains(st)) << st;
        for (const char* f : {"n", "p50", "p90", "p99", "max", "min", "mean", "stddev", "outliers"})
            EXPECT_TRUE(c.at("stages").at(st).at(f).is_number()) << st << "." << f;
    }
    EXPECT_TRUE(j.at("marginal").at(1).at("over_none").is_null());
    EXPECT_EQ(j.at("throughput").at(0).at("concurrency"), 8);
    EXPECT_EQ(j.at("parameters").at("spawn_threads"), 2);
    const auto& t = j.at("throughput").at(0);
    EXPECT_EQ(t.at("floor_method"), "vfork");
    EXPECT_EQ(t.at("floor_processes"), 8);
    EXPECT_NEAR(t.at("floor_ratio").get<double>(), 891.1 / 1000, 1e-12);
    EXPECT_EQ(j.at("throughput").at(1).at("floor_ratio"), 0.0);
    EXPECT_EQ(j.at("throughput").at(1).at("floor_note"), "drover_floor not found (set DROVER_FLOOR)");
}

// Reports written before spawn_threads and the throughput floor still read: as not recorded
// and no floor, so `bench compare` keeps working on old runs.
TEST(BenchJson, ReadsReportsFromBeforeTheThroughputFloor) {
    nlohmann::json j = to_json(sample_report());
    j["parameters"].erase("spawn_threads");
    j["machine"].erase("cpu_mhz_before");
    j["machine"].erase("cpu_mhz_after");
    for (auto& t : j["throughput"])
        for (const char* k : {"floor_method", "floor_processes", "floor_seconds", "floor_spawns", "floor_failures",
                              "floor_per_second", "floor_ratio", "floor_note"})
            t.erase(k);
    for (auto& t : j["throughput"]) t.erase("exit_to_callback");
    bench_report back = report_from_json(j);
    EXPECT_EQ(back.params.spawn_threads, 0u);
    EXPECT_EQ(back.machine.mhz_before, 0);
    EXPECT_EQ(back.machine.mhz_after, 0);
    ASSERT_EQ(back.throughput.size(), 2u);
    EXPECT_TRUE(back.throughput[0].floor_method.empty());
    EXPECT_EQ(back.throughput[0].floor_ratio(), 0);
    EXPECT_EQ(format_table(back).find("floor/s"), std::string::npos);
    EXPECT_EQ(back.throughput[0].exit_to_callback.n, 0u);
    EXPECT_EQ(format_table(back).find("exit→cb"), std::string::npos);
    // Present but wrong is still an error that names the field.
    nlohmann::json bad = to_json(sample_report());
    bad["throughput"][0]["floor_processes"] = -3;
    try {
        report_from_json(bad);
        FAIL() << "a negative floor_processes was accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("\"floor_processes\""), std::string::npos) << e.what();
    }
}

// The throughput tables carry the spawn threads, the floor's rate and drover ÷ floor per row;
// a row without a floor shows a dash, and a run without any floor says why instead.
TEST(BenchJson, ThroughputTablesShowTheFloorAndTheRatio) {
    bench_report r = sample_report();
    for (const std::string& text : {format_table(r), format_markdown(r)}) {
        EXPECT_NE(text.find("2 spawn threads"), std::string::npos) << text;
        EXPECT_NE(text.find("1000"), std::string::npos) << text;   // the floor's spawns/s
        EXPECT_NE(text.find("0.89×"), std::string::npos) << text;  // 891.1 ÷ 1000
    }
    EXPECT_NE(format_table(r).find("floor/s"), std::string::npos);
    EXPECT_NE(format_markdown(r).find("| drover ÷ floor |"), std::string::npos);
    // exit→callback: a column when some row measured it, a dash-free value per measured row.
    EXPECT_NE(format_table(r).find("exit→cb p50"), std::string::npos) << format_table(r);
    EXPECT_NE(format_markdown(r).find("| exit→callback p99 |"), std::string::npos);
    EXPECT_NE(format_csv(r).find("c8 exit_to_callback"), std::string::npos) << format_csv(r);
    EXPECT_EQ(format_csv(r).find("c128 exit_to_callback"), std::string::npos);
    r.throughput.pop_back();
    r.throughput[0] = sample_report().throughput[1];
    EXPECT_EQ(format_table(r).find("floor/s"), std::string::npos);
    EXPECT_NE(format_table(r).find("floor: not measured: drover_floor not found"), std::string::npos) << format_table(r);
    EXPECT_NE(format_markdown(r).find("floor: not measured: drover_floor not found"), std::string::npos);
}

TEST(BenchJson, RejectsAnotherSchemaAndMissingFields) {
    nlohmann::json j = to_json(sample_report());
    nlohmann::json wrong = j;
    wrong["schema"] = "something/2";
    EXPECT_THROW(report_from_json(wrong), std::runtime_error);
    nlohmann::json missing = j;
    missing["combinations"][0].erase("floor");
    try {
        report_from_json(missing);
        FAIL() << "a missing field was accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("\"floor\""), std::string::npos) << e.what();
    }
    nlohmann::json bad_set = j;
    bad_set["combinations"][1]["namespaces"] = "user+bogus";
    EXPECT_THROW(report_from_json(bad_set), std::runtime_error);
}

// Found by tests/fuzz/bench_json_fuzz: a value of another type escaped as nlohmann's
// type_error, and a negative count or a fraction was read as a huge number or truncated.
TEST(BenchJson, RejectsWrongTypesAndRangesNamingTheField) {
    const nlohmann::json good = to_json(sample_report());
    auto error_of = [](const nlohmann::json& j) -> std::string {
        try {
            report_from_json(j);
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    };
    auto with = [&](auto change) {
        nlohmann::json j = good;
        change(j);
        return error_of(j);
    };
    EXPECT_NE(with([](auto& j) { j["machine"]["drover_version"] = nlohmann::json::array(); }).find("\"drover_version\""),
              std::string::npos);
    EXPECT_NE(with([](auto& j) { j["combinations"][0]["drover"]["n"] = -1; }).find("\"n\""), std::string::npos);
    EXPECT_NE(with([](auto& j) { j["parameters"]["count"] = 3.7; }).find("\"count\""), std::string::npos);
    EXPECT_NE(with([](auto& j) { j["machine"]["cores"] = 1ULL << 40; }).find("\"cores\""), std::string::npos);
    EXPECT_NE(with([](auto& j) { j["combinations"] = 5; }).find("\"combinations\""), std::string::npos);
    EXPECT_NE(with([](auto& j) { j["throughput"][0]["failures"] = {{"EAGAIN", "two"}}; }).find("\"failures\""),
              std::string::npos);
    EXPECT_NE(with([](auto& j) { j["marginal"][0]["over_none"] = "fast"; }).find("\"over_none\""), std::string::npos);
    EXPECT_EQ(error_of(good), "");
}

TEST(BenchJson, OtherReportersNameEveryCombination) {
    bench_report r = sample_report();
    for (const std::string& text :
         {format_table(r), format_csv(r), format_markdown(r), format_svg(r)}) {
        EXPECT_NE(text.find("user+pid"), std::string::npos);
        EXPECT_NE(text.find("none"), std::string::npos);
    }
    std::string svg = format_svg(r);
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    EXPECT_NE(format_table(r).find("1.05×"), std::string::npos);  // the ratio line
    // CSV: one header, and every data row has the header's column count.
    std::string csv = format_csv(r);
    std::size_t cols = 0, line_start = 0;
    while (line_start < csv.size()) {
        std::size_t end = csv.find('\n', line_start);
        std::string line = csv.substr(line_start, end - line_start);
        std::size_t c = std::count(line.begin(), line.end(), ',');
        if (cols == 0) cols = c;
        EXPECT_EQ(c, cols) << line;
        line_start = end + 1;
    }
}

}  // namespace
}  // namespace drover::bench
