// exit_waiter: how process::wait() learns of a child's exit — IORING_OP_WAITID on a ring of
// drover's own (kernel >= 6.7), or the pidfd polled on the event loop — chosen at run time.
#pragma once

#include <signal.h>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>
#include <system_error>

namespace drover {

/// The two ways to await an exit.
enum class exit_wait_method : unsigned char {
    poll,    ///< pidfd readable on the event loop, then waitid(P_PIDFD, WNOHANG)
    /// IORING_OP_WAITID(P_PIDFD, WEXITED) on a per-io_context ring: waits and reaps. The
    /// kernel reaps at exit, before the completion is seen: a signal sent in between gets
    /// ESRCH (with poll the child stays a zombie until wait() runs).
    waitid,
};

/// "poll" or "waitid".
std::string_view exit_wait_method_name(exit_wait_method m) noexcept;

/// Whether this kernel and build can use IORING_OP_WAITID: drover was built with liburing,
/// io_uring is not disabled (sysctl kernel.io_uring_disabled) and IORING_REGISTER_PROBE lists
/// the opcode (Linux 6.7). Probed once per process; thread-safe.
bool uring_waitid_supported() noexcept;

/// The method process::wait() uses: a method forced with force_exit_wait_method(), else the
/// environment variable DROVER_EXIT_WAIT=poll|waitid, else poll. Asking for waitid where it
/// is unsupported gives poll. Poll is the default because it measured faster at every scale
/// (a spawn's exit ~10 µs sooner; at thousands live, every pending WAITID also lengthens the
/// kernel's walk of the parent's one child-exit wait queue at each exit: docs/scale.md).
exit_wait_method exit_wait_method_in_use() noexcept;

/// The method a wait starting now on `ex` uses (today the same for every context).
exit_wait_method exit_wait_method_for(const asio::any_io_executor& ex) noexcept;

/// Process-wide switch for tests and benchmarks; nullopt restores the automatic choice.
/// Affects waits that start afterwards.
void force_exit_wait_method(std::optional<exit_wait_method> m) noexcept;

namespace detail {

/// The outcome of one IORING_OP_WAITID: the child's siginfo, or an error (ECANCELED comes
/// back as asio::error::operation_aborted).
struct waitid_outcome {
    std::error_code error;
    siginfo_t info{};
};

/// Waits for the exit of `pidfd`'s child and reaps it, with IORING_OP_WAITID on the ring that
/// belongs to `ex`'s execution context (created on first use; its eventfd is awaited by the
/// context as a stream descriptor). Honours per-operation cancellation (e.g. awaitable
/// operators' `||`): the kernel request is cancelled with IORING_OP_ASYNC_CANCEL. The pidfd
/// must stay open until this completes.
asio::awaitable<waitid_outcome> uring_waitid(asio::any_io_executor ex, int pidfd);

/// Callback form of uring_waitid(): `done` runs once on `ex`.
using waitid_callback = std::function<void(std::error_code, const siginfo_t&)>;
void uring_waitid_start(const asio::any_io_executor& ex, int pidfd, waitid_callback done);

/// Number of IORING_OP_WAITID requests in flight on `ex`'s ring (for tests).
std::size_t uring_waitid_pending(const asio::any_io_executor& ex);

}  // namespace detail

}  // namespace drover
