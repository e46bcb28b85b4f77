// drover_ready_stub: where a pre-started job waits for its program (warm_options::prestart).
//
// drover's child sets the job's sandbox up all the way — namespaces, root, /proc, ids,
// capabilities, limits, no_new_privs, cwd, signals and the seccomp filter — and then execs
// this small static program through a descriptor (execveat, AT_EMPTY_PATH), so that it is
// found whatever root the job has. From then on the waiting job holds none of drover's memory,
// and starting it is one message and one execve: no clone3, no setup, no filter to compile or
// install, and no copy of drover's page tables to tear down.
//
//   drover_ready_stub GO_FD REPORT_FD CHILD_START_NS
//
// It says it is ready with a report record, then takes the go message from GO_FD, puts the
// job's descriptors at their targets, writes the "about to execve" record and tries each
// candidate like execvp: the same code as drover's own child (spawn/go_message.hpp). A failure is a report
// record naming the stage (fds or exec) and the errno, then exit 127: the records drover's own
// child writes, read by the same code. EOF on GO_FD (the set dropped, or drover gone) ends it.
// Every syscall here must be one a job's filter lets through: drover checks that before it
// uses the stub (ready_stub_allowed in launch.cpp).
//
//   drover_ready_stub --hold
//
// A warm set's holder, set up, waits here where drover_holder (stub/holder.cpp, the same
// without a C library) is missing: it reads descriptor 0 (the hold pipe) until EOF (the set
// dropped, or drover gone) and exits.
//
// On x86-64 it has no C library (DROVER_NOLIBC, stub/nolibc.hpp): a static glibc program's
// start-up runs cpuid, which traps to the hypervisor on some VMs and cost most of a
// millisecond per pre-started job here, and it makes ten more kinds of system call a job's
// filter would have to allow. Elsewhere it is a static glibc program.
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>

#include <cerrno>
#include <cstdint>

#include "drover/spawn/stages.hpp"
#if DROVER_NOLIBC
#include "stub/nolibc.hpp"
#else
#include <unistd.h>
#endif
#include "spawn/go_message.hpp"

namespace {

using drover::child_stage;
using namespace drover::detail;

int report_fd = -1;
std::int64_t child_start = 0;

[[noreturn]] void exit_now(int code) {
    go_sys(SYS_exit_group, code);
    __builtin_unreachable();
}

std::int64_t now_ns() {
    timespec t{};
    go_sys(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&t));
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

void record(child_stage stage, unsigned index, int err) {
    child_report r{static_cast<std::uint16_t>(stage), static_cast<std::uint16_t>(index), err, child_start, now_ns()};
    const char* p = reinterpret_cast<const char*>(&r);
    std::size_t left = sizeof r;
    while (left > 0) {
        long n = go_sys(SYS_write, report_fd, reinterpret_cast<long>(p), static_cast<long>(left));
        if (n < 0 && go_errno() == EINTR) continue;
        if (n <= 0) return;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

[[noreturn]] void fail(child_stage stage, unsigned index, int err) {
    record(stage, index, err);
    exit_now(127);
}

// A descriptor number from argv: digits only, below 2^20.
int parse_fd(const char* s) {
    long v = 0;
    if (!*s) return -1;
    for (; *s; ++s) {
        if (*s < '0' || *s > '9' || v > (1 << 20)) return -1;
        v = v * 10 + (*s - '0');
    }
    return v < (1 << 20) ? static_cast<int>(v) : -1;
}

std::int64_t parse_ns(const char* s) {
    std::int64_t v = 0;
    if (!*s) return -1;
    for (; *s; ++s) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

// --hold: the hold pipe is descriptor 0.
[[noreturn]] void hold() {
    for (;;) {
        char byte;
        long n = go_sys(SYS_read, 0, reinterpret_cast<long>(&byte), 1);
        if (n == 0 || (n < 0 && go_errno() != EINTR)) exit_now(0);
    }
}

[[noreturn]] void run(int argc, char** argv, char** envp) {
    if (argc == 2 && argv[1][0] == '-' && argv[1][1] == '-' && argv[1][2] == 'h') hold();  // --hold
    if (argc != 4) exit_now(2);
    const int go_fd = parse_fd(argv[1]);
    report_fd = parse_fd(argv[2]);
    child_start = parse_ns(argv[3]);
    if (go_fd < 0 || report_fd < 0 || child_start < 0) exit_now(2);
    // The pipe's end must close at the job's execve: that EOF is how drover learns it ran.
    if (go_sys(SYS_fcntl, report_fd, F_SETFD, FD_CLOEXEC) != 0 || go_sys(SYS_fcntl, go_fd, F_SETFD, FD_CLOEXEC) != 0)
        exit_now(2);
    record(child_stage::none, 0, 0);  // ready

    go_message m;
    go_failure e;
    if (!receive_go(go_fd, m, e)) {
        if (e.err == 0) exit_now(0);  // dropped before use
        fail(e.stage, e.index, e.err);
    }
    go_sys(SYS_close, go_fd);
    fd_move moves[drover::detail::go_max_fds];
    int max_target = 2;
    bool conflict = false;
    const int count = go_moves(m, moves, max_target, conflict);
    if (!place_descriptors(moves, count, max_target, conflict, report_fd, e)) fail(e.stage, e.index, e.err);

    record(child_stage::none, 0, 0);  // about to execve
    exec_candidates(m.candidates, m.h.candidates, m.argv, m.envp ? m.envp : envp, e);
    fail(e.stage, e.index, e.err);
}

}  // namespace

#if DROVER_NOLIBC
// The kernel's initial stack: argc, argv[0..argc), null, envp..., null. The entry point keeps
// that address, aligns the stack as a call expects and never returns.
extern "C" [[noreturn]] __attribute__((used)) void stub_start(long* sp) {
    const int argc = static_cast<int>(sp[0]);
    char** argv = reinterpret_cast<char**>(sp + 1);
    run(argc, argv, argv + argc + 1);
}

extern "C" __attribute__((naked, noreturn)) void _start() {
    __asm__ volatile(
        "xor %ebp, %ebp\n\t"
        "mov %rsp, %rdi\n\t"
        "and $-16, %rsp\n\t"
        "call stub_start\n\t"
        "hlt\n");
}

// What the compiler may call for a copy or a clear of its own (built with
// -fno-tree-loop-distribute-patterns, so these loops do not become calls to themselves).
extern "C" {
__attribute__((used)) void* memcpy(void* dst, const void* src, std::size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    while (n--) *d++ = *s++;
    return dst;
}
__attribute__((used)) void* memmove(void* dst, const void* src, std::size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    const auto* s = static_cast<const unsigned char*>(src);
    if (d < s)
        while (n--) *d++ = *s++;
    else
        while (n--) d[n] = s[n];
    return dst;
}
__attribute__((used)) void* memset(void* dst, int c, std::size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    while (n--) *d++ = static_cast<unsigned char>(c);
    return dst;
}
}
#else
extern char** environ;
int main(int argc, char** argv) { run(argc, argv, environ); }
#endif
