// Spawning from several threads at once, each with its own io_context and job pool, under a
// storm of signals: the vfork path (which no sanitizer build takes), and the fork path (which
// they all take, so that TSan sees the process layer's threads at work).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "drover/process/pool.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/sys/syscalls.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__x86_64__)
constexpr bool vfork_built = false;
#else
constexpr bool vfork_built = true;
#endif

// What a job does, by index % kinds; each ends in a different way.
enum class kind : int {
    exits,    // static blocker, stdin /dev/null: exits at once with index % 256
    piped,    // the same, writing its index on piped stdout and stderr
    missing,  // a program that does not exist: fails at the exec stage
    held,     // user namespace with explicit maps: held until another thread writes them
    killed,   // sh that sends itself SIGUSR2
};
constexpr int kinds = 5;

// Caught signals, from the handler (a lock-free atomic is async-signal-safe).
std::atomic<unsigned long> caught{0};
void count_signal(int) {
    caught.fetch_add(1, std::memory_order_relaxed);
}

// The storm's handlers, without SA_RESTART so that blocking calls see EINTR; the old ones
// are put back when the test ends. Both signals are harmless by default (SIGCHLD is ignored)
// or only ever sent to a thread that is gone by then (SIGUSR1): none can arrive later and end
// the test process.
struct storm_handlers {
    struct sigaction old_usr1 {
    }, old_chld{};
    storm_handlers() {
        struct sigaction sa {};
        sa.sa_handler = count_signal;
        ::sigemptyset(&sa.sa_mask);
        ::sigaction(SIGUSR1, &sa, &old_usr1);
        ::sigaction(SIGCHLD, &sa, &old_chld);
    }
    ~storm_handlers() {
        ::sigaction(SIGUSR1, &old_usr1, nullptr);
        ::sigaction(SIGCHLD, &old_chld, nullptr);
    }
};

// Restores the automatic clone method when a test ends, also on failure.
struct method_guard {
    explicit method_guard(std::optional<clone_method> m) { force_clone_method(m); }
    ~method_guard() { force_clone_method(std::nullopt); }
};

bool user_namespaces_work() {
    spawn_spec s;
    s.argv = {"/bin/true"};
    s.namespaces = {ns::user};
    s.uid_map = {{0, ::getuid(), 1}};
    try {
        launched_child c = launch_sync(prepared_spawn(s));
        return wait_blocking(c).success();
    } catch (const spawn_error&) {
        return false;
    }
}

spawn_spec spec_for(kind k, std::size_t index) {
    spawn_spec s;
    s.in = stdio::null();
    s.out = stdio::null();
    s.err = stdio::null();
    std::string code = std::to_string(index % 256);
    switch (k) {
        case kind::exits:
            s.argv = {test::blocker, code};
            break;
        case kind::piped:
            s.argv = {test::blocker, code, std::to_string(index)};
            s.out = stdio::pipe();
            s.err = stdio::pipe();
            break;
        case kind::missing:
            s.argv = {"/no/such/program/" + std::to_string(index)};
            break;
        case kind::held:
            s.argv = {test::blocker, code};
            s.namespaces = {ns::user};
            s.uid_map = {{0, ::getuid(), 1}};
            break;
        case kind::killed:
            s.argv = {"/bin/sh", "-c", "kill -USR2 $$"};
            break;
    }
    return s;
}

// Checks one result against what its kind must give; "" if right.
std::string check(kind k, std::size_t index, const job_result& r) {
    auto fail = [&](const std::string& what) {
        return "job " + std::to_string(index) + ": " + what +
               (r.failure ? " (" + r.failure->message() + ")" : std::string()) +
               (r.status ? " (" + r.status->str() + ")" : std::string());
    };
    if (k == kind::missing) {
        if (r.status || !r.failure) return fail("a missing program did not fail to start");
        if (r.failure->stage != child_stage::exec ||
            r.failure->code != std::errc::no_such_file_or_directory)
            return fail("a missing program failed for another reason");
        return {};
    }
    if (!r.status) return fail("no exit status");
    exit_status want = k == kind::killed ? exit_status::killed_by(SIGUSR2)
                                         : exit_status::exited_with(static_cast<int>(index % 256));
    if (*r.status != want) return fail("wanted " + want.str());
    if (k == kind::piped) {
        if (r.out != std::to_string(index) + "\n") return fail("stdout \"" + r.out + "\"");
        if (r.err != "e" + std::to_string(index) + "\n") return fail("stderr \"" + r.err + "\"");
    }
    return {};
}

