// Spawner threads: bursts handed to other threads complete once each on the caller's loop,
// with ordered timings; cancellation and a destroyed loop leave no child; children spawned on
// one thread see no descriptor another thread opened; a lone spawn stays on the caller.
#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "drover/process/process.hpp"
#include "drover/process/spawn_threads.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;
using test::blocker;
using test::children_of_this_process;
using test::helper;
using test::poll_until;
using test::zombie_children;

// Sets the spawner threads for one test and puts back the setting it found however it ends.
struct threads_for_test {
    explicit threads_for_test(unsigned n) : was(spawn_threads()) { set_spawn_threads(n); }
    ~threads_for_test() { set_spawn_threads(was); }
    unsigned was;
};


spawn_spec exiting_with(int code) {
    spawn_spec s;
    s.argv = {blocker, std::to_string(code)};
    return s;
}

spawn_spec sleeping(const char* seconds) {
    spawn_spec s;
    s.argv = {helper, "sleep", seconds};
    return s;
}

TEST(SpawnThreads, CountsOutsideOneTo256AreRefused) {
    EXPECT_THROW(set_spawn_threads(0), std::invalid_argument);
    EXPECT_THROW(set_spawn_threads(257), std::invalid_argument);
    const char* why = nullptr;
    EXPECT_EQ(parse_spawn_threads("0", &why), 0U);
    EXPECT_NE(why, nullptr);
    EXPECT_EQ(parse_spawn_threads("4x", &why), 0U);
    EXPECT_EQ(parse_spawn_threads("-1", &why), 0U);
    EXPECT_EQ(parse_spawn_threads("99999999999", &why), 0U);
    EXPECT_EQ(parse_spawn_threads("3", &why), 3U);
    EXPECT_EQ(parse_spawn_threads("auto", &why), available_cpus());
    EXPECT_GE(available_cpus(), 1U);
}

// 3 loops on 3 threads, 200 spawns each, 16 in flight per loop: every spawn completes once,
// on its own loop's thread, with its own exit code and timings in order.
TEST(SpawnThreads, BurstsOnThreeLoopsCompleteOnceEachWithOrderedTimings) {
    threads_for_test threads(3);
    auto before = spawn_thread_counters();
    constexpr int loops = 3, per_loop = 200, in_flight = 16;
    std::atomic<int> wrong{0}, done{0}, off_thread{0}, unordered{0};
    std::vector<std::thread> runners;
    for (int l = 0; l < loops; ++l) {
        runners.emplace_back([&, l] {
            asio::io_context io;
            std::thread::id me = std::this_thread::get_id();
            auto next = std::make_shared<int>(0);
            for (int w = 0; w < in_flight; ++w) {
                asio::co_spawn(
                    io,
                    [&, next]() -> asio::awaitable<void> {
                        auto ex = co_await asio::this_coro::executor;
                        while (*next < per_loop) {
                            int i = (*next)++;
                            int code = (l * per_loop + i) % 100;
                            process p = co_await spawn(ex, exiting_with(code));
                            if (std::this_thread::get_id() != me) ++off_thread;
                            exit_status st = co_await p.wait();
                            if (!st.exited() || st.code() != code) ++wrong;
                            const spawn_timings& t = p.timings();
                            if (!(t.launch_start <= t.clone_start && t.clone_start <= t.clone_end &&
                                  t.clone_end <= t.exec_done && t.exec_done <= t.exit_observed && t.exit_observed <= t.reaped && t.launch_start > 0))
                                ++unordered;
                            ++done;
                        }
                    },
                    asio::detached);
            }
            io.run();
        });
    }
    for (auto& t : runners) t.join();
    EXPECT_EQ(done.load(), loops * per_loop);
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(off_thread.load(), 0) << "a completion ran off its loop's thread";
    EXPECT_EQ(unordered.load(), 0);
    auto after = spawn_thread_counters();
    EXPECT_GT(after.handed_off, before.handed_off) << "no spawn went to a spawner thread";
    EXPECT_EQ(zombie_children(), 0);
    EXPECT_EQ(children_of_this_process(), 0);
}

TEST(SpawnThreads, ALoneSpawnStaysOnTheCallersThread) {
    threads_for_test threads(2);
    auto before = spawn_thread_counters();
    for (int i = 0; i < 5; ++i) {
        auto r = test::run_spec(exiting_with(7));
        EXPECT_EQ(r.status.code(), 7);
    }
    auto after = spawn_thread_counters();
    EXPECT_EQ(after.handed_off, before.handed_off);
    EXPECT_EQ(after.inline_spawns, before.inline_spawns + 5);
}

