// Namespace, sandbox and limit flags shared by the subcommands that spawn (unshare(1)'s and
// bubblewrap's names where they have them).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "drover/process/job.hpp"
#include "drover/spawn/spawn_spec.hpp"

namespace drover::cli {

/// The flags; add_to() registers them, apply() fills a spec and the job limits (throws
/// spec_error naming the flag on bad values). apply(spec, false) opens no file the flags
/// name (--seccomp FILE, --seccomp-fd): their shape is checked, the filter left out.
struct ns_options {
    bool user = false, pid = false, mnt = false, uts = false, ipc = false, net = false,
         cgroup = false, time = false;
    bool map_root = false;
    std::vector<std::string> map_user, map_group;
    std::string userns;  // "", "auto", "own"
    std::string uid, gid;
    std::string hostname, domainname;
    bool mount_proc = false, no_mount_proc = false;
    std::string monotonic, boottime;
    // Filesystem: ops are taken in the order given on the command line.
    std::vector<std::string> bind, ro_bind, dev_bind, bind_try, ro_bind_try, dev_bind_try, tmpfs, dev, proc,
        dir, symlink, file, remount_ro;
    std::string root;
    bool overlay_root = false, ro_root = false, new_root = false;
    // Capabilities and seccomp.
    std::vector<std::string> cap_drop, cap_add;
    std::string seccomp, seccomp_fd;
    // The preset.
    bool sandbox = false, share_net = false;
    std::vector<std::string> setenv, unsetenv, rlimit;
    bool clearenv = false, new_session = false, no_new_privs = false;
    std::string chdir;
    // Limits.
    std::string timeout, timeout_signal, kill_after, cpu_time, memory_max, pids_max, cpu;

    void add_to(CLI::App& app);
    void apply(spawn_spec& spec, bool open_files = true) const;
    /// The limit flags as job_limits (sandboxed jobs get a cgroup of their own).
    [[nodiscard]] job_limits limits() const;
    /// A spec_error message from the library (validate(), prepare) in the words of the
    /// command line, after apply(): "hostname: needs the uts namespace" becomes "--hostname:
    /// needs the uts namespace (add -u)", "fs.ops[4] (tmpfs): …" the flag that made that op.
    [[nodiscard]] std::string in_flag_terms(std::string_view message) const;

private:
    void apply_fs(spawn_spec& spec) const;
    CLI::App* app_ = nullptr;
    std::vector<std::pair<CLI::Option*, fs_op::kind>> fs_flags_;
    std::vector<CLI::Option*> try_flags_;
    // What apply() made, for in_flag_terms(): the flag and value behind each fs op of the
    // user's (after the preset's), and behind each bind and tmpfs of the unshare-style path.
    mutable std::vector<std::string> op_flags_, bind_flags_, tmpfs_flags_;
    mutable std::size_t preset_ops_ = 0;
};

}  // namespace drover::cli
