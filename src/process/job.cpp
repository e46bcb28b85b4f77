// job: deadlines and cgroup limits around one child, and the verdict when it ends.
#include "drover/process/job.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <thread>

#include "drover/process/process.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/sys/result.hpp"

namespace drover {

namespace {

std::int64_t timeval_ns(const timeval& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + static_cast<std::int64_t>(t.tv_usec) * 1000;
}

}  // namespace

std::string_view verdict_name(verdict v) noexcept {
    switch (v) {
        case verdict::ok: return "ok";
        case verdict::exit_code: return "exit";
        case verdict::signal: return "signal";
        case verdict::wall_time: return "timeout";
        case verdict::cpu_time: return "cpu-time";
        case verdict::memory: return "memory";
        case verdict::pids: return "pids";
        case verdict::output: return "output";
        case verdict::failed_to_start: return "start-failed";
        case verdict::cancelled: return "cancelled";
    }
    return "?";
}

std::string human_seconds(std::int64_t ns) {
    double s = static_cast<double>(ns) / 1e9;
    if (s >= 10) return fmt::format("{:.1f} s", s);
    if (s >= 0.001 || s == 0) return fmt::format("{:.3f} s", s);
    return fmt::format("{:.0f} us", s * 1e6);
}

std::string human_bytes(std::uint64_t b) {
    if (b >= (1ULL << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(b) / (1ULL << 30));
    if (b >= (1ULL << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1ULL << 20));
    if (b >= (1ULL << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(b) / (1ULL << 10));
    return fmt::format("{} B", b);
}

limit_watch::limit_watch(asio::any_io_executor ex, job_limits limits, cgroup_tree* tree)
    : ex_(std::move(ex)), limits_(std::move(limits)), wall_(ex_), grace_(ex_), cpu_(ex_) {
    bool have_tree = tree && tree->mode() != cgroup_mode::none;
    if (!limits_.cgroup.empty() && !have_tree)
        // Never a silent "unlimited": the caller may put rlimits in the spec instead.
        throw spawn_error({child_stage::job_cgroup, sys::errno_code(ENOTSUP), "memory, pids and CPU share limits",
                           std::string("they need a cgroup (root, or a delegated one)") +
                               (tree ? ": " + tree->warning() : std::string()) +
                               "; apply_rlimit_fallbacks() puts rlimits in the spec instead"});
    if (limits_.wants_cgroup() && have_tree) {
        try {
            cg_ = std::make_unique<service_cgroup>(tree->create("job", limits_.cgroup, true));
        } catch (const std::system_error& e) {
            // what() is "writing 'X' to FILE: <errno text>": the errno goes in the code.
            std::string what = e.what();
            std::string suffix = ": " + e.code().message();
            if (what.size() > suffix.size() && what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0)
                what.resize(what.size() - suffix.size());
            throw spawn_error({child_stage::job_cgroup, e.code(), what, {}});
        }
    }
}

limit_watch::~limit_watch() {
    if (cg_ && cg_->populated()) (void)cg_->kill_all();
}

launch_extras limit_watch::extras() const noexcept { return cg_ ? cg_->extras() : launch_extras{}; }

void limit_watch::arm(process& p, std::function<void(verdict)> on_kill) {
    proc_ = &p;
    on_kill_ = std::move(on_kill);
    if (limits_.wall_time) {
        wall_.expires_after(*limits_.wall_time);
        wall_.async_wait([this](std::error_code ec) {
            if (!ec) stop(verdict::wall_time);
        });
    }
    if (limits_.cpu_time && cg_) {
        // The earliest the job can have used it all is with every CPU busy.
        unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
        cpu_.expires_after(std::max<std::chrono::nanoseconds>(*limits_.cpu_time / cpus, std::chrono::milliseconds(5)));
        cpu_.async_wait([this](std::error_code ec) {
            if (!ec) check_cpu();
        });
    }
}

void limit_watch::check_cpu() {
    if (stopped_ || !cg_) return;
    cgroup_stats s = cg_->stats();
    std::int64_t used = s.user_ns.value_or(0) + s.system_ns.value_or(0);
    std::int64_t limit = limits_.cpu_time->count();
    if (used >= limit) return stop(verdict::cpu_time);
    unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    auto next = std::chrono::nanoseconds((limit - used) / cpus);
    cpu_.expires_after(std::clamp<std::chrono::nanoseconds>(next, std::chrono::milliseconds(2), std::chrono::seconds(1)));
    cpu_.async_wait([this](std::error_code ec) {
        if (!ec) check_cpu();
    });
}

void limit_watch::stop(verdict why) {
    if (stopped_) return;
    stopped_ = why;
    wall_.cancel();
    cpu_.cancel();
    int sig = why == verdict::wall_time ? limits_.timeout_signal : SIGKILL;
    if (sig == SIGKILL) {
        hard_kill();
    } else {
        if (proc_) (void)proc_->signal(sig);
        grace_.expires_after(limits_.kill_grace);
        grace_.async_wait([this](std::error_code ec) {
            if (!ec) hard_kill();
        });
    }
    if (on_kill_) on_kill_(why);
}

void limit_watch::hard_kill() {
    // The cgroup holds the whole tree; without one, the main process (PID 1 of its own pid
    // namespace takes every other process in it along).
    if (cg_) (void)cg_->kill_all();
    if (proc_) (void)proc_->signal(SIGKILL);
}

job_outcome limit_watch::finish(const process& p, bool output_exceeded) {
    wall_.cancel();
    grace_.cancel();
    cpu_.cancel();
    std::optional<cgroup_stats> cs;
    if (cg_) {
        // Whatever the main process left behind in its cgroup goes with it.
        if (cg_->populated()) (void)cg_->kill_all();
        cs = cg_->stats();
    }
    return job_outcome_of(p, limits_, stopped_, cs ? &*cs : nullptr, output_exceeded);
}

job_outcome job_outcome_of(const process& p, const job_limits& limits_, std::optional<verdict> stopped_,
                           const cgroup_stats* cs, bool output_exceeded) {
    job_outcome o;
    const spawn_timings& t = p.timings();
    if (t.exit_observed > t.exec_done && t.exec_done > 0) o.usage.wall_ns = t.exit_observed - t.exec_done;
    if (auto ru = p.usage()) {
        // Not ru_maxrss: execve records the memory the child left behind (a copy of the
        // spawner's, or the spawner's own on the posix_spawn path) as the child's high-water
        // mark, so it tells the spawner's size, not the job's. Peak memory needs a cgroup.
        o.usage.user_ns = timeval_ns(ru->ru_utime);
        o.usage.system_ns = timeval_ns(ru->ru_stime);
    }
    if (cs && cs->user_ns && cs->system_ns) {
        o.usage.user_ns = *cs->user_ns;
        o.usage.system_ns = *cs->system_ns;
        o.usage.source = "cgroup";
    }
    if (cs && cs->memory_peak) o.usage.peak_memory = cs->memory_peak;

    exit_status st = p.status().value_or(exit_status::killed_by(SIGKILL));
    std::int64_t cpu = o.usage.user_ns + o.usage.system_ns;
    if (stopped_) {
        o.why = *stopped_;
    } else if (output_exceeded) {
        o.why = verdict::output;
    } else if (cs && cs->oom_kills > 0) {
        o.why = verdict::memory;
    } else if (limits_.cpu_time && st.signaled() && (st.signal() == SIGXCPU || st.signal() == SIGKILL) &&
               cpu >= limits_.cpu_time->count() - 10'000'000) {
        o.why = verdict::cpu_time;  // RLIMIT_CPU (soft: SIGXCPU, hard: SIGKILL)
    } else if (cs && cs->pids_limit_hits > 0 && !st.success()) {
        o.why = verdict::pids;
    } else if (st.success()) {
        o.why = verdict::ok;
    } else {
        o.why = st.exited() ? verdict::exit_code : verdict::signal;
    }
    switch (o.why) {
        case verdict::wall_time:
            o.detail = "time limit " + human_seconds(limits_.wall_time->count()) + " exceeded";
            break;
        case verdict::cpu_time:
            o.detail = "CPU time limit " + human_seconds(limits_.cpu_time->count()) + " exceeded";
            break;
        case verdict::memory:
            o.detail = "out of memory" + (limits_.cgroup.memory_max
                                              ? " (limit " + human_bytes(*limits_.cgroup.memory_max) + ")"
                                              : std::string());
            break;
        case verdict::pids:
            o.detail = "process limit" + (limits_.cgroup.tasks_max
                                              ? " " + std::to_string(*limits_.cgroup.tasks_max)
                                              : std::string()) + " reached, then " + st.str();
            break;
        case verdict::output:
            o.detail = "output limit exceeded";
            break;
        default:
            o.detail = st.str();
    }
    return o;
}

std::string apply_rlimit_fallbacks(spawn_spec& spec, const job_limits& limits, bool cgroup_available) {
    std::string missing;
    if (cgroup_available) return missing;
    if (limits.cpu_time) {
        // RLIMIT_CPU counts whole seconds: SIGXCPU at the soft limit, SIGKILL a second later.
        auto secs = static_cast<rlim_t>(std::ceil(static_cast<double>(limits.cpu_time->count()) / 1e9));
        spec.rlimits.push_back({RLIMIT_CPU, std::max<rlim_t>(secs, 1), std::max<rlim_t>(secs, 1) + 1});
    }
    if (limits.cgroup.tasks_max)
        spec.rlimits.push_back({RLIMIT_NPROC, *limits.cgroup.tasks_max, *limits.cgroup.tasks_max});
    if (limits.cgroup.memory_max)
        spec.rlimits.push_back({RLIMIT_AS, *limits.cgroup.memory_max, *limits.cgroup.memory_max});
    if (limits.cgroup.cpu_quota) missing = "cpu quota (needs a cgroup: run as root or under a delegated cgroup)";
    return missing;
}

}  // namespace drover