// A burst is at least as many other children alive as there are threads: with three threads,
// two children alive leave the next spawn on the caller's thread, three send it away.
TEST(SpawnThreads, ABurstIsAsManyOtherChildrenAsThreads) {
    threads_for_test threads(3);
    asio::io_context io;
    spawn_thread_stats with_two{}, with_three{}, before_two{}, before_three{};
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            std::vector<process> kept;
            for (int i = 0; i < 2; ++i) kept.push_back(co_await spawn(ex, sleeping("30")));
            before_two = spawn_thread_counters();
            process a = co_await spawn(ex, exiting_with(3));
            with_two = spawn_thread_counters();
            EXPECT_EQ((co_await a.wait()).code(), 3);
            kept.push_back(co_await spawn(ex, sleeping("30")));
            before_three = spawn_thread_counters();
            process b = co_await spawn(ex, exiting_with(4));
            with_three = spawn_thread_counters();
            EXPECT_EQ((co_await b.wait()).code(), 4);
            for (process& k : kept) {
                k.signal(SIGKILL);
                co_await k.wait();
            }
        },
        asio::detached);
    io.run();
    EXPECT_EQ(with_two.handed_off, before_two.handed_off);
    EXPECT_EQ(with_two.inline_spawns, before_two.inline_spawns + 1);
    EXPECT_EQ(with_three.handed_off, before_three.handed_off + 1);
    EXPECT_EQ(children_of_this_process(), 0);
}

// In a burst no spawn runs on the caller's thread, even with the one spawner busy: the rest
// queue for it, so the loop is never held in a clone3 while exits wait. Every queued spawn
// completes once with its own exit code.
TEST(SpawnThreads, ABurstQueuesForBusySpawnersInsteadOfHoldingTheLoop) {
    threads_for_test threads(2);
    asio::io_context io;
    spawn_thread_stats before{}, after{};
    int right = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            std::vector<process> kept;
            for (int i = 0; i < 2; ++i) kept.push_back(co_await spawn(ex, sleeping("30")));
            before = spawn_thread_counters();
            // Twelve spawns started at once: one spawner, so eleven wait in its queue.
            auto results = std::make_shared<std::vector<int>>();
            int pending = 12;
            asio::steady_timer all_done(ex, std::chrono::steady_clock::time_point::max());
            for (int i = 0; i < 12; ++i)
                asio::co_spawn(
                    ex,
                    [&, results, i]() -> asio::awaitable<void> {
                        auto ex2 = co_await asio::this_coro::executor;
                        process p = co_await spawn(ex2, exiting_with(20 + i));
                        results->push_back((co_await p.wait()).code() - 20);
                        if (--pending == 0) all_done.cancel();
                    },
                    asio::detached);
            asio::error_code ec;
            co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            after = spawn_thread_counters();
            std::sort(results->begin(), results->end());
            for (int i = 0; i < 12; ++i) right += (*results)[static_cast<std::size_t>(i)] == i;
            for (process& k : kept) {
                k.signal(SIGKILL);
                co_await k.wait();
            }
        },
        asio::detached);
    io.run();
    EXPECT_EQ(right, 12);
    EXPECT_EQ(after.handed_off, before.handed_off + 12);
    EXPECT_EQ(after.inline_spawns, before.inline_spawns) << "a burst spawn ran on the caller's thread";
    EXPECT_EQ(children_of_this_process(), 0);
}

TEST(SpawnThreads, OneMeansNoSpawnerThread) {
    threads_for_test threads(1);
    auto before = spawn_thread_counters();
    asio::io_context io;
    int ok = 0;
    for (int w = 0; w < 8; ++w)
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                process p = co_await spawn(ex, exiting_with(0));
                if ((co_await p.wait()).code() == 0) ++ok;
            },
            asio::detached);
    io.run();
    EXPECT_EQ(ok, 8);
    auto after = spawn_thread_counters();
    EXPECT_EQ(after.handed_off, before.handed_off);
    EXPECT_EQ(after.inline_spawns, before.inline_spawns);
}

