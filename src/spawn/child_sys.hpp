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
/// _exit without a sanitizer's interceptor: TSan's runs its finalizer, whose locks another
/// thread of the parent may have held at the clone3 (a child that exits, like the entry of a
/// warm set, then hangs).
[[noreturn]] inline void raw_exit(int code) noexcept {
    ::syscall(SYS_exit_group, code);
    __builtin_unreachable();
}

}  // namespace drover::detail
