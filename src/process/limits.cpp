// Reading and raising the limits that bound mass spawning: RLIMIT_NOFILE, RLIMIT_NPROC,
// pid_max, threads-max, and this process's open descriptor count.
#include "drover/process/limits.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "drover/sys/result.hpp"

namespace drover {

namespace {

long read_long_file(const char* path) noexcept {
    std::FILE* f = std::fopen(path, "re");
    if (!f) return 0;
    long v = 0;
    if (std::fscanf(f, "%ld", &v) != 1) v = 0;
    std::fclose(f);
    return v;
}

// /proc/loadavg: "0.00 0.01 0.05 2/345 6789": the 4th field's denominator counts all tasks.
long read_task_count() noexcept {
    std::FILE* f = std::fopen("/proc/loadavg", "re");
    if (!f) return 0;
    double a, b, c;
    long running = 0, total = 0;
    if (std::fscanf(f, "%lf %lf %lf %ld/%ld", &a, &b, &c, &running, &total) != 5) total = 0;
    std::fclose(f);
    return total;
}

}  // namespace

nofile_change raise_nofile_limit(rlim_t want_hard) noexcept {
    nofile_change c;
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        c.error = sys::last_error();
        return c;
    }
    c.soft_before = c.soft = lim.rlim_cur;
    c.hard_before = c.hard = lim.rlim_max;
    if (want_hard != 0 && lim.rlim_max != RLIM_INFINITY && want_hard > lim.rlim_max) {
        // The kernel refuses a hard limit above fs.nr_open with EPERM even for root.
        long nr_open = read_long_file("/proc/sys/fs/nr_open");
        rlim_t target = nr_open > 0 ? std::min<rlim_t>(want_hard, static_cast<rlim_t>(nr_open))
                                    : want_hard;
        rlimit raised{target, target};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            c.soft = c.hard = target;
            return c;
        }
        c.error = sys::last_error();
    }
    if (lim.rlim_cur < lim.rlim_max) {
        rlimit raised{lim.rlim_max, lim.rlim_max};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) c.soft = lim.rlim_max;
        else c.error = sys::last_error();
    }
    return c;
}

std::size_t count_open_fds() noexcept {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return 0;
    std::size_t n = 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n > 0 ? n - 1 : 0;  // minus the directory's own descriptor
}

spawn_capacity read_spawn_capacity() noexcept {
    spawn_capacity c;
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) c.nofile_soft = lim.rlim_cur;
    if (::getrlimit(RLIMIT_NPROC, &lim) == 0) c.nproc_soft = lim.rlim_cur;
    // RLIMIT_NPROC does not apply to root (CAP_SYS_RESOURCE / CAP_SYS_ADMIN).
    if (::geteuid() == 0) c.nproc_soft = RLIM_INFINITY;
    c.pid_max = read_long_file("/proc/sys/kernel/pid_max");
    c.threads_max = read_long_file("/proc/sys/kernel/threads-max");
    c.running_tasks = read_task_count();
    c.open_fds = count_open_fds();
    return c;
}

std::size_t spawn_capacity::children_that_fit(std::size_t per_child, std::string* limiting) const {
    std::size_t best = static_cast<std::size_t>(-1);
    auto consider = [&](std::size_t n, std::string why) {
        if (n < best) {
            best = n;
            if (limiting) *limiting = std::move(why);
        }
    };
    if (nofile_soft != RLIM_INFINITY && per_child > 0) {
        // Keep a reserve for the supervisor's own files (logs, sockets, the event loop).
        std::size_t reserve = 64;
        std::size_t used = open_fds + reserve;
        std::size_t free_fds = nofile_soft > used ? static_cast<std::size_t>(nofile_soft) - used : 0;
        consider(free_fds / per_child, "RLIMIT_NOFILE " + std::to_string(nofile_soft));
    }
    // Leave a margin of tasks for the rest of the machine.
    auto tasks_left = [&](long cap) -> std::size_t {
        long margin = 512;
        long free_tasks = cap - running_tasks - margin;
        return free_tasks > 0 ? static_cast<std::size_t>(free_tasks) : 0;
    };
    if (nproc_soft != RLIM_INFINITY)
        consider(tasks_left(static_cast<long>(nproc_soft)), "RLIMIT_NPROC " + std::to_string(nproc_soft));
    if (pid_max > 0) consider(tasks_left(pid_max), "kernel.pid_max " + std::to_string(pid_max));
    if (threads_max > 0)
        consider(tasks_left(threads_max), "kernel.threads-max " + std::to_string(threads_max));
    return best;
}

std::size_t fds_per_child(int piped_streams, bool transient) noexcept {
    std::size_t held = 1 + static_cast<std::size_t>(piped_streams);  // pidfd + parent ends
    if (!transient) return held;
    // report pipe (2) + sync pipe (2) + the child's ends until clone3 returns.
    return held + 4 + static_cast<std::size_t>(piped_streams);
}

}  // namespace drover
