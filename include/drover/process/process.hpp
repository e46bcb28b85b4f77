// process: a child on an Asio executor — await its start, its exit, its output, with any
// Asio completion token.
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

#include "drover/process/async.hpp"
#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/timings.hpp"

namespace drover {

/// Everything a child wrote on its piped stdout and stderr.
struct output {
    std::string out;
    std::string err;
};

/// Completion tokens. Every asynchronous operation here takes an Asio completion token last,
/// use_awaitable when none is given, so `co_await spawn(ex, spec)` and `co_await p.wait()`
/// are plain coroutines that throw (spawn_error naming the stage, std::system_error). Any
/// other token gets Asio's error_code-first signature instead — void(std::error_code,
/// process) for spawn, void(std::error_code, exit_status) for wait, and so on — so a callback,
/// asio::use_future, asio::experimental::deferred or as_tuple(use_awaitable) work too:
///
///   drover::spawn(ex, spec, [](std::error_code ec, drover::process p) { ... });
///   auto [ec, st] = co_await p.wait(drover::use_tuple);
///   std::future<drover::exit_status> f = p.wait(asio::use_future);
///
/// A failed spawn's error_code is in drover::error_category(): spawn_stage(ec) gives the stage,
/// ec.message() says "execve: No such file or directory", and it compares equal
/// to the errno (ec == std::errc::no_such_file_or_directory). The spawn overload with a
/// spawn_failure& also gives the detail (the path) and the advice. Cancellation through the
/// handler's slot (asio::bind_cancellation_slot) ends a wait with operation_aborted and leaves
/// the child running and owned by the process. Handlers run on their associated executor,
/// else the operation's.
///
/// Why not std::exception_ptr first, as co_spawn gives: callers of callbacks and as_tuple
/// would have to rethrow to learn anything; an error_code is Asio's convention, and packing
/// the stage into it keeps the one piece of a failure that is not an errno.

class process;
namespace detail {
class ring_pipe;
/// The ring end of stream 1 (stdout) or 2 (stderr) after move_output_to_ring(), else null.
ring_pipe* ring_output(process& p, int stream) noexcept;
}  // namespace detail

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

    /// No child (what a failed spawn hands a completion handler, and what a moved-from
    /// process is): only assignment, destruction, pid() (-1) and pidfd() (-1) are meaningful.
    process() noexcept;
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
    /// Completion: void(std::error_code, exit_status); cancelled: operation_aborted (the
    /// child is not signalled; wait again, or drop the process and it is reaped).
    template <completion_token_for<exit_status> Token = default_token>
    auto wait(Token&& token = {}) {
        return detail::async_coroutine(get_executor(), std::forward<Token>(token), [this] { return wait_coro(); });
    }

    /// Callback form of wait() without a coroutine frame, for code that keeps thousands of
    /// children (wait() with a callback co_spawns one per wait): `done` runs once, on the executor, with the status, or with an error
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

    /// Writes all of `data` to stdin (borrowed until the operation completes).
    /// Completion: void(std::error_code); EPIPE if the child closed its end.
    template <completion_token_for<void> Token = default_token>
    auto write_stdin(std::string_view data, Token&& token = {}) {
        return detail::async_coroutine(get_executor(), std::forward<Token>(token),
                                       [this, data] { return write_stdin_coro(data); });
    }
    /// Moves the parent's ends of piped stdout and stderr out of the descriptor table into
    /// registered descriptors of an io_uring of the executor's context, so that they do not
    /// count against RLIMIT_NOFILE (10,000 children with both streams piped need 20,000 read
    /// ends) and are not copied by each later clone3. Afterwards stdout_pipe() and
    /// stderr_pipe() are null; read_all() and job_pool read them through the ring, with the
    /// same semantics (a pipe nobody reads fills and blocks the child). Without room for both
    /// streams nothing moves; the error says why (ENOSYS: this kernel has no io_uring
    /// registered buffer rings, Linux >= 5.19, or io_uring is disabled; EMFILE: the ring's
    /// table, sized by RLIMIT_NOFILE when first used, is full). Nothing piped: no error.
    std::error_code move_output_to_ring() noexcept;
    /// Whether this kernel can keep output pipes in a ring (probed once).
    [[nodiscard]] static bool output_ring_supported() noexcept;
    /// How many of stdout and stderr are read through the ring (0, 1 or 2).
    [[nodiscard]] int output_in_ring() const noexcept;
    /// Closes stdin so that the child sees EOF.
    void close_stdin() noexcept;
    /// Reads piped stdout and stderr concurrently to EOF (neither can fill and block the
    /// child while the other is being read). Completion: void(std::error_code, output).
    template <completion_token_for<output> Token = default_token>
    auto read_all(Token&& token = {}) {
        return detail::async_coroutine(get_executor(), std::forward<Token>(token), [this] { return read_all_coro(); });
    }

    struct state;

private:
    // The operations as coroutines; the templates above adapt them to the caller's token.
    asio::awaitable<exit_status> wait_coro();
    asio::awaitable<void> write_stdin_coro(std::string_view data);
    asio::awaitable<output> read_all_coro();

    std::unique_ptr<state> s_;
    friend detail::ring_pipe* detail::ring_output(process& p, int stream) noexcept;
};

