// ring_pipe: output pipes as io_uring registered descriptors, read with ring-provided
// buffers; one ring per execution context, its completions announced on an eventfd.
#include "ring_pipe.hpp"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>

#include <asio/execution/context.hpp>
#include <asio/execution_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/query.hpp>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "drover/sys/result.hpp"

#if DROVER_HAVE_LIBURING
#include <liburing.h>

#include "uring_sqe.hpp"
#endif

namespace drover::detail {

#if !DROVER_HAVE_LIBURING

class ring_pipe_service {};
ring_pipe::ring_pipe(const asio::any_io_executor&, sys::unique_fd&, std::error_code& ec) {
    ec = sys::errno_code(ENOSYS);
}
ring_pipe::ring_pipe(ring_pipe&&) noexcept {}
ring_pipe& ring_pipe::operator=(ring_pipe&&) noexcept { return *this; }
void ring_pipe::read(read_callback, bool) {}
void ring_pipe::cancel() {}
void ring_pipe::close() noexcept {}
bool ring_pipes_supported() noexcept { return false; }
std::size_t ring_pipe_room(const asio::any_io_executor&, bool) { return 0; }

#else

namespace {

constexpr unsigned buffer_count = 256;        // a power of two (the buffer ring's size)
constexpr unsigned buffer_size = 16 * 1024;   // what one read takes at most
constexpr std::uint16_t buffer_group = 0;
constexpr std::uint64_t ignored_user_data = 0;  // cancellations: their completions carry nothing

// The table: one slot per registered read end, sized by RLIMIT_NOFILE when the ring is made
// (the kernel refuses a larger one), at most the kernel's own cap.
std::size_t table_size() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
    constexpr std::size_t kernel_max = 1u << 20;  // IORING_MAX_FIXED_FILES
    return lim.rlim_cur == RLIM_INFINITY ? kernel_max : std::min<std::size_t>(lim.rlim_cur, kernel_max);
}

}  // namespace

class ring_pipe_service : public asio::execution_context::service {
public:
    static asio::execution_context::id id;

    explicit ring_pipe_service(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}
    ~ring_pipe_service() override { close_ring(); }

    std::error_code add(const asio::any_io_executor& ex, int fd, unsigned& slot) {
        std::lock_guard lock(mu_);
        if (std::error_code ec = open_ring(ex)) return ec;
        if (free_.empty()) return sys::errno_code(EMFILE);
        unsigned s = free_.back();
        if (int r = io_uring_register_files_update(&ring_, s, &fd, 1); r < 0) return sys::errno_code(-r);
        free_.pop_back();
        slots_[s] = slot_state{};
        slots_[s].used = true;
        slot = s;
        return {};
    }

    void read(unsigned s, ring_pipe::read_callback done, bool nowait) {
        std::unique_lock lock(mu_);
        if (!open_ || s >= slots_.size()) return;  // the context is shutting down
        slot_state& st = slots_[s];
        st.cb = std::move(done);
        st.reading = true;
        st.nowait = nowait;
        ++pending_;
        if (submit_read(s)) return arm();
        lock.unlock();
        // The ring refused the request: an error for this read, on the loop, not inside it.
        asio::post(ex_, [this, s] { complete_failed(s); });
    }

    void cancel(unsigned s) {
        std::unique_lock lock(mu_);
        if (!open_ || s >= slots_.size()) return;
        slot_state& st = slots_[s];
        if (!st.reading) return;
        if (st.starved) {
            // Not in the kernel: nothing to cancel there; the callback is told on the loop.
            std::erase(starved_, s);
            st.starved = false;
            st.failed = ECANCELED;
            lock.unlock();
            asio::post(ex_, [this, s] { complete_failed(s); });
            return;
        }
        submit_cancel(st.user_data);
    }

    void release(unsigned s) noexcept {
        std::lock_guard lock(mu_);
        if (!open_ || s >= slots_.size()) return;  // shut down: closing the ring closed it
        slot_state& st = slots_[s];
        st.cb = nullptr;
        if (st.reading && !st.starved && st.failed == 0) {
            // The file goes once the kernel has given the read back.
            st.released = true;
            submit_cancel(st.user_data);
            return;
        }
        if (st.starved) std::erase(starved_, s);
        if (st.reading) --pending_;
        unregister(s);
    }

