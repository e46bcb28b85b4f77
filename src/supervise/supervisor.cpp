// supervisor: one runner coroutine per service (wait for dependencies, start, log, wait,
// decide on restart), stop with escalation to SIGKILL of the whole cgroup, reload by diff.
#include "drover/supervise/supervisor.hpp"

#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <stdexcept>

#include "drover/process/asio.hpp"
#include "drover/process/process.hpp"
#include "drover/process/cgroup.hpp"
#include "drover/process/cgroup_wait.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/syscalls.hpp"
#include "notify.hpp"

namespace drover::supervise {

using asio::awaitable;
using asio::posix::stream_descriptor;

namespace {

std::atomic<unsigned> tree_serial{0};

/// All waiters wake on notify_all() and re-check their condition: a condition variable for
/// one Asio thread. Each waiter has its own timer set to its deadline; notifying cancels them.
class notifier {
public:
    awaitable<void> wait(clock::time_point deadline) {
        auto t = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, deadline);
        waiters_.push_back(t);
        (void)co_await t->async_wait(use_tuple);
        std::erase(waiters_, t);
    }
    void notify_all() {
        for (auto& w : waiters_) w->cancel();
    }

private:
    std::vector<std::shared_ptr<asio::steady_timer>> waiters_;
};

}  // namespace

struct service_rt {
    service_rt(asio::any_io_executor ex, service_spec s, std::shared_ptr<service_counters> c)
        : spec(std::move(s)), counters(std::move(c)), tracker(spec.backoff, spec.intensity), wake(ex) {}

    service_spec spec;
    // Kept by the supervisor by name: a service that reload replaces counts on.
    std::shared_ptr<service_counters> counters;
    service_state state = service_state::stopped;
    bool want = false;     // meant to be running
    bool runner = false;   // a runner coroutine is active
    std::optional<process> proc;
    service_cgroup* cg = nullptr;  // the current run's cgroup, owned by the runner
    unsigned restarts = 0;
    std::optional<exit_status> last_exit;
    bool oom = false;
    std::string error;
    clock::time_point started_at{};
    restart_tracker tracker;
    asio::steady_timer wake;  // backoff delay; cancelled by stop
    std::vector<std::weak_ptr<stream_descriptor>> streams;
    unsigned start_failures = 0;  // consecutive runs that could not even start
    unsigned logging = 0;         // output streams still being read and logged
    std::string notify_status;    // the last STATUS= (notify)
    bool warned_no_socket = false;
    clock::time_point last_ping{};  // the start, then each WATCHDOG=1
    // With spec.warm: sets for the next starts, made from the first start's spec; destroyed
    // (their holders ended) with the service. `warm_refused`: the spec cannot be warm.
    std::unique_ptr<warm_pool> warm;
    bool warm_refused = false;
    std::uint64_t warm_hits = 0, warm_misses = 0;  // of pools already dropped

    // When the service stops running (stopped, exited, failed): its ready sets end now, not
    // with the supervisor; a later start makes a new pool.
    void drop_warm() {
        if (!warm) return;
        warm_stats ws = warm->stats();
        warm_hits += ws.hits;
        warm_misses += ws.misses;
        warm.reset();
    }
};

// Where events go: the caller's handler, or the log. Shared with the completion handlers of
// the service coroutines, which may run after the supervisor is gone.
struct event_sink {
    std::function<void(const supervisor_event&)> handler;
    std::shared_ptr<spdlog::logger> log;

    void operator()(const supervisor_event& e) const {
        if (!handler) return log_event(*log, e);
        try {
            handler(e);
        } catch (...) {
            // A handler that throws loses that event only: the service's coroutine that
            // reported it goes on (documented on supervisor_options::on_event).
        }
    }
    void operator()(std::string_view service, event_kind k, event_severity sev, std::string_view message) const {
        supervisor_event e;
        e.service = service;
        e.kind = k;
        e.severity = sev;
        e.message = message;
        (*this)(e);
    }
};

// Start order: each service after those it names in `after` (Kahn's algorithm, stable).
// The start order of a set, or none (with the reason in `problem`) if it cannot start.
static std::vector<std::size_t> start_order(const std::vector<const service_spec*>& specs, std::string* problem) {
    start_plan plan = plan_start(specs);
    if (problem) *problem = plan.problem(specs);
    return plan.order;
}

