// own_table: spawner threads with a descriptor table of their own, so that what clone3 copies
// for a spawn does not grow with the caller's descriptors (spawn_table in spawn_threads.hpp).
//
// Why a thread and not a separate spawner process: on the posix_spawn path (CLONE_VM) clone3
// copies no memory, only the descriptor table; a thread that unshares its table gets that
// saving and keeps the plan, the spec and the id maps' writer in shared memory, with no
// protocol to serialize a spec over. The caller's descriptors a spawn names are copied in
// with pidfd_getfd (allowed within one thread group); the child's pidfd and pipe ends go back
// over a SOCK_SEQPACKET socket (SCM_RIGHTS), one message per launch, taken by the caller's
// thread when its launch is back.
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <pthread.h>

#include "away.hpp"
#include "drover/process/spawn_threads.hpp"
#include "drover/spawn/id_pool.hpp"
#include "drover/sys/syscalls.hpp"

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

namespace drover {

namespace detail {

namespace {

// Which of the child's descriptors a message carries, in this order.
enum ship_bit : unsigned {
    ship_pidfd = 1,
    ship_report = 2,
    ship_stdin = 4,
    ship_stdout = 8,
    ship_stderr = 16
};
constexpr int ship_max = 5;

struct ship_header {
    std::uint64_t id = 0;
    std::int32_t pid = -1;
    std::uint32_t mask = 0;
};

sys::unique_fd* ship_slot(launched_child& c, int i) {
    sys::unique_fd* slots[ship_max] = {&c.pidfd, &c.report, &c.stdin_pipe, &c.stdout_pipe,
                                       &c.stderr_pipe};
    return slots[i];
}

std::atomic<spawn_table>& table_setting() {
    static std::atomic<spawn_table> t = [] {
        spawn_table v = spawn_table::automatic;
        const char* env = std::getenv("DROVER_SPAWN_TABLE");
        const char* why = nullptr;
        if (env && *env && !parse_spawn_table(env, v, &why))
            v = spawn_table::automatic;  // the CLI refuses it first
        return v;
    }();
    return t;
}

std::atomic<int> table_extent{0};
std::atomic<std::size_t> own_spawns{0};
std::atomic<std::uint64_t> next_ship_id{1};

}  // namespace

// One spawner's socket: the caller's end in the process's table, the spawner's end in its own.
struct own_channel {
    int caller_end = -1;
    int spawner_end = -1;  // as the spawner's table numbers it
    int self_pidfd = -1;   // the spawner's pidfd of this process (for pidfd_getfd)
    std::mutex mu;         // one collector at a time
    struct arrived {
        ship_header head;
        int fds[ship_max];
        int count = 0;
        int err = 0;  // EMFILE: some of its descriptors did not fit the caller's table
    };
    // Messages a collector read for another launch of this channel, until that one comes.
    std::unordered_map<std::uint64_t, arrived> early;
};

namespace {

// Hands finished launches to their callers' executors from a thread of the process's table:
// posting wakes the caller's loop through its descriptors (an io_uring's or an eventfd), whose
// numbers mean nothing, or something else, in a spawner's own table.
class poster {
  public:
    // Made on a thread of the process's table (the first spawner's maker); never destroyed.
    static poster* instance() noexcept {
        static poster* p = []() -> poster* {
            try {
                return new poster;
            } catch (...) {
                return nullptr;
            }
        }();
        return p;
    }

    void push(std::shared_ptr<away_launch> job) {
        {
            std::lock_guard lock(mu_);
            queue_.push_back(std::move(job));
        }
        work_.notify_one();
    }

  private:
    poster() {
        std::thread([this] { loop(); }).detach();
    }

    void loop() {
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        for (;;) {
            std::deque<std::shared_ptr<away_launch>> batch;
            {
                std::unique_lock lock(mu_);
                work_.wait(lock, [this] { return !queue_.empty(); });
                batch.swap(queue_);
            }
            for (auto& job : batch) {
                away_service* s = job->service;
                finish_away(s, std::move(job));
            }
        }
    }

    std::mutex mu_;
    std::condition_variable work_;
    std::deque<std::shared_ptr<away_launch>> queue_;
};

// The spawner threads: made on demand up to spawn_threads() - 1 (at least 1), never ended.
class own_pool {
  public:
    static own_pool& instance() {
        static auto* p = new own_pool;  // never destroyed: threads may still run at exit
        return *p;
    }

