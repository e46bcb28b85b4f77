// job_pool: a dispatcher coroutine that starts queued jobs while concurrency, descriptors and
// the kernel allow, a callback-driven state per running job that reads its output with
// bounded buffers and awaits its exit, and the throttle that holds spawns back when capacity
// runs out.
#include "drover/process/pool.hpp"
#include "drover/process/cgroup_wait.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/use_awaitable.hpp>
#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "drover/process/asio.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/process.hpp"
#include "drover/sys/syscalls.hpp"
#include "ring_pipe.hpp"

namespace drover {

using asio::posix::stream_descriptor;

std::string truncation_marker(std::size_t dropped, int stream_fd) {
    return "\n[drover: " + std::to_string(dropped) + " bytes of " +
           (stream_fd == 2 ? "stderr" : "stdout") + " dropped]\n";
}

bool is_capacity_failure(const spawn_failure& f) noexcept {
    if (f.stage == child_stage::exec || f.code.category() != std::generic_category()) return false;
    switch (f.code.value()) {
        case EMFILE:
        case ENFILE:
        case EAGAIN:
        case ENOSPC:
        case ENOMEM:
            return true;
        default:
            return false;
    }
}

std::string throttle_state::reason() const {
    switch (why) {
        case kind::none:
            return {};
        case kind::fd_budget: {
            rlimit lim{};
            ::getrlimit(RLIMIT_NOFILE, &lim);
            return "throttled: fd budget (RLIMIT_NOFILE " + std::to_string(lim.rlim_cur) +
                   ") allows " + std::to_string(limit) + " live jobs";
        }
        case kind::spawn_error: {
            std::string r = "throttled: " + failure.message();
            if (!failure.advice.empty()) r += " (" + failure.advice + ")";
            return r;
        }
    }
    return {};
}

struct job_pool::impl : std::enable_shared_from_this<impl> {
    struct queued {
        std::size_t index = 0;
        prepared_spawn spec;
        std::string tag;
        std::int64_t queued_ns = 0;
        std::int64_t started_ns = 0;
        unsigned attempts = 0;
        unsigned idle_failures = 0;
        bool ring = false;  // placed by dispatch(): its output goes to the ring
    };

    asio::any_io_executor ex;
    pool_options opt;
    std::deque<queued> queue;
    bool closed = false;
    bool ran = false;
    std::size_t next_index = 0;
    std::size_t in_flight = 0;  // spawns between clone3 and the exec report
    std::size_t running = 0;    // jobs past their spawn
    asio::steady_timer wake;
    throttle_state thr;
    pool_stats st;
    std::function<void(job_result)> on_done;
    std::chrono::milliseconds backoff;
    std::optional<asio::steady_timer::time_point> hold_until;
    std::size_t base_fds = 0;
    std::size_t table_fds = 0;    // descriptors the running jobs hold in the table
    std::size_t ring_claims = 0;  // ring slots promised to jobs still being spawned
    std::exception_ptr escaped;  // from a job's coroutine: rethrown by run()
    struct live_job;
    std::unordered_map<std::size_t, live_job*> running_jobs;  // for signal()
    // Signals of signal_all() sent while spawns were in flight: each such job gets them as
    // soon as its spawn completes. `signal_base` is the log index of signals.front();
    // entries no in-flight spawn needs any more are dropped.
    std::deque<int> signals;
    std::size_t signal_base = 0;
    std::multiset<std::size_t> spawn_marks;  // log positions the in-flight spawns started at

    void trim_signals() {
        std::size_t keep_from = spawn_marks.empty() ? signal_base + signals.size() : *spawn_marks.begin();
        while (signal_base < keep_from && !signals.empty()) {
            signals.pop_front();
            ++signal_base;
        }
    }
    // One read buffer for all jobs: a job's data is copied out before anything is awaited.
    std::vector<char> scratch = std::vector<char>(64 * 1024);

