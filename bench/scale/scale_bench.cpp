// drover_bench_scale: mass-spawning numbers as ratios against raw baselines in the same run —
// spawn rate vs a raw clone3+execve floor, memory per live child, exit-notification latency
// with many children live (pidfd poll vs IORING_OP_WAITID), stdout throughput vs a raw pipe,
// spawn rate with drover's heap grown against the same process with it small.
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/args.hpp"
#include "drover/process/exit_waiter.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/pool.hpp"
#include "drover/process/spawn_threads.hpp"
#include "drover/process/process.hpp"
#include "drover/sys/syscalls.hpp"

using namespace drover;

namespace {

const char* const tiny = DROVER_SCALE_TINY;
constexpr std::uint64_t six_ns = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS |
                                 CLONE_NEWIPC | CLONE_NEWNET;

double secs_since(std::int64_t t0) { return static_cast<double>(sys::monotonic_ns() - t0) / 1e9; }

long rss_kib() {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0;
}

template <class T>
T run_loop(asio::awaitable<T> a) {
    asio::io_context io;
    T out{};
    asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
        if (e) std::rethrow_exception(e);
        out = std::move(v);
    });
    io.run();
    return out;
}

spawn_spec tiny_spec(std::vector<std::string> args, bool namespaces) {
    spawn_spec s;
    s.argv.push_back(tiny);
    for (auto& a : args) s.argv.push_back(a);
    s.in = stdio::null();
    s.out = stdio::null();
    s.err = stdio::null();
    if (namespaces) {
        s.namespaces = namespace_set{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net};
        // The floor below only creates the namespaces: no /proc mount, no loopback.
        s.mount_proc = false;
        s.loopback_up = false;
    }
    return s;
}

// The floor: clone3 + execve of the same static child, `concurrency` alive at once, reaped
// with waitpid; no pipes, no id maps, no event loop.
double floor_rate(std::size_t jobs, std::size_t concurrency, bool namespaces) {
    char* argv[] = {const_cast<char*>(tiny), const_cast<char*>("exit"), const_cast<char*>("0"), nullptr};
    char* envp[] = {nullptr};
    std::int64_t t0 = sys::monotonic_ns();
    std::size_t started = 0, live = 0;
    while (started < jobs || live > 0) {
        while (started < jobs && live < concurrency) {
            clone_args args{};
            args.flags = namespaces ? six_ns : 0;
            args.exit_signal = SIGCHLD;
            long pid = ::syscall(SYS_clone3, &args, sizeof args);
            if (pid == 0) {
                ::execve(tiny, argv, envp);
                ::_exit(127);
            }
            if (pid < 0) break;
            ++started;
            ++live;
        }
        int st;
        if (::waitpid(-1, &st, 0) > 0) --live;
    }
    return static_cast<double>(jobs) / secs_since(t0);
}

double drover_rate(std::size_t jobs, std::size_t concurrency, bool namespaces) {
    prepared_spawn p(tiny_spec({"exit", "0"}, namespaces));
    std::vector<prepared_spawn> specs(jobs, p);
    std::int64_t t0 = sys::monotonic_ns();
    auto results = run_loop([&]() -> asio::awaitable<std::vector<job_result>> {
        co_return co_await run_jobs(co_await asio::this_coro::executor, specs,
                                    {.concurrency = concurrency});
    }());
    double rate = static_cast<double>(jobs) / secs_since(t0);
    std::size_t bad = std::count_if(results.begin(), results.end(), [](auto& r) { return !r.ok(); });
    if (bad) std::printf("  (%zu jobs failed: %s)\n", bad,
                         results.front().failure ? results.front().failure->message().c_str() : "");
    return rate;
}

void bench_spawn_rate(std::size_t base_jobs) {
    std::printf("\n== spawn rate (exec of a static child), drover pool vs raw clone3 floor ==\n");
    std::printf("%-12s %6s %8s %12s %12s %7s\n", "namespaces", "conc", "jobs", "drover/s", "floor/s", "ratio");
    for (bool ns : {false, true}) {
        for (std::size_t c : {1, 8, 64, 256}) {
            std::size_t jobs = std::max(base_jobs, 2 * c);
            double f = floor_rate(jobs, c, ns);
            double d = drover_rate(jobs, c, ns);
            std::printf("%-12s %6zu %8zu %12.0f %12.0f %6.2fx\n", ns ? "6 (u+p+m+U+i+n)" : "none", c,
                        jobs, d, f, d / f);
            std::fflush(stdout);
        }
    }
}