// A loop destroyed while spawns are away: the destruction waits for them, drops their
// completions and kills and reaps their children; nothing is left, and nothing crashes. (The
// children already handed to process objects are reaped in the background when they exit, as
// for any dropped process: hence short sleeps.)
TEST(SpawnThreads, ALoopDestroyedWithLaunchesAwayLeavesNoChild) {
    threads_for_test threads(3);
    for (int round = 0; round < 20; ++round) {
        auto before = spawn_thread_counters();
        {
            asio::io_context io;
            // One long-lived child makes the rest a burst.
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void> {
                    auto ex = co_await asio::this_coro::executor;
                    process keep = co_await spawn(ex, sleeping("0.3"));
                    for (int i = 0; i < 6; ++i)
                        asio::co_spawn(
                            ex,
                            [ex]() -> asio::awaitable<void> {
                                process p = co_await spawn(ex, sleeping("0.3"));
                                co_await p.wait();
                            },
                            asio::detached);
                    co_await keep.wait();
                },
                asio::detached);
            // Run until the spawns have been handed off, then leave at once.
            while (spawn_thread_counters().handed_off == before.handed_off && io.run_one() > 0) {
            }
        }
        ASSERT_GT(spawn_thread_counters().handed_off, before.handed_off) << "round " << round;
    }
    // The reaper takes dropped process objects' children in the background.
    for (int i = 0; i < 200 && children_of_this_process() > 0; ++i) std::this_thread::sleep_for(20ms);
    EXPECT_EQ(children_of_this_process(), 0);
}

// Cancelled while away: the spawn completes with operation_aborted and its child is killed
// and reaped, not handed back.
TEST(SpawnThreads, ASpawnCancelledWhileAwayEndsItsChild) {
    threads_for_test threads(2);
    asio::io_context io;
    int aborted = 0, spawned = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            // Two children alive: with two threads, a burst (spawn_threads.hpp).
            process keep = co_await spawn(ex, sleeping("30"));
            process keep2 = co_await spawn(ex, sleeping("30"));
            for (int i = 0; i < 20; ++i) {
                asio::cancellation_signal cancel;
                auto before = spawn_thread_counters();
                bool done = false;
                spawn(ex, sleeping("30"), asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code ec, process p) {
                          done = true;
                          if (ec == asio::error::operation_aborted) ++aborted;
                          if (!ec) {
                              ++spawned;  // the cancel came too late: end it here
                              (void)p.signal(SIGKILL);
                          }
                      }));
                if (spawn_thread_counters().handed_off > before.handed_off) cancel.emit(asio::cancellation_type::terminal);
                co_await poll_until([&] { return done; });
            }
            for (process* k : {&keep, &keep2}) {
                k->signal(SIGKILL);
                co_await k->wait();
            }
        },
        asio::detached);
    io.run();
    EXPECT_EQ(aborted + spawned, 20);
    EXPECT_GT(aborted, 0) << "no spawn was cancelled while away";
    for (int i = 0; i < 200 && children_of_this_process() > 0; ++i) std::this_thread::sleep_for(20ms);
    EXPECT_EQ(children_of_this_process(), 0);
}

// While other threads open pipes without O_CLOEXEC, children spawned by three spawners see
// only their own stdio: close_range in the child, not the luck of timing.
TEST(SpawnThreads, ChildrenSeeOnlyTheirStdioWhileOtherThreadsOpenDescriptors) {
    threads_for_test threads(3);
    std::atomic<bool> stop{false};
    std::vector<std::thread> openers;
    for (int i = 0; i < 2; ++i)
        openers.emplace_back([&] {
            while (!stop) {
                int p[2];
                if (::pipe(p) == 0) {  // deliberately without O_CLOEXEC
                    ::close(p[0]);
                    ::close(p[1]);
                }
            }
        });
    asio::io_context io;
    int clean = 0, runs = 0;
    std::vector<std::string> seen;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            process keep = co_await spawn(ex, sleeping("30"));
            std::vector<process> kids;
            auto next = std::make_shared<int>(0);
            int finished = 0;
            for (int w = 0; w < 6; ++w)
                asio::co_spawn(
                    ex,
                    [&, ex, next]() -> asio::awaitable<void> {
                        while ((*next)++ < 60) {
                            spawn_spec s = test::piped({helper, "fds"});
                            auto r = co_await run(ex, s);
                            ++runs;
                            if (r.out == "0\n1\n2\n")
                                ++clean;
                            else
                                seen.push_back(r.out);
                        }
                        ++finished;
                    },
                    asio::detached);
            co_await poll_until([&] { return finished == 6; });
            keep.signal(SIGKILL);
            co_await keep.wait();
        },
        asio::detached);
    io.run();
    stop = true;
    for (auto& t : openers) t.join();
    EXPECT_EQ(runs, 60);
    EXPECT_EQ(clean, runs) << (seen.empty() ? std::string() : "a child saw:\n" + seen.front());
}

}  // namespace
}  // namespace drover
