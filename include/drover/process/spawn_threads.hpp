// spawn_threads: how many threads run clone3 for spawn(), so a burst of spawns uses every CPU.
#pragma once

#include <cstddef>

namespace drover {

/// The number of threads that may run clone3 for spawn() at once, process-wide, the calling
/// loop's own thread counted. 1 (the default) spawns on the caller's thread only, as a plain
/// posix_spawn would. With n >= 2 a spawn is handed to one of n - 1 spawner threads when
/// other children of this process are alive (a burst, not a lone spawn: a lone spawn is done
/// on the caller's thread, which is faster than any hand-off) and one is idle; otherwise the
/// caller's thread does it. On the posix_spawn-style path the spawner thread is held until the
/// child has exec'd, which is why one thread cannot keep more than one CPU spawning.
///
/// Exit waits, output and timings stay on the caller's executor; the completion is delivered
/// there. Spawns into a warm pool's sets always run on the caller's thread.
/// The environment variable DROVER_SPAWN_THREADS sets the starting value (1 to 256, or "auto":
/// the CPUs this process may run on). Throws std::invalid_argument outside 1..256.
void set_spawn_threads(unsigned n);

/// The current setting (see set_spawn_threads).
unsigned spawn_threads() noexcept;

/// The CPUs this process may run on (sched_getaffinity), at least 1: the size "auto" means.
unsigned available_cpus() noexcept;

/// Parses a thread count as users give it: "auto" or 1..256. Returns 0 (and sets `why`) if it
/// is neither.
unsigned parse_spawn_threads(const char* text, const char** why) noexcept;

/// What the spawner threads have done since the process started, for tests and reports.
struct spawn_thread_stats {
    std::size_t handed_off = 0;  ///< spawns run on a spawner thread
    std::size_t inline_spawns = 0;  ///< spawns run on the caller's thread while threads were on
};
spawn_thread_stats spawn_thread_counters() noexcept;

}  // namespace drover
