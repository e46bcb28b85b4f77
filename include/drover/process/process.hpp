// process: a child on an Asio executor — co_await its start, its exit, its output.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/timings.hpp"

namespace drover {

/// Everything a child wrote on its piped stdout and stderr.
struct output {
    std::string out;
    std::string err;
};

/// A running (or finished) child, owned by one coroutine at a time.
///
/// States: running -> exited (pidfd readable) -> reaped (status known, pidfd closed).
/// Signals go through the pidfd, so they can never reach a recycled pid. Every child is
/// reaped exactly once: by wait(), or, if the process is destroyed first, by a background
/// wait on the same executor (no zombies, and the child is not killed). Not thread-safe: use
/// it from its executor. Keep the process alive while an operation on it is pending.
class process {
public:
    using executor_type = asio::any_io_executor;

    process(executor_type ex, launched_child child);
    process(process&&) noexcept;
    process& operator=(process&&) noexcept;
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    ~process();

    [[nodiscard]] executor_type get_executor() const;
    /// The pid in drover's PID namespace (for display; act on the process through pidfd()).
    [[nodiscard]] pid_t pid() const noexcept;
    /// The pidfd, or -1 once reaped.
    [[nodiscard]] int pidfd() const noexcept;
    /// The exit status once reaped.
    [[nodiscard]] std::optional<exit_status> status() const noexcept;
    /// The child's resource usage from waitid(2) once reaped (its own, and that of the
    /// descendants it waited for).
    [[nodiscard]] std::optional<struct rusage> usage() const noexcept;
    [[nodiscard]] const spawn_timings& timings() const noexcept;
    /// How the child was created (posix_spawn-style vfork, or fork-style).
    [[nodiscard]] clone_method method() const noexcept;

    /// Waits for the exit (pidfd readable on the event loop), reaps with waitid(P_PIDFD) and
    /// returns the status. After the first time it returns the same status at once.
    asio::awaitable<exit_status> wait();

    /// Callback form of wait(), for code that keeps thousands of children without a
    /// coroutine each: `done` runs once, on the executor, with the status, or with an error
    /// (asio::error::operation_aborted if the wait was cancelled). Keep the process alive
    /// until it has run.
    using exit_callback = std::function<void(std::error_code, exit_status)>;
    void on_exit(exit_callback done);

    /// pidfd_send_signal(2). ESRCH once the child has been reaped.
    std::error_code signal(int sig) noexcept;

    /// The parent's ends of piped streams; nullptr for a stream that is not a pipe (or was
    /// closed). Usable with any Asio stream algorithm.
    asio::posix::stream_descriptor* stdin_pipe() noexcept;
    asio::posix::stream_descriptor* stdout_pipe() noexcept;
    asio::posix::stream_descriptor* stderr_pipe() noexcept;

    /// Writes all of `data` to stdin.
    asio::awaitable<void> write_stdin(std::string_view data);
    /// Closes stdin so that the child sees EOF.
    void close_stdin() noexcept;
    /// Reads piped stdout and stderr concurrently to EOF (neither can fill and block the
    /// child while the other is being read).
    asio::awaitable<output> read_all();

    struct state;

private:
    std::unique_ptr<state> s_;
};

/// Starts a child from a prepared spec. Completes when the child has reached execve (or
/// finished its setup, with spec.exec = false); throws spawn_error naming the failed stage,
/// after reaping the child and closing every descriptor of the attempt.
asio::awaitable<process> spawn(asio::any_io_executor ex, prepared_spawn spec);

/// As above, with per-launch additions (a job's own cgroups; borrowed until it completes).
asio::awaitable<process> spawn(asio::any_io_executor ex, prepared_spawn spec, launch_extras extras);

/// Validates and prepares `spec` (throws spec_error), then as above.
asio::awaitable<process> spawn(asio::any_io_executor ex, spawn_spec spec);

/// The result of running a child to its end.
struct run_result {
    exit_status status;
    std::string out;  ///< piped stdout, if it was a pipe
    std::string err;  ///< piped stderr, if it was a pipe
    spawn_timings timings;
};

/// Spawns, writes `input` to a piped stdin and closes it, collects piped output, waits.
asio::awaitable<run_result> run(asio::any_io_executor ex, spawn_spec spec, std::string input = {});

/// Reads a stream to EOF, appending to `into`.
asio::awaitable<void> read_to_end(asio::posix::stream_descriptor& stream, std::string& into);

/// Reads a stream line by line with a bounded buffer: next() gives a line without its '\n';
/// a line longer than `max_line` comes in pieces of max_line bytes (`truncated()` says so);
/// nullopt at EOF (a last unterminated line is given first).
class line_reader {
public:
    explicit line_reader(asio::posix::stream_descriptor& stream, std::size_t max_line = 64 * 1024)
        : stream_(stream), max_line_(max_line) {}
    asio::awaitable<std::optional<std::string>> next();
    [[nodiscard]] bool truncated() const noexcept { return truncated_; }

private:
    asio::posix::stream_descriptor& stream_;
    std::size_t max_line_;
    std::string buf_;
    bool eof_ = false;
    bool truncated_ = false;
};

namespace detail {
/// Reaps `pidfd`'s child in the background on `ex`; if the executor's context is destroyed
/// first, a single process-wide thread reaps it instead.
/// `keep` (an id lease, say) is held until the child is reaped.
void reap_in_background(asio::any_io_executor ex, sys::unique_fd pidfd, std::shared_ptr<void> keep = {});
/// How many children the background reapers hold (for tests).
std::size_t background_reaps_pending() noexcept;
/// Waits until the background reapers hold no child, at most `limit`; whether they got there.
bool wait_background_reaps(std::chrono::milliseconds limit);
}  // namespace detail

}  // namespace drover
