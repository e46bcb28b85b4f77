// Thin syscall wrappers; see include/drover/sys/syscalls.hpp.
#include "drover/sys/syscalls.hpp"
#include "drover/sys/fault.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace drover::sys {

namespace {
std::error_code check(long rc) noexcept { return rc < 0 ? last_error() : std::error_code{}; }
}  // namespace

clone3_result clone3(const clone3_args& args, std::error_code& ec) noexcept {
    int pidfd = -1;
    struct clone_args ca;
    std::memset(&ca, 0, sizeof ca);
    ca.flags = args.flags | CLONE_PIDFD;
    ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    ca.exit_signal = static_cast<std::uint64_t>(args.exit_signal);
    if (args.cgroup_fd >= 0) {
        ca.flags |= CLONE_INTO_CGROUP;
        ca.cgroup = static_cast<std::uint64_t>(args.cgroup_fd);
    }
    if (args.parent_tid) {
        ca.flags |= CLONE_PARENT_SETTID;
        ca.parent_tid = reinterpret_cast<std::uint64_t>(args.parent_tid);
    }
    // The size is the kernel's CLONE_ARGS_SIZE_VER2 when cgroup is used, VER0 otherwise, so
    // that kernels 5.3..5.6 accept plain calls.
    std::size_t size = args.cgroup_fd >= 0 ? sizeof ca : 64;
    if (int e = injected_fault(fault_site::clone3)) {
        ec = errno_code(e);
        return {};
    }
    long rc = ::syscall(SYS_clone3, &ca, size);
    if (rc < 0) {
        ec = last_error();
        return {};
    }
    ec.clear();
    return {static_cast<pid_t>(rc), rc == 0 ? -1 : pidfd};
}

#if defined(__x86_64__)

bool clone3_vm_supported() noexcept { return true; }

namespace {

// The raw call: on return in the child the kernel has switched to the new stack, so the
// child may not return through any frame of ours; it calls fn(arg) straight from here. fn and
// arg ride in r12 and r13, which the syscall preserves.
long clone3_raw_vm(struct clone_args* ca, std::size_t size, void (*fn)(void*), void* arg) noexcept {
    long ret;
    register void (*r12)(void*) asm("r12") = fn;
    register void* r13 asm("r13") = arg;
    asm volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xor %%ebp, %%ebp\n\t"
        "mov %%r13, %%rdi\n\t"
        "call *%%r12\n\t"
        "ud2\n"
        "1:\n\t"
        : "=a"(ret)
        : "0"(static_cast<long>(SYS_clone3)), "D"(ca), "S"(size), "r"(r12), "r"(r13)
        : "rcx", "r11", "memory");
    return ret;
}

}  // namespace

clone3_result clone3_vm(const clone3_args& args, void* stack, std::size_t stack_size, void (*fn)(void*),
                        void* arg, std::error_code& ec) noexcept {
    int pidfd = -1;
    struct clone_args ca;
    std::memset(&ca, 0, sizeof ca);
    ca.flags = args.flags | CLONE_PIDFD | CLONE_VM | (args.wait_for_exec ? CLONE_VFORK : 0);
    if (args.tls) {
        ca.flags |= CLONE_SETTLS;
        ca.tls = reinterpret_cast<std::uint64_t>(args.tls);
    }
    if (args.child_tid) {
        ca.flags |= CLONE_CHILD_CLEARTID;
        ca.child_tid = reinterpret_cast<std::uint64_t>(args.child_tid);
    }
    ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    ca.exit_signal = static_cast<std::uint64_t>(args.exit_signal);
    ca.stack = reinterpret_cast<std::uint64_t>(stack);
    ca.stack_size = stack_size;
    if (args.cgroup_fd >= 0) {
        ca.flags |= CLONE_INTO_CGROUP;
        ca.cgroup = static_cast<std::uint64_t>(args.cgroup_fd);
    }
    if (args.parent_tid) {
        ca.flags |= CLONE_PARENT_SETTID;
        ca.parent_tid = reinterpret_cast<std::uint64_t>(args.parent_tid);
    }
    std::size_t size = args.cgroup_fd >= 0 ? sizeof ca : 64;
    if (int e = injected_fault(fault_site::clone3)) {
        ec = errno_code(e);
        return {};
    }
    long rc = clone3_raw_vm(&ca, size, fn, arg);
    if (rc < 0) {
        ec = errno_code(static_cast<int>(-rc));
        return {};
    }
    ec.clear();
    return {static_cast<pid_t>(rc), pidfd};
}

#else

bool clone3_vm_supported() noexcept { return false; }

clone3_result clone3_vm(const clone3_args&, void*, std::size_t, void (*)(void*), void*,
                        std::error_code& ec) noexcept {
    ec = errno_code(ENOSYS);
    return {};
}

#endif

result<unique_fd> pidfd_open(pid_t pid, unsigned flags) noexcept {
    long rc = ::syscall(SYS_pidfd_open, pid, flags);
    if (rc < 0) return last_error();
    return unique_fd(static_cast<int>(rc));
}

