// A small real run: two combinations × a few spawns through drover and the raw floor; every
// stage is filled, non-negative and in order. Also the throughput and peers runs, briefly.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/floor.hpp"
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
    EXPECT_EQ(last_done, 2u * (4 + 1) * 2 + (4 + 1));  // drover and floor for both; posix for none
    ASSERT_EQ(r.combos.size(), 2u);
    EXPECT_TRUE(r.combos[0].set.empty());  // canonical order
    for (const combo_result& c : r.combos) {
        EXPECT_TRUE(c.drover_failures.empty())
            << c.set.str() << ": " << c.drover_failures.begin()->first;
        EXPECT_TRUE(c.floor_failures.empty())
            << c.set.str() << ": " << c.floor_failures.begin()->first;
        EXPECT_EQ(c.drover.n, 4u);
        EXPECT_EQ(c.floor.n, 4u);
        EXPECT_GT(c.ratio(), 0);
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
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(BenchSmoke, FloorRunsTheSameSetup) {
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    namespace_set full{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net};
    floor_plan p = floor_plan::for_flags(full.clone_flags(), true, {program()});
    EXPECT_TRUE(p.make_private);
    EXPECT_TRUE(p.mount_proc);
    EXPECT_TRUE(p.loopback);
    EXPECT_FALSE(p.uid_map.empty());
    floor_sample s = floor_spawn(p);
    EXPECT_TRUE(s.ok) << s.error;
    EXPECT_GT(s.total_ns, 0);
    EXPECT_GE(s.total_ns, s.clone_ns);
    // A failing workload is reported, not counted as a sample.
    floor_plan bad = floor_plan::for_flags(0, true, {"/nonexistent/program"});
    floor_sample f = floor_spawn(bad);
    EXPECT_FALSE(f.ok);
    EXPECT_NE(f.error.find("execve"), std::string::npos) << f.error;
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
    }
    EXPECT_EQ(r.throughput[1].concurrency, 4);
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(BenchSmoke, PeersRunOrSayWhyNot) {
    if (!user_namespaces_work()) GTEST_SKIP() << "user namespaces are not available here";
    bench_config cfg;
    cfg.count = 1;
    cfg.warmup = 0;
    bench_report r;
    run_peers(cfg, r, {});
    ASSERT_EQ(r.peers.size(), 4u);
    EXPECT_EQ(r.peers[0].name, "drover");
    EXPECT_TRUE(r.peers[0].ran);
    EXPECT_EQ(r.peers[0].total.n, 1u);
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
