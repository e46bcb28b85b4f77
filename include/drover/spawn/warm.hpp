// warm: namespace sets made ahead of demand, each used by exactly one job.
//
// A set is held by a holder process. drover clone3s it with the spec's namespaces
// (user, mnt, net, ipc, uts and a PID namespace whose PID 1 it is). The parent writes its id
// maps, and the holder builds the spec's mounts and root, hostname and loopback. Then it waits
// on a pipe in drover_holder (no C library, one page; posix_spawn-style, so the holder never
// copies drover's memory), or in drover's own child where that cannot start (fork-style).
// A job started in the set goes through a short-lived entry process. It is
// clone3'd posix_spawn-style (CLONE_VM | CLONE_FILES), enters every namespace of the holder
// with one setns(pidfd), and clone3s the job with CLONE_PARENT | CLONE_NEWPID. The job is
// then drover's own child (waitid through its pidfd works as for any job) and PID 1 of a
// fresh PID namespace owned by the set's user namespace. It mounts its own /proc, makes its
// cgroup namespace and does the rest of its setup (ids, capabilities, seccomp, descriptors)
// like a cold job, then execs.
//
// Why not setns from the job itself: a PID namespace cannot be entered before it has a PID 1
// (its pid_for_children link is ENOENT until then), and a job that joined the holder's would
// be PID 2 beside it. Why not let the holder clone the job (a zygote): then the job is the
// holder's child. drover could not wait for it, and the holder would need the job's argv and
// descriptors. The entry costs one CLONE_VM clone3, some tens of µs. docs/warm.md has the
// numbers.
//
// A set is single-use. The holder lives until the job is reaped: it is PID 1 of the PID
// namespace above the job's, so its death ends the job. The set then goes, and no state
// passes from one job to the next.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "drover/spawn/id_pool.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/sys/unique_fd.hpp"

namespace drover {

/// One set of namespaces, set up and held by a holder process. Move-only; dropping it ends
/// the holder (SIGKILL through its pidfd) and reaps it.
class warm_set {
public:
    /// A holder whose namespaces a job enters, or a pre-started job waiting for its program.
    enum class kind : unsigned char { holder, ready_job };

    warm_set(pid_t pid, sys::unique_fd pidfd, sys::unique_fd hold, std::shared_ptr<id_lease> ids,
             std::int64_t made_ns) noexcept;
    /// A ready job: `go` is drover's end of its go socket, `report` its report pipe.
    warm_set(pid_t pid, sys::unique_fd pidfd, sys::unique_fd go, sys::unique_fd report,
             std::shared_ptr<id_lease> ids, std::int64_t made_ns) noexcept;
    warm_set(warm_set&&) noexcept = default;
    warm_set& operator=(warm_set&&) noexcept = delete;
    ~warm_set();

    [[nodiscard]] pid_t holder_pid() const noexcept { return pid_; }
    [[nodiscard]] int holder_pidfd() const noexcept { return pidfd_.get(); }
    /// The host ids the set's user namespace maps (userns_ids::automatic), or null.
    [[nodiscard]] const std::shared_ptr<id_lease>& ids() const noexcept { return ids_; }
    /// How long the holder took from clone3 until it was ready (ns).
    [[nodiscard]] std::int64_t made_ns() const noexcept { return made_ns_; }
    /// Whether the holder still runs (someone may have killed it). One poll(2).
    [[nodiscard]] bool alive() const noexcept;
    [[nodiscard]] kind what() const noexcept { return kind_; }

    /// A ready job's parts, handed to the launch that starts it: the set owns nothing after.
    struct ready_parts {
        pid_t pid = -1;
        sys::unique_fd pidfd;
        sys::unique_fd go;
        sys::unique_fd report;
        std::shared_ptr<id_lease> ids;
    };
    ready_parts take_ready() noexcept;