    // The cgroup tree jobs with limits get their cgroups from (made on first need).
    cgroup_tree* cgroups() {
        if (!opt.cgroups)
            opt.cgroups = std::make_shared<cgroup_tree>("drover." + std::to_string(::getpid()) + ".pool" +
                                                        std::to_string(reinterpret_cast<std::uintptr_t>(this) % 100000));
        return opt.cgroups.get();
    }

    impl(asio::any_io_executor e, pool_options o)
        : ex(std::move(e)), opt(std::move(o)), wake(ex), backoff(opt.retry_min) {
        if (opt.concurrency == 0) throw std::invalid_argument("job_pool: concurrency must be > 0");
        if (opt.spawn_parallelism == 0) opt.spawn_parallelism = 1;
        if (opt.spawn_threads > 256) throw std::invalid_argument("job_pool: spawn_threads must be 0..256");
        if (opt.output.max_bytes == 0)
            throw std::invalid_argument("job_pool: output.max_bytes must be > 0");
        if (opt.output.policy == overflow_policy::backpressure && !opt.sink)
            throw std::invalid_argument("job_pool: the backpressure policy needs an output sink");
    }

    [[nodiscard]] std::size_t live() const noexcept { return in_flight + running; }

    void notify() { wake.cancel(); }

    void set_throttle(throttle_state t) {
        bool changed = t.why != thr.why;
        if (changed && t.throttled()) ++st.throttle_events;
        thr = std::move(t);
        if (changed && opt.on_throttle) opt.on_throttle(thr);
    }

    static int piped_streams(const spawn_spec& s) {
        return (s.in.how == stdio::kind::pipe) + (s.out.how == stdio::kind::pipe) +
               (s.err.how == stdio::kind::pipe);
    }
    static int piped_output(const spawn_spec& s) {
        return (s.out.how == stdio::kind::pipe) + (s.err.how == stdio::kind::pipe);
    }

    enum class placement { none, table, ring };

    // Where the next job's output read ends can go now; none: throttle. Automatic: the table
    // while it keeps room for the pidfds of as many jobs as the ring's free slots could
    // take (so that a full table does not leave the ring unusable: 20,000 descriptors hold
    // 6,666 jobs with both streams piped in the table, 10,000 with them in the ring), then
    // the ring while the table has room for the rest of a job's descriptors, then the table.
    placement place(const queued& next) {
        const spawn_spec& spec = next.spec.spec();
        const int outs = piped_output(spec);
        const bool ring_ok = outs > 0 && opt.output_fds != output_fd_policy::table &&
                             detail::ring_pipes_supported();
        if (!opt.fd_budget) return ring_ok && opt.output_fds == output_fd_policy::ring ? placement::ring : placement::table;
        if (!ring_ok) return live() < fd_budget_limit(next) || live() == 0 ? placement::table : placement::none;
        rlimit lim{};
        if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
            return opt.output_fds == output_fd_policy::ring ? placement::ring : placement::table;
        const int piped = piped_streams(spec);
        std::size_t held = fds_per_child(piped, false);
        std::size_t transient = fds_per_child(piped, true);
        std::size_t fixed = base_fds + 16 + transient * std::min(opt.spawn_parallelism, live() + 1);
        auto fits = [&](std::size_t more) { return fixed + table_fds + more <= lim.rlim_cur || live() == 0; };
        const auto n_outs = static_cast<std::size_t>(outs);
        if (opt.output_fds == output_fd_policy::automatic) {
            // (The ring is made only once the table gets short: until then its size is known.)
            std::size_t room = detail::ring_pipe_room(ex, /*open=*/false);
            std::size_t ring_jobs = (room - std::min(room, ring_claims)) / n_outs;
            if (fits(held + ring_jobs * (held - n_outs))) return placement::table;
        }
        std::size_t room = detail::ring_pipe_room(ex);
        if (room >= ring_claims + n_outs && fits(held - n_outs)) return placement::ring;
        // (ring policy without room in the ring: the table, if it has room)
        if (opt.output_fds == output_fd_policy::ring && fits(held)) return placement::table;
        return placement::none;
    }

