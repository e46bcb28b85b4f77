// Thin wrappers over the Linux syscalls drover needs: one function per call, no policy.
//
// Each returns 0 / a value on success or a std::error_code carrying errno. Nothing here logs,
// allocates or holds state, so the functions that say "async-signal-safe" may be called in a
// child between clone3 and execve. Calls that glibc 2.36 lacks go through syscall(2); on a
// kernel without them the error is ENOSYS.
#pragma once

#include <linux/sched.h>  // struct clone_args, CLONE_* (kernel >= 5.3 headers)
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cstddef>
#include <cstdint>
#include <system_error>

#include "drover/sys/result.hpp"
#include "drover/sys/unique_fd.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace drover::sys {

/// Arguments for clone3 in the fields drover uses; translated to struct clone_args.
struct clone3_args {
    std::uint64_t flags = 0;       ///< CLONE_* flags; CLONE_PIDFD is added by clone3().
    int exit_signal = SIGCHLD;     ///< signal to the parent at exit; SIGCHLD keeps waitid simple
    int cgroup_fd = -1;            ///< with CLONE_INTO_CGROUP: a cgroup v2 directory fd
    /// With CLONE_PARENT_SETTID: where the kernel stores the child's pid before the child runs.
    pid_t* parent_tid = nullptr;
    /// clone3_vm only. Without it the child runs while the caller goes on (no CLONE_VFORK);
    /// then `tls` (the child's thread pointer, CLONE_SETTLS) and `child_tid` (CLONE_CHILD_CLEARTID:
    /// the kernel zeroes it and futex-wakes its waiters once the child has left the shared
    /// memory, at execve or exit) are what make that safe.
    bool wait_for_exec = true;
    void* tls = nullptr;
    pid_t* child_tid = nullptr;
};

/// What clone3 gives the parent: the child's pid (0 in the child) and its pidfd.
struct clone3_result {
    pid_t pid = -1;
    int pidfd = -1;  ///< raw: the caller wraps it in unique_fd (the child must not own one)
};

/// clone3(2) with CLONE_PIDFD, fork-style (no CLONE_VM, no new stack). In the child,
/// `pid` is 0 and only async-signal-safe code may follow. The pidfd is close-on-exec.
clone3_result clone3(const clone3_args& args, std::error_code& ec) noexcept;

/// Whether clone3_vm() exists on this architecture (x86-64).
bool clone3_vm_supported() noexcept;

/// clone3(2) with CLONE_PIDFD | CLONE_VM | CLONE_VFORK, posix_spawn-style: the child shares
/// the parent's memory, runs `fn(arg)` on `stack` (16-byte aligned; `fn` must execve or
/// _exit, never return) while the calling thread is suspended until the child has called
/// execve or exited. No page tables are copied and no page becomes copy-on-write, so the
/// cost does not grow with the parent's memory. Only the child's pid is returned in it (the
/// call does not return there). ENOSYS where unsupported. With args.wait_for_exec false the
/// call returns at once and the caller must keep `stack` (and whatever the child reads) until
/// args.child_tid reads 0.
clone3_result clone3_vm(const clone3_args& args, void* stack, std::size_t stack_size, void (*fn)(void*),
                        void* arg, std::error_code& ec) noexcept;

/// pidfd_open(2): a close-on-exec pidfd for an existing child.
result<unique_fd> pidfd_open(pid_t pid, unsigned flags = 0) noexcept;

/// pidfd_send_signal(2): signal the process the pidfd refers to (never reused, unlike pids).
std::error_code pidfd_send_signal(int pidfd, int sig) noexcept;

/// waitid(P_PIDFD, pidfd, info, options). With WNOHANG and no change, info.si_pid is 0.
std::error_code waitid_pidfd(int pidfd, siginfo_t& info, int options) noexcept;

/// setns(2). Async-signal-safe.
std::error_code setns(int fd, int nstype) noexcept;

/// unshare(2). Async-signal-safe.
std::error_code unshare(int flags) noexcept;

/// mount(2). Async-signal-safe.
std::error_code mount(const char* source, const char* target, const char* fstype,
                      unsigned long flags, const void* data) noexcept;

/// umount2(2). Async-signal-safe.
std::error_code umount2(const char* target, int flags) noexcept;

/// pivot_root(2). Async-signal-safe.
std::error_code pivot_root(const char* new_root, const char* put_old) noexcept;

/// close_range(2); with CLOSE_RANGE_CLOEXEC marks instead of closing. Async-signal-safe.
std::error_code close_range(unsigned first, unsigned last, unsigned flags) noexcept;

/// mount_setattr(2) (Linux >= 5.12): sets and clears MOUNT_ATTR_* on the mount at `path`
/// (relative to `dirfd`), with AT_RECURSIVE in `flags` on every mount below it too.
/// Async-signal-safe (raw syscall, no errno: the error is returned).
std::error_code mount_setattr(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                              std::uint64_t attr_clr) noexcept;

/// The credential calls as raw syscalls. glibc's setresuid/setresgid/setgroups wrappers
/// broadcast the change to every thread of the process (setxid), which in a CLONE_VM child
/// would reach the parent's threads; these change only the calling task. Async-signal-safe.
std::error_code setresuid_raw(uid_t r, uid_t e, uid_t s) noexcept;
std::error_code setresgid_raw(gid_t r, gid_t e, gid_t s) noexcept;
std::error_code setgroups_raw(std::size_t n, const gid_t* groups) noexcept;

/// capset(2) of the calling task: effective, permitted and inheritable sets as 64-bit masks
/// over CAP_* numbers. Async-signal-safe.
std::error_code capset(std::uint64_t effective, std::uint64_t permitted, std::uint64_t inheritable) noexcept;

/// capget(2) of the calling task (or of `pid`).
std::error_code capget(std::uint64_t& effective, std::uint64_t& permitted, std::uint64_t& inheritable,
                       pid_t pid = 0) noexcept;

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog) for the calling task. `prog` points to a
/// struct sock_fprog. Async-signal-safe.
std::error_code seccomp_set_filter(const void* prog) noexcept;

/// waitid(P_PIDFD, …) that also returns the resource usage of the reaped child (the raw
/// syscall's fifth argument, which glibc's waitid does not expose).
std::error_code waitid_pidfd(int pidfd, siginfo_t& info, int options, struct rusage* usage) noexcept;

/// Writes `len` bytes to the file at `path` in one write(2), as kernel files (cgroup, /proc)
/// take a value; open and write are retried on EINTR (a signal, or io_uring's task work,
/// interrupts them on some kernel files). EIO if the write was short.
std::error_code write_file(const char* path, const void* data, std::size_t len) noexcept;

/// pipe2(2) with O_CLOEXEC always added: {read end, write end}.
struct pipe_fds {
    unique_fd read;
    unique_fd write;
};
result<pipe_fds> pipe(int extra_flags = 0) noexcept;

/// Reads the monotonic clock in nanoseconds (vDSO; async-signal-safe).
std::int64_t monotonic_ns() noexcept;

}  // namespace drover::sys
