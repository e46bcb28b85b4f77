// json: the supervisor's state as JSON (for `drover ctl status --json` and library users).
#pragma once

#include <nlohmann/json.hpp>

#include "drover/supervise/service.hpp"

namespace drover::supervise {

/// {"name", "state", "pid", "restarts", "last_exit": {"code"|"signal", "text", "oom_killed"},
///  "uptime_sec", "cgroup", "error"}
nlohmann::json to_json(const service_status& s);
/// {"cgroup_mode", "services": [...]}
nlohmann::json to_json(const supervisor_status& s);

}  // namespace drover::supervise
