/* escape: what an attacker tries from inside a sandbox, one attempt per line of output:
 *   NAME <TAB> blocked|ESCAPED|n/a <TAB> what happened
 * "n/a" means the attempt could not be judged here (the kernel lacks the feature). Nothing
 * here changes anything outside the sandbox when it is blocked; where an attempt would do
 * harm if it got through (sysctls, the SysRq trigger), it stops at the open and calls the
 * open an escape.
 *
 *   escape [--victim PID] [--host-dir DIR] [--port N] [--only NAME]
 *     --victim    a host process whose /proc/PID/cmdline contains "drover-escape-victim"
 *     --host-dir  a world-writable directory of the host (outside the job's binds)
 *     --port      a TCP port listening on the host's 127.0.0.1
 *   escape --print-caps     print the effective capability mask (for the exec check)
 *   escape --outlive SECS MARK   double-fork a grandchild that sleeps SECS with MARK in argv
 *   escape --hog MIB        touch up to MIB MiB, 1 MiB at a time, then exit 0 (bounded)
 *   escape --forkbomb N     fork up to N children that pause; print how many started, exit 3
 *                           if a fork failed (bounded: N at most 1000)
 *   escape --spin SECS      burn CPU for at most SECS seconds, then exit 0
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* only;
static int victim;
static const char* host_dir;
static int port;
static char self_path[4096];

static void report(const char* name, const char* verdict, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(const char* name, const char* verdict, const char* fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    for (char* p = detail; *p; ++p)
        if (*p == '\t' || *p == '\n') *p = ' ';
    printf("%s\t%s\t%s\n", name, verdict, detail);
    fflush(stdout);
}

/* A syscall that must fail: blocked with its errno, or an escape. */
static void expect_fail(const char* name, long rc, const char* what) {
    if (rc < 0) report(name, "blocked", "%s: %s", what, strerror(errno));
    else report(name, "ESCAPED", "%s succeeded (%ld)", what, rc);
}

static int wanted(const char* name) { return !only || strcmp(only, name) == 0; }

/* Runs `fn` in a forked child (for calls that change the caller), returns its exit code, or
 * 128+signal. The child reports through its exit code: 0 the call succeeded, 1 it failed;
 * errno comes back as code - 2 when it fails. */
static int in_child(long (*fn)(void), int* err) {
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        return -1;
    }
    if (pid == 0) {
        errno = 0;
        long rc = fn();
        _exit(rc < 0 ? (errno > 0 && errno < 250 ? 2 + errno : 1) : 0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    int code = WEXITSTATUS(st);
    *err = code >= 2 ? code - 2 : 0;
    return code;
}

static void expect_child_fail(const char* name, long (*fn)(void), const char* what) {
    int err = 0;
    int code = in_child(fn, &err);
    if (code == 0) report(name, "ESCAPED", "%s succeeded", what);
    else if (code >= 128) report(name, "blocked", "%s: killed by signal %d", what, code - 128);
    else report(name, "blocked", "%s: %s", what, err ? strerror(err) : "failed");
}

static int victim_marked(void) {
    char path[64], buf[4096] = {0};
    snprintf(path, sizeof path, "/proc/%d/cmdline", victim);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    for (ssize_t i = 0; i < n; ++i)
        if (buf[i] == 0) buf[i] = ' ';
    return n > 0 && strstr(buf, "drover-escape-victim") != NULL;
}

static void try_write(const char* name, const char* path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        report(name, "blocked", "create %s: %s", path, strerror(errno));
        return;
    }
    close(fd);
    unlink(path);
    report(name, "ESCAPED", "created %s", path);
}

static long do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static long do_clone_user(void) {
    long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
    return rc;
}
static long do_clone3_user(void) {
    uint64_t args[11] = {0};
    args[0] = CLONE_NEWUSER;
    args[4] = SIGCHLD; /* exit_signal */
    long rc = syscall(435 /* clone3 */, args, 88);
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
    return rc;
}
static long do_ptrace(void) { return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0); }

static sigjmp_buf int80_fault;
static void on_int80_fault(int sig) {
    (void)sig;
    siglongjmp(int80_fault, 1);
}

/* An i386 system call from 64-bit code. A kernel built or booted without ia32 emulation
 * (ia32_emulation=0) answers int 0x80 with a general protection fault, SIGSEGV: then
 * *faulted is set and nothing ran. */
static long int80(long nr, long a, long b, long c, int* faulted) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_int80_fault;
    sigaction(SIGSEGV, &sa, &old);
    long ret = -ENOSYS;
    *faulted = 0;
    if (sigsetjmp(int80_fault, 1) == 0)
        __asm__ volatile("int $0x80" : "=a"(ret) : "0"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    else
        *faulted = 1;
    sigaction(SIGSEGV, &old, NULL);
    return ret;
}

