// spawn_timings: when each stage of one spawn happened, on CLOCK_MONOTONIC.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace drover {

/// Stage durations in nanoseconds, in order; their sum is `total`.
struct stage_durations {
    std::int64_t prepare = 0;  ///< launch entered -> clone3 entered (pipes, the launch frame)
    std::int64_t clone = 0;    ///< clone3 entered -> returned in the parent
    std::int64_t id_maps = 0;  ///< writing uid_map/setgroups/gid_map (0 without user)
    std::int64_t setup = 0;    ///< the child's own setup, until just before execve
    std::int64_t exec = 0;     ///< execve -> the parent saw it succeed (EOF on the report pipe)
    std::int64_t run = 0;      ///< exec -> the exit was observed (pidfd readable)
    std::int64_t reap = 0;     ///< observed -> reaped with waitid
    std::int64_t total = 0;    ///< launch entered -> reaped

    /// The one vocabulary of stages: `drover run --timing`, the JSON results, the supervisor
    /// and `drover bench` all use these names in this order.
    static constexpr std::array<std::string_view, 7> names = {"prepare", "clone", "id_maps", "setup",
                                                              "exec",    "run",   "reap"};
    [[nodiscard]] std::array<std::int64_t, 7> as_array() const noexcept {
        return {prepare, clone, id_maps, setup, exec, run, reap};
    }
};

/// Timestamps (ns, CLOCK_MONOTONIC of the parent; 0 = not reached). The child's own two
/// are read before execve, hence before a new time namespace takes effect.
struct spawn_timings {
    std::int64_t launch_start = 0;   ///< parent: launch() entered (0: not recorded)
    std::int64_t clone_start = 0;    ///< parent: about to call clone3
    std::int64_t clone_end = 0;      ///< parent: clone3 returned
    std::int64_t maps_written = 0;   ///< parent: id maps written and the child released
    std::int64_t child_start = 0;    ///< child: first instruction after clone3
    std::int64_t setup_done = 0;     ///< child: about to execve (or _exit without exec)
    std::int64_t exec_done = 0;      ///< parent: report pipe hit EOF (execve succeeded)
    std::int64_t exit_observed = 0;  ///< parent: pidfd became readable
    std::int64_t reaped = 0;         ///< parent: waitid returned the status

    /// Durations along the parent's timeline. The child's clock reading can precede the
    /// parent's (two cores), so each boundary is taken as the later of it and the one before:
    /// every duration is >= 0 and they add up to `total`.
    [[nodiscard]] stage_durations durations() const noexcept;
};

}  // namespace drover
