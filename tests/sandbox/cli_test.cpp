// The sandbox and limit flags as a user types them: every bad value is one located line and
// exit 2 with nothing started; good ones reach the job (seen from inside); parallel's JSON
// carries each job's verdict; the supervisor's sandbox fields.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "drover/supervise/config.hpp"
#include "support.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;

run_result drover(std::vector<std::string> args, std::string input = {},
                  const std::vector<std::pair<std::string, std::string>>& env = {}) {
    std::vector<std::string> argv = {test::cli};
    argv.insert(argv.end(), args.begin(), args.end());
    spawn_spec s = test::piped(argv);
    s.in = stdio::pipe();
    for (const auto& [name, value] : env) s.env.set(name, value);
    return test::run_spec(s, std::move(input));
}

// The {"warm_pool": {…}} object `parallel --json` writes on stderr; null if there is none.
nlohmann::json warm_pool_of(const std::string& err) {
    auto at = err.find("{\"warm_pool\"");
    if (at == std::string::npos) return nullptr;
    return nlohmann::json::parse(err.substr(at, err.find('\n', at) - at))["warm_pool"];
}

// `parallel --json` over `count` inputs ("job-0"…) in pre-started sandboxed jobs from `warm`
// sets: each prints its input, then execs the helper (so it is still PID 1), which prints
// what it sees.
run_result parallel_prestarted(int count, const std::string& warm,
                               const std::vector<std::pair<std::string, std::string>>& env = {},
                               bool prestart = true) {
    std::string input;
    for (int i = 0; i < count; ++i) input += "job-" + std::to_string(i) + "\n";
    std::vector<std::string> argv = {"parallel", "--json", "--no-progress", "-j", "2", "--warm", warm};
    if (prestart) argv.push_back("--warm-prestart");
    argv.insert(argv.end(), {"--sandbox", "--timeout", "60", "--setenv", "ASAN_OPTIONS=detect_leaks=0", "--",
                             "/bin/sh", "-c", "echo \"$0\"; exec \"$1\" inside", "{}", test::helper});
    return drover(argv, input, env);
}

struct temp_file {
    std::string path;
    explicit temp_file(const std::string& text) {
        path = "/tmp/drover-cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
        std::ofstream(path) << text;
    }
    ~temp_file() { std::remove(path.c_str()); }
    static inline int counter = 0;
};

