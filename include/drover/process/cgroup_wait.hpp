// Waiting for a cgroup to empty and removing it without blocking the event loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <system_error>

#include "drover/process/cgroup.hpp"

namespace drover {

/// Waits until no process is left in `cg` or `limit` passes; true if it emptied. With cgroup
/// v2 the wait is on cgroup.events through inotify (the kernel notifies when "populated"
/// changes); a v1-only cgroup is polled on a timer. The loop runs other work meanwhile.
asio::awaitable<bool> async_wait_empty(const service_cgroup& cg, std::chrono::nanoseconds limit);

/// async_wait_empty, then removes the directories, retrying EBUSY (the kernel may still count
/// a process that has just exited) on a timer until `limit`. Returns the last error.
asio::awaitable<std::error_code> async_remove(service_cgroup& cg, std::chrono::nanoseconds limit);

/// Hands `cg` to a coroutine on `ex` that removes it (async_remove, 2 s); what is left after
/// that goes when the object is destroyed (blocking, bounded) or with the cgroup_tree.
void retire(asio::any_io_executor ex, std::unique_ptr<service_cgroup> cg);

}  // namespace drover
