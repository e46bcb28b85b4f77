// spawn_spec: everything a child needs, as a plain value; validated before any process starts.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "drover/spawn/namespaces.hpp"
#include "drover/spawn/sandbox.hpp"
#include "drover/spawn/seccomp.hpp"
#include "drover/spawn/stages.hpp"

namespace drover {

/// One range of a user-namespace id map: ids inner..inner+count-1 inside are
/// outer..outer+count-1 outside (the format of /proc/PID/uid_map).
struct id_range {
    std::uint32_t inner = 0;
    std::uint32_t outer = 0;
    std::uint32_t count = 1;
    friend bool operator==(const id_range&, const id_range&) = default;
};

/// Parses "INNER:OUTER:COUNT" (COUNT may be omitted: 1). nullopt if malformed.
std::optional<id_range> parse_id_range(std::string_view text);

/// Where one of the child's standard streams goes.
struct stdio {
    enum class kind : std::uint8_t { inherit, null, pipe, fd };
    kind how = kind::inherit;
    int fd = -1;  ///< with kind::fd: a descriptor of the caller's, borrowed until spawn returns

    static stdio inherit() { return {kind::inherit, -1}; }
    static stdio null() { return {kind::null, -1}; }
    static stdio pipe() { return {kind::pipe, -1}; }
    static stdio from_fd(int fd) { return {kind::fd, fd}; }
};

/// A descriptor of the caller's to appear in the child as `child_fd` (e.g. a notify socket).
struct fd_pass {
    int child_fd = 3;
    int parent_fd = -1;  ///< borrowed until spawn returns
};

/// Bind-mounts `source` on `target` (which must exist) in the child's mount namespace.
struct bind_mount {
    std::string source;
    std::string target;
    bool read_only = true;
};

/// Mounts a tmpfs on `target` (which must exist); `options` as for mount -o ("size=64m").
struct tmpfs_mount {
    std::string target;
    std::string options;
};

/// setrlimit(resource, {soft, hard}) in the child.
struct rlimit_setting {
    int resource = RLIMIT_NOFILE;
    rlim_t soft = RLIM_INFINITY;
    rlim_t hard = RLIM_INFINITY;
};

/// "RLIMIT_NOFILE" for RLIMIT_NOFILE; parse_rlimit accepts "nofile" or "RLIMIT_NOFILE".
std::string rlimit_name(int resource);
std::optional<int> parse_rlimit(std::string_view name);

/// The child's environment: inherited from the caller unless cleared, then edited.
class environment {
public:
    /// Start from an empty environment instead of the caller's.
    environment& clear() { clear_ = true; set_.clear(); return *this; }
    /// Sets NAME=VALUE (replacing an inherited or earlier value).
    environment& set(std::string name, std::string value);
    /// Removes NAME.
    environment& unset(std::string_view name);

    [[nodiscard]] bool inherits() const noexcept { return !clear_; }
    [[nodiscard]] bool unchanged() const noexcept { return !clear_ && set_.empty() && unset_.empty(); }
    /// NAME=VALUE entries for the child, given the caller's environ.
    [[nodiscard]] std::vector<std::string> materialize(char** caller_environ) const;
    /// The value the child will see for NAME, if any.
    [[nodiscard]] std::optional<std::string> lookup(std::string_view name, char** caller_environ) const;

private:
    bool clear_ = false;
    std::vector<std::pair<std::string, std::string>> set_;
    std::vector<std::string> unset_;
};

/// Everything about one child. A value type: copy it, keep it, spawn it many times.
/// Descriptors in it are borrowed (not owned) and must stay open until the spawn returns.
struct spawn_spec {
    // What to run.
    std::vector<std::string> argv;  ///< argv[0] is looked up in PATH unless it has a '/'
    environment env;
    std::string cwd;                ///< empty: the caller's (with a new root: if it exists there, else /)

    // Isolation.
    namespace_set namespaces;
    std::vector<id_range> uid_map;  ///< with user: empty means caller's uid -> 0
    std::vector<id_range> gid_map;  ///< with user: empty means caller's gid -> 0
    std::string hostname;           ///< with uts
    std::string domainname;         ///< with uts
    std::optional<bool> mount_proc; ///< fresh /proc; default: on when pid and mnt are both set
    std::vector<bind_mount> binds;  ///< with mnt
    std::vector<tmpfs_mount> tmpfs; ///< with mnt
    bool loopback_up = true;        ///< with net: bring `lo` up
    std::chrono::nanoseconds monotonic_offset{0};  ///< with time
    std::chrono::nanoseconds boottime_offset{0};   ///< with time