    // How many jobs like `next` may be alive under RLIMIT_NOFILE, counting the descriptors
    // the running ones hold and the in-flight ones hold for a moment.
    std::size_t fd_budget_limit(const queued& next) const {
        rlimit lim{};
        if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
            return static_cast<std::size_t>(-1);
        int piped = piped_streams(next.spec.spec());
        std::size_t held = fds_per_child(piped, false);
        std::size_t transient = fds_per_child(piped, true);
        std::size_t reserve = 16;
        std::size_t fixed = base_fds + reserve + transient * std::min(opt.spawn_parallelism, live() + 1);
        if (lim.rlim_cur <= fixed) return 0;
        return (static_cast<std::size_t>(lim.rlim_cur) - fixed) / held;
    }

    asio::awaitable<void> dispatch() {
        auto self = shared_from_this();
        for (;;) {
            if (escaped) std::rethrow_exception(escaped);
            if (closed && queue.empty() && live() == 0) break;
            if (hold_until && asio::steady_timer::clock_type::now() >= *hold_until) hold_until.reset();
            bool can = !queue.empty() && live() < opt.concurrency &&
                       in_flight < opt.spawn_parallelism && !hold_until;
            if (can) {
                placement where = place(queue.front());
                if (where == placement::none) {
                    if (thr.why != throttle_state::kind::fd_budget)
                        set_throttle({throttle_state::kind::fd_budget, {}, live(), fd_budget_limit(queue.front())});
                    can = false;
                } else {
                    if (thr.why == throttle_state::kind::fd_budget) set_throttle({});
                    queue.front().ring = where == placement::ring;
                }
            }
            if (can) {
                queued j = std::move(queue.front());
                queue.pop_front();
                if (j.ring) ring_claims += static_cast<std::size_t>(piped_output(j.spec.spec()));
                ++in_flight;
                st.live = live();
                st.peak_live = std::max(st.peak_live, st.live);
                // Marked now, not when run_job first runs: a signal_all() in between reaches it.
                auto mark = spawn_marks.insert(signal_base + signals.size());
                // What escapes a job's coroutine (on_done threw, say) ends run() with it.
                asio::co_spawn(ex, run_job(self, std::move(j), mark), [self](std::exception_ptr e) {
                    if (!e) return;
                    if (!self->escaped) self->escaped = e;
                    self->notify();
                });
                continue;
            }
            wake.expires_at(hold_until ? *hold_until : asio::steady_timer::time_point::max());
            co_await wake.async_wait(use_tuple);
        }
        if (escaped) std::rethrow_exception(escaped);
    }

    // An on_done that throws ends run() with its exception. It is kept here, before anything
    // can wake dispatch(): a spawn that fails without suspending (the vfork path reads its
    // report at once) must not let dispatch() see an idle, closed pool and return first.
    void deliver(job_result r) {
        ++st.finished;
        st.live = live();
        if (!on_done) return;
        try {
            on_done(std::move(r));
        } catch (...) {
            if (!escaped) escaped = std::current_exception();
            notify();
        }
    }

    job_result base_result(const queued& j) const {
        job_result r;
        r.index = j.index;
        r.tag = j.tag;
        r.queued_ns = j.queued_ns;
        r.started_ns = j.started_ns;
        r.attempts = j.attempts;
        return r;
    }

    // A spawn refused for lack of capacity: queue the job again and hold spawns back.
    // Returns false if the job should fail instead (nothing of ours is alive to free room).
    bool requeue(queued& j, const spawn_failure& f) {
        ++st.capacity_failures;
        if (live() == 0) ++j.idle_failures;
        else j.idle_failures = 0;
        if (j.idle_failures > opt.idle_retry_limit) return false;
        set_throttle({throttle_state::kind::spawn_error, f, live(), 0});
        hold_until = asio::steady_timer::clock_type::now() + backoff;
        backoff = std::min(backoff * 2, opt.retry_max);
        queue.push_front(std::move(j));
        return true;
    }

