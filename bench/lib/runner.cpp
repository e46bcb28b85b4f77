// The matrix run: drover's spawn path and the raw floor, interleaved in one shuffled order so
// that drift on a shared machine hits both alike.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>

#include "bench/floor.hpp"
#include "bench/floor_client.hpp"
#include "bench/runner.hpp"
#include "drover/process/process.hpp"
#include "drover/spawn/launch.hpp"

extern char** environ;

namespace drover::bench {

namespace {

// posix_spawn + waitpid: what a program without namespaces would do.
floor_sample posix_spawn_once(const std::vector<std::string>& argv) {
    floor_sample s;
    char* args[16] = {};
    for (std::size_t i = 0; i < argv.size() && i < 15; ++i)
        args[i] = const_cast<char*>(argv[i].c_str());
    const std::int64_t start = floor_now_ns();
    pid_t pid = -1;
    int err = ::posix_spawn(&pid, args[0], nullptr, nullptr, args, environ);
    if (err != 0) {
        s.error = "posix_spawn: " + std::system_category().message(err);
        return s;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    s.total_ns = floor_now_ns() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        s.error = "posix_spawn child failed";
        return s;
    }
    s.ok = true;
    return s;
}

std::vector<std::string> workload_argv(const workload& w) {
    if (!w.execs()) return {};
    return {w.path};
}

spawn_spec matrix_spec(namespace_set set, const workload& w) {
    spawn_spec spec;
    spec.namespaces = set;
    spec.exec = w.execs();
    spec.argv = workload_argv(w);
    return spec;
}

enum class runner : std::uint8_t { drover, floor, bare, fork, posix, probe };

// The raw floors, in order: the floor (fastest method, same setup), bare, fork-style.
constexpr int floor_kinds = 3;
runner floor_runner(int k) { return static_cast<runner>(1 + k); }
floor_method kind_method(int k) { return k == 2 ? floor_method::fork : floor_method::vfork; }
bool kind_setup(int k) { return k != 1; }

struct task {
    std::uint32_t combo;
    runner who;
};

// Samples collected for one combination.
struct combo_samples {
    std::vector<std::int64_t> drover;
    std::array<std::vector<std::int64_t>, floor_kinds> floors;
    std::array<std::vector<std::int64_t>, stage_count> stages;
    failure_counts drover_failures;
    std::array<failure_counts, floor_kinds> floor_failures;
    std::vector<std::int64_t> probe;
    failure_counts probe_failures;
    std::size_t method_spawns[3] = {};  // by clone_method
};

void throttle_progress(const progress_fn& progress, std::string_view phase, std::size_t done,
                       std::size_t total, std::int64_t& last) {
    if (!progress) return;
    std::int64_t now = floor_now_ns();
    if (done != total && now - last < 100'000'000) return;
    last = now;
    progress({phase, done, total});
}

// Runs the raw floors in the drover_floor helper when it can be found and started (and was
// not declined), else in this process (slower for the fork-style floor: it copies drover's
// page tables).
class floors {
public:
    floors(const std::vector<namespace_set>& sets, const workload& w, bool in_process, std::string& source) {
        const std::vector<std::string> argv = workload_argv(w);
        std::string path = in_process ? std::string() : floor_helper_path(), why;
        bool helper = !path.empty() && client_.start(path, why);
        if (path.empty()) why = in_process ? floors_asked_in_process : "drover_floor not found (set DROVER_FLOOR)";
        source = helper ? "helper " + path : "in-process: " + why;
        for (namespace_set s : sets) {
            std::array<floor_plan, floor_kinds> plans;
            std::array<int, floor_kinds> ids{};
            for (int k = 0; k < floor_kinds; ++k) {
                plans[k] = floor_plan::make(s.clone_flags(), kind_method(k), kind_setup(k), w.execs(), argv);
                if (!helper) continue;
                floor_method m = kind_method(k);
                std::string err;
                ids[k] = client_.define(s.clone_flags(), m, kind_setup(k), w.execs(), w.path, err);
                if (ids[k] < 0) throw std::runtime_error(err);
            }
            plans_.push_back(std::move(plans));
            ids_.push_back(ids);
        }
    }

    floor_sample run(std::uint32_t combo, int kind) {
        if (client_.running()) return client_.run(ids_[combo][kind]);
        return floor_spawn(plans_[combo][kind]);
    }

