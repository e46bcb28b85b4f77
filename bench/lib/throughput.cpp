// Sustained spawning: N coroutines on one Asio event loop, each spawning and awaiting children
// back to back for a fixed time. Shows spawns/s and how latency drifts as the kernel's
// asynchronous namespace teardown (net, ipc) piles up. Beside each point, the throughput floor:
// small drover_floor processes spawning the raw floor back to back for the same time.
#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <map>
#include <memory>
#include <unistd.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>

#include "bench/floor.hpp"
#include "bench/floor_client.hpp"
#include "bench/runner.hpp"
#include "drover/process/process.hpp"
#include "drover/sys/syscalls.hpp"

namespace drover::bench {

namespace {

struct timed_spawn {
    std::int64_t start;
    std::int64_t took;
};

struct shared_state {
    std::int64_t deadline = 0;
    std::vector<timed_spawn> done;
    std::vector<std::int64_t> exit_to_callback;  // ns, one per stamped exit
    failure_counts failures;
};

std::int64_t realtime_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// What a coroutine's child stamped on its stdout just before exiting (drover_static_true
// --stamp), read without waiting once the exit is known; -1 if nothing whole is there.
std::int64_t read_stamp(int fd) noexcept {
    std::int64_t buf[8];
    ssize_t got = 0;
    while ((got = ::read(fd, buf, sizeof buf)) < 0 && errno == EINTR) {
    }
    if (got < static_cast<ssize_t>(sizeof buf[0]) || got % static_cast<ssize_t>(sizeof buf[0]) != 0) return -1;
    return buf[got / static_cast<ssize_t>(sizeof buf[0]) - 1];
}

// One coroutine's spec. With `stamp_fd` >= 0 the child stamps its exit time there.
prepared_spawn coroutine_spec(spawn_spec spec, int stamp_fd) {
    if (stamp_fd >= 0) {
        spec.argv.push_back("--stamp");
        spec.out = stdio::from_fd(stamp_fd);
    }
    return prepared_spawn(spec);
}

asio::awaitable<void> spawner(prepared_spawn p, int stamp_fd, launch_extras extras, shared_state& st) {
    auto ex = co_await asio::this_coro::executor;
    while (floor_now_ns() < st.deadline) {
        const std::int64_t start = floor_now_ns();
        try {
            process child = co_await spawn(ex, p, extras);
            exit_status status = co_await child.wait();
            // The callback: this coroutine runs again because its child's exit was reaped.
            if (stamp_fd >= 0) {
                const std::int64_t resumed = realtime_ns();
                if (const std::int64_t stamp = read_stamp(stamp_fd); stamp > 0)
                    st.exit_to_callback.push_back(resumed - stamp);
            }
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

// More floor processes than this would measure the scheduler more than the spawn path, and each
// holds a socket and a process slot of drover bench's.
constexpr int max_floor_processes = 64;

// The throughput floor: up to 64 drover_floor helpers, started as the first point needs them
// and kept for the rest of the run. Each loops one plan; all are given one CLOCK_MONOTONIC
// start, so they begin together however long sending the requests took.
class floor_fleet {
public:
    explicit floor_fleet(const workload& w) : work_(w) {
        path_ = floor_helper_path();
        if (path_.empty()) note_ = "drover_floor not found (set DROVER_FLOOR)";
    }

    // Fills r's floor fields, or r.floor_note when there is no floor to run.
    void measure(namespace_set set, double seconds, throughput_result& r) {
        const int processes = std::min(r.concurrency, max_floor_processes);
        if (note_.empty()) grow(processes);
        std::vector<int> ids;
        floor_method method = floor_method::vfork;
        for (int k = 0; note_.empty() && k < processes; ++k) ids.push_back(plan(k, set, method));
        if (!note_.empty()) {
            r.floor_note = note_;
            return;
        }
        // Enough time to send every request before the start (a send is microseconds).
        const std::int64_t start = floor_now_ns() + 20'000'000 + processes * 1'000'000LL;
        const std::int64_t end = start + static_cast<std::int64_t>(seconds * 1e9);
        std::size_t started = 0;
        for (std::string why; started < ids.size(); ++started)
            if (!helpers_[started]->start_loop(ids[started], start, end, why)) {
                note_ = "floor process " + std::to_string(started + 1) + ": " + why;
                break;
            }
        // Each answers once its last spawn is reaped; a minute past the end is a hung helper.
        std::int64_t finish = start;
        for (std::size_t k = 0; k < started; ++k) {
            floor_loop_result l = helpers_[k]->finish_loop(end + 60'000'000'000);
            if (!l.ok) {
                if (note_.empty()) note_ = "floor process " + std::to_string(k + 1) + ": " + l.error;
                continue;
            }
            r.floor_spawns += l.spawns;
            if (l.failures) r.floor_failures[l.error.empty() ? "floor spawn failed" : l.error] += l.failures;
            finish = std::max(finish, l.finish_ns);
        }
        if (!note_.empty()) {
            // A helper that broke mid-run leaves a partial count: report no floor rather than a low one.
            r.floor_note = note_;
            r.floor_spawns = 0;
            r.floor_failures.clear();
            helpers_.clear();
            return;
        }
        r.floor_method = std::string(floor_method_name(method));
        r.floor_processes = processes;
        r.floor_seconds = static_cast<double>(finish - start) / 1e9;
        r.floor_per_second = r.floor_seconds > 0 ? static_cast<double>(r.floor_spawns) / r.floor_seconds : 0;
    }

private:
    void grow(int processes) {
        while (static_cast<int>(helpers_.size()) < processes) {
            auto c = std::make_unique<floor_client>();
            std::string why;
            if (!c->start(path_, why)) {
                note_ = "starting floor process " + std::to_string(helpers_.size() + 1) + ": " + why;
                return;
            }
            helpers_.push_back(std::move(c));
            plan_ids_.emplace_back();
        }
    }

    // Helper k's plan for `set`, defined on first use; -1 with note_ set if it was refused.
    int plan(int k, namespace_set set, floor_method& method) {
        auto& ids = plan_ids_[static_cast<std::size_t>(k)];
        if (auto it = ids.find(set.bits()); it != ids.end()) {
            method = it->second.second;
            return it->second.first;
        }
        // The same plan as the matrix's floor: the fastest method with drover's default setup.
        floor_method m = floor_method::vfork;
        std::string why;
        int id = helpers_[static_cast<std::size_t>(k)]->define(set.clone_flags(), m, true, work_.execs(), work_.path, why);
        if (id < 0) {
            note_ = "defining the floor of " + set.str() + ": " + why;
            return -1;
        }
        ids[set.bits()] = {id, m};
        method = m;
        return id;
    }

    workload work_;
    std::string path_;
    std::string note_;  // why there is no floor; empty while there is one
    std::vector<std::unique_ptr<floor_client>> helpers_;
    std::vector<std::map<std::uint32_t, std::pair<int, floor_method>>> plan_ids_;
};

}  // namespace

void run_throughput(const bench_config& cfg, bench_report& report, const progress_fn& progress) {
    const std::vector<namespace_set> sets =
        canonical_sets(cfg.throughput_sets.empty() ? cfg.sets : cfg.throughput_sets);
    const std::size_t total = sets.size() * cfg.concurrency.size();
    std::size_t step = 0;
    report.throughput.clear();
    launch_extras extras;
    extras.spawn_threads = cfg.spawn_threads;
    floor_fleet floor(cfg.work);
    for (namespace_set set : sets) {
        spawn_spec spec;
        spec.namespaces = set;
        spec.exec = cfg.work.execs();
        if (spec.exec) spec.argv = {cfg.work.path};
        // drover_static_true can stamp its exit time: then each coroutine gives its children a
        // pipe of its own (one child at a time), and the point has exit→callback latencies.
        const bool stamp = cfg.work.how == workload::kind::exec_static;
        for (int conc : cfg.concurrency) {
            if (progress) progress({"throughput", step, total});
            shared_state st;
            // Each coroutine's pipe, both ends open for the whole point: the spec holds the write
            // end's number, which each child dup2s.
            std::vector<sys::pipe_fds> stamps;
            std::vector<prepared_spawn> specs;
            for (int k = 0; k < conc; ++k) {
                if (stamp) stamps.push_back(sys::pipe(O_NONBLOCK).value("throughput: a pipe for exit stamps"));
                specs.push_back(coroutine_spec(spec, stamp ? stamps.back().write.get() : -1));
            }
            asio::io_context io(1);
            const std::int64_t begin = floor_now_ns();
            st.deadline = begin + static_cast<std::int64_t>(cfg.duration * 1e9);
            for (std::size_t k = 0; k < specs.size(); ++k)
                asio::co_spawn(io, spawner(specs[k], stamp ? stamps[k].read.get() : -1, extras, st), asio::detached);
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
            r.exit_to_callback = summarize(std::span<const std::int64_t>(st.exit_to_callback));
            // Right after drover's point, in the same minute, so both meet the same machine.
            floor.measure(set, cfg.duration, r);
            report.throughput.push_back(std::move(r));
            ++step;
        }
    }
    if (progress) progress({"throughput", total, total});
}

}  // namespace drover::bench
