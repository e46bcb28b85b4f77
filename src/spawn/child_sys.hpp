// Raw system calls for the child between clone3 and execve (child.cpp, child_fs.cpp).
//
// glibc's read, write, open, close, pread and fcntl are cancellation points: they switch the
// calling thread's cancellation type in its thread control block around the call. On the
// posix_spawn-style path the child runs on the parent thread's TCB (CLONE_VM, same thread
// pointer), so those writes land in the parent thread's state. syscall(2) is a plain trap, as
// glibc's own posix_spawn child uses; it still sets errno (the parent thread's, which the
// parent does not read after a successful clone3).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

namespace drover::detail {

inline ssize_t raw_read(int fd, void* buf, std::size_t n) noexcept { return ::syscall(SYS_read, fd, buf, n); }
inline ssize_t raw_write(int fd, const void* buf, std::size_t n) noexcept { return ::syscall(SYS_write, fd, buf, n); }
inline ssize_t raw_pread(int fd, void* buf, std::size_t n, off_t off) noexcept {
    return ::syscall(SYS_pread64, fd, buf, n, off);
}
inline int raw_open(const char* path, int flags, mode_t mode = 0) noexcept {
    return static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, flags, mode));
}
inline int raw_close(int fd) noexcept { return static_cast<int>(::syscall(SYS_close, fd)); }
inline int raw_fcntl(int fd, int cmd, long arg = 0) noexcept { return static_cast<int>(::syscall(SYS_fcntl, fd, cmd, arg)); }
/// dup2 as the kernel's dup3: a sanitizer's dup2 records the new descriptor's creation stack,
/// which can need memory an RLIMIT_AS already set in the child refuses (TSan died so).
/// The caller handles source == target, which dup3 refuses.
inline int raw_dup3(int from, int to) noexcept { return static_cast<int>(::syscall(SYS_dup3, from, to, 0)); }
inline int raw_execveat(int dirfd, const char* path, char* const* argv, char* const* envp, int flags) noexcept {
    return static_cast<int>(::syscall(SYS_execveat, dirfd, path, argv, envp, flags));
}
inline int raw_socket(int domain, int type, int protocol) noexcept {
    return static_cast<int>(::syscall(SYS_socket, domain, type, protocol));
}
inline int raw_ioctl(int fd, unsigned long request, void* arg) noexcept {
    return static_cast<int>(::syscall(SYS_ioctl, fd, request, arg));
}
/// Restores a signal's default action. An all-zero kernel sigaction is SIG_DFL with no flags
/// and an empty mask on every architecture, whatever its field order.
inline int raw_signal_default(int sig) noexcept {
    unsigned long kernel_sigaction[4] = {};
    return static_cast<int>(::syscall(SYS_rt_sigaction, sig, kernel_sigaction, nullptr, 8));
}
/// Unblocks every signal (the kernel's sigset is 8 bytes).
inline int raw_unblock_all_signals() noexcept {
    unsigned long long none = 0;
    return static_cast<int>(::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, 8));
}
/// prctl, past a sanitizer's interceptor like the calls above.
inline int raw_prctl(int option, unsigned long a2 = 0, unsigned long a3 = 0, unsigned long a4 = 0,
                     unsigned long a5 = 0) noexcept {
    return static_cast<int>(::syscall(SYS_prctl, option, a2, a3, a4, a5));
}
/// Adds one signal to the blocked set.
inline int raw_block_signal(int sig) noexcept {
    unsigned long long one = 1ULL << (sig - 1);
    return static_cast<int>(::syscall(SYS_rt_sigprocmask, SIG_BLOCK, &one, nullptr, 8));
}
/// _exit without a sanitizer's interceptor: TSan's runs its finalizer, whose locks another
/// thread of the parent may have held at the clone3 (a child that exits, like the entry of a
/// warm set, then hangs).
[[noreturn]] inline void raw_exit(int code) noexcept {
    ::syscall(SYS_exit_group, code);
    __builtin_unreachable();
}

}  // namespace drover::detail