TEST(SandboxCli, BadValuesAreOneLineExitTwoAndStartNothing) {
    const std::string marker = "/tmp/drover-sandbox-cli-marker-" + std::to_string(::getpid());
    temp_file policy("[[rule]]\naction = \"kill\"\nsyscalls = [\"nope\"]\nbogus = 1\n");
    struct bad {
        std::vector<std::string> flags;
        std::string message;
    };
    const bad cases[] = {
        {{"--timeout", "-1"}, "drover: run: --timeout: '-1' is not a positive duration (2, 1.5s, 500ms, 1m; at most a year)\n"},
        {{"--timeout", "nan"}, "drover: run: --timeout: 'nan' is not a positive duration (2, 1.5s, 500ms, 1m; at most a year)\n"},
        {{"--timeout", "1e999"}, "drover: run: --timeout: '1e999' is not a positive duration (2, 1.5s, 500ms, 1m; at most a year)\n"},
        {{"--timeout", "0"}, "drover: run: --timeout: '0' is not a positive duration (2, 1.5s, 500ms, 1m; at most a year)\n"},
        {{"--cpu-time", "99999999999"}, "drover: run: --cpu-time: '99999999999' is not a positive duration (2, 1.5s, 500ms, 1m; at most a year)\n"},
        {{"--timeout-signal", "SIGNOPE"}, "drover: run: --timeout-signal: 'SIGNOPE' is not a signal (TERM, SIGKILL, 9)\n"},
        {{"--memory-max", "12Q"}, "drover: run: --memory-max: '12Q' is not a size of at least 4096 bytes (256M, 1G)\n"},
        {{"--memory-max", "99999999999999999999"}, "drover: run: --memory-max: '99999999999999999999' is not a size of at least 4096 bytes (256M, 1G)\n"},
        {{"--pids-max", "0"}, "drover: run: --pids-max: '0' is not a number from 1 to 4194304\n"},
        {{"--cpu", "inf%"}, "drover: run: --cpu: 'inf%' is not a CPU share (50%, 0.5, 2; more than 0, at most 1024)\n"},
        {{"--cpu", "1e308%"}, "drover: run: --cpu: '1e308%' is not a CPU share (50%, 0.5, 2; more than 0, at most 1024)\n"},
        {{"--cap-add", "FOO"}, "drover: run: --cap-add: 'FOO' is not a capability (CAP_NET_RAW, net_raw, ALL)\n"},
        {{"--uid", "4294967295"}, "drover: run: --uid: '4294967295' is not an id from 0 to 4294967294\n"},
        {{"--uid", "-1"}, "drover: run: --uid: '-1' is not an id from 0 to 4294967294\n"},
        {{"--rlimit", "nofile=-1"}, "drover: run: --rlimit: '-1' is not a number from 0 to 9223372036854775807 or 'unlimited'\n"},
        {{"-T", "--monotonic", "1e300"}, "drover: run: --monotonic: '1e300' is not a number of seconds within +-1e9\n"},
        {{"--share-net"}, "drover: run: --share-net: only with --sandbox\n"},
        {{"--dev", "dev"}, "drover: run: --dev: 'dev': the target must be an absolute path\n"},
        {{"--file", "x:/a"}, "drover: run: --file: 'x' is not a descriptor number\n"},
        {{"--json-status-fd", "987"}, "drover: run: --json-status-fd: '987' is not an open descriptor\n"},
        {{"--seccomp", "/no/such/policy"}, "drover: run: /no/such/policy: cannot read the seccomp policy: No such file or directory\n"},
        {{"--seccomp", policy.path}, "drover: run: " + policy.path + ":4:9: rule[1].bogus: unknown field (action, syscalls, args)\n"},
        {{"--sandbox", "--tmpfs", "/tmp/../../x"}, "drover: run: --tmpfs /tmp/../../x: target must not contain '..'\n"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = {"run"};
        args.insert(args.end(), c.flags.begin(), c.flags.end());
        args.insert(args.end(), {"--", "/bin/touch", marker});
        auto r = drover(args);
        EXPECT_EQ(r.status.code(), 2) << c.message;
        EXPECT_EQ(r.err, c.message);
        EXPECT_FALSE(fs::exists(marker)) << "started despite: " << c.message;
        std::remove(marker.c_str());
    }
    auto p = drover({"parallel", "--max-output", "-1", "--", "/bin/true"});
    EXPECT_EQ(p.status.code(), 255);  // parallel's usage code: its 2 means two jobs failed
    EXPECT_EQ(p.err, "drover: parallel: --max-output: '-1' is not a size from 1 byte to 1T (64K, 16M)\n");
}

TEST(SandboxCli, UserNamespaceRangesNeedRoot) {
    if (!test::nobody_can_run(test::cli)) GTEST_SKIP() << test::nobody_skip_reason(test::cli);
    auto r = test::run_spec(test::piped({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                         test::cli, "run", "--userns", "auto", "-p", "--", "/bin/true"}));
    EXPECT_EQ(r.status.code(), 2);
    EXPECT_NE(r.err.find("--userns auto: needs root"), std::string::npos) << r.err;
}

TEST(SandboxCli, FlagsReachTheJob) {
    auto r = drover({"run", "--sandbox", "--cap-add", "NET_RAW,sys_ptrace", "--hostname", "judge", "--setenv", "X=1",
                     "--tmpfs", "/work:size=1m", "--dir", "/work/in", "--symlink", "/work/in:/work/link", "--", "/bin/sh",
                     "-c", "grep CapEff /proc/self/status; hostname; echo $X; readlink /work/link; df -k /work | tail -1 | awk '{print $2}'"});
    EXPECT_EQ(r.out, "CapEff:\t0000000000082000\njudge\n1\n/work/in\n1024\n") << r.err;
    auto s = drover({"run", "--seccomp", "default", "--", "/bin/sh", "-c", "grep ^Seccomp: /proc/self/status"});
    EXPECT_EQ(s.out, "Seccomp:\t2\n") << s.err;
    auto none = drover({"run", "--sandbox", "--seccomp", "none", "--", "/bin/sh", "-c", "grep ^Seccomp: /proc/self/status"});
    EXPECT_EQ(none.out, "Seccomp:\t0\n") << none.err;
}

TEST(SandboxCli, ParallelReportsEachJobsVerdict) {
    auto r = drover({"parallel", "--json", "--no-progress", "--sandbox", "--timeout", "0.5", "--", test::escape, "{}", "5"},
                    "--spin\n--hog\n");
    std::map<std::string, std::string> verdicts;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);
        verdicts[j["input"]] = j["verdict"];
        EXPECT_TRUE(j.contains("wall_ms") && j.contains("user_ms") && j.contains("peak_memory_bytes")) << line;
    }
    EXPECT_EQ(verdicts["--spin"], "timeout") << r.out << r.err;
    EXPECT_EQ(verdicts["--hog"], "ok") << r.out << r.err;
    EXPECT_EQ(r.status.code(), 1);  // one job failed
}

