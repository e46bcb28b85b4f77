// What a benchmark run produced, as plain values: the input of every reporter and of the
// JSON round trip (schema: docs/bench-schema.md).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/stats.hpp"
#include "drover/spawn/namespaces.hpp"
#include "drover/spawn/timings.hpp"

namespace drover::bench {

/// Failure reasons and how often each happened. Empty: none.
using failure_counts = std::map<std::string, std::size_t>;

/// The per-stage names, in order: stage_durations::names, the library's. In the bench
/// "prepare" is drover's work before clone3 (pipes, the launch frame) plus its return paths:
/// the wall-clock total minus the six kernel-side stages.
inline constexpr std::size_t stage_count = 7;
inline constexpr std::array<const char*, stage_count> stage_names = {
    "prepare", "clone", "id_maps", "setup", "exec", "run", "reap"};
static_assert(stage_count == stage_durations::names.size());
static_assert(std::string_view(stage_names[0]) == stage_durations::names[0] &&
              std::string_view(stage_names[6]) == stage_durations::names[6]);

/// One namespace combination: drover and the raw floors, side by side (docs/bench.md).
struct combo_result {
    namespace_set set;
    summary drover;                           ///< spawn→reap, wall clock around launch..reap
    std::array<summary, stage_count> stages;  ///< drover's stages (stage_names order)
    /// The floor: the fastest raw method (vfork-style, or fork-style where the kernel
    /// requires it) doing the same setup drover does by default. drover ÷ floor is against it.
    summary floor;
    summary bare;  ///< the same method creating the namespaces only (no maps, /proc, lo)
    summary fork;  ///< the fork-style floor with the same setup: the second, named baseline
    /// drover_raw_probe (`--probe`): the bare floor's work done by a program that shares no
    /// code with drover or the bench, in the same shuffled order. n = 0 when it did not run.
    summary probe;
    std::string floor_method;   ///< "vfork", or "fork" (a time namespace)
    std::string drover_method;  ///< the method drover's spawns took: "vfork" or "fork"
    failure_counts drover_failures;
    failure_counts floor_failures;
    failure_counts bare_failures;
    failure_counts fork_failures;
    failure_counts probe_failures;
    interval ratio_ci;              ///< 95 % bootstrap interval of ratio()
    interval drover_p50_ci;         ///< 95 % bootstrap interval of drover.p50 (for compare)
    std::map<ns, double> marginal;  ///< per member: p50(S) − p50(S − it), if measured

    /// drover p50 ÷ floor p50; 0 if either has no data.
    [[nodiscard]] double ratio() const noexcept { return over(drover, floor); }
    [[nodiscard]] double bare_ratio() const noexcept { return over(drover, bare); }
    [[nodiscard]] double fork_ratio() const noexcept { return over(drover, fork); }
    /// The bare floor p50 ÷ the independent probe's p50: 1 when the helper times the kernel's
    /// work as an outsider would.
    [[nodiscard]] double probe_check() const noexcept { return over(bare, probe); }
    /// What drover adds to the floor at p50 (ns; may be negative within noise).
    [[nodiscard]] double drover_share() const noexcept { return drover.n && floor.n ? drover.p50 - floor.p50 : 0; }
    /// What the default setup (maps, /proc, lo) costs the floor at p50 (ns).
    [[nodiscard]] double setup_share() const noexcept { return floor.n && bare.n ? floor.p50 - bare.p50 : 0; }
    friend bool operator==(const combo_result&, const combo_result&) = default;

private:
    static double over(const summary& a, const summary& b) noexcept {
        return a.n && b.n && b.p50 > 0 ? a.p50 / b.p50 : 0;
    }
};

/// A baseline or a peer: a program started some other way, or by drover without namespaces.
struct peer_result {
    std::string name;               ///< "posix_spawn", "drover", "unshare", "bwrap", "runc"
    std::vector<std::string> argv;  ///< what was run (empty for drover's own direct spawn)
    bool ran = false;               ///< false: skipped, `note` says why
    std::string note;
    summary total;  ///< spawn→reap
    failure_counts failures;
    friend bool operator==(const peer_result&, const peer_result&) = default;
};

/// Sustained spawning of one combination at one concurrency for a fixed time.
struct throughput_result {
    namespace_set set;
    int concurrency = 1;
    double seconds = 0;      ///< measured wall time
    std::size_t spawns = 0;  ///< completed successfully
    failure_counts failures;
    double per_second = 0;
    summary latency;              ///< spawn→reap of each completed spawn
    double first_decile_p50 = 0;  ///< p50 of the first tenth of spawns (by start time)
    double last_decile_p50 = 0;   ///< p50 of the last tenth
    /// From a child's last instruction (the exec-static program's clock stamp) to its
    /// coroutine running again after the exit was reaped; n = 0 for other workloads.
    summary exit_to_callback;
    /// The throughput floor, run right after drover's point for the same time: `floor_processes`
    /// drover_floor processes (the concurrency, at most 64), each spawning the floor back to
    /// back (docs/bench.md). Not measured: floor_method is empty and floor_note says why.
    std::string floor_method;  ///< "vfork", or "fork" (a time namespace)
    int floor_processes = 0;
    double floor_seconds = 0;      ///< from the common start to the last helper's last reap
    std::size_t floor_spawns = 0;  ///< completed successfully, all processes together
    failure_counts floor_failures;
    double floor_per_second = 0;
    std::string floor_note;

