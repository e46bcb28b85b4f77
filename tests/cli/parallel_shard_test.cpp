// `drover parallel` as a task of a scheduler's array: --shard slices, --resume, a stop with a
// grace time, and `drover results merge|summary` over the pieces.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::cli;

std::string numbered_input(int n) {
    std::string s;
    for (int i = 1; i <= n; ++i) s += "in-" + std::to_string(i) + "\n";
    return s;
}

// `drover ARGS…` with `input` on stdin and `env` added.
run_result drover(std::vector<std::string> args, std::string input = {},
                  std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {cli};
    argv.insert(argv.end(), args.begin(), args.end());
    spawn_spec s = test::piped(argv);
    s.in = stdio::pipe();
    for (const char* v : {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP",
                          "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"})
        s.env.unset(v);
    for (const auto& [k, v] : env) s.env.set(k, v);
    return test::run_spec(s, std::move(input));
}

std::vector<nlohmann::json> records(const std::string& out) {
    std::vector<nlohmann::json> r;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) r.push_back(nlohmann::json::parse(line));
    return r;
}

void write_file(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// One line on stderr, naming the option; exit 255 (parallel's 2 means two jobs failed).
void expect_usage_error(const run_result& r, const std::string& names) {
    EXPECT_EQ(r.status.code(), 255) << r.out << r.err;
    EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST(ParallelShard, ShardsSplitTheInputSoEachLineRunsExactlyOnce) {
    const int n = 100;
    for (const char* by : {"line", "hash"}) {
        std::map<std::uint64_t, int> runs;
        std::size_t smallest = n, largest = 0;
        for (int k = 0; k < 3; ++k) {
            auto r = drover({"parallel", "--no-progress", "--json", "--shard", std::to_string(k) + "/3", "--shard-by",
                             by, "-j", "8", "--", "echo", "{}"},
                            numbered_input(n));
            ASSERT_EQ(r.status.code(), 0) << r.err;
            auto recs = records(r.out);
            smallest = std::min(smallest, recs.size());
            largest = std::max(largest, recs.size());
            for (const auto& j : recs) {
                std::uint64_t line = j["line"];
                // The line number is the input's, the output the job's own.
                EXPECT_EQ(j["input"], "in-" + std::to_string(line));
                EXPECT_EQ(j["stdout"], "in-" + std::to_string(line) + "\n");
                EXPECT_EQ(j["shard"], k);
                EXPECT_EQ(j["shards"], 3);
                if (std::string(by) == "line") EXPECT_EQ((line - 1) % 3, static_cast<std::uint64_t>(k));
                ++runs[line];
            }
        }
        ASSERT_EQ(runs.size(), static_cast<std::size_t>(n)) << by;
        for (const auto& [line, count] : runs) EXPECT_EQ(count, 1) << by << " line " << line;
        // Hashing spreads too: no shard gets nearly all or nearly none.
        EXPECT_GT(smallest, 15u) << by;
        EXPECT_LT(largest, 55u) << by;
    }
}

TEST(ParallelShard, AutoTakesTheSlurmArrayTaskOrTheKubernetesIndex) {
    auto lines_of = [](const run_result& r) {
        std::set<std::uint64_t> s;
        for (const auto& j : records(r.out)) s.insert(j["line"].get<std::uint64_t>());
        return s;
    };
    // --array=10-40:10 has ids 10, 20, 30, 40: id 30 is task 2 of 4.
    auto slurm = drover({"parallel", "--no-progress", "--json", "--shard", "auto", "--", "true"}, numbered_input(12),
                        {{"SLURM_ARRAY_TASK_ID", "30"},
                         {"SLURM_ARRAY_TASK_MIN", "10"},
                         {"SLURM_ARRAY_TASK_STEP", "10"},
                         {"SLURM_ARRAY_TASK_COUNT", "4"}});
    EXPECT_EQ(slurm.status.code(), 0) << slurm.err;
    EXPECT_EQ(lines_of(slurm), (std::set<std::uint64_t>{3, 7, 11}));
    auto k8s = drover({"parallel", "--no-progress", "--json", "--shard", "auto/5", "--", "true"}, numbered_input(12),
                      {{"JOB_COMPLETION_INDEX", "4"}});
    EXPECT_EQ(k8s.status.code(), 0) << k8s.err;
    EXPECT_EQ(lines_of(k8s), (std::set<std::uint64_t>{5, 10}));
}

TEST(ParallelShard, BadSlicesAreOneLineErrorsThatStartNothing) {
    test::temp_dir d("drover-shard");
    const fs::path trace = d.path / "ran";
    const std::vector<std::string> job = {"--", "touch", trace.string()};
    auto with = [&](std::vector<std::string> opts) {
        std::vector<std::string> a = {"parallel", "--no-progress"};
        a.insert(a.end(), opts.begin(), opts.end());
        a.insert(a.end(), job.begin(), job.end());
        return a;
    };
    expect_usage_error(drover(with({"--shard", "3/3"}), "x\n"), "--shard '3/3': K");
    expect_usage_error(drover(with({"--shard", "1/0"}), "x\n"), "--shard '1/0': N");
    expect_usage_error(drover(with({"--shard", "-1/2"}), "x\n"), "--shard '-1/2'");
    expect_usage_error(drover(with({"--shard", "1/99999999999999999999"}), "x\n"), "N (after the '/')");
    expect_usage_error(drover(with({"--shard", "1"}), "x\n"), "expected K/N");
    expect_usage_error(drover(with({"--shard", "auto"}), "x\n"), "neither a Slurm array task");
    expect_usage_error(drover(with({"--shard", "auto"}), "x\n", {{"JOB_COMPLETION_INDEX", "1"}}), "auto/N");
    expect_usage_error(drover(with({"--shard", "auto/3"}), "x\n", {{"JOB_COMPLETION_INDEX", "3"}}),
                       "JOB_COMPLETION_INDEX='3'");
    expect_usage_error(drover(with({"--shard", "auto"}), "x\n", {{"SLURM_ARRAY_TASK_ID", "1"}}),
                       "SLURM_ARRAY_TASK_MIN is not set");
    // An array given as a list (--array=1,5,7) has no step to find the task's index by.
    expect_usage_error(drover(with({"--shard", "auto"}), "x\n",
                              {{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}),
                       "--shard K/N");
    expect_usage_error(drover(with({"--shard", "auto/3"}), "x\n",
                              {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}),
                       "has 4 tasks");
    expect_usage_error(drover(with({"--shard", "0/2", "--shard-by", "name"}), "x\n"), "--shard-by");
    expect_usage_error(drover(with({"--stop-grace", "forever"}), "x\n"), "--stop-grace");
    expect_usage_error(drover(with({"--resume-failed"}), "x\n"), "--resume-failed needs --resume");
    EXPECT_FALSE(fs::exists(trace));
}

TEST(ParallelShard, ResumeRunsOnlyWhatIsNotDone) {
    test::temp_dir d("drover-shard");
    const fs::path results = d.path / "r.jsonl";
    const std::vector<std::string> job = {"--", "/bin/sh", "-c", "case {} in in-3|in-7) exit 1;; esac; echo {}"};
    auto run = [&](std::vector<std::string> opts, int lines) {
        std::vector<std::string> a = {"parallel", "--no-progress", "--json"};
        a.insert(a.end(), opts.begin(), opts.end());
        a.insert(a.end(), job.begin(), job.end());
        return drover(a, numbered_input(lines));
    };
    // A first run over 6 of the 10 inputs, as an array task cut short would leave them.
    auto first = run({}, 6);
    EXPECT_EQ(first.status.code(), 1) << first.err;
    write_file(results, first.out);
    auto again = run({"--resume", results.string()}, 10);
    EXPECT_EQ(again.status.code(), 1) << again.err;  // in-7 fails
    std::set<std::uint64_t> ran;
    for (const auto& j : records(again.out)) ran.insert(j["line"].get<std::uint64_t>());
    EXPECT_EQ(ran, (std::set<std::uint64_t>{7, 8, 9, 10}));
    EXPECT_NE(again.err.find("resumed: 6 inputs"), std::string::npos) << again.err;
    write_file(results, first.out + again.out);
    // --resume-failed runs the two failures again, and nothing else.
    auto failed = run({"--resume", results.string(), "--resume-failed"}, 10);
    ran.clear();
    for (const auto& j : records(failed.out)) ran.insert(j["line"].get<std::uint64_t>());
    EXPECT_EQ(ran, (std::set<std::uint64_t>{3, 7})) << failed.err;
    // Results of other input: refused, naming the line.
    auto other = drover({"parallel", "--no-progress", "--resume", results.string(), "--", "true"}, "in-1\nchanged\n");
    EXPECT_EQ(other.status.code(), 255) << other.err;
    EXPECT_NE(other.err.find("input line 2 is 'changed' but the results have 'in-2'"), std::string::npos) << other.err;
    // A file that is not results: the file and line are named.
    write_file(d.path / "bad.jsonl", first.out + "{\"line\": 1}\n");
    auto bad = drover({"parallel", "--no-progress", "--resume", (d.path / "bad.jsonl").string(), "--", "true"}, "x\n");
    expect_usage_error(bad, "bad.jsonl:7: no \"input\"");
    write_file(d.path / "junk.jsonl", "not json\n");
    expect_usage_error(drover({"parallel", "--no-progress", "--resume", (d.path / "junk.jsonl").string(), "--", "true"}, "x\n"),
                       "junk.jsonl:1: not a JSON object");
    expect_usage_error(drover({"parallel", "--no-progress", "--resume", (d.path / "none").string(), "--", "true"}, "x\n"),
                       "none: No such file");
    // Nested past any record's shape: refused before anything prints it recursively.
    write_file(d.path / "deep.jsonl", "{\"line\":1,\"input\":\"[[\",\"x\":" + std::string(100000, '[') +
                                          std::string(100000, ']') + ",\"verdict\":\"ok\",\"ok\":true}\n");
    auto deep = drover({"results", "merge", (d.path / "deep.jsonl").string()});
    EXPECT_EQ(deep.status.code(), 2);
    EXPECT_NE(deep.err.find("deep.jsonl:1: nested more than 64 levels"), std::string::npos) << deep.err;
}

// A stop (scancel's SIGTERM) gives the jobs --stop-grace, then kills them: a sandboxed job is
// PID 1 of its namespace and never sees a SIGTERM it has no handler for. The jobs cut short
// are marked, and a resumed run does them again.
TEST(ParallelShard, AStopKillsJobsAfterTheGraceAndTheirRecordsSayInterrupted) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for -p without a user namespace";
    test::temp_dir d("drover-shard");
    std::string out, err;
    int code = -1;
    spawn_spec s = test::piped({cli, "parallel", "--no-progress", "--json", "-p", "-U", "-r", "--stop-grace", "1s", "-j",
                                "4", "--", "/bin/sh", "-c", "test {} = 1 && exit 0; echo started; exec sleep 300"});
    s.in = stdio::pipe();
    test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        process p = co_await spawn(ex, s);
        const std::string input = "1\n2\n3\n";
        co_await p.write_stdin(input);
        p.close_stdin();
        line_reader lines(*p.stdout_pipe());
        auto first = co_await lines.next();  // job 1 is done
        EXPECT_TRUE(first.has_value());
        // Jobs 2 and 3 have started once the spawn is through; SIGTERM then reaches them as PID 1.
        asio::steady_timer t(ex);
        t.expires_after(300ms);
        co_await t.async_wait(asio::use_awaitable);
        (void)p.signal(SIGTERM);
        std::string rest;
        co_await read_to_end(*p.stdout_pipe(), rest);
        out = *first + "\n" + rest;
        co_await read_to_end(*p.stderr_pipe(), err);
        code = (co_await p.wait()).code();
    });
    EXPECT_EQ(code, 128 + SIGTERM) << err;
    auto recs = records(out);
    ASSERT_EQ(recs.size(), 3u) << out << err;
    std::set<std::uint64_t> interrupted;
    for (const auto& j : recs)
        if (j.value("interrupted", false)) interrupted.insert(j["line"].get<std::uint64_t>());
    EXPECT_EQ(interrupted, (std::set<std::uint64_t>{2, 3})) << out;
    write_file(d.path / "r.jsonl", out);
    auto resumed = drover({"parallel", "--no-progress", "--json", "--resume", (d.path / "r.jsonl").string(), "--", "echo"},
                          "1\n2\n3\n");
    std::set<std::uint64_t> ran;
    for (const auto& j : records(resumed.out)) ran.insert(j["line"].get<std::uint64_t>());
    EXPECT_EQ(ran, (std::set<std::uint64_t>{2, 3})) << resumed.err;
}