static int print_caps(void) {
    FILE* f = fopen("/proc/self/status", "re");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "CapEff:", 7) == 0) {
            printf("%s", line + 7 + strspn(line + 7, " \t"));
            fclose(f);
            return 0;
        }
    if (f) fclose(f);
    return 1;
}

static int outlive(int secs, const char* mark) {
    pid_t a = fork();
    if (a == 0) {
        setsid();
        if (fork() == 0) {
            /* MARK is already in this process's command line (it is a copy of ours). */
            (void)mark;
            for (int i = 0; i < secs * 10; ++i) usleep(100000);
            _exit(0);
        }
        _exit(0);
    }
    waitpid(a, NULL, 0);
    printf("started\n");
    fflush(stdout);
    pause();
    return 0;
}

static int hog(long mib) {
    if (mib > 1024) mib = 1024;
    for (long i = 0; i < mib; ++i) {
        char* p = malloc(1 << 20);
        if (!p) {
            printf("malloc failed after %ld MiB\n", i);
            return 4;
        }
        memset(p, (int)i, 1 << 20);
    }
    printf("touched %ld MiB\n", mib);
    return 0;
}

static int forkbomb(int n) {
    static pid_t kids[1000];
    if (n > 1000) n = 1000;
    int started = 0, failed = 0;
    for (int i = 0; i < n; ++i) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) {
            failed = errno;
            break;
        }
        kids[started++] = p;
    }
    printf("started %d%s%s\n", started, failed ? ", then fork: " : "", failed ? strerror(failed) : "");
    fflush(stdout);
    for (int i = 0; i < started; ++i) kill(kids[i], SIGKILL);
    for (int i = 0; i < started; ++i) waitpid(kids[i], NULL, 0);
    return failed ? 3 : 0;
}

