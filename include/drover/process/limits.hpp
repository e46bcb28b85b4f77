// limits: the process-wide limits mass spawning runs into (descriptors, processes), read and
// raised, and the descriptor budget a job pool keeps under RLIMIT_NOFILE.
#pragma once

#include <sys/resource.h>

#include <cstddef>
#include <string>
#include <system_error>

namespace drover {

/// RLIMIT_NOFILE before and after raise_nofile_limit().
struct nofile_change {
    rlim_t soft_before = 0;
    rlim_t hard_before = 0;
    rlim_t soft = 0;  ///< the soft limit now in force
    rlim_t hard = 0;
    std::error_code error;  ///< set if a setrlimit(2) failed (the limits are then unchanged)
};

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit. With `want_hard` above
/// the hard limit, first tries to raise the hard limit too (needs CAP_SYS_RESOURCE; bounded
/// by /proc/sys/fs/nr_open); if that is refused, the soft limit still goes up to the old hard
/// limit and `error` says EPERM. Children inherit the raised limit: callers that exec
/// programs expecting select(2)-sized limits can set RLIMIT_NOFILE in their spawn_spec.
nofile_change raise_nofile_limit(rlim_t want_hard = 0) noexcept;

/// Number of descriptors open in this process now (counts /proc/self/fd; O(open fds)).
std::size_t count_open_fds() noexcept;

/// The machine's ceilings on how many children one supervisor can hold at once.
struct spawn_capacity {
    rlim_t nofile_soft = 0;    ///< RLIMIT_NOFILE soft
    rlim_t nproc_soft = 0;     ///< RLIMIT_NPROC soft (RLIM_INFINITY for none; root is exempt)
    long pid_max = 0;          ///< /proc/sys/kernel/pid_max
    long threads_max = 0;      ///< /proc/sys/kernel/threads-max
    long running_tasks = 0;    ///< tasks on the machine now (/proc/loadavg's 4th field)
    std::size_t open_fds = 0;  ///< this process's open descriptors now

    /// How many more children with `fds_per_child` descriptors each fit, and which limit
    /// decides it (`limiting` gets e.g. "RLIMIT_NOFILE 20000").
    [[nodiscard]] std::size_t children_that_fit(std::size_t fds_per_child,
                                                std::string* limiting = nullptr) const;
};

/// Reads the limits above (no side effects).
spawn_capacity read_spawn_capacity() noexcept;

/// Descriptors a supervisor holds for one live child: the pidfd plus the parent's end of
/// each piped stream. `transient` adds what a spawn holds while it is in flight (report
/// pipe, user-namespace sync pipe, the child's ends of the stdio pipes).
std::size_t fds_per_child(int piped_streams, bool transient) noexcept;

}  // namespace drover
