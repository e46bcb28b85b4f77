// `drover bench`: the namespace-cost benchmark — every namespace combination, stage by stage,
// beside the raw floor, posix_spawn and the peers (unshare, bwrap, runc); reports to the
// terminal and to JSON, CSV, Markdown and SVG files.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "bench/compare.hpp"
#include "bench/floor.hpp"
#include "bench/report.hpp"
#include "bench/runner.hpp"
#include "bench_profile.hpp"
#include "command.hpp"
#include "drover/process/spawn_threads.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "progress.hpp"

namespace drover::cli {

namespace {

struct bench_options {
    std::vector<std::string> ns;
    std::vector<std::string> throughput_ns;
    int count = 50;
    int warmup = 5;
    std::string workload = "exit";
    std::uint64_t seed = 1;
    std::string concurrency;
    double duration = 2.0;
    unsigned spawn_threads = 0;  // 0: the process-wide setting (the CPUs, or DROVER_SPAWN_THREADS)
    bool peers = false;
    bool probe = false;
    std::string floors = "helper";
    bool no_matrix = false;
    std::string json, csv, markdown, svg;
    std::string profile;  // perf.data to write
};

// A usage problem: one line, exit 2, nothing started.
struct usage_problem {
    std::string what;
};

struct compare_options {
    std::vector<std::string> files;
    std::string markdown, svg;
};

// The largest report `bench compare` reads: the full 256-combination matrix is ~1.5 MB.
constexpr std::size_t max_report_bytes = 64 << 20;

bench::bench_report read_report(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw usage_problem{path + ": cannot be read"};
    std::string text;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_report_bytes)
            throw usage_problem{path + ": larger than " + std::to_string(max_report_bytes >> 20) +
                                " MiB, not a bench report"};
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw usage_problem{path + ": not JSON: " + e.what()};  // names line and column
    }
    try {
        return bench::report_from_json(j);
    } catch (const std::exception& e) {
        throw usage_problem{path + ": " + e.what()};
    }
}

int run_compare(const compare_options& o) {
    std::vector<bench::bench_report> runs;
    try {
        if (o.files.size() < 2) throw usage_problem{"compare needs two or more JSON reports (drover bench --json)"};
        if (o.files.size() > 6) throw usage_problem{"compare takes at most six reports"};
        for (const std::string& f : o.files) runs.push_back(read_report(f));
    } catch (const usage_problem& p) {
        print_error("bench compare: " + p.what);
        return usage_exit;
    }
    bench::comparison c = bench::compare_reports(runs, o.files);
    std::fputs(bench::format_comparison_table(c).c_str(), stdout);
    bool ok = true;
    auto write = [&](const std::string& path, const std::string& text) {
        if (path.empty()) return;
        std::ofstream out(path);
        out << text;
        out.close();
        if (!out) {
            print_error("bench compare: writing " + path + " failed");
            ok = false;
        }
    };
    write(o.markdown, bench::format_comparison_markdown(c));
    write(o.svg, bench::format_comparison_svg(c));
    return ok ? 0 : 1;
}

std::vector<int> parse_concurrency(const std::string& text) {
    std::vector<int> out;
    if (text.empty()) return out;
    std::size_t begin = 0;
    while (begin <= text.size()) {
        std::size_t end = std::min(text.find(',', begin), text.size());
        std::string part = text.substr(begin, end - begin);
        int v = 0;
        auto [stop, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || ec != std::errc() || stop != part.data() + part.size() || v < 1 || v > 4096)
            throw usage_problem{"--concurrency: \"" + part + "\" in \"" + text +
                                "\" is not a count from 1 to 4096 (expected a list like 1,8,64)"};
        out.push_back(v);
        begin = end + 1;
    }
    return out;
}