struct stress_run {
    std::size_t jobs = 0;
    std::vector<int> deliveries;     // per job: how many results arrived
    std::vector<std::string> wrong;  // what was not as its kind says
    unsigned long signals_sent = 0;
    unsigned long children_stopped = 0;  // stopped and continued while in flight
};

// The process's tid of the calling thread (no glibc wrapper in Debian 12's glibc 2.36).
pid_t own_tid() {
    return static_cast<pid_t>(::syscall(SYS_gettid));
}

// The parent pid of `pid` from /proc/PID/stat, or -1.
pid_t parent_of(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 4 > line.size()) return -1;
    return static_cast<pid_t>(std::atol(line.c_str() + close + 4));
}

// Stops and at once continues up to `most` children of thread `tid` (from
// /proc/self/task/TID/children, where the kernel has it): a child stopped before its execve
// holds its launching thread on the vfork path until SIGCONT, and a held child waits for
// its maps stopped. Each signal goes through a pidfd opened for the pid and checked to belong
// to a child of ours, so a pid reused by another process meanwhile is never signalled.
// Returns how many were stopped.
unsigned long stop_and_continue_children(pid_t tid, int most) {
    std::ifstream list("/proc/self/task/" + std::to_string(tid) + "/children");
    unsigned long stopped = 0;
    pid_t self = ::getpid();
    for (pid_t pid; most > 0 && list >> pid; --most) {
        auto fd = sys::pidfd_open(pid);
        if (!fd || parent_of(pid) != self) continue;  // gone, or no longer ours
        if (sys::pidfd_send_signal(fd->get(), SIGSTOP)) continue;
        ++stopped;
        (void)sys::pidfd_send_signal(fd->get(), SIGCONT);
    }
    return stopped;
}

// Children each loop leaves running when it ends: their waits die with the loop's
// io_context, so the process-wide fallback reaper adopts them, from every loop at once.
constexpr int dropped_per_thread = 4;