TEST(SandboxCli, ParallelWarmJobsAreSandboxedAndCounted) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox's leased ids need root";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "TSan cannot follow drover's raw clone3 fork from the pool's refill thread while the loop "
                    "thread runs (tests/spawn/warm_test.cpp); the other builds run this";
#endif
    std::string input;
    for (int i = 0; i < 20; ++i) input += std::to_string(i) + "\n";
    // LeakSanitizer's exit check cannot stop the world under the sandbox's seccomp filter (a
    // sanitizer build's helper would fail, and loop on abort): see SandboxCli's clone3 test.
    auto r = drover({"parallel", "--json", "--no-progress", "-j", "2", "--warm", "4", "--sandbox", "--timeout", "60", "--setenv",
                     "ASAN_OPTIONS=detect_leaks=0", "--", test::helper, "inside"},
                    input);
    ASSERT_EQ(r.status.code(), 0) << r.out << r.err;
    std::istringstream in(r.out);
    std::string line;
    int jobs = 0;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);
        std::string out = j["stdout"];
        ++jobs;
        EXPECT_NE(out.find("getpid 1\n"), std::string::npos) << out;
        EXPECT_NE(out.find("hostname sandbox\n"), std::string::npos) << out;
        EXPECT_NE(out.find("proc_entries 1\n"), std::string::npos) << out;
        EXPECT_NE(out.find("lo up\n"), std::string::npos) << out;
        EXPECT_EQ(out.find("uid_map          0          0"), std::string::npos) << "host root inside: " << out;
    }
    EXPECT_EQ(jobs, 20);
    // The pool's numbers, as JSON on stderr with --json: every job started warm or cold.
    nlohmann::json w = warm_pool_of(r.err);
    ASSERT_FALSE(w.is_null()) << r.err;
    EXPECT_EQ(w["hits"].get<unsigned>() + w["misses"].get<unsigned>(), 20u) << w;  // none failed: no retries
    EXPECT_EQ(w["target"], 4) << w;
    EXPECT_EQ(w["namespaces_per_set"], 6) << w;  // user, pid, mnt, uts, ipc, net
    EXPECT_GE(w["made"].get<unsigned>(), w["hits"].get<unsigned>()) << w;
    EXPECT_GT(w["refill_max_ms"].get<double>(), 0.0) << w;
}

// The same with --warm-prestart: each set is a job waiting in drover_ready_stub. Every job
// still sees its own sandbox from inside, and its own argument (the job's argv arrives with
// the go message): 20 distinct inputs, 20 distinct PID-1 jobs.
TEST(SandboxCli, ParallelPrestartedJobsAreSandboxedAndEachRunsItsOwnInput) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox's leased ids need root";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "TSan cannot follow drover's raw clone3 fork from the pool's refill thread while the loop "
                    "thread runs (tests/spawn/warm_test.cpp); the other builds run this";
