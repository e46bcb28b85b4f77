// The async process: exit statuses, signals through the pidfd, stdio, scale on one loop, and
// that nothing is left behind (zombies, descriptors).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <fstream>
#include <sstream>

#include "drover/process/asio.hpp"
#include "drover/sys/syscalls.hpp"
#include "support.hpp"

namespace drover {
namespace {

using asio::awaitable;
using test::helper;
using test::open_fd_count;
using test::run_on_loop;
using test::zombie_children;

TEST(Process, EveryExitCodeIsReportedExactly) {
    auto codes = run_on_loop([](asio::any_io_executor ex) -> awaitable<std::vector<int>> {
        std::vector<process> procs;
        for (int code = 0; code < 256; ++code) {
            spawn_spec s;
            s.argv = {helper, "exit", std::to_string(code)};
            procs.push_back(co_await spawn(ex, s));
        }
        std::vector<int> out;
        for (auto& p : procs) {
            exit_status st = co_await p.wait();
            out.push_back(st.exited() ? st.code() : -1);
        }
        co_return out;
    });
    for (int code = 0; code < 256; ++code) EXPECT_EQ(codes[static_cast<std::size_t>(code)], code);
}

TEST(Process, SignalDeathsAreReportedExactly) {
    for (int sig : {SIGHUP, SIGINT, SIGKILL, SIGUSR1, SIGSEGV, SIGTERM, SIGPIPE, SIGALRM, SIGABRT}) {
        spawn_spec s;
        s.argv = {helper, "signal", std::to_string(sig)};
        s.rlimits = {{RLIMIT_CORE, 0, 0}};
        auto r = test::run_spec(s);
        EXPECT_TRUE(r.status.signaled()) << sig << ": " << r.status.str();
        EXPECT_EQ(r.status.signal(), sig) << r.status.str();
        EXPECT_EQ(r.status.shell_code(), 128 + sig);
    }
}

TEST(Process, SignalGoesThroughThePidfd) {
    auto st = run_on_loop([](asio::any_io_executor ex) -> awaitable<exit_status> {
        spawn_spec s;
        s.argv = {helper, "sleep", "30"};
        process p = co_await spawn(ex, s);
        EXPECT_GE(p.pidfd(), 0);
        EXPECT_FALSE(p.signal(SIGTERM));
        exit_status status = co_await p.wait();
        // Reaped: the pid may be reused now, so signalling must refuse.
        EXPECT_EQ(p.signal(SIGTERM).value(), ESRCH);
        EXPECT_EQ(p.pidfd(), -1);
        co_return status;
    });
    EXPECT_EQ(st, exit_status::killed_by(SIGTERM));
}

TEST(Process, WaitTwiceGivesTheSameStatus) {
    auto pair = run_on_loop([](asio::any_io_executor ex) -> awaitable<std::pair<exit_status, exit_status>> {
        spawn_spec s;
        s.argv = {helper, "exit", "7"};
        process p = co_await spawn(ex, s);
        exit_status a = co_await p.wait();
        exit_status b = co_await p.wait();
        co_return std::pair{a, b};
    });
    EXPECT_EQ(pair.first, exit_status::exited_with(7));
    EXPECT_EQ(pair.first, pair.second);
}

std::string all_bytes(std::size_t repeat) {
    std::string s;
    for (std::size_t r = 0; r < repeat; ++r)
        for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
    return s;
}

TEST(Process, BinaryStdinRoundTripsByteExact) {
    std::string input = all_bytes(4096) + std::string("\0\0\n\r\xff", 5);
    spawn_spec s = test::piped({helper, "echo"});
    s.in = stdio::pipe();
    auto r = test::run_spec(s, input);
    EXPECT_TRUE(r.status.success());
    EXPECT_EQ(r.out.size(), input.size());
    EXPECT_TRUE(r.out == input);
}

// 64 MiB on stdout and on stderr at once, interleaved by the child: reading only one stream
// would deadlock; read_all reads both.
TEST(Process, SixtyFourMiBOnBothStreamsAtOnce) {
    constexpr long long size = 64LL << 20;
    auto r = test::run_spec(test::piped({helper, "flood", std::to_string(size)}));
    ASSERT_TRUE(r.status.success()) << r.status.str();
    ASSERT_EQ(r.out.size(), static_cast<std::size_t>(size));
    ASSERT_EQ(r.err.size(), static_cast<std::size_t>(size));
    for (long long i = 0; i < size; i += 4093) {
        ASSERT_EQ(static_cast<unsigned char>(r.out[static_cast<std::size_t>(i)]), (i * 31 + 7) & 0xff) << i;
        ASSERT_EQ(static_cast<unsigned char>(r.err[static_cast<std::size_t>(i)]), (i * 17 + 3) & 0xff) << i;
    }
}

TEST(Process, LineReaderSplitsLinesAndBoundsLongOnes) {
    auto lines = run_on_loop([](asio::any_io_executor ex) -> awaitable<std::vector<std::string>> {
        spawn_spec s = test::piped({"/bin/sh", "-c", "printf 'a\\nbb\\n'; head -c 100 /dev/zero | tr '\\0' x; printf '\\nlast'"});
        s.err = stdio::null();
        process p = co_await spawn(ex, s);
        line_reader reader(*p.stdout_pipe(), 40);
        std::vector<std::string> out;
        while (auto line = co_await reader.next()) out.push_back(*line);
        co_await p.wait();
        co_return out;
    });
    std::vector<std::string> want = {"a", "bb", std::string(40, 'x'), std::string(40, 'x'),
                                     std::string(20, 'x'), "last"};
    EXPECT_EQ(lines, want);
}

TEST(Process, ThousandConcurrentChildrenOnOneLoopLeaveNothingBehind) {
    struct rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur < 4096) {
        rlimit raised{std::min<rlim_t>(nofile.rlim_max, 8192), nofile.rlim_max};
        ::setrlimit(RLIMIT_NOFILE, &raised);
    }
    int fds_before = open_fd_count();
    constexpr int count = 1000;
    auto results = run_on_loop([](asio::any_io_executor ex) -> awaitable<std::vector<int>> {
        std::vector<process> procs;
        procs.reserve(count);
        for (int i = 0; i < count; ++i) {
            spawn_spec s;
            s.argv = {helper, "exit", std::to_string(i % 256)};
            procs.push_back(co_await spawn(ex, s));
        }
        std::vector<int> codes(count, -1);
        // Await all exits concurrently: each waiter is its own coroutine on the same loop.
        int done = 0;
        asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
        for (int i = 0; i < count; ++i) {
            asio::co_spawn(ex, [&, i]() -> awaitable<void> {
                exit_status st = co_await procs[static_cast<std::size_t>(i)].wait();
                codes[static_cast<std::size_t>(i)] = st.code();
                if (++done == count) all_done.cancel();
            }, asio::detached);
        }
        co_await all_done.async_wait(use_tuple);
        co_return codes;
    });
    for (int i = 0; i < count; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], i % 256) << i;
    EXPECT_EQ(zombie_children(), 0);
    EXPECT_EQ(open_fd_count(), fds_before);
    ::setrlimit(RLIMIT_NOFILE, &nofile);
}

