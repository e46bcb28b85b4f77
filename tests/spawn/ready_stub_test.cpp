// Pre-started jobs waiting in drover_ready_stub: what the waiting process is (the stub, its
// filter already installed, none of drover's memory), what the job then sees from inside, a
// failure named by stage, and the cases where the job waits in drover's child instead.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "drover/spawn/launch.hpp"
#include "drover/spawn/seccomp.hpp"
#include "drover/spawn/warm.hpp"
#include "support.hpp"
#include "warm_support.hpp"

namespace drover {
namespace {

using test::open_fd_count;
using test::zombie_children;

std::string exe_of(pid_t pid) {
    char buf[4096];
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// One field of /proc/PID/status ("Seccomp", "VmRSS"), its value without the unit.
std::string status_field(pid_t pid, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(key + ":", 0) == 0) {
            std::string v = line.substr(key.size() + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v.substr(0, v.find(' '));
        }
    return {};
}

warm_options prestarted(unsigned size, bool stub = true) {
    warm_options o;
    o.size = size;
    o.refill_thread = false;
    o.prestart = true;
    o.stub = stub;
    return o;
}

// The first warm jobs of a process leave what the process keeps for good (a lock per id range
// leased, the stub's descriptor): run two at once before counting descriptors.
void first_warm_jobs() {
    prepared_spawn p(isolated({test::helper, "exit", "0"}));
    warm_pool pool(p, prestarted(2));
    ASSERT_EQ(pool.fill(), 2u) << pool.stats().last_error;
    for (int i = 0; i < 2; ++i) {
        run_result r = run(p, &pool);
        ASSERT_TRUE(r.ok && r.warm) << r.failure;
    }
    ASSERT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
}

// One job of `p` from `pool`, which starts warm and succeeds; what it printed, as keys.
std::map<std::string, std::string> warm_job_keys(const prepared_spawn& p, warm_pool& pool) {
    run_result r = run(p, &pool);
    EXPECT_TRUE(r.ok) << r.failure;
    EXPECT_TRUE(r.warm);
    EXPECT_TRUE(r.status.success()) << r.status.str() << "\n" << r.out;
    auto k = keys(r.out);
    EXPECT_EQ(k["getpid"], "1") << r.out;
    EXPECT_EQ(k["hostname"], "warmjob") << r.out;
    return k;
}

bool stub_built() { return ready_stub_unusable(prepared_spawn(isolated({test::helper, "exit", "0"}))).empty(); }

#define REQUIRE_STUB()                                                                               \
    do {                                                                                             \
        REQUIRE_WARM();                                                                              \
        if (!stub_built()) GTEST_SKIP() << "drover_ready_stub: "                                     \
                                        << ready_stub_unusable(prepared_spawn(isolated({"/x"}))); \
    } while (0)

// While it waits, the job is the stub: drover_ready_stub's image, a few hundred KiB resident
// (not drover's test binary, tens of MiB), its filter (the builtin default) and no_new_privs
// already in place. Started, it is PID 1 of its own PID namespace with the spec's hostname,
// and the filter acts: ptrace fails inside.
TEST(ReadyStub, AWaitingJobIsTheStubWithItsFilterAndTheJobSeesItsSandbox) {
    REQUIRE_STUB();
    spawn_spec s = isolated({test::helper, "inside"});
    s.seccomp = seccomp_program::compile(seccomp_policy::builtin_default());
    // A sanitizer build's helper: LeakSanitizer's exit check cannot stop the world under a
    // filter that refuses ptrace, and would hang the job (see SandboxCli's warm test).
    s.env.set("ASAN_OPTIONS", "detect_leaks=0");
    prepared_spawn p(s);
    ASSERT_EQ(ready_stub_unusable(p), "");
    first_warm_jobs();
    int fds = open_fd_count();
    {
        warm_pool pool(p, prestarted(1));
        ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
        const pid_t waiting = pool.stats().holders.at(0);
        EXPECT_TRUE(exe_of(waiting).ends_with("/drover_ready_stub")) << exe_of(waiting);
        EXPECT_EQ(status_field(waiting, "Seccomp"), "2");  // filter mode
        EXPECT_EQ(status_field(waiting, "NoNewPrivs"), "1");
        const long rss_kib = std::stol(status_field(waiting, "VmRSS"));
        const long ours_kib = std::stol(status_field(::getpid(), "VmRSS"));
        EXPECT_LT(rss_kib, 4096) << "KiB";
        EXPECT_LT(rss_kib * 4, ours_kib) << "the stub holds " << rss_kib << " KiB, drover's test " << ours_kib;
#if defined(__x86_64__)
        // No C library started there: a static glibc program's start-up takes a heap with brk
        // (its TLS block) and touches ~700 KiB; the stub is four pages and a stack.
        std::ifstream maps("/proc/" + std::to_string(waiting) + "/maps");
        std::string mapping, all;
        while (std::getline(maps, mapping)) all += mapping + "\n";
        ASSERT_FALSE(all.empty());
        EXPECT_EQ(all.find("[heap]"), std::string::npos) << all;
        EXPECT_LT(rss_kib, 128) << "KiB";
#endif
        EXPECT_EQ(warm_job_keys(p, pool)["lo"], "up");
    }
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

// The filter a stub job runs under is the job's: a call it refuses fails inside the job.
TEST(ReadyStub, TheFilterInstalledBeforeTheWaitActsInTheJob) {
    REQUIRE_STUB();
    seccomp_policy deny;
    deny.rules.push_back({{"mkdir", "mkdirat"}, seccomp_action::fail(EACCES), {}});
    spawn_spec s = isolated({"/bin/sh", "-c", "mkdir /tmp/x 2>&1 | grep -c 'Permission denied'"});
    s.seccomp = seccomp_program::compile(deny);
    prepared_spawn p(s);
    warm_pool pool(p, prestarted(1));
    ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
    EXPECT_TRUE(exe_of(pool.stats().holders.at(0)).ends_with("/drover_ready_stub"));
    run_result r = run(p, &pool);
    ASSERT_TRUE(r.ok) << r.failure;
    EXPECT_TRUE(r.warm);
    EXPECT_EQ(r.out, "1\n");
}

// A program that is not there: the stub names stage exec and the errno, exits, and nothing is
// left. The job's argv and descriptors came over the go socket: a second job of the same
// pool with another program runs it, and sees only its stdio.
TEST(ReadyStub, AMissingProgramIsNamedAtStageExecAndLeavesNothing) {
    REQUIRE_STUB();
    prepared_spawn pool_spec(isolated({test::helper, "exit", "0"}));
    prepared_spawn missing(isolated({"/nonexistent/program"}));
    prepared_spawn list(isolated({test::helper, "fds"}));
    first_warm_jobs();
    int fds = open_fd_count();
    {
        warm_pool pool(pool_spec, prestarted(2));
        ASSERT_EQ(pool.fill(), 2u) << pool.stats().last_error;
        launched_child child;
        spawn_failure failure;
        launch_extras extras;
        extras.warm = &pool;
        ASSERT_TRUE(launch(missing, child, failure, extras)) << failure.message();
        EXPECT_FALSE(await_exec(missing, child, failure));
        EXPECT_EQ(failure.stage, child_stage::exec) << failure.message();
        EXPECT_EQ(failure.code.value(), ENOENT) << failure.message();
        run_result r = run(list, &pool);
        ASSERT_TRUE(r.ok) << r.failure;
        EXPECT_TRUE(r.warm);
        EXPECT_EQ(r.out, "0\n1\n2\n");
    }
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

// Descriptors of this process that are namespace links ("mnt:[4026532177]").
std::vector<std::string> namespace_links() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        std::string target = std::filesystem::read_symlink(e.path(), ec).string();
        if (!ec && target.find(":[") != std::string::npos && target.find("pipe:") != 0 &&
            target.find("socket:") != 0 && target.find("anon_inode:") != 0)
            out.push_back(target);
    }
    return out;
}

// A pre-started job's namespaces are held by drover until it is reaped, so its exit does not
// wait for their teardown; then they are let go, on the reaper's thread. Seen from both sides:
// the job prints its mount and network namespaces, and drover holds exactly those while the
// job is unreaped, and none of them after.
TEST(ReadyStub, AJobsNamespacesAreHeldUntilItIsReapedThenLetGo) {
    REQUIRE_STUB();
    prepared_spawn p(isolated({test::helper, "ns"}));
    first_warm_jobs();
    const int fds = open_fd_count();
    {
        warm_pool pool(p, prestarted(1));
        ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
        launched_child child;
        spawn_failure failure;
        launch_extras extras;
        extras.warm = &pool;
        ASSERT_TRUE(launch(p, child, failure, extras)) << failure.message();
        ASSERT_TRUE(await_exec(p, child, failure)) << failure.message();
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(child.stdout_pipe.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
        auto k = keys(out);
        ASSERT_FALSE(k["mnt"].empty()) << out;
        // The job has exited (its stdout is at EOF) but is not reaped: its namespaces are ours.
        std::vector<std::string> held = namespace_links();
        for (const char* name : {"mnt", "net", "ipc", "uts", "user", "cgroup"})
            EXPECT_EQ(std::count(held.begin(), held.end(), k[name]), 1) << name << " " << k[name];
        EXPECT_TRUE(wait_blocking(child).success());
        ASSERT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
        held = namespace_links();
        for (const char* name : {"mnt", "net", "ipc", "uts", "user", "cgroup"})
            EXPECT_EQ(std::count(held.begin(), held.end(), k[name]), 0) << name << " " << k[name];
    }
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

// Where the stub cannot serve, the job waits in drover's child as before, and says why: a
// filter that refuses a call the stub makes, or stub = false.
TEST(ReadyStub, AFilterThatRefusesTheStubsCallsOrStubOffWaitsInDroversChild) {
    REQUIRE_STUB();
    seccomp_policy no_recvmsg;
    no_recvmsg.rules.push_back({{"recvmsg"}, seccomp_action::fail(EPERM), {}});
    spawn_spec s = isolated({test::helper, "write-fd", "1", "ok"});
    s.seccomp = seccomp_program::compile(no_recvmsg);
    prepared_spawn p(s);
    EXPECT_EQ(ready_stub_unusable(p), "the seccomp filter refuses recvmsg, which drover_ready_stub needs");
    prepared_spawn plain(isolated({test::helper, "write-fd", "1", "ok"}));
    const std::string self = exe_of(::getpid());
    for (auto [spec, stub] : {std::pair{&p, true}, std::pair{&plain, false}}) {
        warm_pool pool(*spec, prestarted(1, stub));
        ASSERT_EQ(pool.fill(), 1u) << pool.stats().last_error;
        EXPECT_EQ(exe_of(pool.stats().holders.at(0)), self);
        run_result r = run(*spec, &pool);
        ASSERT_TRUE(r.ok) << r.failure;
        EXPECT_TRUE(r.warm);
        EXPECT_EQ(r.out, "ok");
    }
    spawn_spec no_program;
    no_program.exec = false;
    EXPECT_EQ(ready_stub_unusable(prepared_spawn(no_program)), "the spec runs no program");
}

// A stub that fails to start (its execveat refused; here an injected EPERM at that very
// step): the set is made again at once, waiting in drover's child, so no set fails; the pool
// says why and tries the stub no more. The jobs run in their sandbox as before, and the failed
// attempt leaves no process or descriptor.
TEST(ReadyStub, AStubThatFailsToStartIsFallenBackFromAndThePoolSaysWhy) {
    REQUIRE_STUB();
    spawn_spec s = isolated({test::helper, "inside"});
    s.inject_failure = child_stage::ready_stub;
    prepared_spawn p(s);
    ASSERT_EQ(ready_stub_unusable(p), "");
    first_warm_jobs();
    const int fds = open_fd_count();
    const std::string self = exe_of(::getpid());
    {
        warm_pool pool(p, prestarted(2));
        EXPECT_TRUE(pool.stats().stub);
        ASSERT_EQ(pool.fill(), 2u) << pool.stats().last_error;
        warm_stats st = pool.stats();
        EXPECT_EQ(st.made, 2u);
        EXPECT_EQ(st.failed, 0u) << st.last_error;
        EXPECT_FALSE(st.stub);
        EXPECT_NE(st.stub_unused.find("drover_ready_stub failed to start"), std::string::npos) << st.stub_unused;
        EXPECT_NE(st.stub_unused.find("ready_stub"), std::string::npos) << st.stub_unused;
        EXPECT_NE(st.stub_unused.find(std::strerror(EPERM)), std::string::npos) << st.stub_unused;
        for (pid_t waiting : st.holders) EXPECT_EQ(exe_of(waiting), self);
        for (int i = 0; i < 2; ++i) warm_job_keys(p, pool);
    }
    // Without the fallback's out-parameter the set is made all the same.
    spawn_failure failure;
    auto set = make_warm_set(p, failure, true, true);
    ASSERT_TRUE(set) << failure.message();
    EXPECT_EQ(exe_of(set->holder_pid()), self);
    set.reset();
    EXPECT_TRUE(wait_warm_reaps(std::chrono::seconds(10)));
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

}  // namespace
}  // namespace drover