namespace detail {
/// The spawn coroutine behind every spawn() below; with `failure`, a failure is also written
/// there before spawn_error is thrown.
asio::awaitable<process> spawn_coro(asio::any_io_executor ex, prepared_spawn spec, launch_extras extras,
                                    spawn_failure* failure);
}  // namespace detail

/// Starts a child from a prepared spec. Completes when the child has reached execve (or
/// finished its setup, with spec.exec = false). On failure the child is reaped and every
/// descriptor of the attempt closed first; then co_await throws spawn_error naming the stage,
/// and other tokens get spawn_failure::as_error_code() (see "Completion tokens" above).
/// Completion: void(std::error_code, process).
template <completion_token_for<process> Token = default_token>
auto spawn(asio::any_io_executor ex, prepared_spawn spec, Token&& token = {}) {
    return detail::async_coroutine(ex, std::forward<Token>(token), [ex, spec = std::move(spec)]() mutable {
        return detail::spawn_coro(ex, std::move(spec), launch_extras{}, nullptr);
    });
}

/// As above, with per-launch additions (a job's own cgroups; borrowed until it completes).
template <completion_token_for<process> Token = default_token>
auto spawn(asio::any_io_executor ex, prepared_spawn spec, launch_extras extras, Token&& token = {}) {
    return detail::async_coroutine(ex, std::forward<Token>(token), [ex, spec = std::move(spec), extras]() mutable {
        return detail::spawn_coro(ex, std::move(spec), extras, nullptr);
    });
}

/// As above; a failure is also written to `failure` (borrowed until completion) before the
/// completion runs, with the detail and advice an error_code cannot hold.
template <completion_token_for<process> Token = default_token>
auto spawn(asio::any_io_executor ex, prepared_spawn spec, spawn_failure& failure, Token&& token = {}) {
    return detail::async_coroutine(ex, std::forward<Token>(token), [ex, spec = std::move(spec), &failure]() mutable {
        return detail::spawn_coro(ex, std::move(spec), launch_extras{}, &failure);
    });
}

/// Validates and prepares `spec` now, in the call (throws spec_error, whatever the token:
/// an invalid spec is the caller's mistake; prepare(spec, ec) checks without throwing), then
/// as above.
template <completion_token_for<process> Token = default_token>
auto spawn(asio::any_io_executor ex, spawn_spec spec, Token&& token = {}) {
    return spawn(std::move(ex), prepared_spawn(std::move(spec)), std::forward<Token>(token));
}

/// error_code form of prepared_spawn's constructor: nullopt and errc::invalid_spec (what
/// names the field in `why`, if given) instead of spec_error.
std::optional<prepared_spawn> prepare(spawn_spec spec, std::error_code& ec, std::string* why = nullptr) noexcept;

/// The result of running a child to its end.
struct run_result {
    exit_status status;
    std::string out;  ///< piped stdout, if it was a pipe
    std::string err;  ///< piped stderr, if it was a pipe
    spawn_timings timings;
};

namespace detail {
asio::awaitable<run_result> run_coro(asio::any_io_executor ex, spawn_spec spec, std::string input);
}  // namespace detail

/// Spawns, writes `input` to a piped stdin and closes it, collects piped output, waits.
/// An invalid spec fails the operation (spec_error; errc::invalid_spec for other tokens).
/// Completion: void(std::error_code, run_result).
template <completion_token_for<run_result> Token = default_token>
auto run(asio::any_io_executor ex, spawn_spec spec, std::string input = {}, Token&& token = {}) {
    return detail::async_coroutine(ex, std::forward<Token>(token),
                                   [ex, spec = std::move(spec), input = std::move(input)]() mutable {
        return detail::run_coro(ex, std::move(spec), std::move(input));
    });
}

namespace detail {
asio::awaitable<void> read_to_end_coro(asio::posix::stream_descriptor& stream, std::string& into);
}  // namespace detail

/// Reads a stream to EOF, appending to `into` (both borrowed until the operation completes).
/// A read error other than EOF fails it (std::system_error "reading child output").
/// Completion: void(std::error_code).
template <completion_token_for<void> Token = default_token>
auto read_to_end(asio::posix::stream_descriptor& stream, std::string& into, Token&& token = {}) {
    return detail::async_coroutine(stream.get_executor(), std::forward<Token>(token),
                                   [&stream, &into] { return detail::read_to_end_coro(stream, into); });
}

/// Reads a stream line by line with a bounded buffer: next() gives a line without its '\n';
/// a line longer than `max_line` comes in pieces of max_line bytes (`truncated()` says so);
/// nullopt at EOF (a last unterminated line is given first). Borrows the stream; keep the
/// reader alive and call next() again only after the previous one has completed.
class line_reader {
public:
    explicit line_reader(asio::posix::stream_descriptor& stream, std::size_t max_line = 64 * 1024)
        : stream_(stream), max_line_(max_line) {}
    /// The next line, or nullopt at EOF. Completion: void(std::error_code,
    /// std::optional<std::string>).
    template <completion_token_for<std::optional<std::string>> Token = default_token>
    auto next(Token&& token = {}) {
        return detail::async_coroutine(stream_.get_executor(), std::forward<Token>(token),
                                       [this] { return next_coro(); });
    }
    [[nodiscard]] bool truncated() const noexcept { return truncated_; }

private:
    asio::awaitable<std::optional<std::string>> next_coro();
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
