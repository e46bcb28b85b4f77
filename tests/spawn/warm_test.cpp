// Warm namespace sets: every job gets namespaces no other job saw, checked from inside; a set
// is single-use; a killed holder is dropped or ends its job; nothing is left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "drover/spawn/launch.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/syscalls.hpp"
#include "support.hpp"
#include "warm_support.hpp"

namespace drover {
namespace {

using test::open_fd_count;
using test::zombie_children;

// TSan takes its internal locks around fork() only; drover forks with a raw clone3. A holder
// forked by the refill thread while this thread holds one of those locks would hang in its
// first intercepted call. Tests fill pools from their own thread, and the refill thread's own
// test runs in the other builds.
#if defined(__SANITIZE_THREAD__)
constexpr bool under_tsan = true;
#else
constexpr bool under_tsan = false;
#endif

// Sanitizer builds spawn fork-style, several times slower: the 1,000-job test runs 300 there
// (the same check per batch; the normal build runs all 1,000), to keep CI well inside its time.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int sanitized_batches = 6;
#else
constexpr int sanitized_batches = 20;
#endif

// Every test runs with holders (a job enters their namespaces) and with pre-started jobs.
class Warm : public testing::TestWithParam<bool> {
protected:
    warm_options options(unsigned size, bool refill = true) const {
        warm_options o;
        o.size = size;
        o.refill_thread = refill;
        o.prestart = GetParam();
        return o;
    }
};

INSTANTIATE_TEST_SUITE_P(Modes, Warm, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "prestarted" : "holders"; });

TEST_P(Warm, EveryJobSeesNamespacesNoOtherJobSaw) {
    REQUIRE_WARM();
    // Namespace inode numbers are reused once a namespace is gone, so distinctness is checked
    // among jobs alive together: batches of jobs that report, then wait for us.
    constexpr int batch = 50, batches = sanitized_batches;
    spawn_spec s = isolated({test::helper, "inside", "wait"});
    s.in = stdio::pipe();
    prepared_spawn p(s);
    warm_pool pool(p, options(batch, false));
    const char* types[] = {"user", "pid", "mnt", "uts", "ipc", "net", "cgroup"};
    std::set<std::string> own;  // this process's, which no job may share
    for (const char* t : types) {
        char link[128] = {};
        ssize_t n = ::readlink((std::string("/proc/self/ns/") + t).c_str(), link, sizeof link - 1);
        ASSERT_GT(n, 0);
        own.insert(link);
    }
    int warm = 0;
    for (int b = 0; b < batches && !testing::Test::HasFailure(); ++b) {
        // Every job from a ready set: this test is about the warm path's isolation.
        ASSERT_EQ(pool.fill(), static_cast<std::size_t>(batch)) << pool.stats().last_error;
        std::vector<launched_child> live(batch);
        std::map<std::string, std::set<std::string>> seen;
        for (int i = 0; i < batch; ++i) {
            spawn_failure failure;
            launch_extras extras;
            extras.warm = &pool;
            std::uint64_t hits = pool.stats().hits;
            ASSERT_TRUE(launch(p, live[i], failure, extras) && await_exec(p, live[i], failure)) << failure.message();
            warm += pool.stats().hits > hits;
        }
        for (int i = 0; i < batch; ++i) {
            launched_child& c = live[i];
            std::string out;
            char buf[4096];
            ssize_t n;
            // The job's report ends with "lo ..."; it then waits for EOF on stdin.
            while (out.find("\nlo ") == std::string::npos || out.back() != '\n') {
                n = ::read(c.stdout_pipe.get(), buf, sizeof buf);
                if (n <= 0) break;
                out.append(buf, static_cast<std::size_t>(n));
            }
            auto k = keys(out);
            for (const char* t : types) {
                const std::string& inode = k[t];
                ASSERT_FALSE(inode.empty()) << t << "\n" << out;
                EXPECT_EQ(own.count(inode), 0u) << "a job shares our " << t << " namespace";
                EXPECT_TRUE(seen[t].insert(inode).second) << "two live jobs share a " << t << " namespace: " << inode << "\n" << out;
            }
            EXPECT_EQ(k["getpid"], "1") << out;
            EXPECT_EQ(k["getppid"], "0") << out;
            EXPECT_EQ(k["proc_entries"], "1") << "its /proc shows more than its own tree:\n" << out;
            EXPECT_EQ(k["hostname"], "warmjob");
            EXPECT_EQ(k["lo"], "up");
            EXPECT_EQ(k["uid"], "0");
            // A leased range: in-namespace 0 is a host id other than ours (0).
            std::istringstream map(k["uid_map"]);
            unsigned inner = 1, outer = 0, count = 0;
            map >> inner >> outer >> count;
            EXPECT_EQ(inner, 0u) << k["uid_map"];
            EXPECT_NE(outer, 0u) << k["uid_map"];
            EXPECT_GT(count, 0u) << k["uid_map"];
        }
        for (launched_child& c : live) {
            c.stdin_pipe.reset();
            exit_status st = wait_blocking(c);
            EXPECT_TRUE(st.success()) << st.str();
        }
    }
    EXPECT_EQ(warm, batch * batches);
    warm_stats st = pool.stats();
    EXPECT_EQ(st.hits, static_cast<std::uint64_t>(batch * batches));
    EXPECT_GE(st.made, static_cast<std::uint64_t>(batch * batches));
    // user, pid, mnt, uts, ipc, net; a pre-started job holds its cgroup namespace too
    EXPECT_EQ(st.namespaces_per_set, GetParam() ? 7u : 6u);
}

TEST_P(Warm, AJobLeavesNothingForTheNext) {
    REQUIRE_WARM();
    // The first job changes what it can of its namespaces: hostname, a mount, a file in its
    // tmpfs, an address on lo. The next job, warm too, must see none of it.
    std::string dirty =
        "hostname changed && mount -t tmpfs dirt /mnt && echo x > /tmp/mark && "
        "(ip addr add 10.9.9.9/32 dev lo 2>/dev/null || true) && echo dirtied";
    std::string look =
        "hostname; test -e /tmp/mark && echo LEAK-file; grep -c ' /mnt ' /proc/self/mountinfo; "
        "(ip addr show dev lo 2>/dev/null | grep -c 10.9.9.9) || true";
    prepared_spawn first(isolated({"/bin/sh", "-c", dirty}));
    prepared_spawn second(isolated({"/bin/sh", "-c", look}));
    warm_pool pool(first, options(2, false));
    ASSERT_EQ(pool.fill(), 2u) << pool.stats().last_error;
    run_result a = run(first, &pool);
    ASSERT_TRUE(a.ok) << a.failure;
    ASSERT_TRUE(a.warm);
    ASSERT_TRUE(a.status.success()) << a.status.str() << a.out;
    EXPECT_NE(a.out.find("dirtied"), std::string::npos);
    run_result b = run(second, &pool);
    ASSERT_TRUE(b.ok) << b.failure;
    ASSERT_TRUE(b.warm);
    EXPECT_EQ(b.out.substr(0, b.out.find('\n')), "warmjob") << b.out;
    EXPECT_EQ(b.out.find("LEAK"), std::string::npos) << b.out;
    std::istringstream lines(b.out);
    std::string host, mounts, addrs;
    std::getline(lines, host);
    std::getline(lines, mounts);
    std::getline(lines, addrs);
    EXPECT_EQ(mounts, "0") << b.out;
    if (!addrs.empty()) EXPECT_EQ(addrs, "0") << b.out;
}

TEST_P(Warm, AReadySetWithAKilledHolderIsDroppedAndTheJobGoesCold) {
    REQUIRE_WARM();
    prepared_spawn p(isolated({test::helper, "inside"}));
    warm_pool pool(p, options(1, false));
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    std::vector<pid_t> holders = pool.stats().holders;
    ASSERT_EQ(holders.size(), 1u);
    // Our own child, not yet reaped: its pid cannot have been reused.
    auto fd = sys::pidfd_open(holders[0]);
    ASSERT_TRUE(fd);
    ASSERT_FALSE(sys::pidfd_send_signal(fd->get(), SIGKILL));
    siginfo_t info;
    ASSERT_FALSE(sys::waitid_pidfd(fd->get(), info, WEXITED | WNOWAIT));  // dead, not reaped
    run_result r = run(p, &pool);
    ASSERT_TRUE(r.ok) << r.failure;
    EXPECT_FALSE(r.warm);
    EXPECT_TRUE(r.status.success()) << r.status.str();
    EXPECT_EQ(keys(r.out)["getpid"], "1");
    warm_stats st = pool.stats();
    EXPECT_EQ(st.dead, 1u);
    EXPECT_EQ(st.misses, 1u);
    EXPECT_EQ(st.hits, 0u);
}

TEST(WarmHolders, KillingTheHolderOfARunningJobEndsTheJob) {
    REQUIRE_WARM();
    spawn_spec s = isolated({test::helper, "sleep", "60"});
    s.out = stdio::inherit();
    prepared_spawn p(s);
    warm_options o;
    o.size = 1;
    o.refill_thread = false;
    o.prestart = false;
    warm_pool pool(p, o);
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = &pool;
    ASSERT_TRUE(launch(p, child, failure, extras) && await_exec(p, child, failure)) << failure.message();
    ASSERT_NE(child.set, nullptr);
    ASSERT_FALSE(sys::pidfd_send_signal(child.set->holder_pidfd(), SIGKILL));
    // The job is in a PID namespace below the holder's: the kernel ends it with its init.
    exit_status st = wait_blocking(child);
    EXPECT_TRUE(st.signaled());
    EXPECT_EQ(st.signal(), SIGKILL) << st.str();
}

// Once set up, a holder execs drover_ready_stub's hold mode: it then holds none of our memory
// (and, on the posix_spawn path, was made without copying our page tables). A job still
// starts in its namespaces.
TEST(WarmHolders, AHolderWaitsInTheStubAndAJobStillStartsInItsSet) {
    REQUIRE_WARM();
    spawn_spec s = isolated({test::helper, "inside", "wait"});
    s.hostname = "held";
    prepared_spawn p(s);
    warm_options o;
    o.size = 1;
    o.refill_thread = false;
    warm_pool pool(p, o);
    if (!pool.stats().stub) GTEST_SKIP() << "no stub: " << pool.stats().stub_unused;
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    warm_stats st = pool.stats();
    ASSERT_EQ(st.holders.size(), 1u);
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(st.holders[0]) + "/exe", ec);
    EXPECT_EQ(exe.filename(), "drover_holder") << exe << " " << ec.message();
    EXPECT_TRUE(st.stub);
    EXPECT_EQ(st.stub_unused, "");
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = &pool;
    ASSERT_TRUE(launch(p, child, failure, extras) && await_exec(p, child, failure)) << failure.message();
    ASSERT_NE(child.set, nullptr);  // it was warm
    (void)sys::pidfd_send_signal(child.pidfd.get(), SIGKILL);
    (void)wait_blocking(child);
}