    // Sandbox walls (sandbox.hpp, seccomp.hpp), applied in this order after the namespaces:
    // root filesystem, ids, capabilities, no_new_privs, syscall filter (last before execve).
    filesystem_spec fs;             ///< a root of the child's own (needs mnt)
    /// With user: `own` writes uid_map/gid_map (or your ids as 0); `automatic` leases a range
    /// of host ids of its own from id_pool::global() for the child's life (needs root and the
    /// pid namespace, so that nothing with those ids outlives the lease).
    userns_ids ids = userns_ids::own;
    /// Become these ids before execve (inner ids with a user namespace). With a user namespace
    /// and no value: the inner id your own maps to, else 0 if mapped, else the first mapped.
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    /// Supplementary groups after the switch; set where setgroups is allowed (root, or a
    /// user namespace whose maps the parent wrote as root), cleared there when empty.
    std::vector<std::uint32_t> groups;
    /// Keep only these capabilities, in every set (bounding, permitted, effective,
    /// inheritable, ambient); unset: unchanged. Implies no_new_privs.
    std::optional<capability_set> capabilities;
    /// Installed with seccomp(2) as the last step before execve; implies no_new_privs. The
    /// program must allow execve, write and exit_group for drover's own last steps.
    std::shared_ptr<const seccomp_program> seccomp;

    // Descriptors.
    stdio in = stdio::inherit();
    stdio out = stdio::inherit();
    stdio err = stdio::inherit();
    std::vector<fd_pass> pass_fds;  ///< every other descriptor is closed in the child

    // Process attributes.
    bool die_with_parent = true;    ///< PR_SET_PDEATHSIG(SIGKILL): gone when the spawning thread is
    bool new_session = false;       ///< setsid(): also detaches from the terminal
    /// The child leads a new process group and takes the foreground of the terminal on its
    /// stdin (tcsetpgrp), so that ^C reaches only it and a shell can run job control even
    /// when PID-namespaced. The caller takes the terminal back when the child is done.
    bool foreground = false;
    bool no_new_privs = false;
    std::vector<rlimit_setting> rlimits;
    int cgroup_fd = -1;             ///< a cgroup v2 directory to start in (CLONE_INTO_CGROUP)
    /// cgroup.procs files (e.g. of cgroup v1 hierarchies) the parent writes the child's pid
    /// into before the child runs any code of its own: the child waits until they are joined.
    std::vector<std::string> join_cgroups;
    /// Non-empty: run argv under this program as `INIT init -- argv...`, a PID 1 that reaps
    /// orphans and forwards signals (drover's own `drover init`). Useful with the pid namespace.
    std::string init_program;

    /// false: the child exits with 0 right after its setup, without execve (for measuring
    /// namespace setup alone). argv may then be empty.
    bool exec = true;

    /// For tests: the child fails at this stage with EPERM instead of doing it.
    child_stage inject_failure = child_stage::none;

    /// Whether /proc will be mounted afresh over the host's /proc (without a new root).
    [[nodiscard]] bool wants_proc() const {
        if (fs.enabled) return false;
        return mount_proc.value_or(namespaces.has(ns::pid) && namespaces.has(ns::mnt));
    }
};

/// What `--sandbox` turns on (make_sandboxed); each field can be changed on the spec after.
struct sandbox_preset {
    bool share_net = false;     ///< keep the host's network (no net namespace)
    std::string root_dir;       ///< a prepared root (read-only) instead of the host's / (read-only)
    bool overlay = false;       ///< copy-on-write root: writable, changes gone with the job
    /// Host ids of the job's own (userns_ids::automatic); default: when running as root.
    std::optional<bool> automatic_ids;
};

/// Turns `spec` into a sandbox, as bubblewrap, nsjail and isolate build one: every namespace
/// but time (net unless share_net: loopback only), a root of its own — the host's / (or
/// root_dir) read-only, a minimal /dev, a fresh /proc with /proc/sys read-only, a tmpfs /tmp —
/// no capabilities, drover's default seccomp policy, no_new_privs, host ids of its own (as
/// root), a new session, and death with the spawning thread. Fs ops already in the spec are
/// kept after the preset's, so they can add binds. Throws spec_error if the policy cannot
/// be compiled (libseccomp missing a syscall name is not such a case).
void make_sandboxed(spawn_spec& spec, const sandbox_preset& preset = {});

/// Validator (docs/errors.md): why `spec` cannot be spawned, as "FIELD: problem" with the
/// spawn_spec field first ("hostname: needs the uts namespace"; field_of() splits it), or an
/// empty string if it can. Checks only what can be known without starting a process. The
/// throwing form is prepared_spawn's constructor, which throws spec_error with this text;
/// prepare(spec, ec, &why) is its error_code form.
[[nodiscard]] std::string validate(const spawn_spec& spec);

/// The field a spec_error or validate() message starts with, so that a front end can say it
/// in its own words (a flag, a TOML key): "fs.ops[3] (tmpfs): target must be an absolute
/// path" is {"fs.ops", 3, "target must be an absolute path"}; "uid_map range 2 (0:1:1):
/// count is 0" is {"uid_map", 1, "count is 0"}. `name` is empty for a message that does not
/// start with a field.
struct spec_field {
    std::string name;
    std::optional<std::size_t> index;  ///< [i], or "range i" counted from 1, as 0-based
    std::string rest;                  ///< the message after the field and its ": "
};
spec_field field_of(std::string_view message);

}  // namespace drover