    // Spawns one job (a coroutine only while the spawn is in flight: at most
    // spawn_parallelism of them), then hands the child to a callback-driven live_job.
    static asio::awaitable<void> run_job(std::shared_ptr<impl> self, queued j,
                                         std::multiset<std::size_t>::iterator mark) {
        impl& p = *self;
        ++j.attempts;
        if (j.started_ns == 0) j.started_ns = sys::monotonic_ns();
        std::optional<process> child;
        std::optional<spawn_failure> failed;
        std::unique_ptr<limit_watch> watch;
        try {
            if (!p.opt.limits.empty())
                watch = std::make_unique<limit_watch>(p.ex, p.opt.limits,
                                                      p.opt.limits.wants_cgroup() ? p.cgroups() : nullptr);
            // (GCC 12 miscompiles a conditional expression inside a co_await's arguments.)
            launch_extras extras;
            if (watch) extras = watch->extras();
            extras.warm = p.opt.warm;
            extras.spawn_threads = p.opt.spawn_threads;
            child.emplace(co_await spawn(p.ex, j.spec, extras));
        } catch (const spawn_error& e) {
            failed = e.failure();
        } catch (const std::system_error& e) {
            failed = spawn_failure{child_stage::none, e.code(), e.what(), {}};
        } catch (const std::exception& e) {
            failed = spawn_failure{child_stage::none, sys::errno_code(EIO), e.what(), {}};
        }
        if (j.ring) {
            p.ring_claims -= static_cast<std::size_t>(piped_output(j.spec.spec()));
            // Where the ring refuses (full after all, or the kernel), the job reads from the table.
            if (child && !child->move_output_to_ring()) ++p.st.ring_output_jobs;
        }
        // What signal_all() sent while this job was being spawned reaches it now.
        if (child)
            for (std::size_t i = *mark; i < p.signal_base + p.signals.size(); ++i)
                (void)child->signal(p.signals[i - p.signal_base]);
        p.spawn_marks.erase(mark);
        p.trim_signals();
        --p.in_flight;
        if (failed) {
            if (is_capacity_failure(*failed) && p.requeue(j, *failed)) {
                p.notify();
                co_return;
            }
            ++p.st.failed_to_start;
            job_result r = p.base_result(j);
            r.outcome.why = verdict::failed_to_start;
            r.outcome.detail = failed->message();
            r.failure = std::move(failed);
            r.finished_ns = sys::monotonic_ns();
            p.notify();
            p.deliver(std::move(r));
            co_return;
        }
        ++p.running;
        ++p.st.started;
        p.backoff = p.opt.retry_min;
        if (p.thr.why == throttle_state::kind::spawn_error) p.set_throttle({});
        p.notify();  // a spawn slot is free again
        try {
            live_job::start(self, std::move(*child), p.base_result(j), std::move(watch));
        } catch (const std::exception& e) {
            // (Out of memory, say.) The job still gets its one result, and run() its count;
            // the child, if it was moved in already, is reaped by its process object.
            --p.running;
            job_result r = p.base_result(j);
            r.outcome.why = verdict::failed_to_start;
            r.outcome.detail = std::string("tracking the job: ") + e.what();
            r.failure = spawn_failure{child_stage::none, sys::errno_code(ENOMEM), r.outcome.detail, {}};
            r.finished_ns = sys::monotonic_ns();
            p.notify();
            p.deliver(std::move(r));
        }
    }

    // One running job: its child, its result so far, and what it still waits for (the exit
    // and EOF on each piped stream). Driven by completion handlers, not a coroutine, so an
    // idle child costs this object, the process state and three pending operations.
    struct live_job : std::enable_shared_from_this<live_job> {
        // A piped output stream being read.
        struct stream {
            stream_descriptor* d = nullptr;
            int which = 1;
            // Or the stream's end in the io_uring (process::move_output_to_ring), read with
            // the ring's buffers; `reading` while a read of it is in the kernel.
            detail::ring_pipe* ring = nullptr;
            bool reading = false;
            // A ring end has no FIONREAD: after the exit its reads are RWF_NOWAIT until one
            // finds the pipe empty; until then it owes bytes from before the exit, as `owed`.
            bool probing = false;
            std::string rest;  // a ring read's bytes past the sink's chunk size, given next
            [[nodiscard]] bool open() const { return ring ? ring->is_open() : d && d->is_open(); }
            // Backpressure policy: what has been read and not yet handed to the sink (allocated
            // when output first arrives, freed at EOF).
            std::unique_ptr<char[]> buf;
            std::size_t fill = 0;
            bool sink_failed = false;
            // Bytes that were in the pipe when the exit was seen and are not read yet: the
            // rest of what the child itself wrote (and perhaps a descendant's, before it).
            std::size_t owed = 0;
        };

