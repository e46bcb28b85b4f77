// launch: the synchronous spawn path — prepare a spec once, clone3 children from it, learn
// whether execve succeeded, reap. No event loop here; the process layer builds on it.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/id_pool.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/timings.hpp"
#include "drover/sys/unique_fd.hpp"

namespace drover {

namespace detail {
struct prepared_data;
struct child_memory;
}
class warm_set;
class warm_pool;

/// A spawn_spec validated and turned into the arrays, strings and map texts the child will
/// walk. Immutable and cheap to copy (shared); launch it any number of times, from any thread.
class prepared_spawn {
public:
    /// Validates `spec` (throws spec_error naming the field) and prepares it.
    explicit prepared_spawn(spawn_spec spec);
    [[nodiscard]] const spawn_spec& spec() const noexcept;
    [[nodiscard]] const detail::prepared_data& data() const noexcept { return *d_; }
    /// The same, shared: for a child that reads it after launch() has returned.
    [[nodiscard]] std::shared_ptr<const detail::prepared_data> shared_data() const noexcept { return d_; }

private:
    std::shared_ptr<const detail::prepared_data> d_;
};

/// A child that clone3 created. Until `report` reaches EOF it may still be in setup.
/// Owns its descriptors; the pidfd is what every later signal and wait goes through.
/// How launch() creates a child.
enum class clone_method : unsigned char {
    /// fork-style clone3: the child gets a copy-on-write copy of the parent's memory, and the
    /// parent goes on at once (sanitizer builds, other architectures, file ops that may
    /// block in the child, DROVER_CLONE=fork).
    fork,
    /// posix_spawn-style clone3 with CLONE_VM | CLONE_VFORK: no page tables copied, no
    /// copy-on-write faults afterwards; the launching thread waits until the child has called
    /// execve (or failed). Used when the spec allows it (no file op that may block), on
    /// x86-64, outside sanitizer builds; explicit id maps and v1 cgroup joins are written by
    /// a map-writer thread meanwhile, and a time namespace is entered at the child's execve.
    vfork,
    /// clone3 with CLONE_VM but without CLONE_VFORK: no page tables copied, and the launching
    /// thread goes on at once; the child runs its setup on a stack and thread pointer of its
    /// own in our memory, which launched_child::memory keeps until the kernel says the child
    /// has left it (CLONE_CHILD_CLEARTID, at execve or exit). Same conditions as vfork, and
    /// nothing for the parent to do before execve, and no time namespace (which kernels
    /// before 5.18 entered at execve only for vfork children); the report comes through a
    /// pipe, as on the fork path. DROVER_CLONE=vm or force_clone_method.
    vm,
};

/// "fork", "vfork" or "vm".
std::string_view clone_method_name(clone_method m) noexcept;

/// Process-wide switch for tests and benchmarks: fork forces the fork path for every spec; vfork
/// or vm make each spec that can use that path; nullopt (the default) lets each spec use vfork
/// where it can. DROVER_CLONE=fork (or =vm, =vfork) in the environment does the same.
void force_clone_method(std::optional<clone_method> m) noexcept;

/// Size of one record on the report pipe; a reader needs at most two of them.
inline constexpr std::size_t report_record_size = 24;
inline constexpr std::size_t report_max_size = 2 * report_record_size;

struct launched_child {
    pid_t pid = -1;
    clone_method method = clone_method::fork;  ///< how this child was created
    sys::unique_fd pidfd;
    sys::unique_fd stdin_pipe;   ///< write end, if stdin was a pipe
    sys::unique_fd stdout_pipe;  ///< read end, if stdout was a pipe
    sys::unique_fd stderr_pipe;  ///< read end, if stderr was a pipe
    sys::unique_fd report;       ///< read end of the child's close-on-exec report pipe
    /// The report is all there: on the vfork path clone3 returns only once the child has
    /// passed execve's point of no return or exited, and it writes its report before either.
    /// Then read_report() needs no wait for EOF (nor an event loop).
    bool report_complete = false;
    /// A cold child on the vfork path has no report pipe (`report` is empty): sharing our
    /// memory (CLONE_VM), it wrote its records here, as glibc's posix_spawn passes its errno.
    std::array<std::byte, report_max_size> report_bytes{};
    std::size_t report_size = 0;
    spawn_timings timings;
    /// With userns_ids::automatic: the host ids the child runs as, leased until it is reaped
    /// (whoever reaps it drops this afterwards).
    std::shared_ptr<id_lease> ids;
    /// A job started in a warm set: the set, whose holder must live until the job is reaped
    /// (whoever reaps it drops this afterwards).
    std::shared_ptr<warm_set> set;
    /// clone_method::vm: the stack, thread pointer and frame the child runs its setup on, kept
    /// until it has left our memory (conclude() drops it; its destructor waits if need be).
    std::shared_ptr<detail::child_memory> memory;
};

/// Per-launch additions to a prepared spec: a job's own cgroups, made for this one child.
struct launch_extras {
    int cgroup_fd = -1;            ///< a cgroup v2 directory (CLONE_INTO_CGROUP), instead of the spec's
    /// cgroup.procs files of v1 hierarchies, open for writing (by root): the child writes "0"
    /// to each as its first step, so it runs no code of the job outside them. Borrowed.
    const int* join_fds = nullptr;
    int join_count = 0;
    /// Start the job in a set from this pool (warm.hpp); an empty pool: a cold spawn. The
    /// spec must have the pool's namespaces and setup (launch fails at stage prepare if not).
    warm_pool* warm = nullptr;
    /// Threads that may run clone3 for this spawn when it is started through the process
    /// layer's spawn() (process/spawn_threads.hpp); 0: the process-wide setting.
    unsigned spawn_threads = 0;
    /// A lease the caller took for a userns_ids::automatic spec (launch takes one if empty).
    std::shared_ptr<id_lease> ids;
    /// Internal (process/spawn_threads.cpp): the launch runs on a spawner thread with a
    /// descriptor table of its own, into which the caller's descriptors the spawn uses were
    /// copied: `renames[i]` says at which number that thread has the caller's `from`.
    struct fd_rename {
        int from;
        int to;
    };
    const fd_rename* renames = nullptr;
    int rename_count = 0;
    /// The number this launch's thread has the caller's descriptor `fd` at.
    [[nodiscard]] int own_fd(int fd) const noexcept {
        for (int i = 0; i < rename_count; ++i)
            if (renames[i].from == fd) return renames[i].to;
        return fd;
    }
};

/// Phase 1: clone3 a child from `p` and, for a user namespace with explicit maps or for v1
/// cgroup joins, act for it while it waits, then let it go on. Returns false with `failure`
/// filled if it could not; then no process and no descriptor is left behind. Safe to call
/// from any thread (the child runs only async-signal-safe code until execve). On the vfork
/// path (see clone_method) it returns once the child has reached execve or failed.
bool launch(const prepared_spawn& p, launched_child& child, spawn_failure& failure,
            const launch_extras& extras = {});

/// Phase 2: given everything read from `child.report` up to EOF (read at `eof_ns`), decide
/// whether the child reached execve. On a failure the child has exited: it is reaped here,
/// its descriptors closed, and false returned with `failure` filled.
bool conclude(const prepared_spawn& p, launched_child& child, std::span<const std::byte> report,
              std::int64_t eof_ns, spawn_failure& failure);

/// Reads what a complete report pipe holds (child.report_complete) into `buf`, without
/// waiting; returns the byte count.
std::size_t read_report(launched_child& child, std::span<std::byte, report_max_size> buf);

namespace detail {
/// The caller's descriptors a launch of `p` with `extras` uses (stdio, passed descriptors,
/// cgroups, /dev/null), for a spawner with a table of its own to copy; nullopt if the spawn
/// cannot run from such a table (a warm pool's set; files copied into a new root, whose
/// descriptors the shared plan names).
std::optional<std::vector<int>> caller_fds(const prepared_spawn& p, const launch_extras& extras);

/// Gives the calling thread a map writer of its own (launch's helper thread for id maps on the
/// posix_spawn path), started now: for a thread whose descriptor table is not the process's.
/// false if the thread could not be started (then such spawns take the fork path).
bool own_map_writer() noexcept;

/// Whether a launch of `p` would take a lease of host ids (userns_ids::automatic).
bool needs_id_lease(const prepared_spawn& p) noexcept;
}  // namespace detail

/// Phase 2, blocking: reads the report pipe to EOF (or at once when it is complete), then
/// conclude().
bool await_exec(const prepared_spawn& p, launched_child& child, spawn_failure& failure);

/// Blocks until the child exits and reaps it through its pidfd (records both timestamps).
exit_status wait_blocking(launched_child& child);

/// launch + await_exec, throwing spawn_error. For simple synchronous callers.
launched_child launch_sync(const prepared_spawn& p);

/// Advice for a kernel refusal of `stage` with errno `err` (which sysctl, which limit), or
/// an empty string if there is none to give.
std::string kernel_advice(child_stage stage, int err, namespace_set requested);

}  // namespace drover
