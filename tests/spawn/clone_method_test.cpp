// The three ways launch() creates a child: which specs take the posix_spawn-style vfork path,
// that all give the same child, seen from inside, and what the vm path must keep apart.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "drover/spawn/launch.hpp"
#include "drover/sys/syscalls.hpp"
#include "support.hpp"

namespace drover {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__x86_64__)
constexpr bool vfork_built = false;
#else
constexpr bool vfork_built = true;
#endif

// Restores the automatic choice when a test ends, also on failure.
struct method_guard {
    explicit method_guard(std::optional<clone_method> m) { force_clone_method(m); }
    ~method_guard() { force_clone_method(std::nullopt); }
};

clone_method method_of(const spawn_spec& s) {
    prepared_spawn p(s);
    launched_child child = launch_sync(p);
    clone_method m = child.method;
    EXPECT_TRUE(wait_blocking(child).success());
    return m;
}

spawn_spec true_in(namespace_set n) {
    spawn_spec s;
    s.argv = {"/bin/true"};
    s.namespaces = n;
    return s;
}

TEST(CloneMethod, SpecsWithNothingForTheParentToDoTakeTheVforkPath) {
    if (!vfork_built) GTEST_SKIP() << "the vfork path is x86-64 only and off in sanitizer builds";
    if (const char* v = std::getenv("DROVER_CLONE"); v && std::string(v) != "vfork")
        GTEST_SKIP() << "DROVER_CLONE=" << v << " in the environment: this is the automatic choice";
    method_guard automatic(std::nullopt);
    EXPECT_EQ(method_of(true_in({})), clone_method::vfork);
    EXPECT_EQ(method_of(true_in({ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net})), clone_method::vfork);
    // Default id maps: the child writes them itself.
    EXPECT_EQ(method_of(true_in({ns::user, ns::pid, ns::mnt})), clone_method::vfork);
    // Explicit maps need the parent's privilege while the child waits: another thread of
    // drover's writes them while the launching thread is held.
    spawn_spec mapped = true_in({ns::user});
    mapped.uid_map = {{0, ::getuid(), 1}};
    EXPECT_EQ(method_of(mapped), clone_method::vfork);
    // A time namespace is entered at execve, in the job's new memory: vfork too.
    EXPECT_EQ(method_of(true_in({ns::user, ns::time})), clone_method::vfork);
    // A file op that reads a pipe may wait for its writer: that wait must not hold us.
    auto feed = *sys::pipe();
    (void)!::write(feed.write.get(), "x", 1);
    feed.write.reset();
    spawn_spec piped_file = true_in({ns::user, ns::mnt});
    piped_file.fs.enabled = true;
    piped_file.fs.ops = {fs_op::tmpfs("/"), fs_op::file(feed.read.get(), "/f")};
    piped_file.argv = {"/proc/self/exe"};  // not in the empty root: only the method matters
    prepared_spawn p(piped_file);
    launched_child child;
    spawn_failure failure;
    ASSERT_TRUE(launch(p, child, failure)) << failure.message();
    EXPECT_EQ(child.method, clone_method::fork);
    EXPECT_FALSE(child.report_complete);  // a fork-style child may still be in its setup
    EXPECT_TRUE(child.report);            // so its report comes through a pipe, to EOF
    (void)await_exec(p, child, failure);
}