    [[nodiscard]] std::string_view method(std::uint32_t combo) const {
        return floor_method_name(plans_[combo][0].method);
    }

private:
    floor_client client_;
    std::vector<std::array<floor_plan, floor_kinds>> plans_;
    std::vector<std::array<int, floor_kinds>> ids_;
};

// drover_raw_probe --serve: one spawn per request, timed inside the probe.
class raw_probe {
public:
    raw_probe(const workload& w) {
        const std::string path = raw_probe_path();
        if (path.empty())
            throw std::runtime_error("--probe: drover_raw_probe not found (build it, or set DROVER_RAW_PROBE)");
        std::string why;
        if (!client_.start_as({path, "--serve", w.path}, "hello", "ok drover_raw_probe",
                              "drover_raw_probe", why))
            throw std::runtime_error("--probe: " + why);
    }

    floor_sample run(namespace_set set) {
        floor_sample s;
        std::string answer;
        if (!client_.ask(set.empty() ? "none" : set.str(), answer)) {
            s.error = "drover_raw_probe stopped answering";
            return s;
        }
        client_.settle();
        if (answer.starts_with("err ")) {
            s.error = answer.substr(4);
            return s;
        }
        std::string_view rest(answer);
        auto [end, ec] = std::from_chars(rest.data() + std::min<std::size_t>(3, rest.size()),
                                         rest.data() + rest.size(), s.total_ns);
        if (!rest.starts_with("ok ") || ec != std::errc{} || end != rest.data() + rest.size() ||
            s.total_ns < 0) {
            s.error = "drover_raw_probe answered '" + answer + "'";
            return s;
        }
        s.ok = true;
        return s;
    }

private:
    floor_client client_;
};

}  // namespace

std::string raw_probe_path() {
#ifdef DROVER_RAW_PROBE
    return find_bench_program("DROVER_RAW_PROBE", DROVER_RAW_PROBE, "drover_raw_probe");
#else
    return find_bench_program("DROVER_RAW_PROBE", nullptr, "drover_raw_probe");
#endif
}

drover_sample drover_spawn_once(const prepared_spawn& p) {
    drover_sample s;
    const std::int64_t start = floor_now_ns();
    launched_child child;
    spawn_failure failure;
    if (!launch(p, child, failure) || !await_exec(p, child, failure)) {
        s.total = floor_now_ns() - start;
        s.error = failure.message();
        return s;
    }
    exit_status status = wait_blocking(child);
    s.total = floor_now_ns() - start;
    s.timings = child.timings;
    s.stages = child.timings.durations();
    s.method = child.method;
    if (!status.success()) {
        s.error = "the workload " + status.str();
        return s;
    }
    s.ok = true;
    return s;
}

namespace {

asio::awaitable<void> async_sample(asio::io_context& io, prepared_spawn p, drover_sample& s) {
    const std::int64_t start = floor_now_ns();
    try {
        process child = co_await spawn(io.get_executor(), std::move(p));
        exit_status status = co_await child.wait();
        s.total = floor_now_ns() - start;
        s.timings = child.timings();
        s.stages = s.timings.durations();
        s.method = child.method();
        if (!status.success()) {
            s.error = "the workload " + status.str();
            co_return;
        }
        s.ok = true;
    } catch (const spawn_error& e) {
        s.total = floor_now_ns() - start;
        s.error = e.failure().message();
    } catch (const std::exception& e) {
        s.total = floor_now_ns() - start;
        s.error = e.what();
    }
}

}  // namespace

drover_sample drover_spawn_async(asio::io_context& io, const prepared_spawn& p) {
    drover_sample s;
    asio::co_spawn(io, async_sample(io, p, s), asio::detached);
    io.restart();
    io.run();
    return s;
}

std::string workload::str() const {
    switch (how) {
        case kind::exit:
            return "exit";
        case kind::exec_static:
            return "exec-static";
        case kind::exec_path:
            return "exec:" + path;
    }
    return "exit";
}

std::optional<workload> parse_workload(std::string_view text) {
    workload w;
    if (text == "exit") return w;
    if (text == "exec-static") {
        w.how = workload::kind::exec_static;
        return w;
    }
    if (text.starts_with("exec:") && text.size() > 5) {
        w.how = workload::kind::exec_path;
        w.path = std::string(text.substr(5));
        return w;
    }
    return std::nullopt;
}

bool static_helper_built() noexcept {
#ifdef DROVER_STATIC_TRUE
    return true;
#else
    return false;
#endif
}

std::string find_bench_program(const char* env_var, const char* built, const char* name) {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv(env_var); env && *env) candidates.emplace_back(env);
    if (built && *built) candidates.emplace_back(built);
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(self.parent_path() / name);
        candidates.push_back(self.parent_path() / ".." / "bench" / "matrix" / name);
        candidates.push_back(self.parent_path() / ".." / "libexec" / "drover" / name);
    }
    for (const fs::path& c : candidates)
        if (::access(c.c_str(), X_OK) == 0) return fs::absolute(c).lexically_normal().string();
    return {};
}

