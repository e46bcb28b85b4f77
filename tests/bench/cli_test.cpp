// `drover bench` from the outside: bad arguments exit 2 with one clear line; a tiny run
// writes a JSON report that reads back.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "bench/report.hpp"
#include "bench/runner.hpp"
#include "drover/process/spawn_threads.hpp"
#include "support.hpp"

namespace drover::bench {
namespace {

struct cli_result {
    int code = -1;
    std::string out, err;
};

// Runs the drover binary with `args` (shell-quoted by the caller), capturing both streams.
// "0.89×": a ratio as the text table prints it.
std::string fmt_ratio(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f×", r);
    return buf;
}

cli_result run_cli(const std::string& args) {
    char err_path[] = "/tmp/drover-bench-cli-XXXXXX";
    int fd = ::mkstemp(err_path);
    ::close(fd);
    std::string cmd = std::string(test::cli) + " bench " + args + " 2>" + err_path;
    cli_result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err_path);
    std::stringstream ss;
    ss << in.rdbuf();
    r.err = ss.str();
    ::unlink(err_path);
    return r;
}

void expect_usage_error(const std::string& args, const std::string& mentions) {
    cli_result r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("drover: bench", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
    EXPECT_NE(r.err.find(mentions), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(BenchCli, UnknownNamespaceExits2) {
    expect_usage_error("--ns user,bogus -n 1", "bogus");
}
TEST(BenchCli, CountZeroExits2) {
    expect_usage_error("--ns none -n 0", "count");
}
TEST(BenchCli, MalformedConcurrencyExits2) {
    expect_usage_error("--ns none -n 1 --concurrency 1,x,8", "--concurrency");
    expect_usage_error("--ns none -n 1 --concurrency 1,,8", "--concurrency");
    expect_usage_error("--ns none -n 1 --concurrency 0", "--concurrency");
    expect_usage_error("--ns none -n 1 --concurrency 8x", "--concurrency");
    expect_usage_error("--ns none -n 1 --concurrency +8", "--concurrency");
    expect_usage_error("--ns none -n 1 --concurrency 99999999999", "--concurrency");
}
TEST(BenchCli, BadWorkloadExits2) {
    expect_usage_error("--ns none -n 1 --workload sleep", "--workload");
    expect_usage_error("--ns none -n 1 --workload exec:/no/such/program", "/no/such/program");
}
TEST(BenchCli, SpawnThreadsOutOfRangeExits2) {
    for (const char* bad : {"0", "257", "x", "-1", "2x"})
        expect_usage_error(std::string("--ns none -n 1 --spawn-threads ") + bad, "--spawn-threads");
}
TEST(BenchCli, MalformedDurationExits2) {
    expect_usage_error("--ns none -n 1 --concurrency 1 --duration 0", "--duration");
    expect_usage_error("--ns none -n 1 --concurrency 1 --duration 3601", "--duration");
    expect_usage_error("--ns none -n 1 --concurrency 1 --duration x", "--duration");
}
// --floors in-process: the floors run in drover's own process, with no helper beside it; the
// report says so (and why) in the text, the JSON and one warning, and every floor has samples.
TEST(BenchCli, FloorsInProcessRunWithoutTheHelperAndTheReportSaysSo) {
    expect_usage_error("--ns none -n 1 --floors elsewhere", "--floors: 'elsewhere' is not helper or in-process");
    char dir[] = "/tmp/drover-bench-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string json = std::string(dir) + "/out.json";
    cli_result r = run_cli("--ns none --ns mnt -n 4 --warmup 1 --workload exec:/bin/true --floors in-process --json " +
                           json);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("floors: in-process: asked for (--floors in-process)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("the fork-style floor pays for drover's page tables"), std::string::npos) << r.out;
    std::ifstream js(json);
    bench_report back = report_from_json(nlohmann::json::parse(js));
    EXPECT_EQ(back.machine.floor_source, "in-process: asked for (--floors in-process)");
    ASSERT_EQ(back.combos.size(), 2u);
    for (const combo_result& c : back.combos) {
        EXPECT_EQ(c.floor.n, 4u) << c.set.str();
        EXPECT_EQ(c.bare.n, 4u) << c.set.str();
        EXPECT_EQ(c.fork.n, 4u) << c.set.str();
    }
    std::filesystem::remove_all(dir);
}

TEST(BenchCli, UnknownFlagExits2) {
    expect_usage_error("--frobnicate", "frobnicate");
}

TEST(BenchCli, ProfileRecordsDroversOwnProcessOrSaysWhyNot) {
    expect_usage_error("--ns none -n 2 --profile /nonexistent/dir/p.data", "not a writable directory");
    char dir[] = "/tmp/drover-bench-prof-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string data = std::string(dir) + "/p.data";
    bool have_perf = ::access("/usr/bin/perf", X_OK) == 0 || ::access("/usr/local/bin/perf", X_OK) == 0;
    cli_result r = run_cli("--ns none --ns net -n 20 --warmup 1 --workload exec:/bin/true --profile " + data);
    if (!have_perf) {
        EXPECT_EQ(r.code, 2) << r.err;
        EXPECT_NE(r.err.find("needs perf"), std::string::npos) << r.err;
    } else if (r.err.find("perf_event_paranoid") != std::string::npos) {
        std::remove(data.c_str());
        ::rmdir(dir);
        GTEST_SKIP() << "perf may not record here: " << r.err;
    } else {
        EXPECT_EQ(r.code, 0) << r.err;
        EXPECT_NE(r.out.find("Where drover's own process spent its samples"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("%"), std::string::npos) << r.out;  // at least one symbol line
        EXPECT_EQ(::access(data.c_str(), R_OK), 0);
    }
    std::remove(data.c_str());
    std::remove((data + ".old").c_str());
    ::rmdir(dir);
}

// stderr not a terminal: progress is a line per tenth of a phase, left standing (no carriage
// returns, no escapes), rising to 100 % with everything done.
TEST(BenchCli, ProgressIntoAFileIsALinePerTenthEndingAtAHundred) {
    cli_result r = run_cli("--ns none -n 3 --warmup 1 --workload exec:/bin/true");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\033'), std::string::npos) << r.err;
    const std::regex format(R"(drover: bench: matrix +(\d+)% \((\d+)/(\d+)\), ETA \d+s)");
    std::vector<int> percent;
    std::string last_done, last_total;
    std::istringstream in(r.err);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("drover: bench: matrix", 0) != 0) continue;
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, format)) << line;
        percent.push_back(std::stoi(m[1]));
        last_done = m[2];
        last_total = m[3];
    }
    ASSERT_FALSE(percent.empty()) << r.err;
    EXPECT_TRUE(std::is_sorted(percent.begin(), percent.end())) << r.err;
    EXPECT_LE(percent.size(), 11u) << "more than a line per tenth: " << r.err;
    EXPECT_EQ(percent.back(), 100) << r.err;
    EXPECT_EQ(last_done, last_total) << r.err;
}

TEST(BenchCli, TinyRunWritesJsonThatReadsBack) {
    char dir[] = "/tmp/drover-bench-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string json = std::string(dir) + "/out.json";
    std::string svg = std::string(dir) + "/out.svg";
    cli_result r = run_cli("--ns none --ns uts -n 3 --warmup 1 --workload exec:/bin/true --json " +
                           json + " --svg " + svg);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("drover ÷ floor"), std::string::npos) << r.out;
    std::ifstream in(json);
    nlohmann::json j = nlohmann::json::parse(in);
    bench_report back = report_from_json(j);
    ASSERT_EQ(back.combos.size(), 2u);
    EXPECT_EQ(back.combos[1].set.str(), "uts");
    EXPECT_EQ(back.combos[1].drover.n, 3u);
    EXPECT_EQ(back.params.workload, "exec:/bin/true");
    EXPECT_FALSE(back.machine.kernel.empty());
    EXPECT_EQ(to_json(back), j);  // what was read is what was written
    std::ifstream s(svg);
    std::string first;
    std::getline(s, first);
    EXPECT_EQ(first.rfind("<svg", 0), 0u);
    // The report compares with itself: every combination, no difference anywhere.
    std::string md = std::string(dir) + "/cmp.md";
    std::string csvg = std::string(dir) + "/cmp.svg";
    cli_result c = run_cli("compare " + json + " " + json + " --markdown " + md + " --svg " + csvg);
    EXPECT_EQ(c.code, 0) << c.err;
    EXPECT_NE(c.out.find("no difference"), std::string::npos) << c.out;
    EXPECT_EQ(c.out.find("faster"), c.out.find("faster/slower")) << c.out;  // only in the legend
    std::ifstream m(md);
    std::stringstream ms;
    ms << m.rdbuf();
    EXPECT_NE(ms.str().find("| uts |"), std::string::npos) << ms.str();
    std::ifstream cs(csvg);
    std::getline(cs, first);
    EXPECT_EQ(first.rfind("<svg", 0), 0u);
    // Bad inputs are one located line and exit 2.
    expect_usage_error("compare " + json, "two or more");
    expect_usage_error("compare " + json + " /nonexistent/run.json", "/nonexistent/run.json: cannot be read");
    std::string broken = std::string(dir) + "/broken.json";
    std::ofstream(broken) << "{\"schema\": \"drover-bench/2\",\n  \"machine\": }";
    expect_usage_error("compare " + json + " " + broken, "line 2, column");
    std::ofstream(broken) << "{\"schema\": \"drover-bench/1\"}";
    expect_usage_error("compare " + json + " " + broken, "schema is not drover-bench/2");
    for (const std::string& f : {json, svg, md, csvg, broken}) std::remove(f.c_str());
    ::rmdir(dir);
}

// --probe from the outside: drover_raw_probe's spawns sit in the matrix's own shuffled order,
// beside the bare floor, for every set but one with a time namespace (the probe is vfork-only),
// in the table, the CSV and the JSON. The probe's times are its own: never equal to the bare
// floor's for a whole set of samples.
TEST(BenchCli, TheIndependentProbeRunsInTheMatrixBesideTheBareFloor) {
    expect_usage_error("--ns none --probe", "--probe needs --workload exec-static or exec:PATH");
    expect_usage_error("--peers --no-matrix --probe --workload exec:/bin/true", "drop --no-matrix");
    // Builds without the bench's programs (the sanitizer phases) have no probe to run.
    if (raw_probe_path().empty()) GTEST_SKIP() << "drover_raw_probe is not built (DROVER_BUILD_BENCH=OFF)";
    char dir[] = "/tmp/drover-bench-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string csv = std::string(dir) + "/out.csv", json = std::string(dir) + "/out.json";
    cli_result r = run_cli("--ns none --ns user,net --ns time -n 4 --warmup 1 --workload exec:/bin/true --probe --csv " +
                           csv + " --json " + json);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("Independent probe (drover_raw_probe"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("bare ÷ probe"), std::string::npos) << r.out;
    std::ifstream in(csv);
    std::map<std::string, std::vector<std::string>> rows;  // set -> its raw_probe row
    for (std::string line; std::getline(in, line);)
        if (line.find(",raw_probe,total,") != std::string::npos) rows[line.substr(7, line.find(',', 7) - 7)].push_back(line);
    EXPECT_EQ(rows.size(), 2u);
    for (const std::string set : {"none", "user+net"}) {
        ASSERT_EQ(rows[set].size(), 1u) << set;
        // matrix,SET,raw_probe,total,N,P50,...: four samples, a p50 above zero.
        std::stringstream ss(rows[set][0]);
        std::vector<std::string> cells;
        for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
        ASSERT_GE(cells.size(), 6u);
        EXPECT_EQ(cells[4], "4") << rows[set][0];
        EXPECT_GT(std::stod(cells[5]), 0) << rows[set][0];
    }
    std::ifstream js(json);
    bench_report back = report_from_json(nlohmann::json::parse(js));
    ASSERT_EQ(back.combos.size(), 3u);
    for (const combo_result& c : back.combos) {
        if (c.set.has(ns::time)) {
            EXPECT_EQ(c.probe.n, 0u);
            continue;
        }
        EXPECT_EQ(c.probe.n, 4u) << c.set.str();
        EXPECT_TRUE(c.probe_failures.empty()) << c.set.str();
        EXPECT_GT(c.probe_check(), 0) << c.set.str();
        EXPECT_FALSE(c.probe == c.bare) << c.set.str();
    }
    std::remove(csv.c_str());
    std::remove(json.c_str());
    ::rmdir(dir);
}

// The throughput floor from the outside: a short run gives each point a floor rate and
// drover ÷ floor in the table and the JSON, and records the spawn threads it was given.
TEST(BenchCli, ThroughputRunsItsFloorBesideEachPoint) {
    if (!static_helper_built()) GTEST_SKIP() << "built with DROVER_BUILD_BENCH=OFF: no drover_floor";
    // Without the matrix, throughput takes --ns (below); with neither, nothing would be measured.
    expect_usage_error("--no-matrix --concurrency 1", "say which sets with --ns or --throughput-ns");
    char dir[] = "/tmp/drover-bench-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string json = std::string(dir) + "/tp.json";
    std::string md = std::string(dir) + "/tp.md";
    cli_result r = run_cli("--no-matrix --workload exec-static --concurrency 1,2 --duration 0.3 "
                           "--throughput-ns none --spawn-threads 2 --json " + json + " --markdown " + md);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("floor/s"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2 spawn threads"), std::string::npos) << r.out;
    std::ifstream in(json);
    nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j.at("parameters").at("spawn_threads"), 2);
    ASSERT_EQ(j.at("throughput").size(), 2u);
    for (const auto& t : j.at("throughput")) {
        EXPECT_EQ(t.at("floor_note"), "") << t.dump();
        EXPECT_GT(t.at("floor_per_second").get<double>(), 0) << t.dump();
        EXPECT_GT(t.at("floor_ratio").get<double>(), 0) << t.dump();
        EXPECT_EQ(t.at("floor_processes"), t.at("concurrency")) << t.dump();
        EXPECT_GE(t.at("floor_seconds").get<double>(), 0.3) << t.dump();
    }
    bench_report back = report_from_json(j);
    EXPECT_EQ(to_json(back), j);
    // Each row's ratio is in the table, as printed from the report.
    for (const throughput_result& t : back.throughput)
        EXPECT_NE(r.out.find(fmt_ratio(t.floor_ratio())), std::string::npos) << r.out;
    std::ifstream m(md);
    std::stringstream ms;
    ms << m.rdbuf();
    EXPECT_NE(ms.str().find("| drover ÷ floor |"), std::string::npos) << ms.str();
    // auto is the CPUs this process may run on; the default is the library's setting (1, or $DROVER_SPAWN_THREADS).
    for (const char* given : {"auto", ""}) {
        cli_result a = run_cli(std::string("--no-matrix --workload exec-static --concurrency 1 --duration 0.1 "
                                           "--ns none --json ") +
                               json + (*given ? std::string(" --spawn-threads ") + given : std::string()));
        ASSERT_EQ(a.code, 0) << a.err;
        std::ifstream in2(json);
        const nlohmann::json j2 = nlohmann::json::parse(in2);
        EXPECT_EQ(j2.at("parameters").at("spawn_threads"), *given ? available_cpus() : spawn_threads()) << given;
        ASSERT_EQ(j2.at("throughput").size(), 1u) << given;  // --ns none, measured without the matrix
        EXPECT_EQ(j2.at("throughput").at(0).at("namespaces"), "none") << given;
    }
    for (const std::string& f : {json, md}) std::remove(f.c_str());
    ::rmdir(dir);
}

}  // namespace
}  // namespace drover::bench
