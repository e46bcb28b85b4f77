// The little a program without a C library needs on x86-64 (drover_ready_stub; DROVER_NOLIBC):
// system calls, errno, and the memory functions the compiler may call on its own.
#pragma once

#if !defined(__x86_64__)
#error "stub/nolibc.hpp: x86-64 only (elsewhere drover_ready_stub is a static glibc program)"
#endif

#include <cstddef>

namespace drover::detail {

inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f) noexcept {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

// No thread-local storage without a C library to set it up: errno is one plain variable (the
// stub has one thread).
inline int nolibc_errno = 0;

// The go_message.hpp contract: -1 and go_errno() on failure, as glibc's syscall(2).
inline long go_sys(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) noexcept {
    long r = raw_syscall6(nr, a, b, c, d, e, f);
    if (r < 0 && r > -4096) {
        nolibc_errno = static_cast<int>(-r);
        return -1;
    }
    return r;
}
inline int go_errno() noexcept { return nolibc_errno; }

}  // namespace drover::detail