// Runs `per_thread` jobs on each of `threads` threads (own io_context, own pool of
// `concurrency`), kinds in turn, while one more thread answers every finished job with a
// burst of signals: SIGUSR1 at each launching thread, SIGCHLD at the process (which any
// thread may take, drover's own included), SIGSTOP then SIGCONT at two children of each
// launching thread that are still there (in setup, or running). Then each loop drops
// dropped_per_thread children that wait for the test's word, and ends. A loop thread that never
// finishes means a launching thread stayed frozen: after `hang_limit` the test says which and
// aborts (a hang detector far above any run time, not a speed check).
stress_run run_stress(std::size_t threads, std::size_t per_thread, std::size_t concurrency,
                      bool with_held, bool with_storm) {
    constexpr auto hang_limit = 120s;
    stress_run run;
    run.jobs = threads * per_thread;
    run.deliveries.assign(run.jobs, 0);
    std::vector<kind> job_kind(run.jobs);
    std::vector<prepared_spawn> specs;
    specs.reserve(run.jobs);
    for (std::size_t i = 0; i < run.jobs; ++i) {
        kind k = static_cast<kind>(i % kinds);
        if (k == kind::held && !with_held) k = kind::exits;
        job_kind[i] = k;
        specs.emplace_back(spec_for(k, i));
    }

    std::atomic<std::size_t> finished{0};  // results delivered, all threads
    std::vector<std::atomic<pid_t>> tids(threads);
    std::vector<std::atomic<std::size_t>> progress(threads);
    std::vector<std::vector<std::string>> wrong(threads);
    std::mutex mu;
    std::condition_variable all_done;
    std::size_t threads_done = 0;

    // The dropped children read `hold` until the test closes its write end. Each one's
    // `keep` is released by whoever reaps it: `unreaped` counts those dropped and not yet
    // reaped.
    auto hold = sys::pipe();
    if (!hold) throw std::system_error(hold.error(), "pipe for the dropped children");
    spawn_spec held_back;
    held_back.argv = {test::blocker, "0"};
    held_back.in = stdio::from_fd(hold->read.get());
    held_back.out = stdio::null();
    held_back.err = stdio::null();
    prepared_spawn dropped(held_back);
    std::size_t unreaped = 0;
    auto reaped_one = [&](void*) {
        std::lock_guard lock(mu);
        --unreaped;
        all_done.notify_all();
    };

    auto loop_thread = [&](std::size_t t) {
        tids[t].store(own_tid());
        asio::io_context io;
        std::exception_ptr error;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                job_pool pool(io.get_executor(), {.concurrency = concurrency});
                // Job j of this thread is job t + j * threads overall: kinds interleave.
                for (std::size_t j = 0; j < per_thread; ++j) pool.submit(specs[t + j * threads]);
                pool.close();
                co_await pool.run([&](job_result r) {
                    std::size_t i = t + r.index * threads;
                    ++run.deliveries[i];  // only this thread touches job i
                    if (std::string w = check(job_kind[i], i, r); !w.empty()) wrong[t].push_back(w);
                    progress[t].fetch_add(1, std::memory_order_relaxed);
                    finished.fetch_add(1);
                    finished.notify_one();
                });
                for (int d = 0; d < dropped_per_thread; ++d) {
                    launched_child c = launch_sync(dropped);
                    {
                        std::lock_guard lock(mu);
                        ++unreaped;
                    }
                    detail::reap_in_background(io.get_executor(), std::move(c.pidfd),
                                               std::shared_ptr<void>(&unreaped, reaped_one));
                }
            },
            [&](std::exception_ptr e) {
                error = e;
                io.stop();  // with the waits pending: the loop goes, its waits with it
            });
        io.run();
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                wrong[t].push_back("thread " + std::to_string(t) + ": " + e.what());
            }
        }
        std::lock_guard lock(mu);
        ++threads_done;
        all_done.notify_all();
    };

    // Wakes when results were delivered (no timer): a burst per wake-up, so the storm lasts
    // exactly as long as the jobs and grows with them.
    auto storm = [&] {
        pid_t self = ::getpid();
        std::size_t seen = 0;
        while (seen < run.jobs) {
            finished.wait(seen);
            seen = finished.load();
            for (auto& tid : tids) {
                pid_t t = tid.load();
                if (t <= 0) continue;
                if (::syscall(SYS_tgkill, self, t, SIGUSR1) == 0) ++run.signals_sent;
                run.children_stopped += stop_and_continue_children(t, 2);
            }
            if (::kill(self, SIGCHLD) == 0) ++run.signals_sent;
        }
    };

    std::vector<std::thread> loops;
    for (std::size_t t = 0; t < threads; ++t) loops.emplace_back(loop_thread, t);
    std::thread storm_thread;
    if (with_storm) storm_thread = std::thread(storm);
    {
        std::unique_lock lock(mu);
        if (!all_done.wait_for(lock, hang_limit, [&] { return threads_done == threads; })) {
            for (std::size_t t = 0; t < threads; ++t) {
                std::ifstream st("/proc/self/task/" + std::to_string(tids[t].load()) + "/stat");
                std::string line;
                std::getline(st, line);
                std::fprintf(stderr, "thread %zu: %zu of %zu jobs done; %s\n", t,
                             progress[t].load(), per_thread, line.c_str());
            }
            std::fprintf(stderr, "a launching thread did not finish within %lld s: aborting\n",
                         static_cast<long long>(hang_limit.count()));
            std::abort();
        }
    }
    for (auto& th : loops) th.join();
    // Every loop thread has delivered all its results; if one threw, the storm may still
    // wait for results that never come.
    if (finished.load() < run.jobs) {
        finished.store(run.jobs);
        finished.notify_one();
    }
    if (storm_thread.joinable()) storm_thread.join();
    hold->write.reset();  // the dropped children see EOF and exit
    {
        std::unique_lock lock(mu);
        if (!all_done.wait_for(lock, hang_limit, [&] { return unreaped == 0; })) {
            std::fprintf(stderr, "%zu dropped children not reaped within %lld s: aborting\n",
                         unreaped, static_cast<long long>(hang_limit.count()));
            std::abort();
        }
    }
    for (auto& w : wrong) run.wrong.insert(run.wrong.end(), w.begin(), w.end());
    return run;
}

