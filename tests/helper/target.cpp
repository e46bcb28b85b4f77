// drover_test_helper: the program tests run as a child, one behaviour per mode.
//
//   exit N                 exit with code N
//   signal N               kill itself with signal N (default action restored first)
//   echo                   copy stdin to stdout byte for byte
//   flood BYTES            write BYTES of a pattern to stdout and BYTES of another to stderr,
//                          interleaved in 64 KiB chunks (a reader of one stream only deadlocks)
//   fds                    print the open descriptors, one per line
//   ns                     print "TYPE INODE" for the eight namespace types
//   monotonic              print CLOCK_MONOTONIC and CLOCK_BOOTTIME in whole seconds
//   sleep SECONDS          sleep
//   ignore-term SECONDS    ignore SIGTERM, print "ready", sleep
//   write-fd FD TEXT       write TEXT to descriptor FD
//   spawn-orphans N SECS   start N grandchildren (double fork) that sleep SECS; print their pids
//   pids                   print "pid ppid"
//   notify MSG [SECS]      send MSG ("\\n" between assignments) to $NOTIFY_SOCKET as sd_notify(3)
//                          does, then sleep SECS; "notify-loop MSG EVERY SECS [THEN]" resends it
//                          every EVERY seconds for SECS seconds, then sleeps THEN seconds
//   inside                 what a job sees of its isolation, one "key value" line each: the
//                          eight namespace inodes, pid, ppid, hostname, uid (real), the first
//                          uid_map line, the numeric entries of /proc, whether lo is up;
//                          with "wait", then waits for EOF on stdin
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            std::exit(3);
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

int flood(long long bytes) {
    std::vector<char> out(65536), err(65536);
    long long done = 0;
    while (done < bytes) {
        std::size_t n = static_cast<std::size_t>(std::min<long long>(65536, bytes - done));
        for (std::size_t i = 0; i < n; ++i) {
            long long pos = done + static_cast<long long>(i);
            out[i] = static_cast<char>((pos * 31 + 7) & 0xff);
            err[i] = static_cast<char>((pos * 17 + 3) & 0xff);
        }
        write_all(1, out.data(), n);
        write_all(2, err.data(), n);
        done += static_cast<long long>(n);
    }
    return 0;
}

int list_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return 4;
    int self = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        int fd = std::atoi(e->d_name);
        if (fd != self) std::printf("%d\n", fd);
    }
    ::closedir(d);
    return 0;
}

int print_ns() {
    const char* types[] = {"user", "pid", "mnt", "uts", "ipc", "net", "cgroup", "time"};
    for (const char* t : types) {
        char path[64], link[128];
        std::snprintf(path, sizeof path, "/proc/self/ns/%s", t);
        ssize_t n = ::readlink(path, link, sizeof link - 1);
        if (n < 0) return 5;
        link[n] = 0;
        std::printf("%s %s\n", t, link);
    }
    return 0;
}

int print_inside() {
    if (print_ns() != 0) return 5;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::printf("getpid %d\ngetppid %d\nhostname %s\nuid %u\n", static_cast<int>(::getpid()),
                static_cast<int>(::getppid()), host, static_cast<unsigned>(::getuid()));
    char map[128] = {};
    int fd = ::open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = ::read(fd, map, sizeof map - 1);
        ::close(fd);
        if (n > 0) map[n] = 0;
        if (char* nl = std::strchr(map, '\n')) *nl = 0;
    }
    std::printf("uid_map %s\n", map);
    int procs = 0;
    if (DIR* d = ::opendir("/proc")) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9') ++procs;
        ::closedir(d);
    }
    std::printf("proc_entries %d\n", procs);
    int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq req{};
    std::memcpy(req.ifr_name, "lo", 3);
    bool up = sock >= 0 && ::ioctl(sock, SIOCGIFFLAGS, &req) == 0 && (req.ifr_flags & IFF_UP);
    if (sock >= 0) ::close(sock);
    std::printf("lo %s\n", up ? "up" : "down");
    return 0;
}

int spawn_orphans(int n, int secs) {
    for (int i = 0; i < n; ++i) {
        int p[2];
        if (::pipe(p) != 0) return 6;
        // The pids printed so far must not sit in a buffer both processes own: a child
        // that flushes it on exit (a sanitizer's runtime does) would print them again.
        std::fflush(stdout);
        pid_t mid = ::fork();
        if (mid == 0) {
            pid_t grand = ::fork();
            if (grand == 0) {
                ::close(p[0]);
                ::close(p[1]);
                ::setsid();
                ::sleep(static_cast<unsigned>(secs));
                ::_exit(0);
            }
            write_all(p[1], reinterpret_cast<char*>(&grand), sizeof grand);
            ::_exit(0);
        }
        ::close(p[1]);
        pid_t grand = 0;
        if (::read(p[0], &grand, sizeof grand) != sizeof grand) return 7;
        ::close(p[0]);
        int st;
        ::waitpid(mid, &st, 0);
        std::printf("%d\n", static_cast<int>(grand));
    }
    std::fflush(stdout);
    return 0;
}

}  // namespace

