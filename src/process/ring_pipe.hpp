// ring_pipe: the parent's read end of a child's output pipe kept as an io_uring registered
// (direct) descriptor, outside the descriptor table, read through the ring.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <system_error>

#include <asio/any_io_executor.hpp>

#include "drover/sys/unique_fd.hpp"

namespace drover::detail {

class ring_pipe_service;

/// One read end in the ring of an executor's context. Why: 10,000 children with stdout and
/// stderr piped need 20,000 read ends, past a hard RLIMIT_NOFILE of 20,000 once the pidfds
/// are counted; registered files live in the ring's own table (sized by RLIMIT_NOFILE too,
/// but separately), and the copy of the table each clone3 makes stays small.
///
/// Reads use buffers the ring provides (a shared set of 16 KiB buffers, taken only when data
/// is there), so an idle pipe costs no buffer. Use from the context's thread; one read at a
/// time. Destroying it cancels a pending read (its callback is not run) and unregisters the
/// file, which closes it.
class ring_pipe {
public:
    /// `data` is valid only during the call. EOF: asio::error::eof with no data; a cancelled
    /// read: operation_aborted.
    using read_callback = std::function<void(std::error_code, std::string_view data)>;

    ring_pipe() = default;
    /// Moves `fd` into the ring of `ex`'s context. On failure `ec` says why (ENOSYS: no
    /// io_uring or a kernel without registered buffer rings; EMFILE: the ring's table is
    /// full) and `fd` is left open and untouched.
    ring_pipe(const asio::any_io_executor& ex, sys::unique_fd& fd, std::error_code& ec);
    ring_pipe(ring_pipe&& o) noexcept;
    ring_pipe& operator=(ring_pipe&& o) noexcept;
    ring_pipe(const ring_pipe&) = delete;
    ring_pipe& operator=(const ring_pipe&) = delete;
    ~ring_pipe() { close(); }

    [[nodiscard]] bool is_open() const noexcept { return svc_ != nullptr; }
    /// Starts one read; `done` runs once on the context's thread, from inside the ring's
    /// completion handler. With `nowait` (RWF_NOWAIT) an empty pipe ends the read at once
    /// with std::errc::resource_unavailable_try_again: how a caller learns that a pipe holds
    /// nothing now (a registered descriptor has no FIONREAD).
    void read(read_callback done, bool nowait = false);
    /// Ends a pending read early with operation_aborted.
    void cancel();
    void close() noexcept;

private:
    ring_pipe_service* svc_ = nullptr;
    unsigned slot_ = 0;
};

/// Whether this kernel can keep pipes in a ring (io_uring with sparse registered files and
/// registered buffer rings, Linux >= 5.19), probed once.
bool ring_pipes_supported() noexcept;
/// How many more read ends the ring of `ex`'s context can take now (its table is sized by
/// RLIMIT_NOFILE when first used); 0 where unsupported or the ring could not be made. With
/// `open` false a ring not made yet is not made: the size it would have.
std::size_t ring_pipe_room(const asio::any_io_executor& ex, bool open = true);

}  // namespace drover::detail
