// service: names of policies and states, the restart arithmetic, validation, JSON.
#include "drover/supervise/service.hpp"

#include <map>

#include <algorithm>
#include <cmath>

#include "drover/supervise/json.hpp"

namespace drover::supervise {

std::string_view restart_policy_name(restart_policy p) noexcept {
    switch (p) {
        case restart_policy::never: return "no";
        case restart_policy::on_failure: return "on-failure";
        case restart_policy::always: return "always";
    }
    return "?";
}

std::optional<restart_policy> parse_restart_policy(std::string_view t) noexcept {
    if (t == "no" || t == "never") return restart_policy::never;
    if (t == "on-failure") return restart_policy::on_failure;
    if (t == "always") return restart_policy::always;
    return std::nullopt;
}

std::string_view state_name(service_state s) noexcept {
    switch (s) {
        case service_state::stopped: return "stopped";
        case service_state::waiting: return "waiting";
        case service_state::starting: return "starting";
        case service_state::running: return "running";
        case service_state::backoff: return "backoff";
        case service_state::stopping: return "stopping";
        case service_state::exited: return "exited";
        case service_state::failed: return "failed";
    }
    return "?";
}

nanoseconds backoff_policy::delay(unsigned attempt, double unit_random) const noexcept {
    double base = static_cast<double>(initial.count());
    double cap = static_cast<double>(std::max(max, initial).count());
    // Cap the exponent too: multiplier^attempt overflows long before the cap matters.
    double d = base * std::pow(std::max(multiplier, 1.0), std::min(attempt, 64U));
    d = std::min(d, cap);
    double j = std::clamp(jitter, 0.0, 1.0);
    d *= 1.0 + j * (2.0 * std::clamp(unit_random, 0.0, 1.0) - 1.0);
    return nanoseconds(static_cast<std::int64_t>(std::max(d, 0.0)));
}

std::optional<nanoseconds> restart_tracker::next(clock::time_point started, clock::time_point now,
                                                 double unit_random) {
    // A run that stayed up for a whole intensity window was healthy: start backoff afresh.
    if (now - started >= intensity_.interval) attempt_ = 0;
    while (!recent_.empty() && now - recent_.front() >= intensity_.interval) recent_.pop_front();
    if (recent_.size() >= intensity_.burst) return std::nullopt;
    recent_.push_back(now);
    return backoff_.delay(attempt_++, unit_random);
}

std::string validate(const service_spec& s) {
    if (s.name.empty()) return "name: empty";
    if (s.name.size() > 64) return "name: longer than 64 characters";
    for (char c : s.name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
            return "name: '" + s.name + "' may contain only letters, digits, '_', '-' and '.'";
    if (s.name == "." || s.name == "..") return "name: '" + s.name + "' is reserved";
    if (s.spawn.argv.empty()) return "exec: empty command";
    if (s.stop_timeout.count() < 0) return "stop_timeout: negative";
    if (s.backoff.initial.count() < 0 || s.backoff.max.count() < 0) return "restart_sec: negative";
    if (s.backoff.multiplier < 1.0) return "backoff multiplier: below 1";
    if (s.backoff.jitter < 0 || s.backoff.jitter > 1) return "restart jitter: not within 0..1";
    if (s.intensity.interval.count() <= 0) return "start_limit_interval_sec: not positive";
    if (s.stop_signal <= 0 || s.stop_signal >= NSIG) return "kill_signal: not a signal";
    for (const auto& a : s.after)
        if (a == s.name) return "after: '" + a + "' is the service itself";
    if (s.limits.cpu_quota && *s.limits.cpu_quota <= 0) return "cpu_quota: not positive";
    if (s.watchdog.count() < 0) return "watchdog_sec: negative";
    if (s.start_timeout.count() < 0) return "timeout_start_sec: negative";
    if (s.ready != readiness::notify && (s.watchdog.count() > 0 || s.start_timeout.count() > 0 || s.notify_access_all))
        return "watchdog_sec, timeout_start_sec and notify_access need type = \"notify\"";
    if (s.limits.tasks_max && *s.limits.tasks_max == 0) return "tasks_max: zero";
    if (s.warm > 64) return "warm: more than 64 sets";
    if (s.limits.memory_max && *s.limits.memory_max < 4096) return "memory_max: below one page";
    for (const auto& p : s.spawn.pass_fds)
        if (s.ready == readiness::notify && p.child_fd == notify_fd)
            return "pass_fds: descriptor 3 is the notify descriptor";
    if (std::string e = drover::validate(s.spawn); !e.empty()) return e;
    return {};
}

start_plan plan_start(const std::vector<const service_spec*>& specs) {
    start_plan plan;
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < specs.size(); ++i) index[specs[i]->name] = i;
    for (std::size_t i = 0; i < specs.size(); ++i)
        for (const auto& a : specs[i]->after)
            if (!index.count(a)) {
                plan.unknown_in = i;
                plan.unknown = a;
                return plan;
            }
    // Repeatedly take the services whose dependencies have all been taken; what is never
    // taken waits on a cycle.
    std::vector<bool> done(specs.size());
    for (bool progress = true; progress;) {
        progress = false;
        for (std::size_t i = 0; i < specs.size(); ++i) {
            if (done[i]) continue;
            bool ready = true;
            for (const auto& a : specs[i]->after) ready = ready && done[index[a]];
            if (!ready) continue;
            done[i] = true;
            plan.order.push_back(i);
            progress = true;
        }
    }
    for (std::size_t i = 0; i < specs.size(); ++i)
        if (!done[i]) plan.cycle.push_back(i);
    if (!plan.cycle.empty()) plan.order.clear();
    return plan;
}

std::string start_plan::problem(const std::vector<const service_spec*>& specs) const {
    if (!unknown.empty()) return specs[unknown_in]->name + ": after: unknown service '" + unknown + "'";
    if (cycle.empty()) return {};
    std::string names;
    for (std::size_t i : cycle) names += (names.empty() ? "" : ", ") + specs[i]->name;
    return "after: dependency cycle among " + names;
}

const service_status* supervisor_status::find(std::string_view name) const {
    for (const auto& s : services)
        if (s.name == name) return &s;
    return nullptr;
}

nlohmann::json to_json(const service_status& s) {
    nlohmann::json j;
    j["name"] = s.name;
    j["state"] = std::string(state_name(s.state));
    j["pid"] = s.pid;
    j["restarts"] = s.restarts;
    if (s.last_exit) {
        nlohmann::json e;
        if (s.last_exit->exited()) e["code"] = s.last_exit->code();
        else e["signal"] = signal_name(s.last_exit->signal());
        e["text"] = s.last_oom_killed ? s.last_exit->str() + " (out of memory)" : s.last_exit->str();
        e["oom_killed"] = s.last_oom_killed;
        j["last_exit"] = e;
    } else {
        j["last_exit"] = nullptr;
    }
    if (s.uptime)
        j["uptime_sec"] = std::chrono::duration<double>(*s.uptime).count();
    else
        j["uptime_sec"] = nullptr;
    j["cgroup"] = s.cgroup;
    j["error"] = s.last_error;
    j["status_text"] = s.notify_status;
    if (s.warm_ready + s.warm_hits + s.warm_misses > 0)
        j["warm"] = {{"ready", s.warm_ready}, {"hits", s.warm_hits}, {"misses", s.warm_misses}};
    return j;
}

nlohmann::json to_json(const supervisor_status& s) {
    nlohmann::json j;
    j["cgroup_mode"] = s.cgroup_mode;
    j["services"] = nlohmann::json::array();
    for (const auto& svc : s.services) j["services"].push_back(to_json(svc));
    return j;
}

}  // namespace drover::supervise
