// Words for people: stage names, failure messages, kernel advice, exit statuses, durations.
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/timings.hpp"

namespace drover {

namespace {

struct stage_words {
    child_stage stage;
    std::string_view id;
    std::string_view action;
};

constexpr stage_words stage_table[] = {
    {child_stage::none, "none", "spawning"},
    {child_stage::prepare, "prepare", "preparing the spawn"},
    {child_stage::pipes, "pipes", "creating pipes"},
    {child_stage::id_lease, "id_lease", "leasing a range of host ids"},
    {child_stage::job_cgroup, "job_cgroup", "making the job's cgroup:"},
    {child_stage::clone, "clone", "creating the process (clone3)"},
    {child_stage::uid_map, "uid_map", "writing the uid map"},
    {child_stage::setgroups, "setgroups", "denying setgroups"},
    {child_stage::gid_map, "gid_map", "writing the gid map"},
    {child_stage::cgroup_join, "cgroup_join", "moving the child into cgroup"},
    {child_stage::report, "report", "reading the child's report"},
    {child_stage::wait_maps, "wait_maps", "waiting for the parent (id maps, cgroups)"},
    {child_stage::set_ids, "set_ids", "switching to the job's ids"},
    {child_stage::setsid, "setsid", "starting a new session"},
    {child_stage::foreground, "foreground", "taking the terminal's foreground"},
    {child_stage::pdeathsig, "pdeathsig", "setting the parent-death signal"},
    {child_stage::mount_private, "mount_private", "making / private"},
    {child_stage::mount_proc, "mount_proc", "mounting /proc"},
    {child_stage::bind_mount, "bind_mount", "bind-mounting"},
    {child_stage::remount_ro, "remount_ro", "remounting read-only"},
    {child_stage::tmpfs, "tmpfs", "mounting tmpfs on"},
    {child_stage::filesystem, "filesystem", "building the root filesystem:"},
    {child_stage::hostname, "hostname", "setting hostname"},
    {child_stage::domainname, "domainname", "setting domainname"},
    {child_stage::loopback, "loopback", "bringing up loopback"},
    {child_stage::time_ns, "time_ns", "creating the time namespace"},
    {child_stage::time_offsets, "time_offsets", "writing time namespace offsets"},
    {child_stage::rlimit, "rlimit", "setting rlimit"},
    {child_stage::cap_bounding, "cap_bounding", "dropping capabilities from the bounding set"},
    {child_stage::capabilities, "capabilities", "setting capabilities"},
    {child_stage::no_new_privs, "no_new_privs", "setting no_new_privs"},
    {child_stage::chdir, "chdir", "changing directory to"},
    {child_stage::fds, "fds", "setting up"},
    {child_stage::close_fds, "close_fds", "closing inherited descriptors"},
    {child_stage::signals, "signals", "resetting signal handlers"},
    {child_stage::seccomp, "seccomp", "installing the seccomp filter"},
    {child_stage::exec, "exec", "execve"},
    {child_stage::enter_set, "enter_set", "entering a warm namespace set"},
    {child_stage::ready_stub, "ready_stub", "starting drover_ready_stub"},
};

const stage_words& words(child_stage s) {
    for (const auto& w : stage_table)
        if (w.stage == s) return w;
    return stage_table[0];
}

constexpr std::pair<int, std::string_view> rlimit_table[] = {
    {RLIMIT_AS, "AS"},         {RLIMIT_CORE, "CORE"},       {RLIMIT_CPU, "CPU"},
    {RLIMIT_DATA, "DATA"},     {RLIMIT_FSIZE, "FSIZE"},     {RLIMIT_LOCKS, "LOCKS"},
    {RLIMIT_MEMLOCK, "MEMLOCK"}, {RLIMIT_MSGQUEUE, "MSGQUEUE"}, {RLIMIT_NICE, "NICE"},
    {RLIMIT_NOFILE, "NOFILE"}, {RLIMIT_NPROC, "NPROC"},     {RLIMIT_RSS, "RSS"},
    {RLIMIT_RTPRIO, "RTPRIO"}, {RLIMIT_RTTIME, "RTTIME"},   {RLIMIT_SIGPENDING, "SIGPENDING"},
    {RLIMIT_STACK, "STACK"},
};

std::string per_type_sysctls(namespace_set requested) {
    std::string out;
    for (int i = 0; i < ns_count; ++i) {
        auto n = static_cast<ns>(i);
        if (!requested.has(n)) continue;
        if (!out.empty()) out += ", ";
        out += "user.max_" + std::string(n == ns::mnt ? "mnt" : ns_name(n)) + "_namespaces";
    }
    return out;
}

}  // namespace

std::string_view stage_id(child_stage s) noexcept { return words(s).id; }
std::string_view stage_action(child_stage s) noexcept { return words(s).action; }

std::string rlimit_name(int resource) {
    for (const auto& [r, name] : rlimit_table)
        if (r == resource) return "RLIMIT_" + std::string(name);
    return "resource " + std::to_string(resource);
}

std::optional<int> parse_rlimit(std::string_view name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper.starts_with("RLIMIT_")) upper.erase(0, 7);
    for (const auto& [r, n] : rlimit_table)
        if (n == upper) return r;
    return std::nullopt;
}

