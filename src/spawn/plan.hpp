// The child's plan: every string, array and flag the child needs, built in the parent.
//
// Private to the spawn layer. After clone3 the child reads this (its copy of the parent's
// memory) and may not allocate, lock or throw: see child.cpp.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "drover/spawn/launch.hpp"
#include "wire.hpp"

namespace drover::detail {

/// One mount the child performs, in order.
struct mount_op {
    enum class kind : std::uint8_t { bind, tmpfs } what;
    std::string source;  // bind
    std::string target;
    std::string data;    // tmpfs options
    bool read_only = false;
};

/// One step of building a new root, in the order the child takes them. Paths are complete
/// (in stage mode the new root is at the stage directory while it is built).
struct fs_step {
    enum class kind : std::uint8_t {
        mount,        // mount(fstype, b, flags, data)
        bind,         // mount(a, b, MS_BIND | flags)
        setattr,      // mount_setattr(b, attr_flags, attr_set)
        mkdir,        // mkdir(b, mode); an existing one is fine
        make_target,  // b made to match a: a directory for a directory, else an empty file
        make_file,    // b as an empty file (an existing one is fine)
        symlink,      // symlink(a, b)
        copy_fd,      // b created with mode, filled from fd
        pivot_self,   // chdir(b), pivot_root(".", "."), umount2(".", MNT_DETACH), chdir("/")
        umount,       // umount2(b, MNT_DETACH)
        capture,      // open_tree(a, OPEN_TREE_CLONE | AT_RECURSIVE) into capture slot `slot`
        attach,       // move_mount(the tree in `slot`, b)
    };
    kind what = kind::mkdir;
    std::string a;
    std::string b;
    std::string fstype;
    std::string data;
    unsigned long flags = 0;
    std::uint64_t attr_set = 0;
    unsigned attr_flags = 0;
    int fd = -1;
    unsigned mode = 0755;
    /// A source that does not exist skips this step and the next `skip` steps (-try binds).
    bool optional = false;
    unsigned skip = 0;
    /// With a captured source: the slot holding it (make_target, setattr and attach act on
    /// the captured tree; an empty slot, from a missing -try source, skips the step).
    int slot = -1;
    std::string what_for;  // for people, in the parent only: "ro-bind /usr /usr: bind-mounting"
};

/// A spec, prepared: immutable once built, shared by every launch of it.
struct prepared_data {
    spawn_spec spec;
    std::uint64_t clone_flags = 0;  // CLONE_NEW* for clone3 itself
    bool user = false;              // a user namespace: id maps to write
    bool self_map = false;          // the child writes the (default) maps itself
    bool hold = false;              // the child waits on the sync pipe (maps or cgroups)
    bool new_pid = false;
    bool unshare_time = false;      // time ns via unshare+offsets instead of clone3
    bool make_private = false;
    bool mount_proc = false;
    bool loopback = false;
    std::string uid_map_text;
    std::string gid_map_text;
    std::string time_offsets_text;
    std::vector<mount_op> mounts;
    std::vector<fs_step> fs_captures;  // sources taken before the ids change (open_tree)
    std::vector<fs_step> fs_steps;     // a new root (empty: none)
    unsigned fs_slots = 0;             // captured sources the steps use (at most max_fs_slots)
    /// Where /proc is mounted, as the job sees its tree (after the switch to a new root): a job
    /// started in a warm set mounts its own procfs there (warm.hpp).
    std::vector<std::string> proc_targets;
    std::string root_cwd;              // with a new root: chdir here after the switch ...
    bool root_cwd_optional = false;    // ... or to / if it does not exist there

    // Ids and capabilities.
    bool switch_ids = false;           // setgroups/setresgid/setresuid before execve
    bool set_groups = false;           // setgroups is allowed where the child runs
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::vector<unsigned> groups;      // gid_t
    bool drop_caps = false;
    std::uint64_t keep_caps = 0;
    int last_cap = 40;
    bool no_new_privs = false;
    const void* seccomp_prog = nullptr;  // struct sock_fprog of spec.seccomp
    /// The child's setup may wait on something outside drover's control (a file op reading a
    /// pipe): the fork path, so that a setup that waits never holds the launching thread.
    bool setup_may_block = false;
    std::vector<int> ignored_signals;  // SIG_IGN in the caller when prepared: reset in the child