static int spin(int secs) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    volatile unsigned long x = 0;
    for (;;) {
        for (int i = 0; i < 1000000; ++i) x = x + (unsigned long)i;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= secs) return 0;
    }
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--hog") && i + 1 < argc) return hog(atol(argv[i + 1]));
        if (!strcmp(argv[i], "--forkbomb") && i + 1 < argc) return forkbomb(atoi(argv[i + 1]));
        if (!strcmp(argv[i], "--spin") && i + 1 < argc) return spin(atoi(argv[i + 1]));
        if (!strcmp(argv[i], "--print-caps")) return print_caps();
        if (!strcmp(argv[i], "--outlive") && i + 2 < argc) return outlive(atoi(argv[i + 1]), argv[i + 2]);
        if (!strcmp(argv[i], "--victim") && i + 1 < argc) victim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host-dir") && i + 1 < argc) host_dir = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    }
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n > 0) self_path[n] = 0;

    /* Host files. */
    if (wanted("write_etc")) try_write("write_etc", "/etc/drover-escape-probe");
    if (wanted("write_root_home")) try_write("write_root_home", "/root/drover-escape-probe");
    if (wanted("write_usr")) try_write("write_usr", "/usr/drover-escape-probe");
    if (wanted("write_host_dir")) {
        if (!host_dir) report("write_host_dir", "n/a", "no --host-dir");
        else {
            char p[4096];
            snprintf(p, sizeof p, "%s/escaped", host_dir);
            try_write("write_host_dir", p);
        }
    }
    /* Mounts. */
    if (wanted("remount_root_rw")) {
        expect_fail("remount_root_rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL), "remount / read-write");
    }
    if (wanted("remount_bind_rw"))
        expect_fail("remount_bind_rw", mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL), "remount /usr read-write");
    if (wanted("mount_tmpfs")) expect_fail("mount_tmpfs", mount("tmpfs", "/mnt", "tmpfs", 0, NULL), "mount tmpfs on /mnt");
    if (wanted("umount_proc")) expect_fail("umount_proc", umount2("/proc", MNT_DETACH), "umount /proc");
    if (wanted("new_mount_api")) expect_fail("new_mount_api", syscall(430 /* fsopen */, "tmpfs", 0), "fsopen(tmpfs)");
    if (wanted("chroot")) expect_fail("chroot", chroot("/"), "chroot");  /* needs CAP_SYS_CHROOT */
    if (wanted("pivot_root")) expect_fail("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"), "pivot_root");
    /* Other processes. */
    if (wanted("see_host_process")) {
        if (!victim) report("see_host_process", "n/a", "no --victim");
        else if (victim_marked()) report("see_host_process", "ESCAPED", "/proc/%d is the host's victim", victim);
        else report("see_host_process", "blocked", "/proc/%d is not the victim", victim);
    }
    if (wanted("signal_host_process")) {
        if (!victim) report("signal_host_process", "n/a", "no --victim");
        else {
            int rc = kill(victim, 0);
            int err = errno;
            if (rc == 0 && victim_marked()) report("signal_host_process", "ESCAPED", "kill(%d, 0) reached the victim", victim);
            else report("signal_host_process", "blocked", "kill(%d, 0): %s", victim, rc == 0 ? "another process" : strerror(err));
        }
    }
    if (wanted("pidfd_host_process")) {
        if (!victim) report("pidfd_host_process", "n/a", "no --victim");
        else {
            long fd = syscall(434 /* pidfd_open */, victim, 0);
            int err = errno;
            if (fd >= 0 && victim_marked()) report("pidfd_host_process", "ESCAPED", "pidfd_open(%d) got the victim", victim);
            else report("pidfd_host_process", "blocked", "pidfd_open(%d): %s", victim, fd >= 0 ? "another process" : strerror(err));
            if (fd >= 0) close((int)fd);
        }
    }
    if (wanted("ptrace")) expect_child_fail("ptrace", do_ptrace, "ptrace(PTRACE_TRACEME)");
    /* Kernel tunables and interfaces. */
    if (wanted("proc_sys_write")) {
        int fd = open("/proc/sys/vm/swappiness", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            report("proc_sys_write", "ESCAPED", "opened /proc/sys/vm/swappiness for writing");
        } else {
            report("proc_sys_write", "blocked", "open /proc/sys/vm/swappiness for writing: %s", strerror(errno));
        }
    }
    if (wanted("sysrq_trigger")) {
        int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            report("sysrq_trigger", "ESCAPED", "opened /proc/sysrq-trigger for writing");
        } else {
            report("sysrq_trigger", "blocked", "open /proc/sysrq-trigger for writing: %s", strerror(errno));
        }
    }
    if (wanted("cgroup_escape")) {
        int fd = open("/sys/fs/cgroup/unified/cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd < 0) fd = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd < 0) report("cgroup_escape", "blocked", "open the root cgroup.procs for writing: %s", strerror(errno));
        else {
            ssize_t w = write(fd, "0", 1);
            int err = errno;
            close(fd);
            if (w == 1) report("cgroup_escape", "ESCAPED", "moved itself to the root cgroup");
            else report("cgroup_escape", "blocked", "write to the root cgroup.procs: %s", strerror(err));
        }
    }
    if (wanted("load_module")) expect_fail("load_module", syscall(SYS_finit_module, 0, "", 0), "finit_module");
    if (wanted("keyctl")) expect_fail("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), "keyctl(GET_KEYRING_ID)");
    if (wanted("add_key")) expect_fail("add_key", syscall(SYS_add_key, "user", "drover-escape", "x", 1, -2), "add_key");
    if (wanted("bpf")) {
        uint32_t attr[32] = {0};
        attr[0] = 2; /* BPF_MAP_TYPE_ARRAY */
        attr[1] = 4; /* key size */
        attr[2] = 4; /* value size */
        attr[3] = 1; /* max entries */
        long fd = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr);
        expect_fail("bpf", fd, "bpf(BPF_MAP_CREATE)");
        if (fd >= 0) close((int)fd);
    }
    if (wanted("userfaultfd")) {
        long fd = syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
        expect_fail("userfaultfd", fd, "userfaultfd(UFFD_USER_MODE_ONLY)");
        if (fd >= 0) close((int)fd);
    }
    if (wanted("perf_event_open")) {
        struct perf_event_attr pa;
        memset(&pa, 0, sizeof pa);
        pa.type = PERF_TYPE_SOFTWARE;
        pa.size = sizeof pa;
        pa.config = PERF_COUNT_SW_CPU_CLOCK;
        pa.exclude_kernel = 1;
        pa.exclude_hv = 1;
        long fd = syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0);
        expect_fail("perf_event_open", fd, "perf_event_open(own CPU clock)");
        if (fd >= 0) close((int)fd);
    }
    if (wanted("io_uring")) {
        unsigned char params[120] = {0};
        long fd = syscall(425 /* io_uring_setup */, 1, params);
        expect_fail("io_uring", fd, "io_uring_setup");
        if (fd >= 0) close((int)fd);
    }
    if (wanted("open_by_handle_at"))
        expect_fail("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY), "open_by_handle_at");
    if (wanted("unshare_user")) expect_child_fail("unshare_user", do_unshare_user, "unshare(CLONE_NEWUSER)");
    if (wanted("clone_user")) expect_child_fail("clone_user", do_clone_user, "clone(CLONE_NEWUSER)");
    if (wanted("clone3_user")) expect_child_fail("clone3_user", do_clone3_user, "clone3(CLONE_NEWUSER)");
    if (wanted("setns")) {
        int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        expect_fail("setns", fd < 0 ? -1 : syscall(SYS_setns, fd, 0), "setns(own net namespace)");
        if (fd >= 0) close(fd);
    }
    if (wanted("tiocsti")) {
        char c = 'x';
        if (!isatty(0)) report("tiocsti", "n/a", "stdin is not a terminal");
        else expect_fail("tiocsti", ioctl(0, TIOCSTI, &c), "ioctl(0, TIOCSTI)");
    }
    if (wanted("dmesg")) {
        char buf[64];
        expect_fail("dmesg", klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof buf), "syslog(READ_ALL)");
    }
    if (wanted("i386_keyctl")) {
        int faulted;
        long rc = int80(288 /* keyctl on i386 */, 0, -3, 0, &faulted);
        if (faulted) report("i386_keyctl", "n/a", "no i386 ABI here (int 0x80 faults: ia32 emulation off)");
        else if (rc == -ENOSYS) report("i386_keyctl", "n/a", "no i386 ABI here");
        else if (rc < 0) report("i386_keyctl", "blocked", "int 0x80 keyctl: %s", strerror((int)-rc));
        else report("i386_keyctl", "ESCAPED", "int 0x80 keyctl returned %ld", rc);
    }
    if (wanted("x32_keyctl")) {
        long rc = syscall(0x40000000L | 250 /* keyctl, x32 */, 0, -3, 0);
        int err = errno;
        if (rc < 0 && err == ENOSYS) report("x32_keyctl", "n/a", "no x32 ABI here (ENOSYS)");
        else if (rc < 0) report("x32_keyctl", "blocked", "x32 keyctl: %s", strerror(err));
        else report("x32_keyctl", "ESCAPED", "x32 keyctl returned %ld", rc);
    }
    /* Devices. */
    if (wanted("host_devices")) {
        const char* devs[] = {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/mem", "/dev/kmsg", "/dev/port", "/dev/kvm"};
        const char* got = NULL;
        for (size_t i = 0; i < sizeof devs / sizeof devs[0] && !got; ++i) {
            int fd = open(devs[i], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                got = devs[i];
                close(fd);
            }
        }
        if (got) report("host_devices", "ESCAPED", "opened %s", got);
        else report("host_devices", "blocked", "none of /dev/vda, sda, nvme0n1, mem, kmsg, port, kvm opens");
    }
    if (wanted("mknod")) {
        /* In a directory of its own: under a sandbox without a tmpfs /tmp this is the host's. */
        char node[64];
        snprintf(node, sizeof node, "/tmp/drover-blk-%d", (int)getpid());
        if (mknod(node, S_IFBLK | 0600, makedev(8, 0)) != 0) {
            report("mknod", "blocked", "mknod block device: %s", strerror(errno));
        } else {
            int fd = open(node, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                close(fd);
                report("mknod", "ESCAPED", "made and opened a block device node");
            } else {
                report("mknod", "blocked", "made a node, opening it: %s", strerror(errno));
            }
            unlink(node);
        }
    }
    /* Capabilities. */
    if (wanted("raise_caps")) {
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct d[2];
        memset(d, 0xff, sizeof d);
        expect_fail("raise_caps", syscall(SYS_capset, &h, d), "capset(all)");
    }
    if (wanted("ambient_raise"))
        expect_fail("ambient_raise", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 21 /* SYS_ADMIN */, 0, 0),
                    "PR_CAP_AMBIENT_RAISE CAP_SYS_ADMIN");
    if (wanted("exec_gains_caps")) {
        int fds[2];
        if (pipe(fds) != 0) report("exec_gains_caps", "n/a", "pipe: %s", strerror(errno));
        else {
            pid_t pid = fork();
            if (pid == 0) {
                dup2(fds[1], 1);
                execl(self_path, "escape", "--print-caps", (char*)NULL);
                _exit(127);
            }
            close(fds[1]);
            char buf[64] = {0};
            ssize_t r = read(fds[0], buf, sizeof buf - 1);
            close(fds[0]);
            waitpid(pid, NULL, 0);
            unsigned long long caps = r > 0 ? strtoull(buf, NULL, 16) : 0;
            if (r <= 0) report("exec_gains_caps", "n/a", "exec of itself printed nothing");
            else if (caps) report("exec_gains_caps", "ESCAPED", "a program it execs has capabilities %llx", caps);
            else report("exec_gains_caps", "blocked", "a program it execs has no capabilities");
        }
    }
    if (wanted("no_new_privs")) {
        int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
        if (nnp == 1) report("no_new_privs", "blocked", "no_new_privs is set: setuid and file capabilities give nothing");
        else report("no_new_privs", "ESCAPED", "no_new_privs is not set: a setuid binary could raise privileges");
    }
    /* Network. */
    if (wanted("host_network")) {
        if (!port) report("host_network", "n/a", "no --port");
        else {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in a;
            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            expect_fail("host_network", connect(s, (struct sockaddr*)&a, sizeof a), "connect to the host's 127.0.0.1 listener");
            close(s);
        }
    }
    return 0;
}
