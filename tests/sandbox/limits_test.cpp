// Per-job limits: each one exceeded on purpose by a bounded attacker (a memory hog that stops
// at 400 MiB, a fork bomb of at most 300, a CPU burner that stops by itself), ended by drover
// and reported with the right verdict and the resources it used; the job's cgroup gone after.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "drover/process/pool.hpp"
#include "support.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;

job_result run_one(spawn_spec spec, job_limits limits, output_limits out = {}) {
    pool_options o;
    o.limits = std::move(limits);
    o.output = out;
    auto results = test::run_on_loop([&](asio::any_io_executor ex) {
        std::vector<prepared_spawn> specs{prepared_spawn(std::move(spec))};
        return run_jobs(ex, std::move(specs), o);
    });
    return std::move(results.at(0));
}

spawn_spec sandboxed(std::vector<std::string> argv) {
    spawn_spec s = test::piped(std::move(argv));
    make_sandboxed(s);
    return s;
}

bool cgroups_usable() {
    return ::geteuid() == 0 && (fs::exists("/sys/fs/cgroup/unified/cgroup.procs") || fs::exists("/sys/fs/cgroup/cgroup.procs"));
}

// No cgroup of a pool of this process is left behind.
bool pool_cgroups_left() {
    std::string prefix = "drover." + std::to_string(::getpid()) + ".pool";
    for (const char* root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(root, ec))
            if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
    }
    return false;
}

TEST(Limits, WallTimeEndsTheJobAndSaysSo) {
    job_limits l;
    l.wall_time = std::chrono::milliseconds(300);
    job_result r = run_one(sandboxed({test::escape, "--spin", "30"}), l);
    EXPECT_EQ(r.outcome.why, verdict::wall_time) << r.outcome.detail << " " << r.err;
    EXPECT_NE(r.outcome.detail.find("time limit"), std::string::npos);
    ASSERT_TRUE(r.status);
    EXPECT_EQ(r.status->signal(), SIGKILL);
    EXPECT_GE(r.outcome.usage.wall_ns, 300'000'000);
}

TEST(Limits, AGentleTimeoutSignalComesFirstThenSigkillAfterTheGrace) {
    job_limits l;
    l.wall_time = std::chrono::milliseconds(200);
    l.timeout_signal = SIGTERM;
    l.kill_grace = std::chrono::milliseconds(200);
    // The job ignores SIGTERM; only the SIGKILL after the grace ends it.
    job_result r = run_one(test::piped({test::helper, "ignore-term", "30"}), l);
    EXPECT_EQ(r.outcome.why, verdict::wall_time) << r.outcome.detail;
    ASSERT_TRUE(r.status);
    EXPECT_EQ(r.status->signal(), SIGKILL);
    EXPECT_GE(r.outcome.usage.wall_ns, 400'000'000);
}

TEST(Limits, CpuTimeCountsTheWholeJob) {
    if (!cgroups_usable()) GTEST_SKIP() << "whole-job CPU accounting needs a cgroup (root)";
    job_limits l;
    l.cpu_time = std::chrono::milliseconds(300);
    job_result r = run_one(sandboxed({test::escape, "--spin", "30"}), l);
    EXPECT_EQ(r.outcome.why, verdict::cpu_time) << r.outcome.detail;
    EXPECT_EQ(r.outcome.usage.source, "cgroup");
    EXPECT_GE(r.outcome.usage.user_ns + r.outcome.usage.system_ns, 300'000'000);
    EXPECT_FALSE(pool_cgroups_left());
}

TEST(Limits, MemoryMaxEndsAHogWithAMemoryVerdict) {
    if (!cgroups_usable()) GTEST_SKIP() << "memory limits need a cgroup (root)";
    job_limits l;
    l.cgroup.memory_max = 64ULL << 20;
    job_result r = run_one(sandboxed({test::escape, "--hog", "400"}), l);
    EXPECT_EQ(r.outcome.why, verdict::memory) << r.outcome.detail << " " << r.out;
    ASSERT_TRUE(r.outcome.usage.peak_memory);
    EXPECT_LE(*r.outcome.usage.peak_memory, 80ULL << 20);
    EXPECT_GE(*r.outcome.usage.peak_memory, 32ULL << 20);
    EXPECT_FALSE(pool_cgroups_left());
}

TEST(Limits, PidsMaxStopsAForkBombWithAPidsVerdict) {
    if (!cgroups_usable()) GTEST_SKIP() << "pids limits need a cgroup (root)";
    job_limits l;
    l.cgroup.tasks_max = 32;
    job_result r = run_one(sandboxed({test::escape, "--forkbomb", "300"}), l);
    EXPECT_EQ(r.outcome.why, verdict::pids) << r.outcome.detail << " " << r.out;
    EXPECT_NE(r.out.find("then fork"), std::string::npos) << r.out;
}

TEST(Limits, OutputLimitCanStopTheJob) {
    output_limits out;
    out.max_bytes = 4096;
    out.kill = true;
    job_result r = run_one(test::piped({test::helper, "flood", "100000000"}), {}, out);
    EXPECT_EQ(r.outcome.why, verdict::output) << r.outcome.detail;
    ASSERT_TRUE(r.status);
    EXPECT_TRUE(r.status->signaled());
    EXPECT_GT(r.out_dropped, 0u);
}