#endif
    auto r = parallel_prestarted(20, "4");
    ASSERT_EQ(r.status.code(), 0) << r.out << r.err;
    std::istringstream in(r.out);
    std::set<std::string> seen;
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line);
        std::string out = j["stdout"];
        // Its input, then what the helper (exec'd in its place, so still PID 1) sees.
        ASSERT_EQ(out.rfind("job-", 0), 0u) << out;
        EXPECT_NE(out.find("\ngetpid 1\n"), std::string::npos) << out;
        EXPECT_NE(out.find("\nhostname sandbox\n"), std::string::npos) << out;
        EXPECT_NE(out.find("\nproc_entries 1\n"), std::string::npos) << out;
        EXPECT_NE(out.find("\nlo up\n"), std::string::npos) << out;
        EXPECT_EQ(out.find("uid_map          0          0"), std::string::npos) << "host root inside: " << out;
        seen.insert(out.substr(0, out.find('\n')));
    }
    EXPECT_EQ(seen.size(), 20u);
    nlohmann::json w = warm_pool_of(r.err);
    ASSERT_FALSE(w.is_null()) << r.err;
    EXPECT_EQ(w["prestarted"], true) << w;
    EXPECT_EQ(w["stub"], true) << w;
    EXPECT_EQ(w["stub_unused"], "") << w;
    EXPECT_EQ(w["hits"].get<unsigned>() + w["misses"].get<unsigned>(), 20u) << w;
    EXPECT_GT(w["hits"].get<unsigned>(), 0u) << w;
    auto bad = drover({"parallel", "--warm-prestart", "--", "/bin/true"}, "");
    EXPECT_EQ(bad.status.code(), 255) << bad.err;  // parallel's bad usage
    EXPECT_EQ(bad.err, "drover: parallel: --warm-prestart needs --warm N (N above 0)\n");
}

// A stub that is found but cannot start (here a file that is not a program; in life an LSM
// or a noexec mount refusing its execveat): no job fails, the sets wait in drover's child, and
// the pool says why in --json. For holders and for pre-started jobs.
class StubThatCannotStart : public ::testing::TestWithParam<bool> {};

TEST_P(StubThatCannotStart, NoJobFailsAndThePoolSaysWhy) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox's leased ids need root";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "TSan cannot follow drover's raw clone3 fork from the pool's refill thread while the loop "
                    "thread runs (tests/spawn/warm_test.cpp); the other builds run this";
#endif
    temp_file broken("this is not a program\n");
    // Readable and executable by all: the job's leased ids are "others" to it.
    fs::permissions(broken.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                     fs::perms::others_read | fs::perms::others_exec);
    auto r = parallel_prestarted(6, "2", {{"DROVER_READY_STUB", broken.path}}, GetParam());
    ASSERT_EQ(r.status.code(), 0) << r.out << r.err;
    std::istringstream in(r.out);
    std::set<std::string> seen;
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line);
        std::string out = j["stdout"];
        EXPECT_NE(out.find("\ngetpid 1\n"), std::string::npos) << out;
        seen.insert(out.substr(0, out.find('\n')));
    }
    EXPECT_EQ(seen.size(), 6u) << r.out;
    nlohmann::json w = warm_pool_of(r.err);
    ASSERT_FALSE(w.is_null()) << r.err;
    EXPECT_EQ(w["stub"], false) << w;
    const std::string why = w["stub_unused"];
    EXPECT_NE(why.find("drover_ready_stub failed to start"), std::string::npos) << why;
    EXPECT_NE(why.find("Exec format error"), std::string::npos) << why;
    EXPECT_EQ(w["failed"], 0) << w;
    EXPECT_GT(w["hits"].get<unsigned>(), 0u) << w;
}

INSTANTIATE_TEST_SUITE_P(, StubThatCannotStart, ::testing::Bool(),
                         [](const auto& param_info) { return param_info.param ? "prestarted" : "holders"; });

TEST(SandboxCli, AWarmPoolShrinksUnderALoweredNamespaceLimitWithoutFailingJobs) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox's leased ids need root";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "TSan cannot follow drover's raw clone3 fork from the pool's refill thread while the loop "
                    "thread runs (tests/spawn/warm_test.cpp); the other builds run this";
