/* drover_raw_probe: an independent check of drover bench's floor. None of drover's code or
 * the bench library, C-style: glibc's clone() with CLONE_VM | CLONE_VFORK and the namespace
 * flags, execve of PROGRAM in the child, waitpid in the parent, timed with CLOCK_MONOTONIC.
 * The same work as the bench's bare floor (namespaces created, no maps, mounts or lo).
 *
 *   drover_raw_probe NAMESPACES COUNT PROGRAM
 *   drover_raw_probe --serve PROGRAM
 *
 * NAMESPACES: none, or a comma list of user,pid,mnt,uts,ipc,net,cgroup. Prints one line:
 *   NAMESPACES raw n=COUNT p50=…us p90=…us max=…us
 * With --serve it reads one NAMESPACES line at a time from stdin (at most 255 bytes), spawns
 * PROGRAM once into them and answers "ok NANOSECONDS" or "err REASON" on stdout, so that
 * drover bench can put its spawns into the same shuffled order as its own (`--probe`). The
 * line "hello" is answered "ok drover_raw_probe", and "peer PID TID" names the thread that
 * asks: before each spawn the probe yields until that thread is asleep, so that a caller still
 * runnable on the same CPU does not slow the spawn it times. It ends at the end of its input.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static const char* program;

static int child(void* arg) {
    (void)arg;
    char* argv[] = {(char*)program, NULL};
    execve(program, argv, environ);
    _exit(127);
}

static int parse_namespaces(const char* text, int* flags) {
    static const struct {
        const char* name;
        int flag;
    } names[] = {{"user", CLONE_NEWUSER}, {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},     {"uts", CLONE_NEWUTS},
                 {"ipc", CLONE_NEWIPC},   {"net", CLONE_NEWNET}, {"cgroup", CLONE_NEWCGROUP}};
    *flags = 0;
    if (strcmp(text, "none") == 0) return 0;
    char buf[256];
    if (strlen(text) >= sizeof buf) return -1;
    strcpy(buf, text);
    for (char* save = NULL, *tok = strtok_r(buf, ",+", &save); tok; tok = strtok_r(NULL, ",+", &save)) {
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; ++i)
            if (strcmp(tok, names[i].name) == 0) break;
        if (i == sizeof names / sizeof names[0]) return -1;
        *flags |= names[i].flag;
    }
    return 0;
}

static int by_value(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static char* stack_top;

/* One spawn into `flags`: its time in µs and the program's wait status, or a negative errno
 * if clone failed. */
static double spawn_once(int flags, int* status_out) {
    double start = now_us();
    pid_t pid = clone(child, stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD | flags, NULL);
    if (pid < 0) return -errno;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    double took = now_us() - start;
    *status_out = status;
    return took;
}

static pid_t peer_pid, peer_tid;

/* Yields until the peer thread is not runnable ('R' in its stat), at most 1000 times. */
static void wait_peer_asleep(void) {
    char path[64], buf[512];
    if (peer_pid <= 0 || peer_tid <= 0) return;
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)peer_pid, (int)peer_tid);
    for (int i = 0; i < 1000; ++i) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) return;
        buf[n] = '\0';
        const char* paren = strrchr(buf, ')');
        if (!paren || paren[1] != ' ' || paren[2] != 'R') return;
        sched_yield();
    }
}

/* "peer PID TID" with both whole numbers in 1..INT_MAX; 0 if it is not such a line. */
static int parse_peer(const char* line) {
    long v[2];
    const char* p = line + 5;
    for (int i = 0; i < 2; ++i) {
        char* end;
        if (*p < '1' || *p > '9') return 0;
        errno = 0;
        v[i] = strtol(p, &end, 10);
        if (errno || v[i] > 0x7fffffffL || (i == 0 ? *end != ' ' : *end != '\0')) return 0;
        p = end + 1;
    }
    peer_pid = (pid_t)v[0];
    peer_tid = (pid_t)v[1];
    return 1;
}

static int serve(void) {
    char line[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            printf("err request longer than 255 bytes\n");
            return 2;
        }
        line[len - 1] = '\0';
        if (strcmp(line, "hello") == 0) {
            printf("ok drover_raw_probe\n");
            continue;
        }
        if (strncmp(line, "peer ", 5) == 0) {
            printf(parse_peer(line) ? "ok\n" : "err usage: peer PID TID\n");
            continue;
        }
        int flags, status = 0;
        if (parse_namespaces(line, &flags) != 0) {
            printf("err namespaces: '%s' is not none or a list of user,pid,mnt,uts,ipc,net,cgroup\n", line);
            continue;
        }
        wait_peer_asleep();
        double took = spawn_once(flags, &status);
        if (took < 0)
            printf("err clone(%s): %s\n", line, strerror((int)-took));
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            printf("err %s did not exit 0 (status %#x)\n", program, status);
        else
            printf("ok %.0f\n", took * 1e3);
    }
    return 0;
}

static int make_stack(void) {
    size_t stack_size = 64 * 1024;
    char* stack = (char*)mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    stack_top = stack + stack_size;
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "--serve") == 0) {
        program = argv[2];
        if (make_stack() != 0) {
            perror("drover_raw_probe: stack");
            return 1;
        }
        return serve();
    }
    if (argc != 4) {
        fprintf(stderr, "usage: drover_raw_probe NAMESPACES COUNT PROGRAM | --serve PROGRAM\n");
        return 2;
    }
    int flags;
    if (parse_namespaces(argv[1], &flags) != 0) {
        fprintf(stderr, "drover_raw_probe: namespaces: '%s' is not none or a list of user,pid,mnt,uts,ipc,net,cgroup\n",
                argv[1]);
        return 2;
    }
    char* end;
    errno = 0;
    long count = strtol(argv[2], &end, 10);
    if (errno || *end || count < 1 || count > 1000000) {
        fprintf(stderr, "drover_raw_probe: count: '%s' is not a whole number from 1 to 1000000\n", argv[2]);
        return 2;
    }
    program = argv[3];
    double* t = (double*)malloc((size_t)count * sizeof *t);
    if (make_stack() != 0 || !t) {
        perror("drover_raw_probe: memory");
        return 1;
    }
    for (long i = 0; i < count; ++i) {
        int status = 0;
        t[i] = spawn_once(flags, &status);
        if (t[i] < 0) {
            fprintf(stderr, "drover_raw_probe: clone(%s): %s\n", argv[1], strerror((int)-t[i]));
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "drover_raw_probe: %s did not exit 0 (status %#x)\n", program, status);
            return 1;
        }
    }
    qsort(t, (size_t)count, sizeof *t, by_value);
    printf("%s raw n=%ld p50=%.1fus p90=%.1fus max=%.1fus\n", argv[1], count, t[count / 2], t[count * 9 / 10],
           t[count - 1]);
    return 0;
}