TEST(Process, ChildInheritsOnlyTheDescriptorsTheSpecNames) {
    // A descriptor without close-on-exec (as a careless library might leave) must not leak.
    int leaky = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leaky, 0);
    int passed = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    spawn_spec s = test::piped({helper, "fds"});
    s.pass_fds = {{7, passed}};
    auto r = test::run_spec(s);
    ::close(leaky);
    ::close(passed);
    EXPECT_EQ(r.out, "0\n1\n2\n7\n");
}

// Targets 3..12 cover wherever the report pipe and the loop's own descriptors happen to be:
// the child must still report its start and the program must see exactly these descriptors.
TEST(Process, PassFdsOverTheLowDescriptorsKeepTheReportPipeWorking) {
    int zero = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    spawn_spec s = test::piped({helper, "fds"});
    for (int fd = 3; fd <= 12; ++fd) s.pass_fds.push_back({fd, zero});
    auto r = test::run_spec(s);
    EXPECT_EQ(r.out, "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n");
    auto bad = [&] {
        spawn_spec f = s;
        f.argv = {"/no/such/program"};
        return f;
    }();
    try {
        test::run_spec(bad);
        ADD_FAILURE() << "a missing program was not reported";
    } catch (const spawn_error& e) {
        EXPECT_EQ(e.stage(), child_stage::exec);
    }
    ::close(zero);
}

TEST(Process, PassedDescriptorReachesTheChild) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    spawn_spec s;
    s.argv = {helper, "write-fd", "5", "READY=1"};
    s.pass_fds = {{5, p[1]}};
    auto r = test::run_spec(s);
    ::close(p[1]);
    char buf[32] = {};
    ssize_t n = ::read(p[0], buf, sizeof buf);
    ::close(p[0]);
    EXPECT_TRUE(r.status.success());
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n > 0 ? n : 0)), "READY=1");
}

