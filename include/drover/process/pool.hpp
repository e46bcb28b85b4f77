// pool: runs many jobs (spawn specs) with bounded concurrency on one executor, and hands back
// each job's exit status, timings and captured output as it finishes; holds spawns back
// while the system is out of descriptors, processes, namespaces or memory.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "drover/process/async.hpp"
#include "drover/process/job.hpp"
#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/timings.hpp"

namespace drover {

/// What happens when a child writes more than a stream's buffer holds.
enum class overflow_policy : unsigned char {
    /// Keep the first `max_bytes`, drain and count the rest, end the text with a marker line.
    truncate,
    /// Stop reading the pipe (the child blocks in write(2)) until the output sink has taken
    /// the buffered bytes. Needs pool_options::sink.
    backpressure,
};

/// Per-stream output buffering of each job.
struct output_limits {
    std::size_t max_bytes = 1 << 20;  ///< per stream and job
    overflow_policy policy = overflow_policy::truncate;
    /// With truncate: stop the whole job once a stream goes past max_bytes (verdict output),
    /// as a judge's output limit does.
    bool kill = false;
};

/// The marker that ends truncated output: "\n[drover: N bytes of stdout dropped]\n".
std::string truncation_marker(std::size_t dropped, int stream_fd);

/// Why the pool is holding spawns back.
struct throttle_state {
    enum class kind : unsigned char {
        none,
        fd_budget,    ///< the live jobs' descriptors would exceed RLIMIT_NOFILE
        spawn_error,  ///< a spawn failed with EMFILE/ENFILE/EAGAIN/ENOSPC/ENOMEM
    };
    kind why = kind::none;
    spawn_failure failure;  ///< with spawn_error: the stage and errno
    std::size_t live = 0;   ///< jobs running when the hold began
    std::size_t limit = 0;  ///< with fd_budget: the most jobs the budget allows

    [[nodiscard]] bool throttled() const noexcept { return why != kind::none; }
    /// "throttled: clone: Resource temporarily unavailable (RLIMIT_NPROC or pid_max)",
    /// "throttled: fd budget (RLIMIT_NOFILE 256) allows 60 live jobs", or "" when not.
    [[nodiscard]] std::string reason() const;
};

/// Whether a spawn failure means "no capacity now, retry later" (EMFILE, ENFILE, EAGAIN,
/// ENOSPC, ENOMEM in a stage before execve).
bool is_capacity_failure(const spawn_failure& f) noexcept;

/// One finished job.
struct job_result {
    std::size_t index = 0;         ///< order of submission, from 0
    std::string tag;               ///< the caller's label (e.g. the input line)
    /// The exit status; unset if the job never started (see `failure`).
    std::optional<exit_status> status;
    std::optional<spawn_failure> failure;  ///< why the job could not start
    std::string out;               ///< captured stdout (if piped and no sink took it)
    std::string err;               ///< captured stderr
    std::size_t out_dropped = 0;   ///< bytes of stdout discarded by the truncate policy
    std::size_t err_dropped = 0;
    /// The child exited but a descendant still held stdout or stderr open after
    /// pool_options::output_linger: the job ended without waiting for their EOF.
    bool output_cut = false;
    spawn_timings timings;         ///< the spawn's stage timestamps (of the attempt that ran)
    /// Why it ended (also failed_to_start and cancelled), what it used, one line about it.
    job_outcome outcome;
    std::int64_t queued_ns = 0;    ///< CLOCK_MONOTONIC: submitted
    std::int64_t started_ns = 0;   ///< first spawn attempt
    std::int64_t finished_ns = 0;  ///< reaped and both streams at EOF
    unsigned attempts = 0;         ///< spawn attempts (more than 1 after throttling)

