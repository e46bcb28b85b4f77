// Completion tokens: spawn, wait, read_all, read_to_end, line_reader::next, run_jobs with
// callbacks, use_future, deferred and as_tuple; a failed spawn seen without exceptions; a wait
// cancelled through its slot.
#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "drover/process/asio.hpp"
#include "drover/process/cgroup.hpp"
#include "drover/process/pool.hpp"
#include "drover/process/process.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;
using test::helper;
using test::open_fd_count;
using test::zombie_children;

spawn_spec exiting_with(int code) {
    spawn_spec s;
    s.argv = {helper, "exit", std::to_string(code)};
    return s;
}

// The process state letter from /proc/<pid>/stat, or 0 if there is no such process.
char proc_state(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return 0;
    auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() ? 0 : line[close + 2];
}

// Runs `io` until `f` is ready, on this thread: use_future without a second thread.
template <class T>
T run_until_ready(asio::io_context& io, std::future<T>& f) {
    while (f.wait_for(0s) != std::future_status::ready) {
        if (io.stopped()) io.restart();  // out of work after the previous operation
        io.run_one();
    }
    return f.get();
}

TEST(Tokens, CallbackSpawnThenCallbackWaitGiveTheExitCode) {
    asio::io_context io;
    std::optional<process> child;
    std::error_code spawn_ec = asio::error::would_block, wait_ec = asio::error::would_block;
    std::optional<exit_status> status;
    spawn(io.get_executor(), exiting_with(42), [&](std::error_code ec, process p) {
        spawn_ec = ec;
        child.emplace(std::move(p));
        child->wait([&](std::error_code ec2, exit_status st) {
            wait_ec = ec2;
            status = st;
        });
    });
    io.run();
    EXPECT_FALSE(spawn_ec) << spawn_ec.message();
    EXPECT_FALSE(wait_ec) << wait_ec.message();
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, exit_status::exited_with(42));
    EXPECT_EQ(child->status(), status);
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Tokens, UseFutureSpawnWaitAndReadAll) {
    asio::io_context io;
    spawn_spec s;
    s.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 5"};
    s.out = stdio::pipe();
    s.err = stdio::pipe();
    std::future<process> started = spawn(io.get_executor(), s, asio::use_future);
    process p = run_until_ready(io, started);
    EXPECT_GT(p.pid(), 0);
    std::future<output> said = p.read_all(asio::use_future);
    output o = run_until_ready(io, said);
    std::future<exit_status> ended = p.wait(asio::use_future);
    EXPECT_EQ(run_until_ready(io, ended), exit_status::exited_with(5));
    EXPECT_EQ(o.out, "out\n");
    EXPECT_EQ(o.err, "err\n");
}

TEST(Tokens, UseFutureOfAFailedSpawnThrowsTheStageNamedCode) {
    asio::io_context io;
    spawn_spec s;
    s.argv = {"/no/such/program"};
    std::future<process> started = spawn(io.get_executor(), s, asio::use_future);
    try {
        run_until_ready(io, started);
        ADD_FAILURE() << "spawn did not fail";
    } catch (const std::system_error& e) {
        EXPECT_EQ(spawn_stage(e.code()), child_stage::exec);
        EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    }
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Tokens, DeferredOperationsStartOnlyWhenInvoked) {
    asio::io_context io;
    spawn_spec s;
    s.argv = {helper, "exit", "9"};
    int fds = open_fd_count();
    auto start = spawn(io.get_executor(), s, asio::experimental::deferred);
    io.poll();
    io.restart();
    // Nothing was launched: no pidfd, no pipe of an attempt.
    EXPECT_EQ(open_fd_count(), fds);
    std::optional<process> child;
    std::optional<exit_status> status;
    start([&](std::error_code ec, process p) {
        ASSERT_FALSE(ec) << ec.message();
        child.emplace(std::move(p));
        auto wait = child->wait(asio::experimental::deferred);
        std::move(wait)([&](std::error_code ec2, exit_status st) {
            EXPECT_FALSE(ec2);
            status = st;
        });
    });
    io.run();
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, exit_status::exited_with(9));
}