std::string static_helper_path() {
#ifdef DROVER_STATIC_TRUE
    return find_bench_program("DROVER_STATIC_TRUE", DROVER_STATIC_TRUE, "drover_static_true");
#else
    return find_bench_program("DROVER_STATIC_TRUE", nullptr, "drover_static_true");
#endif
}

bool parse_ns_selection(std::string_view text, std::vector<namespace_set>& out, std::string& bad) {
    if (text == "matrix") {
        for (unsigned b = 0; b < 256; ++b)
            out.push_back(namespace_set::from_bits(static_cast<std::uint8_t>(b)));
        return true;
    }
    if (text == "singles") {
        out.push_back(namespace_set{});
        for (int i = 0; i < ns_count; ++i) out.push_back(namespace_set{static_cast<ns>(i)});
        return true;
    }
    auto set = namespace_set::parse(text, &bad);
    if (!set) {
        if (bad.empty()) bad = std::string(text);
        return false;
    }
    out.push_back(*set);
    return true;
}

std::vector<namespace_set> canonical_sets(std::vector<namespace_set> sets) {
    std::sort(sets.begin(), sets.end(),
              [](namespace_set a, namespace_set b) { return a.bits() < b.bits(); });
    sets.erase(std::unique(sets.begin(), sets.end()), sets.end());
    return sets;
}