    std::size_t room(const asio::any_io_executor& ex, bool open) {
        std::lock_guard lock(mu_);
        if (!open_ && !open) return error_ ? 0 : table_size();
        if (open_ring(ex)) return 0;
        return free_.size();
    }

private:
    struct slot_state {
        bool used = false;
        bool reading = false;   // a read was asked for and its callback not yet run
        bool starved = false;   // waiting for a free buffer (the kernel said ENOBUFS)
        bool released = false;  // the owner is gone; unregister when the read comes back
        bool nowait = false;    // the read asked for RWF_NOWAIT
        int failed = 0;         // errno for a read that never reached the kernel
        std::uint32_t gen = 0;
        std::uint64_t user_data = 0;
        ring_pipe::read_callback cb;
    };

    void shutdown() override {
        std::vector<slot_state> slots;
        {
            std::lock_guard lock(mu_);
            close_ring();  // cancels the kernel's requests before their buffers go
            slots.swap(slots_);
        }
        // Callbacks destroyed unrun, as Asio's own services do.
    }

    std::error_code open_ring(const asio::any_io_executor& ex) {
        if (open_) return {};
        if (error_) return error_;
        io_uring_params params{};
        params.flags = IORING_SETUP_CQSIZE;
        params.cq_entries = 8192;
        if (int r = io_uring_queue_init_params(256, &ring_, &params); r < 0) return error_ = sys::errno_code(-r);
        auto fail = [&](int e) {
            io_uring_queue_exit(&ring_);
            if (bufs_) ::munmap(bufs_, buffer_area());
            bufs_ = nullptr;
            return error_ = sys::errno_code(e);
        };
        std::size_t n = table_size();
        if (int r = io_uring_register_files_sparse(&ring_, static_cast<unsigned>(n)); r < 0) return fail(-r);
        // The buffer ring's entries and the buffers in one mapping; pages are touched only as
        // data arrives.
        void* area = ::mmap(nullptr, buffer_area(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area == MAP_FAILED) return fail(errno);
        bufs_ = static_cast<char*>(area);
        br_ = reinterpret_cast<io_uring_buf_ring*>(bufs_ + std::size_t{buffer_count} * buffer_size);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
        reg.ring_entries = buffer_count;
        reg.bgid = buffer_group;
        if (int r = io_uring_register_buf_ring(&ring_, &reg, 0); r < 0) return fail(-r);
        io_uring_buf_ring_init(br_);
        for (unsigned b = 0; b < buffer_count; ++b)
            io_uring_buf_ring_add(br_, bufs_ + std::size_t{b} * buffer_size, buffer_size, static_cast<unsigned short>(b),
                                  io_uring_buf_ring_mask(buffer_count), static_cast<int>(b));
        io_uring_buf_ring_advance(br_, buffer_count);
        sys::unique_fd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!efd) return fail(errno);
        if (int r = io_uring_register_eventfd(&ring_, efd.get()); r < 0) return fail(-r);
        ex_ = ex;
        efd_.emplace(ex, efd.release());
        slots_.assign(n, slot_state{});
        free_.clear();
        for (std::size_t i = n; i-- > 0;) free_.push_back(static_cast<unsigned>(i));
        open_ = true;
        return {};
    }

    static std::size_t buffer_area() {
        return std::size_t{buffer_count} * buffer_size + std::size_t{buffer_count} * sizeof(io_uring_buf);
    }

    void close_ring() {
        if (!open_) return;
        io_uring_queue_exit(&ring_);
        efd_.reset();
        ::munmap(bufs_, buffer_area());
        bufs_ = nullptr;
        open_ = false;
    }