        std::shared_ptr<impl> pool;
        std::size_t index;
        process child;
        job_result r;
        stream out, err;
        unsigned pending = 0;  // exit wait + streams not yet at EOF
        // From the exit and once the pipes held nothing more of it, while a stream is open.
        std::unique_ptr<asio::steady_timer> linger;
        bool has_exited = false;
        std::unique_ptr<limit_watch> watch;          // with job limits
        bool output_exceeded = false;                 // the output limit stopped it
        std::size_t table_held = 0;                   // descriptors counted in pool->table_fds

        live_job(std::shared_ptr<impl> p, process c, job_result res, std::unique_ptr<limit_watch> w)
            : pool(std::move(p)), index(res.index), child(std::move(c)), r(std::move(res)), watch(std::move(w)) {}
        // Normally done_one() has taken it out; not if the loop was destroyed mid-job.
        ~live_job() {
            pool->running_jobs.erase(index);
            pool->table_fds -= std::exchange(table_held, 0);
        }

        static void start(std::shared_ptr<impl> p, process c, job_result res, std::unique_ptr<limit_watch> w) {
            impl& pl = *p;
            auto j = std::make_shared<live_job>(std::move(p), std::move(c), std::move(res), std::move(w));
            if (j->watch) j->watch->arm(j->child);
            pl.running_jobs.emplace(j->index, j.get());
            j->out.d = j->child.stdout_pipe();
            j->err.d = j->child.stderr_pipe();
            j->err.which = 2;
            j->out.ring = detail::ring_output(j->child, 1);
            j->err.ring = detail::ring_output(j->child, 2);
            j->pending = 1 + j->out.open() + j->err.open();
            j->table_held = 1 + (j->child.stdin_pipe() != nullptr) + (j->out.d != nullptr) + (j->err.d != nullptr);
            pl.table_fds += j->table_held;
            for (stream* s : {&j->out, &j->err}) {
                if (!s->open()) continue;
                if (s->d) s->d->non_blocking(true);
                arm(j, *s);
            }
            j->child.on_exit([j](std::error_code ec, exit_status how) {
                if (ec) j->fail(ec, "waiting for exit");
                else j->r.status = how;
                j->exited();
            });
        }

        // What the child wrote before its exit is in the pipes now: it is read in full, however
        // slow the sink (it used to be cut when a sink held a chunk past the linger). Then a
        // descendant holding the pipes gets output_linger to finish before they are closed.
        void exited() {
            if (--pending == 0) return finish();
            has_exited = true;
            for (stream* s : {&out, &err}) {
                int n = 0;
                if (s->ring && s->open()) {
                    // Probe it: a pending read is called back (and re-armed without waiting);
                    // one with the sink is re-armed so when the sink is done.
                    s->probing = true;
                    if (s->reading) s->ring->cancel();
                    continue;
                }
                if (!s->d || !s->d->is_open()) continue;
                if (::ioctl(s->d->native_handle(), FIONREAD, &n) == 0 && n > 0)
                    s->owed = static_cast<std::size_t>(n);
            }
            start_linger();
        }

        // Counts `n` bytes read from `s` against what it owes from before the exit.
        void consumed(stream& s, std::size_t n) {
            if (s.owed == 0) return;
            s.owed -= std::min(n, s.owed);
            if (s.owed == 0) start_linger();
        }

