// Warm namespace sets: the holder's lifetime and a pool that keeps sets ready (warm.hpp).
#include "drover/spawn/warm.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "drover/sys/syscalls.hpp"
#include "plan.hpp"

namespace drover {

warm_set::warm_set(pid_t pid, sys::unique_fd pidfd, sys::unique_fd hold, std::shared_ptr<id_lease> ids,
                   std::int64_t made_ns) noexcept
    : pid_(pid), pidfd_(std::move(pidfd)), hold_(std::move(hold)), ids_(std::move(ids)), made_ns_(made_ns) {}

warm_set::warm_set(pid_t pid, sys::unique_fd pidfd, sys::unique_fd go, sys::unique_fd report,
                   std::shared_ptr<id_lease> ids, std::int64_t made_ns) noexcept
    : kind_(kind::ready_job), pid_(pid), pidfd_(std::move(pidfd)), hold_(std::move(go)), report_(std::move(report)),
      ids_(std::move(ids)), made_ns_(made_ns) {}

warm_set::ready_parts warm_set::take_ready() noexcept {
    ready_parts r;
    r.pid = pid_;
    r.pidfd = std::move(pidfd_);
    r.go = std::move(hold_);
    r.report = std::move(report_);
    r.ids = std::move(ids_);
    return r;
}

namespace {

// Reaps ended holders on a thread of its own. A holder is PID 1 above its job's PID
// namespace, and the kernel lets a PID 1 finish exiting only once every process below it is
// reaped, the job included, whose parent is drover. A blocking reap of the holder before the
// job's could therefore wait forever, and even after it the namespaces' teardown is no work
// for the event loop's thread. Pidfds arrive through a pipe, and the thread's loop makes raw
// system calls only: a thread that sits in a sanitizer's interceptors while another thread
// forks would leave the child a lock it can never take (TSan takes its locks around fork()
// only, and drover forks with clone3). Never destroyed: the thread may run while the
// process exits.
struct holder_reaper {
    int in_read = -1;
    int in_write = -1;
    std::atomic<std::size_t> pending{0};

    static holder_reaper& get() {
        static holder_reaper* r = [] {
            auto* h = new holder_reaper;
            int p[2];
            // Non-blocking: with the thread behind, add() reaps in place rather than wait.
            if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
                h->in_read = p[0];
                h->in_write = p[1];
                std::thread([h] { h->loop(); }).detach();
            }
            return h;
        }();
        return *r;
    }

    void add(int fd) {
        pending.fetch_add(1);
        if (in_write >= 0 && ::write(in_write, &fd, sizeof fd) == static_cast<ssize_t>(sizeof fd)) return;
        // No thread (no pipe), or 16,384 holders behind: reap here and now.
        siginfo_t info{};
        (void)sys::waitid_pidfd(fd, info, WEXITED);
        ::close(fd);
        pending.fetch_sub(1);
    }

    static long raw(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) noexcept {
        return ::syscall(nr, a, b, c, d, e);
    }

    void loop() {
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        // [0]: the pipe; then pidfds of killed holders. A fixed array: no allocation (an
        // intercepted call) in the loop. When it is full the pipe waits.
        static pollfd pfds[1024];
        std::size_t count = 1;
        pfds[0] = {in_read, POLLIN, 0};
        for (;;) {
            pfds[0].events = count < std::size(pfds) ? POLLIN : 0;
            // ppoll, not poll: arm64 and newer architectures have only the former.
            timespec tick{0, 20'000'000};
            (void)raw(SYS_ppoll, reinterpret_cast<long>(pfds), static_cast<long>(count),
                      count > 1 ? reinterpret_cast<long>(&tick) : 0L, 0L, 0L);
            if (pfds[0].revents & POLLIN) {
                int fds[64];
                std::size_t room = std::min<std::size_t>(std::size(fds), std::size(pfds) - count);
                long n = raw(SYS_read, in_read, reinterpret_cast<long>(fds), static_cast<long>(room * sizeof(int)));
                for (long i = 0; i < n / static_cast<long>(sizeof(int)); ++i) pfds[count++] = {fds[i], POLLIN, 0};
            }
            std::size_t reaped = 0;
            for (std::size_t i = 1; i < count;) {
                siginfo_t info{};
                long rc = raw(SYS_waitid, P_PIDFD, pfds[i].fd, reinterpret_cast<long>(&info), WEXITED | WNOHANG, 0);
                if (rc < 0 || info.si_pid != 0) {
                    (void)raw(SYS_close, pfds[i].fd);
                    pfds[i] = pfds[--count];
                    ++reaped;
                    continue;
                }
                pfds[i].revents = 0;
                ++i;
            }
            pfds[0].revents = 0;
            if (reaped) pending.fetch_sub(reaped);
        }
    }
};

}  // namespace

