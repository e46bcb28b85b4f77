// The stages of a spawn, named, for errors ("setting hostname: …") and timings.
#pragma once

#include <cstdint>
#include <string_view>

namespace drover {

/// A step of the spawn path at which something can fail. Parent-side steps come first, then
/// the child's steps in the order the child performs them.
enum class child_stage : std::uint16_t {
    none,
    // in the parent
    prepare,
    pipes,
    id_lease,
    job_cgroup,
    clone,
    uid_map,
    setgroups,
    gid_map,
    cgroup_join,
    report,
    // in the child, in order
    wait_maps,
    set_ids,
    setsid,
    foreground,
    pdeathsig,
    mount_private,
    mount_proc,
    bind_mount,
    remount_ro,
    tmpfs,
    filesystem,
    hostname,
    domainname,
    loopback,
    time_ns,
    time_offsets,
    rlimit,
    cap_bounding,
    capabilities,
    no_new_privs,
    chdir,
    fds,
    close_fds,
    signals,
    seccomp,
    exec,
    // a warm set's job (warm.hpp), in the process that enters the set before the job's clone3
    enter_set,
    // a pre-started job's execveat of drover_ready_stub (warm.hpp), after its setup
    ready_stub,
};

/// The child stages in execution order, for tests that inject a failure at each.
inline constexpr child_stage child_stages[] = {
    child_stage::wait_maps,  child_stage::set_ids,      child_stage::setsid,       child_stage::foreground,
    child_stage::pdeathsig,
    child_stage::mount_private, child_stage::mount_proc, child_stage::bind_mount,
    child_stage::remount_ro, child_stage::tmpfs,        child_stage::filesystem,
    child_stage::hostname,
    child_stage::domainname, child_stage::loopback,     child_stage::time_ns,
    child_stage::time_offsets, child_stage::rlimit,     child_stage::cap_bounding,
    child_stage::capabilities, child_stage::no_new_privs,
    child_stage::chdir,      child_stage::fds,          child_stage::close_fds,
    child_stage::signals,    child_stage::seccomp,      child_stage::exec,
};

/// Short identifier ("hostname", "mount_proc").
std::string_view stage_id(child_stage s) noexcept;

/// What was being done, for people ("setting hostname").
std::string_view stage_action(child_stage s) noexcept;

}  // namespace drover