        void start_linger() {
            if (!has_exited || linger || pending == 0) return;
            for (stream* s : {&out, &err})
                if ((s->owed > 0 || s->probing) && s->open()) return;
            linger = std::make_unique<asio::steady_timer>(pool->ex, pool->opt.output_linger);
            linger->async_wait([j = shared_from_this()](std::error_code ec) {
                if (ec || j->pending == 0) return;
                j->r.output_cut = true;
                // The pending waits complete with operation_aborted; the streams end there.
                for (stream* s : {&j->out, &j->err}) {
                    if (!s->open()) continue;
                    if (s->ring) s->ring->cancel();
                    else s->d->cancel();
                }
            });
        }

        void fail(std::error_code ec, const char* what) {
            if (!r.failure) r.failure = spawn_failure{child_stage::none, ec, what, {}};
        }

        static void arm(const std::shared_ptr<live_job>& j, stream& s) {
            if (s.ring) {
                s.reading = true;
                return s.ring->read([j, &s](std::error_code ec, std::string_view data) { j->ring_read(s, ec, data); },
                                    s.probing);
            }
            s.d->async_wait(stream_descriptor::wait_read,
                            [j, &s](std::error_code ec) { j->readable(s, ec); });
        }

        // A read from a ring end: the same bookkeeping as readable() below, with the data
        // in the ring's buffer (valid only during this call).
        void ring_read(stream& s, std::error_code ec, std::string_view data) {
            s.reading = false;
            if (ec == asio::error::eof) return stream_done(s);
            if (ec == asio::error::operation_aborted && r.output_cut) return stream_done(s);
            // Cancelled by exited() to probe, before the cut: read again without waiting.
            if (ec == asio::error::operation_aborted && s.probing) return arm(shared_from_this(), s);
            if (ec == std::errc::resource_unavailable_try_again && s.probing) {
                // Empty: all the child wrote before its exit has been read.
                s.probing = false;
                start_linger();
                if (r.output_cut) return stream_done(s);
                return arm(shared_from_this(), s);
            }
            if (ec) {
                fail(ec, "reading child output");
                return stream_done(s);
            }
            impl& p = *pool;
            consumed(s, data.size());
            if (p.opt.output.policy == overflow_policy::backpressure && !s.sink_failed) {
                // The chunk goes to the sink; nothing more is read from this stream until it
                // has been taken, so the pipe fills and the child blocks, as with the table.
                s.rest.assign(data);
                return give_rest(s);
            }
            keep(s, data);
            if (r.output_cut) return stream_done(s);
            arm(shared_from_this(), s);
        }

        // Output read from `s` (either kind): kept up to output.max_bytes, the rest counted as
        // dropped (all of it once a failed sink left the stream to be drained).
        void keep(stream& s, std::string_view data) {
            impl& p = *pool;
            std::string& keep_in = s.which == 1 ? r.out : r.err;
            std::size_t& dropped = s.which == 1 ? r.out_dropped : r.err_dropped;
            const std::size_t max = p.opt.output.max_bytes;
            const bool streaming = p.opt.output.policy == overflow_policy::backpressure;
            std::size_t kept = streaming ? 0 : std::min(data.size(), max - std::min(max, keep_in.size()));
            keep_in.append(data.data(), kept);
            dropped += data.size() - kept;
            if (dropped > 0 && p.opt.output.kill && !output_exceeded) stop_for_output();
        }

        void readable(stream& s, std::error_code ec) {
            if (ec == asio::error::operation_aborted && r.output_cut) return stream_done(s);
            if (ec) {
                fail(ec, "waiting for child output");
                return stream_done(s);
            }
            impl& p = *pool;
            if (p.opt.output.policy == overflow_policy::backpressure && !s.sink_failed) return read_for_sink(s);
            // At most 16 reads (1 MiB) per wakeup: a child that writes as fast as it is read
            // must not keep the loop from every other job.
            for (int reads = 0;; ++reads) {
                if (reads == 16) return arm(shared_from_this(), s);
                ssize_t n = ::read(s.d->native_handle(), p.scratch.data(), p.scratch.size());
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    if (r.output_cut) return stream_done(s);
                    return arm(shared_from_this(), s);
                }
                if (n < 0) {
                    fail(sys::last_error(), "reading child output");
                    return stream_done(s);
                }
                if (n == 0) return stream_done(s);
                auto got = static_cast<std::size_t>(n);
                consumed(s, got);
                keep(s, {p.scratch.data(), got});
            }
        }

