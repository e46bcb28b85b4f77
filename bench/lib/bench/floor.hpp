// The raw floors: the least a program must do to start a child in a set of namespaces, with
// no drover code at all (no spawn layer, no Asio, no report pipe). Built into the small helper
// program drover_floor, which `drover bench` drives (floor_client.hpp), and into drover_bench
// as the in-process fallback when the helper cannot be found.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace drover::bench {

/// How the floor creates its child.
enum class floor_method : std::uint8_t {
    /// clone(CLONE_VM | CLONE_VFORK | ns…) on a stack of its own, as glibc's posix_spawn does:
    /// no page tables are copied and the parent sleeps until the child execs or exits. The
    /// fastest raw method, so *the* floor. The child writes its own id maps.
    vfork,
    /// clone3(ns… | CLONE_PIDFD) fork-style: the child gets a copy of the parent's page
    /// tables; the parent writes the id maps while the child waits on a pipe.
    fork,
};

std::string_view floor_method_name(floor_method m) noexcept;

/// False in sanitizer builds: a CLONE_VM child running on a stack the sanitizer does not know
/// breaks its bookkeeping, so every floor is fork-style there (as drover's own spawns are).
bool floor_vfork_available() noexcept;

/// What the floor child does. Build it once per combination; run it many times.
struct floor_plan {
    std::uint64_t clone_flags = 0;  ///< CLONE_NEW* bits
    floor_method method = floor_method::vfork;
    /// The setup drover does by default for the same set (like for like): id maps writing
    /// the caller's ids as root (user), / made private (mnt), a fresh /proc (pid+mnt), lo up
    /// (net). Without it only the namespaces are created.
    bool setup = true;
    std::string uid_map;  ///< "0 UID 1\n" with CLONE_NEWUSER and setup, else empty
    std::string gid_map;
    bool make_private = false;
    bool mount_proc = false;
    bool loopback = false;
    bool exec = false;
    std::vector<std::string> argv;  ///< argv[0] is the absolute path executed

    /// The plan for these CLONE_NEW* flags; the method is fork where floor_vfork_available()
    /// is false. A time namespace on the vfork path is made by the child's
    /// unshare(CLONE_NEWTIME) (clone(2) has no bit for it) and entered at its execve, as
    /// drover's child does.
    static floor_plan make(std::uint64_t clone_flags, floor_method method, bool setup, bool exec,
                           std::vector<std::string> argv);
};

/// One floor spawn. `ok` false: `error` says what failed (errno text and the step).
struct floor_sample {
    bool ok = false;
    std::int64_t total_ns = 0;  ///< before the first syscall of the spawn -> reaped
    std::int64_t clone_ns = 0;  ///< the clone call alone (parent side; with vfork it
                                ///< includes the child's setup up to its execve)
    std::string error;
};

/// Runs one spawn of `plan` and waits for it. Not reentrant with other threads forking
/// (the caller's only thread, or one measuring thread).
floor_sample floor_spawn(const floor_plan& plan);

/// What a floor loop did: spawns of one plan back to back until a deadline.
struct floor_loop_result {
    bool ok = false;              ///< false: the loop did not run (`error` says why)
    std::size_t spawns = 0;       ///< completed successfully
    std::size_t failures = 0;     ///< failed spawns (`error` holds the first one's reason)
    std::int64_t finish_ns = 0;   ///< CLOCK_MONOTONIC when the last spawn was reaped
    std::string error;
};

/// Sleeps until `start_ns` (CLOCK_MONOTONIC, so processes on one machine can start together),
/// then runs spawns of `plan` one after another until one is reaped at or after `end_ns`. A
/// failure that repeats 1000 times with no success ends the loop early (a refusing kernel
/// answers at once; spinning on it proves nothing).
floor_loop_result floor_loop(const floor_plan& plan, std::int64_t start_ns, std::int64_t end_ns);

/// Yields this CPU until thread `tid` of process `pid` is no longer runnable, at most 1,000
/// times; false if it gave up or the thread is gone. drover bench and its helpers answer each
/// other over a socket, and the wake-up lets the one woken preempt the one that answered, which
/// stays runnable on the same CPU for the whole next sample. A runnable bystander makes the
/// kernel place work an exiting child waits for (the expedited RCU grace period that ends a
/// mount namespace) on another, idle CPU, whose wake-up a VM pays dearly for: +40–80 µs on a
/// mnt spawn, only for whichever side had the bystander (docs/bench.md, "Bystanders").
bool floor_wait_asleep(pid_t pid, pid_t tid) noexcept;

/// CLOCK_MONOTONIC in nanoseconds.
std::int64_t floor_now_ns() noexcept;

/// Parses "none", "user,pid", "user+pid" into CLONE_NEW* bits; false on an unknown name.
bool parse_floor_namespaces(std::string_view text, std::uint64_t& flags);
/// The other way: "none" or "user+pid+…" (the order of the table, user first).
std::string floor_namespace_names(std::uint64_t flags);

}  // namespace drover::bench
