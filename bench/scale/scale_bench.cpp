// drover_bench_scale: mass-spawning numbers as ratios against raw baselines in the same run —
// spawn rate vs a raw clone3+execve floor, memory per live child, exit-notification latency
// with many children live (pidfd poll vs IORING_OP_WAITID), stdout throughput vs a raw pipe.
#include <fcntl.h>
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
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "drover/process/exit_waiter.hpp"
#include "drover/process/limits.hpp"
#include "drover/process/pool.hpp"
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
    double rss_per_child = 0;  // bytes
    std::vector<double> latencies_us;
    std::vector<double> observed_us;  // deadline -> exit seen by process::wait()
    std::size_t n = 0;
};

// `n` children of the static helper, all live at once with stdout and stderr piped; each
// exits at its own deadline (`spacing_us` apart, after all have started) and the time from
// that deadline to the job's completion callback is recorded.
live_run run_live(std::size_t n, double spawn_rate, double spacing_us) {
    live_run out;
    out.n = n;
    // Spawning slows down as descriptors pile up (clone3 copies the descriptor table): leave
    // room, and count only exits after the moment all children were live.
    std::int64_t spawn_phase = static_cast<std::int64_t>(3e9 * static_cast<double>(n) / spawn_rate) + 2'000'000'000;
    std::int64_t first_exit = sys::monotonic_ns() + spawn_phase;
    std::vector<prepared_spawn> specs;
    std::vector<std::int64_t> deadline(n);
    for (std::size_t i = 0; i < n; ++i) {
        deadline[i] = first_exit + static_cast<std::int64_t>(static_cast<double>(i) * spacing_us * 1000);
        spawn_spec s = tiny_spec({"until", std::to_string(deadline[i])}, false);
        s.out = stdio::pipe();
        s.err = stdio::pipe();
        specs.emplace_back(std::move(s));
    }
    long before = rss_kib();
    long all_live = 0;
    std::int64_t all_live_ns = 0;
    std::size_t early = 0;
    run_loop([&]() -> asio::awaitable<int> {
        auto ex = co_await asio::this_coro::executor;
        job_pool pool(ex, {.concurrency = n, .output = {4096, overflow_policy::truncate}});
        for (auto& s : specs) pool.submit(s);
        pool.close();
        auto watcher = [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ex);
            while (pool.stats().started < n && pool.stats().finished == 0) {
                t.expires_after(std::chrono::milliseconds(5));
                co_await t.async_wait(asio::use_awaitable);
            }
            all_live = rss_kib();
            all_live_ns = sys::monotonic_ns();
        };
        asio::co_spawn(ex, watcher(), asio::detached);
        co_await pool.run([&](job_result r) {
            std::int64_t now = sys::monotonic_ns();
            // Exits while the loop was still spawning measure the spawn path, not the wait.
            if (all_live_ns == 0 || deadline[r.index] < all_live_ns) {
                ++early;
                return;
            }
            out.latencies_us.push_back(static_cast<double>(now - deadline[r.index]) / 1e3);
            out.observed_us.push_back(static_cast<double>(r.timings.exit_observed - deadline[r.index]) / 1e3);
        });
        co_return 0;
    }());
    out.rss_per_child = static_cast<double>(all_live - before) * 1024.0 / static_cast<double>(n);
    if (early) std::printf("  (%zu exits came before all children were live: not counted)\n", early);
    std::sort(out.latencies_us.begin(), out.latencies_us.end());
    std::sort(out.observed_us.begin(), out.observed_us.end());
    return out;
}

// The baseline for exit latency: the same children started with fork+execve and a blocking
// waitid(P_ALL) loop: what the machine itself takes from a child's deadline to its reaping.
std::vector<double> raw_latencies(std::size_t n, double spawn_rate, double spacing_us) {
    std::int64_t first_exit = sys::monotonic_ns() +
                              static_cast<std::int64_t>(2e9 * static_cast<double>(n) / spawn_rate) + 1'000'000'000;
    std::vector<std::pair<pid_t, std::int64_t>> kids;
    for (std::size_t i = 0; i < n; ++i) {
        std::int64_t d = first_exit + static_cast<std::int64_t>(static_cast<double>(i) * spacing_us * 1000);
        std::string arg = std::to_string(d);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::execl(tiny, tiny, "until", arg.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        if (pid > 0) kids.emplace_back(pid, d);
    }
    std::vector<double> lat;
    std::int64_t live_ns = sys::monotonic_ns();
    for (std::size_t k = 0; k < kids.size(); ++k) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED) != 0) break;
        std::int64_t now = sys::monotonic_ns();
        for (auto& [pid, d] : kids)
            if (pid == info.si_pid && d > live_ns) lat.push_back(static_cast<double>(now - d) / 1e3);
    }
    std::sort(lat.begin(), lat.end());
    return lat;
}