        // Backpressure: read straight into the stream's own buffer until the pipe is empty or
        // the buffer full, then hand the bytes to the sink and read nothing more until it took
        // them.
        void read_for_sink(stream& s) {
            const std::size_t cap = chunk_size();
            if (!s.buf) s.buf = std::make_unique_for_overwrite<char[]>(cap);
            bool eof = false;
            while (s.fill < cap) {
                ssize_t n = ::read(s.d->native_handle(), s.buf.get() + s.fill, cap - s.fill);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (n < 0) {
                    fail(sys::last_error(), "reading child output");
                    eof = true;
                    break;
                }
                if (n == 0) {
                    eof = true;
                    break;
                }
                s.fill += static_cast<std::size_t>(n);
                consumed(s, static_cast<std::size_t>(n));
            }
            if (s.fill == 0) {
                if (eof || r.output_cut) return stream_done(s);
                return arm(shared_from_this(), s);
            }
            impl& p = *pool;
            asio::co_spawn(p.ex, give(p.opt.sink, {r.index, s.which, {s.buf.get(), s.fill}}),
                           [j = shared_from_this(), &s, eof](std::exception_ptr e) {
                               j->taken(s, e, eof);
                           });
        }

        // Hands the sink the next chunk of what a ring read brought.
        void give_rest(stream& s) {
            if (!s.buf) s.buf = std::make_unique_for_overwrite<char[]>(chunk_size());
            std::size_t n = std::min(s.rest.size(), chunk_size());
            std::memcpy(s.buf.get(), s.rest.data(), n);
            s.rest.erase(0, n);
            s.fill = n;
            asio::co_spawn(pool->ex, give(pool->opt.sink, {r.index, s.which, {s.buf.get(), s.fill}}),
                           [j = shared_from_this(), &s](std::exception_ptr e) { j->taken(s, e, false); });
        }

        [[nodiscard]] std::size_t chunk_size() const { return std::min<std::size_t>(pool->opt.output.max_bytes, 1 << 20); }

        // The chunk is a parameter of this frame, so it lives until the sink is done with it.
        static asio::awaitable<void> give(const std::function<asio::awaitable<void>(const output_chunk&)>& sink,
                                          output_chunk chunk) {
            co_await sink(chunk);
        }

        void taken(stream& s, std::exception_ptr e, bool eof) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    if (!r.failure) r.failure = spawn_failure{child_stage::none, sys::errno_code(EIO), std::string("output sink: ") + x.what(), {}};
                } catch (...) {
                    fail(sys::errno_code(EIO), "output sink");
                }
                (s.which == 1 ? r.out_dropped : r.err_dropped) += s.fill + s.rest.size();
                s.sink_failed = true;  // drain the rest without a sink
                s.buf.reset();
                s.rest.clear();
            }
            s.fill = 0;
            if (!s.rest.empty()) return give_rest(s);
            if (eof || r.output_cut) return stream_done(s);
            arm(shared_from_this(), s);
        }

        // A judge's output limit: the whole job stops (its cgroup, or its main process).
        void stop_for_output() {
            output_exceeded = true;
            if (watch) watch->stop(verdict::output);
            else (void)child.signal(SIGKILL);
        }

        void stream_done(stream& s) {
            s.buf.reset();
            s.owed = 0;
            s.probing = false;
            s.fill = 0;
            s.rest.clear();
            // EOF or given up: a descendant writing more gets EPIPE.
            if (s.ring) s.ring->close();
            else s.d->close();
            std::size_t dropped = s.which == 1 ? r.out_dropped : r.err_dropped;
            std::string& text = s.which == 1 ? r.out : r.err;
            if (dropped > 0) text += truncation_marker(dropped, s.which);
            text.shrink_to_fit();
            done_one();
        }

        void done_one() {
            if (--pending == 0) return finish();
            start_linger();  // the other stream may have been waiting for this one's bytes
        }

        void finish() {
            if (linger) linger->cancel();
            impl& p = *pool;
            r.timings = child.timings();
            if (watch) {
                r.outcome = watch->finish(child, output_exceeded);
                // Removed once empty, off this path: what finish() killed may take a moment.
                retire(p.ex, watch->release_cgroup());
                watch.reset();
            } else {
                r.outcome = job_outcome_of(child, p.opt.limits, std::nullopt, nullptr, output_exceeded);
            }
            p.running_jobs.erase(index);
            p.table_fds -= std::exchange(table_held, 0);
            r.finished_ns = sys::monotonic_ns();
            --p.running;
            // A job ended: capacity may be back, so an ongoing backoff ends now.
            p.hold_until.reset();
            p.notify();
            p.deliver(std::move(r));
            // The pipes close with this object, when the last handler holding it returns.
        }
    };
};