    /// A ready job's namespaces (nsfs descriptors), held until the set is dropped, which
    /// happens after the job is reaped: the job is then not the last user of its namespaces,
    /// so its exit does not wait for their teardown (a mount namespace's costs a full RCU
    /// grace period), and the last references go on the warm reaper's thread.
    void hold_namespaces(std::vector<sys::unique_fd> fds) noexcept { held_ns_ = std::move(fds); }

private:
    kind kind_ = kind::holder;
    pid_t pid_;
    sys::unique_fd pidfd_;
    sys::unique_fd hold_;  // holder: write end, its EOF ends the holder; ready job: go socket
    sys::unique_fd report_;
    std::shared_ptr<id_lease> ids_;
    std::int64_t made_ns_;
    std::vector<sys::unique_fd> held_ns_;
};

/// Ended sets are reaped on a thread of drover's (a holder may only finish exiting once the
/// job below it is reaped). Waits until none is pending, at most `limit`; whether it got there.
bool wait_warm_reaps(std::chrono::milliseconds limit);

/// Why `p` cannot have warm sets (a time namespace, v1 cgroup joins by path, file ops that
/// read a descriptor; for holders also no namespace to hold, or a /proc that would need
/// host-root guards), or empty if it can.
std::string warm_unsupported(const prepared_spawn& p, bool prestart = false);

/// Makes one set for `p`, waiting until its holder (or, with `prestart`, the pre-started job)
/// is ready. nullptr with `failure` filled if it could not (nothing is then left).
/// With `prestart` and `stub`, the job waits in drover_ready_stub if it can
/// (ready_stub_unusable); else in drover's own child. Where the stub fails to start (stage
/// ready_stub: its execveat refused, or the job died silently in it) the job is made again in
/// drover's child, and `stub_error`, if given, gets the stub's failure.
std::unique_ptr<warm_set> make_warm_set(const prepared_spawn& p, spawn_failure& failure, bool prestart = false,
                                        bool stub = true, std::string* stub_error = nullptr);

/// Why a pre-started job of `p` cannot wait in drover_ready_stub (no program, the stub not
/// found, a seccomp filter that refuses a syscall the stub makes), or empty if it can.
std::string ready_stub_unusable(const prepared_spawn& p);

struct warm_options {
    /// How many ready sets the pool keeps.
    unsigned size = 4;
    /// A thread that refills the pool as sets are taken. Without it the owner calls fill().
    bool refill_thread = true;
    /// After a failed refill (a namespace limit, memory) the thread waits, doubling up to this.
    std::chrono::milliseconds max_backoff{1000};
    /// Pre-started jobs: each set is the job's own process, set up all the way (namespaces,
    /// root, /proc, ids, capabilities, limits) and waiting for its program, argv, env and
    /// descriptors, which are all a job may then change (others are refused at stage
    /// prepare). Its start costs no clone3 and no setup: one message and one execve from the
    /// stub below. Faster than holders in latency and, with the CPUs saturated, in jobs per
    /// second (docs/warm.md has the numbers); holders stay the default because any job with
    /// the same namespace setup may enter theirs. false: a job enters a holder's namespaces.
    bool prestart = false;
    /// A pre-started job, once set up (its seccomp filter installed too), execs
    /// drover_ready_stub (no C library on x86-64) and waits there: it is then made
    /// posix_spawn-style, holds none of drover's memory, and its start is one message and
    /// one execve. Where the stub cannot be used (ready_stub_unusable) the
    /// job waits in drover's child as before, and where it fails to start the pool stops using
    /// it (warm_stats::stub_unused says why). false: always the latter.
    /// A holder, once set up, execs drover_holder (or the stub's hold mode) the same way: then the refill thread
    /// makes it posix_spawn-style (no copy of drover's page tables), and it holds none of
    /// drover's memory either. Without the stub it waits in drover's child, made fork-style.
    bool stub = true;
};

/// What a pool has done, for people and --json.
struct warm_stats {
    std::size_t ready = 0;       ///< sets ready now
    unsigned target = 0;         ///< warm_options::size
    std::uint64_t hits = 0;      ///< jobs started in a warm set
    std::uint64_t misses = 0;    ///< starts that found the pool empty and went cold (a retry counts again)
    std::uint64_t made = 0;      ///< sets made
    std::uint64_t failed = 0;    ///< sets that could not be made
    std::uint64_t dead = 0;      ///< ready sets found with their holder gone, dropped
    std::int64_t refill_last_ns = 0;  ///< how long the last set took to make
    std::int64_t refill_max_ns = 0;
    std::int64_t refill_total_ns = 0;  ///< over `made` sets
    unsigned namespaces_per_set = 0;   ///< namespaces each ready set holds
    std::string last_error;            ///< the last failure to make a set, one line
    /// Sets (holders or pre-started jobs) wait in drover_ready_stub (warm_options::stub) ...
    bool stub = false;
    /// ... or why not: ready_stub_unusable, stub = false, or the stub's own failure to start
    /// (then the pool stopped trying it; the set was made again without it).
    std::string stub_unused;
    std::vector<pid_t> holders;        ///< the ready sets' holder processes
};

/// A pool of warm sets for one prepared spec. Jobs take sets with launch_extras::warm; an
/// empty pool means a cold spawn, never a wait. Thread-safe.
class warm_pool {
public:
    /// Throws spec_error if the spec cannot have warm sets (warm_unsupported).
    explicit warm_pool(prepared_spawn spec, warm_options options = {});
    warm_pool(const warm_pool&) = delete;
    warm_pool& operator=(const warm_pool&) = delete;
    /// Stops the refill thread and ends every ready set. Sets in use stay with their jobs.
    ~warm_pool();

    [[nodiscard]] const prepared_spawn& spec() const noexcept;
    [[nodiscard]] bool prestarted() const noexcept;
    /// A ready set whose holder is alive, or nullptr (a miss). Wakes the refill thread.
    std::unique_ptr<warm_set> take();
    /// Makes sets until `size` are ready or one fails; returns how many are ready.
    std::size_t fill();
    /// Waits until `size` sets are ready, at most `limit`; whether it got there.
    bool wait_ready(std::chrono::milliseconds limit);
    [[nodiscard]] warm_stats stats() const;

    struct impl;

private:
    std::unique_ptr<impl> d_;
};

}  // namespace drover
