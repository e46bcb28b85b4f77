// What a new user ran into, each answered in one line that says what they did.
#include <gtest/gtest.h>

#include <cctype>
#include <algorithm>
#include <regex>
#include <sstream>

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
    expect_one_line(drover({"parallel", "-j", "0", "true"}), 255, "--jobs: Value 0 not in range 1 to 1048576");
}

TEST(RoughEdges, AnUnknownCommandIsCalledOneAndTheCommandsListed) {
    expect_one_line(drover({"foo"}), 2, "drover: unknown command 'foo' (commands: run, parallel, bench, supervise");
    auto v = drover({"version"});
    expect_one_line(v, 2, "unknown command 'version'");
    EXPECT_NE(v.err.find("drover --version"), std::string::npos) << v.err;
    EXPECT_EQ(v.err.find("generate-docs"), std::string::npos) << v.err;  // hidden, for the build
}

TEST(RoughEdges, AnUnknownOptionIsNamedAloneNotWithTheDoubleDash) {
    auto r = drover({"run", "--bogus", "--", "true"});
    expect_one_line(r, 2, "drover: run: unknown option --bogus (drover help run lists them)");
    EXPECT_EQ(r.err.find(" -- "), std::string::npos) << r.err;
    expect_one_line(drover({"parallel", "--bogus", "--", "true"}), 255, "drover: parallel: unknown option --bogus");
}

TEST(RoughEdges, InitSpeaksInTheSameStyle) {
    expect_one_line(drover({"init", "--", "/nonexistent/x"}), 127, "drover: init: cannot run /nonexistent/x");
}

