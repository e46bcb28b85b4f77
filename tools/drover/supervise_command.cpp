// `drover supervise FILE.toml`: run the services of a config file until SIGTERM/SIGINT;
// SIGHUP reloads the file; `drover ctl` talks to it over a unix socket.
#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "command.hpp"
#include "drover/process/asio.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/spawn_threads.hpp"
#include "drover/spawn/units.hpp"
#include "drover/sys/unique_fd.hpp"
#include "drover/supervise/config.hpp"
#include "drover/supervise/control.hpp"
#include "drover/supervise/metrics_http.hpp"
#include "drover/supervise/supervisor.hpp"

namespace drover::cli {

namespace {

namespace sv = drover::supervise;

struct supervise_options {
    std::string file;
    std::string socket;
    std::string metrics_listen;
    bool metrics_given = false;  // --metrics-listen '' is an error, not "not given"
    bool no_cgroups = false;
    bool no_control = false;
    bool check = false;
    unsigned spawn_threads = 0;  // 0: the process-wide setting (the CPUs, or DROVER_SPAWN_THREADS)
};

// drover under systemd (Type=notify): where to say READY=1, STOPPING=1 and WATCHDOG=1. Taken
// out of the environment at start, so that no service inherits it and speaks for drover.
struct systemd_link {
    std::string socket;                   // $NOTIFY_SOCKET: "@abstract" or a path
    std::chrono::microseconds watchdog{};  // $WATCHDOG_USEC, if meant for this process

    static systemd_link take_from_environment() {
        systemd_link l;
        if (const char* n = std::getenv("NOTIFY_SOCKET"); n && *n) l.socket = n;
        const char* usec = std::getenv("WATCHDOG_USEC");
        const char* pid = std::getenv("WATCHDOG_PID");
        if (usec && (!pid || parse_integer(pid, 1, INT32_MAX) == ::getpid()))
            if (auto v = parse_integer(usec, 1, std::int64_t{1} << 40)) l.watchdog = std::chrono::microseconds(*v);
        for (const char* v : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) ::unsetenv(v);
        return l;
    }

    // One datagram, as sd_notify(3) sends it; false if there is no socket or it failed.
    bool send(const std::string& msg) const {
        if (socket.empty() || socket.size() >= sizeof(sockaddr_un::sun_path)) return false;
        sys::unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd) return false;
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, socket.data(), socket.size());
        if (socket[0] == '@') a.sun_path[0] = '\0';
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size() + (socket[0] == '@' ? 0 : 1));
        return ::sendto(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&a), len) ==
               static_cast<ssize_t>(msg.size());
    }
};

// WATCHDOG=1 at half the interval systemd asked for, while the loop runs.
asio::awaitable<void> ping_systemd(const systemd_link& link, asio::steady_timer& t) {
    for (;;) {
        link.send("WATCHDOG=1");
        t.expires_after(link.watchdog / 2);
        auto [ec] = co_await t.async_wait(use_tuple);
        if (ec) co_return;
    }
}

// Whether no service runs or will restart (all exited, failed or stopped).
bool all_idle(const sv::supervisor_status& st) {
    for (const auto& s : st.services)
        if (s.state != sv::service_state::exited && s.state != sv::service_state::failed &&
            s.state != sv::service_state::stopped)
            return false;
    return !st.services.empty();
}

// Says once per idle spell that nothing runs; ends within a second of `done`.
asio::awaitable<void> say_when_idle(sv::supervisor& sup, std::shared_ptr<spdlog::logger> log,
                                    std::shared_ptr<const bool> done) {
    bool said = false;
    const std::function<bool(const sv::supervisor_status&)> idle_or_done = [&](const sv::supervisor_status& st) {
        return *done || all_idle(st) != said;
    };
    while (!*done) {
        if (!co_await sup.wait_until(idle_or_done, std::chrono::seconds(1)) || *done) continue;
        said = !said;
        if (said)
            log->warn("no service is running or will restart: drover waits (drover ctl start NAME, SIGHUP to "
                      "reload, SIGTERM to stop)");
    }
}

