// Output pipes moved into an io_uring's registered descriptors: out of the descriptor
// table, read through the ring with the same bytes, and given back when a process goes.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <string>
#include <vector>

#include "../../src/process/ring_pipe.hpp"
#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

class ring_output : public ::testing::Test {
protected:
    void SetUp() override {
        if (!detail::ring_pipes_supported())
            GTEST_SKIP() << "io_uring registered buffer rings are not available (Linux >= 5.19, io_uring enabled)";
    }
};

TEST_F(ring_output, a_child_writing_more_than_a_pipe_holds_delivers_every_byte_and_leaves_the_table) {
    // 300 KiB on stdout (more than a pipe and many ring buffers), a line on stderr.
    auto r = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<std::pair<output, int>> {
        spawn_spec s = test::piped({"/bin/sh", "-c", "head -c 307200 /dev/zero | tr '\\0' x; echo oops >&2"});
        process p = co_await spawn(ex, std::move(s));
        (void)detail::ring_pipe_room(ex);  // the ring's own descriptors, made on first use
        int before = test::open_fd_count();
        std::error_code ec = p.move_output_to_ring();
        if (ec) throw std::system_error(ec, "move_output_to_ring");
        int moved = before - test::open_fd_count();
        if (p.stdout_pipe() || p.stderr_pipe() || p.output_in_ring() != 2)
            throw std::runtime_error("streams still in the table");
        output o = co_await p.read_all();
        exit_status st = co_await p.wait();
        if (!st.success()) throw std::runtime_error("child failed");
        co_return std::pair{std::move(o), moved};
    });
    EXPECT_EQ(r.second, 2) << "the two read ends should have left the descriptor table";
    EXPECT_EQ(r.first.out, std::string(307200, 'x'));
    EXPECT_EQ(r.first.err, "oops\n");
}

