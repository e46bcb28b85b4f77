// job_pool: a dispatcher coroutine that starts queued jobs while concurrency, descriptors and
// the kernel allow, one coroutine per running job that reads its output with bounded buffers
// and awaits its exit, and the throttle that holds spawns back when capacity runs out.
#include "drover/process/pool.hpp"

#include <fcntl.h>
#include <sys/resource.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/use_awaitable.hpp>
#include <algorithm>
#include <stdexcept>
#include <unordered_map>

#include "drover/process/asio.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/process.hpp"
#include "drover/sys/syscalls.hpp"

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
    std::unordered_map<std::size_t, process*> running_jobs;  // for signal()
    // One read buffer for all jobs: a job's data is copied out before anything is awaited.
    std::vector<char> scratch = std::vector<char>(64 * 1024);

    impl(asio::any_io_executor e, pool_options o)
        : ex(std::move(e)), opt(std::move(o)), wake(ex), backoff(opt.retry_min) {
        if (opt.concurrency == 0) throw std::invalid_argument("job_pool: concurrency must be > 0");
        if (opt.spawn_parallelism == 0) opt.spawn_parallelism = 1;
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
            if (closed && queue.empty() && live() == 0) break;
            if (hold_until && asio::steady_timer::clock_type::now() >= *hold_until) hold_until.reset();
            bool can = !queue.empty() && live() < opt.concurrency &&
                       in_flight < opt.spawn_parallelism && !hold_until;
            if (can && opt.fd_budget) {
                std::size_t limit = fd_budget_limit(queue.front());
                if (live() >= limit && live() > 0) {
                    if (thr.why != throttle_state::kind::fd_budget)
                        set_throttle({throttle_state::kind::fd_budget, {}, live(), limit});
                    can = false;
                } else if (thr.why == throttle_state::kind::fd_budget) {
                    set_throttle({});
                }
            }
            if (can) {
                queued j = std::move(queue.front());
                queue.pop_front();
                ++in_flight;
                st.live = live();
                st.peak_live = std::max(st.peak_live, st.live);
                asio::co_spawn(ex, run_job(self, std::move(j)), asio::detached);
                continue;
            }
            wake.expires_at(hold_until ? *hold_until : asio::steady_timer::time_point::max());
            co_await wake.async_wait(use_tuple);
        }
    }

    void deliver(job_result r) {
        ++st.finished;
        st.live = live();
        if (on_done) on_done(std::move(r));
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

    static asio::awaitable<void> run_job(std::shared_ptr<impl> self, queued j) {
        impl& p = *self;
        ++j.attempts;
        if (j.started_ns == 0) j.started_ns = sys::monotonic_ns();
        std::optional<process> child;
        std::optional<spawn_failure> failed;
        try {
            child.emplace(co_await spawn(p.ex, j.spec));
        } catch (const spawn_error& e) {
            failed = e.failure();
        } catch (const std::system_error& e) {
            failed = spawn_failure{child_stage::none, e.code(), e.what(), {}};
        } catch (const std::exception& e) {
            failed = spawn_failure{child_stage::none, sys::errno_code(EIO), e.what(), {}};
        }
        --p.in_flight;
        if (failed) {
            if (is_capacity_failure(*failed) && p.requeue(j, *failed)) {
                p.notify();
                co_return;
            }
            ++p.st.failed_to_start;
            job_result r = p.base_result(j);
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

        job_result r = p.base_result(j);
        p.running_jobs.emplace(j.index, &*child);
        try {
            using namespace asio::experimental::awaitable_operators;
            stream_descriptor* out = child->stdout_pipe();
            stream_descriptor* err = child->stderr_pipe();
            if (out && err)
                co_await (p.drain(*out, 1, r) && p.drain(*err, 2, r) && p.wait(*child, r));
            else if (out)
                co_await (p.drain(*out, 1, r) && p.wait(*child, r));
            else if (err)
                co_await (p.drain(*err, 2, r) && p.wait(*child, r));
            else
                co_await p.wait(*child, r);
        } catch (const std::system_error& e) {
            r.failure = spawn_failure{child_stage::none, e.code(), e.what(), {}};
        } catch (const std::exception& e) {
            // Whatever happens, the job is reported and its slot given back.
            r.failure = spawn_failure{child_stage::none, sys::errno_code(EIO), e.what(), {}};
        }
        r.timings = child->timings();
        p.running_jobs.erase(j.index);
        child.reset();  // closes the pipes (an unreaped child goes to the background reaper)
        r.finished_ns = sys::monotonic_ns();
        --p.running;
        // A job ended: capacity may be back, so an ongoing backoff ends now.
        p.hold_until.reset();
        p.notify();
        p.deliver(std::move(r));
    }

    asio::awaitable<void> wait(process& child, job_result& r) {
        r.status = co_await child.wait();
    }

    // Gives `buf` to the sink. The chunk is a named local: g++ 12 can destroy a temporary in
    // a co_await expression twice.
    asio::awaitable<void> hand_over(std::size_t index, int which, std::string& buf) {
        output_chunk chunk{index, which, std::exchange(buf, {})};
        auto op = opt.sink(std::move(chunk));
        co_await std::move(op);
    }

    // Reads one stream to EOF with a bounded buffer: waits for readiness, then copies what is
    // there through the shared scratch buffer (an idle child costs no buffer at all).
    asio::awaitable<void> drain(stream_descriptor& d, int which, job_result& r) {
        auto self = shared_from_this();
        std::string& buf = which == 1 ? r.out : r.err;
        std::size_t& dropped = which == 1 ? r.out_dropped : r.err_dropped;
        const std::size_t max = opt.output.max_bytes;
        const bool streaming = opt.output.policy == overflow_policy::backpressure;
        d.non_blocking(true);
        for (;;) {
            auto [ec] = co_await d.async_wait(stream_descriptor::wait_read, use_tuple);
            if (ec) throw std::system_error(ec, "waiting for child output");
            bool eof = false;
            for (;;) {
                std::size_t want = scratch.size();
                if (streaming) want = std::min(want, max - buf.size());
                ssize_t n = ::read(d.native_handle(), scratch.data(), want);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (n < 0) throw std::system_error(sys::last_error(), "reading child output");
                if (n == 0) {
                    eof = true;
                    break;
                }
                auto got = static_cast<std::size_t>(n);
                if (streaming) {
                    buf.append(scratch.data(), got);
                    if (buf.size() >= max) {
                        // Backpressure: nothing more is read until the sink took this.
                        co_await hand_over(r.index, which, buf);
                    }
                } else {
                    std::size_t keep = buf.size() < max ? std::min(got, max - buf.size()) : 0;
                    buf.append(scratch.data(), keep);
                    dropped += got - keep;
                }
            }
            if (streaming && !buf.empty()) co_await hand_over(r.index, which, buf);
            if (eof) break;
        }
        if (dropped > 0) buf += truncation_marker(dropped, which);
        if (!streaming) buf.shrink_to_fit();
    }
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

asio::awaitable<void> job_pool::run(std::function<void(job_result)> on_done) {
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
    return it->second->signal(sig);
}

const throttle_state& job_pool::throttle() const noexcept { return impl_->thr; }
const pool_stats& job_pool::stats() const noexcept { return impl_->st; }
const pool_options& job_pool::options() const noexcept { return impl_->opt; }

asio::awaitable<std::vector<job_result>> run_jobs(asio::any_io_executor ex,
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
