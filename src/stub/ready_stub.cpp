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
// It says it is ready with a report record, then reads a go_header, the job's descriptors
// (SCM_RIGHTS) and its strings from GO_FD; puts the descriptors at their targets; writes the
// "about to execve" record and tries each execve candidate like execvp. A failure is a report
// record naming the stage (fds or exec) and the errno, then exit 127: the records drover's own
// child writes, read by the same code. EOF on GO_FD (the set dropped, or drover gone) ends it.
// Every syscall here must be one a job's filter lets through: drover checks that before it
// uses the stub (ready_stub_allowed in launch.cpp).
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "drover/spawn/stages.hpp"
#include "spawn/wire.hpp"

extern char** environ;

namespace {

using drover::child_stage;
using drover::detail::child_report;
using drover::detail::go_header;

int report_fd = -1;
std::int64_t child_start = 0;

std::int64_t now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

void record(child_stage stage, unsigned index, int err) {
    child_report r{static_cast<std::uint16_t>(stage), static_cast<std::uint16_t>(index), err, child_start, now_ns()};
    const char* p = reinterpret_cast<const char*>(&r);
    std::size_t left = sizeof r;
    while (left > 0) {
        ssize_t n = write(report_fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

[[noreturn]] void fail(child_stage stage, unsigned index, int err) {
    record(stage, index, err);
    _exit(127);
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

bool read_full(int fd, char* buf, std::size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        buf += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

bool take_strings(char*& pos, char* end, char** out, unsigned count) {
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

// Each received descriptor to its target, as drover's child does it (child.cpp,
// descriptors()): through fresh numbers above every target when one source sits on another's
// target; the report pipe moved out of the way first; everything else close-on-exec.
void place(const go_header& h, int* sources) {
    int max_target = 2;
    for (int i = 0; i < h.fd_count; ++i)
        if (h.targets[i] > max_target) max_target = h.targets[i];
    int floor = max_target + 1;
    for (int i = 0; i < h.fd_count; ++i)
        if (sources[i] >= floor) floor = sources[i] + 1;
    if (report_fd >= floor) floor = report_fd + 1;
    if (report_fd <= max_target) {
        int moved = fcntl(report_fd, F_DUPFD_CLOEXEC, floor);
        if (moved < 0) fail(child_stage::fds, static_cast<unsigned>(report_fd), errno);
        report_fd = moved;
        floor = moved + 1;
    }
    bool conflict = false;
    for (int i = 0; i < h.fd_count; ++i)
        for (int j = 0; j < h.fd_count; ++j)
            if (i != j && sources[i] == h.targets[j]) conflict = true;
    if (conflict) {
        for (int i = 0; i < h.fd_count; ++i) {
            sources[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, floor);
            if (sources[i] < 0) fail(child_stage::fds, static_cast<unsigned>(h.targets[i]), errno);
        }
    }
    for (int i = 0; i < h.fd_count; ++i) {
        const int target = h.targets[i];
        const bool ok = sources[i] == target ? fcntl(target, F_SETFD, 0) == 0 : dup3(sources[i], target, 0) >= 0;
        if (!ok) fail(child_stage::fds, static_cast<unsigned>(target), errno);
    }
    if (syscall(SYS_close_range, static_cast<unsigned>(max_target + 1), ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        fail(child_stage::close_fds, 0, errno);
    for (int fd = 3; fd <= max_target; ++fd) {
        bool named = false;
        for (int i = 0; i < h.fd_count; ++i) named = named || h.targets[i] == fd;
        if (!named && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF) fail(child_stage::close_fds, static_cast<unsigned>(fd), errno);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) return 2;
    const int go_fd = parse_fd(argv[1]);
    report_fd = parse_fd(argv[2]);
    child_start = parse_ns(argv[3]);
    if (go_fd < 0 || report_fd < 0 || child_start < 0) return 2;
    // The pipe's end must close at the job's execve: that EOF is how drover learns it ran.
    if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(go_fd, F_SETFD, FD_CLOEXEC) != 0) return 2;
    record(child_stage::none, 0, 0);  // ready

    go_header h;
    constexpr int max_fds = sizeof h.targets / sizeof h.targets[0];
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    iovec iov{&h, sizeof h};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = recvmsg(go_fd, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    if (n == 0) _exit(0);  // dropped before use
    int received[max_fds];
    int got = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (std::size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <= cm->cmsg_len && got < max_fds; ++i)
                std::memcpy(&received[got++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
    if (n != static_cast<ssize_t>(sizeof h) || h.magic != go_header::magic_value || h.blob > drover::detail::go_blob_max ||
        h.fd_count > max_fds || got != h.fd_count || (msg.msg_flags & MSG_CTRUNC))
        fail(child_stage::fds, 0, EPROTO);
    for (int i = 0; i < h.fd_count; ++i)
        if (h.targets[i] < 0 || h.targets[i] >= (1 << 20)) fail(child_stage::fds, 0, EPROTO);
    const unsigned envs = h.env_count == go_header::env_inherit ? 0 : h.env_count;
    const std::size_t strings = (static_cast<std::size_t>(h.blob) + sizeof(char*) - 1) & ~(sizeof(char*) - 1);
    const std::size_t ptrs = (static_cast<std::size_t>(h.candidates) + h.argc + envs + 3) * sizeof(char*);
    void* mem = mmap(nullptr, strings + ptrs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fail(child_stage::exec, 0, ENOMEM);
    char* blob = static_cast<char*>(mem);
    if (!read_full(go_fd, blob, h.blob)) fail(child_stage::fds, 1, EPROTO);
    close(go_fd);
    char** cand = reinterpret_cast<char**>(blob + strings);
    char** args = cand + h.candidates + 1;
    char** envp = args + h.argc + 1;
    char* pos = blob;
    char* end = blob + h.blob;
    if (!take_strings(pos, end, cand, h.candidates) || !take_strings(pos, end, args, h.argc) ||
        (envs && !take_strings(pos, end, envp, envs)))
        fail(child_stage::fds, 2, EPROTO);
    place(h, received);

    record(child_stage::none, 0, 0);  // about to execve
    int err = ENOENT;
    bool saw_eacces = false;
    unsigned idx = 0, eacces_idx = 0;
    for (unsigned i = 0; i < h.candidates; ++i) {
        execve(cand[i], args, envs ? envp : environ);
        err = errno;
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
    fail(child_stage::exec, idx, err);
}