bench::bench_config make_config(const bench_options& o) {
    bench::bench_config cfg;
    if (o.count < 1)
        throw usage_problem{"-n/--count must be at least 1 (got " + std::to_string(o.count) + ")"};
    if (o.warmup < 0) throw usage_problem{"--warmup must not be negative"};
    if (!(o.duration > 0) || o.duration > 3600)
        throw usage_problem{"--duration must be between 0 and 3600 seconds"};
    cfg.count = o.count;
    cfg.warmup = o.warmup;
    cfg.seed = o.seed;
    cfg.duration = o.duration;
    cfg.spawn_threads = o.spawn_threads ? o.spawn_threads : spawn_threads();
    cfg.peers = o.peers;
    cfg.probe = o.probe;
    if (o.floors != "helper" && o.floors != "in-process")
        throw usage_problem{"--floors: '" + o.floors + "' is not helper or in-process"};
    cfg.floors_in_process = o.floors == "in-process";
    cfg.concurrency = parse_concurrency(o.concurrency);
    std::vector<std::string> selections = o.ns.empty() ? std::vector<std::string>{"matrix"} : o.ns;
    for (const std::string& s : selections) {
        std::string bad;
        if (!bench::parse_ns_selection(s, cfg.sets, bad))
            throw usage_problem{"--ns " + s + ": unknown namespace \"" + bad +
                                "\" (use user, pid, mnt, uts, ipc, net, cgroup, time, none, all, "
                                "singles or matrix)"};
    }
    for (const std::string& s : o.throughput_ns) {
        std::string bad;
        if (!bench::parse_ns_selection(s, cfg.throughput_sets, bad))
            throw usage_problem{"--throughput-ns " + s + ": unknown namespace \"" + bad + "\""};
    }
    if (!cfg.throughput_sets.empty() && cfg.concurrency.empty())
        throw usage_problem{"--throughput-ns needs --concurrency (e.g. --concurrency 1,8,64)"};
    if (o.no_matrix && !cfg.peers && cfg.concurrency.empty())
        throw usage_problem{"--no-matrix leaves nothing to measure: add --peers or --concurrency"};
    if (o.no_matrix) {
        // The throughput runs still take --ns, as the help says ("default: those of --ns").
        if (cfg.throughput_sets.empty() && !cfg.concurrency.empty()) {
            if (o.ns.empty())
                throw usage_problem{"--no-matrix --concurrency: say which sets with --ns or --throughput-ns"};
            cfg.throughput_sets = cfg.sets;
        }
        cfg.sets.clear();
    }
    auto w = bench::parse_workload(o.workload);
    if (!w)
        throw usage_problem{"--workload " + o.workload +
                            ": expected exit, exec-static or exec:PATH"};
    if (w->how == bench::workload::kind::exec_static) {
        w->path = bench::static_helper_path();
        if (w->path.empty())
            throw usage_problem{
                "--workload exec-static: drover_static_true not found (build the "
                "drover_static_true target or set DROVER_STATIC_TRUE)"};
    } else if (w->how == bench::workload::kind::exec_path) {
        if (w->path.front() != '/')
            throw usage_problem{"--workload " + o.workload + ": PATH must be absolute"};
        if (::access(w->path.c_str(), X_OK) != 0)
            throw usage_problem{"--workload " + o.workload + ": " + w->path +
                                " is not an executable file"};
    }
    cfg.work = *w;
    if (cfg.probe && !cfg.work.execs())
        throw usage_problem{"--probe needs --workload exec-static or exec:PATH (the probe execs a program)"};
    if (cfg.probe && o.no_matrix) throw usage_problem{"--probe runs in the matrix: drop --no-matrix"};
    return cfg;
}

// Progress on stderr: a bar with ETA on a terminal, a line per tenth otherwise (a log keeps
// them all, so fewer).
class bench_progress {
  public:
    void operator()(const bench::progress_event& e) {
        std::int64_t now = bench::floor_now_ns();
        if (e.phase != phase_) {
            display_.erase();
            phase_ = std::string(e.phase);
            start_ = now;
            last_tenth_ = -1;
        }
        double frac = e.total ? static_cast<double>(e.done) / static_cast<double>(e.total) : 1.0;
        double elapsed = static_cast<double>(now - start_) / 1e9;
        double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
        if (display_.style() == progress_style::redraw) {
            display_.update(fmt::format("{:<10} [{}] {:3.0f}%  {}/{}  {:.0f}s elapsed, ETA {:.0f}s", phase_,
                                        progress_bar(e.done, e.total), frac * 100, e.done, e.total, elapsed, eta));
            return;
        }
        int tenth = static_cast<int>(frac * 10);
        if (tenth == last_tenth_) return;
        last_tenth_ = tenth;
        display_.update(
            fmt::format("drover: bench: {} {:3.0f}% ({}/{}), ETA {:.0f}s", phase_, frac * 100, e.done, e.total, eta));
    }