TEST_F(ring_output, six_hundred_children_at_once_each_get_their_own_output) {
    // More streams writing at once than the ring has buffers: reads the kernel turns away
    // for want of a buffer are retried as buffers come back.
    constexpr int n = 600;
    auto outs = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<std::vector<output>> {
        std::vector<process> ps;
        for (int i = 0; i < n; ++i) {
            spawn_spec s = test::piped({"/bin/sh", "-c", "echo out" + std::to_string(i) + "; echo err" +
                                                             std::to_string(i) + " >&2"});
            ps.push_back(co_await spawn(ex, std::move(s)));
            if (auto ec = ps.back().move_output_to_ring()) throw std::system_error(ec, "move_output_to_ring");
        }
        std::vector<output> got(n);
        int left = n;
        asio::steady_timer done(ex, asio::steady_timer::time_point::max());
        for (int i = 0; i < n; ++i)
            asio::co_spawn(ex, [&, i]() -> asio::awaitable<void> {
                got[i] = co_await ps[i].read_all();
                co_await ps[i].wait();
                if (--left == 0) done.cancel();
            }, asio::detached);
        co_await done.async_wait(use_tuple);
        co_return got;
    });
    ASSERT_EQ(outs.size(), std::size_t{n});
    for (int i = 0; i < n; ++i) {
        EXPECT_EQ(outs[i].out, "out" + std::to_string(i) + "\n") << i;
        EXPECT_EQ(outs[i].err, "err" + std::to_string(i) + "\n") << i;
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST_F(ring_output, dropping_a_process_with_a_read_pending_frees_its_slots) {
    test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<void> {
        std::size_t room = detail::ring_pipe_room(ex);
        {
            // The child blocks on its stdin with both output pipes open.
            spawn_spec s = test::piped({"/bin/sh", "-c", "read x"});
            s.in = stdio::pipe();
            process p = co_await spawn(ex, std::move(s));
            if (auto ec = p.move_output_to_ring()) throw std::system_error(ec, "move_output_to_ring");
            if (detail::ring_pipe_room(ex) != room - 2) throw std::runtime_error("two slots should be taken");
            bool called = false;
            detail::ring_output(p, 1)->read([&](std::error_code, std::string_view) { called = true; });
            asio::steady_timer t(ex, std::chrono::milliseconds(20));
            co_await t.async_wait(use_tuple);
            if (called) throw std::runtime_error("a read completed with nothing written");
            p.close_stdin();  // it exits; the process object reaps it in the background
        }
        // The pending read is cancelled and the slot freed when the kernel gives it back.
        for (int i = 0; i < 200 && detail::ring_pipe_room(ex) != room; ++i) {
            asio::steady_timer t(ex, std::chrono::milliseconds(5));
            co_await t.async_wait(use_tuple);
        }
        if (detail::ring_pipe_room(ex) != room)
            throw std::runtime_error("slots not freed: room " + std::to_string(detail::ring_pipe_room(ex)) +
                                     " of " + std::to_string(room));
    });
    EXPECT_TRUE(detail::wait_background_reaps(std::chrono::seconds(5)));
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST_F(ring_output, a_cancelled_read_ends_with_operation_aborted_and_reading_goes_on) {
    auto r = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<std::string> {
        spawn_spec s = test::piped({"/bin/sh", "-c", "read x; echo after"});
        s.in = stdio::pipe();
        process p = co_await spawn(ex, std::move(s));
        if (auto ec = p.move_output_to_ring()) throw std::system_error(ec, "move_output_to_ring");
        std::error_code got = asio::error::would_block;
        detail::ring_output(p, 1)->read([&](std::error_code ec, std::string_view) { got = ec; });
        detail::ring_output(p, 1)->cancel();
        for (int i = 0; i < 200 && got == asio::error::would_block; ++i) {
            asio::steady_timer t(ex, std::chrono::milliseconds(5));
            co_await t.async_wait(use_tuple);
        }
        if (got != asio::error::operation_aborted) throw std::runtime_error("cancel gave " + got.message());
        co_await p.write_stdin("go\n");
        p.close_stdin();
        output o = co_await p.read_all();
        co_await p.wait();
        co_return o.out;
    });
    EXPECT_EQ(r, "after\n");
}

TEST_F(ring_output, a_nowait_read_gives_what_the_pipe_holds_and_says_when_it_is_empty) {
    auto r = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
        spawn_spec s = test::piped({"/bin/sh", "-c", "echo hello; read x"});
        s.in = stdio::pipe();
        process p = co_await spawn(ex, std::move(s));
        if (auto ec = p.move_output_to_ring()) throw std::system_error(ec, "move_output_to_ring");
        std::vector<std::string> seen;  // what each nowait read gave: data, or its error
        asio::steady_timer t(ex);
        for (int i = 0; i < 400 && seen.size() < 2; ++i) {
            bool done = false;
            detail::ring_output(p, 1)->read([&](std::error_code ec, std::string_view d) {
                if (ec == std::errc::resource_unavailable_try_again) {
                    if (!seen.empty()) seen.push_back("empty");  // (before "hello" arrived: ask again)
                } else {
                    seen.push_back(ec ? ec.message() : std::string(d));
                }
                done = true;
            }, /*nowait=*/true);
            while (!done) {
                t.expires_after(std::chrono::milliseconds(2));
                co_await t.async_wait(use_tuple);
            }
        }
        p.close_stdin();
        co_await p.wait();
        co_return seen;
    });
    EXPECT_EQ(r, (std::vector<std::string>{"hello\n", "empty"}));
}

TEST(ring_output_fallback, a_process_with_nothing_piped_moves_nothing) {
    auto n = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<int> {
        spawn_spec s;
        s.argv = {"/bin/true"};
        process p = co_await spawn(ex, std::move(s));
        std::error_code ec = p.move_output_to_ring();
        co_await p.wait();
        co_return ec ? -1 : p.output_in_ring();
    });
    EXPECT_EQ(n, 0);
}

}  // namespace
}  // namespace drover
