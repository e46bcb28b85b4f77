// Sustained spawning: N coroutines on one Asio event loop, each spawning and awaiting children
// back to back for a fixed time. Shows spawns/s and how latency drifts as the kernel's
// asynchronous namespace teardown (net, ipc) piles up.
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>

#include "bench/floor.hpp"
#include "bench/runner.hpp"
#include "drover/process/process.hpp"

namespace drover::bench {

namespace {

struct timed_spawn {
    std::int64_t start;
    std::int64_t took;
};

struct shared_state {
    std::int64_t deadline = 0;
    std::vector<timed_spawn> done;
    failure_counts failures;
};

asio::awaitable<void> spawner(prepared_spawn p, shared_state& st) {
    auto ex = co_await asio::this_coro::executor;
    while (floor_now_ns() < st.deadline) {
        const std::int64_t start = floor_now_ns();
        try {
            process child = co_await spawn(ex, p);
            exit_status status = co_await child.wait();
            if (status.success())
                st.done.push_back({start, floor_now_ns() - start});
            else
                ++st.failures["the workload " + status.str()];
        } catch (const std::exception& e) {
            ++st.failures[e.what()];
            // A kernel refusal repeats at once: do not spin on it for the whole duration.
            if (st.failures.size() == 1 && st.failures.begin()->second > 1000) co_return;
        }
    }
}

}  // namespace

void run_throughput(const bench_config& cfg, bench_report& report, const progress_fn& progress) {
    const std::vector<namespace_set> sets =
        canonical_sets(cfg.throughput_sets.empty() ? cfg.sets : cfg.throughput_sets);
    const std::size_t total = sets.size() * cfg.concurrency.size();
    std::size_t step = 0;
    report.throughput.clear();
    for (namespace_set set : sets) {
        spawn_spec spec;
        spec.namespaces = set;
        spec.exec = cfg.work.execs();
        if (spec.exec) spec.argv = {cfg.work.path};
        prepared_spawn p(spec);
        for (int conc : cfg.concurrency) {
            if (progress) progress({"throughput", step, total});
            shared_state st;
            asio::io_context io(1);
            const std::int64_t begin = floor_now_ns();
            st.deadline = begin + static_cast<std::int64_t>(cfg.duration * 1e9);
            for (int k = 0; k < conc; ++k) asio::co_spawn(io, spawner(p, st), asio::detached);
            io.run();
            const std::int64_t end = floor_now_ns();

            throughput_result r;
            r.set = set;
            r.concurrency = conc;
            r.seconds = static_cast<double>(end - begin) / 1e9;
            r.spawns = st.done.size();
            r.failures = std::move(st.failures);
            r.per_second = r.seconds > 0 ? static_cast<double>(r.spawns) / r.seconds : 0;
            std::sort(st.done.begin(), st.done.end(),
                      [](const timed_spawn& a, const timed_spawn& b) { return a.start < b.start; });
            std::vector<double> lat, steady;
            lat.reserve(st.done.size());
            for (std::size_t i = 0; i < st.done.size(); ++i) {
                const timed_spawn& t = st.done[i];
                lat.push_back(static_cast<double>(t.took));
                // Drift is read from the steady state only: without the first `conc` spawns
                // (all started at once) and those still running at the deadline (their
                // siblings had stopped, so they ran with less company).
                if (i >= static_cast<std::size_t>(conc) && t.start + t.took <= st.deadline)
                    steady.push_back(static_cast<double>(t.took));
            }
            std::tie(r.first_decile_p50, r.last_decile_p50) =
                decile_drift(steady.size() >= 10 ? steady : lat);
            r.latency = summarize(std::move(lat));
            report.throughput.push_back(std::move(r));
            ++step;
        }
    }
    if (progress) progress({"throughput", total, total});
}

}  // namespace drover::bench
