// The raw floors: the least a program must do to start a child in a set of namespaces,
// measured the same way drover is. Deliberately uses nothing of drover.
#include "bench/floor.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
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

// Async-signal-safe: what a vfork child may call.
bool write_own(const char* path, const std::string& text) noexcept {
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

enum exit_code : int {
    private_failed = 120,
    proc_failed = 121,
    lo_failed = 122,
    maps_failed = 123,
    time_failed = 124,
    sync_failed = 126,
    exec_failed = 127,
};

// The namespaces' setup and the workload: only raw syscalls on what the parent prepared.
[[noreturn]] void floor_child(const floor_plan& p, char* const* argv) noexcept {
    if (p.make_private && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        ::_exit(private_failed);
    if (p.mount_proc &&
        ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        ::_exit(proc_failed);
    if (p.loopback) {
        int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq req {};
        std::memcpy(req.ifr_name, "lo", 3);
        if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &req) != 0) ::_exit(lo_failed);
        req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
        if (::ioctl(s, SIOCSIFFLAGS, &req) != 0) ::_exit(lo_failed);
        ::close(s);
    }
    if (!p.exec) ::_exit(0);
    ::execve(argv[0], argv, environ);
    ::_exit(exec_failed);
}

const char* child_failure(int code) {
    switch (code) {
        case private_failed:
            return "making / private";
        case proc_failed:
            return "mounting /proc";
        case lo_failed:
            return "bringing lo up";
        case maps_failed:
            return "writing its own id maps";
        case time_failed:
            return "unsharing a time namespace";
        case sync_failed:
            return "waiting for id maps";
        case exec_failed:
            return "execve";
        default:
            return "the workload";
    }
}

// What the vfork child runs on: it borrows our memory but needs a stack of its own.
struct vfork_arg {
    const floor_plan* plan;
    char* const* argv;
};

int vfork_child(void* raw) noexcept {
    auto* a = static_cast<vfork_arg*>(raw);
    const floor_plan& p = *a->plan;
    // The default maps are ones a process may write for itself (user_namespaces(7)).
    if (!p.uid_map.empty() &&
        (!write_own("/proc/self/uid_map", p.uid_map) || !write_own("/proc/self/setgroups", "deny") ||
         !write_own("/proc/self/gid_map", p.gid_map)))
        ::_exit(maps_failed);
    // For its future self: entered at execve, in the new program's memory, not ours.
    if ((p.clone_flags & CLONE_NEWTIME) && ::unshare(CLONE_NEWTIME) != 0) ::_exit(time_failed);
    floor_child(p, a->argv);
}

void* vfork_stack_top() noexcept {
    static constexpr std::size_t size = 128 * 1024;
    static void* top = [] () -> void* {
        void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        return m == MAP_FAILED ? nullptr : static_cast<char*>(m) + size;
    }();
    return top;
}

// Reaps the child; returns its wait status as siginfo.
siginfo_t reap(int pidfd) {
    siginfo_t info{};
    while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) != 0 &&
           errno == EINTR) {
    }
    return info;
}

void finish(floor_sample& s, const siginfo_t& info) {
    if (!s.error.empty()) return;
    if (info.si_code != CLD_EXITED || info.si_status != 0) {
        s.error = std::string("floor child failed at ") + child_failure(info.si_status);
        return;
    }
    s.ok = true;
}

floor_sample spawn_vfork(const floor_plan& p, char* const* argv) {
    floor_sample s;
    void* stack = vfork_stack_top();
    if (!stack) {
        s.error = errno_text("mmap (stack)", errno);
        return s;
    }
    vfork_arg arg{&p, argv};
    int pidfd = -1;
    const std::int64_t start = floor_now_ns();
    // CLONE_NEWTIME shares its bit with clone(2)'s exit signal: the child unshares it.
    const int flags = static_cast<int>(p.clone_flags & ~static_cast<std::uint64_t>(CLONE_NEWTIME));
    int pid = ::clone(vfork_child, stack, flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD,
                      &arg, &pidfd);
    s.clone_ns = floor_now_ns() - start;
    if (pid < 0) {
        s.error = errno_text("clone", errno);
        return s;
    }
    siginfo_t info = reap(pidfd);
    s.total_ns = floor_now_ns() - start;
    ::close(pidfd);
    finish(s, info);
    return s;
}

floor_sample spawn_fork(const floor_plan& p, char* const* argv) {
    floor_sample s;
    const std::int64_t start = floor_now_ns();
    const bool maps = !p.uid_map.empty();
    int sync[2] = {-1, -1};
    if (maps && ::pipe2(sync, O_CLOEXEC) != 0) {
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
        if (maps) {
            ::close(sync[1]);
            char go = 0;
            if (::read(sync[0], &go, 1) != 1) ::_exit(sync_failed);
        }
        floor_child(p, argv);
    }
    s.clone_ns = floor_now_ns() - clone_start;
    const int clone_err = errno;
    if (maps) ::close(sync[0]);
    if (pid < 0) {
        if (maps) ::close(sync[1]);
        s.error = errno_text("clone3", clone_err);
        return s;
    }
    if (maps) {
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
    siginfo_t info = reap(pidfd);
    s.total_ns = floor_now_ns() - start;
    ::close(pidfd);
    finish(s, info);
    return s;
}

}  // namespace

