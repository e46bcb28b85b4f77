// guardian: a forked watcher that kills and removes drover's cgroups if the supervisor dies.
//
// Why a separate process: after SIGKILL the supervisor runs no code at all. Its direct children
// die with it (PR_SET_PDEATHSIG), but grandchildren that double-forked would survive. A pid
// namespace per service would also cover them, but changes what the service sees (it becomes
// PID 1, needs its own /proc); the cgroup already holds the whole tree, so the guardian only
// has to write cgroup.kill once the supervisor is gone.
//
// Between clone3 and _exit the guardian runs only async-signal-safe code: the supervisor may
// have threads, and their locks (malloc's included) may be held forever in the copy.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "drover/process/cgroup.hpp"
#include "drover/sys/syscalls.hpp"

namespace drover {

namespace {

constexpr std::size_t path_max = 4096;

// Fixed-size string building: no allocation in the guardian.
bool join(char (&out)[path_max], const char* a, const char* b) {
    std::size_t la = std::strlen(a), lb = std::strlen(b);
    if (la + 1 + lb + 1 > path_max) return false;
    std::memcpy(out, a, la);
    out[la] = '/';
    std::memcpy(out + la + 1, b, lb + 1);
    return true;
}

void write_text(const char* path, const char* text) {
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)!::write(fd, text, std::strlen(text));
    ::close(fd);
}

// SIGKILLs every pid listed in DIR/cgroup.procs; returns how many were listed.
int kill_listed(const char* dir) {
    char path[path_max];
    if (!join(path, dir, "cgroup.procs")) return 0;
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[8192];
    int count = 0;
    long cur = -1;
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) {
            char c = buf[i];
            if (c >= '0' && c <= '9') {
                cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
            } else if (cur >= 0) {
                int pfd = static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(cur), 0));
                if (pfd >= 0) {
                    ::syscall(SYS_pidfd_send_signal, pfd, SIGKILL, nullptr, 0);
                    ::close(pfd);
                }
                ++count;
                cur = -1;
            }
        }
    }
    ::close(fd);
    return count;
}

// Calls fn(path) for every subdirectory of dir (one level: drover's layout is root/service).
template <class F>
void for_each_subdir(const char* dir, F fn) {
    int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    alignas(8) char buf[8192];
    for (;;) {
        long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct entry {
                unsigned long long ino;
                long long off;
                unsigned short reclen;
                unsigned char type;
                char name[1];
            };
            auto* e = reinterpret_cast<entry*>(buf + off);
            off += e->reclen;
            if (e->type != DT_DIR || e->name[0] == '.') continue;
            char path[path_max];
            if (join(path, dir, e->name)) fn(static_cast<const char*>(path));
        }
    }
    ::close(fd);
}

void sleep_ms(long ms) {
    timespec t{0, ms * 1000000L};
    while (::nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

[[noreturn]] void guardian_main(int alive, const char* const* roots, std::size_t n) {
    // Detach from the terminal's signals: a Ctrl-C that stops the supervisor must not end the
    // guardian first. Only EOF on `alive` (or SIGKILL) ends it.
    ::setsid();
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) ::sigaction(s, &ign, nullptr);
    if (alive > 0) ::syscall(SYS_close_range, 0U, static_cast<unsigned>(alive - 1), 0U);
    ::syscall(SYS_close_range, static_cast<unsigned>(alive + 1), ~0U, 0U);
    char c;
    while (::read(alive, &c, 1) != 0 && errno == EINTR) {}
    // roots[0] is the v2 top when there is one: cgroup.kill there takes every tree at once.
    for (std::size_t i = 0; i < n; ++i) {
        char path[path_max];
        if (join(path, roots[i], "cgroup.kill")) write_text(path, "1");
    }
    for (int round = 0; round < 200; ++round) {
        int left = 0;
        for (std::size_t i = 0; i < n; ++i) {
            for_each_subdir(roots[i], [&](const char* d) {
                left += kill_listed(d);
                if (::rmdir(d) != 0 && errno != ENOENT) ++left;
            });
            if (::rmdir(roots[i]) != 0 && errno != ENOENT) ++left;
        }
        if (left == 0) break;
        sleep_ms(5);
    }
    ::_exit(0);
}

}  // namespace

cgroup_guardian::cgroup_guardian(const std::vector<std::string>& roots) {
    if (roots.empty()) return;
    auto p = sys::pipe();
    if (!p) throw std::system_error(p.error(), "creating the cgroup guardian's pipe");
    // Everything the child reads is prepared here, before clone3.
    std::vector<const char*> raw;
    for (const auto& r : roots) raw.push_back(r.c_str());
    std::error_code ec;
    sys::clone3_args args;
    // No handler of the supervisor's may run in the guardian (it would act on copies of the
    // supervisor's state, and on descriptors it shares, such as Asio's signal pipe).
    args.flags = CLONE_CLEAR_SIGHAND;
    sys::clone3_result r = sys::clone3(args, ec);
    if (ec) throw std::system_error(ec, "starting the cgroup guardian (clone3)");
    if (r.pid == 0) {
        ::close(p->write.get());
        guardian_main(p->read.get(), raw.data(), raw.size());
    }
    pid_ = r.pid;
    pidfd_.reset(r.pidfd);
    alive_ = std::move(p->write);
}

cgroup_guardian::~cgroup_guardian() {
    if (pid_ < 0) return;
    alive_.reset();  // EOF: the guardian cleans up whatever is left and exits
    siginfo_t info{};
    (void)sys::waitid_pidfd(pidfd_.get(), info, WEXITED);
}

}  // namespace drover
