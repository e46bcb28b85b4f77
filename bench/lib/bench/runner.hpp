// The measurement runs: the namespace matrix against the raw floor and posix_spawn, the peers,
// and sustained throughput. Nothing here prints; progress goes to a callback between samples.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>

#include "bench/results.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/namespaces.hpp"

namespace drover::bench {

/// What each child does once its namespaces are set up.
struct workload {
    enum class kind { exit, exec_static, exec_path };
    kind how = kind::exit;
    std::string path;  ///< the program for exec_static / exec_path (absolute)

    [[nodiscard]] bool execs() const noexcept { return how != kind::exit; }
    /// "exit", "exec-static", "exec:/bin/true".
    [[nodiscard]] std::string str() const;
};

/// Parses "exit", "exec-static", "exec:PATH"; nullopt if it is none of them. exec-static's
/// path is filled by the caller (see static_helper_path()).
std::optional<workload> parse_workload(std::string_view text);

/// Where a program built with the benchmarks is: $ENV_VAR, the path the build recorded
/// (`built`, may be null), beside the running program, in ../bench/matrix or in
/// ../libexec/drover. Empty if none is executable.
std::string find_bench_program(const char* env_var, const char* built, const char* name);

/// Where drover_static_true is: $DROVER_STATIC_TRUE, the path the build recorded, or beside
/// the running program. Empty if none exists.
std::string static_helper_path();

/// Whether this build recorded where drover_static_true is (false with DROVER_BUILD_BENCH=OFF,
/// where the helper is not built).
bool static_helper_built() noexcept;

/// Parses one --ns value: "none", "user,pid", "user+pid", "all" (the eight together),
/// "singles" (none and each single namespace), "matrix" (all 256). Appends to `out`; false
/// with `bad` naming the unknown part.
bool parse_ns_selection(std::string_view text, std::vector<namespace_set>& out, std::string& bad);

/// Sorted by bits, duplicates removed.
std::vector<namespace_set> canonical_sets(std::vector<namespace_set> sets);

/// One spawn through drover's synchronous path (launch, await_exec, wait_blocking), timed
/// by the wall clock around the whole sequence. `ok` false: `error` is the failure's message.
struct drover_sample {
    bool ok = false;
    std::int64_t total = 0;  ///< ns, wall clock: before launch() -> reaped
    spawn_timings timings;   ///< drover's own timestamps
    stage_durations stages;  ///< timings.durations()
    clone_method method = clone_method::fork;
    std::string error;
};
drover_sample drover_spawn_once(const prepared_spawn& p);

/// The same through the API most callers use: `co_await spawn()` then `co_await wait()` on
/// `io` (run until both are done), so the event loop's hand-offs and the exit notification
/// are part of drover's share. What the matrix measures.
drover_sample drover_spawn_async(asio::io_context& io, const prepared_spawn& p);

struct bench_config {
    std::vector<namespace_set> sets;
    int count = 50;
    int warmup = 5;
    workload work;
    std::uint64_t seed = 1;
    std::vector<int> concurrency;                ///< empty: no throughput runs
    std::vector<namespace_set> throughput_sets;  ///< empty: the same as `sets`
    double duration = 2.0;                       ///< seconds per (combination, concurrency)
    /// Threads that may run clone3 for each throughput spawn (launch_extras::spawn_threads);
    /// 0: the process-wide setting (process/spawn_threads.hpp).
    unsigned spawn_threads = 0;
    bool peers = false;
    /// Also run drover_raw_probe --serve (bare method, none of drover's code) in the matrix's
    /// shuffled order, for every set without a time namespace; needs an exec workload.
    bool probe = false;
    /// Run the floors in this process instead of the drover_floor helper (`--floors
    /// in-process`): no second process beside drover's spawns. The vfork floors cost the same
    /// there (the child borrows the memory, nothing is copied); the fork-style floor pays for
    /// this process's page tables.
    bool floors_in_process = false;
};

/// machine_info::floor_source's reason when --floors in-process asked for it.
inline constexpr const char* floors_asked_in_process = "asked for (--floors in-process)";

/// Where drover_raw_probe is: $DROVER_RAW_PROBE, the path the build recorded, beside the
/// running program, or ../libexec/drover. Empty if none is executable.
std::string raw_probe_path();

/// Called between samples (never inside a timed region).
struct progress_event {
    std::string_view phase;  ///< "matrix", "peers", "throughput"
    std::size_t done = 0;
    std::size_t total = 0;
};
using progress_fn = std::function<void(const progress_event&)>;

/// The matrix: for each set, `count` drover spawns and `count` spawns of each raw floor (the
/// floor, the bare floor, the fork-style floor; run by the drover_floor helper, or in this
/// process if it cannot be found), and posix_spawn for the empty set when the workload execs,
/// after `warmup` of each, all in one order shuffled with `seed`. Fills report.combos,
/// marginals, posix_spawn, machine.floor_source and machine.clone_method.
void run_matrix(const bench_config& cfg, bench_report& report, const progress_fn& progress);

/// The full sandbox (user, pid, mnt, uts, ipc, net; fresh /proc; lo up) running /bin/true:
/// drover directly, and unshare(1), bwrap and runc each spawned by drover without
/// namespaces. Missing or refusing peers are recorded as skipped with the reason.
void run_peers(const bench_config& cfg, bench_report& report, const progress_fn& progress);

/// Sustained spawning of each set at each concurrency for cfg.duration seconds, on one Asio
/// event loop with cfg.spawn_threads spawner threads; right after each point, the throughput
/// floor for the same time: min(concurrency, 64) drover_floor processes looping the raw floor
/// (or, without the helper, no floor and a note in each row).
void run_throughput(const bench_config& cfg, bench_report& report, const progress_fn& progress);

/// Fills report.machine for this host and build (load_before included).
machine_info describe_machine();

/// The 1-minute load average (0 if /proc/loadavg cannot be read).
double load_average();

/// The online CPUs' mean current clock in MHz: cpufreq's scaling_cur_freq where the kernel
/// has it, else /proc/cpuinfo's "cpu MHz" (0 if neither can be read).
double cpu_mhz();

/// Looks at a finished report for what makes it less trustworthy — noisy or bimodal samples,
/// outliers, load on the machine, a floor run in-process — and appends one warning per
/// finding to report.warnings, each saying what to do.
void notice_noise(bench_report& report);

}  // namespace drover::bench
