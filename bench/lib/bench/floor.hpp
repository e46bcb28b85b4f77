// The raw floor: clone3 + waitid(P_PIDFD) with the same namespace setup as a drover spawn, but
// no drover code at all (no spawn layer, no Asio, no report pipe). Built into drover_bench
// and, standalone, into bench/matrix/drover_floor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace drover::bench {

/// What the floor child does. Build it once per combination; run it many times.
/// The setup matches what drover does for the same set, so that the ratio measures drover's
/// own overhead: id maps written by the parent (user), the mount tree made private (mnt),
/// a fresh /proc (pid+mnt), loopback up (net); then _exit(0) or execve.
struct floor_plan {
    std::uint64_t clone_flags = 0;  ///< CLONE_NEW* bits
    std::string uid_map;            ///< "0 UID 1\n" with CLONE_NEWUSER, else empty
    std::string gid_map;
    bool make_private = false;
    bool mount_proc = false;
    bool loopback = false;
    bool exec = false;
    std::vector<std::string> argv;  ///< argv[0] is the absolute path executed

    /// The plan for these CLONE_NEW* flags (root mapped to the caller's uid/gid).
    static floor_plan for_flags(std::uint64_t clone_flags, bool exec,
                                std::vector<std::string> argv);
};

/// One floor spawn. `ok` false: `error` says what failed (errno text and the step).
struct floor_sample {
    bool ok = false;
    std::int64_t total_ns = 0;  ///< before the first syscall of the spawn -> reaped
    std::int64_t clone_ns = 0;  ///< clone3 alone (parent side)
    std::string error;
};

/// Runs one spawn of `plan` and waits for it. Not reentrant with other threads forking
/// (the caller's only thread, or one measuring thread).
floor_sample floor_spawn(const floor_plan& plan);

/// CLOCK_MONOTONIC in nanoseconds.
std::int64_t floor_now_ns() noexcept;

}  // namespace drover::bench
