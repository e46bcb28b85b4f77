// service: what the supervisor runs (a spawn_spec plus restart, stop, readiness and limits),
// the restart arithmetic (backoff with jitter, intensity), and each service's state as a value.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "drover/process/cgroup.hpp"
#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/spawn_spec.hpp"

namespace drover::supervise {

using clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

/// When a service that ended is started again (systemd's Restart=).
enum class restart_policy : std::uint8_t { never, on_failure, always };
/// "no", "on-failure", "always".
std::string_view restart_policy_name(restart_policy p) noexcept;
std::optional<restart_policy> parse_restart_policy(std::string_view text) noexcept;

/// Delay before restart number `attempt` (0-based): initial * multiplier^attempt, capped at
/// max, then spread by +-jitter (a fraction) so that services failing together do not
/// restart in lockstep.
struct backoff_policy {
    nanoseconds initial = std::chrono::milliseconds(100);
    nanoseconds max = std::chrono::seconds(30);
    double multiplier = 2.0;
    double jitter = 0.1;  ///< 0..1; 0.1 = +-10%

    /// `unit_random` in [0, 1) picks the point within the jitter band (0.5 = no jitter).
    [[nodiscard]] nanoseconds delay(unsigned attempt, double unit_random) const noexcept;
    friend bool operator==(const backoff_policy&, const backoff_policy&) = default;
};

/// At most `burst` restarts within any `interval`; one more and the service has failed
/// (systemd's StartLimitBurst= / StartLimitIntervalSec=, OTP's intensity and period).
struct restart_intensity {
    unsigned burst = 5;
    nanoseconds interval = std::chrono::seconds(10);
    friend bool operator==(const restart_intensity&, const restart_intensity&) = default;
};

/// The restart arithmetic of one service, with time passed in (tests drive it with their own
/// clock). Not thread-safe; a value.
class restart_tracker {
public:
    restart_tracker(backoff_policy backoff, restart_intensity intensity)
        : backoff_(backoff), intensity_(intensity) {}

