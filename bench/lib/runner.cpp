// The matrix run: drover's spawn path and the raw floor, interleaved in one shuffled order so
// that drift on a shared machine hits both alike.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <system_error>

#include "bench/floor.hpp"
#include "bench/runner.hpp"
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

enum class runner : std::uint8_t { drover, floor, posix };

struct task {
    std::uint32_t combo;
    runner who;
};

// Samples collected for one combination.
struct combo_samples {
    std::vector<std::int64_t> drover, floor;
    std::array<std::vector<std::int64_t>, stage_count> stages;
    failure_counts drover_failures, floor_failures;
};

void throttle_progress(const progress_fn& progress, std::string_view phase, std::size_t done,
                       std::size_t total, std::int64_t& last) {
    if (!progress) return;
    std::int64_t now = floor_now_ns();
    if (done != total && now - last < 100'000'000) return;
    last = now;
    progress({phase, done, total});
}

}  // namespace

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
    if (!status.success()) {
        s.error = "the workload " + status.str();
        return s;
    }
    s.ok = true;
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

std::string static_helper_path() {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("DROVER_STATIC_TRUE"); env && *env)
        candidates.emplace_back(env);
#ifdef DROVER_STATIC_TRUE
    candidates.emplace_back(DROVER_STATIC_TRUE);
#endif
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(self.parent_path() / "drover_static_true");
        candidates.push_back(self.parent_path() / ".." / "bench" / "matrix" / "drover_static_true");
        candidates.push_back(self.parent_path() / ".." / "libexec" / "drover" /
                             "drover_static_true");
    }
    for (const fs::path& c : candidates)
        if (::access(c.c_str(), X_OK) == 0) return fs::absolute(c).lexically_normal().string();
    return {};
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
    std::vector<floor_plan> plans;
    for (namespace_set s : sets) {
        prepared.emplace_back(matrix_spec(s, cfg.work));
        plans.push_back(floor_plan::for_flags(s.clone_flags(), cfg.work.execs(), argv));
    }
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
                drover_sample d = drover_spawn_once(prepared[t.combo]);
                if (!keep) return;
                if (!d.ok) {
                    ++cs.drover_failures[d.error];
                    return;
                }
                cs.drover.push_back(d.total);
                auto a = d.stages.as_array();
                cs.stages[0].push_back(std::max<std::int64_t>(0, d.total - d.stages.total));
                for (std::size_t k = 0; k < a.size(); ++k) cs.stages[k + 1].push_back(a[k]);
                return;
            }
            case runner::floor: {
                floor_sample f = floor_spawn(plans[t.combo]);
                if (!keep) return;
                if (!f.ok)
                    ++cs.floor_failures[f.error];
                else
                    cs.floor.push_back(f.total_ns);
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
        std::vector<runner> who = {runner::drover, runner::floor};
        if (with_posix && i == *none_index) who.push_back(runner::posix);
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
    for (std::size_t i = 0; i < sets.size(); ++i) {
        combo_result r;
        r.set = sets[i];
        r.drover = summarize(samples[i].drover);
        r.floor = summarize(samples[i].floor);
        for (std::size_t k = 0; k < stage_count; ++k) r.stages[k] = summarize(samples[i].stages[k]);
        r.drover_failures = std::move(samples[i].drover_failures);
        r.floor_failures = std::move(samples[i].floor_failures);
        if (r.drover.n) drover_cost[r.set.bits()] = r.drover.p50;
        if (r.floor.n) floor_cost[r.set.bits()] = r.floor.p50;
        report.combos.push_back(std::move(r));
    }
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
