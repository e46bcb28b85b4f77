// The metadata of a run: which machine, kernel, cgroup mode and drover build produced it.
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>

#include "bench/runner.hpp"
#ifdef DROVER_BENCH_COMMIT_HEADER
#include "drover_bench_commit.h"  // DROVER_BENCH_COMMIT, stamped at build time
#endif

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace drover::bench {

namespace {

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos)
                return line.substr(line.find_first_not_of(' ', colon + 1));
        }
    }
    return "unknown";
}

bool is_cgroup2(const char* path) {
    struct statfs st {};
    return ::statfs(path, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

std::string cgroup_mode() {
    if (is_cgroup2("/sys/fs/cgroup")) return "v2";
    if (is_cgroup2("/sys/fs/cgroup/unified")) return "hybrid";
    return "v1";
}

}  // namespace

machine_info describe_machine() {
    machine_info m;
    char date[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    m.date = date;
    struct utsname u {};
    ::uname(&u);
    m.kernel = u.release;
    m.cpu_model = cpu_model();
    m.cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    m.cgroup_mode = cgroup_mode();
#ifdef DROVER_BENCH_VERSION
    m.drover_version = DROVER_BENCH_VERSION;
#else
    m.drover_version = "unknown";
#endif
#ifdef DROVER_BENCH_COMMIT
    m.drover_commit = DROVER_BENCH_COMMIT;
#else
    m.drover_commit = "unknown";
#endif
    m.load_before = load_average();
    m.mhz_before = cpu_mhz();
    return m;
}

double cpu_mhz() {
    const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
    double sum = 0;
    int seen = 0;
    for (long i = 0; i < cpus && i < 4096; ++i) {
        std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(i) + "/cpufreq/scaling_cur_freq");
        double khz = 0;
        if (f >> khz && khz > 0) {
            sum += khz / 1000;
            ++seen;
        }
    }
    if (seen) return sum / seen;
    // No cpufreq (a VM, often): what the kernel last read per CPU.
    std::ifstream info("/proc/cpuinfo");
    std::string line;
    for (int lines = 0; lines < 100'000 && std::getline(info, line); ++lines) {
        if (!line.starts_with("cpu MHz")) continue;
        auto colon = line.find(':');
        double mhz = 0;
        if (colon != std::string::npos && std::istringstream(line.substr(colon + 1)) >> mhz && mhz > 0) {
            sum += mhz;
            ++seen;
        }
    }
    return seen ? sum / seen : 0;
}

double load_average() {
    std::ifstream in("/proc/loadavg");
    double one = 0;
    if (!(in >> one)) return 0;
    return one;
}

namespace {

std::string percent(double x) {
    std::ostringstream o;
    o.precision(0);
    o << std::fixed << x * 100 << " %";
    return o.str();
}

std::string fixed1(double x) {
    std::ostringstream o;
    o.precision(1);
    o << std::fixed << x;
    return o.str();
}

// The worst of one property over every combination and runner, with where it was.
struct worst {
    double value = 0;
    std::string where;
    std::size_t count = 0;
    void see(double v, bool bad, const std::string& at) {
        if (!bad) return;
        ++count;
        if (v > value) {
            value = v;
            where = at;
        }
    }
};

}  // namespace

void notice_noise(bench_report& r) {
    const std::string advice = "re-run on an idle machine, pinned to one CPU (taskset -c 1), or with a larger -n";
    worst cv, outliers, bimodal;
    for (const combo_result& c : r.combos) {
        const std::pair<const char*, const summary*> runners[] = {
            {"drover", &c.drover}, {"floor", &c.floor}, {"bare floor", &c.bare}, {"fork floor", &c.fork}};
        for (const auto& [name, s] : runners) {
            if (s->n < 2) continue;
            const std::string at = c.set.str() + " (" + name + ")";
            cv.see(s->cv(), s->cv() > 0.30, at);
            double share = static_cast<double>(s->outliers) / static_cast<double>(s->n);
            outliers.see(share, share > 0.10, at);
            bimodal.see(1, s->bimodal, at);
        }
    }
    if (cv.count)
        r.warnings.push_back(std::to_string(cv.count) + " sample sets vary by more than 30 % of their mean (worst: " +
                             cv.where + ", coefficient of variation " + percent(cv.value) + "): " + advice);
    if (outliers.count)
        r.warnings.push_back(std::to_string(outliers.count) +
                             " sample sets have more than 10 % outliers beyond Tukey's fences (worst: " +
                             outliers.where + ", " + percent(outliers.value) + "): " + advice);
    if (bimodal.count)
        r.warnings.push_back(std::to_string(bimodal.count) + " sample sets fall into two clusters (first: " +
                             bimodal.where +
                             "): something else ran part of the time (another job, CPU frequency or "
                             "migration between CPUs); " + advice);
    const double cores = std::max(1, r.machine.cores);
    const double busy = std::max(r.machine.load_before, r.machine.load_after);
    if (busy > 0.5 * cores || r.machine.load_after - r.machine.load_before > 0.5)
        r.warnings.push_back("the machine was busy: load average " + fixed1(r.machine.load_before) + " before, " +
                             fixed1(r.machine.load_after) + " after, on " + std::to_string(r.machine.cores) +
                             " CPUs; ratios hold up better than absolute times, but " + advice);
    const double from = r.machine.mhz_before, to = r.machine.mhz_after;
    if (from > 0 && to > 0 && std::abs(to - from) > 0.05 * from)
        r.warnings.push_back("the CPU clock changed during the run: " + fixed1(from) + " MHz before, " + fixed1(to) +
                             " after; times taken at different clocks do not compare: fix the clock (cpupower "
                             "frequency-set -g performance) or " + advice);
    for (const throughput_result& t : r.throughput)
        if (!t.floor_note.empty()) {
            r.warnings.push_back("the throughput floor was not measured (" + t.floor_note +
                                 "): there is no drover ÷ floor for throughput; build drover_floor or point "
                                 "DROVER_FLOOR at it");
            break;
        }
    if (r.machine.floor_source == std::string("in-process: ") + floors_asked_in_process)
        r.warnings.push_back("the floors ran inside drover's process (--floors in-process): the vfork floors cost the "
                             "same there, the fork-style floor pays for drover's page tables");
    else if (r.machine.floor_source.starts_with("in-process"))
        r.warnings.push_back("the floors ran inside drover's process (" + r.machine.floor_source +
                             "): the fork-style floor pays for drover's page tables; build drover_floor "
                             "or point DROVER_FLOOR at it");
}

}  // namespace drover::bench
