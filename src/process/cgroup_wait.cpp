// Cgroup emptiness waits on inotify (v2 cgroup.events) or a timer (v1), and removal that
// retries on a timer: nothing here sleeps on the event loop.
#include "drover/process/cgroup_wait.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <memory>

#include "drover/process/asio.hpp"

namespace drover {

namespace {

using clock = std::chrono::steady_clock;

// An inotify descriptor watching DIR/cgroup.events, or -1 (no v2, or inotify refused).
int watch_events(const std::string& dir) {
    if (dir.empty()) return -1;
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    if (::inotify_add_watch(fd, (dir + "/cgroup.events").c_str(), IN_MODIFY) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Waits for `d` to be readable or `deadline`, whichever comes first.
asio::awaitable<void> readable_or(asio::posix::stream_descriptor& d, clock::time_point deadline) {
    asio::steady_timer t(co_await asio::this_coro::executor, deadline);
    // The timer's handler may run after this frame is gone (its expiry already queued when
    // the read side won): it touches `d` only while the wait it would cut is still pending.
    auto pending = std::make_shared<bool>(true);
    t.async_wait([&d, pending](std::error_code ec) {
        if (!ec && *pending) d.cancel();
    });
    (void)co_await d.async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
    *pending = false;
    t.cancel();
}

}  // namespace

asio::awaitable<bool> async_wait_empty(const service_cgroup& cg, std::chrono::nanoseconds limit) {
    auto ex = co_await asio::this_coro::executor;
    const auto deadline = clock::now() + limit;
    int fd = watch_events(cg.path());
    if (fd >= 0) {
        asio::posix::stream_descriptor d(ex, fd);
        // Watch first, then look: a change between the two still wakes us.
        while (cg.populated()) {
            if (clock::now() >= deadline) co_return false;
            co_await readable_or(d, deadline);
            char buf[4096];
            while (::read(d.native_handle(), buf, sizeof buf) > 0) {
            }
        }
        co_return true;
    }
    asio::steady_timer t(ex);
    while (cg.populated()) {
        if (clock::now() >= deadline) co_return false;
        t.expires_after(std::chrono::milliseconds(2));
        (void)co_await t.async_wait(use_tuple);
    }
    co_return true;
}

asio::awaitable<std::error_code> async_remove(service_cgroup& cg, std::chrono::nanoseconds limit) {
    const auto deadline = clock::now() + limit;
    (void)co_await async_wait_empty(cg, limit);
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (;;) {
        std::error_code ec = cg.try_remove();
        if (!ec || ec.value() != EBUSY || clock::now() >= deadline) co_return ec;
        t.expires_after(std::chrono::milliseconds(2));
        (void)co_await t.async_wait(use_tuple);
    }
}

void retire(asio::any_io_executor ex, std::unique_ptr<service_cgroup> cg) {
    if (!cg) return;
    asio::co_spawn(
        ex,
        [](std::unique_ptr<service_cgroup> c) -> asio::awaitable<void> {
            (void)co_await async_remove(*c, std::chrono::seconds(2));
        }(std::move(cg)),
        // Only an allocation can fail here; the cgroup then goes with the frame (blocking
        // remove) or with its tree.
        on_escape([](const std::string&) {}));
}

}  // namespace drover
