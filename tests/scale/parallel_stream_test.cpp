// `drover parallel` as a long-running filter: jobs start while input is still coming, and a
// signal stops the run, reaches the running jobs and starts nothing more.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "drover/process/process.hpp"
#include "drover/sys/syscalls.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

spawn_spec parallel_spec(std::vector<std::string> args) {
    spawn_spec s;
    s.argv = {test::cli, "parallel", "--no-progress"};
    s.argv.insert(s.argv.end(), args.begin(), args.end());
    s.in = stdio::pipe();
    s.out = stdio::pipe();
    s.err = stdio::pipe();
    return s;
}

// A directory of this test's own, removed at the end (also on failure).
asio::awaitable<bool> wait_until(asio::any_io_executor ex, const std::function<bool()>& ready,
                                 std::chrono::milliseconds limit) {
    asio::steady_timer t(ex);
    for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
        if (ready()) co_return true;
        t.expires_after(10ms);
        co_await t.async_wait(asio::use_awaitable);
    }
    co_return ready();
}

TEST(parallel_stream, jobs_start_before_the_input_ends) {
    std::string out, err;
    int code = -1;
    std::optional<std::string> l1, l2, l3;
    spawn_spec spec = parallel_spec({"-j", "2", "--", "echo", "got"});
    test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        process p = co_await spawn(ex, spec);
        line_reader lines(*p.stdout_pipe());
        // One line in, its job's output out, while stdin stays open: no reading ahead to EOF.
        // (Named strings: g++ 12 miscompiles a string literal argument inside co_await.)
        const std::string first = "first\n", second = "second\n", third = "third";
        co_await p.write_stdin(first);
        l1 = co_await lines.next();
        co_await p.write_stdin(second);
        l2 = co_await lines.next();
        co_await p.write_stdin(third);  // an unterminated last line counts too
        p.close_stdin();
        l3 = co_await lines.next();
        co_await read_to_end(*p.stderr_pipe(), err);
        code = (co_await p.wait()).code();
    });
    EXPECT_EQ(code, 0) << err;
    EXPECT_EQ(l1.value_or("<eof>"), "got first");
    EXPECT_EQ(l2.value_or("<eof>"), "got second");
    EXPECT_EQ(l3.value_or("<eof>"), "got third");
}

TEST(parallel_stream, a_signal_reaches_running_jobs_and_starts_nothing_more) {
    test::temp_dir dir("drover-parallel");
    std::string out, err;
    std::optional<exit_status> status;
    std::int64_t signalled_ns = 0, ended_ns = 0;
    bool started = false;
    std::error_code signal_error;
    // Each job marks that it started, then waits for SIGTERM and reports it.
    std::string script = "trap 'echo term $0; exit 7' TERM; touch " + dir.path.string() +
                         "/$0; while :; do sleep 0.05; done";
    spawn_spec spec = parallel_spec({"-j", "2", "--", "/bin/sh", "-c", script, "{}"});
    test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        process p = co_await spawn(ex, spec);
        const std::string lines = "1\n2\n3\n4\n";
        co_await p.write_stdin(lines);  // stdin stays open: the run is not over
        started = co_await wait_until(ex, [&] {
            return fs::exists(dir.path / "1") && fs::exists(dir.path / "2");
        }, 20s);
        signalled_ns = sys::monotonic_ns();
        signal_error = p.signal(SIGTERM);
        output o = co_await p.read_all();
        out = o.out;
        err = o.err;
        status = co_await p.wait();
        ended_ns = sys::monotonic_ns();
    });
    EXPECT_TRUE(started);
    EXPECT_FALSE(signal_error);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, exit_status::exited_with(128 + SIGTERM)) << err;
    // The running jobs got the signal (their trap ran), the queued ones never started.
    EXPECT_NE(out.find("term 1"), std::string::npos) << out;
    EXPECT_NE(out.find("term 2"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir.path / "3"));
    EXPECT_FALSE(fs::exists(dir.path / "4"));
    // -j 2 and four lines, all read before both jobs run: the two running ones end by the
    // signal (their trap exits 7, a failure) and the two queued ones never start.
    EXPECT_NE(err.find("drover: parallel: stopped by SIGTERM: 2 jobs ended (2 failed), 2 never started\n"),
              std::string::npos)
        << err;
    // It did not wait for more input or for the jobs' sleeping grandchildren.
    EXPECT_LT(ended_ns - signalled_ns, 10'000'000'000LL);
    EXPECT_EQ(test::zombie_children(), 0);
}

}  // namespace
}  // namespace drover
