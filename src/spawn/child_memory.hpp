// The memory a child of the clone_method::vm path runs on until execve, kept until it has left.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "plan.hpp"

namespace drover::detail {

/// A child cloned with CLONE_VM but without CLONE_VFORK runs its setup in our memory while the
/// launching thread goes on. It needs a stack, a thread pointer and a launch frame of its own,
/// none of which may be reused before it has left: the kernel says so by zeroing `tid_word`
/// (CLONE_CHILD_CLEARTID) as it releases our memory at execve or exit.
///
/// The thread pointer is a copy of the launching thread's control block and of its static TLS
/// down to errno, placed at the top of the stack mapping: glibc's syscall wrappers store errno
/// relative to it, so the child's failures never land in the launching thread's errno, and the
/// stack-protector canary it reads at %fs:0x28 is the same value.
struct child_memory {
    child_memory() = default;
    child_memory(const child_memory&) = delete;
    child_memory& operator=(const child_memory&) = delete;
    /// Waits until the child has left (only if it was launched and has not yet), then gives
    /// the stack back to the pool.
    ~child_memory();

    /// A stack from the pool with a thread pointer set up at its top; nullptr if none could be
    /// mapped or this thread's TLS has a layout we do not know (then use another path).
    static std::shared_ptr<child_memory> make() noexcept;

    void* map = nullptr;         // the mapping: guard page, stack, TLS copy at the top
    void* stack = nullptr;       // the stack's lowest byte, above the guard page (as clone3 takes it)
    std::size_t stack_size = 0;  // its usable bytes; the top is 16-byte aligned, below the TLS copy
    void* tls = nullptr;         // the child's thread pointer (CLONE_SETTLS)
    launch_frame frame;
    std::vector<int> joins;           // the frame's join_fds, owned here
    std::vector<char*> env;           // the environment's pointers as they were at the clone
    std::shared_ptr<const prepared_data> plan;  // what frame.plan points to
    alignas(8) pid_t tid_word = 0;    // CLONE_CHILD_CLEARTID
    bool launched = false;            // set once clone3 created the child (tid_word armed)

    /// Blocks until the child has left our memory. Bounded by its setup.
    void wait_gone() noexcept;
};

}  // namespace drover::detail
