// process: spawn on an executor, await the exec report and the exit through the pidfd.
#include "drover/process/process.hpp"

#include "drover/process/asio.hpp"
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <csignal>
#include <new>
#include <pthread.h>

#include "away.hpp"
#include "ring_pipe.hpp"
#include "drover/process/exit_waiter.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/syscalls.hpp"

namespace drover {

using asio::posix::stream_descriptor;

struct process::state {
    asio::any_io_executor ex;
    pid_t pid = -1;
    stream_descriptor pidfd;
    std::optional<stream_descriptor> in, out, err;
    detail::ring_pipe ring_out, ring_err;  // out and err, when moved to the ring
    spawn_timings timings;
    clone_method method = clone_method::fork;
    std::optional<exit_status> status;
    std::optional<struct rusage> usage;
    std::shared_ptr<id_lease> ids;  // released once the child is reaped
    std::shared_ptr<warm_set> set;  // likewise: its holder is PID 1 above the job's namespace

    state(asio::any_io_executor e, launched_child& c)
        : ex(e), pid(c.pid), pidfd(e, c.pidfd.release()), timings(c.timings), method(c.method), ids(std::move(c.ids)),
          set(std::move(c.set)) {
        if (c.stdin_pipe) in.emplace(e, c.stdin_pipe.release());
        if (c.stdout_pipe) out.emplace(e, c.stdout_pipe.release());
        if (c.stderr_pipe) err.emplace(e, c.stderr_pipe.release());
        detail::note_process_born();
    }
    ~state() { detail::note_process_gone(); }
    state(const state&) = delete;
    state& operator=(const state&) = delete;
};

process::process() noexcept = default;
process::process(executor_type ex, launched_child child)
    : s_(std::make_unique<state>(std::move(ex), child)) {}
process::process(process&&) noexcept = default;
process& process::operator=(process&& other) noexcept {
    if (this != &other) {
        process dropped(std::move(*this));  // hands an unreaped child to the reaper
        s_ = std::move(other.s_);
    }
    return *this;
}

process::~process() {
    if (!s_ || s_->status || !s_->pidfd.is_open()) return;
    sys::unique_fd fd(s_->pidfd.release());
    std::shared_ptr<void> keep = s_->ids;
    if (s_->set) keep = std::make_shared<std::pair<std::shared_ptr<id_lease>, std::shared_ptr<warm_set>>>(
                     std::move(s_->ids), std::move(s_->set));
    detail::reap_in_background(s_->ex, std::move(fd), std::move(keep));
}

process::executor_type process::get_executor() const { return s_->ex; }
pid_t process::pid() const noexcept { return s_ ? s_->pid : -1; }
int process::pidfd() const noexcept {
    return s_ && s_->pidfd.is_open() ? s_->pidfd.native_handle() : -1;
}
std::optional<exit_status> process::status() const noexcept {
    return s_ ? s_->status : std::nullopt;
}
std::optional<struct rusage> process::usage() const noexcept {
    return s_ ? s_->usage : std::nullopt;
}

namespace {

// Reaps an exited child (WNOHANG) with its resource usage. false: not waitable yet.
bool reap(process::state& s, std::error_code& ec);

}  // namespace
const spawn_timings& process::timings() const noexcept { return s_->timings; }
clone_method process::method() const noexcept { return s_->method; }

asio::awaitable<exit_status> process::wait_coro() {
    state& s = *s_;
    if (!s.status && exit_wait_method_for(s.ex) == exit_wait_method::waitid) {
        // IORING_OP_WAITID waits and reaps in one step; if the ring cannot be used, the
        // pidfd poll below takes over.
        detail::waitid_outcome r = co_await detail::uring_waitid(s.ex, s.pidfd.native_handle());
        if (r.error == asio::error::operation_aborted)
            throw std::system_error(r.error, "waiting for exit");
        // A completion without a child in it (si_pid 0) told of nothing: poll instead.
        if (!r.error && r.info.si_pid != 0) {
            s.timings.exit_observed = sys::monotonic_ns();
            std::error_code wec;
            if (!reap(s, wec) && wec) throw std::system_error(wec, "waitid(P_PIDFD)");
        }
    }
    while (!s.status) {
        auto [ec] = co_await s.pidfd.async_wait(stream_descriptor::wait_read,
                                                use_tuple);
        if (ec == asio::error::operation_aborted) throw std::system_error(ec, "waiting for exit");
        s.timings.exit_observed = sys::monotonic_ns();
        std::error_code wec;
        if (!reap(s, wec) && wec) throw std::system_error(wec, "waitid(P_PIDFD)");
        // not yet waitable although readable: wait again
    }
    co_return *s.status;
}

namespace {

bool reap(process::state& s, std::error_code& ec) {
    siginfo_t info;
    struct rusage ru{};
    ec = sys::waitid_pidfd(s.pidfd.native_handle(), info, WEXITED | WNOHANG, &ru);
    if (ec || info.si_pid == 0) return false;
    s.timings.reaped = sys::monotonic_ns();
    s.status = exit_status::from_siginfo(info);
    s.usage = ru;
    s.pidfd.close();
    s.ids.reset();  // nothing runs with the leased ids any more (see spawn_spec::ids)
    s.set.reset();
    return true;
}

// The poll path of on_exit(): pidfd readable, then waitid(WNOHANG); again if not waitable yet.
void poll_exit(process::state& s, process::exit_callback done) {
    s.pidfd.async_wait(stream_descriptor::wait_read, [&s, done = std::move(done)](std::error_code ec) mutable {
        if (ec) return done(ec, {});
        s.timings.exit_observed = sys::monotonic_ns();
        std::error_code wec;
        if (reap(s, wec)) return done({}, *s.status);
        if (wec) return done(wec, {});
        poll_exit(s, std::move(done));
    });
}

}  // namespace

void process::on_exit(exit_callback done) {
    state& s = *s_;
    if (s.status) {
        asio::post(s.ex, [st = *s.status, done = std::move(done)] { done({}, st); });
        return;
    }
    if (exit_wait_method_for(s.ex) != exit_wait_method::waitid) return poll_exit(s, std::move(done));
    detail::uring_waitid_start(s.ex, s.pidfd.native_handle(),
                               [&s, done = std::move(done)](std::error_code ec, const siginfo_t& info) mutable {
        if (ec == asio::error::operation_aborted) return done(ec, {});
        // A completion without a child in it (si_pid 0) told of nothing: poll instead.
        if (ec || info.si_pid == 0) return poll_exit(s, std::move(done));
        s.timings.exit_observed = sys::monotonic_ns();
        std::error_code wec;
        if (reap(s, wec)) return done({}, *s.status);
        if (wec) return done(wec, {});
        poll_exit(s, std::move(done));
    });
}

std::error_code process::signal(int sig) noexcept {
    if (!s_ || s_->status || !s_->pidfd.is_open()) return sys::errno_code(ESRCH);
    return sys::pidfd_send_signal(s_->pidfd.native_handle(), sig);
}

std::error_code process::move_output_to_ring() noexcept {
    state& s = *s_;
    std::size_t want = (s.out ? 1 : 0) + (s.err ? 1 : 0);
    if (want == 0) return {};
    try {
        if (!detail::ring_pipes_supported()) return sys::errno_code(ENOSYS);
        if (detail::ring_pipe_room(s.ex) < want) return sys::errno_code(EMFILE);
        for (auto [from, to] : {std::pair{&s.out, &s.ring_out}, std::pair{&s.err, &s.ring_err}}) {
            if (!*from) continue;
            sys::unique_fd fd((*from)->release());
            std::error_code ec;
            detail::ring_pipe moved(s.ex, fd, ec);
            if (ec) {  // (the room was checked: a kernel refusal) the stream stays as it was
                from->emplace(s.ex, fd.release());
                return ec;
            }
            *to = std::move(moved);
            from->reset();
        }
    } catch (const std::bad_alloc&) {
        return sys::errno_code(ENOMEM);
    }
    return {};
}

bool process::output_ring_supported() noexcept { return detail::ring_pipes_supported(); }

int process::output_in_ring() const noexcept {
    return s_ ? int(s_->ring_out.is_open()) + int(s_->ring_err.is_open()) : 0;
}

detail::ring_pipe* detail::ring_output(process& p, int stream) noexcept {
    if (!p.s_) return nullptr;
    detail::ring_pipe& r = stream == 1 ? p.s_->ring_out : p.s_->ring_err;
    return r.is_open() ? &r : nullptr;
}

stream_descriptor* process::stdin_pipe() noexcept { return s_->in ? &*s_->in : nullptr; }
stream_descriptor* process::stdout_pipe() noexcept { return s_->out ? &*s_->out : nullptr; }
stream_descriptor* process::stderr_pipe() noexcept { return s_->err ? &*s_->err : nullptr; }

namespace {

// write(2) on a pipe whose reader is gone raises SIGPIPE, which ends a host that does not
// ignore it. Writes with SIGPIPE blocked in this thread and takes back the one it raised
// (unless one was already pending), so the caller gets EPIPE instead.
ssize_t write_without_sigpipe(int fd, const char* data, std::size_t n) {
    sigset_t pipe_only, old, pending;
    ::sigemptyset(&pipe_only);
    ::sigaddset(&pipe_only, SIGPIPE);
    ::sigpending(&pending);
    bool was_pending = ::sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t r = ::write(fd, data, n);
    int saved = errno;
    if (r < 0 && saved == EPIPE && !was_pending) {
        timespec now{};
        while (::sigtimedwait(&pipe_only, nullptr, &now) < 0 && errno == EINTR) {
        }
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = saved;
    return r;
}

}  // namespace

asio::awaitable<void> process::write_stdin_coro(std::string_view data) {
    if (!s_->in) throw std::system_error(sys::errno_code(EBADF), "stdin is not a pipe");
    stream_descriptor& in = *s_->in;
    in.non_blocking(true);
    while (!data.empty()) {
        ssize_t n = write_without_sigpipe(in.native_handle(), data.data(), data.size());
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            throw std::system_error(sys::last_error(), "writing to the child's stdin");
        auto [ec] = co_await in.async_wait(stream_descriptor::wait_write, use_tuple);
        if (ec) throw std::system_error(ec, "writing to the child's stdin");
    }
}

void process::close_stdin() noexcept { s_->in.reset(); }

namespace {

// Until a spawned child is handed to its process object it belongs to the spawning frame: a
// frame cancelled or destroyed mid-spawn (its loop destroyed) kills the child and reaps it.
// SIGKILL ends it within moments, so the wait is short even on the loop's thread.
struct unhanded_child {
    launched_child& child;
    bool armed = true;
    ~unhanded_child() {
        if (!armed || !child.pidfd) return;
        (void)sys::pidfd_send_signal(child.pidfd.get(), SIGKILL);
        siginfo_t info;
        (void)sys::waitid_pidfd(child.pidfd.get(), info, WEXITED);
    }
};

}  // namespace

namespace {

// Throws the failure, leaving a copy in `out` first for the caller that asked for one.
[[noreturn]] void fail(spawn_failure& failure, spawn_failure* out) {
    if (out) *out = failure;
    throw spawn_error(std::move(failure));
}

}  // namespace

namespace {

// Runs the launch on a spawner thread (spawn_threads.hpp); resumes on the caller's executor.
asio::awaitable<void> launch_away(asio::any_io_executor ex, std::shared_ptr<detail::away_launch> job, bool own) {
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [&ex, &job, own](auto handler) {
            job->resume = std::make_unique<detail::away_resume_for<decltype(handler)>>(ex, std::move(handler));
            if (own)
                detail::hand_off_own(ex, job);
            else
                detail::hand_off(ex, job);
        },
        asio::use_awaitable);
}

}  // namespace

asio::awaitable<process> detail::spawn_coro(asio::any_io_executor ex, prepared_spawn spec, launch_extras extras,
                                            spawn_failure* out) {
    launched_child child;
    spawn_failure failure;
    // A large descriptor table: spawned from a spawner's own (spawn_table); else maybe on a
    // spawner thread of the process's table (a burst).
    std::vector<int> imports;
    const bool own = detail::should_use_own_table(spec, extras, imports);
    const bool away = own || (!extras.warm && detail::should_hand_off(extras.spawn_threads));
    detail::spawn_under_way counted;
    if (away) {
        auto job = std::make_shared<detail::away_launch>();
        job->spec = &spec;
        job->extras = extras;
        job->imports = std::move(imports);
        co_await launch_away(ex, job, own);
        (void)detail::collect_shipped(*job);
        if (!job->ok) fail(job->failure, out);
        // Cancelled while away: the launch's destructor kills and reaps the child.
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            throw std::system_error(asio::error::operation_aborted, "spawning");
        // A spawner thread of the process's table made the pidfd there: it shows the
        // table's extent as an inline spawn's would (most spawns of a burst go this way).
        if (!own && job->child.pidfd) detail::note_table_extent(job->child.pidfd.get());
        if (job->concluded) co_return process(std::move(ex), std::move(job->child));
        child = std::move(job->child);
    } else if (!launch(spec, child, failure, extras)) {
        fail(failure, out);
    } else {
        detail::note_table_extent(child.pidfd.get());
    }
    unhanded_child guard{child};
    std::byte buf[report_max_size];
    std::size_t got = 0;
    if (child.report_complete) {
        // vfork path: the child's setup is over (it exec'd or exited), so its report is all
        // there; reading it now saves a round trip through the event loop.
        got = read_report(child, buf);
    } else {
        // The report pipe reaches EOF when execve closes the child's end; until then the
        // loop is free for other work (the child's setup can take a millisecond with
        // namespaces).
        stream_descriptor report(ex, child.report.release());
        while (got < sizeof buf) {
            auto [ec, n] = co_await report.async_read_some(
                asio::buffer(buf + got, sizeof buf - got), use_tuple);
            // Cancelled: the child may already run its program, which conclude() would wait
            // for; the guard ends it instead.
            if (ec == asio::error::operation_aborted) throw std::system_error(ec, "spawning");
            if (ec || n == 0) break;
            got += n;
        }
    }
    guard.armed = false;
    if (!conclude(spec, child, std::span<const std::byte>(buf, got), sys::monotonic_ns(), failure))
        fail(failure, out);
    co_return process(std::move(ex), std::move(child));
}

std::optional<prepared_spawn> prepare(spawn_spec spec, std::error_code& ec, std::string* why) noexcept {
    ec.clear();
    try {
        return prepared_spawn(std::move(spec));
    } catch (const spec_error& e) {
        ec = make_error_code(errc::invalid_spec);
        try {
            if (why) *why = e.what();
        } catch (...) {  // no room for the text: the code alone
        }
    } catch (...) {
        ec = detail::error_code_of(std::current_exception());
    }
    return std::nullopt;
}

std::error_code detail::error_code_of(std::exception_ptr e) noexcept {
    if (!e) return {};
    try {
        std::rethrow_exception(e);
    } catch (const spawn_error& x) {
        return x.failure().as_error_code();
    } catch (const std::system_error& x) {
        return x.code();
    } catch (const spec_error&) {
        return make_error_code(errc::invalid_spec);
    } catch (const std::bad_alloc&) {
        return sys::errno_code(ENOMEM);
    } catch (...) {
        // A handler has no way to take an exception of a type it does not know; the code
        // says one was dropped rather than pretending success.
        return make_error_code(errc::unexpected_exception);
    }
}

}  // namespace drover