    bool submit_read(unsigned s) {
        slot_state& st = slots_[s];
        io_uring_sqe* sqe = next_sqe(ring_);
        if (!sqe) {
            st.failed = EBUSY;
            return false;
        }
        io_uring_prep_read(sqe, static_cast<int>(s), nullptr, buffer_size, static_cast<std::uint64_t>(-1));
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
        if (st.nowait) sqe->rw_flags = RWF_NOWAIT;
        sqe->buf_group = buffer_group;
        st.user_data = (std::uint64_t{++st.gen} << 32) | s;
        sqe->user_data = st.user_data;
        if (int r = io_uring_submit(&ring_); r < 0) {
            // The SQE may still sit in the ring: make it a no-op whose completion is ignored.
            io_uring_prep_nop(sqe);
            sqe->user_data = ignored_user_data;
            st.failed = -r;
            return false;
        }
        return true;
    }

    void submit_cancel(std::uint64_t user_data) {
        io_uring_sqe* sqe = next_sqe(ring_);
        if (!sqe) return;  // the read goes on until data or EOF
        io_uring_prep_cancel64(sqe, user_data, 0);
        sqe->user_data = ignored_user_data;
        io_uring_submit(&ring_);
    }

    void unregister(unsigned s) noexcept {
        int none = -1;
        io_uring_register_files_update(&ring_, s, &none, 1);  // closes the file
        slots_[s] = slot_state{};
        free_.push_back(s);
    }

    void give_back(unsigned bid) {
        io_uring_buf_ring_add(br_, bufs_ + std::size_t{bid} * buffer_size, buffer_size, static_cast<unsigned short>(bid),
                              io_uring_buf_ring_mask(buffer_count), 0);
        io_uring_buf_ring_advance(br_, 1);
        retry_starved(1);
    }

    // Reads the kernel turned away for want of a buffer go again (a buffer came back, or
    // every completion holding one has been handled).
    void retry_starved(std::size_t most = static_cast<std::size_t>(-1)) {
        while (!starved_.empty() && most > 0) {
            unsigned s = starved_.front();
            starved_.pop_front();
            slots_[s].starved = false;
            if (submit_read(s)) {
                --most;
                continue;
            }
            asio::post(ex_, [this, s] { complete_failed(s); });
        }
    }

    // A read that never reached the kernel (or was cancelled while starved) ends here.
    void complete_failed(unsigned s) {
        std::unique_lock lock(mu_);
        if (!open_ || s >= slots_.size()) return;
        slot_state& st = slots_[s];
        if (!st.reading || st.failed == 0) return;
        int e = std::exchange(st.failed, 0);
        st.reading = false;
        --pending_;
        auto cb = std::move(st.cb);
        lock.unlock();
        if (cb) cb(e == ECANCELED ? std::error_code(asio::error::operation_aborted) : sys::errno_code(e), {});
    }

    // Waits for the eventfd while reads are pending (not longer: a pending wait would keep
    // io_context::run() from returning).
    void arm() {
        if (armed_ || pending_ == 0 || !efd_) return;
        armed_ = true;
        efd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
            {
                std::lock_guard lock(mu_);
                armed_ = false;
                if (ec || !open_) return;
                std::uint64_t counter;
                (void)!::read(efd_->native_handle(), &counter, sizeof counter);
            }
            drain();
            std::lock_guard lock(mu_);
            if (open_) arm();
        });
    }

    // One completion at a time, the lock released around each callback: a callback may read
    // again, cancel, or destroy its ring_pipe.
    void drain() {
        for (;;) {
            std::unique_lock lock(mu_);
            if (!open_) return;
            io_uring_cqe* cqe = nullptr;
            if (io_uring_peek_cqe(&ring_, &cqe) != 0 || !cqe) {
                // The ENOBUFS of a read may come after the completions whose buffers it
                // lacked were handled: no buffer is coming back to retry it then.
                retry_starved();
                return;
            }
            std::uint64_t ud = cqe->user_data;
            int res = cqe->res;
            unsigned flags = cqe->flags;
            io_uring_cqe_seen(&ring_, cqe);
            std::optional<unsigned> bid;
            if (flags & IORING_CQE_F_BUFFER) bid = flags >> IORING_CQE_BUFFER_SHIFT;
            auto s = static_cast<unsigned>(ud & 0xffffffffu);
            if (ud == ignored_user_data || s >= slots_.size() || !slots_[s].reading || slots_[s].user_data != ud) {
                if (bid) give_back(*bid);
                continue;
            }
            slot_state& st = slots_[s];
            if (st.released) {
                if (bid) give_back(*bid);
                --pending_;
                unregister(s);
                continue;
            }
            if (res == -ENOBUFS) {
                st.starved = true;
                starved_.push_back(s);
                continue;
            }
            st.reading = false;
            --pending_;
            auto cb = std::move(st.cb);
            std::error_code ec;
            std::string_view data;
            if (res > 0 && bid) data = {bufs_ + std::size_t{*bid} * buffer_size, static_cast<std::size_t>(res)};
            else if (res == 0) ec = asio::error::eof;
            else if (res == -ECANCELED) ec = asio::error::operation_aborted;
            else if (res < 0) ec = sys::errno_code(-res);
            lock.unlock();
            if (cb) cb(ec, data);
            if (bid) {
                std::lock_guard relock(mu_);
                if (open_) give_back(*bid);
            }
        }
    }

    std::mutex mu_;
    io_uring ring_{};
    bool open_ = false;
    std::error_code error_;
    char* bufs_ = nullptr;
    io_uring_buf_ring* br_ = nullptr;
    std::optional<asio::posix::stream_descriptor> efd_;
    asio::any_io_executor ex_;
    bool armed_ = false;
    std::size_t pending_ = 0;
    std::vector<slot_state> slots_;
    std::vector<unsigned> free_;
    std::deque<unsigned> starved_;
};

