// `drover run`: one command in any namespace combination, stdio on the terminal.
#include <fcntl.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_awaitable.hpp>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "drover/process/cgroup.hpp"
#include "drover/process/job.hpp"
#include "drover/process/process.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/units.hpp"
#include "ns_options.hpp"

namespace drover::cli {

namespace {

struct run_options {
    ns_options ns;
    bool timing = false;
    bool init = false;
    std::string json_status_fd;
    std::vector<std::string> argv;
};

// What run_child hands back: the status and, with limits, the verdict and usage.
struct run_outcome {
    int code = 0;
    exit_status status;
    job_outcome outcome;
    spawn_timings timings;
};

void print_timings(const spawn_timings& t, const job_outcome& o) {
    stage_durations d = t.durations();
    auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
    auto a = d.as_array();
    std::fprintf(stderr, "drover: timing (ms):");
    for (std::size_t i = 0; i < a.size(); ++i)
        std::fprintf(stderr, " %s=%.3f", std::string(stage_durations::names[i]).c_str(), ms(a[i]));
    std::fprintf(stderr, " total=%.3f\n", ms(d.total));
    std::fprintf(stderr, "drover: usage: verdict=%s wall=%.3f ms user=%.3f ms system=%.3f ms peak_memory=%s (%s)\n",
                 std::string(verdict_name(o.why)).c_str(), ms(o.usage.wall_ns), ms(o.usage.user_ns),
                 ms(o.usage.system_ns), o.usage.peak_memory ? human_bytes(*o.usage.peak_memory).c_str() : "unknown",
                 std::string(o.usage.source).c_str());
}

nlohmann::json status_json(const run_outcome& r) {
    nlohmann::json j;
    auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
    j["verdict"] = std::string(verdict_name(r.outcome.why));
    j["detail"] = r.outcome.detail;
    j["exit_code"] = r.status.exited() ? nlohmann::json(r.status.code()) : nlohmann::json();
    j["signal"] = r.status.signaled() ? nlohmann::json(signal_name(r.status.signal())) : nlohmann::json();
    j["wall_ms"] = ms(r.outcome.usage.wall_ns);
    j["user_ms"] = ms(r.outcome.usage.user_ns);
    j["system_ms"] = ms(r.outcome.usage.system_ns);
    j["peak_memory_bytes"] = r.outcome.usage.peak_memory ? nlohmann::json(*r.outcome.usage.peak_memory) : nlohmann::json();
    j["usage_source"] = std::string(r.outcome.usage.source);
    nlohmann::json stages;
    auto d = r.timings.durations();
    auto a = d.as_array();
    for (std::size_t i = 0; i < a.size(); ++i) stages[std::string(stage_durations::names[i])] = ms(a[i]);
    j["spawn_ms"] = stages;
    return j;
}

// The exit code for a job a limit ended: timeout(1)'s 124 for time limits, otherwise the
// shell's code of the status (137 for a SIGKILL).
int limit_exit_code(const run_outcome& r) {
    if (r.outcome.why == verdict::wall_time || r.outcome.why == verdict::cpu_time) return 124;
    return r.status.shell_code();
}

// Exit codes when the command never ran, after env(1): 127 not found, 126 not executable,
// 125 anything else that went wrong in drover's own setup.
int start_failure_code(const spawn_error& e) {
    if (e.stage() == child_stage::exec) {
        if (e.code().value() == ENOENT || e.code().value() == ENOTDIR) return 127;
        return 126;
    }
    return 125;
}

// Whether a signal's default action ends a process (term or core, see signal(7)).
bool ends_by_default(int sig) {
    switch (sig) {
        case SIGHUP: case SIGINT: case SIGQUIT: case SIGTERM: case SIGUSR1: case SIGUSR2:
            return true;
        default:
            return false;
    }
}

// Whether `pid` neither catches nor ignores `sig`, from /proc/PID/status (SigCgt, SigIgn).
bool takes_default_action(pid_t pid, int sig) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
    FILE* f = std::fopen(path, "re");
    if (!f) return false;
    char line[256];
    unsigned long long caught = 0, ignored = 0;
    bool seen_caught = false, seen_ignored = false;
    while (std::fgets(line, sizeof line, f)) {
        if (std::sscanf(line, "SigCgt: %llx", &caught) == 1) seen_caught = true;
        if (std::sscanf(line, "SigIgn: %llx", &ignored) == 1) seen_ignored = true;
    }
    std::fclose(f);
    const unsigned long long bit = 1ULL << (sig - 1);
    return seen_caught && seen_ignored && !(caught & bit) && !(ignored & bit);
}

// Passes `sig` on. The job as PID 1 of its own PID namespace is spared by the kernel every
// signal it has no handler for, so a SIGTERM from `timeout` or ^C would be lost and drover
// would wait for ever; when the signal would have ended an ordinary process (its default
// action, neither caught nor ignored), the job is killed instead, as it would have died.
void pass_on(process& child, bool pid_one, int sig) {
    child.signal(sig);
    if (pid_one && ends_by_default(sig) && takes_default_action(child.pid(), sig)) child.signal(SIGKILL);
}

asio::awaitable<run_outcome> run_child(prepared_spawn prepared, job_limits limits, cgroup_tree* tree) {
    auto ex = co_await asio::this_coro::executor;
    bool foreground = prepared.spec().foreground;
    // With --init, drover init is PID 1 and passes signals on itself.
    const bool pid_one = prepared.spec().namespaces.has(ns::pid) && prepared.spec().init_program.empty();
    // Signals sent to drover go to the child through its pidfd. The set is installed before
    // the spawn so that none is lost (or kills drover) while the child starts. On a terminal
    // the child has the foreground, so ^C reaches it alone and is not sent twice.
    auto signals = std::make_shared<asio::signal_set>(ex, SIGTERM, SIGHUP, SIGUSR1);
    signals->add(SIGUSR2);
    signals->add(SIGINT);
    signals->add(SIGQUIT);
    std::optional<process> child;
    // A signal that arrives while the spawn is still completing waits here for the child.
    auto early = std::make_shared<std::vector<int>>();
    auto forward = [signals, &child, early, pid_one](auto&& self, std::error_code ec, int sig) -> void {
        if (ec) return;
        if (child) pass_on(*child, pid_one, sig);
        else early->push_back(sig);
        signals->async_wait([self](std::error_code e, int s) { self(self, e, s); });
    };
    signals->async_wait([forward](std::error_code e, int s) { forward(forward, e, s); });
    std::unique_ptr<limit_watch> watch;
    try {
        if (!limits.empty()) watch = std::make_unique<limit_watch>(ex, limits, tree);
        // (GCC 12 miscompiles a conditional expression inside a co_await's arguments.)
        launch_extras extras;
        if (watch) extras = watch->extras();
        child.emplace(co_await spawn(ex, std::move(prepared), extras));
    } catch (...) {
        signals->cancel();
        throw;
    }
    for (int sig : *early) pass_on(*child, pid_one, sig);
    if (watch) watch->arm(*child);
    run_outcome r;
    r.status = co_await child->wait();
    signals->cancel();
    if (foreground) {
        // Take the terminal back; as a background group that needs SIGTTOU ignored.
        std::signal(SIGTTOU, SIG_IGN);
        ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    }
    r.outcome = watch ? watch->finish(*child, false) : job_outcome_of(*child, limits, std::nullopt, nullptr, false);
    r.timings = child->timings();
    r.code = limits.empty() ? r.status.shell_code() : limit_exit_code(r);
    co_return r;
}

// The options as a spec and limits (throws spec_error), and the --json-status-fd
// descriptor (-1 without). `open_files` as in ns_options::apply.
int translate(const run_options& o, bool open_files, spawn_spec& spec, job_limits& limits) {
    spec.argv = o.argv;
    if (o.init) spec.init_program = self_exe();
    o.ns.apply(spec, open_files);
    limits = o.ns.limits();
    if (o.json_status_fd.empty()) return -1;
    auto fd = parse_integer(o.json_status_fd, 0, 1 << 20);
    if (!fd || ::fcntl(static_cast<int>(*fd), F_GETFD) < 0)
        throw spec_error("--json-status-fd: '" + o.json_status_fd + "' is not an open descriptor");
    return static_cast<int>(*fd);
}

// run_main's usage checks without the cgroup, the terminal or the spawn.
std::string check_run(const run_options& o) {
    try {
        spawn_spec spec;
        job_limits limits;
        translate(o, false, spec, limits);
        return validate(spec);
    } catch (const spec_error& e) {
        return o.ns.in_flag_terms(e.what());
    }
}

int run_main(const run_options& o) {
    spawn_spec spec;
    std::optional<prepared_spawn> prepared;
    job_limits limits;
    int status_fd = -1;
    std::unique_ptr<cgroup_tree> tree;
    std::unique_ptr<cgroup_guardian> guardian;
    try {
        status_fd = translate(o, true, spec, limits);
        if (limits.wants_cgroup()) {
            tree = std::make_unique<cgroup_tree>("drover." + std::to_string(::getpid()));
            if (tree->mode() != cgroup_mode::none) {
                // Whatever is left in the job's cgroup dies if drover is killed.
                guardian = std::make_unique<cgroup_guardian>(tree->roots());
            } else {
                if (std::string missing = apply_rlimit_fallbacks(spec, limits, false); !missing.empty())
                    throw spec_error("limits: " + missing + ": " + tree->warning());
                limits.own_cgroup = false;
                limits.cgroup = {};
            }
        }
        // An interactive program gets the terminal (job control, ^C to it alone), as in a shell
        // (a sandbox too: its seccomp filter refuses TIOCSTI, so the terminal cannot be typed into).
        spec.foreground = !o.ns.new_session && ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
        if (spec.foreground) spec.new_session = false;
        if (std::string problem = validate(spec); !problem.empty()) throw spec_error(problem);
        // Everything about the spec that can be known without a process is checked here.
        prepared.emplace(std::move(spec));
    } catch (const spec_error& e) {
        print_error("run: " + o.ns.in_flag_terms(e.what()));
        return usage_exit;
    }
    asio::io_context io;
    int code = 125;
    asio::co_spawn(io, run_child(std::move(*prepared), limits, tree.get()), [&](std::exception_ptr ep, run_outcome r) {
        if (!ep) {
            code = r.code;
            switch (r.outcome.why) {
                case verdict::wall_time:
                case verdict::cpu_time:
                case verdict::memory:
                case verdict::pids:
                case verdict::output:
                    print_error(r.outcome.detail);
                    break;
                default:
                    break;
            }
            if (o.timing) print_timings(r.timings, r.outcome);
            if (status_fd >= 0) {
                std::string line = status_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
                (void)!::write(status_fd, line.data(), line.size());
            }
            return;
        }
        try {
            std::rethrow_exception(ep);
        } catch (const spawn_error& e) {
            print_error(e.what());
            code = start_failure_code(e);
        } catch (const std::exception& e) {
            print_error(e.what());
            code = 125;
        }
    });
    io.run();
    return code;
}

}  // namespace

command_main add_run_command(CLI::App& app, command_check* check) {
    auto o = std::make_shared<run_options>();
    CLI::App* run = app.add_subcommand("run", "run a command in new namespaces");
    o->ns.add_to(*run);
    run->add_flag("--timing", o->timing, "print the duration of each spawn stage, the verdict and the usage to stderr");
    run->add_flag("--init", o->init,
                  "run the command under drover's own init (drover init), as docker run --init: with -p the "
                  "command is not PID 1, so ^C and other signals end it as they would any process, and "
                  "orphans are reaped; drover's binary must be reachable at its path inside the sandbox");
    run->add_option("--json-status-fd", o->json_status_fd,
                    "write the verdict, exit status, usage and stage times as one JSON line to descriptor FD");
    run->add_option("command", o->argv, "the command and its arguments")->required();
    run->positionals_at_end();
    if (check) *check = [o] { return check_run(*o); };
    return [o] { return run_main(*o); };
}

}  // namespace drover::cli
