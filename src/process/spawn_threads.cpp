// spawn_threads: spawner threads that run clone3 for a burst of spawns, and the service that
// keeps a destroyed io_context from being posted to.
#include "drover/process/spawn_threads.hpp"

#include <sched.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>

#include "away.hpp"
#include "drover/sys/syscalls.hpp"

namespace drover {

namespace detail {

// Per io_context: how many of its spawns are away, and whether it is being destroyed. Its
// shutdown() runs before the context's queued handlers are destroyed: it waits for the
// launches away (bounded: a launch ends once its child has exec'd or failed) and then drops
// their completions unrun, so no spawner thread ever posts to a destroyed context.
class away_service final : public asio::execution_context::service {
public:
    using key_type = away_service;
    static asio::execution_context::id id;

    explicit away_service(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

    void start() {
        std::lock_guard lock(mu_);
        ++away_;
    }

    // The spawner is done with `job`: its completion goes to the caller, or is dropped.
    void finish(std::shared_ptr<away_launch> job) {
        std::lock_guard lock(mu_);
        if (!shut_) {
            std::unique_ptr<away_resume> r = std::move(job->resume);
            job.reset();  // the caller's frame holds its own reference
            r->post();
        } else {
            dropped_.push_back(std::move(job));
        }
        --away_;
        idle_.notify_all();
    }

private:
    void shutdown() override {
        std::vector<std::shared_ptr<away_launch>> dropped;
        {
            std::unique_lock lock(mu_);
            shut_ = true;
            idle_.wait(lock, [this] { return away_ == 0; });
            dropped.swap(dropped_);
        }
        // Destroying a completion destroys the coroutine frame waiting on it; the launch
        // itself (and its child, killed and reaped) goes with the last reference.
        for (auto& job : dropped) job->resume.reset();
    }

    std::mutex mu_;
    std::condition_variable idle_;
    int away_ = 0;
    bool shut_ = false;
    std::vector<std::shared_ptr<away_launch>> dropped_;
};

asio::execution_context::id away_service::id;

away_launch::~away_launch() {
    // Its descriptors still on their way from a spawner's own table: taken (or the child
    // ended) first. The last reference goes on a thread of the process's table.
    if (shipped) (void)collect_shipped(*this);
    if (!child.pidfd) return;
    (void)sys::pidfd_send_signal(child.pidfd.get(), SIGKILL);
    siginfo_t info;
    (void)sys::waitid_pidfd(child.pidfd.get(), info, WEXITED);
}

namespace {

std::atomic<long> live_processes{0};
std::atomic<long> spawns_under_way{0};
std::atomic<std::size_t> handed_off{0}, inline_spawns{0};

// The configured count; the environment's at first use.
std::atomic<unsigned>& configured() {
    static std::atomic<unsigned> n = [] {
        const char* env = std::getenv("DROVER_SPAWN_THREADS");
        if (!env || !*env) return available_cpus();
        const char* why = nullptr;
        unsigned v = parse_spawn_threads(env, &why);
        return v == 0 ? available_cpus() : v;  // the CLI refuses a bad value with its own error first
    }();
    return n;
}

// The spawner threads: created on demand, never ended (a child spawned with die_with_parent
// is tied to the thread that cloned it), all signals blocked (the process's business).
class spawner_pool {
public:
    static spawner_pool& instance() {
        static auto* p = new spawner_pool;  // never destroyed: threads may still run at exit
        return *p;
    }

    // Takes a spawner for one launch: an idle one, a new one while fewer than `limit` exist,
    // or else a place in the queue of the busy ones. false only if no spawner thread exists
    // and none can be made (then the caller's thread spawns).
    bool reserve(unsigned limit) noexcept {
        std::lock_guard lock(mu_);
        if (threads_ <= busy_ && threads_ < limit) {
            try {
                std::thread([this] { loop(); }).detach();
                ++threads_;
            } catch (...) {
                if (threads_ == 0) return false;
            }
        }
        ++busy_;
        return true;
    }

