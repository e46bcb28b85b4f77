// job: limits around one child enforced from outside — wall-clock and CPU time, memory,
// processes, CPU share, output — and, when it has ended, why (a verdict) and what it used.
#pragma once

#include <signal.h>
#include <sys/resource.h>

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <functional>
#include <string_view>

#include "drover/process/cgroup.hpp"
#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/timings.hpp"

namespace drover {

class process;

/// What one job may use. Unset fields are unlimited.
struct job_limits {
    /// Wall-clock time from execve; then `timeout_signal` to the whole job, and SIGKILL
    /// `kill_grace` later if it is still there.
    std::optional<std::chrono::nanoseconds> wall_time;
    int timeout_signal = SIGKILL;
    std::chrono::nanoseconds kill_grace = std::chrono::seconds(1);
    /// CPU time (user + system) of the whole job: its cgroup's cpu.stat, checked as it runs;
    /// without a cgroup, RLIMIT_CPU of the main process.
    std::optional<std::chrono::nanoseconds> cpu_time;
    /// memory.max, pids.max, cpu.max of the job's own cgroup.
    resource_limits cgroup;
    /// Give the job a cgroup of its own even without cgroup limits: whole-tree accounting
    /// (CPU, peak memory) and whole-tree kill.
    bool own_cgroup = false;

    [[nodiscard]] bool empty() const noexcept {
        return !wall_time && !cpu_time && cgroup.empty() && !own_cgroup;
    }
    /// Whether the job needs a cgroup of its own.
    [[nodiscard]] bool wants_cgroup() const noexcept { return own_cgroup || !cgroup.empty() || cpu_time.has_value(); }
};

/// Why a job ended.
enum class verdict : std::uint8_t {
    ok,               ///< exited with 0
    exit_code,        ///< exited with another code
    signal,           ///< killed by a signal not of drover's
    wall_time,        ///< drover stopped it at job_limits::wall_time
    cpu_time,         ///< it used up job_limits::cpu_time
    memory,           ///< the OOM killer ended it within job_limits::cgroup.memory_max
    pids,             ///< it failed after a fork was refused by pids.max / RLIMIT_NPROC
    output,           ///< drover stopped it for writing more than the output limit
    failed_to_start,  ///< the spawn failed (see the failure)
    cancelled,        ///< dropped before it started
};

/// "ok", "exit", "signal", "timeout", "cpu-time", "memory", "pids", "output",
/// "start-failed", "cancelled".
std::string_view verdict_name(verdict v) noexcept;

/// What a job used.
struct resource_usage {
    std::int64_t wall_ns = 0;                  ///< execve -> exit observed
    std::int64_t user_ns = 0;                  ///< CPU in user mode, whole job where known
    std::int64_t system_ns = 0;                ///< CPU in the kernel
    /// bytes: the peak of the job's cgroup (memory.peak, or memory.max_usage_in_bytes on v1);
    /// unset without one (waitid's ru_maxrss holds the spawner's size, not the job's).
    std::optional<std::uint64_t> peak_memory;
    /// "cgroup" when CPU and memory are the cgroup's (the whole tree), "rusage" when they
    /// come from waitid(2) (the child and the descendants it waited for).
    std::string_view source = "rusage";
};

/// A job's verdict, usage and, for people, one line about it.
struct job_outcome {
    verdict why = verdict::ok;
    resource_usage usage;
    /// "time limit 2 s exceeded", "out of memory (limit 256 MiB)", "exited with code 3".
    std::string detail;
};

/// Enforces job_limits on one child from outside and tells why it ended. Lives on the
/// child's executor; not thread-safe. Order of use:
///   limit_watch w(ex, limits, tree);   // makes the job's cgroup (throws std::system_error)
///   spawn(ex, prepared, w.extras());   // the child is born in it
///   w.arm(proc);                       // deadlines start
///   ... on exit: w.finish(proc, output_exceeded) -> job_outcome
class limit_watch {
public:
    /// Makes the job's cgroup in `tree` when limits.wants_cgroup() (throws spawn_error, stage
    /// job_cgroup, naming the file if it cannot). Cgroup limits without a usable tree throw
    /// too (ENOTSUP): put rlimits in the spec instead (apply_rlimit_fallbacks), never nothing.
    /// Without a tree, cpu_time holds only through the RLIMIT_CPU the caller put in the spec.
    limit_watch(asio::any_io_executor ex, job_limits limits, cgroup_tree* tree);
    ~limit_watch();
    limit_watch(const limit_watch&) = delete;
    limit_watch& operator=(const limit_watch&) = delete;

    /// Per-launch additions for the spawn (the job's cgroup).
    [[nodiscard]] launch_extras extras() const noexcept;
    /// The job's cgroup, if it has one.
    [[nodiscard]] const service_cgroup* cgroup() const noexcept { return cg_.get(); }
    /// Hands the cgroup over (after finish(), to remove it with retire()).
    [[nodiscard]] std::unique_ptr<service_cgroup> release_cgroup() noexcept { return std::move(cg_); }

    /// Starts the deadlines for `p`, which must outlive the watch's use of it (until
    /// finish()); `on_kill` (optional) runs when the watch stops the job itself.
    void arm(process& p, std::function<void(verdict)> on_kill = {});
    /// Stops the job now, whole tree (its cgroup, or the main process: with a pid namespace
    /// that is the whole tree), and records `why` as the verdict.
    void stop(verdict why);
    /// After the exit: cancels the timers, kills what is left in the job's cgroup, and says
    /// why the job ended and what it used. `output_exceeded`: the output limit was hit.
    job_outcome finish(const process& p, bool output_exceeded);

private:
    void check_cpu();
    void hard_kill();
    asio::any_io_executor ex_;
    job_limits limits_;
    std::unique_ptr<service_cgroup> cg_;
    process* proc_ = nullptr;
    std::function<void(verdict)> on_kill_;
    std::optional<verdict> stopped_;
    asio::steady_timer wall_;
    asio::steady_timer grace_;
    asio::steady_timer cpu_;
};

/// The verdict and usage of a reaped child from its status, rusage and (if it had one) its
/// cgroup's counters; `stopped` is what drover stopped it for, if it did.
job_outcome job_outcome_of(const process& p, const job_limits& limits, std::optional<verdict> stopped,
                           const cgroup_stats* cgroup, bool output_exceeded);

/// The rlimits that stand in for cgroup limits where the job has no cgroup (`have` says
/// which the cgroup covers): RLIMIT_CPU for cpu_time, RLIMIT_NPROC for tasks_max (counted per
/// user namespace: a job with host ids of its own gets its own count), RLIMIT_AS for
/// memory_max (address space, not resident memory: a rougher wall). Adds them to `spec`;
/// returns what it could not stand in for ("cpu quota") or empty.
std::string apply_rlimit_fallbacks(spawn_spec& spec, const job_limits& limits, bool cgroup_available);

/// Seconds, bytes, as people read them: "1.23 s", "256 MiB".
std::string human_seconds(std::int64_t ns);
std::string human_bytes(std::uint64_t bytes);

}  // namespace drover