    // Queues `job`; false if no spawner thread could be made (then the caller spawns).
    bool push(std::shared_ptr<away_launch>& job) {
        std::lock_guard lock(mu_);
        unsigned limit = std::max(1U, spawn_threads() - 1);
        // A new thread waits for its table under the lock; it takes the lock only after that.
        if (queue_.size() >= idle_ && threads_ < limit && start()) {
            ++threads_;
            ++idle_;
        }
        if (threads_ == 0) return false;
        queue_.push_back(std::move(job));
        work_.notify_one();
        return true;
    }

  private:
    // Makes one spawner; waits until it has its own table (so the socket's ends can be split).
    bool start() {
        if (!poster::instance()) return false;
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return false;
        // Room for many launches' messages waiting for their callers (root may exceed wmem_max).
        int size = 8 << 20;
        if (::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
            (void)::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        auto* ch = new own_channel;
        ch->caller_end = sv[0];
        ch->spawner_end = sv[1];
        auto ready = std::make_shared<std::promise<bool>>();
        auto got = ready->get_future();
        try {
            std::thread([this, ch, ready] { loop(ch, *ready); }).detach();
        } catch (...) {
            ::close(sv[0]);
            ::close(sv[1]);
            delete ch;
            return false;
        }
        bool ok = got.get();
        ::close(sv[1]);  // the process's copy; the spawner has its own
        if (!ok) {
            ::close(sv[0]);
            delete ch;  // the thread has ended without touching it again
        }
        return ok;
    }

    // In the new thread: a table of its own holding 0-2, its socket end and its pidfd.
    static bool set_up(own_channel* ch) {
        if (::unshare(CLONE_FILES) != 0) return false;
        // Everything above 2 but the socket goes, and the socket moves to the lowest number
        // above 2 (also when it is below: a process started with its stdio closed may have
        // it there, where a child's inherited stream is put).
        int keep = ch->spawner_end;
        if (keep > 3) (void)::syscall(SYS_close_range, 3U, static_cast<unsigned>(keep - 1), 0U);
        (void)::syscall(SYS_close_range, static_cast<unsigned>(std::max(keep + 1, 3)), ~0U, 0U);
        if (keep != 3) {
            int low = ::fcntl(keep, F_DUPFD_CLOEXEC, 3);
            if (low < 0) return false;
            ::close(keep);
            ch->spawner_end = low;
        }
        auto self = sys::pidfd_open(::getpid());
        if (!self) return false;
        int pidfd = self->release();
        if (pidfd < 3) {  // the same reason
            int high = ::fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
            ::close(pidfd);
            if (high < 0) return false;
            pidfd = high;
        }
        ch->self_pidfd = pidfd;
        // The id maps' writer must see this table's pipes.
        return own_map_writer();
    }

    void loop(own_channel* ch, std::promise<bool>& ready) {
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        bool ok = set_up(ch);
        ready.set_value(ok);
        if (!ok) return;
        for (;;) {
            std::shared_ptr<away_launch> job;
            {
                std::unique_lock lock(mu_);
                work_.wait(lock, [this] { return !queue_.empty(); });
                job = std::move(queue_.front());
                queue_.pop_front();
                --idle_;
            }
            job->channel = ch;
            run_own(*ch, *job);
            own_spawns.fetch_add(1, std::memory_order_relaxed);
            {
                std::lock_guard lock(mu_);
                ++idle_;
            }
            poster::instance()->push(std::move(job));
        }
    }

    // Makes the thread's 0-2 what the caller's are, for the streams the child inherits.
    static void sync_inherited(const own_channel& ch, const spawn_spec& s) {
        const stdio* streams[3] = {&s.in, &s.out, &s.err};
        for (int i = 0; i < 3; ++i) {
            if (streams[i]->how != stdio::kind::inherit) continue;
            int got = static_cast<int>(::syscall(SYS_pidfd_getfd, ch.self_pidfd, i, 0));
            if (got >= 0) {
                if (got != i) {
                    (void)::dup3(got, i, 0);
                    ::close(got);
                } else {
                    (void)::fcntl(i, F_SETFD, 0);
                }
            } else if (errno == EBADF) {
                ::close(i);  // the caller has none: neither does the child
            }
        }
    }

    static void run_own(own_channel& ch, away_launch& j) {
        sync_inherited(ch, j.spec->spec());
        std::vector<launch_extras::fd_rename> renames;
        renames.reserve(j.imports.size());
        auto close_imports = [&renames] {
            for (auto& r : renames) ::close(r.to);
        };
        for (int fd : j.imports) {
            int got = static_cast<int>(::syscall(SYS_pidfd_getfd, ch.self_pidfd, fd, 0));
            if (got < 0) {
                int err = errno;
                close_imports();
                j.ok = false;
                j.failure = spawn_failure{child_stage::prepare,
                                          sys::errno_code(err),
                                          "copying the caller's descriptor " + std::to_string(fd) +
                                              " into a spawner's own table (pidfd_getfd)",
                                          {}};
                return;
            }
            renames.push_back({fd, got});
        }
        j.extras.renames = renames.data();
        j.extras.rename_count = static_cast<int>(renames.size());
        run_launch(j);
        close_imports();
        if (j.concluded) j.child.report.reset();  // read and judged here: nothing to send
        j.extras.renames = nullptr;
        j.extras.rename_count = 0;
        if (j.ok) ship(ch, j);
    }

    // Sends the child's descriptors to the caller's end and closes this table's copies.
    static void ship(own_channel& ch, away_launch& j) {
        ship_header head;
        head.id = next_ship_id.fetch_add(1, std::memory_order_relaxed);
        head.pid = j.child.pid;
        int fds[ship_max];
        int count = 0;
        for (int i = 0; i < ship_max; ++i) {
            if (ship_slot(j.child, i)->get() < 0) continue;
            head.mask |= 1U << i;
            fds[count++] = ship_slot(j.child, i)->get();
        }
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * ship_max)] = {};
        iovec iov{&head, sizeof head};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * count);
        std::memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
        ssize_t n;
        for (int tries = 0;; ++tries) {
            n = ::sendmsg(ch.spawner_end, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n >= 0 || (errno != EAGAIN && errno != EINTR) || tries >= 100) break;
            // Callers slow to take what was sent: wait a little for room, not forever (a
            // loop being destroyed takes its launches' messages only once they are all back).
            pollfd p{ch.spawner_end, POLLOUT, 0};
            (void)::poll(&p, 1, 10);
        }
        if (n < 0) {
            int err = errno;
            (void)sys::pidfd_send_signal(j.child.pidfd.get(), SIGKILL);
            siginfo_t info;
            (void)sys::waitid_pidfd(j.child.pidfd.get(), info, WEXITED);
            j.child = launched_child{};
            j.ok = false;
            j.failure =
                spawn_failure{child_stage::report,
                              sys::errno_code(err),
                              "handing the child's descriptors back from a spawner's own table",
                              {}};
            return;
        }
        for (int i = 0; i < ship_max; ++i) ship_slot(j.child, i)->reset();
        j.ship_id = head.id;
        j.shipped = head.mask;
    }