TEST(Process, StdioSwapThroughGivenDescriptors) {
    // The child's stdout is our fd 2 and its stderr our fd 1: each source is the other move's
    // target, so the child must move them through spare descriptors. Our 1 and 2 point at two
    // pipes for the duration of the spawn.
    int a[2], b[2];
    ASSERT_EQ(::pipe2(a, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(b, O_CLOEXEC), 0);
    std::fflush(stdout);
    std::fflush(stderr);
    int saved1 = ::fcntl(1, F_DUPFD_CLOEXEC, 3), saved2 = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    ::dup2(a[1], 1);
    ::dup2(b[1], 2);
    spawn_spec swap;
    swap.argv = {"/bin/sh", "-c", "echo out; echo err >&2"};
    swap.out = stdio::from_fd(2);
    swap.err = stdio::from_fd(1);
    exit_status st;
    try {
        prepared_spawn p(swap);
        launched_child c = launch_sync(p);
        st = wait_blocking(c);
    } catch (...) {
    }
    ::dup2(saved1, 1);
    ::dup2(saved2, 2);
    ::close(saved1);
    ::close(saved2);
    ::close(a[1]);
    ::close(b[1]);
    char buf[64] = {};
    ssize_t na = ::read(a[0], buf, sizeof buf);
    std::string from_a(buf, static_cast<std::size_t>(na > 0 ? na : 0));
    ssize_t nb = ::read(b[0], buf, sizeof buf);
    std::string from_b(buf, static_cast<std::size_t>(nb > 0 ? nb : 0));
    ::close(a[0]);
    ::close(b[0]);
    EXPECT_TRUE(st.success()) << st.str();
    EXPECT_EQ(from_a, "err\n");  // our fd 1 got the child's stderr
    EXPECT_EQ(from_b, "out\n");  // our fd 2 got the child's stdout
}

TEST(Process, DroppedProcessIsStillReaped) {
    pid_t pid = run_on_loop([](asio::any_io_executor ex) -> awaitable<pid_t> {
        spawn_spec s;
        s.argv = {helper, "sleep", "0"};
        process p = co_await spawn(ex, s);
        co_return p.pid();  // p is destroyed here, before its exit was awaited
    });
    EXPECT_GT(pid, 0);
    EXPECT_TRUE(detail::wait_background_reaps(std::chrono::seconds(10))) << detail::background_reaps_pending();
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Process, DroppedWhileRunningIsReapedAfterTheLoopIsGone) {
    {
        asio::io_context io;
        asio::co_spawn(io, [&]() -> awaitable<void> {
            spawn_spec s;
            s.argv = {helper, "sleep", "1"};
            process p = co_await spawn(io.get_executor(), s);
            io.stop();  // once p is dropped (at the end of this scope) its wait is pending
        }, asio::detached);
        io.run();
        EXPECT_EQ(detail::background_reaps_pending(), 1u);
    }  // the loop dies with the background wait pending: the fallback thread takes over
    EXPECT_TRUE(detail::wait_background_reaps(std::chrono::seconds(10))) << detail::background_reaps_pending();
    EXPECT_EQ(zombie_children(), 0);
}

// Destroying a loop whose coroutines await their processes' exits drops those processes in
// the middle of the loop's teardown; their reaping must go to the fallback thread, not to new
// I/O objects of the dying loop (which crashed inside Asio's io_uring service).
TEST(Process, ALoopDestroyedWithWaitsPendingReapsEveryChild) {
    {
        asio::io_context io;
        for (int k = 0; k < 50; ++k)
            asio::co_spawn(io, [&io, k]() -> awaitable<void> {
                spawn_spec s;
                s.argv = {helper, "sleep", k % 2 ? "1" : "0"};
                process p = co_await spawn(io.get_executor(), s);
                (void)co_await p.wait();
            }, asio::detached);
        for (int i = 0; i < 20; ++i) io.run_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(detail::wait_background_reaps(std::chrono::seconds(10))) << detail::background_reaps_pending();
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Process, SpawnFailureThrowsStageNamedError) {
    int fds = open_fd_count();
    try {
        run_on_loop([](asio::any_io_executor ex) -> awaitable<void> {
            spawn_spec s;
            s.argv = {"/bin/true"};
            s.namespaces = {ns::uts};
            s.hostname = "box";
            s.inject_failure = child_stage::hostname;
            co_await spawn(ex, s);
        });
        ADD_FAILURE() << "spawn did not fail";
    } catch (const spawn_error& e) {
        EXPECT_STREQ(e.what(), "setting hostname box: Operation not permitted");
        EXPECT_EQ(e.stage(), child_stage::hostname);
    }
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

}  // namespace
}  // namespace drover

namespace drover {
namespace {

// The child starts with nothing ignored and an empty mask, whatever the caller ignored or
// blocked: both survive execve, so drover must reset them (caught signals are reset by the
// kernel at execve anyway, so they are not tested here).
TEST(Process, ChildStartsWithDefaultSignalDispositions) {
    struct sigaction ignore{}, old_pipe{}, old_usr2{};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old_pipe);
    ::sigaction(SIGUSR2, &ignore, &old_usr2);
    sigset_t block, old_mask;
    ::sigemptyset(&block);
    ::sigaddset(&block, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);

    // Both clone paths: posix_spawn-style where this build allows it, and fork-style.
    auto r = test::run_spec(test::piped({"/bin/sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"}));
    force_clone_method(clone_method::fork);
    auto f = test::run_spec(test::piped({"/bin/sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"}));
    force_clone_method(std::nullopt);

    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    ::sigaction(SIGUSR2, &old_usr2, nullptr);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);

    for (const auto* out : {&r.out, &f.out}) {
        EXPECT_NE(out->find("SigBlk:\t0000000000000000"), std::string::npos) << *out;
        EXPECT_NE(out->find("SigIgn:\t0000000000000000"), std::string::npos) << *out;
    }
}

// Writing to the stdin of a child that is gone gives EPIPE, not a SIGPIPE that would end this
// test process (its disposition here is the default).
TEST(Process, WritingToAGoneChildsStdinGivesEpipeNotSigpipe) {
    struct sigaction dfl{}, old{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, &old);
    std::error_code got;
    test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        spawn_spec s;
        s.argv = {"/bin/true"};
        s.in = stdio::pipe();
        process p = co_await spawn(ex, s);
        co_await p.wait();
        const std::string input(1 << 20, 'x');
        try {
            co_await p.write_stdin(input);
        } catch (const std::system_error& e) {
            got = e.code();
        }
    });
    sigset_t pending;
    ::sigpending(&pending);
    ::sigaction(SIGPIPE, &old, nullptr);
    EXPECT_EQ(got, std::errc::broken_pipe) << got.message();
    EXPECT_EQ(::sigismember(&pending, SIGPIPE), 0);
}

}  // namespace
}  // namespace drover