struct supervisor::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor e, supervisor_options o)
        : ex(e), opt(std::move(o)), rng(opt.seed) {
        auto log = opt.log;
        if (!log && !opt.on_event)
            log = std::make_shared<spdlog::logger>("drover", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        emit = std::make_shared<const event_sink>(event_sink{opt.on_event, std::move(log)});
        if (opt.use_cgroups) {
            std::string name = opt.cgroup_name.empty()
                                   ? "drover." + std::to_string(::getpid()) + "." + std::to_string(tree_serial++)
                                   : opt.cgroup_name;
            tree = std::make_unique<cgroup_tree>(name);
            if (tree->mode() != cgroup_mode::none && opt.guardian)
                guardian = std::make_unique<cgroup_guardian>(tree->roots());
        }
    }

    asio::any_io_executor ex;
    supervisor_options opt;
    std::shared_ptr<const event_sink> emit;
    std::unique_ptr<cgroup_tree> tree;
    std::unique_ptr<cgroup_guardian> guardian;
    std::vector<std::shared_ptr<service_rt>> services;  // in the order added
    notifier changed;
    std::mt19937_64 rng;
    bool shut = false;
    // Metrics: counters by service name (they outlive a reload's replacement of a service),
    // spawn latency by namespace set, and when this supervisor was made.
    std::map<std::string, std::shared_ptr<service_counters>, std::less<>> counters;
    std::map<std::string, latency_histogram> spawn_latency;
    double started_unix = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

    std::shared_ptr<service_rt> make_service(service_spec spec) {
        auto& c = counters[spec.name];
        if (!c) c = std::make_shared<service_counters>();
        return std::make_shared<service_rt>(ex, std::move(spec), c);
    }

    // Where a start failed, as the metrics name it: the spawn's stage, or "supervisor" for
    // what drover prepared before the spawn (cgroup, notify socket).
    static std::string failure_stage(const std::exception& e) {
        if (const auto* se = dynamic_cast<const spawn_error*>(&e)) return std::string(stage_id(se->stage()));
        if (dynamic_cast<const spec_error*>(&e)) return std::string(stage_id(child_stage::prepare));
        return "supervisor";
    }

    // A run's spawn succeeded: counted, and its time from launch (the prepare stage, drover's
    // own share included) to execve observed.
    void count_spawn(service_rt& s) {
        ++s.counters->spawns;
        const spawn_timings& t = s.proc->timings();
        const std::int64_t from = t.launch_start ? t.launch_start : t.clone_start;
        if (from == 0 || t.exec_done < from) return;
        spawn_latency[s.spec.spawn.namespaces.str()].observe(static_cast<double>(t.exec_done - from) / 1e9);
    }

    void count_exit(service_rt& s, const exit_status& st) {
        auto& c = *s.counters;
        if (st.success()) ++c.exits_success;
        else if (st.signaled()) ++c.exits_signal;
        else ++c.exits_code;
        if (s.oom) ++c.oom_kills;
    }

    std::shared_ptr<service_rt> find(std::string_view name) const {
        for (const auto& s : services)
            if (s->spec.name == name) return s;
        return nullptr;
    }

    // A start that failed: s.error says why (status().last_error keeps it).
    void emit_start_failed(const service_rt& s, child_stage stage) {
        supervisor_event e;
        e.service = s.spec.name;
        e.kind = event_kind::start_failed;
        e.severity = event_severity::error;
        const std::string text = "cannot start: " + s.error;
        e.message = text;
        e.stage = stage;
        (*emit)(e);
    }

    void emit_killed(const service_rt& s, const std::string& text, event_severity sev) {
        supervisor_event e;
        e.service = s.spec.name;
        e.kind = event_kind::killed;
        e.severity = sev;
        e.message = text;
        e.pid = s.proc ? s.proc->pid() : 0;
        (*emit)(e);
    }

    void set_state(service_rt& s, service_state st) {
        s.state = st;
        changed.notify_all();
    }

    // A dependency holds its dependents back while it is meant to run and is not ready yet.
    bool deps_ready(const service_rt& s) const {
        for (const auto& name : s.spec.after) {
            auto d = find(name);
            if (!d || !d->want) continue;
            if (d->state != service_state::running && d->state != service_state::exited &&
                d->state != service_state::failed)
                return false;
        }
        return true;
    }

    // GCC 12 may destroy a temporary in a co_await expression twice: callers pass a named
    // predicate, by reference.
    awaitable<bool> wait_for(const std::function<bool()>& pred, clock::time_point deadline) {
        while (!pred()) {
            if (clock::now() >= deadline) co_return false;
            co_await changed.wait(deadline);
        }
        co_return true;
    }

    double unit_random() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }

    // Completion of a service's coroutines: what escapes one is logged, never dropped.
    auto escaped(std::string name) {
        return on_escape([emit = emit, name = std::move(name)](const std::string& what) {
            (*emit)(name, event_kind::error, event_severity::error, "supervisor error: " + what);
        });
    }

    awaitable<void> log_lines(std::shared_ptr<stream_descriptor> stream, std::shared_ptr<service_rt> s, bool err) {
        // s->logging was counted up by the caller, before this first runs.
        auto self = shared_from_this();
        try {
            line_reader lines(*stream, opt.max_line);
            while (auto line = co_await lines.next()) {
                ++(err ? s->counters->stderr_lines : s->counters->stdout_lines);
                (err ? s->counters->stderr_bytes : s->counters->stdout_bytes) += line->size();
                supervisor_event e;
                e.service = s->spec.name;
                e.kind = event_kind::output;
                e.severity = err ? event_severity::warning : event_severity::info;
                e.message = *line;
                e.from_stderr = err;
                (*emit)(e);
            }
        } catch (const std::exception&) {
            // The stream was closed under us (shutdown) or failed: stop logging it.
        }
        --s->logging;
        changed.notify_all();
    }

    // One sd_notify assignment from the current run `run`.
    void on_notify(service_rt& s, const process* run, const std::string& key, const std::string& value) {
        if (!s.proc || &*s.proc != run) return;
        if (key == "READY" && value == "1") {
            if (s.state == service_state::starting) {
                (*emit)(s.spec.name, event_kind::ready, event_severity::info, "ready");
                set_state(s, service_state::running);
            }
        } else if (key == "STATUS") {
            s.notify_status = value.substr(0, 256);
            changed.notify_all();
        } else if (key == "WATCHDOG") {
            if (value == "1") s.last_ping = clock::now();
            else if (value == "trigger") s.last_ping = clock::time_point{};  // fail it now
            changed.notify_all();
        } else if ((key == "STOPPING" || key == "RELOADING") && value == "1") {
            (*emit)(s.spec.name, event_kind::notice, event_severity::info, key == "STOPPING" ? "stopping" : "reloading");
        } else if (key == "MAINPID") {
            // drover keeps watching the process it started; a daemon that forks away its main
            // process is still tracked through its cgroup.
            (*emit)(s.spec.name, event_kind::notice, event_severity::info,
                    fmt::format("says its main pid is {} (drover follows pid {})", value.substr(0, 16), run->pid()));
        }
    }

    // Datagrams on the notify socket ($NOTIFY_SOCKET), from the main process of this run (or,
    // with notify_access = "all", any process of its tree); others are dropped and logged.
    awaitable<void> watch_notify_socket(std::shared_ptr<stream_descriptor> sock, std::shared_ptr<service_rt> s,
                                        const process* run) {
        unsigned refused = 0;
        for (;;) {
            auto [ec] = co_await sock->async_wait(stream_descriptor::wait_read, use_tuple);
            if (ec) co_return;
            while (auto d = detail::receive_notify(sock->native_handle())) {
                if (!s->proc || &*s->proc != run) co_return;
                bool allowed = d->pid == run->pid() || (s->spec.notify_access_all && d->pid > 0 && detail::in_tree(d->pid, run->pid()));
                if (!allowed || d->truncated) {
                    if (refused++ < 5)
                        (*emit)(s->spec.name, event_kind::refused, event_severity::warning,
                                fmt::format("notify message {} pid {} ignored",
                                            d->truncated ? "longer than 4096 bytes from" : "from another process:", d->pid));
                    continue;
                }
                for (const auto& [k, v] : detail::parse_notify(d->text)) on_notify(*s, run, k, v);
            }
        }
    }

    // timeout_start_sec and watchdog_sec of one run: the service is killed (SIGABRT for the
    // watchdog, as systemd does; the stop signal otherwise; SIGKILL after stop_timeout).
    awaitable<void> notify_deadlines(std::shared_ptr<service_rt> s, const process* run) {
        const auto& spec = s->spec;
        auto same_run = [&] { return s->proc && &*s->proc == run; };
        for (;;) {
            if (!same_run() || s->state == service_state::stopping) co_return;
            const bool timing_start = spec.start_timeout.count() > 0 && s->state == service_state::starting;
            const auto start_due = timing_start ? s->started_at + spec.start_timeout : clock::time_point::max();
            const auto ping_due = spec.watchdog.count() > 0 ? s->last_ping + spec.watchdog : clock::time_point::max();
            const auto deadline = std::min(start_due, ping_due);
            if (clock::now() < deadline) {
                co_await changed.wait(deadline);
                continue;
            }
            const bool watchdog = deadline == ping_due;
            s->error = watchdog ? fmt::format("watchdog: no WATCHDOG=1 within {:g} s", std::chrono::duration<double>(spec.watchdog).count())
                                : fmt::format("not ready within timeout_start_sec ({:g} s)",
                                              std::chrono::duration<double>(spec.start_timeout).count());
            ++(watchdog ? s->counters->watchdog_kills : s->counters->start_timeout_kills);
            emit_killed(*s, s->error + ": killing it", event_severity::error);
            (void)s->proc->signal(watchdog ? SIGABRT : spec.stop_signal);
            auto kill_at = clock::now() + spec.stop_timeout;
            const std::function<bool()> gone = [&] { return !same_run(); };
            if (!co_await wait_for(gone, kill_at) && same_run()) (void)s->proc->signal(SIGKILL);
            co_return;
        }
    }

    // Reads sd_notify-style assignments ("READY=1\n") from the notify pipe.
    awaitable<void> watch_notify(std::shared_ptr<stream_descriptor> stream, std::shared_ptr<service_rt> s,
                                 const process* run) {
        std::string buf;
        char chunk[512];
        for (;;) {
            auto [ec, n] = co_await stream->async_read_some(asio::buffer(chunk), use_tuple);
            if (ec) co_return;
            buf.append(chunk, n);
            std::size_t start = 0;
            for (;;) {
                auto nl = buf.find('\n', start);
                std::string_view item(buf.data() + start, (nl == std::string::npos ? buf.size() : nl) - start);
                // A last assignment without '\n' counts as well (sd_notify sends datagrams).
                for (const auto& [k, v] : detail::parse_notify(item)) on_notify(*s, run, k, v);
                if (nl == std::string::npos) break;
                start = nl + 1;
            }
            buf.erase(0, buf.rfind('\n') == std::string::npos ? 0 : buf.rfind('\n') + 1);
            if (buf.size() > 4096) buf.clear();  // bounded: a service cannot grow this
        }
    }

    std::shared_ptr<stream_descriptor> own(service_rt& s, stream_descriptor* from) {
        // Streams of earlier runs are gone by now: forget them, so that a service restarted
        // a million times holds two entries, not two million.
        std::erase_if(s.streams, [](const std::weak_ptr<stream_descriptor>& w) { return w.expired(); });
        auto p = std::make_shared<stream_descriptor>(std::move(*from));
        s.streams.push_back(p);
        return p;
    }

    // The service's warm sets, made on its first start (a spec that cannot be warm: a
    // warning once, and cold starts). A start with no set ready is a cold one, not a wait.
    warm_pool* warm_for(service_rt& s, const spawn_spec& run_spec) {
        if (s.spec.warm == 0 || s.warm_refused) return nullptr;
        if (s.warm) return s.warm.get();
        std::string why;
        try {
            // What is this run's alone (its cgroup's and notify pipe's descriptors) stays
            // out of the sets' spec: the pool keeps that spec after they are closed.
            spawn_spec for_sets = run_spec;
            for_sets.cgroup_fd = -1;
            for_sets.pass_fds.clear();
            prepared_spawn prepared(std::move(for_sets));
            why = warm_unsupported(prepared);
            if (why.empty()) {
                warm_options wo;
                wo.size = s.spec.warm;
                s.warm = std::make_unique<warm_pool>(std::move(prepared), wo);
                return s.warm.get();
            }
        } catch (const std::exception& e) {
            why = e.what();
        }
        s.warm_refused = true;
        (*emit)(s.spec.name, event_kind::warning, event_severity::warning, "warm: " + why + "; it starts cold");
        return nullptr;
    }

    // One run: cgroup, spawn, readiness, wait, kill what is left, remove the cgroup.
    // Returns the exit status, or nullopt if the service could not be started.
    awaitable<std::optional<exit_status>> run_once(std::shared_ptr<service_rt> s) {
        spawn_spec spec = s->spec.spawn;
        spec.in = stdio::null();
        spec.out = stdio::pipe();
        spec.err = stdio::pipe();
        std::optional<sys::pipe_fds> notify;
        if (s->spec.ready == readiness::notify) {
            auto p = sys::pipe();
            if (!p) throw std::system_error(p.error(), "creating the notify pipe");
            notify.emplace(std::move(*p));
            spec.pass_fds.push_back({notify_fd, notify->write.get()});
            spec.env.set("NOTIFY_FD", std::to_string(notify_fd));
        }
        // $NOTIFY_SOCKET too, where the service can reach it: an abstract name is shared only
        // within drover's network namespace, a path only within its file system.
        std::optional<detail::notify_socket> nsock;
        // What an embedding program (or drover under systemd) was given is not the service's.
        for (const char* v : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) spec.env.unset(v);
        if (s->spec.ready == readiness::notify) {
            const bool own_net = spec.namespaces.has(ns::net);
            if (own_net && spec.fs.enabled) {
                if (!s->warned_no_socket)
                    (*emit)(s->spec.name, event_kind::warning, event_severity::warning,
                            "no $NOTIFY_SOCKET: its own network namespace and root cannot reach one (use $NOTIFY_FD)");
                s->warned_no_socket = true;
            } else {
                try {
                    nsock.emplace(detail::open_notify_socket(own_net));
                } catch (const std::exception& e) {
                    s->error = e.what();
                    ++s->counters->spawn_failures["supervisor"];
                    emit_start_failed(*s, child_stage::none);
                    co_return std::nullopt;
                }
                spec.env.set("NOTIFY_SOCKET", nsock->address);
            }
            if (s->spec.watchdog.count() > 0)
                spec.env.set("WATCHDOG_USEC", std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(s->spec.watchdog).count()));
        }
        s->notify_status.clear();
        service_cgroup cg;
        s->started_at = clock::now();
        s->last_ping = s->started_at;
        set_state(*s, service_state::starting);
        try {
            if (tree) cg = tree->create(s->spec.name, s->spec.limits);
            else if (!s->spec.limits.empty())
                throw std::runtime_error("limits need cgroups, which are turned off");
            cg.apply_to(spec);
            launch_extras extras;
            extras.spawn_threads = opt.spawn_threads;
            extras.warm = warm_for(*s, spec);
            s->proc.emplace(co_await spawn(ex, prepared_spawn(std::move(spec)), extras));
        } catch (const std::exception& e) {
            s->error = e.what();
            ++s->counters->spawn_failures[failure_stage(e)];
            const auto* se = dynamic_cast<const spawn_error*>(&e);
            emit_start_failed(*s, se ? se->stage() : child_stage::none);
            co_return std::nullopt;
        }
        if (!s->want) {
            // A stop came while it was being spawned: it gets the stop signal now, as a running
            // service would have (stop_one's deadline is already counting).
            set_state(*s, service_state::stopping);
            (void)s->proc->signal(s->spec.stop_signal);
        }
        s->cg = &cg;
        s->error.clear();
        count_spawn(*s);
        process& proc = *s->proc;
        {
            supervisor_event e;
            e.service = s->spec.name;
            e.kind = event_kind::started;
            const std::string text = fmt::format("started, pid {}", proc.pid());
            e.message = text;
            e.pid = proc.pid();
            (*emit)(e);
        }
        if (proc.stdout_pipe()) {
            ++s->logging;
            asio::co_spawn(ex, log_lines(own(*s, proc.stdout_pipe()), s, false), escaped(s->spec.name));
        }
        if (proc.stderr_pipe()) {
            ++s->logging;
            asio::co_spawn(ex, log_lines(own(*s, proc.stderr_pipe()), s, true), escaped(s->spec.name));
        }
        std::shared_ptr<stream_descriptor> notify_stream;
        if (notify) {
            notify->write.reset();  // the child holds the only write end now
            notify_stream = std::make_shared<stream_descriptor>(ex, notify->read.release());
            asio::co_spawn(ex, watch_notify(notify_stream, s, &proc), escaped(s->spec.name));
        }
        std::shared_ptr<stream_descriptor> socket_stream;
        if (nsock) {
            socket_stream = std::make_shared<stream_descriptor>(ex, nsock->fd.release());
            asio::co_spawn(ex, watch_notify_socket(socket_stream, s, &proc), escaped(s->spec.name));
        }
        if (s->spec.ready == readiness::notify &&
            (s->spec.start_timeout.count() > 0 || s->spec.watchdog.count() > 0))
            asio::co_spawn(ex, notify_deadlines(s, &proc), escaped(s->spec.name));
        if (!notify) {
            set_state(*s, service_state::running);
        }
        exit_status st = co_await proc.wait();
        if (notify_stream) notify_stream->close();
        if (socket_stream) socket_stream->close();
        // What the main process left behind (double-forked daemons) goes with it.
        if (cg.valid()) {
            if (cg.populated()) (void)cg.kill_all();
            // Waits on cgroup.events (inotify) for the killed to be gone, bounded; the loop
            // keeps serving the other services meanwhile.
            (void)co_await async_wait_empty(cg, std::chrono::seconds(2));
            s->oom = cg.oom_kills() > 0;
            if (auto ec = co_await async_remove(cg, std::chrono::seconds(1)))
                (*emit)(s->spec.name, event_kind::warning, event_severity::warning,
                        fmt::format("cannot remove cgroup {}: {}", cg.path(), ec.message()));
        } else {
            s->oom = false;
        }
        // Its last lines are logged before it counts as ended (a status or a test that looks
        // after the exit sees them all); a survivor holding the pipes (no cgroup) is logged on
        // after the bound, as before.
        const pid_t pid = proc.pid();
        service_rt* raw = s.get();
        const std::function<bool()> drained = [raw] { return raw->logging == 0; };
        (void)co_await wait_for(drained, clock::now() + std::chrono::seconds(1));
        s->cg = nullptr;
        s->proc.reset();
        s->last_exit = st;
        count_exit(*s, st);
        // A failure is a warning, an ending by plan (exit 0, or the stop drover sent) is not.
        const bool expected = st.success() || (!s->want && st.signaled() && (st.signal() == s->spec.stop_signal ||
                                                                             st.signal() == SIGKILL));
        const std::string text = st.str() + (s->oom ? " (out of memory: killed by the cgroup OOM killer)" : "");
        supervisor_event e;
        e.service = s->spec.name;
        e.kind = event_kind::exited;
        e.severity = expected ? event_severity::info : event_severity::warning;
        e.message = text;
        e.pid = pid;
        e.exit = st;
        e.oom_killed = s->oom;
        (*emit)(e);
        co_return st;
    }

    awaitable<void> runner(std::shared_ptr<service_rt> s) {
        auto self = shared_from_this();  // keep the state alive as long as the coroutine
        s->runner = true;
        try {
            while (s->want && !shut) {
                set_state(*s, service_state::waiting);
                while (s->want && !deps_ready(*s)) co_await changed.wait(clock::time_point::max());
                if (!s->want) break;
                std::optional<exit_status> st = co_await run_once(s);
                if (!s->want) break;
                bool failure = !st || !st->success();
                const auto policy = s->spec.restart;
                if (policy == restart_policy::never || (policy == restart_policy::on_failure && !failure)) {
                    s->want = false;
                    set_state(*s, failure ? service_state::failed : service_state::exited);
                    // Failed for good without a restart to try: failure_action applies as
                    // much as when the restart limit is reached.
                    if (failure && s->spec.shutdown_on_failure && opt.on_fatal) opt.on_fatal(s->spec.name);
                    break;
                }
                auto delay = s->tracker.next(s->started_at, clock::now(), unit_random());
                // A start that failed (out of descriptors, processes, memory) is retried no
                // sooner than this, whatever restart_sec says: 10 ms doubling to 5 s, so that
                // a zero delay cannot become a busy loop against a limit.
                if (!st) {
                    auto floor = std::chrono::milliseconds(10 << std::min(s->start_failures, 9u));
                    ++s->start_failures;
                    if (delay && *delay < floor) delay = std::chrono::duration_cast<nanoseconds>(floor);
                } else {
                    s->start_failures = 0;
                }
                if (!delay) {
                    ++s->counters->restart_limit_hits;
                    s->want = false;
                    s->error = fmt::format("restart limit reached: more than {} restarts in {:g} s", s->spec.intensity.burst,
                                           std::chrono::duration<double>(s->spec.intensity.interval).count());
                    (*emit)(s->spec.name, event_kind::failed, event_severity::error, "failed: " + s->error);
                    set_state(*s, service_state::failed);
                    if (s->spec.shutdown_on_failure && opt.on_fatal) opt.on_fatal(s->spec.name);
                    break;
                }
                {
                    supervisor_event e;
                    e.service = s->spec.name;
                    e.kind = event_kind::restarting;
                    const std::string text =
                        fmt::format("restarting in {:.3g} s", std::chrono::duration<double>(*delay).count());
                    e.message = text;
                    e.delay = *delay;
                    (*emit)(e);
                }
                ++s->counters->backoffs;
                set_state(*s, service_state::backoff);
                s->wake.expires_after(*delay);
                (void)co_await s->wake.async_wait(use_tuple);
                if (!s->want) break;
                ++s->restarts;
                ++s->counters->restarts;
            }
        } catch (const std::exception& e) {
            s->want = false;
            s->error = e.what();
            (*emit)(s->spec.name, event_kind::error, event_severity::error, "supervisor error: " + s->error);
            s->state = service_state::failed;
        } catch (...) {
            s->want = false;
            s->error = "an exception that is not a std::exception";
            (*emit)(s->spec.name, event_kind::error, event_severity::error, "supervisor error: " + s->error);
            s->state = service_state::failed;
        }
        if (s->state != service_state::failed && s->state != service_state::exited)
            s->state = service_state::stopped;
        s->drop_warm();
        s->runner = false;
        changed.notify_all();
    }

    awaitable<void> start_one(std::shared_ptr<service_rt> s) {
        service_rt* raw = s.get();
        const std::function<bool()> ended = [raw] { return !raw->runner; };
        if (s->runner && !s->want) co_await wait_for(ended, clock::time_point::max());
        if (s->runner) co_return;  // already running
        s->want = true;
        s->tracker.reset();
        s->restarts = 0;
        s->error.clear();
        asio::co_spawn(ex, runner(s), escaped(s->spec.name));
    }

    awaitable<void> stop_one(std::shared_ptr<service_rt> s) {
        s->want = false;
        s->wake.cancel();
        changed.notify_all();
        if (!s->runner) co_return;
        service_rt* raw = s.get();
        const std::function<bool()> ended = [raw] { return !raw->runner; };
        // A service still being spawned has no process to signal yet: run_once signals it as
        // soon as the spawn completes, and the same deadline holds for it.
        if (s->proc && !s->proc->status()) {
            set_state(*s, service_state::stopping);
            (void)s->proc->signal(s->spec.stop_signal);
        }
        if (co_await wait_for(ended, clock::now() + s->spec.stop_timeout)) co_return;
        emit_killed(*s,
                    fmt::format("did not stop within {:.3f} s: killing it",
                                std::chrono::duration<double>(s->spec.stop_timeout).count()),
                    event_severity::warning);
        if (s->cg) (void)s->cg->kill_all();
        if (s->proc) (void)s->proc->signal(SIGKILL);
        // SIGKILL ends it; what is left (its cgroup emptied, its pipes drained) is bounded too.
        while (!co_await wait_for(ended, clock::now() + std::chrono::seconds(1))) {
            if (s->cg) (void)s->cg->kill_all();
            if (s->proc) (void)s->proc->signal(SIGKILL);
        }
    }

    // Stops `list` (in start order) by levels of `after`: a level only once every service that
    // starts after it is stopped, each level's services at once. 100 services that ignore the
    // stop signal take one stop timeout, not a hundred.
    awaitable<void> stop_all(const std::vector<std::shared_ptr<service_rt>>& list) {
        std::map<const service_rt*, int> level;
        int top = 0;
        for (const auto& s : list) {  // start order: dependencies come first
            int l = 0;
            for (const auto& dep : s->spec.after)
                for (const auto& d : list)
                    if (d->spec.name == dep) l = std::max(l, level[d.get()] + 1);
            level[s.get()] = l;
            top = std::max(top, l);
        }
        for (int l = top; l >= 0; --l) {
            std::size_t pending = 0;
            for (const auto& s : list) {
                if (level[s.get()] != l) continue;
                ++pending;
                asio::co_spawn(ex, stop_one(s), [this, &pending](std::exception_ptr) {
                    --pending;
                    changed.notify_all();
                });
            }
            co_await wait_for([&pending] { return pending == 0; }, clock::time_point::max());
        }
    }


    std::vector<std::shared_ptr<service_rt>> ordered(std::string* problem = nullptr) const {
        std::vector<const service_spec*> specs;
        for (const auto& s : services) specs.push_back(&s->spec);
        std::vector<std::shared_ptr<service_rt>> out;
        for (std::size_t i : start_order(specs, problem)) out.push_back(services[i]);
        return out;
    }

    // Ends everything at once (destruction without stop()): SIGKILL to every tree.
    void shutdown_now() {
        shut = true;
        for (auto& s : services) {
            s->want = false;
            s->wake.cancel();
            if (s->cg) (void)s->cg->kill_all();
            if (s->proc) (void)s->proc->signal(SIGKILL);
            for (auto& w : s->streams)
                if (auto p = w.lock()) p->close();
        }
        changed.notify_all();
        tree.reset();      // kills and removes what is left of the cgroups
        guardian.reset();  // then the guardian has nothing left to do
    }
};