    std::mutex mu_;
    std::condition_variable work_;
    std::deque<std::shared_ptr<away_launch>> queue_;
    unsigned threads_ = 0;
    unsigned idle_ = 0;
};

// Reads one message from the caller's end; false if there is none or it came without its
// descriptors (the caller's table full: the kernel closes what did not fit).
bool receive(own_channel& ch, own_channel::arrived& a, int& err) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * ship_max)] = {};
    iovec iov{&a.head, sizeof a.head};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(ch.caller_end, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof a.head)) {
        err = n < 0 ? errno : EPROTO;
        return false;
    }
    a.count = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k && a.count < ship_max; ++i)
            std::memcpy(&a.fds[a.count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if ((msg.msg_flags & MSG_CTRUNC) || a.count != __builtin_popcount(a.head.mask)) a.err = EMFILE;
    return true;
}

}  // namespace

bool collect_shipped(away_launch& j) noexcept {
    if (!j.shipped) return true;
    own_channel& ch = *j.channel;
    own_channel::arrived mine;
    int err = 0;
    bool found = false;
    {
        std::lock_guard lock(ch.mu);
        if (auto it = ch.early.find(j.ship_id); it != ch.early.end()) {
            mine = it->second;
            err = mine.err;
            ch.early.erase(it);
            found = true;
        }
        while (!found) {
            own_channel::arrived a;
            int e = 0;
            if (!receive(ch, a, e)) {
                err = e;
                break;
            }
            if (a.head.id == j.ship_id) {
                mine = a;
                err = a.err;
                found = true;
            } else {
                try {
                    ch.early.emplace(a.head.id, a);
                } catch (...) {  // no memory to keep it: that launch fails when it looks
                    for (int i = 0; i < a.count; ++i) ::close(a.fds[i]);
                }
            }
        }
    }
    pid_t pid = j.child.pid;
    unsigned mask = j.shipped;
    j.shipped = 0;
    if (found && err == 0) {
        int k = 0;
        int top = 0;
        for (int i = 0; i < ship_max; ++i) {
            if (!(mask & (1U << i))) continue;
            ship_slot(j.child, i)->reset(mine.fds[k]);
            top = std::max(top, mine.fds[k]);
            ++k;
        }
        note_table_extent(top);
        return true;
    }
    // The child cannot be handed over: end it. It is ours and not yet reaped, so its pid is
    // still its own.
    if (found)
        for (int i = 0; i < mine.count; ++i) ::close(mine.fds[i]);
    if (auto pfd = sys::pidfd_open(pid)) {
        (void)sys::pidfd_send_signal(pfd->get(), SIGKILL);
        siginfo_t info;
        (void)sys::waitid_pidfd(pfd->get(), info, WEXITED);
    } else {
        ::kill(pid, SIGKILL);
        siginfo_t info;
        (void)::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED);
    }
    j.child = launched_child{};
    j.ok = false;
    j.failure = spawn_failure{child_stage::report,
                              sys::errno_code(err ? err : EPROTO),
                              "taking the child's descriptors from a spawner's own table",
                              {}};
    return false;
}

