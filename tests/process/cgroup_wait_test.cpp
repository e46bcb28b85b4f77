// Waiting for a cgroup to empty and removing it happen on the event loop without blocking it:
// other work runs while a process is still inside, and the removal completes when it leaves.
#include <gtest/gtest.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <filesystem>

#include "drover/process/cgroup_wait.hpp"
#include "drover/process/process.hpp"
#include "support.hpp"

namespace drover {
namespace {

using namespace std::chrono_literals;

TEST(CgroupWait, RemovalWaitsForTheLastProcessWithoutHoldingTheLoop) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make cgroups";
    cgroup_tree tree("drover-test-wait." + std::to_string(::getpid()));
    if (tree.mode() == cgroup_mode::none || tree.roots().empty()) GTEST_SKIP() << "no cgroups: " << tree.warning();
    service_cgroup cg = tree.create("job", {});
    std::string dir = cg.path();
    if (dir.empty()) GTEST_SKIP() << "no cgroup v2 directory here (v1 only)";
    struct out_t {
        bool emptied_early = true;
        int ticks_while_pending = 0;
        std::error_code removed;
        bool done = false;
    };
    auto r = test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<out_t> {
        out_t o;
        spawn_spec s = test::piped({"/bin/sh", "-c", "read x"});
        s.in = stdio::pipe();
        process child = co_await spawn(ex, prepared_spawn(s), cg.extras());
        // With the process inside, a bounded wait says so.
        o.emptied_early = co_await async_wait_empty(cg, 30ms);
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
                o.removed = co_await async_remove(cg, 10s);
                o.done = true;
            },
            asio::detached);
        // The loop serves a timer while the removal waits; only then does the process leave
        // (end of its stdin), which must complete the removal.
        asio::steady_timer t(ex);
        for (; o.ticks_while_pending < 5 && !o.done; ++o.ticks_while_pending) {
            t.expires_after(1ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        child.close_stdin();
        co_await child.wait();
        while (!o.done) {
            t.expires_after(1ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        co_return o;
    });
    EXPECT_FALSE(r.emptied_early);
    EXPECT_EQ(r.ticks_while_pending, 5) << "the removal finished while the process was still inside";
    EXPECT_FALSE(r.removed) << r.removed.message();
    EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace drover