TEST(Tokens, AsTupleInACoroutineGivesCodesNotExceptions) {
    struct outcome {
        std::error_code spawn_ec, missing_ec, wait_ec, read_ec;
        exit_status status;
        std::string out;
        pid_t missing_pid = 0;
    };
    auto r = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<outcome> {
        outcome o;
        spawn_spec s;
        s.argv = {"/bin/sh", "-c", "echo tuple; exit 3"};
        s.out = stdio::pipe();
        auto [ec, p] = co_await spawn(ex, s, use_tuple);
        o.spawn_ec = ec;
        auto [rec, said] = co_await p.read_all(use_tuple);
        o.read_ec = rec;
        o.out = said.out;
        auto [wec, st] = co_await p.wait(use_tuple);
        o.wait_ec = wec;
        o.status = st;
        spawn_spec missing;
        missing.argv = {"/no/such/program"};
        auto [mec, none] = co_await spawn(ex, missing, use_tuple);
        o.missing_ec = mec;
        o.missing_pid = none.pid();
        co_return o;
    });
    EXPECT_FALSE(r.spawn_ec);
    EXPECT_FALSE(r.read_ec);
    EXPECT_FALSE(r.wait_ec);
    EXPECT_EQ(r.status, exit_status::exited_with(3));
    EXPECT_EQ(r.out, "tuple\n");
    EXPECT_EQ(spawn_stage(r.missing_ec), child_stage::exec);
    EXPECT_EQ(r.missing_ec, std::errc::no_such_file_or_directory);
    EXPECT_EQ(r.missing_pid, -1);
}

TEST(Tokens, FailedSpawnThroughACallbackNamesStageAndPath) {
    int fds = open_fd_count();
    spawn_spec s;
    s.argv = {"/no/such/program"};
    spawn_failure failure;
    std::error_code got;
    bool called = false;
    {
        // The loop's own descriptors (its reactor or ring, made when first needed) go with it:
        // what is counted below is what the failed spawn left.
        asio::io_context io;
        spawn(io.get_executor(), prepared_spawn(s), failure, [&](std::error_code ec, process p) {
            called = true;
            got = ec;
            EXPECT_EQ(p.pid(), -1);
        });
        io.run();
    }
    ASSERT_TRUE(called);
    EXPECT_EQ(got.category(), error_category());
    EXPECT_EQ(spawn_stage(got), child_stage::exec);
    EXPECT_EQ(spawn_errno(got), std::error_code(ENOENT, std::generic_category()));
    EXPECT_EQ(got, std::errc::no_such_file_or_directory);
    EXPECT_EQ(got.message(), "execve: No such file or directory");
    EXPECT_EQ(failure.stage, child_stage::exec);
    EXPECT_EQ(failure.message(), "execve /no/such/program: No such file or directory");
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Tokens, CancelledWaitEndsAbortedAndTheChildIsReapedLater) {
    asio::io_context io;
    spawn_spec s;
    s.argv = {helper, "sleep", "30"};
    std::optional<process> child;
    asio::cancellation_signal cancel;
    std::error_code first_ec;
    bool first_done = false;
    char state_after_cancel = 0;
    std::optional<exit_status> final_status;
    asio::steady_timer timer(io);
    spawn(io.get_executor(), s, [&](std::error_code ec, process p) {
        ASSERT_FALSE(ec) << ec.message();
        child.emplace(std::move(p));
        child->wait(asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code wec, exit_status) {
            first_done = true;
            first_ec = wec;
            state_after_cancel = proc_state(child->pid());
            // Still ours and still running: end it and wait again.
            EXPECT_FALSE(child->signal(SIGKILL));
            child->wait([&](std::error_code ec2, exit_status st) {
                EXPECT_FALSE(ec2);
                final_status = st;
            });
        }));
        timer.expires_after(100ms);
        timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
    });
    io.run();
    ASSERT_TRUE(first_done);
    EXPECT_EQ(first_ec, asio::error::operation_aborted);
    EXPECT_NE(state_after_cancel, 0);
    EXPECT_NE(state_after_cancel, 'Z');
    ASSERT_TRUE(final_status);
    EXPECT_EQ(*final_status, exit_status::killed_by(SIGKILL));
    EXPECT_EQ(proc_state(child->pid()), 0);  // reaped: gone from /proc
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Tokens, RunJobsWithACallbackGivesEveryResult) {
    asio::io_context io;
    std::vector<prepared_spawn> specs;
    for (int code : {0, 1, 2}) specs.emplace_back(exiting_with(code));
    std::vector<job_result> results;
    std::error_code got = asio::error::would_block;
    run_jobs(io.get_executor(), std::move(specs), {.concurrency = 2},
             [&](std::error_code ec, std::vector<job_result> r) {
                 got = ec;
                 results = std::move(r);
             });
    io.run();
    EXPECT_FALSE(got);
    ASSERT_EQ(results.size(), 3U);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].status, exit_status::exited_with(i));
}