std::error_code pidfd_send_signal(int pidfd, int sig) noexcept {
    return check(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

std::error_code waitid_pidfd(int pidfd, siginfo_t& info, int options) noexcept {
    std::memset(&info, 0, sizeof info);
    int rc;
    do {
        rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, options);
    } while (rc < 0 && errno == EINTR);
    return check(rc);
}

std::error_code waitid_pidfd(int pidfd, siginfo_t& info, int options, struct rusage* usage) noexcept {
    std::memset(&info, 0, sizeof info);
    long rc;
    do {
        rc = ::syscall(SYS_waitid, P_PIDFD, pidfd, &info, options, usage);
    } while (rc < 0 && errno == EINTR);
    return check(rc);
}

std::error_code setns(int fd, int nstype) noexcept { return check(::setns(fd, nstype)); }

std::error_code unshare(int flags) noexcept { return check(::unshare(flags)); }

std::error_code mount(const char* source, const char* target, const char* fstype,
                      unsigned long flags, const void* data) noexcept {
    return check(::mount(source, target, fstype, flags, data));
}

std::error_code umount2(const char* target, int flags) noexcept {
    return check(::umount2(target, flags));
}

std::error_code pivot_root(const char* new_root, const char* put_old) noexcept {
    return check(::syscall(SYS_pivot_root, new_root, put_old));
}

std::error_code close_range(unsigned first, unsigned last, unsigned flags) noexcept {
    return check(::syscall(SYS_close_range, first, last, flags));
}

namespace {
// A raw syscall that returns -errno instead of touching errno (the caller's thread-local
// errno is the parent thread's in a CLONE_VM child).
long raw(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0) noexcept {
#if defined(__x86_64__)
    long ret;
    register long r10 asm("r10") = a4;
    register long r8 asm("r8") = a5;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
                 : "rcx", "r11", "memory");
    return ret;
#else
    long rc = ::syscall(nr, a1, a2, a3, a4, a5);
    return rc < 0 ? -errno : rc;
#endif
}

std::error_code check_raw(long rc) noexcept {
    return rc < 0 ? errno_code(static_cast<int>(-rc)) : std::error_code{};
}

// struct mount_attr (linux/mount.h, 5.12); glibc 2.36's headers clash with linux/mount.h.
struct mount_attr_v0 {
    std::uint64_t attr_set;
    std::uint64_t attr_clr;
    std::uint64_t propagation;
    std::uint64_t userns_fd;
};
}  // namespace

std::error_code mount_setattr(int dirfd, const char* path, unsigned flags, std::uint64_t attr_set,
                              std::uint64_t attr_clr) noexcept {
    mount_attr_v0 attr{attr_set, attr_clr, 0, 0};
    return check_raw(raw(SYS_mount_setattr, dirfd, reinterpret_cast<long>(path), flags,
                         reinterpret_cast<long>(&attr), sizeof attr));
}

std::error_code setresuid_raw(uid_t r, uid_t e, uid_t s) noexcept {
    return check_raw(raw(SYS_setresuid, r, e, s));
}

std::error_code setresgid_raw(gid_t r, gid_t e, gid_t s) noexcept {
    return check_raw(raw(SYS_setresgid, r, e, s));
}

std::error_code setgroups_raw(std::size_t n, const gid_t* groups) noexcept {
    return check_raw(raw(SYS_setgroups, static_cast<long>(n), reinterpret_cast<long>(groups)));
}

std::error_code capset(std::uint64_t effective, std::uint64_t permitted, std::uint64_t inheritable) noexcept {
    __user_cap_header_struct head{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {
        {static_cast<std::uint32_t>(effective), static_cast<std::uint32_t>(permitted),
         static_cast<std::uint32_t>(inheritable)},
        {static_cast<std::uint32_t>(effective >> 32), static_cast<std::uint32_t>(permitted >> 32),
         static_cast<std::uint32_t>(inheritable >> 32)}};
    return check_raw(raw(SYS_capset, reinterpret_cast<long>(&head), reinterpret_cast<long>(data)));
}

std::error_code capget(std::uint64_t& effective, std::uint64_t& permitted, std::uint64_t& inheritable,
                       pid_t pid) noexcept {
    __user_cap_header_struct head{_LINUX_CAPABILITY_VERSION_3, pid};
    __user_cap_data_struct data[2] = {};
    if (auto ec = check_raw(raw(SYS_capget, reinterpret_cast<long>(&head), reinterpret_cast<long>(data))))
        return ec;
    effective = data[0].effective | (std::uint64_t(data[1].effective) << 32);
    permitted = data[0].permitted | (std::uint64_t(data[1].permitted) << 32);
    inheritable = data[0].inheritable | (std::uint64_t(data[1].inheritable) << 32);
    return {};
}

std::error_code seccomp_set_filter(const void* prog) noexcept {
    return check_raw(raw(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, reinterpret_cast<long>(prog)));
}

std::error_code write_file(const char* path, const void* data, std::size_t len) noexcept {
    int fd;
    do fd = ::open(path, O_WRONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return last_error();
    unique_fd owner(fd);
    ssize_t n;
    do n = ::write(fd, data, len);
    while (n < 0 && errno == EINTR);
    if (n < 0) return last_error();
    if (static_cast<std::size_t>(n) != len) return errno_code(EIO);
    return {};
}

result<pipe_fds> pipe(int extra_flags) noexcept {
    int fds[2];
    if (int e = injected_fault(fault_site::pipe2)) return errno_code(e);
    if (::pipe2(fds, O_CLOEXEC | extra_flags) < 0) return last_error();
    return pipe_fds{unique_fd(fds[0]), unique_fd(fds[1])};
}

std::int64_t monotonic_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace drover::sys
