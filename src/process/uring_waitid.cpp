// IORING_OP_WAITID exit waits: one io_uring per execution context, its completions announced
// on an eventfd that the context awaits like any descriptor; the kernel probe that decides
// whether process::wait() uses it.
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <asio/async_result.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/query.hpp>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "drover/sys/fault.hpp"
#include "drover/process/asio.hpp"
#include "drover/process/exit_waiter.hpp"
#include "drover/sys/result.hpp"
#include "drover/sys/unique_fd.hpp"

#if DROVER_HAVE_LIBURING
#include <liburing.h>

#include "uring_sqe.hpp"
#endif

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace drover {

namespace {

// -1: automatic; otherwise an exit_wait_method.
std::atomic<int> forced_method{-1};

std::optional<exit_wait_method> method_from_env() noexcept {
    const char* v = std::getenv("DROVER_EXIT_WAIT");
    if (!v) return std::nullopt;
    std::string_view s(v);
    if (s == "poll") return exit_wait_method::poll;
    if (s == "waitid") return exit_wait_method::waitid;
    return std::nullopt;
}

}  // namespace

std::string_view exit_wait_method_name(exit_wait_method m) noexcept {
    return m == exit_wait_method::waitid ? "waitid" : "poll";
}

void force_exit_wait_method(std::optional<exit_wait_method> m) noexcept {
    forced_method.store(m ? static_cast<int>(*m) : -1);
}

namespace {

// The method asked for: forced in code, else from the environment, else none.
std::optional<exit_wait_method> method_asked() noexcept {
    static const std::optional<exit_wait_method> from_env = method_from_env();
    int forced = forced_method.load();
    return forced >= 0 ? std::optional(static_cast<exit_wait_method>(forced)) : from_env;
}

}  // namespace

exit_wait_method exit_wait_method_in_use() noexcept {
    // Poll unless waitid is asked for: its completion reaches the loop through a second ring
    // and an eventfd, and the caller still reaps with waitid(2) for the rusage, which costs a
    // spawn ~10 µs more than the pidfd poll on Asio's own ring (docs/scale.md).
    if (method_asked() == exit_wait_method::waitid && uring_waitid_supported()) return exit_wait_method::waitid;
    return exit_wait_method::poll;
}

exit_wait_method exit_wait_method_for(const asio::any_io_executor&) noexcept { return exit_wait_method_in_use(); }

#if !DROVER_HAVE_LIBURING

bool uring_waitid_supported() noexcept { return false; }

namespace detail {
asio::awaitable<waitid_outcome> uring_waitid(asio::any_io_executor, int) {
    co_return waitid_outcome{sys::errno_code(ENOSYS), {}};
}
void uring_waitid_start(const asio::any_io_executor& ex, int, waitid_callback done) {
    asio::post(ex, [d = std::move(done)] { d(sys::errno_code(ENOSYS), siginfo_t{}); });
}
std::size_t uring_waitid_pending(const asio::any_io_executor&) { return 0; }
}  // namespace detail

#else

namespace {

// IORING_OP_WAITID's value in include/uapi/linux/io_uring.h since Linux 6.7 (the entry after
// IORING_OP_READ_MULTISHOT = 49). liburing 2.3's headers predate it.
constexpr std::uint8_t op_waitid = 50;

// Submission user_data for requests whose completion carries nothing to deliver.
constexpr std::uint64_t ignored_user_data = 0;

bool probe_waitid() noexcept {
    io_uring_probe* probe = io_uring_get_probe();  // fails if io_uring is disabled
    if (!probe) return false;
    bool ok = io_uring_opcode_supported(probe, op_waitid) != 0;
    io_uring_free_probe(probe);
    return ok;
}

// One pending IORING_OP_WAITID. The kernel writes `info` when it completes; the object lives
// until its completion has been seen, even if the waiter was cancelled.
struct waitid_op {
    std::uint64_t id = 0;
    siginfo_t info{};
    virtual void complete(std::error_code ec, const asio::any_io_executor& fallback) = 0;
    virtual ~waitid_op() = default;
};

template <class Handler>
struct waitid_op_for final : waitid_op {
    Handler handler;
    explicit waitid_op_for(Handler&& h) : handler(std::move(h)) {}
    void complete(std::error_code ec, const asio::any_io_executor& fallback) override {
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) slot.clear();
        auto ex = asio::get_associated_executor(handler, fallback);
        asio::post(ex, [h = std::move(handler), ec, si = info]() mutable { std::move(h)(ec, si); });
    }
};

// The ring of one execution context.
class waitid_service : public asio::execution_context::service {
public:
    static asio::execution_context::id id;

    explicit waitid_service(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}
    ~waitid_service() override { close_ring(); }

    template <class Handler>
    void start(Handler&& handler, const asio::any_io_executor& ex, int pidfd) {
        std::unique_lock lock(mu_);
        if (std::error_code ec = open_ring(ex)) {
            lock.unlock();
            fail_now(std::move(handler), ex, ec);
            return;
        }
        auto op = std::make_unique<waitid_op_for<std::decay_t<Handler>>>(std::move(handler));
        op->id = next_id_++;
        io_uring_sqe* sqe = detail::next_sqe(ring_);
        if (!sqe) {
            lock.unlock();
            fail_now(std::move(op->handler), ex, sys::errno_code(EBUSY));
            return;
        }
        // The SQE layout of IORING_OP_WAITID (io_uring/waitid.c, io_waitid_prep): len = idtype,
        // fd = id, file_index = options, addr2 = siginfo pointer; addr, buf_index, addr3 and
        // the op flags must be zero.
        std::memset(sqe, 0, sizeof *sqe);
        sqe->opcode = op_waitid;
        sqe->fd = pidfd;
        sqe->len = P_PIDFD;
        // WNOWAIT: the ring only tells of the exit; the caller reaps with waitid(2), which
        // also gives the child's resource usage (the ring's waitid has no rusage).
        sqe->file_index = WEXITED | WNOWAIT;
        sqe->addr2 = reinterpret_cast<std::uint64_t>(&op->info);
        sqe->user_data = op->id;
        int e = sys::injected_fault(sys::fault_site::uring_submit);  // before: as if refused
        int r = e ? -e : io_uring_submit(&ring_);
        if (r < 0) {
            // The SQE may still sit in the ring, to be submitted with the next one: it must not
            // point at the siginfo of an operation that is about to be freed.
            io_uring_prep_nop(sqe);
            sqe->user_data = ignored_user_data;
            lock.unlock();
            fail_now(std::move(op->handler), ex, sys::errno_code(-r));
            return;
        }
        auto slot = asio::get_associated_cancellation_slot(op->handler);
        if (slot.is_connected())
            slot.template emplace<canceller>(this, op->id);
        ops_.emplace(op->id, std::move(op));
        arm();
    }

    std::size_t pending() {
        std::lock_guard lock(mu_);
        return ops_.size();
    }

private:
    struct canceller {
        // A constructor for slot.emplace(): clang 14 (the fuzz build) has no parenthesized
        // aggregate initialization.
        canceller(waitid_service* s, std::uint64_t i) : svc(s), id(i) {}
        waitid_service* svc;
        std::uint64_t id;
        void operator()(asio::cancellation_type_t type) {
            if (type != asio::cancellation_type::none) svc->cancel(id);
        }
    };

    template <class Handler>
    static void fail_now(Handler&& h, const asio::any_io_executor& ex, std::error_code ec) {
        auto hex = asio::get_associated_executor(h, ex);
        asio::post(hex, [h = std::move(h), ec]() mutable { std::move(h)(ec, siginfo_t{}); });
    }

    void shutdown() override {
        std::unordered_map<std::uint64_t, std::unique_ptr<waitid_op>> ops;
        {
            std::lock_guard lock(mu_);
            // Closing the ring cancels the kernel requests before their siginfo storage goes.
            close_ring();
            ops.swap(ops_);
        }
        ops.clear();  // handlers destroyed without being called, as Asio's own services do
    }

    std::error_code open_ring(const asio::any_io_executor& ex) {
        if (ring_open_) return {};
        if (ring_error_) return ring_error_;
        io_uring_params params{};
        // Completions can outnumber the submission queue: thousands of waits are in flight.
        params.flags = IORING_SETUP_CQSIZE;
        params.cq_entries = 4096;
        if (int r = io_uring_queue_init_params(256, &ring_, &params); r < 0) {
            ring_error_ = sys::errno_code(-r);
            return ring_error_;
        }
        sys::unique_fd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!efd) {
            ring_error_ = sys::last_error();
            io_uring_queue_exit(&ring_);
            return ring_error_;
        }
        if (int r = io_uring_register_eventfd(&ring_, efd.get()); r < 0) {
            ring_error_ = sys::errno_code(-r);
            io_uring_queue_exit(&ring_);
            return ring_error_;
        }
        ex_ = ex;
        efd_.emplace(ex, efd.release());
        ring_open_ = true;
        return {};
    }

    void close_ring() {
        if (!ring_open_) return;
        io_uring_queue_exit(&ring_);
        efd_.reset();
        ring_open_ = false;
    }

    void cancel(std::uint64_t op_id) {
        std::lock_guard lock(mu_);
        if (!ring_open_ || !ops_.count(op_id)) return;
        io_uring_sqe* sqe = detail::next_sqe(ring_);
        if (!sqe) return;  // the wait goes on; it completes with the exit
        std::memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->fd = -1;
        sqe->addr = op_id;
        sqe->user_data = ignored_user_data;
        io_uring_submit(&ring_);
    }

    // Waits for the eventfd while requests are in flight (not longer: a pending wait would
    // keep io_context::run() from returning).
    void arm() {
        if (armed_ || ops_.empty() || !efd_) return;
        armed_ = true;
        efd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
            std::lock_guard lock(mu_);
            armed_ = false;
            if (ec || !ring_open_) return;
            drain();
            arm();
        });
    }

    void drain() {
        std::uint64_t counter;
        (void)!::read(efd_->native_handle(), &counter, sizeof counter);
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
            std::uint64_t ud = cqe->user_data;
            int res = cqe->res;
            io_uring_cqe_seen(&ring_, cqe);
            if (ud == ignored_user_data) continue;
            auto it = ops_.find(ud);
            if (it == ops_.end()) continue;
            std::error_code ec;
            if (res == -ECANCELED) ec = asio::error::operation_aborted;
            else if (res < 0) ec = sys::errno_code(-res);
            it->second->complete(ec, ex_);
            ops_.erase(it);
        }
    }

    std::mutex mu_;
    io_uring ring_{};
    bool ring_open_ = false;
    std::error_code ring_error_;
    std::optional<asio::posix::stream_descriptor> efd_;
    asio::any_io_executor ex_;
    bool armed_ = false;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<waitid_op>> ops_;
};

