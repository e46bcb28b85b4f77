// Where users look: `drover --help` lists the commands, `drover help CMD` is CMD's --help, and
// the generated man pages and bash completion know every option the commands accept.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;
using test::cli;

run_result drover(std::vector<std::string> args) {
    std::vector<std::string> argv = {cli};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::run_spec(test::piped(argv));
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The long options a command's --help lists ("--jobs", "--shard", ...).
std::set<std::string> long_options(const std::string& help) {
    std::set<std::string> out;
    std::regex opt("(^|[ ,])(--[a-z][a-z0-9-]*)");
    for (auto it = std::sregex_iterator(help.begin(), help.end(), opt); it != std::sregex_iterator(); ++it)
        out.insert((*it)[2]);
    return out;
}

const std::vector<std::string> commands = {"run", "parallel", "bench", "supervise", "init", "ctl", "results"};

TEST(Docs, HelpListsTheCommandsAndHelpCmdIsItsHelp) {
    auto top = drover({"--help"});
    EXPECT_EQ(top.status.code(), 0);
    for (const std::string& c : commands) EXPECT_NE(top.out.find("  " + c), std::string::npos) << c << "\n" << top.out;
    EXPECT_EQ(top.out.find("generate-docs"), std::string::npos) << "a build-only command is listed";
    for (const std::string& c : commands) {
        auto direct = drover({c, "--help"});
        auto via = drover({"help", c});
        EXPECT_EQ(via.status.code(), 0) << via.err;
        EXPECT_EQ(via.out, direct.out) << c;
    }
    EXPECT_EQ(drover({"help", "results", "summary"}).out, drover({"results", "summary", "--help"}).out);
    auto bad = drover({"help", "paralel"});
    EXPECT_EQ(bad.status.code(), 2);
    EXPECT_NE(bad.err.find("help: no command 'paralel'"), std::string::npos) << bad.err;
}

TEST(Docs, ManPagesAndBashCompletionKnowEveryOption) {
    test::temp_dir d("drover-docs");
    auto gen = drover({"generate-docs", "--man", (d.path / "man").string(), "--completions", (d.path / "comp").string()});
    ASSERT_EQ(gen.status.code(), 0) << gen.err;
    const std::string bash_script = read_file(d.path / "comp" / "drover.bash");
    for (const std::string& c : commands) {
        const fs::path page = d.path / "man" / ("drover-" + c + ".1");
        ASSERT_TRUE(fs::exists(page)) << page;
        const std::string man = read_file(page);
        std::string upper;
        for (char ch : c) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        EXPECT_NE(man.find(".TH DROVER\\-" + upper + " 1"), std::string::npos) << man.substr(0, 200);
        auto help = drover({c, "--help"});
        for (const std::string& opt : long_options(help.out)) {
            if (opt == "--help") continue;
            // roff spells '-' as '\-'.
            std::string roffed;
            for (char ch : opt) roffed += ch == '-' ? std::string("\\-") : std::string(1, ch);
            EXPECT_NE(man.find(roffed), std::string::npos) << c << " " << opt << " missing from its man page";
            EXPECT_NE(bash_script.find(" " + opt), std::string::npos) << c << " " << opt << " missing from the completion";
        }
    }
    // Help's lower-case fragment is the NAME line as man pages have it; the body makes it a sentence.
    const std::string run_page = read_file(d.path / "man" / "drover-run.1");
    EXPECT_NE(run_page.find(".SH NAME\ndrover\\-run \\- run a command in new namespaces\n"), std::string::npos)
        << run_page;
    EXPECT_NE(run_page.find(".SH DESCRIPTION\nRun a command in new namespaces.\n"), std::string::npos) << run_page;
    const std::string top_page = read_file(d.path / "man" / "drover.1");
    EXPECT_NE(top_page.find("\nRun a command in new namespaces. See \\fBdrover\\-run\\fR(1)."), std::string::npos)
        << top_page;
    EXPECT_TRUE(fs::exists(d.path / "man" / "drover.1"));
    EXPECT_TRUE(fs::exists(d.path / "man" / "drover-results-summary.1"));
    EXPECT_TRUE(fs::exists(d.path / "comp" / "_drover"));
    EXPECT_TRUE(fs::exists(d.path / "comp" / "drover.fish"));

    // The completion as bash runs it: subcommands, then a subcommand's options.
    if (::access("/bin/bash", X_OK) != 0) GTEST_SKIP() << "no bash";
    auto complete = [&](const std::string& words) {
        std::string script = "source '" + (d.path / "comp" / "drover.bash").string() + "'; COMP_WORDS=(" + words +
                             "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _drover; [ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\\n' \"${COMPREPLY[@]}\"";
        return test::run_spec(test::piped({"/bin/bash", "-c", script})).out;
    };
    EXPECT_EQ(complete("drover par"), "parallel\n");
    EXPECT_EQ(complete("drover parallel --shar"), "--shard\n--shard-by\n--share-net\n");
    EXPECT_EQ(complete("drover parallel --stop"), "--stop-grace\n");
    EXPECT_EQ(complete("drover results s"), "summary\n");
    EXPECT_EQ(complete("drover results summary --ex"), "--expect\n");
    EXPECT_EQ(complete("drover -- --sha"), "") << "after --, only files";

    // Each page renders without a warning where man is installed.
    if (::access("/usr/bin/man", X_OK) != 0) GTEST_SKIP() << "man(1) not installed: pages not rendered";
    for (const auto& e : fs::directory_iterator(d.path / "man")) {
        auto r = test::run_spec(test::piped({"/bin/sh", "-c", "MANWIDTH=80 man --warnings -l '" + e.path().string() +
                                                                  "' 2>&1 >/dev/null"}));
        EXPECT_EQ(r.out, "") << e.path();
    }
}

}  // namespace
}  // namespace drover