    // execve: candidates tried in order (PATH lookup), argv, env (empty env_ptrs with
    // env_inherit means: the caller's environ at launch time).
    std::vector<std::string> candidates;
    std::vector<const char*> candidate_ptrs;
    std::vector<std::string> argv_storage;
    std::vector<char*> argv_ptrs;
    bool env_inherit = true;
    std::vector<std::string> env_storage;
    std::vector<char*> env_ptrs;
};

/// What a process created by launch() is for (warm.hpp has the design).
enum class child_role : std::uint8_t {
    job,     // a job, cold: clone3 made its namespaces, it sets them up and execs
    holder,  // a warm set's holder: sets its namespaces up, then waits on hold_read until EOF
    entry,   // enters a holder's namespaces, clone3s the job (CLONE_PARENT) and exits
    warm_job,  // a job made by an entry: its namespaces are set up, it sets up only itself
    ready,     // a pre-started job: does all of its setup, then waits on go_fd for its program
};

/// Per-launch values the child needs beside the shared plan. Lives on the parent's stack
/// during clone3; the child has its own copy.
struct launch_frame {
    const prepared_data* plan = nullptr;
    char* const* envp = nullptr;
    pid_t parent_pid = 0;
    int sync_read = -1;    // the child waits here until its maps / cgroups are in place
    int ready_write = -1;  // posix_spawn path: the child says here that it is up (map writer)
    const int* join_fds = nullptr;  // cgroup.procs (v1) to write "0" to
    int join_count = 0;
    int report_write = -1;
    // vfork path: the records go to the parent's memory instead (report_write is -1); the
    // size is stored after each record, so the parent never reads half of one.
    std::byte* report_mem = nullptr;
    std::size_t* report_len = nullptr;
    fd_move moves[3 + 16] = {};
    int move_count = 0;
    int max_target = 2;
    bool moves_conflict = false;  // some source is another move's target: go through high fds

    child_role role = child_role::job;
    int hold_read = -1;  // holder: EOF here (the set dropped, or drover gone) ends it
    // entry: the holder to enter, what to enter, and how to clone3 the job. The entry shares
    // the parent's memory and descriptor table (CLONE_VM | CLONE_FILES): it leaves the job's
    // pid and pidfd here, or the errno of what failed.
    int set_pidfd = -1;
    std::uint64_t set_flags = 0;
    std::uint64_t job_clone_flags = 0;
    int job_cgroup_fd = -1;
    void* job_stack = nullptr;
    std::size_t job_stack_size = 0;
    const launch_frame* job_frame = nullptr;  // what the job walks (role warm_job)
    int entry_result = -1;  // fork-style entry (no job_stack): {err, pid, pidfd} go here
    int go_fd = -1;         // ready: the socket its program arrives on (go_header)
    int stub_fd = -1;       // ready: drover_ready_stub, to wait in once set up (or -1: wait here)
    mutable pid_t job_pid = -1;
    mutable int job_pidfd = -1;
    mutable int entry_err = 0;
};

/// Captured sources a plan may hold (the child keeps their descriptors on its stack).
inline constexpr unsigned max_fs_slots = 256;

/// The child's side of a new root, part one: takes the sources (fs_captures) into `slots`
/// (max_fs_slots of them, -1 where a -try source is missing). 0, or the errno of the capture
/// whose index is left in `failed`. Async-signal-safe.
int run_fs_captures(const prepared_data& p, int* slots, unsigned& failed) noexcept;

/// Part two: runs fs_steps in order, then closes the slots. 0, or the errno of the step
/// whose index is left in `failed`. Async-signal-safe.
int run_fs_steps(const prepared_data& p, int* slots, unsigned& failed) noexcept;

/// Advice for a failed fs step (which permission, which kernel), or empty.
std::string fs_advice(const fs_step& step, int err);

/// Parent side: fs_steps, root_cwd and the id/capability fields of `d` from d.spec. Throws
/// spec_error naming the field.
void prepare_walls(prepared_data& d);

/// The child's side: walks the plan for frame.role (a job's, a holder's or an entry's), then
/// execve or _exit. Never returns.
[[noreturn]] void run_child(const launch_frame& frame) noexcept;

/// drover_ready_stub, opened O_PATH once per process, or -1 if it was not found.
int ready_stub_fd() noexcept;

/// drover_holder (src/stub/holder.cpp), beside the stub, opened O_PATH once; -1 if missing
/// (then holders wait in drover_ready_stub --hold).
int holder_fd() noexcept;

/// run_child(*static_cast<const launch_frame*>(frame)), as clone3_vm's entry function.
void child_entry(void* frame) noexcept;

/// The report index of a failed capture (fs_captures[i]) is i | capture_index_bit.
inline constexpr unsigned capture_index_bit = 0x8000;


static_assert(sizeof(child_report) == report_record_size);

}  // namespace drover::detail
