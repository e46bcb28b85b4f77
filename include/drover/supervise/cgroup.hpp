// cgroup: drover's own subtree of cgroups — one cgroup per service run, limits, whole-tree kill.
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

#include "drover/spawn/spawn_spec.hpp"
#include "drover/supervise/service.hpp"
#include "drover/sys/unique_fd.hpp"

namespace drover::supervise {

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

/// One service run's cgroup(s). Owns the directories: remove() (and the destructor, best
/// effort) deletes them once empty.
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
    /// Removes the directories; EBUSY while processes remain.
    std::error_code remove();

private:
    friend class cgroup_tree;
    std::string v2_;
    sys::unique_fd dir_;
    std::vector<std::string> v1_;  ///< v1 directories (pids, memory, cpu) of this run
    std::string memory_v1_;
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
    service_cgroup create(const std::string& service, const resource_limits& limits);

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

}  // namespace drover::supervise