struct live_run {
    double rss_per_child = 0;   // bytes
    double heap_per_child = 0;  // bytes of malloc'd memory in use
    double rss_marginal = 0;    // RSS growth from n/2 to n live, per child (no fixed costs)
    std::vector<double> latencies_us;
    std::vector<double> observed_us;  // child's exit -> exit seen by process::wait()
    std::size_t n = 0;
    // Spawns per second while the first and the last tenth of the children started: the
    // rate with none live against the rate with 90 % of them live.
    double rate_first = 0, rate_last = 0;
    std::size_t ring_jobs = 0;  // children whose output the pool read through the io_uring
};

// How many children of a live run are ended one at a time (5 ms apart, every other child
// still live) to time exit notifications; the rest are ended together afterwards.
std::size_t latency_sample(std::size_t n) { return std::min<std::size_t>(n / 2, 400); }
constexpr auto sample_spacing = std::chrono::milliseconds(5);

// Where the children write the moment they exit: one shared memfd, 8 bytes per child, mapped
// here. Latency is measured from that moment (the child's last instruction) on.
struct exit_stamps {
    int fd = -1;
    std::int64_t* at = nullptr;
    std::size_t n = 0;
    explicit exit_stamps(std::size_t count) : n(count) {
        fd = ::memfd_create("drover-exit-stamps", MFD_CLOEXEC);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(n * 8)) != 0) throw std::runtime_error("memfd");
        void* m = ::mmap(nullptr, n * 8, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) throw std::runtime_error("mmap");
        at = static_cast<std::int64_t*>(m);
    }
    ~exit_stamps() {
        ::munmap(at, n * 8);
        ::close(fd);
    }
    // Volatile: the children write it behind the compiler's back.
    [[nodiscard]] std::int64_t of(std::size_t i) const { return static_cast<const volatile std::int64_t*>(at)[i]; }
};

std::size_t heap_in_use() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

// `n` children of the static helper, all live at once (stdout and stderr piped or not). Once
// all run, a sample of them get SIGTERM one by one; each stamps the moment it exits, and the
// time from there to the job's completion callback is its exit-notification latency.
live_run run_live(std::size_t n, bool piped) {
    live_run out;
    out.n = n;
    const std::size_t sample = latency_sample(n);
    exit_stamps stamps(n);
    std::vector<prepared_spawn> specs;
    specs.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        spawn_spec s = tiny_spec({"wait", std::to_string(i)}, false);
        s.pass_fds = {{3, stamps.fd}};
        if (piped) {
            s.out = stdio::pipe();
            s.err = stdio::pipe();
        }
        specs.emplace_back(std::move(s));
    }
    long before = rss_kib();
    std::size_t heap_before = heap_in_use();
    long all_live = 0, half_live = 0;
    std::size_t heap_all_live = 0;
    std::size_t unstamped = 0, live_now = 0;
    std::vector<std::int64_t> started_at;  // each child's exec report, to time the spawn rate
    run_loop([&]() -> asio::awaitable<int> {
        auto ex = co_await asio::this_coro::executor;
        job_pool pool(ex, {.concurrency = n, .output = {4096, overflow_policy::truncate}});
        for (auto& s : specs) pool.submit(s);
        pool.close();
        auto driver = [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ex);
            // All live, or as many as the pool's descriptor budget lets it start.
            while (pool.stats().started < n && pool.stats().finished == 0 &&
                   pool.throttle().why != throttle_state::kind::fd_budget) {
                if (half_live == 0 && pool.stats().started >= n / 2) half_live = rss_kib();
                t.expires_after(std::chrono::milliseconds(5));
                co_await t.async_wait(asio::use_awaitable);
            }

            all_live = rss_kib();
            heap_all_live = heap_in_use();
            live_now = pool.stats().started;
            // Let the last ones reach their signal handler.
            t.expires_after(std::chrono::milliseconds(200));
            co_await t.async_wait(asio::use_awaitable);
            for (std::size_t i = 0; i < sample; ++i) {
                pool.signal(i, SIGTERM);
                t.expires_after(sample_spacing);
                co_await t.async_wait(asio::use_awaitable);
            }
            pool.signal_all(SIGTERM);
        };
        asio::co_spawn(ex, driver(), asio::detached);
        co_await pool.run([&](job_result r) {
            std::int64_t now = sys::monotonic_ns();
            out.ring_jobs = pool.stats().ring_output_jobs;
            if (r.timings.exec_done > 0) started_at.push_back(r.timings.exec_done);
            if (r.index >= sample) return;
            std::int64_t exited = stamps.of(r.index);
            if (exited == 0) {
                ++unstamped;
                return;
            }
            out.latencies_us.push_back(static_cast<double>(now - exited) / 1e3);
            out.observed_us.push_back(static_cast<double>(r.timings.exit_observed - exited) / 1e3);
        });
        co_return 0;
    }());
    out.n = live_now;
    out.rss_per_child = static_cast<double>(all_live - before) * 1024.0 / static_cast<double>(live_now);
    if (half_live > 0)
        out.rss_marginal = static_cast<double>(all_live - half_live) * 1024.0 / static_cast<double>(live_now - n / 2);
    out.heap_per_child = (static_cast<double>(heap_all_live) - static_cast<double>(heap_before)) / static_cast<double>(live_now);
    if (unstamped) std::printf("  (%zu sampled children left no exit stamp: not counted)\n", unstamped);
    std::sort(started_at.begin(), started_at.end());
    if (const std::size_t tenth = started_at.size() / 10; tenth >= 10) {
        auto rate = [&](std::size_t from) {
            return static_cast<double>(tenth) / (static_cast<double>(started_at[from + tenth] - started_at[from]) / 1e9);
        };
        out.rate_first = rate(0);
        out.rate_last = rate(started_at.size() - 1 - tenth);
    }
    std::sort(out.latencies_us.begin(), out.latencies_us.end());
    std::sort(out.observed_us.begin(), out.observed_us.end());
    return out;
}