TEST(Tokens, InvalidSpecIsAnErrorCodeWithPrepare) {
    spawn_spec s;
    s.argv = {"/bin/true"};
    s.hostname = "box";  // needs the uts namespace
    std::error_code ec;
    std::string why;
    auto p = prepare(s, ec, &why);
    EXPECT_FALSE(p);
    EXPECT_EQ(ec, errc::invalid_spec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_NE(why.find("hostname"), std::string::npos) << why;
    s.namespaces = {ns::uts};
    EXPECT_TRUE(prepare(s, ec));
    EXPECT_FALSE(ec);
}

TEST(Tokens, SpawnErrorCodesPackStageAndErrno) {
    std::error_code ec = spawn_error_code(child_stage::hostname, std::make_error_code(std::errc::operation_not_permitted));
    EXPECT_EQ(ec.category().name(), std::string("drover"));
    EXPECT_EQ(spawn_stage(ec), child_stage::hostname);
    EXPECT_EQ(ec, std::errc::operation_not_permitted);
    EXPECT_NE(ec, std::errc::no_such_file_or_directory);
    EXPECT_EQ(ec.message(), "setting hostname: Operation not permitted");
    // No stage, no packing: the errno as it was.
    std::error_code bare = spawn_error_code(child_stage::none, std::make_error_code(std::errc::io_error));
    EXPECT_EQ(bare.category(), std::generic_category());
    EXPECT_EQ(spawn_stage(bare), child_stage::none);
}

}  // namespace
}  // namespace drover

