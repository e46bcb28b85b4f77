// cgroup: drover's own subtree of cgroups — one cgroup per job or service run, limits,
// accounting, whole-tree kill.
//
// Layouts handled:
//  - pure v2 (/sys/fs/cgroup is cgroup2): <own cgroup>/drover.<pid>/<service>, limits through
//    memory.max, pids.max, cpu.max (controllers enabled in subtree_control on the way down);
//  - hybrid (v1 controllers plus a v2 tree at /sys/fs/cgroup/unified): the v2 tree gives
//    membership (CLONE_INTO_CGROUP) and cgroup.kill; the v1 pids, memory and cpu hierarchies
//    give limits (the child joins them before it runs any code: spawn_spec::join_cgroups);
//  - anything else: no cgroups, one warning.
// drover only creates, writes and removes directories under its own drover.<pid> subtree.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/sys/unique_fd.hpp"

namespace drover {

/// cgroup limits of a job or service; unset means no limit.
struct resource_limits {
    std::optional<std::uint64_t> memory_max;  ///< bytes (memory.max / memory.limit_in_bytes)
    std::optional<std::uint64_t> tasks_max;   ///< pids.max
    std::optional<double> cpu_quota;          ///< CPUs (0.5 = half of one): cpu.max / cfs quota
    [[nodiscard]] bool empty() const noexcept { return !memory_max && !tasks_max && !cpu_quota; }
    friend bool operator==(const resource_limits&, const resource_limits&) = default;
};

enum class cgroup_mode : std::uint8_t { none, v2, hybrid };
std::string_view cgroup_mode_name(cgroup_mode m) noexcept;

/// The result of looking at the host's cgroup mounts and at /proc/self/cgroup.
struct cgroup_layout {
    cgroup_mode mode = cgroup_mode::none;
    std::string v2_own;           ///< this process's cgroup directory in the v2 tree
    std::string v1_pids_own;      ///< hybrid: this process's directory in each v1 controller
    std::string v1_memory_own;
    std::string v1_cpu_own;
    std::string warning;          ///< why cgroups (or limits) are unavailable, if they are

    /// Detects the layout of this host (reads /proc/self/mountinfo-free facts: statfs and
    /// /proc/self/cgroup).
    static cgroup_layout detect();
};

/// What a cgroup counted over its life (read after its processes are gone).
struct cgroup_stats {
    std::optional<std::int64_t> user_ns;     ///< cpu.stat user_usec (every v2 cgroup has it)
    std::optional<std::int64_t> system_ns;   ///< cpu.stat system_usec
    std::optional<std::uint64_t> memory_peak;  ///< memory.peak (v2) or memory.max_usage_in_bytes (v1)
    std::uint64_t oom_kills = 0;             ///< processes the OOM killer ended in it
    std::uint64_t pids_limit_hits = 0;       ///< forks refused by pids.max (pids.events "max")
};

/// One service run's (or job's) cgroup(s). Owns the directories: remove() (and the
/// destructor, best effort) deletes them once empty.
class service_cgroup {
public:
    service_cgroup() = default;
    service_cgroup(const service_cgroup&) = delete;
    service_cgroup& operator=(const service_cgroup&) = delete;
    service_cgroup(service_cgroup&&) noexcept = default;
    service_cgroup& operator=(service_cgroup&&) noexcept = default;
    ~service_cgroup();

    /// Sets spec.cgroup_fd and spec.join_cgroups so that the child is born in this cgroup.
    /// The fd stays owned here and must outlive the spawn.
    void apply_to(spawn_spec& spec) const;
    /// The same for one launch of a prepared spec: the v2 directory for CLONE_INTO_CGROUP and
    /// the v1 cgroup.procs files open for the child to join itself (no parent step, so the
    /// spawn can stay posix_spawn-style). Valid while this object lives.
    [[nodiscard]] launch_extras extras() const noexcept;
    /// Counters for accounting and verdicts.
    [[nodiscard]] cgroup_stats stats() const;
    /// The v2 directory ("" without v2).
    [[nodiscard]] const std::string& path() const noexcept { return v2_; }
    [[nodiscard]] bool valid() const noexcept { return !v2_.empty(); }

