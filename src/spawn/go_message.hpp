// A pre-started job's go message, taken and acted on in raw system calls: shared by drover's
// child (await_go and the descriptor step of every job, child.cpp) and drover_ready_stub,
// which runs without drover's library. Async-signal-safe, no glibc wrapper that is a
// cancellation point or that a sanitizer intercepts (tests/child_symbols.sh).
#pragma once

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "drover/spawn/stages.hpp"
#include "wire.hpp"

namespace drover::detail {

/// What failed: the stage, which index (fd, candidate) and the errno; err 0: nothing.
struct go_failure {
    child_stage stage = child_stage::none;
    unsigned index = 0;
    int err = 0;
};

inline constexpr int go_max_fds = sizeof(go_header::targets) / sizeof(go_header::targets[0]);

/// A go message taken apart. The strings live in a fresh private mapping that execve drops.
struct go_message {
    go_header h;
    int fds[go_max_fds];
    char** candidates = nullptr;
    char** argv = nullptr;
    char** envp = nullptr;  // null: the environment the job was started with
};

// A system call: -1 and go_errno() on failure. drover_ready_stub on x86-64 has no C library
// (stub/nolibc.hpp, included before this, defines both there; DROVER_NOLIBC).
#ifndef DROVER_NOLIBC
inline long go_sys(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) noexcept {
    return ::syscall(nr, a, b, c, d, e, f);
}
inline int go_errno() noexcept { return errno; }
#endif

// Reads exactly n bytes (a stream socket may split the blob).
inline bool go_read_full(int fd, char* buf, std::size_t n) noexcept {
    while (n > 0) {
        long r = go_sys(SYS_read, fd, reinterpret_cast<long>(buf), static_cast<long>(n));
        if (r < 0 && go_errno() == EINTR) continue;
        if (r <= 0) return false;
        buf += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

// Points `out[0..count)` at the next `count` NUL-terminated strings of [pos, end); false if
// the blob has fewer.
inline bool go_take_strings(char*& pos, char* end, char** out, unsigned count) noexcept {
    for (unsigned i = 0; i < count; ++i) {
        char* s = pos;
        while (pos < end && *pos) ++pos;
        if (pos >= end) return false;
        out[i] = s;
        ++pos;
    }
    out[count] = nullptr;
    return true;
}

/// Waits for the go message on `go_fd` and takes it apart. false with f.err 0: EOF, the set
/// was dropped before use; false with `f` set: a message drover did not send.
inline bool receive_go(int go_fd, go_message& m, go_failure& f) noexcept {
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * go_max_fds)];
    struct iovec iov{&m.h, sizeof m.h};
    struct msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    long n;
    do n = go_sys(SYS_recvmsg, go_fd, reinterpret_cast<long>(&msg), MSG_CMSG_CLOEXEC | MSG_WAITALL);
    while (n < 0 && go_errno() == EINTR);
    if (n == 0) return false;
    const go_header& h = m.h;
    int got = 0;
    for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (std::size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= cm->cmsg_len && got < go_max_fds; ++i)
                std::memcpy(&m.fds[got++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
    bool ok = n == static_cast<long>(sizeof h) && h.magic == go_header::magic_value && h.blob <= go_blob_max &&
              h.fd_count <= go_max_fds && got == h.fd_count && !(msg.msg_flags & MSG_CTRUNC);
    for (int i = 0; ok && i < h.fd_count; ++i) ok = h.targets[i] >= 0 && h.targets[i] < (1 << 20);
    if (!ok) {
        f = {child_stage::fds, 0, EPROTO};
        return false;
    }
    // Strings, then room for the pointer arrays (each with its terminating null).
    const unsigned envs = h.env_count == go_header::env_inherit ? 0 : h.env_count;
    const std::size_t strings = (static_cast<std::size_t>(h.blob) + sizeof(char*) - 1) & ~(sizeof(char*) - 1);
    const std::size_t ptrs = (static_cast<std::size_t>(h.candidates) + h.argc + envs + 3) * sizeof(char*);
    void* mem = reinterpret_cast<void*>(
        go_sys(SYS_mmap, 0, static_cast<long>(strings + ptrs), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (mem == MAP_FAILED) {
        f = {child_stage::exec, 0, ENOMEM};
        return false;
    }
    char* blob = static_cast<char*>(mem);
    if (!go_read_full(go_fd, blob, h.blob)) {
        f = {child_stage::fds, 1, EPROTO};
        return false;
    }
    m.candidates = reinterpret_cast<char**>(blob + strings);
    m.argv = m.candidates + h.candidates + 1;
    char** envp = m.argv + h.argc + 1;
    char* pos = blob;
    char* end = blob + h.blob;
    if (!go_take_strings(pos, end, m.candidates, h.candidates) || !go_take_strings(pos, end, m.argv, h.argc) ||
        (envs && !go_take_strings(pos, end, envp, envs))) {
        f = {child_stage::fds, 2, EPROTO};
        return false;
    }
    m.envp = envs ? envp : nullptr;
    return true;
}

/// The message's descriptors as moves (received number to target), with the highest target
/// and whether some source sits on another move's target. Returns how many.
inline int go_moves(const go_message& m, fd_move* moves, int& max_target, bool& conflict) noexcept {
    max_target = 2;
    conflict = false;
    for (int i = 0; i < m.h.fd_count; ++i) {
        moves[i] = {m.h.targets[i], m.fds[i]};
        if (m.h.targets[i] > max_target) max_target = m.h.targets[i];
    }
    for (int i = 0; i < m.h.fd_count; ++i)
        for (int j = 0; j < m.h.fd_count; ++j)
            if (i != j && moves[i].source == moves[j].target) conflict = true;
    return m.h.fd_count;
}

/// Puts each source descriptor at its target. With `conflict` every source first goes to a
/// fresh descriptor above all of them, so no dup3 clobbers a source. The report pipe may sit
/// where a target goes (fd 7 of pass_fds, say): it moves above every target first, and
/// `report_fd` follows it. Every descriptor the moves do not name is marked close-on-exec,
/// not closed, so the report pipe stays usable until execve closes them all at once.
inline bool place_descriptors(const fd_move* moves, int count, int max_target, bool conflict, int& report_fd,
                              go_failure& f) noexcept {
    int sources[go_max_fds];
    int floor = max_target + 1;
    for (int i = 0; i < count; ++i) {
        sources[i] = moves[i].source;
        if (sources[i] >= floor) floor = sources[i] + 1;
    }
    if (report_fd >= floor) floor = report_fd + 1;
    if (report_fd >= 0 && report_fd <= max_target) {  // -1: the report goes to memory (vfork)
        long moved = go_sys(SYS_fcntl, report_fd, F_DUPFD_CLOEXEC, floor);
        if (moved < 0) {
            f = {child_stage::fds, static_cast<unsigned>(report_fd), go_errno()};
            return false;
        }
        report_fd = static_cast<int>(moved);
        floor = report_fd + 1;
    }
    if (conflict) {
        for (int i = 0; i < count; ++i) {
            sources[i] = static_cast<int>(go_sys(SYS_fcntl, sources[i], F_DUPFD_CLOEXEC, floor));
            if (sources[i] < 0) {
                f = {child_stage::fds, static_cast<unsigned>(moves[i].target), go_errno()};
                return false;
            }
        }
    }
    for (int i = 0; i < count; ++i) {
        const int target = moves[i].target;
        const bool ok = sources[i] == target ? go_sys(SYS_fcntl, target, F_SETFD, 0) == 0  // only survive execve
                                             : go_sys(SYS_dup3, sources[i], target, 0) >= 0;
        if (!ok) {
            f = {child_stage::fds, static_cast<unsigned>(target), go_errno()};
            return false;
        }
    }
    if (go_sys(SYS_close_range, max_target + 1, static_cast<long>(~0U), CLOSE_RANGE_CLOEXEC) != 0) {
        f = {child_stage::close_fds, 0, go_errno()};
        return false;
    }
    for (int fd = 3; fd <= max_target; ++fd) {
        bool named = false;
        for (int i = 0; i < count; ++i) named = named || moves[i].target == fd;
        if (!named && go_sys(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC) < 0 && go_errno() != EBADF) {
            f = {child_stage::close_fds, static_cast<unsigned>(fd), go_errno()};
            return false;
        }
    }
    return true;
}

/// Tries each candidate like execvp: on past ENOENT, ENOTDIR and EACCES (reported if nothing
/// better turns up), stop at anything else. Returns only if none ran, with stage exec, the
/// candidate's index and the errno in `f`.
inline void exec_candidates(const char* const* candidates, unsigned count, char* const* argv, char* const* envp,
                            go_failure& f) noexcept {
    int err = ENOENT;
    bool saw_eacces = false;
    unsigned idx = 0, eacces_idx = 0;
    for (unsigned i = 0; i < count; ++i) {
        go_sys(SYS_execve, reinterpret_cast<long>(candidates[i]), reinterpret_cast<long>(argv),
               reinterpret_cast<long>(envp));
        err = go_errno();
        idx = i;
        if (err == EACCES && !saw_eacces) {
            saw_eacces = true;
            eacces_idx = i;
        }
        if (err != ENOENT && err != ENOTDIR && err != EACCES) break;
    }
    if (saw_eacces && (err == ENOENT || err == ENOTDIR)) {
        err = EACCES;
        idx = eacces_idx;
    }
    f = {child_stage::exec, idx, err};
}

}  // namespace drover::detail
