// Support for the supervisor tests: a logger that keeps lines, polling helpers, pid checks.
#pragma once

#include <signal.h>
#include <sys/stat.h>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <chrono>
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

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        lines_.emplace_back(msg.payload.data(), msg.payload.size());
        if (std::getenv("DROVER_TEST_LOG")) std::fprintf(stderr, "log: %s\n", lines_.back().c_str());
    }
    void flush_() override {}

private:
    std::vector<std::string> lines_;
};

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

/// Polls until `n` numeric lines (pids) were logged for `service`, or the timeout.
inline asio::awaitable<std::vector<pid_t>> logged_pids(capture_sink& sink, const std::string& service,
                                                       std::size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::vector<pid_t> pids;
        for (const auto& l : service_lines(sink, service))
            if (!l.empty() && l.find_first_not_of("0123456789") == std::string::npos) pids.push_back(std::stoi(l));
        if (pids.size() >= n || std::chrono::steady_clock::now() > deadline) co_return pids;
        co_await sleep_for(std::chrono::milliseconds(10));
    }
}

/// Whether `pid` is alive and not a zombie.
inline bool alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z' && line[close + 2] != 'X';
}

/// Waits (bounded) until none of `pids` is alive; returns the ones still alive.
inline std::vector<pid_t> wait_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::vector<pid_t> left;
        for (pid_t p : pids)
            if (alive(p)) left.push_back(p);
        if (left.empty() || std::chrono::steady_clock::now() > deadline) return left;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
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
