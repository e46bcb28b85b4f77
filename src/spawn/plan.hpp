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

namespace drover::detail {

/// One mount the child performs, in order.
struct mount_op {
    enum class kind : std::uint8_t { bind, tmpfs } what;
    std::string source;  // bind
    std::string target;
    std::string data;    // tmpfs options
    bool read_only = false;
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

/// One descriptor the child must have: `source` (parent's numbering) at `target`.
struct fd_move {
    int target;
    int source;
};

/// Per-launch values the child needs beside the shared plan. Lives on the parent's stack
/// during clone3; the child has its own copy.
struct launch_frame {
    const prepared_data* plan = nullptr;
    char* const* envp = nullptr;
    pid_t parent_pid = 0;
    int sync_read = -1;    // the child waits here until its maps / cgroups are in place
    int report_write = -1;
    fd_move moves[3 + 16] = {};
    int move_count = 0;
    int max_target = 2;
    bool moves_conflict = false;  // some source is another move's target: go through high fds
};

/// The child's side: walks the plan, then execve. Never returns.
[[noreturn]] void run_child(const launch_frame& frame) noexcept;

/// A record on the report pipe.
struct child_report {
    std::uint16_t stage;  // child_stage; none = setup done, about to execve
    std::uint16_t index;  // which mount, rlimit or fd
    std::int32_t err;
    std::int64_t child_start;
    std::int64_t setup_done;
};
static_assert(sizeof(child_report) == report_record_size);

}  // namespace drover::detail