std::string spawn_failure::message() const {
    std::string out(stage_action(stage));
    if (stage == child_stage::clone) out += " with namespaces";
    if (!detail.empty()) {
        out += ' ';
        out += detail;
    }
    if (code) {
        out += ": ";
        out += code.message();
    }
    return out;
}

namespace {
std::string what_of(const spawn_failure& f) {
    std::string m = f.message();
    if (!f.advice.empty()) m += " (" + f.advice + ")";
    return m;
}
}  // namespace

spawn_error::spawn_error(spawn_failure f)
    : std::system_error(f.code), failure_(std::move(f)), what_(what_of(failure_)) {}

std::string kernel_advice(child_stage stage, int err, namespace_set requested) {
    bool root = ::geteuid() == 0;
    switch (stage) {
        case child_stage::clone:
            switch (err) {
                case EPERM:
                    if (requested.has(ns::user) && !root)
                        return "user namespaces may be disabled for unprivileged users: check "
                               "sysctl kernel.unprivileged_userns_clone=1, "
                               "kernel.apparmor_restrict_unprivileged_userns=0 and "
                               "user.max_user_namespaces > 0";
                    if (!requested.has(ns::user) && !root && !requested.empty())
                        return "namespaces other than user need CAP_SYS_ADMIN: add the user "
                               "namespace (-U) or run as root";
                    return "refused by the kernel or a security module (seccomp, AppArmor, "
                           "SELinux); inside a container its seccomp profile may block clone3";
                case ENOSPC:
                    return "a namespace limit is reached: see sysctl " + per_type_sysctls(requested) +
                           ", or the nesting limit of 32 user/pid namespaces";
                case EUSERS:
                    return "user namespaces are nested deeper than 32 levels or "
                           "user.max_user_namespaces is reached";
                case EINVAL:
                    return "the kernel rejected the flags: a namespace type may be compiled out "
                           "(CONFIG_USER_NS, CONFIG_TIME_NS; time namespaces need Linux >= 5.6, "
                           "CLONE_INTO_CGROUP needs 5.7)";
                case EAGAIN:
                    return "too many processes: RLIMIT_NPROC (ulimit -u), sysctl kernel.pid_max, "
                           "kernel.threads-max or a pids cgroup limit";
                case ENOMEM:
                    return "out of memory, or the init of the PID namespace has exited";
                case ENOSYS:
                    return "clone3 needs Linux >= 5.3";
                default:
                    return {};
            }
        case child_stage::uid_map:
        case child_stage::gid_map:
        case child_stage::setgroups:
            if (err == EPERM)
                return "mapping ids other than your own needs CAP_SETUID/CAP_SETGID in the "
                       "parent namespace (run as root, or map only your own id)";
            if (err == EINVAL) return "the map is malformed or its ranges overlap";
            return {};
        case child_stage::cgroup_join:
            if (err == ENOENT) return "the cgroup does not exist (create it first)";
            if (err == EACCES || err == EPERM)
                return "moving a process needs write access to cgroup.procs of both cgroups";
            return {};
        case child_stage::mount_proc:
            if (err == EPERM)
                return "mounting proc in a user namespace needs a fully visible /proc on the host "
                       "(nothing mounted over /proc/*) and the pid namespace";
            return {};
        case child_stage::time_ns:
        case child_stage::time_offsets:
            if (err == EINVAL) return "time namespaces need Linux >= 5.6 and CONFIG_TIME_NS";
            if (err == EACCES) return "offsets can only be set before a process enters the namespace";
            return {};
        case child_stage::exec:
            if (err == EACCES) return "the file is not executable or a mount is noexec";
            return {};
        case child_stage::ready_stub:
            return "pre-started jobs wait in drover's own child instead; DROVER_READY_STUB names a working stub "
                   "(or none)";
        case child_stage::pipes:
            if (err == EMFILE) return "the descriptor limit is reached: raise RLIMIT_NOFILE (ulimit -n)";
            if (err == ENFILE) return "the system-wide file limit is reached: sysctl fs.file-max";
            return {};
        default:
            return {};
    }
}

exit_status exit_status::from_siginfo(const siginfo_t& info) noexcept {
    switch (info.si_code) {
        case CLD_EXITED: return exited_with(info.si_status);
        case CLD_DUMPED: return killed_by(info.si_status, true);
        default: return killed_by(info.si_status, false);
    }
}

std::string signal_name(int sig) {
    if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(sig);
}

std::string exit_status::str() const {
    switch (how) {
        case kind::exited: return "exited with code " + std::to_string(value);
        case kind::signaled: return "killed by " + signal_name(value);
        case kind::dumped: return "killed by " + signal_name(value) + " (core dumped)";
    }
    return {};
}

stage_durations spawn_timings::durations() const noexcept {
    // The timeline in stage order; a missing point (0) takes the one before it.
    std::array<std::int64_t, 8> t = {launch_start ? launch_start : clone_start,
                                     clone_start, clone_end, maps_written, setup_done, exec_done, exit_observed, reaped};
    for (std::size_t i = 1; i < t.size(); ++i) t[i] = std::max(t[i], t[i - 1]);
    stage_durations d;
    d.prepare = t[1] - t[0];
    d.clone = t[2] - t[1];
    d.id_maps = t[3] - t[2];
    d.setup = t[4] - t[3];
    d.exec = t[5] - t[4];
    d.run = t[6] - t[5];
    d.reap = t[7] - t[6];
    d.total = t[7] - t[0];
    return d;
}

}  // namespace drover
