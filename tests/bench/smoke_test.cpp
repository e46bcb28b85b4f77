// A small real run: two combinations × a few spawns through drover and the raw floor; every
// stage is filled, non-negative and in order. Also the throughput and peers runs, briefly.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

#include <cstdlib>
#include <tuple>
#include <vector>

#include "bench/floor.hpp"
#include "bench/floor_client.hpp"
#include "bench/report.hpp"
#include "bench/runner.hpp"
#include "support.hpp"

namespace drover::bench {
namespace {

// User namespaces may be disabled on a host: skip with the reason instead of failing.
bool user_namespaces_work() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The static helper where the build has it (not with DROVER_BUILD_BENCH=OFF), else /bin/true.
std::string program() {
    std::string p = static_helper_path();
    return p.empty() ? "/bin/true" : p;
}

workload static_workload() {
    workload w;
    w.how = workload::kind::exec_path;
    w.path = program();
    return w;
}

TEST(BenchSmoke, StaticHelperIsBuiltAndFound) {
    if (!static_helper_built()) GTEST_SKIP() << "built with DROVER_BUILD_BENCH=OFF: no drover_static_true";
    std::string path = static_helper_path();
    ASSERT_FALSE(path.empty()) << "drover_static_true was not found";
    EXPECT_EQ(path.front(), '/');
    EXPECT_EQ(::access(path.c_str(), X_OK), 0);
}

TEST(BenchSmoke, EveryStageIsFilledNonNegativeAndInOrder) {
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    for (namespace_set set : {namespace_set{}, namespace_set{ns::user, ns::pid}}) {
        spawn_spec spec;
        spec.namespaces = set;
        spec.argv = {program()};
        prepared_spawn p(spec);
        for (int i = 0; i < 3; ++i) {
            drover_sample s = drover_spawn_once(p);
            ASSERT_TRUE(s.ok) << set.str() << ": " << s.error;
            const spawn_timings& t = s.timings;
            // Every timestamp was taken, along the parent's timeline in order.
            const std::int64_t parent[] = {t.clone_start, t.clone_end,     t.maps_written,
                                           t.exec_done,   t.exit_observed, t.reaped};
            for (std::size_t k = 0; k < std::size(parent); ++k) {
                EXPECT_GT(parent[k], 0) << set.str() << " timestamp " << k;
                if (k > 0) {
                    EXPECT_LE(parent[k - 1], parent[k]) << set.str() << " timestamp " << k;
                }
            }
            EXPECT_GT(t.child_start, 0);
            EXPECT_LE(t.child_start, t.setup_done);
            EXPECT_LE(t.setup_done, t.exec_done);
            auto d = s.stages.as_array();
            std::int64_t sum = 0;
            for (std::int64_t v : d) {
                EXPECT_GE(v, 0);
                sum += v;
            }
            EXPECT_EQ(sum, s.stages.total);
            EXPECT_GT(s.stages.clone, 0);
            EXPECT_GT(s.stages.exec, 0);
            // Default id maps are written by the child itself, in its setup: the parent has
            // nothing to do between clone3 and releasing the child.
            if (set.has(ns::user)) {
                EXPECT_EQ(s.stages.id_maps, 0);
            }
            EXPECT_GE(s.total, s.stages.total);  // the wall clock includes the pipes before clone3
        }
    }
}

TEST(BenchSmoke, MatrixOfTwoCombinationsFillsEveryStage) {
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    bench_config cfg;
    cfg.sets = {namespace_set{ns::user, ns::pid}, namespace_set{}};
    cfg.count = 4;
    cfg.warmup = 1;
    cfg.work = static_workload();
    cfg.seed = 7;
    bench_report r;
    std::size_t last_done = 0, calls = 0;
    run_matrix(cfg, r, [&](const progress_event& e) {
        EXPECT_EQ(e.phase, "matrix");
        EXPECT_GE(e.done, last_done);
        last_done = e.done;
        ++calls;
    });
    EXPECT_GT(calls, 0u);
    // drover and the three floors for both; posix_spawn for none
    EXPECT_EQ(last_done, 2u * (4 + 1) * 4 + (4 + 1));
    ASSERT_EQ(r.combos.size(), 2u);
    EXPECT_TRUE(r.combos[0].set.empty());  // canonical order
    for (const combo_result& c : r.combos) {
        EXPECT_TRUE(c.drover_failures.empty())
            << c.set.str() << ": " << c.drover_failures.begin()->first;
        for (const failure_counts* f : {&c.floor_failures, &c.bare_failures, &c.fork_failures})
            EXPECT_TRUE(f->empty()) << c.set.str() << ": " << f->begin()->first;
        EXPECT_EQ(c.drover.n, 4u);
        EXPECT_EQ(c.floor.n, 4u);
        EXPECT_EQ(c.bare.n, 4u);
        EXPECT_EQ(c.fork.n, 4u);
        EXPECT_EQ(c.floor_method, floor_vfork_available() ? "vfork" : "fork");
        EXPECT_GT(c.ratio(), 0);
        EXPECT_GT(c.ratio_ci.low, 0);
        EXPECT_LE(c.ratio_ci.low, c.ratio_ci.high);
        EXPECT_NEAR(c.drover_share(), c.drover.p50 - c.floor.p50, 1e-6);
        for (std::size_t k = 0; k < stage_count; ++k) {
            const summary& s = c.stages[k];
            EXPECT_EQ(s.n, 4u) << stage_names[k];
            EXPECT_GE(s.min, 0) << stage_names[k];
            EXPECT_LE(s.min, s.p50);
            EXPECT_LE(s.p50, s.p90);
            EXPECT_LE(s.p90, s.p99);
            EXPECT_LE(s.p99, s.max);
        }
    }
    EXPECT_TRUE(r.combos[1].marginal.contains(ns::user) == false);  // user alone was not measured
    ASSERT_TRUE(r.posix_spawn.has_value());
    EXPECT_TRUE(r.posix_spawn->ran);
    EXPECT_EQ(r.posix_spawn->total.n, 4u);
    // The floors ran in the helper wherever the build made one.
    if (static_helper_built()) {
        EXPECT_TRUE(r.machine.floor_source.starts_with("helper /")) << r.machine.floor_source;
    }
    EXPECT_FALSE(r.machine.clone_method.empty());
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(BenchSmoke, FloorRunsTheSameSetup) {
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    namespace_set full{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net};
    floor_plan p = floor_plan::make(full.clone_flags(), floor_method::vfork, true, true, {program()});
    EXPECT_TRUE(p.make_private);
    EXPECT_TRUE(p.mount_proc);
    EXPECT_TRUE(p.loopback);
    EXPECT_FALSE(p.uid_map.empty());
    floor_plan bare = floor_plan::make(full.clone_flags(), floor_method::vfork, false, true, {program()});
    EXPECT_FALSE(bare.make_private || bare.mount_proc || bare.loopback);
    EXPECT_TRUE(bare.uid_map.empty());
    for (floor_method m : {floor_method::vfork, floor_method::fork}) {
        for (bool setup : {true, false}) {
            floor_plan q = floor_plan::make(full.clone_flags(), m, setup, true, {program()});
            EXPECT_EQ(q.method, floor_vfork_available() ? m : floor_method::fork);
            floor_sample s = floor_spawn(q);
            EXPECT_TRUE(s.ok) << floor_method_name(m) << " setup " << setup << ": " << s.error;
            EXPECT_GT(s.total_ns, 0);
            EXPECT_GE(s.total_ns, s.clone_ns);
        }
    }
    // A failing workload is reported, not counted as a sample, by either method.
    for (floor_method m : {floor_method::vfork, floor_method::fork}) {
        floor_plan missing = floor_plan::make(0, m, true, true, {"/nonexistent/program"});
        floor_sample f = floor_spawn(missing);
        EXPECT_FALSE(f.ok);
        EXPECT_NE(f.error.find("execve"), std::string::npos) << f.error;
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

// A time namespace takes the vfork path like any other set (the child unshares it and enters
// it at execve): the program it runs is in a time namespace that is not ours.
TEST(BenchSmoke, ATimeNamespaceFloorIsVforkStyleAndTheChildIsInIt) {
    char ours[64] = {};
    ASSERT_GT(::readlink("/proc/self/ns/time", ours, sizeof ours - 1), 0);
    const std::string not_ours = std::string("test \"$(readlink /proc/self/ns/time)\" != '") + ours + "'";
    for (floor_method m : {floor_method::vfork, floor_method::fork}) {
        floor_plan p = floor_plan::make(CLONE_NEWTIME, m, true, true, {"/bin/sh", "-c", not_ours});
        EXPECT_EQ(p.method, floor_vfork_available() ? m : floor_method::fork);
        floor_sample s = floor_spawn(p);
        if (!s.ok && s.error.find("unsharing a time") != std::string::npos) GTEST_SKIP() << "no time namespaces: " << s.error;
        if (!s.ok && s.error.find("clone3") != std::string::npos) GTEST_SKIP() << "no time namespaces: " << s.error;
        EXPECT_TRUE(s.ok) << s.error << " (" << floor_method_name(p.method) << ")";
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(BenchSmoke, NamespaceNamesRoundTrip) {
    std::uint64_t flags = 0;
    ASSERT_TRUE(parse_floor_namespaces("user+pid,net", flags));
    EXPECT_EQ(flags, static_cast<std::uint64_t>(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET));
    EXPECT_EQ(floor_namespace_names(flags), "user+pid+net");
    EXPECT_EQ(floor_namespace_names(0), "none");
    EXPECT_TRUE(parse_floor_namespaces("none", flags));
    EXPECT_EQ(flags, 0u);
    EXPECT_FALSE(parse_floor_namespaces("user,bogus", flags));
    EXPECT_FALSE(parse_floor_namespaces("", flags));
}

TEST(BenchFloorHelper, ServesPlansAndRefusesBadRequests) {
    if (!static_helper_built()) GTEST_SKIP() << "built with DROVER_BUILD_BENCH=OFF: no drover_floor";
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    std::string path = floor_helper_path();
    ASSERT_FALSE(path.empty()) << "drover_floor was not found";
    std::string error;
    {
        floor_client c;
        ASSERT_TRUE(c.start(path, error)) << error;
        namespace_set set{ns::user, ns::pid, ns::mnt, ns::net};
        floor_method m = floor_method::vfork;
        int id = c.define(set.clone_flags(), m, true, true, program(), error);
        ASSERT_GE(id, 0) << error;
        EXPECT_EQ(m, floor_vfork_available() ? floor_method::vfork : floor_method::fork);
        for (int i = 0; i < 3; ++i) {
            floor_sample s = c.run(id);
            EXPECT_TRUE(s.ok) << s.error;
            EXPECT_GT(s.total_ns, 0);
        }
        // A time namespace keeps the method asked for where vfork is available.
        m = floor_method::vfork;
        EXPECT_GE(c.define(CLONE_NEWTIME, m, true, false, "", error), 0) << error;
        EXPECT_EQ(m, floor_vfork_available() ? floor_method::vfork : floor_method::fork);
        // A program that is not absolute is refused by the helper, with its reason.
        m = floor_method::vfork;
        EXPECT_LT(c.define(0, m, true, true, "relative/program", error), 0);
        EXPECT_NE(error.find("absolute"), std::string::npos) << error;
        // An unknown plan is a failed sample, not a crash of either side.
        floor_sample none = c.run(999);
        EXPECT_FALSE(none.ok);
        EXPECT_NE(none.error.find("no such plan"), std::string::npos) << none.error;
        // The thread that asks, which each run waits to fall asleep; nonsense is refused.
        std::string answer;
        ASSERT_TRUE(c.ask("peer " + std::to_string(::getpid()) + " " + std::to_string(::gettid()), answer));
        EXPECT_EQ(answer, "ok");
        for (const char* bad : {"peer", "peer 1", "peer 0 1", "peer 1 x", "peer -1 1", "peer 1 99999999999", "peer 1 2 3"}) {
            ASSERT_TRUE(c.ask(bad, answer)) << bad;
            EXPECT_EQ(answer, "err usage: peer PID TID") << bad;
        }
        EXPECT_TRUE(c.run(id).ok);
        // A workload that fails is a failed sample with the step.
        m = floor_method::vfork;
        int bad = c.define(0, m, true, true, "/nonexistent/program", error);
        ASSERT_GE(bad, 0) << error;
        floor_sample f = c.run(bad);
        EXPECT_FALSE(f.ok);
        EXPECT_NE(f.error.find("execve"), std::string::npos) << f.error;
    }  // the destructor ends and reaps the helper
    EXPECT_EQ(test::zombie_children(), 0);
    // Something that is not the helper is named as such.
    floor_client wrong;
    EXPECT_FALSE(wrong.start("/bin/true", error));
    EXPECT_NE(error.find("did not answer"), std::string::npos) << error;
}

// floor_wait_asleep, which keeps a just-answered helper from sitting runnable beside the next
// timed sample: true once the thread sleeps, false (and bounded) for one that never does or
// is gone.
TEST(BenchSmoke, WaitAsleepSeesASleeperAndGivesUpOnASpinnerOrTheGone) {
    pid_t sleeper = ::fork();
    ASSERT_GE(sleeper, 0);
    if (sleeper == 0) {
        for (;;) ::pause();
    }
    pid_t spinner = ::fork();
    ASSERT_GE(spinner, 0);
    if (spinner == 0) {
        for (;;) asm volatile("" ::: "memory");  // runs, never sleeps
    }
    EXPECT_TRUE(floor_wait_asleep(sleeper, sleeper));
    // The spinner stays runnable: the wait yields its thousand times and says it gave up.
    const std::int64_t start = floor_now_ns();
    EXPECT_FALSE(floor_wait_asleep(spinner, spinner));
    EXPECT_LT(floor_now_ns() - start, 10'000'000'000);
    EXPECT_FALSE(floor_wait_asleep(sleeper, spinner));  // not a thread of that process
    EXPECT_FALSE(floor_wait_asleep(0, 0));
    for (pid_t p : {sleeper, spinner}) {
        ::kill(p, SIGKILL);
        int status = 0;
        ASSERT_EQ(::waitpid(p, &status, 0), p);
        EXPECT_TRUE(WIFSIGNALED(status));
    }
    EXPECT_FALSE(floor_wait_asleep(sleeper, sleeper));  // reaped: gone
}

// The independent probe's serve mode takes the same "peer" line, checked as strictly.
TEST(BenchFloorHelper, TheRawProbeWaitsForItsPeerAndRefusesBadPeerLines) {
    const std::string path = raw_probe_path();
    if (path.empty()) GTEST_SKIP() << "drover_raw_probe is not built (DROVER_BUILD_BENCH=OFF)";
    std::string error, answer;
    {
        floor_client c;
        ASSERT_TRUE(c.start_as({path, "--serve", program()}, "hello", "ok drover_raw_probe", "the probe", error)) << error;
        ASSERT_TRUE(c.ask("peer " + std::to_string(::getpid()) + " " + std::to_string(::gettid()), answer));
        EXPECT_EQ(answer, "ok");
        for (const char* bad : {"peer ", "peer 1", "peer 0 1", "peer 1 x", "peer 1 2x", "peer 1 99999999999"}) {
            ASSERT_TRUE(c.ask(bad, answer)) << bad;
            EXPECT_EQ(answer, "err usage: peer PID TID") << bad;
        }
        ASSERT_TRUE(c.ask("none", answer));
        EXPECT_TRUE(answer.starts_with("ok ")) << answer;
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(BenchSmoke, ThroughputCountsSpawnsAtEachConcurrency) {
    bench_config cfg;
    cfg.sets = {namespace_set{}};
    cfg.concurrency = {1, 4};
    cfg.duration = 0.3;
    cfg.work = static_workload();
    bench_report r;
    run_throughput(cfg, r, {});
    ASSERT_EQ(r.throughput.size(), 2u);
    for (const throughput_result& t : r.throughput) {
        EXPECT_TRUE(t.failures.empty());
        EXPECT_GT(t.spawns, 0u);
        EXPECT_GT(t.per_second, 0);
        EXPECT_GE(t.seconds, 0.3);
        EXPECT_EQ(t.latency.n, t.spawns);
        EXPECT_GT(t.first_decile_p50, 0);
        EXPECT_EQ(t.exit_to_callback.n, 0u);  // a program that does not stamp its exit
    }
    EXPECT_EQ(r.throughput[1].concurrency, 4);
    EXPECT_EQ(test::zombie_children(), 0);
}

// The exec-static workload stamps each child's exit on its coroutine's pipe: one exit→callback
// latency per spawn, positive, and shorter than the longest spawn→reap (which contains it).
TEST(BenchSmoke, ThroughputOfTheStaticHelperMeasuresExitToCallback) {
    if (!static_helper_built()) GTEST_SKIP() << "built with DROVER_BUILD_BENCH=OFF: no drover_static_true";
    bench_config cfg;
    cfg.sets = {namespace_set{}, namespace_set{ns::pid}};
    cfg.concurrency = {1, 4};
    cfg.duration = 0.3;
    cfg.work.how = workload::kind::exec_static;
    cfg.work.path = static_helper_path();
    bench_report r;
    run_throughput(cfg, r, {});
    ASSERT_EQ(r.throughput.size(), 4u);
    for (const throughput_result& t : r.throughput) {
        EXPECT_TRUE(t.failures.empty());
        EXPECT_GT(t.spawns, 0u);
        EXPECT_EQ(t.exit_to_callback.n, t.spawns);
        EXPECT_GT(t.exit_to_callback.min, 0);
        EXPECT_LT(t.exit_to_callback.max, t.latency.max);
    }
    EXPECT_NE(format_table(r).find("exit→cb p50"), std::string::npos);
    EXPECT_EQ(test::zombie_children(), 0);
}

// The helper's loop: two helpers given one start run together until the end and count.
TEST(BenchFloorHelper, LoopsAPlanUntilTheEndAndCounts) {
    if (!static_helper_built()) GTEST_SKIP() << "built with DROVER_BUILD_BENCH=OFF: no drover_floor";
    std::string path = floor_helper_path();
    ASSERT_FALSE(path.empty()) << "drover_floor was not found";
    std::string error;
    {
        floor_client a, b;
        ASSERT_TRUE(a.start(path, error)) << error;
        ASSERT_TRUE(b.start(path, error)) << error;
        floor_method m = floor_method::vfork;
        int ia = a.define(0, m, true, true, program(), error);
        int ib = b.define(0, m, true, true, program(), error);
        ASSERT_GE(ia, 0) << error;
        ASSERT_GE(ib, 0) << error;
        const std::int64_t start = floor_now_ns() + 20'000'000, end = start + 200'000'000;
        ASSERT_TRUE(a.start_loop(ia, start, end, error)) << error;
        ASSERT_TRUE(b.start_loop(ib, start, end, error)) << error;
        for (floor_client* c : {&a, &b}) {
            floor_loop_result r = c->finish_loop(end + 10'000'000'000);
            ASSERT_TRUE(r.ok) << r.error;
            EXPECT_GT(r.spawns, 0u);
            EXPECT_EQ(r.failures, 0u) << r.error;
            EXPECT_GE(r.finish_ns, end);
            EXPECT_LT(r.finish_ns, end + 1'000'000'000);
        }
        // Bad loops are refused with the reason, and the helper goes on serving.
        for (const auto& [id, s, e, why] : std::vector<std::tuple<int, std::int64_t, std::int64_t, std::string>>{
                 {99, start, end, "no such plan"},
                 {ia, floor_now_ns() + 120'000'000'000, floor_now_ns() + 121'000'000'000, "out of range"},
                 {ia, end, start, "out of range"}}) {
            ASSERT_TRUE(a.start_loop(id, s, e, error)) << error;
            floor_loop_result r = a.finish_loop(floor_now_ns() + 10'000'000'000);
            EXPECT_FALSE(r.ok);
            EXPECT_NE(r.error.find(why), std::string::npos) << r.error;
        }
        // A failing workload is counted with its reason, not fatal.
        m = floor_method::vfork;
        int bad = a.define(0, m, true, true, "/nonexistent/program", error);
        ASSERT_GE(bad, 0) << error;
        const std::int64_t s2 = floor_now_ns() + 10'000'000;
        ASSERT_TRUE(a.start_loop(bad, s2, s2 + 50'000'000, error)) << error;
        floor_loop_result f = a.finish_loop(s2 + 10'000'000'000);
        ASSERT_TRUE(f.ok) << f.error;
        EXPECT_EQ(f.spawns, 0u);
        EXPECT_GT(f.failures, 0u);
        EXPECT_NE(f.error.find("execve"), std::string::npos) << f.error;
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(BenchSmoke, ThroughputFloorRunsBesideEachPoint) {
    if (!static_helper_built()) GTEST_SKIP() << "built with DROVER_BUILD_BENCH=OFF: no drover_floor";
    bench_config cfg;
    cfg.sets = {namespace_set{}};
    cfg.concurrency = {1, 3};
    cfg.duration = 0.3;
    cfg.spawn_threads = 2;
    cfg.work = static_workload();
    bench_report r;
    run_throughput(cfg, r, {});
    ASSERT_EQ(r.throughput.size(), 2u);
    for (const throughput_result& t : r.throughput) {
        EXPECT_TRUE(t.floor_note.empty()) << t.floor_note;
        EXPECT_EQ(t.floor_method, floor_vfork_available() ? "vfork" : "fork");
        EXPECT_EQ(t.floor_processes, t.concurrency);
        EXPECT_GT(t.floor_spawns, 0u);
        EXPECT_TRUE(t.floor_failures.empty());
        EXPECT_GE(t.floor_seconds, 0.3);
        EXPECT_GT(t.floor_ratio(), 0);
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

// A helper that is not there or does not serve: drover's points are measured, with no floor
// and the reason. (A missing path falls through to the build's helper, so /bin/true stands in
// for a helper that cannot be used.)
TEST(BenchSmoke, ThroughputWithoutAUsableFloorHelperSaysWhy) {
    ::setenv("DROVER_FLOOR", "/bin/true", 1);
    bench_config cfg;
    cfg.sets = {namespace_set{}};
    cfg.concurrency = {2};
    cfg.duration = 0.1;
    cfg.work = static_workload();
    bench_report r;
    run_throughput(cfg, r, {});
    ::unsetenv("DROVER_FLOOR");
    ASSERT_EQ(r.throughput.size(), 1u);
    const throughput_result& t = r.throughput[0];
    EXPECT_GT(t.spawns, 0u);  // drover's point is measured all the same
    EXPECT_TRUE(t.floor_method.empty());
    EXPECT_EQ(t.floor_ratio(), 0);
    EXPECT_NE(t.floor_note.find("did not answer as the floor helper"), std::string::npos) << t.floor_note;
    notice_noise(r);
    bool warned = false;
    for (const std::string& w : r.warnings) warned |= w.find("throughput floor was not measured") != std::string::npos;
    EXPECT_TRUE(warned);
    EXPECT_EQ(format_table(r).find("floor/s"), std::string::npos);
}

// A clock that moved by more than 5 % during the run is a warning; a steady or unknown one
// (0: no cpufreq and no /proc/cpuinfo) is not. This machine's own clock is read as a number.
TEST(BenchSmoke, AClockThatChangesDuringTheRunIsWarnedAbout) {
    auto clock_warnings = [](double from, double to) {
        bench_report r;
        r.machine.cores = 2;
        r.machine.mhz_before = from;
        r.machine.mhz_after = to;
        notice_noise(r);
        std::string found;
        for (const std::string& w : r.warnings)
            if (w.find("CPU clock changed") != std::string::npos) found += w;
        return found;
    };
    EXPECT_NE(clock_warnings(2000, 2400).find("2000.0 MHz before, 2400.0 after"), std::string::npos);
    EXPECT_FALSE(clock_warnings(2400, 1200).empty());
    EXPECT_EQ(clock_warnings(2000, 2050), "");
    EXPECT_EQ(clock_warnings(0, 2400), "");
    EXPECT_EQ(clock_warnings(2400, 0), "");
    const double here = cpu_mhz();
    EXPECT_GE(here, 0);
    EXPECT_LT(here, 100'000);
}

std::string failures_of(const peer_result& p) {
    std::string out;
    for (const auto& [what, n] : p.failures) out += what + " ×" + std::to_string(n) + "; ";
    return out;
}

TEST(BenchSmoke, PeersRunOrSayWhyNot) {
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    bench_config cfg;
    cfg.count = 1;
    cfg.warmup = 0;
    bench_report r;
    run_peers(cfg, r, {});
    ASSERT_EQ(r.peers.size(), 5u);
    EXPECT_EQ(r.peers[0].name, "drover");
    EXPECT_TRUE(r.peers[0].ran);
    EXPECT_EQ(r.peers[0].total.n, 1u);
    // The same sandbox from a warm set: here (root, user namespaces) it must run, and its one
    // start must have found a ready set rather than gone cold.
    const peer_result& warm = r.peers[1];
    EXPECT_EQ(warm.name, "drover-warm");
    EXPECT_TRUE(warm.ran) << warm.note;
    EXPECT_EQ(warm.total.n, 1u) << failures_of(warm);
    EXPECT_EQ(warm.note.find("went cold"), std::string::npos) << warm.note;
    EXPECT_NE(format_table(r).find("drover-warm: "), std::string::npos);
    EXPECT_NE(format_markdown(r).find("faster than cold drover"), std::string::npos);
    EXPECT_NE(format_svg(r).find("faster than cold drover)"), std::string::npos);
    for (const peer_result& p : r.peers) {
        if (p.ran) {
            EXPECT_EQ(p.total.n + p.failures.size(), 1u) << p.name;
        } else {
            EXPECT_FALSE(p.note.empty()) << p.name << " was skipped without a reason";
        }
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

}  // namespace
}  // namespace drover::bench