  private:
    progress_display display_{progress_style_for_stderr(progress_style::lines)};
    std::string phase_;
    std::int64_t start_ = 0;
    int last_tenth_ = -1;
};

std::optional<std::ofstream> open_output(const std::string& path, const char* flag) {
    if (path.empty()) return std::nullopt;
    std::ofstream out(path, std::ios::trunc);
    if (!out) throw usage_problem{std::string(flag) + " " + path + ": cannot open for writing"};
    return out;
}

int run_bench(const bench_options& o) {
    bench::bench_config cfg;
    std::optional<std::ofstream> json, csv, md, svg;
    try {
        cfg = make_config(o);
        json = open_output(o.json, "--json");
        csv = open_output(o.csv, "--csv");
        md = open_output(o.markdown, "--markdown");
        svg = open_output(o.svg, "--svg");
        if (!o.profile.empty()) {
            // perf writes the file itself (and renames an old one): check only that it can.
            std::string dir = o.profile.find('/') == std::string::npos ? "." : o.profile.substr(0, o.profile.rfind('/') + 1);
            if (::access(dir.c_str(), W_OK) != 0)
                throw usage_problem{"--profile " + o.profile + ": " + dir + " is not a writable directory"};
        }
    } catch (const usage_problem& p) {
        print_error("bench: " + p.what);
        return usage_exit;
    }
    std::string perf;
    perf_session profiler;
    if (!o.profile.empty()) {
        perf = find_perf();
        if (perf.empty()) {
            print_error("bench: --profile needs perf on PATH (Debian: apt-get install linux-perf)");
            return usage_exit;
        }
        std::string why;
        if (!profiler.start(perf, o.profile, why)) {
            print_error("bench: --profile: " + why);
            return 1;
        }
    }

    bench::bench_report report;
    report.machine = bench::describe_machine();
    bench::parameters& p = report.params;
    for (namespace_set s : bench::canonical_sets(cfg.sets)) p.sets.push_back(s.str());
    p.count = cfg.count;
    p.warmup = cfg.warmup;
    p.workload = cfg.work.str();
    p.workload_path = cfg.work.path;
    p.seed = cfg.seed;
    p.concurrency = cfg.concurrency;
    p.duration = cfg.duration;
    p.spawn_threads = cfg.spawn_threads;
    p.peers = cfg.peers;

    const std::int64_t start = bench::floor_now_ns();
    try {
        bench_progress printer;
        bench::progress_fn progress = [&](const bench::progress_event& e) { printer(e); };
        if (!cfg.sets.empty()) bench::run_matrix(cfg, report, progress);
        if (cfg.peers) bench::run_peers(cfg, report, progress);
        if (!cfg.concurrency.empty() && (!cfg.sets.empty() || !cfg.throughput_sets.empty()))
            bench::run_throughput(cfg, report, progress);
    } catch (const spec_error& e) {
        print_error(std::string("bench: ") + e.what());
        return usage_exit;
    } catch (const std::exception& e) {
        print_error(std::string("bench: ") + e.what());
        return 1;
    }
    report.elapsed = static_cast<double>(bench::floor_now_ns() - start) / 1e9;
    report.machine.load_after = bench::load_average();
    report.machine.mhz_after = bench::cpu_mhz();
    bench::notice_noise(report);
    std::string profile_text;
    if (!o.profile.empty()) {
        std::string why;
        if (profiler.stop(why)) {
            profile_text = perf_summary(perf, o.profile, "drover", why);
            // A short run on a busy machine can leave drover's own process below perf's 1 %
            // cut: say so rather than drop the section.
            if (profile_text.empty() && why.empty())
                profile_text = "  (no symbol of drover's own process reached 1 % of the samples)\n";
        }
        if (!why.empty()) print_error("bench: --profile: " + why);
    }

    std::fputs(bench::format_table(report).c_str(), stdout);
    if (!profile_text.empty())
        std::printf("\nWhere drover's own process spent its samples (perf, %s; the floors ran in "
                    "drover_floor and are not in it):\n%s  (all of it: perf report -i %s)\n",
                    o.profile.c_str(), profile_text.c_str(), o.profile.c_str());
    bool ok = true;
    auto write = [&](std::optional<std::ofstream>& out, const std::string& text,
                     const std::string& path) {
        if (!out) return;
        *out << text;
        out->close();
        if (!*out) {
            print_error("bench: writing " + path + " failed");
            ok = false;
        }
    };
    write(json, bench::to_json(report).dump(2) + "\n", o.json);
    write(csv, bench::format_csv(report), o.csv);
    write(md, bench::format_markdown(report), o.markdown);
    write(svg, bench::format_svg(report), o.svg);
    return ok ? 0 : 1;
}

}  // namespace

