// Finding drover_ready_stub (src/stub/ready_stub.cpp), where pre-started jobs wait for their
// program, and deciding whether a spec's jobs may wait there (warm.hpp).
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "drover/spawn/seccomp.hpp"
#include "drover/spawn/warm.hpp"
#include "plan.hpp"

namespace drover {

namespace detail {

namespace {

// Every syscall the stub makes from its execveat to the job's execve. A filter that refuses
// one of them would break the stub, so the job waits in drover's own child instead.
struct needed_call {
    const char* name;
    long nr;
};
constexpr needed_call stub_calls[] = {
    {"execveat", SYS_execveat},   {"execve", SYS_execve},
#if !defined(__x86_64__)
    // Elsewhere the stub is a static glibc program: its start-up's calls (strace).
#ifdef SYS_readlink
    {"readlink", SYS_readlink},
#endif
    {"brk", SYS_brk},             {"mprotect", SYS_mprotect},
    {"getrandom", SYS_getrandom}, {"prlimit64", SYS_prlimit64},
    {"rseq", SYS_rseq},           {"set_robust_list", SYS_set_robust_list},
    {"set_tid_address", SYS_set_tid_address}, {"exit", SYS_exit},
#endif
    {"mmap", SYS_mmap},           {"fcntl", SYS_fcntl},
    {"recvmsg", SYS_recvmsg},     {"read", SYS_read},
    {"write", SYS_write},         {"close", SYS_close},
    {"dup3", SYS_dup3},           {"close_range", SYS_close_range},
    {"clock_gettime", SYS_clock_gettime}, {"exit_group", SYS_exit_group},
};

std::string find_stub() {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("DROVER_READY_STUB"); env && *env) {
        if (std::string_view(env) == "none") return {};
        candidates.emplace_back(env);
    }
#ifdef DROVER_READY_STUB
    candidates.emplace_back(DROVER_READY_STUB);
#endif
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(self.parent_path() / "drover_ready_stub");
        candidates.push_back(self.parent_path() / ".." / "libexec" / "drover" / "drover_ready_stub");
    }
    for (const fs::path& c : candidates)
        if (::access(c.c_str(), X_OK) == 0) return c.string();
    return {};
}

}  // namespace

int ready_stub_fd() noexcept {
    // Opened once, for the life of the process: every pre-started job execs it through this
    // descriptor, whatever root it has by then.
    static const int fd = [] {
        try {
            const std::string path = find_stub();
            return path.empty() ? -1 : ::open(path.c_str(), O_PATH | O_CLOEXEC);
        } catch (...) {
            return -1;
        }
    }();
    return fd;
}

int holder_fd() noexcept {
    // drover_holder lives beside the stub (built and installed together).
    static const int fd = [] {
        try {
            const std::string stub = find_stub();
            if (stub.empty()) return -1;
            const auto path = std::filesystem::path(stub).parent_path() / "drover_holder";
            return ::access(path.c_str(), X_OK) == 0 ? ::open(path.c_str(), O_PATH | O_CLOEXEC) : -1;
        } catch (...) {
            return -1;
        }
    }();
    return fd;
}

}  // namespace detail

std::string ready_stub_unusable(const prepared_spawn& p) {
    const spawn_spec& s = p.spec();
    if (!s.exec) return "the spec runs no program";
    if (s.inject_failure != child_stage::none && s.inject_failure != child_stage::ready_stub)
        return "a failure is injected (a test hook only drover's child knows)";
    if (detail::ready_stub_fd() < 0) return "drover_ready_stub was not found (or DROVER_READY_STUB=none)";
    if (s.seccomp)
        for (const auto& [name, nr] : detail::stub_calls)
            if (!s.seccomp->allows(static_cast<int>(nr)))
                return std::string("the seccomp filter refuses ") + name + ", which drover_ready_stub needs";
    return {};
}

}  // namespace drover
