// Probes for the kernel features drover cannot work without (see kernel.hpp).
#include "drover/sys/kernel.hpp"

#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace drover::sys {

namespace {

// Each probe is a call that does nothing where the feature exists and fails with ENOSYS or
// EINVAL where it does not.
bool has_clone3() {
    // A null argument of size 0: EINVAL (size too small) where clone3 exists.
    return ::syscall(SYS_clone3, nullptr, 0) < 0 && errno != ENOSYS;
}

int open_own_pidfd() { return static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)); }

bool has_waitid_pidfd(int pidfd) {
    // Ourselves are not our child: ECHILD where P_PIDFD is known, EINVAL where it is not.
    siginfo_t info{};
    return ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) < 0 &&
           errno == ECHILD;
}

bool has_close_range_cloexec() {
    // An empty stretch at the top of the fd space: nothing is touched.
    return ::syscall(SYS_close_range, ~0U, ~0U, CLOSE_RANGE_CLOEXEC) == 0;
}

std::string probe() {
    std::string missing;
    auto add = [&](const char* what) { missing += (missing.empty() ? "" : ", ") + std::string(what); };
    if (!has_clone3()) add("clone3 (Linux 5.3)");
    int pidfd = open_own_pidfd();
    if (pidfd < 0) {
        add("pidfd_open (Linux 5.3)");
    } else {
        if (!has_waitid_pidfd(pidfd)) add("waitid(P_PIDFD) (Linux 5.4)");
        ::close(pidfd);
    }
    if (!has_close_range_cloexec()) add("close_range(CLOSE_RANGE_CLOEXEC) (Linux 5.11)");
    if (missing.empty()) return {};
    utsname u{};
    std::string release = ::uname(&u) == 0 ? u.release : "unknown";
    return "this kernel (" + release + ") lacks " + missing + ": drover needs Linux 5.11 or later" +
           " (seccomp or a container runtime may also hide these calls)";
}

}  // namespace

const std::string& missing_kernel_features() {
    static const std::string missing = probe();  // thread-safe initialisation
    return missing;
}

}  // namespace drover::sys