std::string check_services(const std::vector<service_spec>& services) {
    std::set<std::string> names;
    std::vector<const service_spec*> specs;
    for (const auto& s : services) {
        if (std::string e = validate(s); !e.empty()) return s.name + ": " + e;
        if (!names.insert(s.name).second) return s.name + ": defined twice";
        specs.push_back(&s);
    }
    std::string problem;
    (void)start_order(specs, &problem);
    return problem;
}

supervisor::supervisor(asio::any_io_executor ex, supervisor_options options)
    : p_(std::make_shared<impl>(ex, std::move(options))) {}

supervisor::~supervisor() { p_->shutdown_now(); }

void supervisor::add(service_spec spec) {
    if (std::string e = validate(spec); !e.empty()) throw spec_error(spec.name + ": " + e);
    if (p_->find(spec.name)) throw spec_error(spec.name + ": a service with this name exists");
    p_->services.push_back(p_->make_service(std::move(spec)));
}

std::string supervisor::check() const {
    std::string problem;
    p_->ordered(&problem);
    return problem;
}

awaitable<void> supervisor::start() {
    std::string problem;
    auto list = p_->ordered(&problem);
    if (!problem.empty()) throw spec_error(problem);
    for (auto& s : list) s->want = true;  // before any runner looks at its dependencies
    for (auto& s : list) co_await p_->start_one(s);
}

