// Fault injection at drover's parent-side system calls, for the soak test. Compiled in only
// with the CMake option DROVER_FAULT_INJECTION (test builds); otherwise every check is the
// constant 0 and costs nothing.
#pragma once

#include <cstdint>

namespace drover::sys {

/// Where a fault can be injected.
enum class fault_site : unsigned {
    pipe2,         ///< the stdio and report pipes of a spawn
    clone3,        ///< both clone paths
    pidfd_dup,     ///< the duplicate pidfd a background reap keeps
    cgroup_write,  ///< every write to a cgroup file (limits, kill, joins)
    uring_submit,  ///< the io_uring WAITID submission
    count_,
};

#ifdef DROVER_FAULT_INJECTION
inline constexpr bool fault_injection_built = true;
/// Every `one_in`-th call at `site` fails with `err` (0 turns it off). Thread-safe.
void set_fault(fault_site site, unsigned one_in, int err) noexcept;
/// The errno to fail this call with, or 0.
int injected_fault(fault_site site) noexcept;
/// How many faults were injected at `site` so far.
std::uint64_t faults_injected(fault_site site) noexcept;
#else
inline constexpr bool fault_injection_built = false;
inline void set_fault(fault_site, unsigned, int) noexcept {}
constexpr int injected_fault(fault_site) noexcept { return 0; }
constexpr std::uint64_t faults_injected(fault_site) noexcept { return 0; }
#endif

}  // namespace drover::sys
