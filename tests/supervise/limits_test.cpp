// cgroup limit tests: a bounded fork bomb stops at tasks_max, a bounded memory hog is
// OOM-killed and reported as such, the CPU quota is visible from inside the service.
#include <gtest/gtest.h>

#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;

struct limit_run {
    bool skipped = false;
    std::string why;
    service_status status;
    std::vector<std::string> lines;
};

limit_run run_limited(const std::string& script, resource_limits limits) {
    auto [log, sink] = drover::test::capture_logger();
    limit_run r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<limit_run> {
        supervisor_options o;
        o.log = log;
        supervisor sup(ex, o);
        limit_run out;
        if (sup.cgroup_roots().empty() || !sup.cgroup_warning().empty()) {
            out.skipped = true;
            out.why = "cgroup limits unavailable: " + sup.cgroup_warning();
            co_return out;
        }
        service_spec s;
        s.name = "limited";
        s.spawn.argv = {"/bin/sh", "-c", script};
        s.restart = restart_policy::never;
        s.limits = limits;
        sup.add(s);
        co_await sup.start();
        co_await sup.wait_until(
            [](const supervisor_status& st) {
                auto x = st.services[0].state;
                return x == service_state::exited || x == service_state::failed;
            },
            20s);
        out.status = sup.status().services[0];
        co_await sup.stop();
        co_return out;
    });
    r.lines = drover::test::service_lines(*sink, "limited");
    return r;
}

TEST(Limits, ForkBombStopsAtTasksMax) {
    // At most 300 forks; each child sleeps 5 s (the cgroup kill ends them at once).
    resource_limits l;
    l.tasks_max = 20;
    auto r = run_limited(
        "exec perl -e 'my $n = 0; for (1..300) { my $p = fork(); last unless defined $p; "
        "if ($p == 0) { sleep 5; exit 0 } $n++ } print \"forked $n\\n\"; exit 0'",
        l);
    if (r.skipped) GTEST_SKIP() << r.why;
    int forked = -1;
    for (const auto& line : r.lines)
        if (line.rfind("forked ", 0) == 0) forked = std::stoi(line.substr(7));
    ASSERT_GE(forked, 0) << "the bomb did not report";
    EXPECT_LT(forked, 20);  // the perl process itself is one of the 20
    EXPECT_GE(forked, 10);  // and the limit is not something much smaller by accident
    EXPECT_EQ(r.status.state, service_state::exited);
}

TEST(Limits, MemoryHogIsOomKilledAndReportedAsSuch) {
    // Touches at most 256 MiB, one MiB at a time, under a 32 MiB limit.
    resource_limits l;
    l.memory_max = 32ULL << 20;
    auto r = run_limited("exec perl -e 'my @a; for (1..256) { push @a, \"x\" x (1 << 20) } print \"survived\\n\"'", l);
    if (r.skipped) GTEST_SKIP() << r.why;
    EXPECT_EQ(std::find(r.lines.begin(), r.lines.end(), "survived"), r.lines.end());
    ASSERT_TRUE(r.status.last_exit.has_value());
    EXPECT_EQ(r.status.last_exit->signal(), SIGKILL) << r.status.last_exit->str();
    EXPECT_TRUE(r.status.last_oom_killed);
    EXPECT_EQ(r.status.state, service_state::failed);
}

TEST(Limits, CpuQuotaIsVisibleFromInside) {
    resource_limits l;
    l.cpu_quota = 0.5;
    // v1 (hybrid): cpu.cfs_quota_us of the service's own cpu cgroup; v2: cpu.max.
    auto r = run_limited(
        "p=$(grep -E '^[0-9]+:cpu(,[a-z]+)*:' /proc/self/cgroup | cut -d: -f3); "
        "if [ -n \"$p\" ] && [ -r /sys/fs/cgroup/cpu$p/cpu.cfs_quota_us ]; then "
        "echo quota $(cat /sys/fs/cgroup/cpu$p/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu$p/cpu.cfs_period_us); "
        "else p=$(grep '^0::' /proc/self/cgroup | cut -d: -f3); echo quota $(cat /sys/fs/cgroup$p/cpu.max); fi",
        l);
    if (r.skipped) GTEST_SKIP() << r.why;
    EXPECT_NE(std::find(r.lines.begin(), r.lines.end(), "quota 50000 100000"), r.lines.end())
        << (r.lines.empty() ? "" : r.lines.front());
}

}  // namespace
}  // namespace drover::supervise