awaitable<void> supervisor::stop() {
    auto list = p_->ordered();
    if (list.empty()) list = p_->services;
    // Nothing may restart or start while the others stop.
    for (auto& s : list) {
        s->want = false;
        s->wake.cancel();
    }
    p_->changed.notify_all();
    co_await p_->stop_all(list);
}

awaitable<void> supervisor::start_service(std::string name) {
    auto s = p_->find(name);
    if (!s) throw std::invalid_argument("no service named '" + name + "'");
    co_await p_->start_one(s);
}

awaitable<void> supervisor::stop_service(std::string name) {
    auto s = p_->find(name);
    if (!s) throw std::invalid_argument("no service named '" + name + "'");
    co_await p_->stop_one(s);
}

awaitable<void> supervisor::restart_service(std::string name) {
    auto s = p_->find(name);
    if (!s) throw std::invalid_argument("no service named '" + name + "'");
    co_await p_->stop_one(s);
    co_await p_->start_one(s);
}

awaitable<void> supervisor::reload(std::vector<service_spec> next) {
    // Check the whole new set before touching anything.
    if (std::string problem = check_services(next); !problem.empty()) throw spec_error(problem);
    std::set<std::string> names;
    std::vector<const service_spec*> specs;
    for (auto& s : next) {
        names.insert(s.name);
        specs.push_back(&s);
    }
    auto order = start_order(specs, nullptr);

    // Removed: stop in reverse order, then forget.
    auto old = p_->ordered();
    for (auto it = old.rbegin(); it != old.rend(); ++it)
        if (!names.count((*it)->spec.name)) {
            (*p_->emit)((*it)->spec.name, event_kind::removed, event_severity::info, "removed by reload");
            co_await p_->stop_one(*it);
        }
    std::erase_if(p_->services, [&](const auto& s) { return !names.count(s->spec.name); });

    // Changed: stop now, start below with the new spec. Added: start below.
    std::vector<std::shared_ptr<service_rt>> to_start;
    std::vector<std::shared_ptr<service_rt>> result;
    for (std::size_t i : order) {
        service_spec& spec = next[i];  // specs[i] points at it
        auto cur = p_->find(spec.name);
        if (cur && !spec.fingerprint.empty() && spec.fingerprint == cur->spec.fingerprint) {
            result.push_back(cur);
            continue;
        }
        if (cur) {
            (*p_->emit)(spec.name, event_kind::changed, event_severity::info, "changed: restarting");
            co_await p_->stop_one(cur);
        } else {
            (*p_->emit)(spec.name, event_kind::added, event_severity::info, "added by reload");
        }
        auto fresh = p_->make_service(std::move(spec));
        result.push_back(fresh);
        to_start.push_back(fresh);
    }
    p_->services = std::move(result);
    for (auto& s : to_start) s->want = true;
    for (auto& s : to_start) co_await p_->start_one(s);
}