    /// A run that started at `started` ended at `now`. Returns the delay before the next start,
    /// or nullopt if one more restart would exceed the intensity (the service has failed).
    /// A run that lasted at least the intensity interval resets the backoff.
    std::optional<nanoseconds> next(clock::time_point started, clock::time_point now,
                                    double unit_random);
    /// Forgets history (a manual start or restart).
    void reset() noexcept { attempt_ = 0; recent_.clear(); }
    [[nodiscard]] unsigned attempt() const noexcept { return attempt_; }

private:
    backoff_policy backoff_;
    restart_intensity intensity_;
    unsigned attempt_ = 0;
    std::deque<clock::time_point> recent_;
};

/// How readiness is learnt.
enum class readiness : std::uint8_t {
    on_start,  ///< ready once execve succeeded (systemd Type=exec)
    /// Type=notify: the child sends "READY=1" as sd_notify(3) does, to the datagram socket in
    /// $NOTIFY_SOCKET, or writes it to the descriptor named by $NOTIFY_FD (both are given).
    notify,
};


/// The descriptor number a notify-type service writes "READY=1" to; also in $NOTIFY_FD.
inline constexpr int notify_fd = 3;

/// Everything about one service. A value type.
struct service_spec {
    std::string name;       ///< unique within a supervisor; [A-Za-z0-9_.-]+
    spawn_spec spawn;       ///< what to run; stdout/stderr are replaced by pipes to the logger
    restart_policy restart = restart_policy::on_failure;
    backoff_policy backoff;
    restart_intensity intensity;
    bool shutdown_on_failure = false;  ///< a failed service stops the whole supervisor
    int stop_signal = SIGTERM;
    nanoseconds stop_timeout = std::chrono::seconds(5);  ///< then SIGKILL to the whole tree
    readiness ready = readiness::on_start;
    /// notify: accept messages from any process of the service's tree (NotifyAccess=all),
    /// not only from its main process.
    bool notify_access_all = false;
    /// notify: WATCHDOG=1 must come at least this often, or the service is killed (SIGABRT,
    /// then SIGKILL after stop_timeout) and restarted by its policy; $WATCHDOG_USEC says so.
    nanoseconds watchdog{0};
    /// notify: a service not ready this long after its start is killed as failed (0: no limit).
    nanoseconds start_timeout{0};
    std::vector<std::string> after;  ///< start once these are ready; stop before them
    resource_limits limits;
    /// Namespace sets kept ready for the next start (warm.hpp): a restart then joins a set
    /// made while the service ran instead of making its namespaces on the restart's path.
    /// 0: cold starts. At most 64. A service whose spec cannot be warm (warm_unsupported: a
    /// time namespace, v1 cgroup joins by path, ...) starts cold and says why once.
    unsigned warm = 0;
    /// For reload: two specs with the same non-empty fingerprint are the same service
    /// (the config loader fills it with the service's normalized table). Empty: always changed.
    std::string fingerprint;
};

/// Validator (docs/errors.md): why `s` cannot be supervised, as one line that starts with the
/// field where there is one ("name: empty", "stop_timeout: negative"; service fields by their
/// config key, problems of `s.spawn` as validate(spawn_spec) words them), or an empty string
/// if it can.
/// Checks only what can be known without starting anything. The throwing form is
/// supervisor::add(), which refuses such a spec with this text.
[[nodiscard]] std::string validate(const service_spec& s);

/// The order services start in: each after every service its `after` names. The one check
/// of `after` that the config loader (which locates errors in the file) and the supervisor
/// (which refuses a set) share.
struct start_plan {
    std::vector<std::size_t> order;  ///< indices into the list; all of them when ok()
    std::size_t unknown_in = 0;      ///< with `unknown`: the service naming it
    std::string unknown;             ///< a name in `after` that no service has
    std::vector<std::size_t> cycle;  ///< services that can never start: they wait on each other
    [[nodiscard]] bool ok() const noexcept { return unknown.empty() && cycle.empty(); }
    /// "web: after: unknown service 'db'", "after: dependency cycle among a, b", or "".
    [[nodiscard]] std::string problem(const std::vector<const service_spec*>& services) const;
};
start_plan plan_start(const std::vector<const service_spec*>& services);

/// Where a service is in its life.
enum class service_state : std::uint8_t {
    stopped,   ///< not running and not meant to run
    waiting,   ///< meant to run; waiting for the services it starts after
    starting,  ///< started, not ready yet (notify)
    running,   ///< started and ready
    backoff,   ///< ended; waiting for the restart delay
    stopping,  ///< stop signal sent, waiting for the tree to end
    exited,    ///< ended and not restarted by policy (e.g. success with on-failure)
    failed,    ///< gave up: restart intensity exceeded, or ended with never/on-failure
};
std::string_view state_name(service_state s) noexcept;

/// One service's state as a value.
struct service_status {
    std::string name;
    service_state state = service_state::stopped;
    pid_t pid = 0;                           ///< main pid while it runs, else 0
    unsigned restarts = 0;                   ///< automatic restarts since the last manual start
    std::optional<exit_status> last_exit;
    bool last_oom_killed = false;            ///< the cgroup's OOM killer ended the last run
    std::string last_error;                  ///< why the last start failed, if it did
    std::string notify_status;               ///< the last STATUS= it sent (notify), if any
    std::optional<nanoseconds> uptime;       ///< while running
    std::string cgroup;                      ///< the service's cgroup (v2 path), if any
    /// With warm sets (service_spec::warm): sets ready now, starts that joined one, starts
    /// that found none ready; all 0 without.
    unsigned warm_ready = 0;
    std::uint64_t warm_hits = 0;
    std::uint64_t warm_misses = 0;
};

/// All services, in start order.
struct supervisor_status {
    std::vector<service_status> services;
    std::string cgroup_mode;                 ///< "v2", "hybrid", "none"
    [[nodiscard]] const service_status* find(std::string_view name) const;
};

}  // namespace drover::supervise
