// `drover run`: one command in any namespace combination, stdio on the terminal.
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

#include "command.hpp"
#include "drover/process/process.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "ns_options.hpp"

namespace drover::cli {

namespace {

struct run_options {
    ns_options ns;
    bool timing = false;
    std::vector<std::string> argv;
};

void print_timings(const spawn_timings& t) {
    stage_durations d = t.durations();
    auto ms = [](std::int64_t ns) { return static_cast<double>(ns) / 1e6; };
    auto a = d.as_array();
    std::fprintf(stderr, "drover: timing (ms):");
    for (std::size_t i = 0; i < a.size(); ++i)
        std::fprintf(stderr, " %s=%.3f", std::string(stage_durations::names[i]).c_str(), ms(a[i]));
    std::fprintf(stderr, " total=%.3f\n", ms(d.total));
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

asio::awaitable<int> run_child(spawn_spec spec, bool timing) {
    auto ex = co_await asio::this_coro::executor;
    bool foreground = spec.foreground;
    // Signals sent to drover go to the child through its pidfd. The set is installed before
    // the spawn so that none is lost (or kills drover) while the child starts. On a terminal
    // the child has the foreground, so ^C reaches it alone and is not sent twice.
    auto signals = std::make_shared<asio::signal_set>(ex, SIGTERM, SIGHUP, SIGUSR1);
    signals->add(SIGUSR2);
    signals->add(SIGINT);
    signals->add(SIGQUIT);
    std::optional<process> child;
    auto forward = [signals, &child](auto&& self, std::error_code ec, int sig) -> void {
        if (ec) return;
        if (child) child->signal(sig);
        signals->async_wait([self](std::error_code e, int s) { self(self, e, s); });
    };
    signals->async_wait([forward](std::error_code e, int s) { forward(forward, e, s); });
    try {
        child.emplace(co_await spawn(ex, std::move(spec)));
    } catch (...) {
        signals->cancel();
        throw;
    }
    exit_status status = co_await child->wait();
    signals->cancel();
    if (foreground) {
        // Take the terminal back; as a background group that needs SIGTTOU ignored.
        std::signal(SIGTTOU, SIG_IGN);
        ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    }
    if (timing) print_timings(child->timings());
    co_return status.shell_code();
}

int run_main(const run_options& o) {
    spawn_spec spec;
    try {
        spec.argv = o.argv;
        o.ns.apply(spec);
        // An interactive program gets the terminal (job control, ^C to it alone), as in a shell.
        spec.foreground = !spec.new_session && ::isatty(STDIN_FILENO) &&
                          ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
        if (std::string problem = validate(spec); !problem.empty()) throw spec_error(problem);
    } catch (const spec_error& e) {
        print_error(std::string("run: ") + e.what());
        return usage_exit;
    }
    asio::io_context io;
    int code = 125;
    asio::co_spawn(io, run_child(std::move(spec), o.timing), [&](std::exception_ptr ep, int c) {
        if (!ep) {
            code = c;
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

command_main add_run_command(CLI::App& app) {
    auto o = std::make_shared<run_options>();
    CLI::App* run = app.add_subcommand("run", "Run a command in new namespaces");
    o->ns.add_to(*run);
    run->add_flag("--timing", o->timing, "print the duration of each spawn stage to stderr");
    run->add_option("command", o->argv, "the command and its arguments")->required();
    run->positionals_at_end();
    return [o] { return run_main(*o); };
}

}  // namespace drover::cli
