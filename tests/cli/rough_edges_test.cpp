// What a new user ran into, each answered in one line that says what they did.
#include <gtest/gtest.h>

#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

using test::cli;

run_result drover(std::vector<std::string> args) {
    std::vector<std::string> argv = {cli};
    argv.insert(argv.end(), args.begin(), args.end());
    spawn_spec s = test::piped(argv);
    s.in = stdio::null();
    return test::run_spec(s);
}

void expect_one_line(const run_result& r, int code, const std::string& text) {
    EXPECT_EQ(r.status.code(), code) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(RoughEdges, ADirectoryIsNotCalledNotExecutable) {
    expect_one_line(drover({"run", "--", "/tmp"}), 126, "execve /tmp: Permission denied (it is a directory, not a program)");
}

TEST(RoughEdges, AnIdMapNeedsItsThreeParts) {
    expect_one_line(drover({"run", "--map-user=0:0", "--", "true"}), 2, "--map-user: '0:0' is not INNER:OUTER:COUNT");
    expect_one_line(drover({"run", "--map-group=0:0:1:1", "--", "true"}), 2, "--map-group: '0:0:1:1'");
}

TEST(RoughEdges, AnUnreadableConfigIsNotGivenALineAndColumn) {
    auto r = drover({"supervise", "/nonexistent/drover.toml"});
    expect_one_line(r, 2, "drover: supervise: /nonexistent/drover.toml: cannot read the file");
    EXPECT_EQ(r.err.find(":0:0"), std::string::npos) << r.err;
}

TEST(RoughEdges, BenchWithNothingToMeasureSaysSo) {
    expect_one_line(drover({"bench", "--no-matrix"}), 2, "--no-matrix leaves nothing to measure");
}

TEST(RoughEdges, CountsReadAsNumbersInHelp) {
    auto help = drover({"parallel", "--help"});
    EXPECT_NE(help.out.find("-j,--jobs N "), std::string::npos) << help.out;
    EXPECT_EQ(help.out.find("UINT:UINT"), std::string::npos) << help.out;
    expect_one_line(drover({"parallel", "-j", "0", "true"}), 2, "--jobs: Value 0 not in range 1 to 1048576");
}

}  // namespace
}  // namespace drover