TEST(Results, MergeAndSummaryJoinShardsAndResumedRuns) {
    test::temp_dir d("drover-shard");
    const std::vector<std::string> job = {"--", "/bin/sh", "-c", "test {} != in-5"};
    std::vector<std::string> files;
    for (int k = 0; k < 3; ++k) {
        auto r = drover({"parallel", "--no-progress", "--json", "--shard", std::to_string(k) + "/3", job[0], job[1], job[2],
                         job[3]},
                        numbered_input(20));
        files.push_back((d.path / ("r" + std::to_string(k) + ".jsonl")).string());
        write_file(files.back(), r.out);
    }
    auto merged = drover({"results", "merge", files[0], files[1], files[2]});
    EXPECT_EQ(merged.status.code(), 0) << merged.err;
    auto recs = records(merged.out);
    ASSERT_EQ(recs.size(), 20u);
    for (std::size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(recs[i]["line"], i + 1);

    auto summary = drover({"results", "summary", "--json", files[0], files[1], files[2]});
    EXPECT_EQ(summary.status.code(), 1) << summary.err;  // line 5 failed
    auto s = nlohmann::json::parse(summary.out);
    EXPECT_EQ(s["inputs"], 20);
    EXPECT_EQ(s["failed"], nlohmann::json::array({5}));
    EXPECT_EQ(s["missing"], nlohmann::json::array());
    EXPECT_EQ(s["verdicts"]["ok"], 19);
    EXPECT_EQ(s["shards"]["1"]["done"], 7);  // lines 2, 5, …, 20
    EXPECT_EQ(s["shards"]["1"]["ok"], 6);

    // One shard lost, the others given twice: missing lines and lines done twice are named.
    auto partial = drover({"results", "summary", "--expect", "21", files[0], files[2], files[2]});
    EXPECT_EQ(partial.status.code(), 1);
    EXPECT_NE(partial.out.find("missing: lines 2, 5, 8, 11, 14, 17, 20-21"), std::string::npos) << partial.out;
    EXPECT_NE(partial.out.find("done more than once: lines 3, 6, 9, 12, 15, 18"), std::string::npos) << partial.out;

    // A rerun of the failed line completes the set.
    auto fixed = drover({"parallel", "--no-progress", "--json", "--resume", files[0], "--resume", files[1], "--resume",
                         files[2], "--resume-failed", "--", "true"},
                        numbered_input(20));
    write_file(d.path / "fix.jsonl", fixed.out);
    auto whole = drover({"results", "summary", "--expect", "20", files[0], files[1], files[2], (d.path / "fix.jsonl").string()});
    EXPECT_EQ(whole.status.code(), 0) << whole.out << whole.err;
    EXPECT_NE(whole.out.find("verdicts: ok 20"), std::string::npos) << whole.out;

    // Records of different inputs for one line: refused with both places named.
    write_file(d.path / "other.jsonl", "{\"line\":1,\"input\":\"x\",\"verdict\":\"ok\",\"ok\":true}\n");
    auto clash = drover({"results", "merge", files[0], (d.path / "other.jsonl").string()});
    EXPECT_EQ(clash.status.code(), 2);
    EXPECT_NE(clash.err.find("other.jsonl:1: input line 1 is 'x' here but 'in-1'"), std::string::npos) << clash.err;
    EXPECT_EQ(clash.out, "");
}

}  // namespace
}  // namespace drover

