// supervisor_event: what a supervisor reports to the program that embeds it — each line a
// service writes, each start, exit, restart and failure — as values, not log lines.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string_view>

#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/stages.hpp"

namespace spdlog {
class logger;
}

namespace drover::supervise {

enum class event_kind {
    output,        ///< a line the service wrote (`from_stderr` says which stream)
    started,       ///< a run began (`pid`)
    ready,         ///< the run said READY=1 (readiness = notify)
    notice,        ///< the run said STOPPING=1, RELOADING=1 or MAINPID=
    exited,        ///< a run ended (`exit`; severity warning unless it ended by plan)
    restarting,    ///< the next run starts after `delay`
    start_failed,  ///< a run could not start (`stage` when the spawn failed; status().last_error)
    killed,        ///< drover kills the run: watchdog, start timeout or stop timeout
    failed,        ///< drover gave up on the service: restart limit reached
    refused,       ///< a notify message was dropped (another process, too long)
    warning,       ///< something drover could not do and went on without (a cgroup not removed)
    error,         ///< drover's own handling of the service failed; the service is failed now
    added,         ///< a reload added the service
    changed,       ///< a reload changed the service: it restarts with the new spec
    removed,       ///< a reload removed the service
};

/// The name used in messages and JSON ("start_failed").
[[nodiscard]] std::string_view to_string(event_kind k) noexcept;

enum class event_severity { info, warning, error };

/// One event. The views point into the supervisor's state and live for the call only: copy
/// what is kept. Handlers run on the supervisor's executor and must not block.
struct supervisor_event {
    /// Empty for what concerns drover itself (a control or metrics socket that failed).
    std::string_view service;
    event_kind kind = event_kind::output;
    event_severity severity = event_severity::info;
    /// One line in words, without the service name: the output line itself, "started, pid
    /// 42", "cannot start: execve /no/such: No such file or directory", "exit 1".
    std::string_view message;
    pid_t pid = 0;                          ///< started, exited, killed: the run's main pid
    bool from_stderr = false;               ///< output: the line came from stderr
    std::optional<exit_status> exit;        ///< exited
    bool oom_killed = false;                ///< exited: the cgroup's OOM killer ended it
    std::chrono::nanoseconds delay{};       ///< restarting
    child_stage stage = child_stage::none;  ///< start_failed: the spawn stage that failed, if any
};

/// The default handler's formatting: "[service] message" (or the message alone when no
/// service) at the event's severity: output lines from stderr at warning. A handler that also wants the log calls this.
void log_event(spdlog::logger& log, const supervisor_event& e);

}  // namespace drover::supervise
