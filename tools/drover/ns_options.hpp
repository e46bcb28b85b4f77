// Namespace and sandbox flags shared by the subcommands that spawn (unshare(1)'s names).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "drover/spawn/spawn_spec.hpp"

namespace drover::cli {

/// The flags; add_to() registers them, apply() fills a spec (throws spec_error on bad values).
struct ns_options {
    bool user = false, pid = false, mnt = false, uts = false, ipc = false, net = false,
         cgroup = false, time = false;
    bool map_root = false;
    std::vector<std::string> map_user, map_group;
    std::string hostname, domainname;
    bool mount_proc = false, no_mount_proc = false;
    double monotonic = 0, boottime = 0;
    std::vector<std::string> bind, ro_bind, tmpfs, setenv, unsetenv, rlimit;
    bool clearenv = false, new_session = false, no_new_privs = false;
    std::string chdir;

    void add_to(CLI::App& app);
    void apply(spawn_spec& spec) const;
};

}  // namespace drover::cli