    void push(std::shared_ptr<away_launch> job) {
        {
            std::lock_guard lock(mu_);
            queue_.push_back(std::move(job));
        }
        work_.notify_one();
    }

private:
    void loop() {
        sigset_t all;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
        for (;;) {
            std::shared_ptr<away_launch> job;
            {
                std::unique_lock lock(mu_);
                work_.wait(lock, [this] { return !queue_.empty(); });
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            run_launch(*job);
            away_service* s = job->service;
            {
                std::lock_guard lock(mu_);
                --busy_;
            }
            s->finish(std::move(job));
        }
    }

    std::mutex mu_;
    std::condition_variable work_;
    std::deque<std::shared_ptr<away_launch>> queue_;
    unsigned threads_ = 0;
    unsigned busy_ = 0;  // launches reserved and not finished: running or queued
};

}  // namespace

void run_launch(away_launch& j) noexcept {
    try {
        j.ok = launch(*j.spec, j.child, j.failure, j.extras);
        if (j.ok && j.child.report_complete) {
            // posix_spawn-style: the child's setup is over; judging its report here saves
            // the caller's loop the work.
            std::byte buf[report_max_size];
            std::size_t got = read_report(j.child, buf);
            j.ok = conclude(*j.spec, j.child, std::span<const std::byte>(buf, got), sys::monotonic_ns(), j.failure);
            j.concluded = true;
        }
    } catch (...) {  // an allocation in launch; its own cleanup has run
        j.ok = false;
        j.failure = spawn_failure{child_stage::prepare, sys::errno_code(ENOMEM), "a spawner thread", {}};
    }
}

void note_process_born() noexcept { live_processes.fetch_add(1, std::memory_order_relaxed); }
void note_process_gone() noexcept { live_processes.fetch_sub(1, std::memory_order_relaxed); }
spawn_under_way::spawn_under_way() noexcept { spawns_under_way.fetch_add(1, std::memory_order_relaxed); }
spawn_under_way::~spawn_under_way() { spawns_under_way.fetch_sub(1, std::memory_order_relaxed); }

bool should_hand_off(unsigned threads) noexcept {
    unsigned n = threads ? threads : configured().load(std::memory_order_relaxed);
    if (n <= 1) return false;
    // A burst: at least as many other children alive or being spawned as there are threads
    // to spawn. Then the children can fill the CPUs the threads are sized to, and the
    // caller's thread, held in each vfork-style clone3 while competing with them, falls
    // behind. Below that a CPU is free for the inline spawn, and a hand-off only adds two
    // thread wake-ups (2 CPUs, concurrency 2: 0.86-0.89 of the floor inline, 0.65-0.80
    // handed off; docs/scale.md).
    const long others = live_processes.load(std::memory_order_relaxed) + spawns_under_way.load(std::memory_order_relaxed);
    const bool burst = others >= static_cast<long>(n);
    // In a burst every spawn goes away, queued behind busy spawners if need be: the caller's
    // loop is then never held in a clone3 while exits wait for it (concurrency 64 on 2 CPUs:
    // exit→callback p99 7-8 ms queued, 105-165 ms when a busy spawner sent the spawn back
    // inline; docs/scale.md).
    if (!burst || !spawner_pool::instance().reserve(n - 1)) {
        inline_spawns.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    handed_off.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void start_away(const asio::any_io_executor& ex, away_launch& job) {
    auto& ctx = asio::query(ex, asio::execution::context);
    job.service = &asio::use_service<away_service>(ctx);
    job.service->start();
}

void finish_away(away_service* s, std::shared_ptr<away_launch> job) { s->finish(std::move(job)); }

void hand_off(const asio::any_io_executor& ex, std::shared_ptr<away_launch> job) {
    start_away(ex, *job);
    spawner_pool::instance().push(std::move(job));
}

}  // namespace detail

unsigned parse_spawn_threads(const char* text, const char** why) noexcept {
    if (std::strcmp(text, "auto") == 0) return available_cpus();
    unsigned v = 0;
    const char* end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, v);
    if (ec != std::errc{} || p != end || v < 1 || v > 256) {
        if (why) *why = "expected auto or a whole number from 1 to 256";
        return 0;
    }
    return v;
}

void set_spawn_threads(unsigned n) {
    if (n < 1 || n > 256)
        throw std::invalid_argument("spawn threads: " + std::to_string(n) + " is outside 1..256");
    detail::configured().store(n, std::memory_order_relaxed);
}

unsigned spawn_threads() noexcept { return detail::configured().load(std::memory_order_relaxed); }

unsigned available_cpus() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? static_cast<unsigned>(n) : 1;
}

spawn_thread_stats spawn_thread_counters() noexcept {
    return {detail::handed_off.load(std::memory_order_relaxed), detail::inline_spawns.load(std::memory_order_relaxed),
            detail::own_table_spawns()};
}

}  // namespace drover