job_pool::job_pool(asio::any_io_executor ex, pool_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

job_pool::~job_pool() = default;

std::size_t job_pool::submit(prepared_spawn spec, std::string tag) {
    impl& p = *impl_;
    if (p.closed) throw std::logic_error("job_pool: submit after close");
    std::size_t index = p.next_index++;
    p.queue.push_back({index, std::move(spec), std::move(tag), sys::monotonic_ns(), 0, 0, 0});
    ++p.st.submitted;
    p.notify();
    return index;
}

void job_pool::close() {
    impl_->closed = true;
    impl_->notify();
}

asio::any_io_executor job_pool::get_executor() const noexcept { return impl_->ex; }

asio::awaitable<void> job_pool::run_coro(std::function<void(job_result)> on_done) {
    impl& p = *impl_;
    if (p.ran) throw std::logic_error("job_pool: run() called twice");
    p.ran = true;
    p.on_done = std::move(on_done);
    p.base_fds = count_open_fds();
    co_await p.dispatch();
}

std::error_code job_pool::signal(std::size_t index, int sig) noexcept {
    auto it = impl_->running_jobs.find(index);
    if (it == impl_->running_jobs.end()) return sys::errno_code(ESRCH);
    return it->second->child.signal(sig);
}

std::size_t job_pool::signal_all(int sig) noexcept {
    impl& p = *impl_;
    std::size_t reached = 0;
    for (auto& [index, job] : p.running_jobs)
        if (!job->child.signal(sig)) ++reached;
    // Jobs still being spawned get it as soon as they run.
    if (!p.spawn_marks.empty()) {
        try {
            p.signals.push_back(sig);
        } catch (...) {
        }
    }
    return reached;
}

std::size_t job_pool::cancel_queued() {
    impl& p = *impl_;
    std::deque<impl::queued> dropped;
    dropped.swap(p.queue);
    for (auto& j : dropped) {
        job_result r = p.base_result(j);
        r.failure = spawn_failure{child_stage::none, sys::errno_code(ECANCELED), "cancelled before it started", {}};
        r.outcome.why = verdict::cancelled;
        r.outcome.detail = "cancelled before it started";
        r.finished_ns = sys::monotonic_ns();
        ++p.st.cancelled;
        p.deliver(std::move(r));
    }
    p.notify();
    return dropped.size();
}

std::size_t job_pool::queued() const noexcept { return impl_->queue.size(); }

const throttle_state& job_pool::throttle() const noexcept { return impl_->thr; }
const pool_stats& job_pool::stats() const noexcept { return impl_->st; }
const pool_options& job_pool::options() const noexcept { return impl_->opt; }

asio::awaitable<std::vector<job_result>> detail::run_jobs_coro(asio::any_io_executor ex,
                                                               std::vector<prepared_spawn> specs,
                                                               pool_options options) {
    job_pool pool(ex, std::move(options));
    for (auto& s : specs) pool.submit(std::move(s));
    pool.close();
    std::vector<job_result> results(specs.size());
    co_await pool.run([&](job_result r) {
        std::size_t i = r.index;
        results[i] = std::move(r);
    });
    co_return results;
}

}  // namespace drover