namespace drover {
namespace {

// The error_code form of a throwing call at the public boundary: a limit on a host (here, a
// tree) without cgroups is reported, not thrown.
TEST(Tokens, CgroupCreateWithAnErrorCodeReportsMissingCgroups) {
    cgroup_layout none;
    none.warning = "no cgroup here";
    cgroup_tree tree("drover-test-tokens." + std::to_string(::getpid()), none);
    resource_limits limits;
    limits.tasks_max = 10;
    std::error_code ec;
    std::string what;
    service_cgroup cg = tree.create("svc", limits, false, ec, &what);
    EXPECT_EQ(ec, std::errc::not_supported);
    EXPECT_NE(what.find("no cgroup here"), std::string::npos) << what;
    EXPECT_THROW(tree.create("svc", limits), std::system_error);
    tree.create("svc", resource_limits{}, false, ec);
    EXPECT_FALSE(ec);
}

// A child that writes two lines and an unterminated third on a piped stdout, then exits 0.
spawn_spec three_lines() {
    spawn_spec s;
    s.argv = {"/bin/sh", "-c", "printf 'one\\ntwo\\nthree'"};
    s.out = stdio::pipe();
    return s;
}

TEST(Tokens, ReadToEndWithACallback) {
    asio::io_context io;
    std::optional<process> child;
    std::string text;
    std::error_code spawn_ec = asio::error::would_block, read_ec = asio::error::would_block;
    int reads = 0;
    spawn(io.get_executor(), three_lines(), [&](std::error_code ec, process p) {
        spawn_ec = ec;
        child.emplace(std::move(p));
        read_to_end(*child->stdout_pipe(), text, [&](std::error_code ec2) {
            read_ec = ec2;
            ++reads;
        });
    });
    io.run();
    EXPECT_FALSE(spawn_ec) << spawn_ec.message();
    EXPECT_FALSE(read_ec) << read_ec.message();
    EXPECT_EQ(reads, 1);
    EXPECT_EQ(text, "one\ntwo\nthree");
    std::future<exit_status> ended = child->wait(asio::use_future);
    EXPECT_EQ(run_until_ready(io, ended), exit_status::exited_with(0));
}

TEST(Tokens, ReadToEndWithUseFutureAppends) {
    asio::io_context io;
    std::future<process> started = spawn(io.get_executor(), three_lines(), asio::use_future);
    process p = run_until_ready(io, started);
    std::string text = "before:";
    std::future<void> done = read_to_end(*p.stdout_pipe(), text, asio::use_future);
    run_until_ready(io, done);
    EXPECT_EQ(text, "before:one\ntwo\nthree");
    std::future<exit_status> ended = p.wait(asio::use_future);
    EXPECT_EQ(run_until_ready(io, ended), exit_status::exited_with(0));
}

TEST(Tokens, LineReaderNextWithACallbackUntilEof) {
    asio::io_context io;
    std::optional<process> child;
    std::optional<line_reader> reader;
    std::vector<std::string> lines;
    std::error_code last_ec = asio::error::would_block;
    bool eof = false;
    std::function<void(std::error_code, std::optional<std::string>)> on_line =
        [&](std::error_code ec, std::optional<std::string> line) {
            last_ec = ec;
            if (ec) return;
            if (!line) {
                eof = true;
                return;
            }
            lines.push_back(std::move(*line));
            reader->next(on_line);
        };
    spawn(io.get_executor(), three_lines(), [&](std::error_code ec, process p) {
        ASSERT_FALSE(ec) << ec.message();
        child.emplace(std::move(p));
        reader.emplace(*child->stdout_pipe());
        reader->next(on_line);
    });
    io.run();
    EXPECT_FALSE(last_ec) << last_ec.message();
    EXPECT_TRUE(eof);
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
    ASSERT_TRUE(child);
    std::future<exit_status> ended = child->wait(asio::use_future);
    EXPECT_EQ(run_until_ready(io, ended), exit_status::exited_with(0));
}

TEST(Tokens, LineReaderNextWithUseFuture) {
    asio::io_context io;
    std::future<process> started = spawn(io.get_executor(), three_lines(), asio::use_future);
    process p = run_until_ready(io, started);
    line_reader reader(*p.stdout_pipe(), 3);  // "three" comes in two pieces
    std::vector<std::string> lines;
    std::vector<bool> cut;
    for (;;) {
        std::future<std::optional<std::string>> next = reader.next(asio::use_future);
        std::optional<std::string> line = run_until_ready(io, next);
        if (!line) break;
        lines.push_back(std::move(*line));
        cut.push_back(reader.truncated());
    }
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "thr", "ee"}));
    EXPECT_EQ(cut, (std::vector<bool>{false, false, true, false}));
    std::future<exit_status> ended = p.wait(asio::use_future);
    EXPECT_EQ(run_until_ready(io, ended), exit_status::exited_with(0));
}

}  // namespace
}  // namespace drover