TEST(WarmHolders, DroppingASetBeforeItsJobIsReapedDoesNotBlock) {
    REQUIRE_WARM();
    // The holder may finish exiting only once the job below it is reaped, and the job's
    // parent is us: a reap of the holder in the set's destructor would wait for ever.
    spawn_spec s = isolated({test::helper, "sleep", "60"});
    s.out = stdio::inherit();
    prepared_spawn p(s);
    warm_options o;
    o.size = 1;
    o.refill_thread = false;
    o.prestart = false;
    warm_pool pool(p, o);
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = &pool;
    ASSERT_TRUE(launch(p, child, failure, extras) && await_exec(p, child, failure)) << failure.message();
    child.set.reset();  // returns at once; the job goes with its holder
    exit_status st = wait_blocking(child);
    EXPECT_EQ(st.signal(), SIGKILL) << st.str();
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(zombie_children(), 0);
}

TEST_P(Warm, TheRefillThreadKeepsThePoolFullAndAnEmptyPoolGoesCold) {
    REQUIRE_WARM();
    if (under_tsan) GTEST_SKIP() << "TSan cannot follow a raw clone3 fork from a second thread (see under_tsan)";
    prepared_spawn p(isolated({test::helper, "inside"}));
    warm_pool pool(p, options(3));
    ASSERT_TRUE(pool.wait_ready(std::chrono::seconds(30))) << pool.stats().last_error;
    // Taken faster than the thread refills (it makes one set at a time): some go cold, and
    // every one runs.
    int ran = 0;
    for (int i = 0; i < 12; ++i) {
        run_result r = run(p, &pool);
        ASSERT_TRUE(r.ok) << r.failure;
        EXPECT_EQ(keys(r.out)["getpid"], "1") << r.out;
        ran += r.status.success();
    }
    EXPECT_EQ(ran, 12);
    ASSERT_TRUE(pool.wait_ready(std::chrono::seconds(30))) << pool.stats().last_error;
    warm_stats st = pool.stats();
    EXPECT_EQ(st.hits + st.misses, 12u);
    EXPECT_GE(st.hits, 3u);             // the three ready at the start at least
    EXPECT_GE(st.made, st.hits + 3u);   // and full again
    EXPECT_EQ(st.ready, 3u);
    EXPECT_GT(st.refill_max_ns, 0);
}