TEST(RoughEdges, HelpIsInOneStyleAndNamesWhatOptionsTake) {
    auto help = drover({"run", "--help"});
    EXPECT_NE(help.out.find("-h,--help                   print this help and exit"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--uid UID "), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--bind SRC[:DST] "), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--timeout DURATION "), std::string::npos) << help.out;
    EXPECT_EQ(help.out.find(" TEXT "), help.out.find("command TEXT ") + 7) << help.out;  // only the command
    EXPECT_EQ(drover({"--help"}).out.find("Print this"), std::string::npos);
    EXPECT_NE(help.out.find("--userns auto|own "), std::string::npos) << help.out;
    auto parallel = drover({"parallel", "--help"}).out;
    EXPECT_NE(parallel.find("--on-max-output truncate|kill"), std::string::npos) << parallel;
    EXPECT_NE(parallel.find("--shard-by line|hash "), std::string::npos) << parallel;
}

// Every help text, the top one and each (sub)command's: subcommands are listed with lower-case
// descriptions like the options', and no option shows CLI11's check text ("auto|own:{auto,own}",
// "UINT:UINT"). New subcommands are found from the listings, so they are checked too.
TEST(RoughEdges, EveryHelpTextIsInOneStyle) {
    std::vector<std::vector<std::string>> pending = {{}};
    int checked = 0;
    while (!pending.empty()) {
        std::vector<std::string> path = pending.back();
        pending.pop_back();
        std::vector<std::string> args = path;
        args.push_back("--help");
        auto r = drover(args);
        std::string where = "drover";
        for (const auto& p : path) where += " " + p;
        ASSERT_EQ(r.status.code(), 0) << where << ": " << r.err;
        ++checked;
        EXPECT_EQ(r.out.find(":{"), std::string::npos) << where << " --help:\n" << r.out;
        // An option named by its C++ type, not by what it takes ("--seed UINT", "UINT:UINT";
        // positionals may say TEXT, and --symlink's TEXT:DST is the link's text).
        std::smatch typed;
        const std::regex cli11_type("--[a-z-]+ (TEXT|INT|UINT|FLOAT)(\\s|:(TEXT|INT|UINT|FLOAT|\\{|\\[))");
        EXPECT_FALSE(std::regex_search(r.out, typed, cli11_type))
            << where << ": " << typed.str(0);
        // Each option's description starts in lower case, like the subcommands' (a word in
        // capitals, JSON or PID, may start it).
        std::istringstream all(r.out);
        const std::regex option_line("^\\s+-\\S.*?\\s{2,}(\\S+)");
        for (std::string line; std::getline(all, line);) {
            std::smatch m;
            if (!std::regex_search(line, m, option_line)) continue;
            const std::string first = m[1];
            const bool acronym = std::all_of(first.begin(), first.end(), [](char c) { return !std::islower(static_cast<unsigned char>(c)); });
            EXPECT_TRUE(acronym || !std::isupper(static_cast<unsigned char>(first[0])))
                << where << ": option description not in lower case: " << line;
        }
        // The "Subcommands:" block: "  NAME   description" up to the blank line that ends it.
        auto block = r.out.find("\nSubcommands:\n");
        if (block == std::string::npos) continue;
        std::istringstream lines(r.out.substr(block + 14));
        for (std::string line; std::getline(lines, line) && !line.empty();) {
            std::istringstream words(line);
            std::string name, first;
            words >> name >> first;
            if (name.empty()) continue;
            EXPECT_FALSE(first.empty()) << where << ": " << name << " has no description";
            if (!first.empty())
                EXPECT_FALSE(std::isupper(static_cast<unsigned char>(first[0])))
                    << where << ": subcommand description not in lower case: " << line;
            if (name == "help") continue;  // its own topics are the commands listed here
            auto sub = path;
            sub.push_back(name);
            pending.push_back(sub);
        }
    }
    EXPECT_GE(checked, 10);  // drover, its 8 commands, bench compare, results merge/summary
}

// The missing-`--` hint goes only where a command is taken: to `drover bench foo` it would
// suggest a command that bench does not take.
TEST(RoughEdges, OnlyACommandTakingSubcommandHintsAtTheDoubleDash) {
    auto bench = drover({"bench", "foo"});
    expect_one_line(bench, 2, "drover: bench: unexpected arguments: foo (drover help bench says what it takes)");
    EXPECT_EQ(bench.err.find("a command goes after --"), std::string::npos) << bench.err;
    auto supervise = drover({"supervise", "a.toml", "b.toml"});
    expect_one_line(supervise, 2, "drover: supervise: unexpected arguments: b.toml");
    EXPECT_EQ(supervise.err.find("a command goes after --"), std::string::npos) << supervise.err;
    // run, parallel and init take their command last: a stray word starts it, and what follows,
    // dash-options too, are its arguments (so their `--` can be left out without a hint).
    auto run = drover({"run", "/bin/echo", "ok", "-m", "--bogus"});
    EXPECT_EQ(run.status.code(), 0) << run.err;
    EXPECT_EQ(run.out, "ok -m --bogus\n") << run.err;
    auto init = drover({"init", "/bin/echo", "ok", "-x"});
    EXPECT_EQ(init.status.code(), 0) << init.err;
    EXPECT_EQ(init.out, "ok -x\n") << init.err;
}

// The library's checks speak of spec fields (hostname, uid_map, fs.ops[4]); the command line
// says them with the flag, and the value, that the user typed.
TEST(RoughEdges, SpecErrorsNameTheFlagNotTheField) {
    expect_one_line(drover({"run", "--hostname", "h", "--", "true"}), 2, "run: --hostname: needs the uts namespace (add -u)");
    expect_one_line(drover({"run", "-U", "--monotonic", "5", "--", "true"}), 2, "run: --monotonic: needs the time namespace (add -T)");
    expect_one_line(drover({"run", "--rlimit", "NOFILE=10:5", "--", "true"}), 2, "run: --rlimit NOFILE=10:5: soft limit above hard limit");
    expect_one_line(drover({"run", "--map-user", "0:1000:1", "--map-user", "0:1001:1", "--", "true"}), 2,
                    "run: --map-user 0:1001:1: overlaps --map-user 0:1000:1 inside");
    expect_one_line(drover({"run", "-m", "--bind", "/:rel", "--", "true"}), 2, "run: --bind /:rel: target must be an absolute path");
    expect_one_line(drover({"run", "--sandbox", "--tmpfs", "/x/../y", "--", "true"}), 2, "run: --tmpfs /x/../y: target must not contain '..'");
    expect_one_line(drover({"run", "-U", "--uid", "5", "--", "true"}), 2, "run: --uid: 5 is not mapped inside (only 0 is: add --map-user)");
    expect_one_line(drover({"parallel", "--hostname", "h", "echo"}), 255, "parallel: --hostname: needs the uts namespace (add -u)");
    for (const char* internal : {"uid_map", "fs.ops", "rlimits[", "mount_proc", "monotonic_offset"}) {
        for (const auto& args : std::vector<std::vector<std::string>>{
                 {"run", "-U", "--map-user", "0:1000:1", "--map-user", "0:1000:1", "--", "true"},
                 {"run", "--sandbox", "--tmpfs", "rel", "--", "true"},
                 {"run", "--rlimit", "NOFILE=10:5", "--", "true"},
                 {"run", "-U", "--monotonic", "5", "--", "true"}}) {
            auto r = drover(args);
            EXPECT_EQ(r.err.find(internal), std::string::npos) << r.err;
        }
    }
}

}  // namespace
}  // namespace drover