// On the vfork path clone3 returns after the child's execve or exit: its report is complete,
// and is read at once, also when it says that execve failed. It came through our memory
// (the child shares it until execve), not a pipe: launch() opened no descriptor for it.
TEST(CloneMethod, AVforkChildsReportIsCompleteWhenClone3Returns) {
    if (!vfork_built) GTEST_SKIP() << "the vfork path is x86-64 only and off in sanitizer builds";
    method_guard vfork(clone_method::vfork);
    for (bool exists : {true, false}) {
        spawn_spec s = true_in({ns::pid, ns::mnt});
        if (!exists) s.argv = {"/nonexistent/program"};
        prepared_spawn p(s);
        launched_child child;
        spawn_failure failure;
        ASSERT_TRUE(launch(p, child, failure)) << failure.message();
        ASSERT_EQ(child.method, clone_method::vfork);
        EXPECT_TRUE(child.report_complete);
        EXPECT_FALSE(child.report) << "a report pipe on the vfork path";
        // Nothing more will come: the one read sees everything without waiting for EOF.
        std::byte buf[report_max_size];
        std::size_t got = read_report(child, buf);
        EXPECT_EQ(got, exists ? report_record_size : 2 * report_record_size);
        bool ok = conclude(p, child, std::span<const std::byte>(buf, got), sys::monotonic_ns(), failure);
        EXPECT_EQ(ok, exists) << failure.message();
        if (ok) {
            EXPECT_TRUE(wait_blocking(child).success());
        } else {
            EXPECT_EQ(failure.stage, child_stage::exec);
            EXPECT_EQ(failure.code.value(), ENOENT);
        }
    }
}

TEST(CloneMethod, ForcingForkWins) {
    method_guard fork_only(clone_method::fork);
    EXPECT_EQ(method_of(true_in({})), clone_method::fork);
    EXPECT_EQ(method_of(true_in({ns::user, ns::pid})), clone_method::fork);
}

// The parent's id_maps stage: the writes of explicit maps; nothing with default maps, which
// the child writes itself (on either path).
TEST(CloneMethod, OnlyExplicitMapsTakeTheParentsIdMapsStage) {
    auto id_maps_stage = [](const spawn_spec& s) {
        prepared_spawn p(s);
        launched_child child = launch_sync(p);
        EXPECT_TRUE(wait_blocking(child).success());
        return child.timings.durations().id_maps;
    };
    spawn_spec mapped = true_in({ns::user});
    mapped.uid_map = {{0, ::getuid(), 1}};
    EXPECT_GT(id_maps_stage(mapped), 0);
    EXPECT_EQ(id_maps_stage(true_in({ns::user})), 0);
    method_guard fork_only(clone_method::fork);
    EXPECT_EQ(id_maps_stage(true_in({ns::user})), 0);
}

class both_methods : public ::testing::TestWithParam<clone_method> {
protected:
    void SetUp() override {
        if (GetParam() != clone_method::fork && !vfork_built)
            GTEST_SKIP() << "the vfork and vm paths are x86-64 only and off in sanitizer builds";
    }
    method_guard guard{GetParam() == clone_method::vfork ? std::nullopt : std::optional(GetParam())};
};