bool floor_vfork_available() noexcept {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
    return false;
#else
    return true;
#endif
#else
    return true;
#endif
}

std::string_view floor_method_name(floor_method m) noexcept {
    return m == floor_method::vfork ? "vfork" : "fork";
}

std::int64_t floor_now_ns() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

// The state letter of /proc/PID/task/TID/stat, or 0 if it cannot be read (the task is gone).
char task_state(pid_t pid, pid_t tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid), static_cast<int>(tid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    // "TID (COMM) S ...": COMM may hold spaces and parentheses, so the state follows the last ')'.
    const char* close = std::strrchr(buf, ')');
    return close && close[1] == ' ' ? close[2] : 0;
}

}  // namespace

bool floor_wait_asleep(pid_t pid, pid_t tid) noexcept {
    if (pid <= 0 || tid <= 0) return false;
    for (int i = 0; i < 1000; ++i) {
        char st = task_state(pid, tid);
        if (st == 0) return false;
        if (st != 'R') return true;
        ::sched_yield();
    }
    return false;
}

floor_plan floor_plan::make(std::uint64_t flags, floor_method method, bool setup, bool exec,
                            std::vector<std::string> argv) {
    floor_plan p;
    p.clone_flags = flags;
    p.method = !floor_vfork_available() ? floor_method::fork : method;
    p.setup = setup;
    if (setup && (flags & CLONE_NEWUSER)) {
        p.uid_map = "0 " + std::to_string(::getuid()) + " 1\n";
        p.gid_map = "0 " + std::to_string(::getgid()) + " 1\n";
    }
    p.make_private = setup && (flags & CLONE_NEWNS);
    p.mount_proc = setup && (flags & CLONE_NEWNS) && (flags & CLONE_NEWPID);
    p.loopback = setup && (flags & CLONE_NEWNET);
    p.exec = exec;
    p.argv = std::move(argv);
    return p;
}

floor_sample floor_spawn(const floor_plan& p) {
    // argv pointers are built before the clone: the child may not allocate.
    char* argv[16] = {};
    for (std::size_t i = 0; i < p.argv.size() && i < 15; ++i)
        argv[i] = const_cast<char*>(p.argv[i].c_str());
    return p.method == floor_method::vfork ? spawn_vfork(p, argv) : spawn_fork(p, argv);
}

floor_loop_result floor_loop(const floor_plan& p, std::int64_t start_ns, std::int64_t end_ns) {
    floor_loop_result r;
    const timespec at{static_cast<time_t>(start_ns / 1'000'000'000), static_cast<long>(start_ns % 1'000'000'000)};
    int err = 0;
    while ((err = ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr)) == EINTR) {
    }
    if (err != 0) {
        r.error = errno_text("clock_nanosleep (waiting for the start)", err);
        return r;
    }
    r.ok = true;
    std::int64_t now = floor_now_ns();
    while (now < end_ns) {
        floor_sample s = floor_spawn(p);
        now = floor_now_ns();
        if (s.ok) {
            ++r.spawns;
            continue;
        }
        if (r.failures++ == 0) r.error = s.error;
        if (r.spawns == 0 && r.failures >= 1000) break;
    }
    r.finish_ns = now;
    return r;
}

namespace {

struct name_flag {
    std::string_view name;
    std::uint64_t flag;
};
constexpr name_flag ns_table[] = {{"user", CLONE_NEWUSER},     {"pid", CLONE_NEWPID},
                                  {"mnt", CLONE_NEWNS},        {"uts", CLONE_NEWUTS},
                                  {"ipc", CLONE_NEWIPC},       {"net", CLONE_NEWNET},
                                  {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}};

}  // namespace

bool parse_floor_namespaces(std::string_view text, std::uint64_t& flags) {
    flags = 0;
    if (text == "none") return true;
    std::size_t begin = 0;
    while (begin <= text.size()) {
        std::size_t end = std::min(text.find_first_of(",+", begin), text.size());
        std::string_view part = text.substr(begin, end - begin);
        auto it = std::find_if(std::begin(ns_table), std::end(ns_table),
                               [part](const name_flag& nf) { return nf.name == part; });
        if (it == std::end(ns_table)) return false;
        flags |= it->flag;
        begin = end + 1;
    }
    return true;
}

std::string floor_namespace_names(std::uint64_t flags) {
    std::string out;
    for (const name_flag& nf : ns_table)
        if (flags & nf.flag) (out += out.empty() ? "" : "+") += nf.name;
    return out.empty() ? "none" : out;
}

}  // namespace drover::bench
