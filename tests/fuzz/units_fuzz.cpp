// units_fuzz: the small parsers of things people type — sizes, durations, integers, signals,
// CPU shares, id ranges, rlimit and capability names, namespace sets, restart policies,
// seccomp actions, `exec` command lines, bench workloads and --ns selections. Each gets the
// whole input; what they accept must be in range and survive a round trip through its text.
#include <signal.h>
#include <string.h>

#include <cmath>

#include "bench/runner.hpp"
#include "drover/spawn/namespaces.hpp"
#include "drover/spawn/sandbox.hpp"
#include "drover/spawn/seccomp.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/units.hpp"
#include "drover/supervise/config.hpp"
#include "drover/supervise/service.hpp"
#include "fuzz.hpp"

using namespace drover;
using fuzz::expect;

namespace {

void sizes(std::string_view t) {
    auto v = parse_size(t);
    if (!v) return;
    expect(parse_size(std::to_string(*v)) == v, "parse_size: the number printed reads back");
    expect(supervise::parse_size(t) == v, "supervise::parse_size is parse_size");
}

void durations(std::string_view t) {
    using namespace std::chrono;
    auto d = parse_duration(t);
    if (d) expect(d->count() >= 0 && *d <= hours(24 * 366), "parse_duration: within 0..max");
    auto small = parse_duration(t, seconds(1));
    if (small)
        expect(small->count() >= 0 && *small <= seconds(1), "parse_duration: within a given max");
    auto big = parse_duration(t, nanoseconds::max());
    if (big) expect(big->count() >= 0, "parse_duration: not negative with the largest max");
}

void integers(std::string_view t) {
    const std::pair<std::int64_t, std::int64_t> ranges[] = {
        {0, 4294967294LL}, {1, 4194304}, {INT64_MIN, INT64_MAX}, {0, 1 << 20}};
    for (auto [lo, hi] : ranges) {
        auto v = parse_integer(t, lo, hi);
        if (!v) continue;
        expect(*v >= lo && *v <= hi, "parse_integer: within lo..hi");
        expect(parse_integer(std::to_string(*v), lo, hi) == v,
               "parse_integer: the number printed reads back");
    }
}

void signals(std::string_view t) {
    auto s = parse_signal(t);
    if (!s) return;
    expect(*s > 0 && *s < NSIG, "parse_signal: a signal number");
    if (const char* name = ::sigabbrev_np(*s))
        expect(parse_signal(std::string("SIG") + name) == s, "parse_signal: its name reads back");
}

void cpu_shares(std::string_view t) {
    auto c = parse_cpu_share(t);
    if (c) expect(std::isfinite(*c) && *c > 0 && *c <= 1024, "parse_cpu_share: within (0, 1024]");
}

void names(std::string_view t) {
    if (auto r = parse_id_range(t)) {
        std::string back = std::to_string(r->inner) + ":" + std::to_string(r->outer) + ":" +
                           std::to_string(r->count);
        expect(parse_id_range(back) == r, "parse_id_range: its text reads back");
    }
    if (auto r = parse_rlimit(t))
        expect(parse_rlimit(rlimit_name(*r)) == r, "parse_rlimit: its name reads back");
    if (auto c = parse_capability(t))
        expect(parse_capability(capability_name(*c)) == c, "parse_capability: its name reads back");
    if (auto n = parse_ns(t)) expect(parse_ns(ns_name(*n)) == n, "parse_ns: its name reads back");
    std::string bad;
    if (auto s = namespace_set::parse(t, &bad))
        expect(namespace_set::parse(s->str()) == s, "namespace_set::parse: its text reads back");
    if (auto p = supervise::parse_restart_policy(t))
        expect(supervise::parse_restart_policy(supervise::restart_policy_name(*p)) == p,
               "parse_restart_policy: its name reads back");
    if (auto a = seccomp_action::parse(t))
        expect(seccomp_action::parse(a->str()) == a, "seccomp_action: its text reads back");
}

void commands(std::string_view t) {
    if (auto argv = supervise::split_command(t)) {
        // Re-quoted word by word, the words read back as they are.
        std::string again;
        for (const std::string& w : *argv) {
            again += '\'';
            for (char c : w) {
                if (c == '\'')
                    again += "'\\''";
                else
                    again += c;
            }
            again += "' ";
        }
        expect(supervise::split_command(again) == argv, "split_command: quoted words read back");
    }
    if (auto w = bench::parse_workload(t)) {
        if (w->how != bench::workload::kind::exec_static)
            expect(bench::parse_workload(w->str()).has_value(),
                   "parse_workload: its text reads back");
    }
    std::vector<namespace_set> sets;
    std::string bad;
    if (bench::parse_ns_selection(t, sets, bad))
        expect(!sets.empty(), "parse_ns_selection: at least one set");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view t = fuzz::text(data, size);
    sizes(t);
    durations(t);
    integers(t);
    signals(t);
    cpu_shares(t);
    names(t);
    commands(t);
    return 0;
}