void run_matrix(const bench_config& cfg, bench_report& report, const progress_fn& progress) {
    const std::vector<namespace_set> sets = canonical_sets(cfg.sets);
    const std::vector<std::string> argv = workload_argv(cfg.work);
    std::vector<prepared_spawn> prepared;
    for (namespace_set s : sets) prepared.emplace_back(matrix_spec(s, cfg.work));
    floors raw(sets, cfg.work, cfg.floors_in_process, report.machine.floor_source);
    if (cfg.probe && !cfg.work.execs())
        throw std::runtime_error("--probe needs a workload that execs (exec-static or exec:PATH)");
    std::optional<raw_probe> probe;
    if (cfg.probe) probe.emplace(cfg.work);
    asio::io_context io(1);
    std::vector<combo_samples> samples(sets.size());
    peer_result posix;
    posix.name = "posix_spawn";
    posix.argv = argv;
    std::vector<std::int64_t> posix_samples;
    std::optional<std::uint32_t> none_index;
    for (std::uint32_t i = 0; i < sets.size(); ++i)
        if (sets[i].empty()) none_index = i;

    auto run_one = [&](const task& t, bool keep) {
        combo_samples& cs = samples[t.combo];
        switch (t.who) {
            case runner::drover: {
                drover_sample d = drover_spawn_async(io, prepared[t.combo]);
                if (!keep) return;
                if (!d.ok) {
                    ++cs.drover_failures[d.error];
                    return;
                }
                ++cs.method_spawns[static_cast<int>(d.method)];
                cs.drover.push_back(d.total);
                // Here "prepare" is all of the wall clock that is not a kernel-side stage: the
                // library's own prepare stage and the return paths after the reap.
                auto a = d.stages.as_array();
                cs.stages[0].push_back(std::max<std::int64_t>(0, d.total - (d.stages.total - d.stages.prepare)));
                for (std::size_t k = 1; k < a.size(); ++k) cs.stages[k].push_back(a[k]);
                return;
            }
            case runner::floor:
            case runner::bare:
            case runner::fork: {
                int k = static_cast<int>(t.who) - 1;
                floor_sample f = raw.run(t.combo, k);
                if (!keep) return;
                if (!f.ok)
                    ++cs.floor_failures[k][f.error];
                else
                    cs.floors[k].push_back(f.total_ns);
                return;
            }
            case runner::probe: {
                floor_sample f = probe->run(sets[t.combo]);
                if (!keep) return;
                if (!f.ok)
                    ++cs.probe_failures[f.error];
                else
                    cs.probe.push_back(f.total_ns);
                return;
            }
            case runner::posix: {
                floor_sample f = posix_spawn_once(argv);
                if (!keep) return;
                if (!f.ok)
                    ++posix.failures[f.error];
                else
                    posix_samples.push_back(f.total_ns);
                return;
            }
        }
    };

    const bool with_posix = none_index && cfg.work.execs();
    std::vector<task> warm, order;
    for (std::uint32_t i = 0; i < sets.size(); ++i) {
        std::vector<runner> who = {runner::drover};
        for (int k = 0; k < floor_kinds; ++k) who.push_back(floor_runner(k));
        if (with_posix && i == *none_index) who.push_back(runner::posix);
        // The probe is vfork-only: a time namespace cannot be entered with CLONE_VM.
        if (probe && !sets[i].has(ns::time)) who.push_back(runner::probe);
        for (runner r : who) {
            for (int k = 0; k < cfg.warmup; ++k) warm.push_back({i, r});
            for (int k = 0; k < cfg.count; ++k) order.push_back({i, r});
        }
    }
    std::mt19937_64 rng(cfg.seed);
    std::shuffle(order.begin(), order.end(), rng);

    const std::size_t total = warm.size() + order.size();
    std::size_t done = 0;
    std::int64_t last = 0;
    for (const task& t : warm) {
        run_one(t, false);
        throttle_progress(progress, "matrix", ++done, total, last);
    }
    for (const task& t : order) {
        run_one(t, true);
        throttle_progress(progress, "matrix", ++done, total, last);
    }

    report.combos.clear();
    std::map<std::uint8_t, double> drover_cost, floor_cost;
    std::size_t method_combos[3] = {}, measured_combos = 0;
    for (std::uint32_t i = 0; i < sets.size(); ++i) {
        combo_result r;
        combo_samples& cs = samples[i];
        r.set = sets[i];
        r.drover = summarize(cs.drover);
        r.floor = summarize(cs.floors[0]);
        r.bare = summarize(cs.floors[1]);
        r.fork = summarize(cs.floors[2]);
        r.probe = summarize(cs.probe);
        r.probe_failures = std::move(cs.probe_failures);
        r.floor_method = std::string(raw.method(i));
        auto most = static_cast<clone_method>(std::max_element(std::begin(cs.method_spawns), std::end(cs.method_spawns)) -
                                              std::begin(cs.method_spawns));
        r.drover_method = std::string(clone_method_name(most));
        if (!cs.drover.empty()) {
            ++measured_combos;
            ++method_combos[static_cast<int>(most)];
        }
        r.ratio_ci = bootstrap_p50_ratio(cs.drover, cs.floors[0], cfg.seed + i);
        r.drover_p50_ci = bootstrap_p50_ratio(cs.drover, {}, cfg.seed + i);
        for (std::size_t k = 0; k < stage_count; ++k) r.stages[k] = summarize(cs.stages[k]);
        r.drover_failures = std::move(cs.drover_failures);
        r.floor_failures = std::move(cs.floor_failures[0]);
        r.bare_failures = std::move(cs.floor_failures[1]);
        r.fork_failures = std::move(cs.floor_failures[2]);
        if (r.drover.n) drover_cost[r.set.bits()] = r.drover.p50;
        if (r.floor.n) floor_cost[r.set.bits()] = r.floor.p50;
        report.combos.push_back(std::move(r));
    }
    report.machine.clone_method = "";
    for (int m = 0; m < 3 && measured_combos > 0; ++m)
        if (method_combos[m] == measured_combos) report.machine.clone_method = clone_method_name(static_cast<clone_method>(m));
    if (measured_combos > 0 && report.machine.clone_method.empty())
        report.machine.clone_method = "mixed (see each combination)";
    for (combo_result& r : report.combos) r.marginal = marginal_within(r.set, drover_cost);
    report.marginals = marginal_costs(drover_cost);
    report.floor_marginals = marginal_costs(floor_cost);
    if (none_index) {
        if (with_posix) {
            posix.ran = true;
            posix.total = summarize(posix_samples);
        } else {
            posix.note = "the exit workload does not exec; posix_spawn needs a program";
        }
        report.posix_spawn = std::move(posix);
    }
}

}  // namespace drover::bench