    /// Kills every process in the cgroup: cgroup.kill, or freeze + SIGKILL each pid by
    /// pidfd + thaw where cgroup.kill does not exist.
    std::error_code kill_all() const;
    /// Whether any process is still in it (cgroup.events "populated").
    [[nodiscard]] bool populated() const;
    /// Pids in the cgroup now.
    [[nodiscard]] std::vector<pid_t> pids() const;
    /// How many times the OOM killer killed a process in it (memory.events oom_kill or
    /// v1 memory.oom_control oom_kill).
    [[nodiscard]] std::uint64_t oom_kills() const;
    /// Removes the directories; EBUSY while processes remain. Retries EBUSY briefly,
    /// blocking (for destructors and shutdown); on an event loop use async_remove().
    std::error_code remove();
    /// Removes what can be removed now, each directory once: EBUSY while the kernel still
    /// counts a process. Never waits.
    std::error_code try_remove();

private:
    friend class cgroup_tree;
    template <class Remove>
    std::error_code remove_with(Remove remove_one);
    std::string v2_;
    sys::unique_fd dir_;
    std::vector<std::string> v1_;  ///< v1 directories (pids, memory, cpu) of this run
    std::vector<sys::unique_fd> v1_procs_;  ///< their cgroup.procs, open for writing
    std::vector<int> v1_proc_fds_;          ///< the same numbers, for launch_extras
    std::string memory_v1_;
    std::string pids_v1_;
};

/// drover.<pid> (or another name) under this process's own cgroup in each hierarchy; creates
/// service cgroups in it. remove() deletes everything it created (not before it is empty).
class cgroup_tree {
public:
    /// Creates the subtree; on failure mode() is none and warning() says why (never throws).
    explicit cgroup_tree(std::string name, cgroup_layout layout = cgroup_layout::detect());
    cgroup_tree(const cgroup_tree&) = delete;
    cgroup_tree& operator=(const cgroup_tree&) = delete;
    ~cgroup_tree();

    [[nodiscard]] cgroup_mode mode() const noexcept { return mode_; }
    [[nodiscard]] const std::string& warning() const noexcept { return warning_; }
    [[nodiscard]] const std::string& path() const noexcept { return v2_root_; }
    /// Every top directory drover created (v2 first, then v1 ones).
    [[nodiscard]] std::vector<std::string> roots() const;

    /// A fresh cgroup for one run of `service` with `limits`. Throws std::system_error naming
    /// the file on failure; limits asked for on a host without the controller are an error
    /// too (a service must not silently run unlimited).
    /// `account_memory`: on hybrid hosts also a v1 memory cgroup without a limit, so that the
    /// peak memory of the run is known (v2 counts it with the memory controller only).
    service_cgroup create(const std::string& service, const resource_limits& limits, bool account_memory = false);
    /// error_code form of create(): the failure in `ec` (and the file or reason in `what`, if
    /// given) and an empty service_cgroup instead of std::system_error.
    service_cgroup create(const std::string& service, const resource_limits& limits, bool account_memory,
                          std::error_code& ec, std::string* what = nullptr) noexcept;

    /// Kills everything under the subtree and removes it (best effort, bounded wait).
    void destroy();

private:
    cgroup_mode mode_ = cgroup_mode::none;
    std::string warning_;
    std::string v2_root_;
    std::string pids_root_, memory_root_, cpu_root_;
    unsigned serial_ = 0;
};

/// Guards a cgroup_tree against the supervisor's own SIGKILL: a small forked process that
/// waits for the supervisor to die (EOF on a pipe), then kills every process under `roots`
/// (v2 cgroup.kill; per-pid SIGKILL elsewhere) and removes the directories. It runs only
/// async-signal-safe code, so it may be forked from a threaded program. The destructor ends
/// it (it then cleans up whatever is left, which is normally nothing) and reaps it.
class cgroup_guardian {
public:
    explicit cgroup_guardian(const std::vector<std::string>& roots);
    cgroup_guardian(const cgroup_guardian&) = delete;
    cgroup_guardian& operator=(const cgroup_guardian&) = delete;
    ~cgroup_guardian();
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

private:
    pid_t pid_ = -1;
    sys::unique_fd pidfd_;
    sys::unique_fd alive_;  ///< write end; its EOF is the guardian's signal
};

}  // namespace drover

namespace drover::supervise {
using drover::cgroup_guardian;
using drover::cgroup_layout;
using drover::cgroup_mode;
using drover::cgroup_mode_name;
using drover::cgroup_tree;
using drover::resource_limits;
using drover::service_cgroup;
}  // namespace drover::supervise
