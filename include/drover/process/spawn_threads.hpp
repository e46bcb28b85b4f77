// spawn_threads: how many threads run clone3 for spawn(), so a burst of spawns uses every CPU.
#pragma once

#include <cstddef>

namespace drover {

/// The number of threads that may run clone3 for spawn() at once, process-wide, the calling
/// loop's own thread counted. The default is the CPUs this process may run on; 1 spawns on the
/// caller's thread only, as a plain posix_spawn would. With n >= 2 a spawn goes to one of
/// n - 1 spawner threads when at least n other children of this process are alive or being
/// spawned (a burst: the children can keep the CPUs busy, and a caller's thread held in each
/// vfork-style clone3 would leave their exits waiting), queued behind the busy ones if none
/// is idle; with fewer, a CPU is free and the caller's thread is faster than any hand-off. On
/// the posix_spawn-style path the thread that clones is held until the child has exec'd,
/// which is why one thread cannot keep more than one CPU spawning, and why a loop that
/// clones for itself in a burst is late to every exit.
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

/// Which descriptor table clone3 copies for a spawn. clone3 copies the spawning thread's
/// table into the child (a reference taken on every open file, dropped again by execve), so a
/// spawn from a process holding 10,000 descriptors costs about twice one from a small table.
enum class spawn_table : unsigned char {
    /// The process's own table (every spawn as before).
    shared,
    /// Every spawn that can (not one into a warm pool's set, not one copying files into a new
    /// root) runs on a spawner thread whose table is its own (unshare(CLONE_FILES)) and holds
    /// only what that spawn uses: the caller's descriptors it names are copied in
    /// (pidfd_getfd), and the child's pidfd and pipe ends come back over a socket
    /// (SCM_RIGHTS). Memory is not copied on the posix_spawn path, so the spawn costs what it
    /// costs from a small process. The threads' count: spawn_threads() - 1, at least 1.
    own,
    /// own once the process's table holds spawn_table_threshold descriptors or more (the
    /// hand-off costs more than the copy of a smaller table); shared below. The default.
    automatic,
};
/// The table size from which `automatic` spawns from an own table.
inline constexpr int spawn_table_threshold = 1024;

/// Sets the table spawns copy from, process-wide. The environment variable
/// DROVER_SPAWN_TABLE (shared, own or auto) sets the starting value.
void set_spawn_table(spawn_table t) noexcept;
spawn_table spawn_table_setting() noexcept;

/// Parses "shared", "own" or "auto"; false (and `why` set) if it is none of them.
bool parse_spawn_table(const char* text, spawn_table& out, const char** why) noexcept;

/// What the spawner threads have done since the process started, for tests and reports.
struct spawn_thread_stats {
    std::size_t handed_off = 0;  ///< spawns run on a spawner thread
    std::size_t inline_spawns = 0;  ///< spawns run on the caller's thread while threads were on
    std::size_t own_table = 0;   ///< spawns run from a spawner's own descriptor table
};
spawn_thread_stats spawn_thread_counters() noexcept;

}  // namespace drover