    [[nodiscard]] bool ok() const noexcept { return status && status->success(); }
};

/// A piece of a job's output handed to a sink. `data` points into the job's read buffer and
/// stays valid until the sink's awaitable completes (copy it to keep it longer).
struct output_chunk {
    std::size_t index = 0;  ///< the job
    int stream = 1;         ///< 1 stdout, 2 stderr
    std::string_view data;
};

/// Where the pool keeps the parent's ends of jobs' piped stdout and stderr.
enum class output_fd_policy : unsigned char {
    /// In the descriptor table while it has room under RLIMIT_NOFILE; the jobs past that in
    /// an io_uring's registered descriptors (process::move_output_to_ring), where the kernel
    /// has them. 10,000 jobs with both streams piped fit under a limit of 20,000 this way.
    automatic,
    table,  ///< always in the descriptor table (the pool throttles at RLIMIT_NOFILE)
    ring,   ///< always in the ring where the kernel has it (else in the table)
};

struct pool_options {
    std::size_t concurrency = 64;  ///< most jobs alive at once
    /// Most spawns between clone3 and the exec report at once (the spawn path is CPU-bound
    /// in the parent; more in flight only queues in the kernel).
    std::size_t spawn_parallelism = 16;
    output_limits output;
    /// After a job's child has exited, how long its pipes may stay open for a descendant
    /// that still holds them (a daemonised grandchild): then the job ends without the rest
    /// (job_result::output_cut says so). Output the child itself wrote is always read.
    std::chrono::milliseconds output_linger{250};
    /// Keep live jobs' descriptors within RLIMIT_NOFILE (read at each start): the pool
    /// throttles itself before the kernel says EMFILE.
    bool fd_budget = true;
    /// Backoff while throttled by spawn errors; a job exit ends a backoff early.
    std::chrono::milliseconds retry_min{1};
    std::chrono::milliseconds retry_max{200};
    /// With no job of the pool alive, capacity will not come back from the pool's own jobs:
    /// after this many consecutive capacity failures the job fails with the last failure.
    unsigned idle_retry_limit = 40;
    /// With the backpressure policy: receives output as it arrives, in chunks of at most
    /// output.max_bytes (and at most 1 MiB); then
    /// job_result::out/err stay empty. The pool awaits it before reading that stream further.
    /// If it throws, the job's failure says so and the rest of that stream is drained and
    /// counted as dropped.
    std::function<asio::awaitable<void>(const output_chunk&)> sink;
    /// Called when the throttle state changes (also back to none).
    std::function<void(const throttle_state&)> on_throttle;
    /// Limits for every job (time, CPU, memory, processes, CPU share), enforced from outside.
    job_limits limits;
    /// Start jobs in warm namespace sets from this pool when it has one (warm.hpp); every
    /// job's spec must have its namespaces and setup. Borrowed: outlives the job_pool.
    warm_pool* warm = nullptr;
    /// Where jobs get their own cgroups when `limits` want them; null: the pool makes a
    /// tree of its own (drover.<pid>.pool) on first need.
    std::shared_ptr<cgroup_tree> cgroups;
    /// Where piped output's read ends live (see output_fd_policy).
    output_fd_policy output_fds = output_fd_policy::automatic;
    /// Threads that may run clone3 for the pool's spawns, its loop's own counted
    /// (spawn_threads.hpp); 0: the process-wide setting, 1: the loop's thread only.
    unsigned spawn_threads = 0;
};

/// Counters over the pool's life.
struct pool_stats {
    std::size_t submitted = 0;
    std::size_t started = 0;      ///< spawns that reached execve
    std::size_t finished = 0;     ///< results delivered
    std::size_t failed_to_start = 0;
    std::size_t live = 0;         ///< now
    std::size_t peak_live = 0;
    std::size_t throttle_events = 0;  ///< transitions into a throttled state
    std::size_t capacity_failures = 0;  ///< spawn attempts refused for lack of capacity
    std::size_t cancelled = 0;    ///< dropped by cancel_queued()
    /// Jobs whose piped output was read through the io_uring (output_fd_policy).
    std::size_t ring_output_jobs = 0;
};

/// Runs jobs on one executor (use it from that executor only; not thread-safe). Children
/// are spawned with drover::spawn and awaited with process::wait(); stdout and stderr, if
/// the spec pipes them, are read with a buffer of at most output.max_bytes per stream.
///
///   job_pool pool(ex, {.concurrency = 8});
///   pool.submit(prepared_spawn(spec));   // any number of times, also while running
///   pool.close();                        // no more jobs: run() ends when all are done
///   co_await pool.run([](job_result r) { ... });
class job_pool {
public:
    job_pool(asio::any_io_executor ex, pool_options options);
    ~job_pool();
    job_pool(const job_pool&) = delete;
    job_pool& operator=(const job_pool&) = delete;

    /// Queues a job; returns its index. Throws std::logic_error after close().
    std::size_t submit(prepared_spawn spec, std::string tag = {});
    /// No more submissions: run() returns once the queue is empty and all jobs ended.
    void close();

    /// Runs the queue; calls `on_done` once per job as it finishes, in completion order.
    /// Returns when closed and done. Call once. An exception from `on_done` ends run() with
    /// it (jobs still running keep running: signal_all() and a second loop pass end them;
    /// a token other than use_awaitable gets errc::unexpected_exception for an exception
    /// that is not a system_error). Completion: void(std::error_code). Keep the pool alive
    /// until it completes.
    template <completion_token_for<void> Token = default_token>
    auto run(std::function<void(job_result)> on_done, Token&& token = {}) {
        return detail::async_coroutine(get_executor(), std::forward<Token>(token),
                                       [this, on_done = std::move(on_done)]() mutable {
            return run_coro(std::move(on_done));
        });
    }

    /// The executor the jobs run on.
    [[nodiscard]] asio::any_io_executor get_executor() const noexcept;

    /// Sends `sig` to job `index` through its pidfd; ESRCH if it is not running (queued,
    /// still spawning or finished).
    std::error_code signal(std::size_t index, int sig) noexcept;
    /// Sends `sig` to every running job; returns how many it reached.
    std::size_t signal_all(int sig) noexcept;
    /// Drops the jobs not yet started: each is delivered at once with failure ECANCELED
    /// ("cancelled before it started"). Returns how many.
    std::size_t cancel_queued();
    /// Jobs submitted and not yet started (nor cancelled).
    [[nodiscard]] std::size_t queued() const noexcept;

    [[nodiscard]] const throttle_state& throttle() const noexcept;
    [[nodiscard]] const pool_stats& stats() const noexcept;
    [[nodiscard]] const pool_options& options() const noexcept;

    struct impl;

private:
    asio::awaitable<void> run_coro(std::function<void(job_result)> on_done);

    std::shared_ptr<impl> impl_;
};

namespace detail {
asio::awaitable<std::vector<job_result>> run_jobs_coro(asio::any_io_executor ex, std::vector<prepared_spawn> specs,
                                                       pool_options options);
}  // namespace detail

/// Runs `specs` to completion with `options`; gives the results in submission order.
/// Completion: void(std::error_code, std::vector<job_result>).
template <completion_token_for<std::vector<job_result>> Token = default_token>
auto run_jobs(asio::any_io_executor ex, std::vector<prepared_spawn> specs, pool_options options, Token&& token = {}) {
    return detail::async_coroutine(ex, std::forward<Token>(token),
                                   [ex, specs = std::move(specs), options = std::move(options)]() mutable {
        return detail::run_jobs_coro(ex, std::move(specs), std::move(options));
    });
}

}  // namespace drover
