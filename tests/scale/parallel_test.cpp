// `drover parallel`: output kept together per job, exit status counts failures, --json, usage.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace drover {
namespace {

struct cli_result {
    int code = -1;
    std::string out, err;
};

// Runs `drover parallel ARGS` (words split by sh) with `input` on a pipe to its stdin. No
// files: tests run concurrently in separate processes.
cli_result parallel(const std::string& input, const std::string& args) {
    spawn_spec s = test::piped({"/bin/sh", "-c", std::string(test::cli) + " parallel " + args});
    s.in = stdio::pipe();
    run_result r = test::run_spec(s, input);
    return {r.status.exited() ? r.status.code() : -1, std::move(r.out), std::move(r.err)};
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> v;
    std::stringstream ss(text);
    for (std::string l; std::getline(ss, l);) v.push_back(l);
    return v;
}

TEST(parallel_cli, each_jobs_output_stays_together) {
    std::string input;
    for (int i = 0; i < 12; ++i) input += "job" + std::to_string(i) + "\n";
    // Each job writes three lines with pauses between: unbuffered, they would interleave.
    auto r = parallel(input, "-j 6 -- sh -c 'for k in 1 2 3; do echo $0-$k; sleep 0.02; done' {}");
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 36u);
    std::map<std::string, int> seen;
    for (std::size_t i = 0; i < lines.size(); i += 3) {
        std::string job = lines[i].substr(0, lines[i].find('-'));
        EXPECT_EQ(lines[i], job + "-1");
        EXPECT_EQ(lines[i + 1], job + "-2");
        EXPECT_EQ(lines[i + 2], job + "-3");
        ++seen[job];
    }
    EXPECT_EQ(seen.size(), 12u);
}

TEST(parallel_cli, exit_status_is_the_number_of_failed_jobs) {
    auto r = parallel("0\n3\n0\n1\n5\n", "-j 3 -- sh -c 'exit $0'");
    EXPECT_EQ(r.code, 3) << r.err;
    // Each failure is named on stderr.
    EXPECT_NE(r.err.find("(3): exited with code 3"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("(5): exited with code 5"), std::string::npos) << r.err;
}

TEST(parallel_cli, more_than_a_hundred_failures_give_101) {
    std::string input;
    for (int i = 0; i < 105; ++i) input += std::to_string(i) + "\n";
    auto r = parallel(input, "-j 16 -- /bin/false");
    EXPECT_EQ(r.code, 101) << r.err;
}

// Later lines finish first (each sleeps less than the one before); -k prints in input order
// all the same, and the end says how many failed.
TEST(parallel_cli, keep_order_prints_in_input_order_and_a_summary_ends_a_failed_run) {
    std::string input;
    for (int i = 0; i < 8; ++i) input += std::to_string(i) + "\n";
    const std::string job = "-- sh -c 'sleep 0.$((8 - $0)); echo line-$0; [ $0 != 3 ] && [ $0 != 6 ]' {}";
    auto r = parallel(input, "-j 8 --keep-order " + job);
    EXPECT_EQ(r.code, 2) << r.err;
    std::vector<std::string> want;
    for (int i = 0; i < 8; ++i) want.push_back("line-" + std::to_string(i));
    EXPECT_EQ(lines_of(r.out), want);
    auto err = lines_of(r.err);
    ASSERT_EQ(err.size(), 3u) << r.err;
    // The failure lines in input order too, then the summary.
    EXPECT_NE(err[0].find("line 4 (3)"), std::string::npos) << r.err;
    EXPECT_NE(err[1].find("line 7 (6)"), std::string::npos) << r.err;
    EXPECT_EQ(err[2], "drover: parallel: 8 jobs: 6 succeeded, 2 failed (exit status 2)");
    // --json too; and without -k the same run finishes (and prints) out of order.
    auto j = parallel(input, "-j 8 -k --json " + job);
    auto jl = lines_of(j.out);
    ASSERT_EQ(jl.size(), 8u) << j.err;
    for (std::size_t i = 0; i < jl.size(); ++i) EXPECT_EQ(nlohmann::json::parse(jl[i])["input"], std::to_string(i));
    auto unordered = parallel(input, "-j 8 " + job);
    EXPECT_NE(lines_of(unordered.out), want) << "the jobs did not finish out of order: -k was not tested";
    // A run where all succeed and no bar is shown ends silently.
    auto ok = parallel("a\nb\n", "-k -- true");
    EXPECT_EQ(ok.code, 0);
    EXPECT_EQ(ok.err, "");
}

TEST(parallel_cli, json_gives_one_result_per_input_line) {
    auto r = parallel("a\nb\nc\n", "-j 2 --json -- sh -c 'echo out-$0; echo err-$0 >&2; [ $0 != b ]' {}");
    EXPECT_EQ(r.code, 1) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 3u);
    std::map<std::string, nlohmann::json> by_input;
    for (const auto& l : lines) {
        auto j = nlohmann::json::parse(l);
        by_input[j["input"].get<std::string>()] = j;
    }
    ASSERT_EQ(by_input.size(), 3u);
    EXPECT_EQ(by_input["a"]["stdout"], "out-a\n");
    EXPECT_EQ(by_input["a"]["stderr"], "err-a\n");
    EXPECT_EQ(by_input["a"]["exit_code"], 0);
    EXPECT_EQ(by_input["b"]["exit_code"], 1);
    EXPECT_EQ(by_input["b"]["ok"], false);
    EXPECT_GT(by_input["c"]["duration_ms"].get<double>(), 0.0);
}

