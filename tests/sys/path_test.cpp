// $PATH search: the spawn plan's candidates (execvp's order) and finding a tool.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "drover/sys/path.hpp"

namespace drover::sys {
namespace {

TEST(Path, CandidatesFollowExecvp) {
    EXPECT_EQ(path_candidates("/a:/b", "x"), (std::vector<std::string>{"/a/x", "/b/x"}));
    // Empty entries (leading, doubled, trailing) are the current directory.
    EXPECT_EQ(path_candidates(":/a::", "x"), (std::vector<std::string>{"./x", "/a/x", "./x", "./x"}));
    EXPECT_EQ(path_candidates("/a", "sub/x"), (std::vector<std::string>{"sub/x"}));
    EXPECT_EQ(path_candidates("", "x"), (std::vector<std::string>{"./x"}));
}

TEST(Path, FindsOnlyExecutableFilesAndNeverTheCurrentDirectory) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/drover-path-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    fs::path d = tmpl;
    fs::create_directories(d / "a" / "tool");  // a directory of the name: not a program
    fs::create_directories(d / "b");
    std::ofstream(d / "b" / "tool") << "#!/bin/sh\n";  // not executable
    fs::create_directories(d / "c");
    std::ofstream(d / "c" / "tool") << "#!/bin/sh\n";
    fs::permissions(d / "c" / "tool", fs::perms::owner_all);
    std::string list = (d / "a").string() + ":" + (d / "b").string() + ":" + (d / "c").string();
    EXPECT_EQ(find_in_path("tool", list.c_str()), (d / "c" / "tool").string());
    EXPECT_EQ(find_in_path("tool", (d / "a").string().c_str()), "");
    // An empty entry would be "." : never searched, even with a tool there.
    std::string cwd = fs::current_path();
    fs::current_path(d / "c");
    EXPECT_EQ(find_in_path("tool", ":"), "");
    fs::current_path(cwd);
    fs::remove_all(d);
}

}  // namespace
}  // namespace drover::sys