asio::execution_context::id ring_pipe_service::id;

namespace {

ring_pipe_service& service_of(const asio::any_io_executor& ex) {
    return asio::use_service<ring_pipe_service>(asio::query(ex, asio::execution::context));
}

bool probe() noexcept {
    io_uring ring{};
    if (io_uring_queue_init(4, &ring, 0) < 0) return false;
    bool ok = io_uring_register_files_sparse(&ring, 4) == 0;
    if (ok) {
        // Registered buffer rings (5.19): the buffer list needs page alignment.
        void* area = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area == MAP_FAILED) {
            ok = false;
        } else {
            io_uring_buf_reg reg{};
            reg.ring_addr = reinterpret_cast<std::uint64_t>(area);
            reg.ring_entries = 4;
            reg.bgid = 1;
            ok = io_uring_register_buf_ring(&ring, &reg, 0) == 0;
            io_uring_queue_exit(&ring);
            ::munmap(area, 4096);
            return ok;
        }
    }
    io_uring_queue_exit(&ring);
    return ok;
}

}  // namespace

ring_pipe::ring_pipe(const asio::any_io_executor& ex, sys::unique_fd& fd, std::error_code& ec) {
    if (!ring_pipes_supported()) {
        ec = sys::errno_code(ENOSYS);
        return;
    }
    ring_pipe_service& svc = service_of(ex);
    unsigned slot = 0;
    ec = svc.add(ex, fd.get(), slot);
    if (ec) return;
    fd.reset();  // the ring holds the file now
    svc_ = &svc;
    slot_ = slot;
}

ring_pipe::ring_pipe(ring_pipe&& o) noexcept : svc_(std::exchange(o.svc_, nullptr)), slot_(o.slot_) {}

ring_pipe& ring_pipe::operator=(ring_pipe&& o) noexcept {
    if (this != &o) {
        close();
        svc_ = std::exchange(o.svc_, nullptr);
        slot_ = o.slot_;
    }
    return *this;
}

void ring_pipe::read(read_callback done, bool nowait) {
    if (!svc_) {
        done(asio::error::bad_descriptor, {});
        return;
    }
    svc_->read(slot_, std::move(done), nowait);
}

void ring_pipe::cancel() {
    if (svc_) svc_->cancel(slot_);
}

void ring_pipe::close() noexcept {
    if (auto* s = std::exchange(svc_, nullptr)) s->release(slot_);
}

bool ring_pipes_supported() noexcept {
    static const bool supported = probe();
    return supported;
}

std::size_t ring_pipe_room(const asio::any_io_executor& ex, bool open) {
    if (!ring_pipes_supported()) return 0;
    return service_of(ex).room(ex, open);
}

#endif

}  // namespace drover::detail