// sd_notify(3): one datagram to $NOTIFY_SOCKET ("@name" is abstract).
bool notify(const std::string& msg) {
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (!where || !*where) {
        std::fprintf(stderr, "notify: no NOTIFY_SOCKET\n");
        return false;
    }
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string path = where;
    if (path.size() >= sizeof a.sun_path) return false;
    std::memcpy(a.sun_path, path.data(), path.size());
    if (path[0] == '@') a.sun_path[0] = '\0';
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
    bool ok = ::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), len) == static_cast<ssize_t>(msg.size());
    if (!ok) std::perror("notify: sendto");
    ::close(fd);
    return ok;
}

int main(int argc, char** argv) {
    if (argc < 2) return 64;
    std::string mode = argv[1];
    // A whole number, or the helper stops with 64: a test that passes "0.2" where a count is
    // read must fail, not run with 0 (the sleep mode once did).
    auto arg = [&](int i) {
        if (i >= argc) return 0LL;
        long long v = 0;
        const char* end = argv[i] + std::strlen(argv[i]);
        auto [stop, ec] = std::from_chars(argv[i], end, v);
        if (ec != std::errc() || stop != end || stop == argv[i]) {
            std::fprintf(stderr, "drover_test_helper %s: argument %d '%s' is not a whole number\n", argv[1], i, argv[i]);
            std::exit(64);
        }
        return v;
    };
    if (mode == "exit") return static_cast<int>(arg(2));
    if (mode == "notify" || mode == "notify-loop") {
        // "\\n" in the argument stands for a newline between assignments.
        std::string msg;
        for (const char* c = argc > 2 ? argv[2] : ""; *c; ++c) {
            if (c[0] == '\\' && c[1] == 'n') {
                msg += '\n';
                ++c;
            } else {
                msg += *c;
            }
        }
        double every = mode == "notify-loop" && argc > 3 ? std::atof(argv[3]) : 0;
        double total = argc > (mode == "notify-loop" ? 4 : 3) ? std::atof(argv[mode == "notify-loop" ? 4 : 3]) : 0;
        do {
            if (!notify(msg)) return 3;
            if (every > 0) {
                timespec ts{static_cast<time_t>(every), static_cast<long>((every - static_cast<time_t>(every)) * 1e9)};
                ::nanosleep(&ts, nullptr);
                total -= every;
            }
        } while (every > 0 && total > 0);
        double then = mode == "notify-loop" ? (argc > 5 ? std::atof(argv[5]) : 0) : total;
        if (then > 0) {
            timespec ts{static_cast<time_t>(then), static_cast<long>((then - static_cast<time_t>(then)) * 1e9)};
            ::nanosleep(&ts, nullptr);
        }
        return 0;
    }
    if (mode == "signal") {
        int sig = static_cast<int>(arg(2));
        ::signal(sig, SIG_DFL);
        ::kill(::getpid(), sig);
        ::pause();
        return 65;
    }
    if (mode == "echo") {
        char buf[65536];
        ssize_t n;
        while ((n = ::read(0, buf, sizeof buf)) > 0) write_all(1, buf, static_cast<std::size_t>(n));
        return 0;
    }
    if (mode == "flood") return flood(arg(2));
    if (mode == "fds") return list_fds();
    if (mode == "ns") return print_ns();
    if (mode == "inside") {
        int rc = print_inside();
        std::fflush(stdout);
        if (argc > 2 && std::string(argv[2]) == "wait") {
            char c;
            while (::read(0, &c, 1) > 0) {
            }
        }
        return rc;
    }
    if (mode == "monotonic") {
        timespec m{}, b{};
        ::clock_gettime(CLOCK_MONOTONIC, &m);
        ::clock_gettime(CLOCK_BOOTTIME, &b);
        std::printf("%lld %lld\n", static_cast<long long>(m.tv_sec), static_cast<long long>(b.tv_sec));
        return 0;
    }
    if (mode == "sleep") {  // seconds, fractions too (0.5)
        char* end = nullptr;
        double secs = argc > 2 ? std::strtod(argv[2], &end) : 0;
        if (argc > 2 && (end == argv[2] || *end != '\0' || !(secs >= 0) || secs > 86400)) {
            std::fprintf(stderr, "drover_test_helper sleep: '%s' is not a number of seconds\n", argv[2]);
            return 64;
        }
        if (!(secs > 0)) return 0;
        timespec t{static_cast<time_t>(secs), static_cast<long>((secs - static_cast<double>(static_cast<time_t>(secs))) * 1e9)};
        while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
        return 0;
    }
    if (mode == "ignore-term") {
        ::signal(SIGTERM, SIG_IGN);
        std::printf("ready\n");
        std::fflush(stdout);
        ::sleep(static_cast<unsigned>(arg(2)));
        return 0;
    }
    if (mode == "write-fd") {
        if (argc < 4) return 64;
        write_all(static_cast<int>(arg(2)), argv[3], std::strlen(argv[3]));
        return 0;
    }
    if (mode == "spawn-orphans") return spawn_orphans(static_cast<int>(arg(2)), static_cast<int>(arg(3)));
    if (mode == "pids") {
        std::printf("%d %d\n", static_cast<int>(::getpid()), static_cast<int>(::getppid()));
        return 0;
    }
    return 64;
}