TEST_P(Warm, AFailedStartIsNamedAndLeavesNothing) {
    REQUIRE_WARM();
    spawn_spec s = isolated({test::helper, "exit", "0"});
    prepared_spawn clean(s);
    // Holders: the entry into the set fails. Pre-started jobs: the exec after the go fails
    // (the job runs the pool's plan, so the pool's spec carries the injection).
    const bool prestart = GetParam();
    s.inject_failure = prestart ? child_stage::exec : child_stage::enter_set;
    prepared_spawn p(s);
    const prepared_spawn& pool_spec = prestart ? p : clean;
    {
        // What the process keeps after its first warm job (id range locks, its own PID
        // namespace's descriptor) is not a leak of this one.
        warm_pool pool(clean, options(1, false));
        ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
        run_result r = run(clean, &pool);
        ASSERT_TRUE(r.ok && r.warm) << r.failure;
    }
    ASSERT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    int fds = open_fd_count();
    {
        warm_pool pool(pool_spec, options(1, false));
        ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
        launched_child child;
        spawn_failure failure;
        launch_extras extras;
        extras.warm = &pool;
        if (prestart) {
            ASSERT_TRUE(launch(p, child, failure, extras)) << failure.message();
            EXPECT_FALSE(await_exec(p, child, failure));
            EXPECT_EQ(failure.stage, child_stage::exec) << failure.message();
        } else {
            EXPECT_FALSE(launch(p, child, failure, extras));
            EXPECT_EQ(failure.stage, child_stage::enter_set) << failure.message();
            EXPECT_NE(failure.message().find("entering a warm namespace set"), std::string::npos) << failure.message();
        }
    }
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

TEST_P(Warm, AJobWhoseSetupDiffersFromThePoolsIsRefused) {
    REQUIRE_WARM();
    prepared_spawn pool_spec(isolated({test::helper, "exit", "0"}));
    spawn_spec other = isolated({test::helper, "exit", "0"});
    other.hostname = "elsewhere";
    prepared_spawn p(other);
    warm_pool pool(pool_spec, options(0));
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = &pool;
    EXPECT_FALSE(launch(p, child, failure, extras));
    EXPECT_EQ(failure.stage, child_stage::prepare);
    EXPECT_NE(failure.message().find("warm pool"), std::string::npos) << failure.message();
}

TEST_P(Warm, SpecsThatCannotBeWarmAreRefusedWithTheReason) {
    spawn_spec s;
    s.argv = {"true"};
    s.namespaces = namespace_set{ns::user, ns::time};
    try {
        warm_pool pool{prepared_spawn(s)};
        FAIL() << "a time namespace was accepted";
    } catch (const spec_error& e) {
        EXPECT_NE(std::string(e.what()).find("time namespace"), std::string::npos) << e.what();
    }
    s.namespaces = namespace_set{ns::pid};
    if (GetParam()) {
        // A pre-started job needs no namespace to hold: it is the job itself.
        if (::geteuid() == 0) EXPECT_NO_THROW(warm_pool(prepared_spawn(s), options(0)));
    } else {
        EXPECT_THROW(warm_pool(prepared_spawn(s), options(0)), spec_error);
    }
}

TEST(WarmPrestarted, AJobMayChangeItsProgramArgvEnvAndDescriptorsOnly) {
    REQUIRE_WARM();
    prepared_spawn pool_spec(isolated({test::helper, "exit", "3"}));
    warm_options o;
    o.size = 1;
    o.refill_thread = false;
    o.prestart = true;
    warm_pool pool(pool_spec, o);
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    // Another program, argv and env, and its stdout on a pipe of its own.
    spawn_spec job = isolated({"/bin/sh", "-c", "echo \"$GREETING\" \"$0\"; cat /proc/self/uid_map", "second"});
    job.env.set("GREETING", "hello from a pre-started job");
    prepared_spawn pj(job);
    run_result r = run(pj, &pool);
    ASSERT_TRUE(r.ok) << r.failure;
    EXPECT_TRUE(r.warm);
    EXPECT_TRUE(r.status.success()) << r.status.str() << r.out;
    EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "hello from a pre-started job second") << r.out;
    EXPECT_EQ(r.out.find("         0          0"), std::string::npos) << "host root inside: " << r.out;
    // Anything else is the pool's: refused before a set is used.
    spawn_spec cwd = isolated({test::helper, "exit", "0"});
    cwd.cwd = "/tmp";
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = &pool;
    EXPECT_FALSE(launch(prepared_spawn(cwd), child, failure, extras));
    EXPECT_EQ(failure.stage, child_stage::prepare);
    EXPECT_NE(failure.message().find("only its program, argv, env and descriptors"), std::string::npos)
        << failure.message();
    EXPECT_EQ(pool.stats().hits, 1u);
}