asio::awaitable<int> supervise(sv::supervisor& sup, const supervise_options& o, const sv::config_options& copts,
                               std::shared_ptr<spdlog::logger> log, bool& fatal, const systemd_link& systemd) {
    auto ex = co_await asio::this_coro::executor;
    asio::signal_set signals(ex, SIGTERM, SIGINT, SIGHUP);
    co_await sup.start();
    // Once nothing runs or will restart, say so: drover stays for `drover ctl start` and a
    // reload, which an idle, silent supervisor would hide.
    auto done = std::make_shared<bool>(false);  // outlives this frame: the watcher ends after it
    asio::co_spawn(ex, say_when_idle(sup, log, done), asio::detached);
    systemd.send("READY=1\nSTATUS=" + std::to_string(sup.status().services.size()) + " services started\nMAINPID=" +
                 std::to_string(::getpid()));
    for (;;) {
        auto [ec, sig] = co_await signals.async_wait(use_tuple);
        if (ec) break;
        if (sig == SIGHUP) {
            log->info("reloading {}", o.file);
            systemd.send("RELOADING=1");
            try {
                auto cfg = sv::load_config(o.file, copts);
                co_await sup.reload(std::move(cfg.services));
                log->info("reloaded {}", o.file);
                systemd.send("READY=1\nSTATUS=reloaded");
            } catch (const std::exception& e) {
                // A bad file changes nothing: everything keeps running as it was.
                log->error("reload refused, nothing changed: {}", e.what());
                systemd.send("READY=1\nSTATUS=reload refused");
            }
            continue;
        }
        // A failure_action = "exit" service raised our own SIGTERM: say that, not "SIGTERM".
        if (fatal) log->info("stopping: a service with failure_action = \"exit\" failed");
        else log->info("{}: stopping", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "shutdown");
        break;
    }
    *done = true;
    systemd.send("STOPPING=1");
    co_await sup.stop();
    co_return fatal ? 1 : 0;
}

// Reads and checks the file; nullopt (the error printed) if it cannot run as it is.
std::optional<sv::config> read_config(const supervise_options& o, const sv::config_options& copts) {
    sv::config cfg;
    try {
        cfg = sv::load_config(o.file, copts);
    } catch (const sv::config_error& e) {
        print_error(std::string("supervise: ") + e.what());
        return std::nullopt;
    }
    // The whole set as start would see it (unknown `after`, cycles, duplicates), starting nothing.
    if (std::string problem = sv::check_services(cfg.services); !problem.empty()) {
        print_error("supervise: " + o.file + ": " + problem);
        return std::nullopt;
    }
    return cfg;
}

// The --metrics-listen address (or, without the flag, [supervisor] metrics_listen, checked
// when the file was read); nullopt without either. Throws std::invalid_argument for the flag.
std::optional<sv::metrics_address> metrics_address_of(const supervise_options& o, const sv::config& cfg) {
    if (o.metrics_given) return sv::parse_metrics_address(o.metrics_listen);
    if (!cfg.metrics_listen.empty()) return sv::parse_metrics_address(cfg.metrics_listen);
    return std::nullopt;
}

