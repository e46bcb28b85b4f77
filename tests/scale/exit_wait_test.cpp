// Exit waits on both paths (IORING_OP_WAITID and pidfd poll): statuses, reaping, cancellation.
#include <gtest/gtest.h>

#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <vector>

#include "drover/process/exit_waiter.hpp"
#include "drover/process/process.hpp"
#include "drover/process/pool.hpp"
#include "drover/sys/syscalls.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;

// Forces one method for the test's duration; restores the automatic choice after.
class exit_wait_paths : public ::testing::TestWithParam<exit_wait_method> {
protected:
    void SetUp() override {
        if (GetParam() == exit_wait_method::waitid && !uring_waitid_supported())
            GTEST_SKIP() << "IORING_OP_WAITID is not available (needs Linux >= 6.7 and io_uring "
                            "enabled: sysctl kernel.io_uring_disabled=0)";
        force_exit_wait_method(GetParam());
        ASSERT_EQ(exit_wait_method_in_use(), GetParam());
    }
    void TearDown() override { force_exit_wait_method(std::nullopt); }
};

// Not a braced list inside the coroutines: g++ 12 rejects initializer lists of strings there.
spawn_spec helper_spec(const std::string& mode, const std::string& arg) {
    spawn_spec s;
    s.argv.push_back(test::helper);
    s.argv.push_back(mode);
    s.argv.push_back(arg);
    return s;
}

constexpr int n = 64;

TEST_P(exit_wait_paths, many_concurrent_waits_get_each_childs_own_status) {
    auto statuses = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<std::vector<exit_status>> {
        std::vector<process> procs;
        for (int i = 0; i < n; ++i) {
            if (i % 4 == 3) procs.push_back(co_await spawn(ex, helper_spec("signal", std::to_string(i % 2 ? SIGTERM : SIGUSR1))));
            else procs.push_back(co_await spawn(ex, helper_spec("exit", std::to_string(i))));
        }
        std::vector<exit_status> out;
        // Waited for in reverse order: exits complete in any order relative to the waits.
        for (int i = n - 1; i >= 0; --i) out.push_back(co_await procs[static_cast<std::size_t>(i)].wait());
        co_return out;
    });
    ASSERT_EQ(statuses.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const exit_status& s = statuses[static_cast<std::size_t>(n - 1 - i)];
        if (i % 4 == 3) EXPECT_EQ(s, exit_status::killed_by(i % 2 ? SIGTERM : SIGUSR1)) << i;
        else EXPECT_EQ(s, exit_status::exited_with(i)) << i;
    }
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST_P(exit_wait_paths, timestamps_are_recorded_and_pidfd_closed) {
    auto [status, observed, reaped, fd] = test::run_on_loop([](asio::any_io_executor ex)
        -> asio::awaitable<std::tuple<exit_status, std::int64_t, std::int64_t, int>> {
        process p = co_await spawn(ex, helper_spec("exit", "7"));
        exit_status s = co_await p.wait();
        co_return std::tuple{s, p.timings().exit_observed, p.timings().reaped, p.pidfd()};
    });
    EXPECT_EQ(status, exit_status::exited_with(7));
    EXPECT_GT(observed, 0);
    EXPECT_GE(reaped, observed);
    EXPECT_EQ(fd, -1);
}

TEST_P(exit_wait_paths, cancelled_wait_leaves_the_child_waitable) {
    auto [first_cancelled, status] = test::run_on_loop([](asio::any_io_executor ex)
        -> asio::awaitable<std::pair<bool, exit_status>> {
        using namespace asio::experimental::awaitable_operators;
        process p = co_await spawn(ex, helper_spec("sleep", "30"));
        asio::steady_timer t(ex, 50ms);
        bool cancelled = false;
        try {
            auto r = co_await (p.wait() || t.async_wait(asio::use_awaitable));
            cancelled = r.index() == 1;
        } catch (const std::system_error&) {
            cancelled = true;
        }
        EXPECT_FALSE(p.status().has_value());
        EXPECT_FALSE(p.signal(SIGKILL));
        exit_status s = co_await p.wait();
        co_return std::pair{cancelled, s};
    });
    EXPECT_TRUE(first_cancelled);
    EXPECT_EQ(status, exit_status::killed_by(SIGKILL));
    EXPECT_EQ(test::zombie_children(), 0);
}

INSTANTIATE_TEST_SUITE_P(both, exit_wait_paths,
                         ::testing::Values(exit_wait_method::poll, exit_wait_method::waitid),
                         [](const auto& param_info) { return std::string(exit_wait_method_name(param_info.param)); });

// Poll unless waitid is asked for (and the kernel has it); DROVER_EXIT_WAIT is read once, so
// the automatic case is only checked where it is not set.
TEST(exit_wait_choice, poll_is_the_default_and_waitid_is_chosen_by_asking) {
    force_exit_wait_method(exit_wait_method::poll);
    EXPECT_EQ(exit_wait_method_in_use(), exit_wait_method::poll);
    force_exit_wait_method(exit_wait_method::waitid);
    EXPECT_EQ(exit_wait_method_in_use(), uring_waitid_supported() ? exit_wait_method::waitid : exit_wait_method::poll);
    asio::io_context io;
    EXPECT_EQ(exit_wait_method_for(io.get_executor()), exit_wait_method_in_use());
    force_exit_wait_method(std::nullopt);
    if (!std::getenv("DROVER_EXIT_WAIT")) EXPECT_EQ(exit_wait_method_in_use(), exit_wait_method::poll);
}

TEST(exit_wait_choice, waitid_requests_do_not_outlive_their_waits) {
    if (!uring_waitid_supported()) GTEST_SKIP() << "IORING_OP_WAITID is not available";
    force_exit_wait_method(exit_wait_method::waitid);
    asio::io_context io;
    std::size_t pending_after = 99;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        process p = co_await spawn(ex, helper_spec("exit", "0"));
        co_await p.wait();
        pending_after = detail::uring_waitid_pending(ex);
    }, asio::detached);
    io.run();  // returns: no eventfd wait is left armed
    force_exit_wait_method(std::nullopt);
    EXPECT_EQ(pending_after, 0u);
}

}  // namespace
}  // namespace drover