TEST(Limits, AJobWithinItsLimitsIsOkAndAccounted) {
    job_limits l;
    l.wall_time = std::chrono::seconds(30);
    l.own_cgroup = true;
    job_result r = run_one(sandboxed({test::escape, "--hog", "16"}), l);
    EXPECT_EQ(r.outcome.why, verdict::ok) << r.outcome.detail << r.err;
    EXPECT_GT(r.outcome.usage.wall_ns, 0);
    EXPECT_GT(r.outcome.usage.user_ns + r.outcome.usage.system_ns, 0);
    if (cgroups_usable()) {
        EXPECT_EQ(r.outcome.usage.source, "cgroup");
        ASSERT_TRUE(r.outcome.usage.peak_memory);
        EXPECT_GE(*r.outcome.usage.peak_memory, 16ULL << 20);
        EXPECT_LE(*r.outcome.usage.peak_memory, 64ULL << 20);  // the job's, not the spawner's
    }
    EXPECT_FALSE(pool_cgroups_left());
}

TEST(Limits, CgroupLimitsWithoutACgroupAreRefusedNotIgnored) {
    pool_options o;
    o.limits.cgroup.memory_max = 64ULL << 20;
    o.cgroups = std::make_shared<cgroup_tree>("unused", cgroup_layout{});  // no cgroups on this "host"
    auto results = test::run_on_loop([&](asio::any_io_executor ex) {
        std::vector<prepared_spawn> specs{prepared_spawn(test::piped({test::escape, "--hog", "8"}))};
        return run_jobs(ex, std::move(specs), o);
    });
    const job_result& r = results.at(0);
    EXPECT_EQ(r.outcome.why, verdict::failed_to_start);
    ASSERT_TRUE(r.failure);
    EXPECT_EQ(r.failure->stage, child_stage::job_cgroup);
    EXPECT_EQ(r.failure->code.value(), ENOTSUP);
    EXPECT_NE(r.failure->advice.find("apply_rlimit_fallbacks"), std::string::npos) << r.failure->advice;
}

TEST(Limits, FailuresAndExitCodesHaveTheirOwnVerdicts) {
    job_result bad = run_one(test::piped({"/no/such/program"}), {});
    EXPECT_EQ(bad.outcome.why, verdict::failed_to_start);
    job_result code = run_one(test::piped({test::helper, "exit", "3"}), {});
    EXPECT_EQ(code.outcome.why, verdict::exit_code);
    EXPECT_EQ(code.outcome.detail, "exited with code 3");
    job_result sig = run_one(test::piped({test::helper, "signal", "11"}), {});
    EXPECT_EQ(sig.outcome.why, verdict::signal);
}

// Without root there is no cgroup: time limits still hold (a timer, RLIMIT_CPU), and the
// verdict still says which one ended the job.
nlohmann::json cli_status(std::vector<std::string> flags, std::vector<std::string> cmd, bool as_user) {
    std::vector<std::string> argv;
    if (as_user) argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
    argv.insert(argv.end(), {test::cli, "run", "--json-status-fd", "1"});
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    auto r = test::run_spec(test::piped(argv));
    // The status line is the last line; the job's own output comes before it.
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    std::string last = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    auto j = nlohmann::json::parse(last, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
    j["exit"] = r.status.shell_code();
    j["stderr"] = r.err;
    return j;
}

TEST(Limits, AsAnUnprivilegedUserTimeLimitsStillHoldAndSaySo) {
    if (!test::nobody_can_run(test::cli) || !test::nobody_can_run(test::escape))
        GTEST_SKIP() << test::nobody_skip_reason(test::cli);
    auto t = cli_status({"--sandbox", "--timeout", "0.3"}, {test::escape, "--spin", "30"}, true);
    EXPECT_EQ(t["verdict"], "timeout") << t.dump();
    EXPECT_EQ(t["exit"], 124);
    auto c = cli_status({"--sandbox", "--cpu-time", "1"}, {test::escape, "--spin", "30"}, true);
    EXPECT_EQ(c["verdict"], "cpu-time") << c.dump();
    EXPECT_EQ(c["usage_source"], "rusage");
    auto m = cli_status({"--sandbox", "--memory-max", "64M"}, {test::escape, "--hog", "400"}, true);
    EXPECT_NE(m["verdict"], "ok") << "a 400 MiB hog ran to its end under a 64 MiB RLIMIT_AS: " << m.dump();
}

TEST(Limits, TheCliReportsVerdictUsageAndExitCodes) {
    auto ok = cli_status({"--sandbox"}, {test::escape, "--hog", "8"}, false);
    EXPECT_EQ(ok["verdict"], "ok") << ok.dump();
    EXPECT_EQ(ok["exit"], 0);
    EXPECT_GT(ok["wall_ms"].get<double>(), 0);
    EXPECT_TRUE(ok["peak_memory_bytes"].is_number());
    if (!cgroups_usable()) return;
    auto m = cli_status({"--sandbox", "--memory-max", "64M"}, {test::escape, "--hog", "400"}, false);
    EXPECT_EQ(m["verdict"], "memory") << m.dump();
    EXPECT_EQ(m["exit"], 128 + SIGKILL);
    EXPECT_NE(m["stderr"].get<std::string>().find("out of memory (limit 64.0 MiB)"), std::string::npos) << m.dump();
    auto p = cli_status({"--sandbox", "--pids-max", "16"}, {test::escape, "--forkbomb", "300"}, false);
    EXPECT_EQ(p["verdict"], "pids") << p.dump();
}

}  // namespace
}  // namespace drover
