// metrics: the supervisor's counters as a value, and their Prometheus text exposition (0.0.4).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "drover/supervise/service.hpp"

namespace drover::supervise {

/// Spawn latencies (launch entered, the prepare stage -> execve succeeded), in fixed buckets from 100 µs to 1 s.
/// A value; `buckets[i]` counts observations in (bounds[i-1], bounds[i]], not cumulated.
struct latency_histogram {
    static constexpr std::array<double, 13> bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                      0.025,  0.05,    0.1,    0.25,  0.5,   1.0};
    std::array<std::uint64_t, bounds.size()> buckets{};
    std::uint64_t count = 0;  ///< all observations, those above the last bound included
    double sum = 0;           ///< seconds

    void observe(double seconds) noexcept;
    friend bool operator==(const latency_histogram&, const latency_histogram&) = default;
};

/// How runs of a service ended, and why drover held or killed it. Counters only grow (a
/// service changed by reload keeps its counters: they are kept by name).
struct service_counters {
    std::uint64_t spawns = 0;    ///< runs whose execve succeeded
    std::uint64_t restarts = 0;  ///< automatic restarts (manual starts do not reset this)
    /// Runs that could not start, by the stage that failed: a spawn stage's id (stage_id():
    /// "exec", "hostname", ...), or "supervisor" for what drover prepares before the spawn
    /// (the cgroup, the notify socket).
    std::map<std::string, std::uint64_t> spawn_failures;
    std::uint64_t exits_success = 0;  ///< exit code 0
    std::uint64_t exits_code = 0;     ///< a non-zero exit code
    std::uint64_t exits_signal = 0;   ///< killed by a signal
    std::uint64_t oom_kills = 0;      ///< runs the cgroup's OOM killer ended
    std::uint64_t watchdog_kills = 0;       ///< killed: no WATCHDOG=1 in time
    std::uint64_t start_timeout_kills = 0;  ///< killed: not ready within start_timeout
    std::uint64_t backoffs = 0;             ///< restart delays waited
    std::uint64_t restart_limit_hits = 0;   ///< gave up: the restart intensity was exceeded
    std::uint64_t stdout_lines = 0;  ///< lines logged (a line split at max_line counts per piece)
    std::uint64_t stdout_bytes = 0;  ///< bytes of those lines, without newlines
    std::uint64_t stderr_lines = 0;
    std::uint64_t stderr_bytes = 0;
    friend bool operator==(const service_counters&, const service_counters&) = default;
};

/// One service as metrics see it.
struct service_metrics {
    std::string name;
    service_state state = service_state::stopped;
    bool live = false;  ///< its main process exists (spawned, not yet reaped)
    service_counters counters;
};

/// A supervisor's metrics at one moment. A value.
struct supervisor_metrics {
    std::vector<service_metrics> services;  ///< in the order added
    /// Spawn latency by namespace set ("none", "user+pid+mnt").
    std::map<std::string, latency_histogram> spawn_latency;
    std::string version;                 ///< drover's version, for drover_build_info
    double start_time_seconds = 0;       ///< when the supervisor was made (Unix time)
};

/// The Prometheus text exposition (format 0.0.4) of `m`: metrics prefixed drover_, each with
/// # HELP and # TYPE, label values escaped (backslash, double quote, newline).
std::string render_prometheus(const supervisor_metrics& m);

/// `text` as a label value inside double quotes: \ -> \\, " -> \", newline -> \n.
std::string escape_label_value(std::string_view text);

}  // namespace drover::supervise