asio::execution_context::id waitid_service::id;

}  // namespace

bool uring_waitid_supported() noexcept {
    static const bool supported = probe_waitid();
    return supported;
}

namespace detail {

asio::awaitable<waitid_outcome> uring_waitid(asio::any_io_executor ex, int pidfd) {
    auto& svc = asio::use_service<waitid_service>(asio::query(ex, asio::execution::context));
    auto [ec, info] = co_await asio::async_initiate<decltype(use_tuple),
                                                    void(std::error_code, siginfo_t)>(
        [&svc, ex, pidfd](auto handler) { svc.start(std::move(handler), ex, pidfd); }, use_tuple);
    co_return waitid_outcome{ec, info};
}

void uring_waitid_start(const asio::any_io_executor& ex, int pidfd, waitid_callback done) {
    auto& svc = asio::use_service<waitid_service>(asio::query(ex, asio::execution::context));
    svc.start([d = std::move(done)](std::error_code ec, const siginfo_t& si) { d(ec, si); }, ex, pidfd);
}

std::size_t uring_waitid_pending(const asio::any_io_executor& ex) {
    auto& ctx = asio::query(ex, asio::execution::context);
    if (!asio::has_service<waitid_service>(ctx)) return 0;
    return asio::use_service<waitid_service>(ctx).pending();
}

}  // namespace detail

#endif

}  // namespace drover