    /// drover's spawns/s ÷ the floor's: 1 is the floor's rate, below 1 slower. 0 without a floor.
    [[nodiscard]] double floor_ratio() const noexcept {
        return floor_per_second > 0 ? per_second / floor_per_second : 0;
    }
    friend bool operator==(const throughput_result&, const throughput_result&) = default;
};

/// The machine and build the numbers come from.
struct machine_info {
    std::string date;    ///< UTC, ISO 8601
    std::string kernel;  ///< uname -r
    std::string cpu_model;
    int cores = 0;
    std::string cgroup_mode;  ///< "v2", "hybrid", "v1"
    std::string drover_version;
    std::string drover_commit;
    std::string clone_method;  ///< the method drover's spawns took: "vfork" or "fork"
    std::string floor_source;  ///< "helper PATH", or "in-process" with the reason
    double load_before = 0;    ///< 1-minute load average when the run began
    double load_after = 0;     ///< and when it ended
    double mhz_before = 0;     ///< the CPUs' mean clock in MHz when the run began (0: unknown)
    double mhz_after = 0;      ///< and when it ended
    friend bool operator==(const machine_info&, const machine_info&) = default;
};

/// The parameters of the run, as given.
struct parameters {
    std::vector<std::string> sets;  ///< each measured combination, "user+pid"
    int count = 0;
    int warmup = 0;
    std::string workload;       ///< "exit", "exec-static", "exec:/bin/true"
    std::string workload_path;  ///< the program executed ("" for exit)
    std::uint64_t seed = 0;
    std::vector<int> concurrency;
    double duration = 0;  ///< seconds per throughput point
    /// Threads that could run clone3 for the throughput runs' spawns (launch_extras::spawn_threads).
    unsigned spawn_threads = 0;
    bool peers = false;
    friend bool operator==(const parameters&, const parameters&) = default;
};

/// A whole run.
struct bench_report {
    machine_info machine;
    parameters params;
    std::vector<combo_result> combos;        ///< in canonical order (by bits)
    std::vector<marginal> marginals;         ///< from drover's p50
    std::vector<marginal> floor_marginals;   ///< from the floor's p50
    std::optional<peer_result> posix_spawn;  ///< the no-namespace baseline
    std::string peer_set;                    ///< the namespace set of the peer comparison
    std::vector<peer_result> peers;          ///< "drover" first, then unshare, bwrap, runc
    std::vector<throughput_result> throughput;
    double elapsed = 0;  ///< seconds
    /// What makes the numbers less trustworthy (noise, load, a missing helper), each with
    /// what to do about it. Empty: nothing was noticed.
    std::vector<std::string> warnings;
    friend bool operator==(const bench_report&, const bench_report&) = default;
};

}  // namespace drover::bench
