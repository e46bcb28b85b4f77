// The names of supervisor events and their default handler, which logs them.
#include "drover/supervise/events.hpp"

#include <spdlog/logger.h>

namespace drover::supervise {

std::string_view to_string(event_kind k) noexcept {
    switch (k) {
        case event_kind::output: return "output";
        case event_kind::started: return "started";
        case event_kind::ready: return "ready";
        case event_kind::notice: return "notice";
        case event_kind::exited: return "exited";
        case event_kind::restarting: return "restarting";
        case event_kind::start_failed: return "start_failed";
        case event_kind::killed: return "killed";
        case event_kind::failed: return "failed";
        case event_kind::refused: return "refused";
        case event_kind::warning: return "warning";
        case event_kind::error: return "error";
        case event_kind::added: return "added";
        case event_kind::changed: return "changed";
        case event_kind::removed: return "removed";
    }
    return "unknown";
}

void log_event(spdlog::logger& log, const supervisor_event& e) {
    const auto level = e.severity == event_severity::error     ? spdlog::level::err
                       : e.severity == event_severity::warning ? spdlog::level::warn
                                                               : spdlog::level::info;
    if (e.service.empty()) log.log(level, "{}", e.message);  // about drover itself, not a service
    else log.log(level, "[{}] {}", e.service, e.message);
}

}  // namespace drover::supervise