command_main add_bench_command(CLI::App& app, command_check* check) {
    auto o = std::make_shared<bench_options>();
    CLI::App* sub = app.add_subcommand(
        "bench",
        "measure namespace setup cost: every combination, stage by stage, against the "
        "raw clone3 floor, posix_spawn and the peers (unshare, bwrap, runc)");
    sub->add_option("--ns", o->ns,
                    "combinations to measure (repeatable): user,pid | none | all (the eight "
                    "together) | singles (none and each one) | matrix (all 256, the default)");
    sub->add_option("-n,--count", o->count, "spawns per combination and runner (default 50)");
    sub->add_option("--warmup", o->warmup, "unmeasured spawns per combination first (default 5)");
    sub->add_option("--workload", o->workload,
                    "exit (setup only, no execve) | exec-static (a tiny static program) | "
                    "exec:PATH (default exit)");
    sub->add_option("--seed", o->seed, "seed of the shuffled, interleaved order (default 1)");
    sub->add_option("--concurrency", o->concurrency,
                    "also measure sustained throughput at these concurrencies, e.g. 1,8,64");
    sub->add_option("--throughput-ns", o->throughput_ns,
                    "combinations for the throughput runs (repeatable; default: those of --ns)");
    sub->add_option("--duration", o->duration, "seconds per throughput point (default 2)");
    add_spawn_threads_option(*sub, o->spawn_threads,
                             "threads that may run clone3 for the throughput runs' spawns, 1 to 256 or auto (the "
                             "CPUs); default auto (or $DROVER_SPAWN_THREADS); 1: the event-loop thread only");
    sub->add_flag("--peers", o->peers,
                  "compare user+pid+mnt+uts+ipc+net /bin/true with unshare(1), bwrap and runc");
    sub->add_flag("--probe", o->probe,
                  "also time drover_raw_probe (none of drover's code) in the matrix's shuffled order, beside the bare floor");
    sub->add_option("--floors", o->floors,
                    "where the raw floors run: helper (drover_floor, a separate small process; the default) or "
                    "in-process (no second process beside drover's spawns; docs/bench.md)")
        ->type_name("WHERE");
    sub->add_flag("--no-matrix", o->no_matrix, "skip the matrix (e.g. with --peers alone)");
    sub->add_option("--json", o->json, "write the full results as JSON (docs/bench-schema.md)");
    sub->add_option("--csv", o->csv, "write the results as CSV");
    sub->add_option("--markdown", o->markdown, "write the results as Markdown tables");
    sub->add_option("--svg", o->svg, "write charts (p50 per combination, stage breakdown) as SVG");
    sub->add_option("--profile", o->profile,
                    "record drover's own process with perf into this file and show where its share goes");
    auto co = std::make_shared<compare_options>();
    CLI::App* cmp = sub->add_subcommand(
        "compare", "compare runs (drover bench --json files): each against the first, per combination, "
                   "with 95 % intervals and a verdict");
    cmp->add_option("files", co->files, "two to six JSON reports; the first is the reference")->required();
    cmp->add_option("--markdown", co->markdown, "write the comparison as Markdown");
    cmp->add_option("--svg", co->svg, "write the comparison as an SVG chart");
    if (check) {
        *check = [o, cmp, co]() -> std::string {
            if (cmp->parsed())
                return co->files.size() < 2 ? "compare needs two or more JSON reports (drover bench --json)"
                                            : std::string{};
            try {
                make_config(*o);
                return {};
            } catch (const usage_problem& p) {
                return p.what;
            }
        };
    }
    return [o, cmp, co] { return cmp->parsed() ? run_compare(*co) : run_bench(*o); };
}

}  // namespace drover::cli
