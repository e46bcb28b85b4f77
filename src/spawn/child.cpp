// The child's side of a spawn: runs between clone3 and execve, walking a prepared plan.
//
// ============================================================================================
//  ASYNC-SIGNAL-SAFE ZONE. This code runs in a fork-style child of a process that may have
//  threads. Another thread may have held the malloc lock, the stdio lock or spdlog's mutex at
//  the moment of clone3; touching any of them can deadlock. So: no allocation, no std::string
//  construction, no exceptions, no logging, no locale. Only raw syscalls and reads of the plan
//  the parent built. Every failure is reported as {stage, index, errno} and ends in _exit(127).
// ============================================================================================
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "drover/sys/syscalls.hpp"
#include "child_sys.hpp"
#include "go_message.hpp"
#include "plan.hpp"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace drover::detail {

namespace {

struct child_ctx {
    const launch_frame& f;
    const prepared_data& p;
    std::int64_t start;
    int report_fd;  // f.report_write, or where descriptors() moved it out of the targets' way
    int* fs_slots;  // the new root's captured sources (max_fs_slots)
    // What execve runs: the plan's, or (a ready job) what arrived on its go socket.
    const char* const* candidates = nullptr;
    unsigned candidate_count = 0;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
};

void write_all(int fd, const void* buf, std::size_t len) noexcept {
    const char* c = static_cast<const char*>(buf);
    while (len > 0) {
        ssize_t n = raw_write(fd, c, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        c += n;
        len -= static_cast<std::size_t>(n);
    }
}

void report(const child_ctx& c, child_stage stage, unsigned index, int err) noexcept {
    child_report r{static_cast<std::uint16_t>(stage), static_cast<std::uint16_t>(index), err,
                   c.start, sys::monotonic_ns()};
    if (std::byte* mem = c.f.report_mem) {
        // The parent's memory (CLONE_VM), read once clone3 has returned: no pipe to make,
        // write or close. A third record would not fit and cannot happen (none, then a failure).
        std::size_t len = *c.f.report_len;
        if (len + sizeof r > report_max_size) return;
        __builtin_memcpy(mem + len, &r, sizeof r);
        __atomic_store_n(c.f.report_len, len + sizeof r, __ATOMIC_RELEASE);
        return;
    }
    write_all(c.report_fd, &r, sizeof r);
}

[[noreturn]] void fail(const child_ctx& c, child_stage stage, unsigned index, int err) noexcept {
    report(c, stage, index, err);
    raw_exit(127);
}

// Fails with EPERM if the test hook names this stage; otherwise nothing.
void injection_point(const child_ctx& c, child_stage stage) noexcept {
    if (c.p.spec.inject_failure == stage) fail(c, stage, 0, EPERM);
}

void check(const child_ctx& c, child_stage stage, unsigned index, bool ok) noexcept {
    if (!ok) fail(c, stage, index, errno);
}

// The same for a call through sys/, which reports its errno as an error_code.
void check(const child_ctx& c, child_stage stage, unsigned index, std::error_code ec) noexcept {
    if (ec) fail(c, stage, index, ec.value());
}

constexpr int CAP_SETPCAP_NR = 8;

bool has_setpcap() noexcept {
    std::uint64_t eff = 0, perm = 0, inh = 0;
    return !sys::capget(eff, perm, inh) && ((eff >> CAP_SETPCAP_NR) & 1) != 0;
}

void wait_for_maps(const child_ctx& c) noexcept {
    injection_point(c, child_stage::wait_maps);
    if (c.f.sync_read < 0) return;
    // On the posix_spawn path the launching thread is held in clone3: another thread of the
    // parent writes the maps, once it hears from us (it knows our pid from the kernel).
    if (c.f.ready_write >= 0) {
        ssize_t w;
        do w = raw_write(c.f.ready_write, "1", 1);
        while (w < 0 && errno == EINTR);
    }
    // Our copies of both ends are close-on-exec and harmless: the parent sends a byte rather
    // than relying on EOF, so closing them here would only cost syscalls.
    char byte = 0;
    ssize_t n;
    do n = raw_read(c.f.sync_read, &byte, 1);
    while (n < 0 && errno == EINTR);
    // The parent writes 1 once the maps are in place, 0 if it could not; EOF: it gave up.
    if (n != 1 || byte != 1) fail(c, child_stage::wait_maps, 0, n < 0 ? errno : ECANCELED);
}

// Joins the job's v1 cgroups through descriptors root opened: the kernel checks the opener's
// credentials, so this works from inside a new user namespace too, and the parent has
// nothing to do (the vfork path stays open).
void join_cgroups(const child_ctx& c) noexcept {
    for (int i = 0; i < c.f.join_count; ++i) {
        ssize_t n;
        do n = raw_write(c.f.join_fds[i], "0", 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) fail(c, child_stage::cgroup_join, static_cast<unsigned>(i), n < 0 ? errno : EIO);
    }
}

void write_own(const child_ctx& c, child_stage stage, const char* path, const char* text, std::size_t len) noexcept {
    int fd = raw_open(path, O_WRONLY | O_CLOEXEC);
    check(c, stage, 0, fd >= 0);
    check(c, stage, 0, raw_write(fd, text, len) == static_cast<ssize_t>(len));
    raw_close(fd);
}

// The default maps (our own uid and gid as 0) are ones a process may write for itself in its
// new user namespace (user_namespaces(7): one id, its own, with setgroups denied first for
// the gid map). Then the parent has nothing to do between clone3 and execve.
void write_own_maps(const child_ctx& c) noexcept {
    if (!c.p.self_map) return;
    injection_point(c, child_stage::uid_map);
    write_own(c, child_stage::uid_map, "/proc/self/uid_map", c.p.uid_map_text.data(), c.p.uid_map_text.size());
    write_own(c, child_stage::setgroups, "/proc/self/setgroups", "deny", 4);
    write_own(c, child_stage::gid_map, "/proc/self/gid_map", c.p.gid_map_text.data(), c.p.gid_map_text.size());
}

void process_attributes(const child_ctx& c) noexcept {
    const spawn_spec& s = c.p.spec;
    injection_point(c, child_stage::setsid);
    if (s.new_session) check(c, child_stage::setsid, 0, ::setsid() >= 0);
    injection_point(c, child_stage::foreground);
    if (s.foreground) {
        // For a moment we are a background group asking for the terminal: with SIGTTOU
        // blocked that is allowed instead of stopping us. signals() unblocks it again.
        raw_block_signal(SIGTTOU);
        check(c, child_stage::foreground, 0, ::setpgid(0, 0) == 0);
        check(c, child_stage::foreground, 0, ::tcsetpgrp(STDIN_FILENO, ::getpgrp()) == 0);
    }
    injection_point(c, child_stage::pdeathsig);
    if (s.die_with_parent) {
        check(c, child_stage::pdeathsig, 0, raw_prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0);
        // The parent may have died before the prctl took effect. In a new PID namespace
        // getppid() is 0, so the check only works outside one.
        if (!c.p.new_pid && ::getppid() != c.f.parent_pid) fail(c, child_stage::pdeathsig, 0, ESRCH);
    }
}

// Read-only bind remounts must keep the flags the kernel locked on the original mount
// (nosuid, nodev, noexec, atime) or a user namespace gets EPERM.
unsigned long locked_flags(const char* target) noexcept {
    struct statfs st{};
    if (::statfs(target, &st) != 0) return 0;
    constexpr unsigned long keep =
        MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME;
    return static_cast<unsigned long>(st.f_flags) & keep;
}

// Before the job's ids are taken: mounts over the host's paths (no new root), and the sources
// a new root will bind, taken with the caller's own access (root may bind its 0700 directories).
void mounts(const child_ctx& c) noexcept {
    injection_point(c, child_stage::mount_private);
    if (c.p.make_private)
        check(c, child_stage::mount_private, 0,
              sys::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
    if (!c.p.fs_steps.empty()) {
        unsigned failed = 0;
        if (int e = run_fs_captures(c.p, c.fs_slots, failed))
            fail(c, child_stage::filesystem, failed | capture_index_bit, e);
    }
    injection_point(c, child_stage::mount_proc);
    if (c.p.mount_proc)
        check(c, child_stage::mount_proc, 0,
              sys::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
    injection_point(c, child_stage::bind_mount);
    injection_point(c, child_stage::remount_ro);
    injection_point(c, child_stage::tmpfs);
    unsigned i = 0;
    for (const mount_op& m : c.p.mounts) {
        const char* target = m.target.c_str();
        if (m.what == mount_op::kind::bind) {
            check(c, child_stage::bind_mount, i,
                  sys::mount(m.source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr));
            if (m.read_only) {
                unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(target);
                check(c, child_stage::remount_ro, i,
                      sys::mount(nullptr, target, nullptr, flags, nullptr));
            }
        } else {
            const char* data = m.data.empty() ? nullptr : m.data.c_str();
            check(c, child_stage::tmpfs, i,
                  sys::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, data));
        }
        ++i;
    }
}

// After the ids are taken: files and mount points the new root needs belong to the job.
void new_root(const child_ctx& c) noexcept {
    injection_point(c, child_stage::filesystem);
    if (c.p.fs_steps.empty()) return;
    unsigned failed = 0;
    if (int e = run_fs_steps(c.p, c.fs_slots, failed)) fail(c, child_stage::filesystem, failed, e);
}

void uts(const child_ctx& c) noexcept {
    const spawn_spec& s = c.p.spec;
    injection_point(c, child_stage::hostname);
    if (!s.hostname.empty())
        check(c, child_stage::hostname, 0, ::sethostname(s.hostname.data(), s.hostname.size()) == 0);
    injection_point(c, child_stage::domainname);
    if (!s.domainname.empty())
        check(c, child_stage::domainname, 0,
              ::setdomainname(s.domainname.data(), s.domainname.size()) == 0);
}

void loopback(const child_ctx& c) noexcept {
    injection_point(c, child_stage::loopback);
    if (!c.p.loopback) return;
    int sock = raw_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    check(c, child_stage::loopback, 0, sock >= 0);
    struct ifreq req{};
    std::memcpy(req.ifr_name, "lo", 3);
    check(c, child_stage::loopback, 0, raw_ioctl(sock, SIOCGIFFLAGS, &req) == 0);
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
    check(c, child_stage::loopback, 0, raw_ioctl(sock, SIOCSIFFLAGS, &req) == 0);
    raw_close(sock);
}

// Offsets of a time namespace can only be written before any process is in it, so the child
// unshares one for its future self (entered at execve) and writes the offsets first; the
// supervisor's own time namespace is never touched.
void time_namespace(const child_ctx& c) noexcept {
    injection_point(c, child_stage::time_ns);
    injection_point(c, child_stage::time_offsets);
    if (!c.p.unshare_time) return;
    check(c, child_stage::time_ns, 0, sys::unshare(CLONE_NEWTIME));
    int fd = raw_open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    check(c, child_stage::time_offsets, 0, fd >= 0);
    const std::string& t = c.p.time_offsets_text;
    check(c, child_stage::time_offsets, 0,
          raw_write(fd, t.data(), t.size()) == static_cast<ssize_t>(t.size()));
    raw_close(fd);
}

void limits(const child_ctx& c) noexcept {
    const spawn_spec& s = c.p.spec;
    injection_point(c, child_stage::rlimit);
    unsigned i = 0;
    for (const rlimit_setting& r : s.rlimits) {
        struct rlimit lim{r.soft, r.hard};
        check(c, child_stage::rlimit, i++,
              ::setrlimit(static_cast<__rlimit_resource>(r.resource), &lim) == 0);
    }
}

// The job's ids, taken right after the maps and before any setup: files and mount points the
// setup creates belong to the job, a new user namespace can represent the setup's own ids
// (an unmapped one makes mkdir fail with EOVERFLOW), and the parent-death signal, which the
// kernel clears on every change of ids, is set after it. The privileges the setup needs are
// kept (PR_SET_KEEPCAPS and the effective set restored from the permitted one) until
// capabilities() leaves only what the job keeps. setgroups, setresgid and setresuid are raw
// syscalls: glibc's wrappers broadcast the change to the threads of the process, which in a
// CLONE_VM child are the parent's.
void set_ids(const child_ctx& c) noexcept {
    injection_point(c, child_stage::set_ids);
    const prepared_data& p = c.p;
    if (!p.switch_ids) return;
    check(c, child_stage::set_ids, 0, raw_prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0);
    if (p.set_groups) {
        static_assert(sizeof(gid_t) == sizeof(unsigned));
        auto e = sys::setgroups_raw(p.groups.size(), reinterpret_cast<const gid_t*>(p.groups.data()));
        if (e) fail(c, child_stage::set_ids, 1, e.value());
    }
    if (auto e = sys::setresgid_raw(p.gid, p.gid, p.gid)) fail(c, child_stage::set_ids, 2, e.value());
    if (auto e = sys::setresuid_raw(p.uid, p.uid, p.uid)) fail(c, child_stage::set_ids, 3, e.value());
    std::uint64_t eff = 0, perm = 0, inh = 0;
    if (auto e = sys::capget(eff, perm, inh)) fail(c, child_stage::set_ids, 0, e.value());
    if (eff != perm) {
        if (auto e = sys::capset(perm, perm, inh)) fail(c, child_stage::set_ids, 0, e.value());
    }
}

// Capabilities leave the bounding set while CAP_SETPCAP is still ours: whatever the job
// execs later can never get them back. Then effective, permitted and inheritable become the
// kept set; ambient gets it too for a non-root job (without file capabilities that is the
// only way a set survives execve). A job that switched to a non-zero uid without a kept set
// ends with none, as setuid(2) would leave it.
void capabilities(const child_ctx& c) noexcept {
    injection_point(c, child_stage::cap_bounding);
    const prepared_data& p = c.p;
    if (p.drop_caps) {
        for (int cap = 0; cap <= p.last_cap; ++cap) {
            if ((p.keep_caps >> cap) & 1) continue;
            if (raw_prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
                // Without CAP_SETPCAP (an unprivileged caller outside a user namespace) the set
                // cannot shrink; no_new_privs then keeps anything in it from being gained.
                if (errno == EPERM && !has_setpcap()) break;
                fail(c, child_stage::cap_bounding, static_cast<unsigned>(cap), errno);
            }
        }
    }
    injection_point(c, child_stage::capabilities);
    bool none_left = p.switch_ids && p.uid != 0 && !p.drop_caps;
    if (!p.drop_caps && !none_left) return;
    std::uint64_t keep = p.drop_caps ? p.keep_caps : 0;
    if (auto e = sys::capset(keep, keep, keep)) fail(c, child_stage::capabilities, 0, e.value());
    if (p.switch_ids) check(c, child_stage::capabilities, 0, raw_prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == 0);
    if (raw_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        fail(c, child_stage::capabilities, 1, errno);
    if (p.uid == 0 || keep == 0) return;
    for (int cap = 0; cap <= p.last_cap; ++cap)
        if ((keep >> cap) & 1)
            check(c, child_stage::capabilities, 2, raw_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) == 0);
}

void privileges_and_cwd(const child_ctx& c) noexcept {
    const prepared_data& p = c.p;
    injection_point(c, child_stage::no_new_privs);
    if (p.no_new_privs)
        check(c, child_stage::no_new_privs, 0, raw_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    // After the id switch: the job's own permissions decide whether it may be there.
    injection_point(c, child_stage::chdir);
    if (!p.fs_steps.empty()) {
        if (!p.root_cwd.empty() && ::chdir(p.root_cwd.c_str()) != 0 && !p.root_cwd_optional)
            fail(c, child_stage::chdir, 0, errno);
    } else if (!p.spec.cwd.empty()) {
        check(c, child_stage::chdir, 0, ::chdir(p.spec.cwd.c_str()) == 0);
    }
}

// The filter goes on last, after the report that setup is done: a policy that refuses the
// calls drover's own last steps make cannot strand the parent without a report.
void seccomp(const child_ctx& c) noexcept {
    injection_point(c, child_stage::seccomp);
    if (!c.p.seccomp_prog) return;
    if (auto e = sys::seccomp_set_filter(c.p.seccomp_prog)) fail(c, child_stage::seccomp, 0, e.value());
}

// Each source descriptor to its target; everything else close-on-exec (go_message.hpp).
void descriptors(child_ctx& c) noexcept {
    const launch_frame& f = c.f;
    injection_point(c, child_stage::fds);
    injection_point(c, child_stage::close_fds);
    go_failure e;
    if (!place_descriptors(f.moves, f.move_count, f.max_target, f.moves_conflict, c.report_fd, e))
        fail(c, e.stage, e.index, e.err);
}

// The parent's handlers were reset to their defaults by clone3 itself (CLONE_CLEAR_SIGHAND),
// so none can run here. Signals the caller ignores go back to their defaults too, and the
// mask inherited from the spawning thread is cleared: the program starts as from a shell.
void signals(const child_ctx& c) noexcept {
    injection_point(c, child_stage::signals);
    for (int sig : c.p.ignored_signals) {
        check(c, child_stage::signals, static_cast<unsigned>(sig), raw_signal_default(sig) == 0);
    }
    check(c, child_stage::signals, 0, raw_unblock_all_signals() == 0);
}

// Tries each prepared candidate like execvp (go_message.hpp).
[[noreturn]] void exec(const child_ctx& c) noexcept {
    injection_point(c, child_stage::exec);
    const prepared_data& p = c.p;
    report(c, child_stage::none, 0, 0);
    seccomp(c);
    const char* const* candidates = c.candidates ? c.candidates : p.candidate_ptrs.data();
    unsigned count = c.candidates ? c.candidate_count : static_cast<unsigned>(p.candidate_ptrs.size());
    go_failure e;
    exec_candidates(candidates, count, c.argv ? c.argv : p.argv_ptrs.data(), c.envp ? c.envp : c.f.envp, e);
    fail(c, e.stage, e.index, e.err);
}

// The last step: execve, or (a spec without a program, for tests and benchmarks) exit 0.
[[noreturn]] void finish(const child_ctx& c) noexcept {
    if (!c.p.spec.exec) {
        injection_point(c, child_stage::exec);
        report(c, child_stage::none, 0, 0);
        seccomp(c);
        raw_exit(0);
    }
    exec(c);
}

// Closes every descriptor from `first` up but `a`, `b` and `c` (-1: none): a ready job may
// wait long, and a copy of another job's pipe end (the fork copied drover's table) would hold
// that pipe open. A job keeps its stdio (first = 3); a holder keeps nothing it was not given.
void keep_only(int a, int b, int c = -1, unsigned first = 3) noexcept {
    int keep[3] = {a, b, c};
    for (int i = 0; i < 3; ++i)  // three values: a sorting network of three swaps
        for (int j = i + 1; j < 3; ++j)
            if (keep[j] < keep[i]) {
                int t = keep[i];
                keep[i] = keep[j];
                keep[j] = t;
            }
    unsigned from = first;
    for (int k : keep) {
        if (k < static_cast<int>(from)) continue;
        if (k > static_cast<int>(from)) (void)sys::close_range(from, static_cast<unsigned>(k - 1), 0);
        from = static_cast<unsigned>(k) + 1;
    }
    (void)sys::close_range(from, ~0U, 0);
}

// A holder with a program to wait in (stub_fd: drover_holder, or drover_ready_stub --hold):
// the hold pipe goes to descriptor 0 and it execs that, so that it stops sharing or copying
// drover's memory. On the posix_spawn path that execve is what lets the refill thread go on.
[[noreturn]] void exec_holder_stub(const child_ctx& c) noexcept {
    const launch_frame& f = c.f;
    // Descriptor 0 is free once the pipe's end is there (a stub or report at 0 moves first).
    int stub = f.stub_fd, rep = f.report_write;
    if (stub == 0) check(c, child_stage::ready_stub, 0, (stub = raw_fcntl(0, F_DUPFD_CLOEXEC, 3)) >= 0);
    if (rep == 0) check(c, child_stage::ready_stub, 0, (rep = raw_fcntl(0, F_DUPFD_CLOEXEC, 3)) >= 0);
    // dup3 without flags leaves the copy open across execve; a pipe already at 0 is made so.
    if (f.hold_read != 0) check(c, child_stage::ready_stub, 0, raw_dup3(f.hold_read, 0) == 0);
    else check(c, child_stage::ready_stub, 0, raw_fcntl(0, F_SETFD, 0) == 0);
    // Everything else goes, stdio too (a holder must not keep drover's output open); the
    // report pipe (fork path) stays close-on-exec, so that a failed execve can still say so.
    keep_only(0, stub, rep, 0);
    char name[] = "drover-holder";
    char mode[] = "--hold";
    char* const argv[] = {name, mode, nullptr};
    raw_execveat(stub, "", argv, f.envp, AT_EMPTY_PATH);
    // Its own stage (the report is in our memory on this path): make_warm_set makes the set
    // again without the stub.
    fail(c, child_stage::ready_stub, 0, errno);
}

// A warm set's holder, once its namespaces are set up: says so, keeps nothing of drover's
// but the hold pipe, and waits there. It is PID 1 of the set's first PID namespace; the job
// gets a second one below it (see warm.hpp), so a /proc beneath the job's own shows no host
// process. EOF (the set was dropped, or drover is gone) or SIGKILL ends it, and with it every
// process of the set.

[[noreturn]] void hold(const child_ctx& c) noexcept {
    const launch_frame& f = c.f;
    report(c, child_stage::none, 0, 0);
    if (f.stub_fd >= 0) exec_holder_stub(c);
    if (f.hold_read > 0) (void)sys::close_range(0, static_cast<unsigned>(f.hold_read - 1), 0);
    (void)sys::close_range(static_cast<unsigned>(f.hold_read + 1), ~0U, 0);
    for (;;) {
        char byte;
        ssize_t n = raw_read(f.hold_read, &byte, 1);
        if (n == 0 || (n < 0 && errno != EINTR)) raw_exit(0);
    }
}

[[noreturn]] void run_holder(child_ctx& c) noexcept {
    wait_for_maps(c);
    write_own_maps(c);
    mounts(c);
    set_ids(c);
    // No parent-death signal: that follows the thread that made the holder (a pool's refill
    // thread), not drover. EOF on the hold pipe comes when drover is gone, however it ends.
    new_root(c);
    uts(c);
    loopback(c);
    hold(c);
}

// Between drover and a warm job: joins the holder's namespaces (one setns through its pidfd),
// then clone3s the job as drover's child (CLONE_PARENT), in a PID namespace of its own below
// the holder's. It shares drover's descriptor table, and either drover's memory (the job on
// a stack of its own, results left in the frame) or, fork-style, a copy (results written to
// entry_result).
[[noreturn]] void run_entry(const launch_frame& f) noexcept {
    int err = 0;
    sys::clone3_result r;
    if (f.plan->spec.inject_failure == child_stage::enter_set) {
        err = EPERM;
    } else if (auto e = sys::setns(f.set_pidfd, static_cast<int>(f.set_flags))) {
        err = e.value();
    } else {
        sys::clone3_args a;
        a.flags = f.job_clone_flags;
        // clone3 wants 0 with CLONE_PARENT; the job takes ours (SIGCHLD), so a plain waitid
        // sees it.
        a.exit_signal = 0;
        a.cgroup_fd = f.job_cgroup_fd;
        std::error_code ec;
        if (f.job_stack) {
            r = sys::clone3_vm(a, f.job_stack, f.job_stack_size, child_entry, const_cast<launch_frame*>(f.job_frame), ec);
        } else {
            r = sys::clone3(a, ec);
            if (!ec && r.pid == 0) run_child(*f.job_frame);
        }
        if (ec) err = ec.value();
    }
    f.entry_err = err;
    f.job_pid = r.pid;
    f.job_pidfd = r.pidfd;
    if (f.entry_result >= 0) {
        int msg[3] = {err, static_cast<int>(r.pid), r.pidfd};
        (void)raw_write(f.entry_result, msg, sizeof msg);
    }
    raw_exit(err ? 127 : 0);
}

// The job of a warm set: its namespaces are set up; what is its own comes here. A cgroup
// namespace is made now, rooted at the job's own cgroup (as a cold job's is), and /proc is a
// fresh procfs of its own PID namespace.
[[noreturn]] void run_warm_job(child_ctx& c) noexcept {
    join_cgroups(c);
    if (c.p.spec.namespaces.has(ns::cgroup))
        check(c, child_stage::enter_set, 1, sys::unshare(CLONE_NEWCGROUP));
    injection_point(c, child_stage::mount_proc);
    unsigned i = 0;
    for (const std::string& t : c.p.proc_targets)
        check(c, child_stage::mount_proc, i++,
              sys::mount("proc", t.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
    set_ids(c);
    process_attributes(c);
    limits(c);
    capabilities(c);
    privileges_and_cwd(c);
    descriptors(c);
    signals(c);
    finish(c);
}


// Decimal digits of v into buf (at least 21 bytes), async-signal-safe; returns buf.
char* decimal(std::int64_t v, char* buf) noexcept {
    char tmp[21];
    int n = 0;
    std::uint64_t u = v < 0 ? 0 : static_cast<std::uint64_t>(v);
    do tmp[n++] = static_cast<char>('0' + u % 10);
    while ((u /= 10) != 0);
    for (int i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

// A pre-started job, set up, waiting in drover_ready_stub (src/stub/ready_stub.cpp): its
// signals and seccomp filter are put in place now, off the job's latency path, and it execs
// the stub through its descriptor (found whatever the root is now). The stub says it is
// ready, and takes the go message as await_go() would. The report pipe and go socket survive
// that execve; the stub marks them close-on-exec again.
[[noreturn]] void exec_ready_stub(child_ctx& c) noexcept {
    const launch_frame& f = c.f;
    signals(c);
    seccomp(c);
    keep_only(f.report_write, f.go_fd, f.stub_fd);
    check(c, child_stage::exec, 0, raw_fcntl(f.report_write, F_SETFD, 0) == 0);
    check(c, child_stage::exec, 0, raw_fcntl(f.go_fd, F_SETFD, 0) == 0);
    char go[24], rep[24], start[24];
    char name[] = "drover-ready-stub";
    char* const argv[] = {name, decimal(f.go_fd, go), decimal(f.report_write, rep), decimal(c.start, start), nullptr};
    injection_point(c, child_stage::ready_stub);
    raw_execveat(f.stub_fd, "", argv, f.envp, AT_EMPTY_PATH);
    // Its own stage: drover makes the set again without the stub (make_warm_set).
    fail(c, child_stage::ready_stub, 0, errno);
}

// A pre-started job, set up: says it is ready, keeps nothing of drover's but its stdio, the
// report pipe and the go socket, and waits there for its program and descriptors. EOF (the
// set dropped, or drover gone) ends it. See warm.hpp.
[[noreturn]] void await_go(child_ctx& c) noexcept {
    const launch_frame& f = c.f;
    report(c, child_stage::none, 0, 0);
    keep_only(f.report_write, f.go_fd);
    go_message m;
    go_failure e;
    if (!receive_go(f.go_fd, m, e)) {
        if (e.err == 0) raw_exit(0);  // dropped before use
        fail(c, e.stage, e.index, e.err);
    }
    raw_close(f.go_fd);
    // Its descriptors: drover's numbering is gone, the received ones take its place.
    launch_frame jf = f;
    jf.move_count = go_moves(m, jf.moves, jf.max_target, jf.moves_conflict);
    child_ctx jc{jf, c.p, sys::monotonic_ns(), c.report_fd, c.fs_slots};
    jc.candidates = m.candidates;
    jc.candidate_count = m.h.candidates;
    jc.argv = m.argv;
    jc.envp = m.envp ? m.envp : f.envp;
    descriptors(jc);
    signals(jc);
    finish(jc);
}

}  // namespace

void child_entry(void* frame) noexcept { run_child(*static_cast<const launch_frame*>(frame)); }

void run_child(const launch_frame& frame) noexcept {
    if (frame.role == child_role::entry) run_entry(frame);
    int slots[max_fs_slots];
    child_ctx c{frame, *frame.plan, sys::monotonic_ns(), frame.report_write, slots};
    if (frame.role == child_role::holder) run_holder(c);
    if (frame.role == child_role::warm_job) run_warm_job(c);
    wait_for_maps(c);
    join_cgroups(c);
    write_own_maps(c);
    mounts(c);
    set_ids(c);
    process_attributes(c);
    new_root(c);
    uts(c);
    loopback(c);
    time_namespace(c);
    limits(c);
    capabilities(c);
    privileges_and_cwd(c);
    // A pre-started job stops here until its program and descriptors arrive.
    if (frame.role == child_role::ready) {
        if (frame.stub_fd >= 0) exec_ready_stub(c);
        await_go(c);
    }
    descriptors(c);
    signals(c);
    finish(c);
}

}  // namespace drover::detail