double pct(const std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

void bench_live(const std::vector<std::size_t>& sizes) {
    raise_nofile_limit(1 << 16);
    double rate = drover_rate(64, 16, false);
    std::printf("\n== live children: memory per child, exit latency (deadline -> callback) ==\n");
    std::printf("backend %s; spawn rate now %.0f/s\n", DROVER_SCALE_BACKEND, rate);
    std::printf("%-7s %7s %14s %10s %10s %10s\n", "wait", "live", "RSS/child(B)", "p50(us)", "p99(us)", "max(us)");
    for (std::size_t want : sizes) {
        std::string limiting;
        std::size_t n = std::min(want, read_spawn_capacity().children_that_fit(fds_per_child(2, false), &limiting));
        if (n < want) std::printf("  (%zu children instead of %zu: %s)\n", n, want, limiting.c_str());
        {
            std::vector<double> raw = raw_latencies(n, rate, 200);
            std::printf("%-7s %7zu %14s %10.0f %10.0f %10.0f   (fork+execve, blocking waitid loop)\n",
                        "raw", n, "-", pct(raw, 0.5), pct(raw, 0.99), pct(raw, 1.0));
        }
        for (exit_wait_method m : {exit_wait_method::poll, exit_wait_method::waitid}) {
            if (m == exit_wait_method::waitid && !uring_waitid_supported()) continue;
            // Each method in a fresh process: the heap does not shrink after a run, so a
            // second run in the same process would reuse it and understate its RSS growth.
            std::fflush(stdout);
            pid_t pid = ::fork();
            if (pid != 0) {
                int st;
                ::waitpid(pid, &st, 0);
                continue;
            }
            force_exit_wait_method(m);
            live_run r = run_live(n, rate, 200);
            std::printf("%-7s %7zu %14.0f %10.0f %10.0f %10.0f   (exit seen by wait(): p50 %.0f us)\n",
                        std::string(exit_wait_method_name(m)).c_str(), n, r.rss_per_child,
                        pct(r.latencies_us, 0.5), pct(r.latencies_us, 0.99), pct(r.latencies_us, 1.0),
                        pct(r.observed_us, 0.5));
            std::fflush(stdout);
            ::_exit(0);
        }
        force_exit_wait_method(std::nullopt);
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
    o.sink = [&](output_chunk c) -> asio::awaitable<void> {
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

void bench_pipe(long long bytes) {
    std::printf("\n== stdout throughput, %lld MiB ==\n", bytes >> 20);
    double raw = raw_pipe_rate(bytes);
    double d = drover_pipe_rate(bytes);
    std::printf("drover pool (sink, 1 MiB chunks): %8.0f MiB/s\nraw pipe read loop (64 KiB):      %8.0f MiB/s\nratio: %.2fx\n",
                d / (1 << 20), raw / (1 << 20), d / raw);
}

}  // namespace

int main(int argc, char** argv) {
    std::string only;
    bool quick = false;
    std::vector<std::size_t> sizes = {1000, 10000};
    long long bytes = 1LL << 30;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--quick") {
            quick = true;
            sizes = {200, 1000};
            bytes = 256LL << 20;
        } else if (a == "--only" && i + 1 < argc) {
            only = argv[++i];
        } else if (a == "--live" && i + 1 < argc) {
            sizes = {static_cast<std::size_t>(std::atol(argv[++i]))};
        } else {
            std::fprintf(stderr, "usage: %s [--quick] [--only spawn|live|pipe] [--live N]\n", argv[0]);
            return 2;
        }
    }
    std::printf("drover_bench_scale: Asio backend %s, IORING_OP_WAITID %s\n", DROVER_SCALE_BACKEND,
                uring_waitid_supported() ? "available" : "not available");
    if (only.empty() || only == "spawn") bench_spawn_rate(quick ? 64 : 256);
    if (only.empty() || only == "live") bench_live(sizes);
    if (only.empty() || only == "pipe") bench_pipe(bytes);
    return 0;
}