// The same sandbox, looked at from inside: ids, hostname, PID 1, mounts, the loopback, fds,
// signal dispositions, and a failure named with its stage.
TEST_P(both_methods, the_child_sees_the_same_sandbox) {
    spawn_spec s = test::piped({"/bin/sh", "-c",
                                "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; hostname; "
                                "echo pid=$$; ls /proc | grep -c '^[0-9]'; "
                                "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | wc -l"},
                               {ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net});
    s.hostname = "inside";
    auto r = test::run_spec(s);
    ASSERT_TRUE(r.status.success()) << r.err;
    std::string uid = std::to_string(::getuid()), gid = std::to_string(::getgid());
    std::string want = "         0 " + std::string(10 - uid.size(), ' ') + uid + "          1\n" +
                       "         0 " + std::string(10 - gid.size(), ' ') + gid + "          1\n" +
                       "deny\ninside\npid=1\n";
    EXPECT_TRUE(r.out.starts_with(want)) << r.out;
    EXPECT_NE(r.out.find("SigBlk:\t0000000000000000"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("SigIgn:\t0000000000000000"), std::string::npos) << r.out;
    // The child's own setup is timed on both paths. On the vfork path clone3 returns only
    // after it, so the timeline ends the clone stage where the child started and the setup
    // stage is never swallowed. (On the fork path the child's setup can end before clone3
    // returns in the parent: the timeline then clamps it to 0.)
    EXPECT_GT(r.timings.setup_done, r.timings.child_start);
    stage_durations d = r.timings.durations();
    EXPECT_GT(d.clone, 0);
    if (GetParam() == clone_method::vfork) EXPECT_GT(d.setup, 0);
    // drover's own work before clone3 is timed too, and the stages add up to the whole.
    EXPECT_GT(r.timings.launch_start, 0);
    EXPECT_GT(d.prepare, 0);
    EXPECT_EQ(d.prepare + d.clone + d.id_maps + d.setup + d.exec + d.run + d.reap, d.total);
}

TEST_P(both_methods, a_failing_stage_is_reported_and_leaves_nothing) {
    spawn_spec s = true_in({ns::user, ns::mnt});
    s.binds = {{"/no/such/source", "/mnt", false}};
    prepared_spawn p(s);
    launched_child child;
    spawn_failure f;
    int fds = test::open_fd_count();
    bool ok = launch(p, child, f) && await_exec(p, child, f);
    EXPECT_FALSE(ok);
    EXPECT_EQ(f.stage, child_stage::bind_mount) << f.message();
    EXPECT_EQ(f.code, std::errc::no_such_file_or_directory) << f.message();
    EXPECT_EQ(test::open_fd_count(), fds);
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST_P(both_methods, exec_failure_of_a_missing_program_is_named) {
    spawn_spec s;
    s.argv = {"/no/such/program"};
    prepared_spawn p(s);
    launched_child child;
    spawn_failure f;
    bool ok = launch(p, child, f) && await_exec(p, child, f);
    EXPECT_FALSE(ok);
    EXPECT_EQ(f.stage, child_stage::exec);
    EXPECT_EQ(f.code, std::errc::no_such_file_or_directory);
    EXPECT_EQ(test::zombie_children(), 0);
}

std::int64_t ns_of(const timespec& t) { return t.tv_sec * 1'000'000'000LL + t.tv_nsec; }

// How far our vDSO's clock is from the kernel's own (a raw system call, which reads no page of
// ours): had a child entered its time namespace while sharing our memory, the vDSO would read
// the child's page and be off by the child's offset.
std::int64_t vdso_skew(clockid_t clock) {
    timespec v{}, k{};
    ::clock_gettime(clock, &v);
    ::syscall(SYS_clock_gettime, clock, &k);
    return ns_of(k) - ns_of(v);
}

// A time namespace with offsets takes the posix_spawn-style path (and never the vm path, which
// kernels before 5.18 did not switch at execve): the job sees its offsets and its own time
// namespace, and our clocks stay ours, on the launching thread and on another.
TEST(CloneMethod, ATimeNamespaceTakesTheVforkPathAndLeavesOurClocksAlone) {
    if (!vfork_built) GTEST_SKIP() << "the vfork path is x86-64 only and off in sanitizer builds";
    if (const char* v = std::getenv("DROVER_CLONE"); v && std::string(v) != "vfork")
        GTEST_SKIP() << "DROVER_CLONE=" << v << " in the environment: this is the automatic choice";
    method_guard automatic(std::nullopt);
    spawn_spec s = true_in({ns::time});
    s.monotonic_offset = std::chrono::hours(24 * 10);
    s.boottime_offset = std::chrono::hours(24 * 20);
    EXPECT_EQ(method_of(s), clone_method::vfork);
    s.namespaces = namespace_set{ns::user, ns::pid, ns::time};
    EXPECT_EQ(method_of(s), clone_method::vfork);
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(method_of(s) == clone_method::vfork);
    for (clockid_t c : {CLOCK_MONOTONIC, CLOCK_BOOTTIME}) {
        EXPECT_LT(std::abs(vdso_skew(c)), 1'000'000'000LL) << "clock " << c;
        std::int64_t other = 0;
        std::thread([&] { other = vdso_skew(c); }).join();
        EXPECT_LT(std::abs(other), 1'000'000'000LL) << "clock " << c << " on another thread";
    }
    // From inside: the offsets, and a time namespace that is not ours.
    s.argv = {test::helper, "monotonic"};
    s.namespaces = namespace_set{ns::time};
    timespec host_mono{};
    ::clock_gettime(CLOCK_MONOTONIC, &host_mono);
    s.out = stdio::pipe();
    s.err = stdio::pipe();
    auto r = test::run_spec(s);
    long long mono = 0, boot = 0;
    std::istringstream(r.out) >> mono >> boot;
    EXPECT_NEAR(static_cast<double>(mono - host_mono.tv_sec), 864000.0, 5.0) << r.out << r.err;
    {
        method_guard vm(clone_method::vm);
        EXPECT_EQ(method_of(s), clone_method::vfork) << "a time namespace took the vm path";
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

// The vm path: the launching thread goes on while the child sets up in its memory.
TEST(CloneMethod, AVmChildRunsOnMemoryOfItsOwnUntilItHasLeft) {
    if (!vfork_built) GTEST_SKIP() << "the vm path is x86-64 only and off in sanitizer builds";
    method_guard vm(clone_method::vm);
    // Many at once, each with its own stack, frame and thread pointer, none concluded yet.
    prepared_spawn p(true_in({ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net}));
    std::vector<launched_child> children(32);
    for (auto& c : children) {
        spawn_failure f;
        ASSERT_TRUE(launch(p, c, f)) << f.message();
        EXPECT_EQ(c.method, clone_method::vm);
        EXPECT_NE(c.memory, nullptr);
        EXPECT_FALSE(c.report_complete);
    }
    // Dropping the memory of one before its report waits until it has left (then it runs on).
    children.front().memory.reset();
    for (auto& c : children) {
        spawn_failure f;
        ASSERT_TRUE(await_exec(p, c, f)) << f.message();
        EXPECT_EQ(c.memory, nullptr);
        EXPECT_TRUE(wait_blocking(c).success());
    }
    EXPECT_EQ(test::zombie_children(), 0);
    // A spec the parent must act for (explicit maps) keeps the vfork path.
    spawn_spec mapped = true_in({ns::user});
    mapped.uid_map = {{0, ::getuid(), 1}};
    EXPECT_EQ(method_of(mapped), clone_method::vfork);
}

// The child shares our memory but not our thread pointer: errno set by its failing calls
// (here the bind mount, then its own exit path) lands in its copy of the TLS, never in ours.
TEST(CloneMethod, AVmChildsFailuresLeaveTheLaunchingThreadsErrnoAlone) {
    if (!vfork_built) GTEST_SKIP() << "the vm path is x86-64 only and off in sanitizer builds";
    method_guard vm(clone_method::vm);
    spawn_spec s = true_in({ns::user, ns::mnt});
    s.binds = {{"/no/such/source", "/mnt", false}};
    prepared_spawn p(s);
    for (int i = 0; i < 20; ++i) {
        launched_child child;
        spawn_failure f;
        // launch() itself leaves errno alone when it succeeds (the fork path's control below).
        errno = 4242;
        ASSERT_TRUE(launch(p, child, f)) << f.message();
        ASSERT_EQ(child.method, clone_method::vm);
        // Until the child has failed (ENOENT) and exited: its report pipe's EOF. (poll
        // succeeds, so it sets no errno of its own.)
        pollfd pfd{child.report.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&pfd, 1, 10'000), 1);
        EXPECT_EQ(errno, 4242);
        EXPECT_FALSE(await_exec(p, child, f));
        EXPECT_EQ(f.stage, child_stage::bind_mount) << f.message();
    }
    method_guard fork_only(clone_method::fork);
    launched_child child;
    spawn_failure f;
    errno = 4242;
    ASSERT_TRUE(launch(p, child, f)) << f.message();
    EXPECT_EQ(errno, 4242);
    EXPECT_FALSE(await_exec(p, child, f));
}

INSTANTIATE_TEST_SUITE_P(, both_methods, ::testing::Values(clone_method::fork, clone_method::vfork, clone_method::vm),
                         [](const auto& param_info) { return std::string(clone_method_name(param_info.param)); });

}  // namespace
}  // namespace drover