awaitable<bool> supervisor::wait_until(std::function<bool(const supervisor_status&)> pred, nanoseconds timeout) {
    const std::function<bool()> holds = [this, &pred] { return pred(status()); };
    co_return co_await p_->wait_for(holds, clock::now() + timeout);
}

supervisor_status supervisor::status() const {
    supervisor_status out;
    out.cgroup_mode = std::string(cgroup_mode_name(p_->tree ? p_->tree->mode() : cgroup_mode::none));
    auto now = clock::now();
    for (const auto& s : p_->services) {
        service_status st;
        st.name = s->spec.name;
        st.state = s->state;
        st.pid = s->proc ? s->proc->pid() : 0;
        st.restarts = s->restarts;
        st.last_exit = s->last_exit;
        st.last_oom_killed = s->oom;
        st.last_error = s->error;
        st.notify_status = s->notify_status;
        if (s->proc) st.uptime = now - s->started_at;
        if (s->cg) st.cgroup = s->cg->path();
        st.warm_hits = s->warm_hits;
        st.warm_misses = s->warm_misses;
        if (s->warm) {
            warm_stats ws = s->warm->stats();
            st.warm_ready = static_cast<unsigned>(ws.ready);
            st.warm_hits += ws.hits;
            st.warm_misses += ws.misses;
        }
        out.services.push_back(std::move(st));
    }
    return out;
}

supervisor_metrics supervisor::metrics() const {
    supervisor_metrics m;
    m.version = DROVER_VERSION;
    m.start_time_seconds = p_->started_unix;
    m.spawn_latency = p_->spawn_latency;
    for (const auto& s : p_->services) m.services.push_back({s->spec.name, s->state, s->proc.has_value(), *s->counters});
    return m;
}

bool supervisor::has(std::string_view name) const { return p_->find(name) != nullptr; }

std::function<void(const supervisor_event&)> supervisor::event_handler() const {
    return [emit = p_->emit](const supervisor_event& e) { (*emit)(e); };
}

std::string supervisor::cgroup_warning() const {
    if (!p_->opt.use_cgroups) return {};
    return p_->tree ? p_->tree->warning() : std::string{};
}

std::vector<std::string> supervisor::cgroup_roots() const {
    return p_->tree ? p_->tree->roots() : std::vector<std::string>{};
}

}  // namespace drover::supervise