// Runs the stress and checks everything that does not depend on the path taken.
void stress_and_check(std::size_t threads, std::size_t per_thread, std::size_t concurrency) {
    bool with_held = user_namespaces_work();
    // First use of the process-wide pieces (the map writer thread, /dev/null, the io_uring
    // probe) opens descriptors for the process's life: warm them up before counting.
    run_stress(1, kinds, 1, with_held, false);
    int fds_before = test::open_fd_count();
    unsigned long caught_before = caught.load();
    stress_run run;
    {
        storm_handlers handlers;
        run = run_stress(threads, per_thread, concurrency, with_held, true);
    }
    for (std::size_t i = 0; i < run.jobs; ++i) ASSERT_EQ(run.deliveries[i], 1) << "job " << i;
    EXPECT_TRUE(run.wrong.empty())
        << run.wrong.size() << " wrong, the first: " << run.wrong.front();
    EXPECT_EQ(test::open_fd_count(), fds_before);
    EXPECT_EQ(test::zombie_children(), 0);
    EXPECT_EQ(detail::background_reaps_pending(), 0u);
    // Bursts follow results, and results that finish together share one: how many there
    // are depends on the machine's load (they are recorded), only that there were some.
    EXPECT_GT(run.signals_sent, 0u);
    EXPECT_GT(caught.load(), caught_before);  // the storm reached us, not only the kernel
    ::testing::Test::RecordProperty("jobs", static_cast<int>(run.jobs));
    ::testing::Test::RecordProperty("signals_sent", static_cast<int>(run.signals_sent));
    ::testing::Test::RecordProperty("children_stopped", static_cast<int>(run.children_stopped));
    ::testing::Test::RecordProperty("with_held",
                                    with_held ? "yes" : "no (user namespaces unavailable)");
    std::printf(
        "%zu jobs on %zu threads, %lu signals sent, %lu caught, %lu children stopped and "
        "continued%s\n",
        run.jobs, threads, run.signals_sent, caught.load() - caught_before, run.children_stopped,
        with_held ? "" : "; no held jobs: user namespaces unavailable");
}

// The posix_spawn-style paths: on vfork the launching thread is held in clone3 until its
// child has called execve, with every signal blocked, and a held child's maps are written by
// drover's map writer thread, shared by every launching thread; on vm it goes on while the
// child sets up on memory of its own. No sanitizer can follow a child that borrows our
// memory, so these paths are stressed here, in the normal build only.
class posix_spawn_paths : public ::testing::TestWithParam<clone_method> {};

TEST_P(posix_spawn_paths, from_four_loops_under_a_signal_storm) {
    if (!vfork_built)
        GTEST_SKIP() << "the vfork and vm paths are x86-64 only and off in sanitizer builds (they "
                        "cannot follow a CLONE_VM child): the normal build runs this test";
    method_guard chosen(GetParam());
    // Each kind that starts a program takes the path here (or the test would not test it); a
    // held child (explicit maps) takes vfork on either.
    for (kind k : {kind::exits, kind::piped, kind::held, kind::killed}) {
        if (k == kind::held && !user_namespaces_work()) continue;
        launched_child c = launch_sync(prepared_spawn(spec_for(k, 0)));
        clone_method m = c.method;
        c.stdout_pipe.reset();
        c.stderr_pipe.reset();
        (void)wait_blocking(c);
        ASSERT_EQ(m, k == kind::held ? clone_method::vfork : GetParam()) << "kind " << static_cast<int>(k);
    }
    stress_and_check(4, 1000, 16);
}

INSTANTIATE_TEST_SUITE_P(, posix_spawn_paths, ::testing::Values(clone_method::vfork, clone_method::vm),
                         [](const auto& param_info) { return std::string(clone_method_name(param_info.param)); });

// The fork path from the same four loops: what the sanitizer builds take, so that TSan sees
// the launching threads, the pools, the io_uring exit waits and the reaper side by side.
// Fewer jobs: under TSan each fork costs several times more.
TEST(threaded_spawn, fork_path_from_four_loops_under_a_signal_storm) {
#if defined(__SANITIZE_THREAD__)
    // A raw clone3 fork is invisible to TSan, which takes its internal locks around fork()
    // only. A child forked while another launching thread holds one of them deadlocks in the
    // first intercepted call it makes (dup2, sigaction, sigprocmask): 1 run in 4 hung here.
    GTEST_SKIP() << "TSan cannot follow a raw clone3 fork of a process whose other threads are "
                    "spawning: the normal and ASan builds run this test";
#endif
    method_guard fork_only(clone_method::fork);
    stress_and_check(4, 100, 8);
}

}  // namespace
}  // namespace drover