bool wait_warm_reaps(std::chrono::milliseconds limit) {
    holder_reaper& r = holder_reaper::get();
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (r.pending.load() != 0) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

warm_set::~warm_set() {
    // Closed on the reaper's thread: a waitid on a descriptor that is no pidfd fails at once
    // and the loop closes it, so a namespace's teardown never runs on the caller's thread.
    for (sys::unique_fd& fd : held_ns_)
        if (fd) holder_reaper::get().add(fd.release());
    if (!pidfd_) return;
    // EOF alone would end the holder too; the kill makes it prompt. Reaped elsewhere (see
    // holder_reaper): a pre-started job that never started has nothing below it, but a
    // holder may have an unreaped job below it.
    hold_.reset();
    report_.reset();
    (void)sys::pidfd_send_signal(pidfd_.get(), SIGKILL);
    holder_reaper::get().add(pidfd_.release());
}

bool warm_set::alive() const noexcept {
    pollfd pfd{pidfd_.get(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 0;
}

std::string warm_unsupported(const prepared_spawn& p, bool prestart) {
    const detail::prepared_data& d = p.data();
    const spawn_spec& s = d.spec;
    if (s.namespaces.has(ns::time))
        return "a time namespace cannot be warm (its offsets are written before its first process)";
    if (!s.join_cgroups.empty()) return "v1 cgroup joins by path (join_cgroups) cannot be warm: give them per job";
    if (d.setup_may_block) return "file ops that read a descriptor cannot be warm: each set would read it again";
    for (const detail::fs_step& st : d.fs_steps)
        if (st.what == detail::fs_step::kind::copy_fd)
            return "file ops that read a descriptor cannot be warm: each set would read it again";
    if (prestart) return {};  // the job's own process, set up as a cold one is
    if ((d.clone_flags & ~static_cast<std::uint64_t>(CLONE_NEWPID | CLONE_NEWCGROUP)) == 0)
        return "no namespace to keep warm (pid and cgroup namespaces are made per job)";
    if (!d.proc_targets.empty() && !s.namespaces.has(ns::pid))
        return "a warm /proc needs a pid namespace";
    if (!d.proc_targets.empty() && ::geteuid() == 0 &&
        !(s.namespaces.has(ns::user) && s.ids == userns_ids::automatic) && s.fs.enabled)
        return "a warm /proc for a job that may be host root needs ids = automatic (the read-only guards over "
               "/proc/sys are not remade per job)";
    return {};
}

struct warm_pool::impl {
    prepared_spawn spec;
    warm_options opt;
    mutable std::mutex mu;
    std::condition_variable wake;   // the refill thread: a set was taken, or stop
    std::condition_variable ready;  // wait_ready(): a set was added
    std::deque<std::unique_ptr<warm_set>> sets;
    warm_stats st;
    bool stop = false;
    std::thread refiller;

    impl(prepared_spawn p, warm_options o) : spec(std::move(p)), opt(o) {}

    // Makes one set outside the lock and files it (or the failure). Whether it made one.
    bool make_one() {
        spawn_failure failure;
        std::string stub_error;
        bool stub;
        {
            std::lock_guard lock(mu);
            stub = st.stub;  // turned false for good when the stub fails to start
        }
        auto set = make_warm_set(spec, failure, opt.prestart, stub, &stub_error);
        std::lock_guard lock(mu);
        if (!stub_error.empty() && st.stub) {
            st.stub = false;
            st.stub_unused = "drover_ready_stub failed to start, sets wait in drover's child: " + stub_error;
        }
        if (!set) {
            ++st.failed;
            st.last_error = failure.message() + (failure.advice.empty() ? "" : " (" + failure.advice + ")");
            return false;
        }
        ++st.made;
        st.refill_last_ns = set->made_ns();
        st.refill_max_ns = std::max(st.refill_max_ns, set->made_ns());
        st.refill_total_ns += set->made_ns();
        sets.push_back(std::move(set));
        ready.notify_all();
        return true;
    }

    void loop() {
        // Signals are the process's business; a holder forked from here starts with them blocked
        // and needs none (SIGKILL and EOF end it).
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        auto backoff = std::chrono::milliseconds(10);
        for (;;) {
            {
                std::unique_lock lock(mu);
                wake.wait(lock, [this] { return stop || sets.size() < opt.size; });
                if (stop) return;
            }
            if (make_one()) {
                backoff = std::chrono::milliseconds(10);
                continue;
            }
            // A namespace limit or memory: the jobs go cold meanwhile; try again later.
            std::unique_lock lock(mu);
            wake.wait_for(lock, backoff, [this] { return stop; });
            if (stop) return;
            backoff = std::min(backoff * 2, std::max(opt.max_backoff, std::chrono::milliseconds(10)));
        }
    }
};

warm_pool::warm_pool(prepared_spawn spec, warm_options options)
    : d_(std::make_unique<impl>(std::move(spec), options)) {
    if (std::string why = warm_unsupported(d_->spec, options.prestart); !why.empty()) throw spec_error("warm: " + why);
    d_->st.target = options.size;
    if (options.prestart) {
        d_->st.stub_unused = !options.stub ? "warm_options::stub is false" : ready_stub_unusable(d_->spec);
    } else if (!options.stub) {
        d_->st.stub_unused = "warm_options::stub is false";
    } else if (detail::ready_stub_fd() < 0) {
        d_->st.stub_unused = "drover_ready_stub not found (DROVER_READY_STUB, or beside the library)";
    }
    d_->st.stub = d_->st.stub_unused.empty();
    std::uint64_t held = d_->spec.data().clone_flags;
    if (!options.prestart) held &= ~static_cast<std::uint64_t>(CLONE_NEWCGROUP);  // the job makes its own
    d_->st.namespaces_per_set = static_cast<unsigned>(__builtin_popcountll(held));
    if (options.refill_thread && options.size > 0) d_->refiller = std::thread([this] { d_->loop(); });
}

warm_pool::~warm_pool() {
    {
        std::lock_guard lock(d_->mu);
        d_->stop = true;
    }
    d_->wake.notify_all();
    if (d_->refiller.joinable()) d_->refiller.join();
}

const prepared_spawn& warm_pool::spec() const noexcept { return d_->spec; }
bool warm_pool::prestarted() const noexcept { return d_->opt.prestart; }

std::unique_ptr<warm_set> warm_pool::take() {
    std::vector<std::unique_ptr<warm_set>> dead;  // ended outside the lock
    std::unique_ptr<warm_set> got;
    {
        std::lock_guard lock(d_->mu);
        while (!d_->sets.empty()) {
            auto s = std::move(d_->sets.front());
            d_->sets.pop_front();
            if (s->alive()) {
                got = std::move(s);
                break;
            }
            ++d_->st.dead;
            dead.push_back(std::move(s));
        }
        if (got)
            ++d_->st.hits;
        else
            ++d_->st.misses;
    }
    d_->wake.notify_one();
    return got;
}

std::size_t warm_pool::fill() {
    for (;;) {
        {
            std::lock_guard lock(d_->mu);
            if (d_->sets.size() >= d_->opt.size) return d_->sets.size();
        }
        if (!d_->make_one()) {
            std::lock_guard lock(d_->mu);
            return d_->sets.size();
        }
    }
}

bool warm_pool::wait_ready(std::chrono::milliseconds limit) {
    std::unique_lock lock(d_->mu);
    return d_->ready.wait_for(lock, limit, [this] { return d_->sets.size() >= d_->opt.size; });
}

warm_stats warm_pool::stats() const {
    std::lock_guard lock(d_->mu);
    warm_stats s = d_->st;
    s.ready = d_->sets.size();
    for (const auto& set : d_->sets) s.holders.push_back(set->holder_pid());
    return s;
}

}  // namespace drover