#endif
    // The limit is lowered in a user namespace of the test's own, not on the host: user.*
    // sysctls are per user namespace, and they count every namespace created below it. In
    // it, with every id mapped to itself, drover runs as root does.
    std::string input;
    for (int i = 0; i < 30; ++i) input += std::to_string(i) + "\n";
    std::string script = "echo 3 > /proc/sys/user/max_net_namespaces && exec \"$0\" parallel --json --no-progress "
                         "-j 1 --warm 6 --sandbox --timeout 60 --setenv ASAN_OPTIONS=detect_leaks=0 -- \"$1\" inside";
    spawn_spec s = test::piped({"/bin/sh", "-c", script, test::cli, test::helper});
    s.namespaces = namespace_set{ns::user};
    s.uid_map = {{0, 0, 4294967295u}};
    s.gid_map = {{0, 0, 4294967295u}};
    s.in = stdio::pipe();
    run_result r = test::run_spec(s, input);
    ASSERT_EQ(r.status.code(), 0) << r.out << r.err;
    std::istringstream in(r.out);
    std::string line;
    int ok = 0;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);
        std::string out = j["stdout"];
        ok += out.find("getpid 1\n") != std::string::npos && out.find("lo up\n") != std::string::npos;
    }
    EXPECT_EQ(ok, 30) << r.out << r.err;
    nlohmann::json w = warm_pool_of(r.err);
    ASSERT_FALSE(w.is_null()) << r.err;
    // A cold start refused by the limit is retried, and each retry counts.
    EXPECT_GE(w["hits"].get<unsigned>() + w["misses"].get<unsigned>(), 30u) << w;
    EXPECT_GT(w["failed"].get<unsigned>(), 0u) << "the pool never met the limit: " << w;
    EXPECT_NE(w["last_error"].get<std::string>().find("max_net_namespaces"), std::string::npos) << w;
}

TEST(SandboxCli, WarmSetsAreRefusedForATimeNamespaceWithAOneLineError) {
    auto r = drover({"parallel", "--no-progress", "--warm", "2", "-U", "-T", "--", "true"}, "x\n");
    EXPECT_EQ(r.status.code(), 255) << r.out << r.err;
    EXPECT_NE(r.err.find("time namespace"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST(SandboxCli, SupervisedServicesTakeTheSandboxFields) {
    auto c = supervise::parse_config(R"([service.web]
exec = "/bin/true"
sandbox = true
capabilities = ["NET_BIND_SERVICE"]
ro_bind = ["/srv/site:/site"]
tmpfs = ["/cache:size=8m"]
)", "svc.toml");
    const spawn_spec& s = c.services.at(0).spawn;
    EXPECT_TRUE(s.fs.enabled);
    EXPECT_TRUE(s.namespaces.has(ns::net));
    EXPECT_TRUE(s.seccomp);
    ASSERT_TRUE(s.capabilities);
    EXPECT_EQ(s.capabilities->bits(), 1u << 10);
    ASSERT_GE(s.fs.ops.size(), 2u);
    EXPECT_EQ(s.fs.ops[s.fs.ops.size() - 2].source, "/srv/site");
    EXPECT_EQ(s.fs.ops.back().options, "size=8m");
    try {
        supervise::parse_config("[service.x]\nexec = \"/bin/true\"\ncapabilities = [\"FLY\"]\n", "svc.toml");
        FAIL();
    } catch (const supervise::config_error& e) {
        EXPECT_STREQ(e.what(), "svc.toml:3:16: service.x.capabilities: unknown capability \"FLY\" (NET_BIND_SERVICE, CAP_NET_RAW)");
    }
}

}  // namespace
}  // namespace drover

namespace drover {
namespace {

// drover under a filter that hides clone3 (the sandbox's default policy answers ENOSYS, as on
// a kernel before 5.3) says what is missing, once, up front, and runs nothing.
TEST(SandboxCli, AKernelWithoutClone3IsNamedAtStart) {
    // The inner drover is PID 1 under the default seccomp policy, which refuses ptrace: a
    // sanitizer build's leak check at exit cannot stop the world there and would abort in a
    // loop, so it is turned off for the inner run. The time limit bounds the test either way.
    const std::vector<std::string> outer = {"run", "--sandbox", "--timeout", "60",
                                            "--setenv", "ASAN_OPTIONS=detect_leaks=0", "--"};
    auto with = [&](std::vector<std::string> inner) {
        std::vector<std::string> all = outer;
        all.insert(all.end(), inner.begin(), inner.end());
        return drover(all);
    };
    auto r = with({test::cli, "run", "--", "/bin/echo", "ran"});
    EXPECT_EQ(r.status.code(), 125) << r.status.str() << " " << r.err;
    EXPECT_NE(r.err.find("lacks clone3"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Linux 5.11"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("ran"), std::string::npos) << r.out;
    // ctl needs none of it, and still works there (it only fails to find a socket).
    auto c = with({test::cli, "ctl", "--socket", "/nonexistent/s", "status"});
    EXPECT_EQ(c.err.find("lacks"), std::string::npos) << c.err;
}

}  // namespace
}  // namespace drover