namespace drover {
namespace {

// --spawn-threads: a run with spawner threads gives every line's job once with its own output;
// bad counts, on the command line or in DROVER_SPAWN_THREADS, are one-line errors that start
// nothing.
TEST(ParallelSpawnThreads, EveryJobRunsOnceAndBadCountsAreRefused) {
    for (const char* threads : {"1", "3", "auto"}) {
        run_result r = drover({"parallel", "--no-progress", "-j", "16", "--spawn-threads", threads, "--json", "--",
                               "/bin/echo", "out-{}"},
                              numbered_input(300));
        ASSERT_EQ(r.status.code(), 0) << threads << ": " << r.err;
        std::multiset<std::string> outs;
        for (const auto& rec : records(r.out)) outs.insert(rec.at("stdout").get<std::string>());
        ASSERT_EQ(outs.size(), 300u) << threads;
        for (int i = 1; i <= 300; ++i)
            EXPECT_EQ(outs.count("out-in-" + std::to_string(i) + "\n"), 1u) << threads << " line " << i;
    }
    test::temp_dir d("drover-threads");
    const fs::path trace = d.path / "ran";
    for (const char* bad : {"0", "257", "two", "-1", "1.5"})
        expect_usage_error(drover({"parallel", "--no-progress", "--spawn-threads", bad, "--", "touch", trace.string()},
                                  "x\n"),
                           "--spawn-threads");
    expect_usage_error(drover({"parallel", "--no-progress", "--", "touch", trace.string()}, "x\n",
                              {{"DROVER_SPAWN_THREADS", "lots"}}),
                       "DROVER_SPAWN_THREADS=lots");
    EXPECT_FALSE(fs::exists(trace));
}

// DROVER_SPAWN_TABLE=own: every job spawned from a spawner's own descriptor table still runs
// once with its own output; a value that is not shared, own or auto is refused up front.
TEST(ParallelSpawnThreads, AnOwnTableRunsEveryJobOnceAndABadTableIsRefused) {
    for (const char* threads : {"1", "3"}) {
        run_result r = drover({"parallel", "--no-progress", "-j", "16", "--spawn-threads", threads, "--json", "--",
                               "/bin/echo", "out-{}"},
                              numbered_input(200), {{"DROVER_SPAWN_TABLE", "own"}});
        ASSERT_EQ(r.status.code(), 0) << threads << ": " << r.err;
        std::multiset<std::string> outs;
        for (const auto& rec : records(r.out)) outs.insert(rec.at("stdout").get<std::string>());
        ASSERT_EQ(outs.size(), 200u) << threads;
        for (int i = 1; i <= 200; ++i)
            EXPECT_EQ(outs.count("out-in-" + std::to_string(i) + "\n"), 1u) << threads << " line " << i;
    }
    test::temp_dir d("drover-table");
    const fs::path trace = d.path / "ran";
    for (const char* bad : {"mine", "OWN", "auto "})
        expect_usage_error(drover({"parallel", "--no-progress", "--", "touch", trace.string()}, "x\n",
                                  {{"DROVER_SPAWN_TABLE", bad}}),
                           std::string("DROVER_SPAWN_TABLE=") + bad);
    EXPECT_FALSE(fs::exists(trace));
}

}  // namespace
}  // namespace drover