void note_table_extent(int fd) noexcept {
    table_extent.store(fd, std::memory_order_relaxed);
}

namespace {

// Whether the calling thread's descriptor table is the process's (its leader's), which is
// where pidfd_getfd copies from. A thread that unshared its table (or a kernel without kcmp)
// keeps its spawns on its own thread. Asked once per thread.
bool caller_table_is_the_process() noexcept {
    static thread_local int known = -1;
    if (known < 0) {
        long rc = ::syscall(SYS_kcmp, ::getpid(), ::gettid(), KCMP_FILES, 0UL, 0UL);
        known = rc == 0 ? 1 : 0;
    }
    return known == 1;
}

}  // namespace

bool should_use_own_table(const prepared_spawn& p, launch_extras& extras,
                          std::vector<int>& imports) {
    spawn_table t = table_setting().load(std::memory_order_relaxed);
    if (t == spawn_table::shared) return false;
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer keys descriptors by number, process-wide: a spawner's fd 11 and the
    // caller's fd 11 (different files) look to it like one descriptor created in one thread
    // and read in another without a lock, a false race it reports even for a thread it is told
    // to ignore. So under TSan every spawn uses the process's table.
    (void)p;
    (void)extras;
    (void)imports;
    return false;
#endif
    if (t == spawn_table::automatic &&
        table_extent.load(std::memory_order_relaxed) < spawn_table_threshold)
        return false;
    if (!caller_table_is_the_process()) return false;
    auto fds = caller_fds(p, extras);
    if (!fds) return false;
    if (needs_id_lease(p) && !extras.ids) {
        // The lease's lock file must live in the caller's table.
        auto lease = id_pool::global().acquire();
        if (!lease) return false;  // the caller's own launch says why
        extras.ids = std::make_shared<id_lease>(std::move(*lease));
    }
    imports = std::move(*fds);
    return true;
}

void hand_off_own(const asio::any_io_executor& ex, std::shared_ptr<away_launch> job) {
    start_away(ex, *job);
    if (!own_pool::instance().push(job)) {
        // No spawner thread: the caller's thread does it, in the caller's table, and the
        // completion is posted as a spawner's would be.
        job->imports.clear();
        run_launch(*job);
        away_service* s = job->service;
        finish_away(s, std::move(job));
    }
}

std::size_t own_table_spawns() noexcept {
    return own_spawns.load(std::memory_order_relaxed);
}

}  // namespace detail

void set_spawn_table(spawn_table t) noexcept {
    detail::table_setting().store(t, std::memory_order_relaxed);
}

spawn_table spawn_table_setting() noexcept {
    return detail::table_setting().load(std::memory_order_relaxed);
}

bool parse_spawn_table(const char* text, spawn_table& out, const char** why) noexcept {
    if (std::strcmp(text, "shared") == 0)
        out = spawn_table::shared;
    else if (std::strcmp(text, "own") == 0)
        out = spawn_table::own;
    else if (std::strcmp(text, "auto") == 0)
        out = spawn_table::automatic;
    else {
        if (why) *why = "expected shared, own or auto";
        return false;
    }
    return true;
}

}  // namespace drover
