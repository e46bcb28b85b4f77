// Text reporters: the terminal table, CSV and Markdown.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <sstream>

#include "bench/report.hpp"
#include "bench/text.hpp"

namespace drover::bench {

namespace {

std::string ratio_text(double r) {
    return r > 0 ? fmt::format("{:.2f}×", r) : "–";
}

// "1.03× [0.99–1.07]": the ratio and its 95 % bootstrap interval.
std::string ratio_ci_text(double r, const interval& ci) {
    if (r <= 0) return "–";
    if (ci.high <= 0) return ratio_text(r);
    return fmt::format("{:.2f}× [{:.2f}–{:.2f}]", r, ci.low, ci.high);
}

// The floor's p50 with its method when it is not the usual one.
std::string floor_text(const combo_result& c) {
    if (!c.floor.n) return "–";
    return human_ns(c.floor.p50) + (c.floor_method == "fork" ? " (f)" : "");
}

std::string share_text(const combo_result& c, double ns) {
    return c.drover.n && c.floor.n ? human_ns(ns) : "–";
}

bool any_exit_to_callback(const bench_report& r) {
    return std::any_of(r.throughput.begin(), r.throughput.end(),
                       [](const throughput_result& t) { return t.exit_to_callback.n > 0; });
}

bool any_throughput_floor(const bench_report& r) {
    return std::any_of(r.throughput.begin(), r.throughput.end(),
                       [](const throughput_result& t) { return !t.floor_method.empty(); });
}

// "1234 (f, 64 p)": the floor's rate, its method when it is not the usual one and its process
// count when that is below the concurrency.
std::string throughput_floor_text(const throughput_result& t) {
    if (t.floor_method.empty()) return "–";
    std::string marks;
    if (t.floor_method == "fork") marks = "f";
    if (t.floor_processes < t.concurrency) marks += (marks.empty() ? "" : ", ") + std::to_string(t.floor_processes) + " p";
    return fmt::format("{:.0f}", t.floor_per_second) + (marks.empty() ? "" : " (" + marks + ")");
}

std::string spawn_threads_text(const bench_report& r) {
    return r.params.spawn_threads ? "drover with " + std::to_string(r.params.spawn_threads) + " spawn thread" +
                                        (r.params.spawn_threads == 1 ? "" : "s")
                                  : "drover's spawn threads not recorded";
}

// What the floor columns are, or why there are none.
std::string throughput_floor_line(const bench_report& r) {
    if (any_throughput_floor(r))
        return "floor: as many drover_floor processes as the concurrency (at most 64) each spawning the "
               "floor back to back for the same time, right after drover's point; ÷floor = drover's "
               "spawns/s ÷ the floor's; (f) fork-style, N p: capped at N processes (docs/bench.md)";
    for (const throughput_result& t : r.throughput)
        if (!t.floor_note.empty()) return "floor: not measured: " + t.floor_note;
    return "floor: not measured";
}

void warnings(std::ostringstream& o, const bench_report& r, const char* bullet) {
    if (r.warnings.empty()) return;
    o << "\nWarnings:\n";
    for (const std::string& w : r.warnings) o << bullet << w << "\n";
}

std::string failures_text(const failure_counts& f) {
    std::size_t n = 0;
    for (const auto& [why, k] : f) n += k;
    return std::to_string(n);
}

std::vector<const combo_result*> by_cost(const bench_report& r) {
    std::vector<const combo_result*> v;
    for (const combo_result& c : r.combos) v.push_back(&c);
    std::stable_sort(v.begin(), v.end(), [](const combo_result* a, const combo_result* b) {
        // Combinations without data (all refused) go last.
        if ((a->drover.n == 0) != (b->drover.n == 0)) return b->drover.n == 0;
        return a->drover.p50 < b->drover.p50;
    });
    return v;
}

const combo_result* find_combo(const bench_report& r, namespace_set s) {
    for (const combo_result& c : r.combos)
        if (c.set == s) return &c;
    return nullptr;
}

struct ratio_overview {
    double median = 0, worst = 0;
    std::string worst_set;
    std::size_t within = 0, measured = 0;
    bool vfork_only = false;
};

std::string overview_scope(const ratio_overview& ov) {
    return "over the " + std::to_string(ov.measured) + " combinations" +
           (ov.vfork_only ? " spawned vfork-style" : " (all spawned fork-style)");
}

// Over the combinations drover spawned posix_spawn-style (the 1.05× target is for those; a
// fork-style spawn pays for copying page tables the vfork floor does not copy).
// With no vfork-style spawn at all (a sanitizer build, DROVER_CLONE=fork), over every one.
ratio_overview overview(const bench_report& r) {
    ratio_overview o;
    std::vector<double> ratios;
    o.vfork_only = std::any_of(r.combos.begin(), r.combos.end(),
                               [](const combo_result& c) { return c.ratio() > 0 && c.drover_method == "vfork"; });
    for (const combo_result& c : r.combos) {
        double x = c.ratio();
        if (x <= 0 || (o.vfork_only && c.drover_method != "vfork")) continue;
        ratios.push_back(x);
        if (x <= 1.05) ++o.within;
        if (x > o.worst) {
            o.worst = x;
            o.worst_set = c.set.str();
        }
    }
    o.measured = ratios.size();
    std::sort(ratios.begin(), ratios.end());
    o.median = quantile_sorted(ratios, 0.5);
    return o;
}

const peer_result* find_peer(const bench_report& r, const std::string& name) {
    for (const peer_result& p : r.peers)
        if (p.name == name) return &p;
    return nullptr;
}

// How many times faster drover's direct spawn is than a peer, by p50.
double peer_speedup(const bench_report& r, const peer_result& p) {
    const peer_result* d = find_peer(r, "drover");
    if (!d || !d->ran || !p.ran || d->total.n == 0 || p.total.n == 0 || d->total.p50 <= 0) return 0;
    return p.total.p50 / d->total.p50;
}

// What warm sets buy, in one line: "drover-warm: 2.3× faster than cold drover; bwrap 7.1×,
// runc 24.0× slower than drover-warm." Empty when no warm run was measured.
std::string warm_line(const bench_report& r) {
    const peer_result* w = find_peer(r, "drover-warm");
    if (!w || !w->ran || w->total.n == 0 || w->total.p50 <= 0) return {};
    std::string line = "drover-warm:";
    const peer_result* d = find_peer(r, "drover");
    if (d && d->ran && d->total.n) line += " " + ratio_text(d->total.p50 / w->total.p50) + " faster than cold drover;";
    std::string slower;
    for (const peer_result& p : r.peers) {
        if (p.name.rfind("drover", 0) == 0 || !p.ran || p.total.n == 0) continue;
        slower += (slower.empty() ? " " : ", ") + p.name + " " + ratio_text(p.total.p50 / w->total.p50);
    }
    if (!slower.empty()) line += slower + " slower than drover-warm";
    if (line.back() == ';') line.pop_back();
    return line + ".";
}

void all_failures(std::ostringstream& o, const bench_report& r) {
    bool any = false;
    for (const combo_result& c : r.combos) {
        const std::pair<const char*, const failure_counts*> all[] = {
            {"drover", &c.drover_failures}, {"floor", &c.floor_failures},
            {"bare floor", &c.bare_failures}, {"fork floor", &c.fork_failures}};
        for (const auto& [who, f] : all) {
            for (const auto& [why, n] : *f) {
                if (!any)
                    o << "\nFailures (a combination the kernel refuses is reported, not fatal):\n";
                any = true;
                o << "  " << c.set.str() << " [" << who << "] ×" << n << ": " << why << "\n";
            }
        }
    }
}

}  // namespace

std::string human_ns(double ns) {
    if (ns < 0) return "−" + human_ns(-ns);
    if (std::fabs(ns) < 1e3) return fmt::format("{:.0f} ns", ns);
    if (std::fabs(ns) < 1e6) return fmt::format("{:.1f} µs", ns / 1e3);
    if (std::fabs(ns) < 1e9) return fmt::format("{:.2f} ms", ns / 1e6);
    return fmt::format("{:.2f} s", ns / 1e9);
}

namespace {

// --probe: the bare floor beside drover_raw_probe, both from the same shuffled order.
void probe_section(std::ostream& o, const bench_report& r) {
    bool any = false;
    for (const combo_result& c : r.combos) any = any || c.probe.n || !c.probe_failures.empty();
    if (!any) return;
    o << "\nIndependent probe (drover_raw_probe: glibc clone(CLONE_VM|CLONE_VFORK|ns…) + execve + "
         "waitpid, none of drover's code), in the same shuffled order as the bare floor:\n"
      << pad("namespaces", 40, false) << pad("bare floor", 12) << pad("probe", 12)
      << pad("bare ÷ probe", 14) << "\n";
    for (const combo_result& c : r.combos) {
        if (!c.probe.n && c.probe_failures.empty()) continue;
        o << pad(c.set.str(), 40, false) << pad(c.bare.n ? human_ns(c.bare.p50) : "–", 12)
          << pad(c.probe.n ? human_ns(c.probe.p50) : "–", 12)
          << pad(c.probe_check() > 0 ? ratio_text(c.probe_check()) : "–", 14);
        if (!c.probe_failures.empty())
            o << "   " << failures_text(c.probe_failures) << " failed: " << c.probe_failures.begin()->first;
        o << "\n";
    }
}

}  // namespace

std::string format_table(const bench_report& r) {
    std::ostringstream o;
    const machine_info& m = r.machine;
    o << "drover bench — " << m.date << ", kernel " << m.kernel << ", " << m.cpu_model << " ("
      << m.cores << " cores), cgroup " << m.cgroup_mode << ", drover " << m.drover_version << " ("
      << m.drover_commit << ")\n";
    o << "workload " << r.params.workload << ", " << r.params.count
      << " spawns per combination after " << r.params.warmup << " warm-up, seed " << r.params.seed
      << "; spawn→reap, drover and the raw floors interleaved\n";
    o << "drover's clone method " << (m.clone_method.empty() ? "–" : m.clone_method) << "; floors: "
      << (m.floor_source.empty() ? "–" : m.floor_source)
      << fmt::format("; load average {:.2f} → {:.2f}; CPU clock {:.0f} → {:.0f} MHz\n", m.load_before,
                     m.load_after, m.mhz_before, m.mhz_after);
    o << "floor: the fastest raw method (vfork-style; (f) fork-style, where vfork is not available) with "
         "drover's default setup; bare: namespaces only; fork: fork-style with the setup.\n"
         "drover's share = drover − floor; setup share = floor − bare (docs/bench.md)\n\n";
    if (!r.combos.empty()) {
        o << pad("namespaces", 37, false) << pad("p50", 10) << pad("p90", 10) << pad("floor", 14)
          << pad("÷floor [95% CI]", 22) << pad("bare", 10) << pad("fork", 10) << pad("÷fork", 8)
          << pad("drover's", 10) << pad("setup", 10) << "   stage p50: " << pad("prep", 9) << pad("clone", 9)
          << pad("maps", 9) << pad("setup", 9) << pad("exec", 9) << pad("run", 9) << pad("reap", 9)
          << pad("fail", 6) << "\n";
        for (const combo_result* c : by_cost(r)) {
            o << pad(c->set.str(), 37, false);
            if (c->drover.n)
                o << pad(human_ns(c->drover.p50), 10) << pad(human_ns(c->drover.p90), 10);
            else
                o << pad("refused", 10) << pad("", 10);
            o << pad(floor_text(*c), 14) << pad(ratio_ci_text(c->ratio(), c->ratio_ci), 22)
              << pad(c->bare.n ? human_ns(c->bare.p50) : "–", 10)
              << pad(c->fork.n ? human_ns(c->fork.p50) : "–", 10) << pad(ratio_text(c->fork_ratio()), 8)
              << pad(share_text(*c, c->drover_share()), 10)
              << pad(c->floor.n && c->bare.n ? human_ns(c->setup_share()) : "–", 10) << "              ";
            for (const summary& s : c->stages) o << pad(c->drover.n ? human_ns(s.p50) : "–", 9);
            o << pad(failures_text(c->drover_failures), 6) << "\n";
        }
        ratio_overview ov = overview(r);
        if (ov.measured)
            o << "\ndrover ÷ floor (p50), " << overview_scope(ov) << ": median " << ratio_text(ov.median) << ", worst " << ratio_text(ov.worst) << " (" << ov.worst_set << "); "
              << ov.within << " within the 1.05× target\n";
    }
    probe_section(o, r);
    if (!r.marginals.empty()) {
        o << "\nMarginal cost of each namespace (p50 of S minus p50 of S without it):\n"
          << pad("namespace", 11, false) << pad("alone", 11) << pad("median", 11) << pad("min", 11)
          << pad("max", 11) << pad("pairs", 7) << pad("floor median", 14) << "\n";
        for (const marginal& mg : r.marginals) {
            o << pad(std::string(ns_name(mg.what)), 11, false)
              << pad(mg.over_none ? human_ns(*mg.over_none) : "–", 11)
              << pad(human_ns(mg.median), 11) << pad(human_ns(mg.min), 11)
              << pad(human_ns(mg.max), 11) << pad(std::to_string(mg.pairs), 7);
            std::string fm = "–";
            for (const marginal& f : r.floor_marginals)
                if (f.what == mg.what) fm = human_ns(f.median);
            o << pad(fm, 14) << "\n";
        }
    }
    if (r.posix_spawn) {
        const peer_result& p = *r.posix_spawn;
        o << "\nposix_spawn baseline (no namespaces): ";
        if (!p.ran) {
            o << "not run: " << p.note << "\n";
        } else {
            o << "p50 " << human_ns(p.total.p50) << ", p90 " << human_ns(p.total.p90);
            if (const combo_result* none = find_combo(r, namespace_set{}); none && none->drover.n)
                o << "; drover (none) p50 " << human_ns(none->drover.p50) << " = "
                  << ratio_text(none->drover.p50 / p.total.p50) << " posix_spawn";
            o << "\n";
        }
    }
    if (!r.peers.empty()) {
        o << "\nPeers: " << r.peer_set
          << " running /bin/true, each spawned by drover (p50 spawn→reap)\n"
          << pad("tool", 12, false) << pad("p50", 11) << pad("p90", 11) << pad("max", 11)
          << pad("drover faster by", 18) << "   note\n";
        for (const peer_result& p : r.peers) {
            o << pad(p.name, 12, false);
            if (p.ran && p.total.n) {
                double x = peer_speedup(r, p);
                o << pad(human_ns(p.total.p50), 11) << pad(human_ns(p.total.p90), 11)
                  << pad(human_ns(p.total.max), 11)
                  << pad(p.name.rfind("drover", 0) == 0 ? "" : ratio_text(x), 18);
            } else {
                o << pad("skipped", 11) << pad("", 40);
            }
            o << "   " << p.note;
            if (!p.failures.empty()) o << " (" << failures_text(p.failures) << " failures)";
            o << "\n";
        }
        if (std::string w = warm_line(r); !w.empty()) o << w << "\n";
    }
    if (!r.throughput.empty()) {
        const bool floor = any_throughput_floor(r);
        o << "\nSustained throughput (" << r.params.duration << " s per point; " << spawn_threads_text(r)
          << "):\n" << throughput_floor_line(r) << "\n"
          << pad("namespaces", 37, false) << pad("conc", 6) << pad("spawns/s", 10);
        if (floor) o << pad("floor/s", 14) << pad("÷floor", 8);
        const bool exits = any_exit_to_callback(r);
        o << pad("p50", 11) << pad("p99", 11) << pad("first 10%", 11) << pad("last 10%", 11) << pad("drift", 8);
        if (exits) o << pad("exit→cb p50", 13) << pad("p99", 11);
        o << pad("fail", 6) << "\n";
        for (const throughput_result& t : r.throughput) {
            double drift = t.first_decile_p50 > 0 ? t.last_decile_p50 / t.first_decile_p50 : 0;
            o << pad(t.set.str(), 37, false) << pad(std::to_string(t.concurrency), 6)
              << pad(fmt::format("{:.0f}", t.per_second), 10);
            if (floor) o << pad(throughput_floor_text(t), 14) << pad(ratio_text(t.floor_ratio()), 8);
            o << pad(human_ns(t.latency.p50), 11) << pad(human_ns(t.latency.p99), 11)
              << pad(human_ns(t.first_decile_p50), 11) << pad(human_ns(t.last_decile_p50), 11)
              << pad(ratio_text(drift), 8);
            if (exits) o << pad(human_ns(t.exit_to_callback.p50), 13) << pad(human_ns(t.exit_to_callback.p99), 11);
            o << pad(failures_text(t.failures), 6) << "\n";
        }
    }
    all_failures(o, r);
    warnings(o, r, "  ");
    o << fmt::format("\n({:.1f} s)\n", r.elapsed);
    return o.str();
}

std::string format_csv(const bench_report& r) {
    std::ostringstream o;
    o << "section,namespaces,runner,stage,n,p50_ns,p90_ns,p99_ns,max_ns,min_ns,mean_ns,stddev_ns,"
         "ratio,failures\n";
    auto row = [&](const std::string& section, const std::string& set, const std::string& who,
                   const std::string& stage, const summary& s, double ratio,
                   const std::string& fails) {
        o << fmt::format("{},{},{},{},{},{:.0f},{:.0f},{:.0f},{:.0f},{:.0f},{:.0f},{:.0f},{},{}\n", section, set,
                         who, stage, s.n, s.p50, s.p90, s.p99, s.max, s.min, s.mean, s.stddev,
                         ratio > 0 ? fmt::format("{:.4f}", ratio) : "", fails);
    };
    for (const combo_result& c : r.combos) {
        std::string set = c.set.str();
        row("matrix", set, "drover", "total", c.drover, c.ratio(),
            failures_text(c.drover_failures));
        for (std::size_t k = 0; k < stage_names.size(); ++k)
            row("matrix", set, "drover", stage_names[k], c.stages[k], 0, "");
        row("matrix", set, "floor", "total", c.floor, 0, failures_text(c.floor_failures));
        row("matrix", set, "bare_floor", "total", c.bare, c.bare_ratio(), failures_text(c.bare_failures));
        row("matrix", set, "fork_floor", "total", c.fork, c.fork_ratio(), failures_text(c.fork_failures));
        if (c.probe.n || !c.probe_failures.empty())
            row("matrix", set, "raw_probe", "total", c.probe, c.drover.n && c.probe.n && c.probe.p50 > 0 ? c.drover.p50 / c.probe.p50 : 0,
                failures_text(c.probe_failures));
    }
    if (r.posix_spawn && r.posix_spawn->ran)
        row("baseline", "none", "posix_spawn", "total", r.posix_spawn->total, 0,
            failures_text(r.posix_spawn->failures));
    for (const peer_result& p : r.peers)
        if (p.ran)
            row("peers", r.peer_set, p.name, "total", p.total, peer_speedup(r, p),
                failures_text(p.failures));
    for (const throughput_result& t : r.throughput)
        row("throughput", t.set.str(), "drover",
            "c" + std::to_string(t.concurrency) + "@" + fmt::format("{:.0f}", t.per_second) + "/s", t.latency,
            t.first_decile_p50 > 0 ? t.last_decile_p50 / t.first_decile_p50 : 0,
            failures_text(t.failures));
    for (const throughput_result& t : r.throughput)
        if (t.exit_to_callback.n)
            row("throughput", t.set.str(), "drover", "c" + std::to_string(t.concurrency) + " exit_to_callback",
                t.exit_to_callback, 0, "");
    return o.str();
}

std::string format_markdown(const bench_report& r) {
    std::ostringstream o;
    const machine_info& m = r.machine;
    o << "Measured " << m.date << " on " << m.cpu_model << " (" << m.cores << " cores), kernel "
      << m.kernel << ", cgroup " << m.cgroup_mode << ", drover " << m.drover_version << " ("
      << m.drover_commit << "); workload `" << r.params.workload << "`, " << r.params.count
      << " spawns per combination, seed " << r.params.seed << "; drover's clone method "
      << (m.clone_method.empty() ? "–" : m.clone_method) << "; floors: " << m.floor_source
      << fmt::format("; load average {:.2f} before, {:.2f} after.\n\n", m.load_before, m.load_after);
    if (!r.combos.empty()) {
        o << "The floor is the fastest raw method (vfork-style; *(f)* fork-style, where vfork is not "
             "available) doing drover's default setup; *bare* creates the namespaces only; *fork* is the "
             "fork-style floor with the setup. drover's share is drover − floor, the setup share "
             "floor − bare (p50; [docs/bench.md](docs/bench.md)).\n\n"
          << "| namespaces | drover p50 | p90 | floor p50 | drover ÷ floor [95 % CI] | bare p50 | fork p50 "
             "| drover ÷ fork | drover's share | setup share | prepare | clone | id maps | setup | exec "
             "| run | reap | failures |\n"
          << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for (const combo_result* c : by_cost(r)) {
            o << "| " << c->set.str() << " | " << human_ns(c->drover.p50) << " | "
              << human_ns(c->drover.p90) << " | " << floor_text(*c) << " | "
              << ratio_ci_text(c->ratio(), c->ratio_ci) << " | " << (c->bare.n ? human_ns(c->bare.p50) : "–")
              << " | " << (c->fork.n ? human_ns(c->fork.p50) : "–") << " | " << ratio_text(c->fork_ratio())
              << " | " << share_text(*c, c->drover_share()) << " | "
              << (c->floor.n && c->bare.n ? human_ns(c->setup_share()) : "–");
            for (const summary& s : c->stages) o << " | " << human_ns(s.p50);
            o << " | " << failures_text(c->drover_failures) << " |\n";
        }
        ratio_overview ov = overview(r);
        if (ov.measured)
            o << "\ndrover ÷ floor (p50), " << overview_scope(ov) << ": median " << ratio_text(ov.median) << ", worst "
              << ratio_text(ov.worst) << " (" << ov.worst_set << "); " << ov.within << " within 1.05×.\n";
    }
    if (!r.marginals.empty()) {
        o << "\n| namespace | alone | median marginal | min | max | pairs "
             "|\n|---|---:|---:|---:|---:|---:|\n";
        for (const marginal& mg : r.marginals)
            o << "| " << ns_name(mg.what) << " | " << (mg.over_none ? human_ns(*mg.over_none) : "–")
              << " | " << human_ns(mg.median) << " | " << human_ns(mg.min) << " | "
              << human_ns(mg.max) << " | " << mg.pairs << " |\n";
    }
    if (r.posix_spawn && r.posix_spawn->ran)
        o << "\nposix_spawn (no namespaces): p50 " << human_ns(r.posix_spawn->total.p50) << ".\n";
    if (!r.peers.empty()) {
        o << "\n| " << r.peer_set
          << ", /bin/true | p50 | p90 | drover faster by | note |\n|---|---:|---:|---:|---|\n";
        for (const peer_result& p : r.peers) {
            if (p.ran && p.total.n)
                o << "| " << p.name << " | " << human_ns(p.total.p50) << " | "
                  << human_ns(p.total.p90) << " | "
                  << (p.name.rfind("drover", 0) == 0 ? "" : ratio_text(peer_speedup(r, p))) << " | " << p.note
                  << " |\n";
            else
                o << "| " << p.name << " | skipped | | | " << p.note << " |\n";
        }
        if (std::string w = warm_line(r); !w.empty()) o << "\n" << w << "\n";
    }
    if (!r.throughput.empty()) {
        const bool floor = any_throughput_floor(r);
        const bool exits = any_exit_to_callback(r);
        o << "\nSustained throughput, " << r.params.duration << " s per point, " << spawn_threads_text(r) << ". "
          << throughput_floor_line(r) << "\n\n| namespaces | concurrency | spawns/s | "
          << (floor ? "floor spawns/s | drover ÷ floor | " : "") << "p50 | p99 | first 10% p50 | last 10% p50 |"
          << (exits ? " exit→callback p50 | exit→callback p99 |" : "") << "\n|---|---:|---:|"
          << (floor ? "---:|---:|" : "") << "---:|---:|---:|---:|" << (exits ? "---:|---:|" : "") << "\n";
        for (const throughput_result& t : r.throughput) {
            o << "| " << t.set.str() << " | " << t.concurrency << " | " << fmt::format("{:.0f}", t.per_second) << " | ";
            if (floor) o << throughput_floor_text(t) << " | " << ratio_text(t.floor_ratio()) << " | ";
            o << human_ns(t.latency.p50) << " | " << human_ns(t.latency.p99) << " | " << human_ns(t.first_decile_p50)
              << " | " << human_ns(t.last_decile_p50) << " |";
            if (exits) o << " " << human_ns(t.exit_to_callback.p50) << " | " << human_ns(t.exit_to_callback.p99) << " |";
            o << "\n";
        }
    }
    warnings(o, r, "- ");
    return o.str();
}

}  // namespace drover::bench
