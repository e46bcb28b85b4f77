/* tiny: the static child of the scale benchmarks (no dynamic loader, one page of work).
 *   exit N           exit with code N
 *   block N          read stdin to EOF, then exit with N
 *   until NS [SLOT]  sleep until CLOCK_MONOTONIC reaches NS nanoseconds, then exit 0; with
 *                    SLOT, first write the time it exits at (8 bytes) to fd 3 at SLOT * 8
 *   wait SLOT        wait for SIGTERM, then write the time it exits at (8 bytes) to fd 3 at
 *                    SLOT * 8 and exit 0
 *   flood BYTES      write BYTES of zeros to stdout in 64 KiB writes */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[65536];
static long long slot;

static void stamp_and_exit(int sig) {
    (void)sig;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    pwrite(3, &ns, sizeof ns, (off_t)(slot * (long long)sizeof ns));
    _exit(0);
}

int main(int argc, char** argv) {
    if (argc < 3) return 64;
    long long arg = atoll(argv[2]);
    if (!strcmp(argv[1], "exit")) return (int)arg;
    if (!strcmp(argv[1], "block")) {
        while (read(0, buf, sizeof buf) > 0) {
        }
        return (int)arg;
    }
    if (!strcmp(argv[1], "until")) {
        struct timespec t = {(time_t)(arg / 1000000000LL), (long)(arg % 1000000000LL)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, 0) != 0) {
        }
        if (argc > 3) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
            pwrite(3, &ns, sizeof ns, (off_t)(atoll(argv[3]) * (long long)sizeof ns));
        }
        _exit(0);
    }
    if (!strcmp(argv[1], "wait")) {
        slot = arg;
        signal(SIGTERM, stamp_and_exit);
        for (;;) pause();
    }
    if (!strcmp(argv[1], "flood")) {
        while (arg > 0) {
            size_t n = arg < (long long)sizeof buf ? (size_t)arg : sizeof buf;
            ssize_t w = write(1, buf, n);
            if (w <= 0) return 3;
            arg -= w;
        }
        return 0;
    }
    return 64;
}