int supervise_main(const supervise_options& o) {
    sv::config_options copts;
    copts.init_program = self_exe();
    // A bad flag is a usage error before anything starts (the file's key is checked as it is read).
    if (o.metrics_given) {
        try {
            (void)sv::parse_metrics_address(o.metrics_listen);
        } catch (const std::invalid_argument& e) {
            // The value echoed on one line: a control byte (a pasted newline) shows as '?'.
            std::string shown = o.metrics_listen;
            for (char& c : shown)
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
            print_error("supervise: --metrics-listen '" + shown + "': " + e.what());
            return usage_exit;
        }
    }
    if (o.check) {
        auto cfg = read_config(o, copts);
        if (!cfg) return usage_exit;
        std::printf("%s: ok, %zu service%s\n", o.file.c_str(), cfg->services.size(),
                    cfg->services.size() == 1 ? "" : "s");
        return 0;
    }
    std::signal(SIGPIPE, SIG_IGN);
    const systemd_link systemd = systemd_link::take_from_environment();
    // About four descriptors per service (pidfd, two log pipes, the cgroup): the usual soft
    // limit of 1024 would stop at a few hundred services.
    if (auto r = raise_nofile_limit(); r.error && r.soft < 4096)
        print_error("supervise: cannot raise RLIMIT_NOFILE above " + std::to_string(r.soft) + ": " + r.error.message());
    auto log = std::make_shared<spdlog::logger>("drover", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    log->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    log->flush_on(spdlog::level::trace);

    asio::io_context io;
    bool fatal = false;
    // A failed service with failure_action = "exit" stops everything: raise our own SIGTERM.
    sv::supervisor_options so;
    so.log = log;
    so.use_cgroups = !o.no_cgroups;
    so.spawn_threads = o.spawn_threads;
    so.on_fatal = [&](const std::string& name) {
        log->error("[{}] failed with failure_action = \"exit\": stopping the supervisor", name);
        fatal = true;
        ::raise(SIGTERM);
    };
    // The supervisor (and with it the guardian, a fork of this process) before the file: the
    // guardian's copy of our memory stays small whatever the config holds. A bad file then
    // removes the empty cgroup subtree again and ends the guardian.
    std::unique_ptr<sv::supervisor> sup;
    try {
        sup = std::make_unique<sv::supervisor>(io.get_executor(), so);
    } catch (const std::exception& e) {
        print_error(std::string("supervise: ") + e.what());
        return 1;
    }
    auto cfg_read = read_config(o, copts);
    if (!cfg_read) return usage_exit;
    sv::config& cfg = *cfg_read;
    try {
        for (auto& s : cfg.services) sup->add(std::move(s));
    } catch (const std::exception& e) {
        print_error(std::string("supervise: ") + e.what());
        return usage_exit;
    }
    if (std::string w = sup->cgroup_warning(); !w.empty()) log->warn("{}", w);
    std::unique_ptr<sv::control_server> control;
    if (!o.no_control) {
        std::string path = !o.socket.empty() ? o.socket : !cfg.control_socket.empty() ? cfg.control_socket
                                                                                        : sv::default_control_socket();
        try {
            control = std::make_unique<sv::control_server>(io.get_executor(), *sup, path);
        } catch (const std::system_error& e) {
            print_error(std::string("supervise: ") + e.what());
            return 1;
        }
        log->info("control socket {}", path);
    }
    std::unique_ptr<sv::metrics_server> metrics;
    if (auto where = metrics_address_of(o, cfg)) {
        try {
            metrics = std::make_unique<sv::metrics_server>(io.get_executor(), *sup, *where);
        } catch (const std::system_error& e) {
            print_error(std::string("supervise: ") + e.what());
            return 1;
        }
        // With port 0 this is how a user (or a test) learns the port.
        log->info("metrics on {}", where->type == sv::metrics_address::kind::unix_socket
                                       ? metrics->local_address()
                                       : "http://" + metrics->local_address() + "/metrics");
    }
    int code = 1;
    asio::steady_timer ping_timer(io);  // cancelled when the supervisor is done
    if (systemd.watchdog.count() > 0) asio::co_spawn(io, ping_systemd(systemd, ping_timer), asio::detached);
    asio::co_spawn(io, supervise(*sup, o, copts, log, fatal, systemd), [&](std::exception_ptr ep, int c) {
        code = c;
        if (ep) {
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                print_error(std::string("supervise: ") + e.what());
                code = 1;
            }
        }
        control.reset();  // stop accepting, so that the loop can end
        metrics.reset();
        ping_timer.cancel();
    });
    io.run();
    sup.reset();
    return code;
}

}  // namespace

command_main add_supervise_command(CLI::App& app) {
    auto o = std::make_shared<supervise_options>();
    CLI::App* sub = app.add_subcommand("supervise", "run the services of a TOML file (SIGHUP reloads it)");
    sub->add_option("file", o->file, "the config file (see docs/supervise.md)")->required();
    sub->add_option("--socket", o->socket, "control socket path (default: [supervisor] control_socket, "
                                           "$XDG_RUNTIME_DIR/drover/supervise.sock, /run/drover/supervise.sock for root)");
    add_spawn_threads_option(*sub, o->spawn_threads,
                             "threads that may run clone3 when many services start at once, 1 to 256 or auto (the "
                             "CPUs); default auto (or $DROVER_SPAWN_THREADS); 1: the event-loop thread only");
    sub->add_option("--metrics-listen", o->metrics_listen,
                    "serve Prometheus metrics (GET /metrics, text format 0.0.4) on ADDR: 127.0.0.1:PORT, "
                    "[::1]:PORT, localhost:PORT (PORT 0: any free port, logged) or unix:PATH (mode 0600); "
                    "loopback only, as there is no authentication. Default: [supervisor] metrics_listen. "
                    "`drover ctl metrics` gives the same text")
        ->type_name("ADDR")
        ->each([o](const std::string&) { o->metrics_given = true; });
    sub->add_flag("--no-cgroups", o->no_cgroups, "do not put services in cgroups (no limits, no whole-tree kill)");
    sub->add_flag("--no-control", o->no_control, "do not listen on a control socket");
    sub->add_flag("--check", o->check, "validate the file and exit: 0, or 2 with located errors");
    return [o] { return supervise_main(*o); };
}

}  // namespace drover::cli