TEST(parallel_cli, a_command_that_cannot_start_counts_as_failed) {
    auto r = parallel("x\n", "-- /nonexistent/drover-test {}");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("/nonexistent/drover-test"), std::string::npos) << r.err;
}

TEST(parallel_cli, output_past_the_limit_is_cut_with_a_marker) {
    auto r = parallel("1\n", std::string("--max-output 1000 -- ") + test::helper + " flood 5000");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("[drover: 4000 bytes of stdout dropped]"), std::string::npos);
    EXPECT_LT(r.out.size(), 1100u);
}

// --progress draws the status line into a pipe too (a program may read it): each draw starts
// with carriage return and erase-line, the line is erased at the end, and the summary a
// person watching gets comes last.
TEST(parallel_cli, progress_into_a_pipe_is_the_redrawn_line_then_the_summary) {
    auto r = parallel("a\nb\nc\n", "-j 2 --progress -- echo out-{}");
    ASSERT_EQ(r.code, 0) << r.err;
    auto out = lines_of(r.out);
    std::sort(out.begin(), out.end());
    EXPECT_EQ(out, (std::vector<std::string>{"out-a", "out-b", "out-c"}));
    const std::string erase = "\r\033[K";
    const std::string summary = "drover: parallel: 3 jobs: 3 succeeded, 0 failed (exit status 0)\n";
    ASSERT_GT(r.err.size(), erase.size() + summary.size()) << r.err;
    EXPECT_EQ(r.err.substr(r.err.size() - erase.size() - summary.size()), erase + summary) << r.err;
    // What lies between the erases: drawn lines (or nothing, where a line was erased for output).
    std::string drawn = r.err.substr(0, r.err.size() - erase.size() - summary.size());
    ASSERT_EQ(drawn.rfind(erase, 0), 0u) << "the first draw starts the stream: " << drawn;
    std::vector<std::string> lines;
    for (std::size_t at = 0; at < drawn.size();) {
        std::size_t next = drawn.find(erase, at + erase.size());
        if (next == std::string::npos) next = drawn.size();
        std::string line = drawn.substr(at + erase.size(), next - at - erase.size());
        if (!line.empty()) lines.push_back(line);
        at = next;
    }
    ASSERT_FALSE(lines.empty());
    // Before any input was read: an empty bar, and a total that may still grow. (A throttle
    // notice may follow the counts when the machine is short of memory or tasks.)
    EXPECT_EQ(lines.front(), "[" + std::string(30, '.') + "] 0/0+ done, 0 failed, 0 running");
    const std::regex line_format(R"(\[[#.]{30}\] [0-3]/[0-3]\+? done, 0 failed, [0-2] running(, .+)?)");
    for (const auto& l : lines) EXPECT_TRUE(std::regex_match(l, line_format)) << l;
    // Each job printed output, so the line was redrawn at once after each: the last job's shows.
    const std::regex all_done(R"(\[#{30}\] 3/3\+? done, 0 failed, [0-2] running(, .+)?)");
    auto shows_all_done = [&](const std::string& l) { return std::regex_match(l, all_done); };
    EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), shows_all_done)) << r.err;
}

TEST(parallel_cli, no_progress_wins_over_progress) {
    auto r = parallel("a\n", "--progress --no-progress -- true");
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.err, "");
}

TEST(parallel_cli, bad_flags_give_one_line_and_exit_255) {
    auto r = parallel("x\n", "--jobs 0 -- true");
    EXPECT_EQ(r.code, 255);
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("drover: ", 0), 0u) << r.err;
    r = parallel("x\n", "--hostname h -- true");
    EXPECT_EQ(r.code, 255);
    EXPECT_NE(r.err.find("uts"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
}

TEST(parallel_cli, jobs_run_in_the_requested_namespaces) {
    auto r = parallel("a\nb\n", "-j 2 -U -u -p -m --hostname box --json -- sh -c 'echo $(hostname) $$' {}");
    ASSERT_EQ(r.code, 0) << r.err;
    for (const auto& l : lines_of(r.out)) {
        auto j = nlohmann::json::parse(l);
        // Seen from inside: the hostname set for the sandbox, and the shell is PID 1.
        EXPECT_EQ(j["stdout"], "box 1\n") << l;
    }
}

}  // namespace
}  // namespace drover
