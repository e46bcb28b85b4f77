// supervisor: runs services on one Asio executor — ordered start, restarts with backoff,
// readiness, logging of their output, ordered stop that kills whole process trees.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "drover/supervise/events.hpp"
#include "drover/supervise/metrics.hpp"
#include "drover/supervise/service.hpp"

namespace spdlog {
class logger;
}

namespace drover::supervise {

struct supervisor_options {
    /// Where every event goes: each output line, start, exit, restart and failure, as a value
    /// (events.hpp). Null: each is logged to `log` with log_event(). Failures are also kept in
    /// status() (last_error, last_exit), whatever the handler does.
    std::function<void(const supervisor_event&)> on_event;
    /// The log of the default event handler ("[name] line"). Null: a logger named "drover"
    /// writing to stderr. Not used when on_event is set.
    std::shared_ptr<spdlog::logger> log;
    /// Longest line logged in one piece; longer ones are split (memory per service stays
    /// bounded by this, whatever the service writes).
    std::size_t max_line = 4096;
    /// Put each service in its own cgroup (see cgroup.hpp); off, or on a host without
    /// cgroups, only the main process is signalled on stop.
    bool use_cgroups = true;
    /// Name of drover's cgroup subtree; empty: "drover.<pid>".
    std::string cgroup_name;
    /// Start a guardian process that removes the cgroups and kills their processes if this
    /// process dies without stopping (SIGKILL). Needs cgroups.
    bool guardian = true;
    /// Seed for the backoff jitter (tests fix it).
    std::uint64_t seed = std::random_device{}();
    /// Called when a service with shutdown_on_failure fails (the caller then stops).
    std::function<void(const std::string& service)> on_fatal;
    /// Threads that may run clone3 when many services start at once (start(), a restart
    /// burst), the loop's own counted (process/spawn_threads.hpp); 0: the process-wide setting.
    unsigned spawn_threads = 0;
};

/// Checks a whole service set as start() and reload() would, starting nothing: each service
/// valid, names unique, every `after` known, no cycle. Empty if fine, else one line.
[[nodiscard]] std::string check_services(const std::vector<service_spec>& services);

/// Owns services and runs them on `ex`. Every member must be called on the executor's thread
/// (a single-threaded io_context is the intended use). Destroying a supervisor that still has
/// running services kills their trees (SIGKILL) without waiting for graceful stop: call
/// stop() first.
class supervisor {
public:
    explicit supervisor(asio::any_io_executor ex, supervisor_options options = {});
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;
    ~supervisor();

    /// Adds a service (not started). Throws spec_error (a std::invalid_argument) if invalid or
    /// a duplicate.
    void add(service_spec spec);
    /// Checks the whole set: unknown `after` names, cycles. Empty if fine.
    [[nodiscard]] std::string check() const;

    /// Starts every service (each waits for the services it comes after). Returns once
    /// every runner is going; use wait_until() to wait for readiness. Throws
    /// spec_error (check()) and then starts nothing.
    asio::awaitable<void> start();
    /// Stops every service in reverse start order, each bounded by its stop timeout.
    asio::awaitable<void> stop();

    asio::awaitable<void> start_service(std::string name);
    asio::awaitable<void> stop_service(std::string name);
    asio::awaitable<void> restart_service(std::string name);

    /// Replaces the service set: stops removed services, starts added ones, restarts those
    /// whose fingerprint changed, leaves the others running. Throws spec_error
    /// (and changes nothing) if the new set is invalid.
    asio::awaitable<void> reload(std::vector<service_spec> services);

    /// Waits until `pred(status())` holds or `timeout` passes; returns whether it held.
    asio::awaitable<bool> wait_until(std::function<bool(const supervisor_status&)> pred,
                                     nanoseconds timeout);

    [[nodiscard]] supervisor_status status() const;
    /// Counters, states and spawn latencies of the current services (see metrics.hpp); a copy.
    [[nodiscard]] supervisor_metrics metrics() const;
    [[nodiscard]] bool has(std::string_view name) const;
    /// Where this supervisor's events go (on_event, or the log), for what is attached to it:
    /// the control and metrics servers report their own failures through it. The function
    /// stays callable after the supervisor is gone.
    [[nodiscard]] std::function<void(const supervisor_event&)> event_handler() const;
    /// The cgroup warning (empty when cgroups work).
    [[nodiscard]] std::string cgroup_warning() const;
    /// Top directories of drover's cgroup subtree (for tests and diagnostics).
    [[nodiscard]] std::vector<std::string> cgroup_roots() const;

    struct impl;

private:
    std::shared_ptr<impl> p_;
};

}  // namespace drover::supervise