namespace drover {
namespace {

// A child held in its setup (reading a file op's content from a pipe nobody writes to), so
// that a spawn of it stays pending as long as the test wants.
struct held_child_spec {
    sys::pipe_fds feed = *sys::pipe();
    spawn_spec spec;
    held_child_spec() {
        spec = test::piped({"/bin/true"}, {ns::user, ns::mnt});
        spec.fs.enabled = true;
        spec.fs.ops = {fs_op::tmpfs("/"), fs_op::file(feed.read.get(), "/held")};
    }
};

// Pids of this process's children (live or zombie).
std::size_t children_of_this_process() {
    std::size_t n = 0;
    std::ifstream in("/proc/self/task/" + std::to_string(::getpid()) + "/children");
    pid_t p;
    while (in >> p) ++n;
    return n;
}

TEST(Process, ACancelledSpawnKillsAndReapsItsChild) {
    held_child_spec held;
    int fds = open_fd_count();
    std::size_t before = children_of_this_process();
    auto cancelled = run_on_loop([&](asio::any_io_executor ex) -> awaitable<bool> {
        asio::cancellation_signal cancel;
        bool got_abort = false;
        bool done = false;
        auto attempt = [&]() -> awaitable<void> { (void)co_await spawn(ex, held.spec); };
        asio::co_spawn(ex, attempt(), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
            done = true;
            try {
                if (e) std::rethrow_exception(e);
            } catch (const std::system_error& err) {
                got_abort = err.code() == asio::error::operation_aborted;
            }
        }));
        // The child is in its setup now, or soon: cancel the spawn.
        asio::steady_timer t(ex, std::chrono::milliseconds(50));
        co_await t.async_wait(asio::use_awaitable);
        EXPECT_FALSE(done) << "the held child's spawn completed";
        cancel.emit(asio::cancellation_type::terminal);
        for (int i = 0; i < 200 && !done; ++i) {
            asio::steady_timer w(ex, std::chrono::milliseconds(5));
            co_await w.async_wait(asio::use_awaitable);
        }
        co_return got_abort;
    });
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(children_of_this_process(), before) << "the cancelled spawn's child is still there (or a zombie)";
    EXPECT_EQ(zombie_children(), 0);
    EXPECT_EQ(open_fd_count(), fds);
}

TEST(Process, ALoopDestroyedMidSpawnLeavesNoChild) {
    held_child_spec held;
    std::size_t before = children_of_this_process();
    {
        asio::io_context io;
        auto ex = io.get_executor();
        auto attempt = [&]() -> awaitable<void> { (void)co_await spawn(ex, held.spec); };
        asio::co_spawn(io, attempt(), [](std::exception_ptr) {});
        // Run until the spawn waits for the child's report; then the loop goes away.
        for (int i = 0; i < 20; ++i) io.run_for(std::chrono::milliseconds(5));
        EXPECT_EQ(children_of_this_process(), before + 1);
    }
    EXPECT_EQ(children_of_this_process(), before);
    EXPECT_EQ(zombie_children(), 0);
}

}  // namespace
}  // namespace drover
