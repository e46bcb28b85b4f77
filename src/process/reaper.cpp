// Background reaping of children whose process object was dropped before their exit.
//
// Normally an async wait on the child's own executor reaps it. If that executor's context is
// destroyed with the wait still pending, the wait's guard hands a duplicate of the pidfd to
// one process-wide thread that polls such orphans until they exit: no zombies, ever, and no
// thread per child.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "drover/process/process.hpp"
#include "drover/sys/fault.hpp"
#include "drover/sys/syscalls.hpp"

namespace drover::detail {

namespace {

std::atomic<std::size_t> pending{0};

// The count's lock and condition. Never destroyed, like the fallback thread that uses them: a
// static would be torn down at exit while that (detached) thread may still be notifying.
struct reaped_signal {
    std::mutex mu;
    std::condition_variable cv;
};
reaped_signal& reaped() {
    static reaped_signal* s = new reaped_signal;
    return *s;
}

// One background reap done: wakes wait_background_reaps().
void reaped_one() {
    reaped_signal& r = reaped();
    {
        std::lock_guard lock(r.mu);
        --pending;
    }
    r.cv.notify_all();
}

class fallback_reaper {
public:
    static fallback_reaper& instance() {
        static fallback_reaper* r = new fallback_reaper;  // never destroyed: outlives statics
        return *r;
    }
    void adopt(sys::unique_fd fd, std::shared_ptr<void> keep) {
        {
            std::lock_guard lock(mu_);
            incoming_.push_back({std::move(fd), std::move(keep)});
        }
        std::uint64_t one = 1;
        (void)!::write(wake_.get(), &one, sizeof one);
    }

private:
    fallback_reaper() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        std::thread([this] { loop(); }).detach();
    }
    struct orphan {
        sys::unique_fd fd;
        std::shared_ptr<void> keep;
    };
    void loop() {
        std::vector<orphan> fds;
        for (;;) {
            std::vector<pollfd> pfds{{wake_.get(), POLLIN, 0}};
            for (auto& f : fds) pfds.push_back({f.fd.get(), POLLIN, 0});
            if (::poll(pfds.data(), pfds.size(), -1) < 0) continue;
            std::uint64_t n;
            (void)!::read(wake_.get(), &n, sizeof n);
            for (std::size_t i = fds.size(); i-- > 0;) {
                if (!(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                siginfo_t info;
                sys::waitid_pidfd(fds[i].fd.get(), info, WEXITED | WNOHANG);
                orphan reaped = std::move(fds[i]);
                fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
                // `keep` goes last: whoever waits for its release (a lease's owner, a test
                // counting descriptors) must find nothing of the child left.
                reaped.fd.reset();
                reaped_one();
            }
            std::lock_guard lock(mu_);
            for (auto& f : incoming_) fds.push_back(std::move(f));
            incoming_.clear();
        }
    }
    std::mutex mu_;
    std::vector<orphan> incoming_;
    sys::unique_fd wake_;
};

// Owns the wait; if destroyed before it completed, the duplicate goes to the fallback thread.
struct reap_guard {
    sys::unique_fd dup;
    std::shared_ptr<void> keep;
    bool done = false;
    reap_guard(reap_guard&& o) noexcept
        : dup(std::move(o.dup)), keep(std::move(o.keep)), done(std::exchange(o.done, true)) {}
    reap_guard(sys::unique_fd d, std::shared_ptr<void> k) : dup(std::move(d)), keep(std::move(k)) {}
    ~reap_guard() {
        if (!done && dup) fallback_reaper::instance().adopt(std::move(dup), std::move(keep));
    }
};

}  // namespace

void reap_in_background(asio::any_io_executor ex, sys::unique_fd pidfd, std::shared_ptr<void> keep) {
    ++pending;
    siginfo_t info;
    // Already exited: reap now, no loop round trip.
    if (!sys::waitid_pidfd(pidfd.get(), info, WEXITED | WNOHANG) && info.si_pid != 0) {
        reaped_one();
        return;
    }
    // The wait below is an I/O object whose handler owns it. Made anywhere but on the loop's
    // own thread while it runs — above all while the io_context is being destroyed, when the
    // coroutine frames it destroys drop their processes — it would be destroyed inside the
    // io_uring service's teardown and lock that service's freed mutex. The thread takes it.
    using tracked = decltype(asio::require(std::declval<asio::io_context::executor_type>(),
                                           asio::execution::outstanding_work.tracked));
    const auto* loop = ex.target<asio::io_context::executor_type>();
    const auto* tracked_loop = ex.target<tracked>();
    if (!(loop && loop->running_in_this_thread()) && !(tracked_loop && tracked_loop->running_in_this_thread())) {
        fallback_reaper::instance().adopt(std::move(pidfd), std::move(keep));
        return;
    }
    sys::unique_fd dup(sys::injected_fault(sys::fault_site::pidfd_dup) ? -1 : ::fcntl(pidfd.get(), F_DUPFD_CLOEXEC, 3));
    if (!dup) {  // out of descriptors: the thread takes the original
        fallback_reaper::instance().adopt(std::move(pidfd), std::move(keep));
        return;
    }
    auto desc = std::make_shared<asio::posix::stream_descriptor>(ex, pidfd.release());
    desc->async_wait(asio::posix::stream_descriptor::wait_read,
                     [desc, guard = reap_guard(std::move(dup), std::move(keep))](std::error_code) mutable {
                         siginfo_t si;
                         if (!sys::waitid_pidfd(desc->native_handle(), si, WEXITED | WNOHANG) &&
                             si.si_pid != 0) {
                             // As above: descriptors and the count first, `keep` last.
                             guard.done = true;
                             guard.dup.reset();
                             std::error_code ignored;
                             desc->close(ignored);
                             reaped_one();
                             guard.keep.reset();
                         }
                         // else: aborted (context shutting down); the guard hands it over.
                     });
}

std::size_t background_reaps_pending() noexcept { return pending.load(); }

bool wait_background_reaps(std::chrono::milliseconds limit) {
    reaped_signal& r = reaped();
    std::unique_lock lock(r.mu);
    return r.cv.wait_for(lock, limit, [] { return pending.load() == 0; });
}

}  // namespace drover::detail
