// examples/judge: judge.sh on the sample problem, every cell of the verdict table checked, as
// the user running the tests and, when that is root, as uid 65534 too (time limits hold there,
// the memory limit is RLIMIT_AS and its MLE is inferred). The escaping submission must get its
// ordinary verdict and leave nothing on the host; the judge must leave nothing behind.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;

// The repository, from this file's path (tests/examples/judge_test.cpp); empty if unknown.
fs::path repo() {
    fs::path self(__FILE__);
    if (!self.is_absolute()) return {};
    return self.parent_path().parent_path().parent_path();
}

bool executable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0; }

std::string read_sysctl(const char* path) {
    std::ifstream f(path);
    std::string v;
    f >> v;
    return v;
}

// Why user namespaces (and so --sandbox) are not available to `unprivileged`, or "".
std::string userns_missing(bool unprivileged) {
    if (read_sysctl("/proc/sys/user/max_user_namespaces") == "0") return "user.max_user_namespaces is 0";
    if (unprivileged) {
        if (read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0")
            return "kernel.unprivileged_userns_clone is 0";
        if (read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1")
            return "kernel.apparmor_restrict_unprivileged_userns is 1";
    }
    return {};
}

// What the escaping submission would leave on the host if it got out.
const char* const escape_traces[] = {"/etc/drover-judge-escape", "/var/tmp/drover-judge-escape",
                                     "/tmp/drover-judge-escape"};

struct table {
    std::vector<std::string> header;
    std::map<std::string, std::vector<std::string>> rows;  // submission -> cells, then the result
    std::string summary;
};

table parse_table(const std::string& out) {
    table t;
    std::istringstream in(out);
    std::string line;
    bool in_rows = true;
    while (std::getline(in, line)) {
        if (t.header.empty()) {
            std::istringstream words(line);
            for (std::string w; words >> w;) t.header.push_back(w);
            continue;
        }
        if (line.empty()) {
            if (!in_rows) break;  // the details follow the summary
            in_rows = false;
            continue;
        }
        if (!in_rows) {
            t.summary = line;
            continue;
        }
        std::istringstream words(line);
        std::string name;
        words >> name;
        std::vector<std::string> cells;
        for (std::string w; words >> w;) cells.push_back(w);
        t.rows[name] = cells;
    }
    return t;
}

// Runs judge.sh on the sample with the given prefix (setpriv for another user) and a TMPDIR of
// its own; checks every cell, the summary, the traces on the host and the cleanup.
void judge_sample(const std::vector<std::string>& prefix, uid_t owner) {
    const fs::path root = repo();
    const fs::path judge = root / "examples/judge/judge.sh";
    const fs::path sample = root / "examples/judge/sample";
    for (const char* trace : escape_traces)
        ASSERT_FALSE(fs::exists(trace)) << trace << " exists before the run: left by an earlier escape? remove it";

    const fs::path tmp = fs::temp_directory_path() / ("drover-judge-test-" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    fs::create_directory(tmp);
    ASSERT_EQ(::chown(tmp.c_str(), owner, owner), 0);
    struct cleanup {
        fs::path dir;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } remove_tmp{tmp};

    std::vector<std::string> argv = prefix;
    // Bounded even if something hangs: timeout(1) signals the judge's process group.
    if (executable("/usr/bin/timeout")) argv.insert(argv.end(), {"/usr/bin/timeout", "-k", "10", "180"});
    argv.insert(argv.end(), {"/bin/sh", judge.string(), sample.string()});
    for (const char* s : {"accepted.py", "accepted.sh", "crash.sh", "escape.sh", "hog.sh", "loop.sh", "wrong.sh"})
        argv.push_back((sample / "submissions" / s).string());
    spawn_spec spec = test::piped(argv);
    spec.env.set("DROVER", test::cli);
    spec.env.set("TMPDIR", tmp.string());
    spec.env.set("JUDGE_DETAILS", "1");
    for (const char* v : {"JUDGE_TIMEOUT", "JUDGE_MEMORY", "JUDGE_PIDS", "JUDGE_CPU_TIME", "JUDGE_MAX_OUTPUT",
                          "JUDGE_JOBS", "JUDGE_HIDE"})
        spec.env.unset(v);
    if (owner != ::getuid()) spec.env.set("HOME", "/nonexistent");
    // The hog must reach the memory limit before the time limit: on a loaded 2-CPU VM whose
    // page faults are slow it reached only ~110 MiB of the default 256 MiB in 5 s (TLE
    // instead of MLE). 96 MiB is still far above what the other submissions need.
    spec.env.set("JUDGE_TIMEOUT", "5");
    spec.env.set("JUDGE_MEMORY", "96M");
    auto r = test::run_spec(spec);
    const std::string log = r.out + r.err + "(" + r.status.str() + ")";
    EXPECT_EQ(r.status.code(), 0) << log;

    const bool python = executable("/usr/bin/python3");
    table t = parse_table(r.out);
    EXPECT_EQ(t.header, (std::vector<std::string>{"submission", "1-small", "2-negative", "3-many", "result"})) << log;
    const std::map<std::string, std::vector<std::string>> expected = {
        {"accepted.py", python ? std::vector<std::string>{"AC", "AC", "AC", "accepted"}
                               : std::vector<std::string>{"--", "--", "--", "not", "judged", "(no", "/usr/bin/python3)"}},
        {"accepted.sh", {"AC", "AC", "AC", "accepted"}},
        {"crash.sh", {"RE", "RE", "RE", "0/3", "passed"}},
        {"escape.sh", {"AC", "AC", "AC", "accepted"}},
        {"hog.sh", {"MLE", "MLE", "MLE", "0/3", "passed"}},
        {"loop.sh", {"TLE", "TLE", "TLE", "0/3", "passed"}},
        {"wrong.sh", {"AC", "WA", "WA", "1/3", "passed"}},
    };
    EXPECT_EQ(t.rows, expected) << log;
    EXPECT_EQ(t.summary, python ? "7 submissions judged on 3 tests (21 runs): 10 AC, 2 WA, 3 TLE, 3 MLE, 3 RE; 3 accepted"
                                : "6 submissions judged on 3 tests (18 runs): 7 AC, 2 WA, 3 TLE, 3 MLE, 3 RE; 2 accepted")
        << log;

    // The escaping submission saw every attempt blocked (its AC says so too) and left nothing.
    std::size_t blocked = 0, pos = 0;
    while ((pos = r.out.find(": blocked\n", pos)) != std::string::npos) ++blocked, ++pos;
    EXPECT_EQ(blocked, 3u * 11u) << log;
    EXPECT_EQ(r.out.find("WORKED"), std::string::npos) << log;
    for (const char* trace : escape_traces) EXPECT_FALSE(fs::exists(trace)) << trace << "\n" << log;
    // The judge removed its stage.
    EXPECT_TRUE(fs::is_empty(tmp)) << log;
}

class Judge : public ::testing::Test {
protected:
    void SetUp() override {
        if (repo().empty()) GTEST_SKIP() << "__FILE__ is not an absolute path: cannot find examples/judge";
        if (!executable(repo() / "examples/judge/judge.sh")) GTEST_SKIP() << "examples/judge/judge.sh is missing";
    }
};

TEST_F(Judge, SampleTable) {
    if (std::string why = userns_missing(::geteuid() != 0); !why.empty())
        GTEST_SKIP() << "--sandbox needs user namespaces: " << why;
    judge_sample({}, ::getuid());
}

// As a user drover has no cgroup: the time limit still holds, memory is RLIMIT_AS (the hog's
// own allocation fails, and the judge infers MLE from what it says on stderr), the table is the same.
TEST_F(Judge, SampleTableAsUnprivilegedUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "SampleTable already ran as an unprivileged user";
    if (!executable("/usr/bin/setpriv")) GTEST_SKIP() << "setpriv(1) from util-linux is missing";
    if (std::string why = userns_missing(true); !why.empty())
        GTEST_SKIP() << "--sandbox as a user needs unprivileged user namespaces: " << why;
    const std::vector<std::string> nobody = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
    // uid 65534 must reach the judge, the sample and drover.
    std::vector<std::string> probe = nobody;
    probe.insert(probe.end(), {"/bin/sh", "-c", "test -r \"$1\" && test -r \"$2\" && test -x \"$3\"", "probe",
                               (repo() / "examples/judge/judge.sh").string(),
                               (repo() / "examples/judge/sample/tests/3-many.out").string(), test::cli});
    if (!test::run_spec(test::piped(probe)).status.success())
        GTEST_SKIP() << "uid 65534 cannot read examples/judge or run " << test::cli;
    judge_sample(nobody, 65534);
}

}  // namespace
}  // namespace drover
