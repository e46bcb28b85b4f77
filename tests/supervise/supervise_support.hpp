// Support for the supervisor tests: a logger that keeps lines, polling helpers, pid checks.
#pragma once

#include <signal.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <algorithm>
#include <chrono>
#include <functional>
#include <fstream>
#include <mutex>
#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>
#include <string>
#include <thread>
#include <vector>

#include "drover/process/asio.hpp"
#include "drover/supervise/supervisor.hpp"
#include "support.hpp"

// GCC 12 reports -Wmismatched-new-delete inside Asio's awaitable frame allocator for coroutine
// lambdas (a false positive: Asio pairs its own operator new and delete). Silenced for the
// supervise tests only, so that -Werror builds pass.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace drover::test {

/// Keeps every formatted message (without pattern decorations) in memory.
class capture_sink : public spdlog::sinks::base_sink<std::mutex> {
public:
    std::vector<std::string> lines() {
        std::lock_guard<std::mutex> g(mutex_);
        return lines_;
    }
    /// Called after each new line (on the thread that logs it: the supervisor's loop).
    void on_line(std::function<void()> f) {
        std::lock_guard<std::mutex> g(mutex_);
        on_line_ = std::move(f);
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        lines_.emplace_back(msg.payload.data(), msg.payload.size());
        if (std::getenv("DROVER_TEST_LOG")) std::fprintf(stderr, "log: %s\n", lines_.back().c_str());
        if (on_line_) on_line_();
    }
    void flush_() override {}

private:
    std::vector<std::string> lines_;
    std::function<void()> on_line_;
};

/// Waits until `pred(sink.lines())` holds or `timeout` passes; woken by each new line (the
/// supervisor logs on the loop this runs on), never by polling. Returns whether it held.
/// `pred` is a named object, by reference: GCC 12 may destroy a temporary argument of a
/// coroutine call inside co_await twice.
inline asio::awaitable<bool> wait_for_lines(capture_sink& sink,
                                            const std::function<bool(const std::vector<std::string>&)>& pred,
                                            std::chrono::milliseconds timeout) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    sink.on_line([&t] { t.cancel(); });
    bool held = false;
    while (!(held = pred(sink.lines())) && std::chrono::steady_clock::now() < deadline) {
        t.expires_at(deadline);
        (void)co_await t.async_wait(use_tuple);
    }
    sink.on_line(nullptr);
    co_return held;
}

/// Reads `fd` (a blocking socket with SO_RCVTIMEO) until the peer closes, the timeout or
/// `limit` bytes. A read on such a socket is never restarted after a signal handler
/// (signal(7)), and test processes get SIGCHLD from the children of earlier tests: EINTR is
/// retried, not taken for the end.
inline std::string read_until_closed(int fd, std::size_t limit = 4U << 20) {
    std::string out;
    char buf[4096];
    while (out.size() < limit) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

/// A service that restarts quickly (20 ms, no jitter) and is given 1 s to stop.
inline supervise::service_spec svc(std::string name, std::vector<std::string> argv) {
    supervise::service_spec s;
    s.name = std::move(name);
    s.spawn.argv = std::move(argv);
    s.backoff.initial = std::chrono::milliseconds(20);
    s.backoff.jitter = 0;
    s.stop_timeout = std::chrono::seconds(1);
    return s;
}

/// A supervisor that logs to `log` (a capture) with a fixed jitter seed: runs repeat.
inline supervise::supervisor_options quiet(std::shared_ptr<spdlog::logger> log) {
    supervise::supervisor_options o;
    o.log = std::move(log);
    o.seed = 42;
    return o;
}

inline std::pair<std::shared_ptr<spdlog::logger>, std::shared_ptr<capture_sink>> capture_logger() {
    auto sink = std::make_shared<capture_sink>();
    auto log = std::make_shared<spdlog::logger>("test", sink);
    log->set_level(spdlog::level::trace);
    return {log, sink};
}

inline asio::awaitable<void> sleep_for(std::chrono::nanoseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    (void)co_await t.async_wait(use_tuple);
}

/// Lines logged for `service` ("[service] text" -> "text").
inline std::vector<std::string> service_lines(capture_sink& sink, const std::string& service) {
    std::vector<std::string> out;
    std::string prefix = "[" + service + "] ";
    for (const auto& l : sink.lines())
        if (l.rfind(prefix, 0) == 0) out.push_back(l.substr(prefix.size()));
    return out;
}

/// The numeric lines (pids) logged for `service`.
inline std::vector<pid_t> pids_in(capture_sink& sink, const std::string& service) {
    std::vector<pid_t> pids;
    for (const auto& l : service_lines(sink, service))
        if (!l.empty() && l.size() < 10 && l.find_first_not_of("0123456789") == std::string::npos)
            pids.push_back(std::stoi(l));
    return pids;
}

/// Waits until `n` numeric lines (pids) were logged for `service`, or the timeout.
inline asio::awaitable<std::vector<pid_t>> logged_pids(capture_sink& sink, const std::string& service,
                                                       std::size_t n, std::chrono::milliseconds timeout) {
    const std::function<bool(const std::vector<std::string>&)> enough = [&sink, &service, n](const std::vector<std::string>&) {
        return pids_in(sink, service).size() >= n;
    };
    (void)co_await wait_for_lines(sink, enough, timeout);
    co_return pids_in(sink, service);
}

/// Whether `pid` is alive and not a zombie.
inline bool alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z' && line[close + 2] != 'X';
}

/// Waits (bounded) until none of `pids` is alive; returns the ones still alive. Waits on
/// pidfds (readable once the process has exited, child of ours or not), not by polling.
inline std::vector<pid_t> wait_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<int> fds;
    for (pid_t p : pids) {
        int fd = static_cast<int>(::syscall(SYS_pidfd_open, p, 0));
        if (fd >= 0) fds.push_back(fd);  // else: already gone (ESRCH)
    }
    for (int fd : fds) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd pfd{fd, POLLIN, 0};
        while (::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, left.count()))) < 0 && errno == EINTR) {
        }
        ::close(fd);
    }
    std::vector<pid_t> still;
    for (pid_t p : pids)
        if (alive(p)) still.push_back(p);
    return still;
}

/// Waits (bounded) until `path` no longer exists, woken by inotify (IN_DELETE_SELF) rather
/// than by polling. Whether it is gone.
inline bool wait_removed(const std::string& path, std::chrono::milliseconds timeout) {
    int fd = ::inotify_init1(IN_CLOEXEC);
    if (fd < 0) return false;
    bool gone = ::inotify_add_watch(fd, path.c_str(), IN_DELETE_SELF) < 0 && errno == ENOENT;
    struct stat st {};
    if (!gone) gone = ::stat(path.c_str(), &st) != 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!gone) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
        gone = ::stat(path.c_str(), &st) != 0;
    }
    ::close(fd);
    return gone;
}

inline bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

/// Kills leftovers by pidfd (cleanup on a failed test; never by name).
inline void kill_pids(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) {
        if (!alive(p)) continue;
        int fd = static_cast<int>(::syscall(SYS_pidfd_open, p, 0));
        if (fd >= 0) {
            ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
            ::close(fd);
        }
    }
}

}  // namespace drover::test
