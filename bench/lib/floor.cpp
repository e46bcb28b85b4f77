// The raw floor: the least a program must do to start a child in a set of namespaces, with
// the same setup drover performs, measured the same way. Deliberately uses nothing of drover.
#include "bench/floor.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace drover::bench {

namespace {

std::string errno_text(const char* what, int err) {
    return std::string(what) + ": " + std::strerror(err);
}

bool write_text(const std::string& path, const std::string& text) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

// The child: only raw syscalls on what the parent prepared (async-signal-safe).
[[noreturn]] void floor_child(const floor_plan& p, int sync_fd, char* const* argv) noexcept {
    if (sync_fd >= 0) {
        char go = 0;
        if (::read(sync_fd, &go, 1) != 1) ::_exit(126);
    }
    if (p.make_private && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        ::_exit(120);
    if (p.mount_proc &&
        ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        ::_exit(121);
    if (p.loopback) {
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq req {};
        std::memcpy(req.ifr_name, "lo", 3);
        if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &req) != 0) ::_exit(122);
        req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
        if (::ioctl(s, SIOCSIFFLAGS, &req) != 0) ::_exit(122);
        ::close(s);
    }
    if (!p.exec) ::_exit(0);
    ::execve(argv[0], argv, environ);
    ::_exit(127);
}

const char* child_failure(int code) {
    switch (code) {
        case 120:
            return "making / private";
        case 121:
            return "mounting /proc";
        case 122:
            return "bringing lo up";
        case 126:
            return "waiting for id maps";
        case 127:
            return "execve";
        default:
            return "the workload";
    }
}

}  // namespace

std::int64_t floor_now_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

floor_plan floor_plan::for_flags(std::uint64_t flags, bool exec, std::vector<std::string> argv) {
    floor_plan p;
    p.clone_flags = flags;
    if (flags & CLONE_NEWUSER) {
        p.uid_map = "0 " + std::to_string(::getuid()) + " 1\n";
        p.gid_map = "0 " + std::to_string(::getgid()) + " 1\n";
    }
    p.make_private = (flags & CLONE_NEWNS) != 0;
    p.mount_proc = (flags & CLONE_NEWNS) && (flags & CLONE_NEWPID);
    p.loopback = (flags & CLONE_NEWNET) != 0;
    p.exec = exec;
    p.argv = std::move(argv);
    return p;
}

floor_sample floor_spawn(const floor_plan& p) {
    floor_sample s;
    // argv pointers are built before clone3: the child may not allocate.
    char* argv[16] = {};
    for (std::size_t i = 0; i < p.argv.size() && i < 15; ++i)
        argv[i] = const_cast<char*>(p.argv[i].c_str());

    const std::int64_t start = floor_now_ns();
    const bool user = !p.uid_map.empty();
    int sync[2] = {-1, -1};
    if (user && ::pipe2(sync, O_CLOEXEC) != 0) {
        s.error = errno_text("pipe2", errno);
        return s;
    }
    int pidfd = -1;
    struct clone_args args {};
    args.flags = p.clone_flags | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    const std::int64_t clone_start = floor_now_ns();
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        if (user) ::close(sync[1]);
        floor_child(p, sync[0], argv);
    }
    s.clone_ns = floor_now_ns() - clone_start;
    const int clone_err = errno;
    if (user) ::close(sync[0]);
    if (pid < 0) {
        if (user) ::close(sync[1]);
        s.error = errno_text("clone3", clone_err);
        return s;
    }
    if (user) {
        std::string base = "/proc/" + std::to_string(pid) + "/";
        bool ok = write_text(base + "uid_map", p.uid_map) &&
                  write_text(base + "setgroups", "deny") && write_text(base + "gid_map", p.gid_map);
        if (!ok) s.error = errno_text("writing id maps", errno);
        if (ok) {
            char go = 1;
            (void)!::write(sync[1], &go, 1);
        }
        ::close(sync[1]);  // without the byte the child sees EOF and exits
    }
    siginfo_t info{};
    while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) !=
               0 &&
           errno == EINTR) {
    }
    s.total_ns = floor_now_ns() - start;
    ::close(pidfd);
    if (!s.error.empty()) return s;
    if (info.si_code != CLD_EXITED || info.si_status != 0) {
        s.error = std::string("floor child failed at ") + child_failure(info.si_status);
        return s;
    }
    s.ok = true;
    return s;
}

}  // namespace drover::bench