TEST(WarmPrestarted, AnArgvPastTheLimitIsOneLineAndStartsNothing) {
    REQUIRE_WARM();
    prepared_spawn pool_spec(isolated({test::helper, "exit", "0"}));
    warm_options o;
    o.size = 1;
    o.refill_thread = false;
    o.prestart = true;
    warm_pool pool(pool_spec, o);
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    std::vector<std::string> argv = {test::helper, "exit", "0"};
    for (int i = 0; i < 9; ++i) argv.push_back(std::string(1 << 20, 'x'));
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = &pool;
    EXPECT_FALSE(launch(prepared_spawn(isolated(argv)), child, failure, extras));
    EXPECT_EQ(failure.stage, child_stage::prepare) << failure.message();
    EXPECT_NE(failure.message().find("8 MiB"), std::string::npos) << failure.message();
    EXPECT_EQ(failure.message().find('\n'), std::string::npos);
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(zombie_children(), 0);
}

TEST_P(Warm, NothingIsLeftOnceThePoolAndItsJobsAreGone) {
    REQUIRE_WARM();
    std::vector<pid_t> holders;
    int fds = 0;
    // Twice: the first round opens what the process keeps (id range locks for the next job,
    // the map writer's thread), the second must end where it began.
    for (int round = 0; round < 2; ++round) {
        ASSERT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
        fds = open_fd_count();
        prepared_spawn p(isolated({test::helper, "exit", "0"}));
        warm_pool pool(p, options(3, false));
        ASSERT_EQ(pool.fill(), 3u) << pool.stats().last_error;
        for (int i = 0; i < 5; ++i) {
            run_result r = run(p, &pool);
            ASSERT_TRUE(r.ok) << r.failure;
        }
        ASSERT_EQ(pool.fill(), 3u) << pool.stats().last_error;
        holders = pool.stats().holders;
        EXPECT_EQ(holders.size(), 3u);
    }
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
    // Each holder was our child and has been reaped: its pid is gone, or (reused at once)
    // belongs to a process that is not our child.
    for (pid_t h : holders) {
        std::ifstream stat("/proc/" + std::to_string(h) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        auto close = line.rfind(')');
        std::istringstream rest(line.substr(close + 2));
        char state;
        pid_t ppid;
        rest >> state >> ppid;
        EXPECT_NE(ppid, ::getpid()) << "holder " << h << " is still ours";
    }
}

}  // namespace
}  // namespace drover