// The baseline for exit latency: the same children started with fork+execve, the same sample
// ended one by one, each reaped by a blocking waitid(P_PID): what the machine itself takes
// from a child's exit to its reaping with n children live.
std::vector<double> raw_latencies(std::size_t n) {
    const std::size_t sample = latency_sample(n);
    exit_stamps stamps(n);
    std::vector<pid_t> kids;
    for (std::size_t i = 0; i < n; ++i) {
        std::string slot = std::to_string(i);
        pid_t pid = ::fork();
        if (pid == 0) {
            if (stamps.fd == 3) ::fcntl(3, F_SETFD, 0);
            else ::dup2(stamps.fd, 3);
            ::execl(tiny, tiny, "wait", slot.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        if (pid > 0) kids.push_back(pid);
    }
    ::usleep(200'000);
    std::vector<double> lat;
    for (std::size_t i = 0; i < std::min(sample, kids.size()); ++i) {
        ::kill(kids[i], SIGTERM);
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(kids[i]), &info, WEXITED) != 0) continue;
        std::int64_t now = sys::monotonic_ns();
        if (std::int64_t exited = stamps.of(i); exited > 0) lat.push_back(static_cast<double>(now - exited) / 1e3);
        std::this_thread::sleep_for(sample_spacing);
    }
    for (std::size_t i = sample; i < kids.size(); ++i) ::kill(kids[i], SIGTERM);
    for (std::size_t i = sample; i < kids.size(); ++i) ::waitpid(kids[i], nullptr, 0);
    std::sort(lat.begin(), lat.end());
    return lat;
}

double pct(const std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Runs `f` in a forked child and waits for it: each measurement starts from the same heap (it
// does not shrink after a run, so a second run in one process would understate its growth).
template <class F>
void in_fresh_process(F f) {
    std::fflush(stdout);
    pid_t pid = ::fork();
    if (pid == 0) {
        f();
        std::fflush(stdout);
        ::_exit(0);
    }
    int st;
    if (pid > 0) ::waitpid(pid, &st, 0);
}

void bench_live(const std::vector<std::size_t>& sizes) {
    raise_nofile_limit(1 << 16);
    std::printf("\n== live children: memory per child, exit-notification latency ==\n");
    std::printf("backend %s; latency (child exit -> callback) over up to 400 children ended by SIGTERM 5 ms apart, all others live\n",
                DROVER_SCALE_BACKEND);
    std::printf("RSS/child = RSS growth / live; marginal = RSS growth from half to all live, per child\n");
    std::printf("%-7s %-6s %7s %13s %13s %14s %9s %9s %9s\n", "wait", "stdio", "live", "RSS/child(B)", "marginal(B)",
                "heap/child(B)", "p50(us)", "p99(us)", "max(us)");
    for (std::size_t want : sizes) {
        for (bool piped : {true, false}) {
            std::string limiting;
            // Read ends past what the descriptor table holds go to the pool's io_uring, where
            // the kernel has one: then every child holds one descriptor (its pidfd), and the
            // ring's own table (sized by RLIMIT_NOFILE too) two per child.
            const bool ring = piped && process::output_ring_supported();
            std::size_t fit = read_spawn_capacity().children_that_fit(fds_per_child(piped && !ring ? 2 : 0, false), &limiting);
            if (ring) {
                rlimit lim{};
                ::getrlimit(RLIMIT_NOFILE, &lim);
                std::size_t ring_fit = static_cast<std::size_t>(lim.rlim_cur) / 2;
                if (ring_fit < fit) {
                    fit = ring_fit;
                    limiting = "RLIMIT_NOFILE " + std::to_string(lim.rlim_cur) + " (the io_uring's table: two per child)";
                }
            }
            std::size_t n = std::min(want, fit);
            const char* io = piped ? "piped" : "null";
            if (n < want) std::printf("  (%s: %zu children instead of %zu: %s)\n", io, n, want, limiting.c_str());
            if (n < 2) continue;
            in_fresh_process([&] {
                std::vector<double> raw = raw_latencies(n);
                std::printf("%-7s %-6s %7zu %13s %13s %14s %9.0f %9.0f %9.0f   (fork+execve, blocking waitid loop)\n",
                            "raw", io, n, "-", "-", "-", pct(raw, 0.5), pct(raw, 0.99), pct(raw, 1.0));
            });
            for (exit_wait_method m : {exit_wait_method::poll, exit_wait_method::waitid}) {
                if (m == exit_wait_method::waitid && !uring_waitid_supported()) continue;
                // Spawns copying the process's descriptor table, then (the default) from a
                // spawner's own once the table is large: the ratio shows what the copy costs.
                for (spawn_table t : {spawn_table::shared, spawn_table::automatic}) {
                    in_fresh_process([&] {
                        force_exit_wait_method(m);
                        set_spawn_table(t);
                        auto own_before = spawn_thread_counters().own_table;
                        live_run r = run_live(n, piped);
                        std::printf("%-7s %-6s %7zu %13.0f %13.0f %14.0f %9.0f %9.0f %9.0f   (exit seen by wait(): p50 %.0f us)\n",
                                    std::string(exit_wait_method_name(m)).c_str(), io, r.n, r.rss_per_child,
                                    r.rss_marginal, r.heap_per_child, pct(r.latencies_us, 0.5),
                                    pct(r.latencies_us, 0.99), pct(r.latencies_us, 1.0), pct(r.observed_us, 0.5));
                        if (r.rate_first > 0)
                            std::printf("        table %-6s spawn rate with 90%% of them live / with none live: %.0f / %.0f "
                                        "per s = %.2f   (%zu with their output in the io_uring, %zu spawned from a "
                                        "spawner's own table)\n",
                                        t == spawn_table::shared ? "shared" : "auto", r.rate_last, r.rate_first,
                                        r.rate_last / r.rate_first, r.ring_jobs,
                                        spawn_thread_counters().own_table - own_before);
                    });
                }
            }
        }
    }
}

double raw_pipe_rate(long long bytes) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return 0;
    std::string n = std::to_string(bytes);
    std::int64_t t0 = sys::monotonic_ns();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(p[1], 1);
        ::execl(tiny, tiny, "flood", n.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(p[1]);
    static char buf[65536];
    long long got = 0;
    for (ssize_t r; (r = ::read(p[0], buf, sizeof buf)) > 0;) got += r;
    ::close(p[0]);
    int st;
    ::waitpid(pid, &st, 0);
    return static_cast<double>(got) / secs_since(t0);
}

double drover_pipe_rate(long long bytes) {
    spawn_spec s = tiny_spec({"flood", std::to_string(bytes)}, false);
    s.out = stdio::pipe();
    std::vector<prepared_spawn> specs{prepared_spawn(s)};
    long long got = 0;
    pool_options o{.concurrency = 1, .output = {1 << 20, overflow_policy::backpressure}};
    o.sink = [&](const output_chunk& c) -> asio::awaitable<void> {
        got += static_cast<long long>(c.data.size());
        co_return;
    };
    std::int64_t t0 = sys::monotonic_ns();
    run_loop([&]() -> asio::awaitable<int> {
        co_await run_jobs(co_await asio::this_coro::executor, specs, o);
        co_return 0;
    }());
    return static_cast<double>(got) / secs_since(t0);
}

// Alternates the two readers (the machine's pipe speed drifts between runs) and compares
// medians.
void bench_pipe(long long bytes, int rounds) {
    std::printf("\n== stdout throughput, %lld MiB, %d rounds alternating ==\n", bytes >> 20, rounds);
    std::vector<double> raw, drover;
    for (int i = 0; i < rounds; ++i) {
        raw.push_back(raw_pipe_rate(bytes));
        drover.push_back(drover_pipe_rate(bytes));
    }
    std::sort(raw.begin(), raw.end());
    std::sort(drover.begin(), drover.end());
    double r = raw[raw.size() / 2], d = drover[drover.size() / 2];
    std::printf("drover pool (sink, <= 1 MiB chunks): median %6.0f MiB/s (min %.0f, max %.0f)\n", d / (1 << 20),
                drover.front() / (1 << 20), drover.back() / (1 << 20));
    std::printf("raw pipe read loop (64 KiB):         median %6.0f MiB/s (min %.0f, max %.0f)\n", r / (1 << 20),
                raw.front() / (1 << 20), raw.back() / (1 << 20));
    std::printf("ratio of medians: %.2fx\n", d / r);
}

// Spawn rate with drover's own memory grown by `mib` MiB, written so it is resident: what a
// spawner process with a small address space of its own would save. A fork-style clone3
// copies the parent's page tables (anonymous memory cannot be skipped), a posix_spawn-style
// one (CLONE_VM | CLONE_VFORK) copies nothing. Each method runs in a fresh process: the rate
// with the heap small, then grown, then small again (the mapping returned), and the grown
// rate is given against the mean of the two small ones.
void bench_heap(std::size_t mib, std::size_t jobs) {
    std::printf("\n== spawn rate with drover's heap grown (exec of a static child, concurrency 8) ==\n");
    std::printf("%-7s %-12s %10s %12s %12s %12s %7s\n", "method", "namespaces", "heap(MiB)", "small/s", "grown/s",
                "small again/s", "ratio");
    for (clone_method m : {clone_method::vfork, clone_method::fork}) {
        for (bool ns : {false, true}) {
            in_fresh_process([&] {
                force_clone_method(m);
                double small = drover_rate(jobs, 8, ns);
                const std::size_t bytes = mib << 20;
                void* heap = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (heap == MAP_FAILED) {
                    std::printf("  (%zu MiB could not be mapped: %s)\n", mib, std::strerror(errno));
                    return;
                }
                std::memset(heap, 1, bytes);
                double grown = drover_rate(jobs, 8, ns);
                ::munmap(heap, bytes);
                double again = drover_rate(jobs, 8, ns);
                std::printf("%-7s %-12s %10zu %12.0f %12.0f %12.0f %6.2fx\n",
                            std::string(clone_method_name(m)).c_str(), ns ? "6" : "none", mib, small, grown, again,
                            grown / ((small + again) / 2));
            });
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string only;
    bool quick = false;
    std::optional<std::size_t> live;  // default 1000 and 10000, 200 and 1000 with --quick
    long long bytes = 1LL << 30;
    std::optional<std::size_t> heap_mib;  // default 512, 128 with --quick
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--quick") {
            quick = true;
            bytes = 256LL << 20;
        } else if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
            if (only != "spawn" && only != "live" && only != "pipe" && only != "heap") {
                std::fprintf(stderr, "drover_bench_scale: --only: '%s' is not spawn, live, pipe or heap\n", only.c_str());
                return 2;
            }
        } else if (a == "--live" && i + 1 < argc) {
            auto n = bench::whole_arg<std::size_t>("drover_bench_scale", "--live", argv[++i], 2, 100000);
            if (!n) return 2;
            live = n;
        } else if (a == "--heap" && i + 1 < argc) {
            auto n = bench::whole_arg<std::size_t>("drover_bench_scale", "--heap", argv[++i], 1, 16384);
            if (!n) return 2;
            heap_mib = n;
        } else {
            std::fprintf(stderr, "usage: %s [--quick] [--only spawn|live|pipe|heap] [--live N] [--heap MiB]\n", argv[0]);
            return 2;
        }
    }
    std::printf("drover_bench_scale: Asio backend %s, IORING_OP_WAITID %s\n", DROVER_SCALE_BACKEND,
                uring_waitid_supported() ? "available" : "not available");
    if (only.empty() || only == "spawn") bench_spawn_rate(quick ? 64 : 256);
    if (only.empty() || only == "live")
        bench_live(live ? std::vector<std::size_t>{*live} : quick ? std::vector<std::size_t>{200, 1000}
                                                                  : std::vector<std::size_t>{1000, 10000});
    if (only.empty() || only == "pipe") bench_pipe(bytes, 5);
    if (only.empty() || only == "heap") bench_heap(heap_mib.value_or(quick ? 128 : 512), quick ? 256 : 1024);
    return 0;
}
