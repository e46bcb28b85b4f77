// Supervisor tests: restart arithmetic (with the test's own clock), restart policies against
// real children (measured with tolerance), stop escalation, whole-tree kill, readiness order,
// reload diff, bounded logging and the JSON state.
#include <gtest/gtest.h>

#include "drover/supervise/config.hpp"
#include "drover/supervise/json.hpp"
#include "drover/process/spawn_threads.hpp"
#include <set>
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;
using drover::test::quiet;
using drover::test::svc;
using drover::test::helper;

double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ---- restart arithmetic, on the test's clock --------------------------------------------

TEST(Backoff, GrowsExponentiallyUpToTheCap) {
    backoff_policy b{100ms, 1s, 2.0, 0.0};
    EXPECT_EQ(b.delay(0, 0.5), 100ms);
    EXPECT_EQ(b.delay(1, 0.5), 200ms);
    EXPECT_EQ(b.delay(3, 0.5), 800ms);
    EXPECT_EQ(b.delay(4, 0.5), 1s);
    EXPECT_EQ(b.delay(1000, 0.5), 1s);  // no overflow far out
}

TEST(Backoff, JitterStaysWithinItsBand) {
    backoff_policy b{100ms, 10s, 2.0, 0.25};
    EXPECT_EQ(b.delay(0, 0.0), 75ms);
    EXPECT_EQ(b.delay(0, 1.0), 125ms);
    EXPECT_EQ(b.delay(0, 0.5), 100ms);
    EXPECT_EQ(b.delay(2, 0.0), 300ms);
}

TEST(RestartTracker, RefusesTheRestartBeyondTheBurst) {
    restart_tracker t({10ms, 1s, 2.0, 0.0}, {3, 10s});
    clock::time_point t0{};
    EXPECT_EQ(t.next(t0, t0 + 1s, 0.5), 10ms);
    EXPECT_EQ(t.next(t0 + 1s, t0 + 2s, 0.5), 20ms);
    EXPECT_EQ(t.next(t0 + 2s, t0 + 3s, 0.5), 40ms);
    EXPECT_FALSE(t.next(t0 + 3s, t0 + 4s, 0.5).has_value());
}

TEST(RestartTracker, WindowSlidesAndAHealthyRunResetsBackoff) {
    restart_tracker t({10ms, 1s, 2.0, 0.0}, {2, 10s});
    clock::time_point t0{};
    EXPECT_EQ(t.next(t0, t0 + 1s, 0.5), 10ms);
    EXPECT_EQ(t.next(t0 + 1s, t0 + 2s, 0.5), 20ms);
    // 12 s in: the restart at 1 s has left the window, and this run lasted 10 s: healthy.
    EXPECT_EQ(t.next(t0 + 2s, t0 + 12s, 0.5), 10ms);
    EXPECT_EQ(t.next(t0 + 12s, t0 + 12s + 1ms, 0.5), 20ms);
    EXPECT_FALSE(t.next(t0 + 12s, t0 + 12s + 2ms, 0.5).has_value());
}

TEST(ServiceSpec, ValidationNamesTheField) {
    auto s = svc("bad name", {"true"});
    EXPECT_NE(validate(s).find("name:"), std::string::npos);
    s = svc("ok", {});
    EXPECT_NE(validate(s).find("exec:"), std::string::npos);
    s = svc("ok", {"true"});
    s.after = {"ok"};
    EXPECT_NE(validate(s).find("after:"), std::string::npos);
    EXPECT_EQ(validate(svc("ok", {"true"})), "");
}

// ---- restart policies against real children ---------------------------------------------

struct policy_result {
    supervisor_status status;
    double elapsed = 0;
};

policy_result run_until_settled(service_spec spec, std::chrono::milliseconds timeout = 5s) {
    auto [log, sink] = drover::test::capture_logger();
    return drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<policy_result> {
        supervisor sup(ex, quiet(log));
        sup.add(spec);
        auto t0 = clock::now();
        co_await sup.start();
        co_await sup.wait_until(
            [](const supervisor_status& s) {
                auto st = s.services[0].state;
                return st == service_state::failed || st == service_state::exited;
            },
            timeout);
        policy_result r{sup.status(), seconds(clock::now() - t0)};
        co_await sup.stop();
        co_return r;
    });
}

TEST(Supervisor, OnFailureRestartsWithBackoffUntilTheIntensityIsExceeded) {
    auto s = svc("crash", {helper, "exit", "3"});
    s.restart = restart_policy::on_failure;
    s.backoff = {50ms, 1s, 2.0, 0.0};
    s.intensity = {3, 10s};
    auto r = run_until_settled(s);
    const auto& st = r.status.services[0];
    EXPECT_EQ(st.state, service_state::failed);
    EXPECT_EQ(st.restarts, 3U);
    ASSERT_TRUE(st.last_exit.has_value());
    EXPECT_EQ(st.last_exit->code(), 3);
    EXPECT_NE(st.last_error.find("restart limit"), std::string::npos) << st.last_error;
    // Delays 50 + 100 + 200 ms: a lower bound only (the machine may be slow, never fast).
    EXPECT_GE(r.elapsed, 0.35);
}

TEST(Supervisor, OnFailureLeavesASuccessfulExitAlone) {
    auto s = svc("once", {helper, "exit", "0"});
    s.restart = restart_policy::on_failure;
    auto r = run_until_settled(s);
    EXPECT_EQ(r.status.services[0].state, service_state::exited);
    EXPECT_EQ(r.status.services[0].restarts, 0U);
}

TEST(Supervisor, AlwaysRestartsEvenOnSuccess) {
    auto s = svc("again", {helper, "exit", "0"});
    s.restart = restart_policy::always;
    s.intensity = {2, 10s};
    auto r = run_until_settled(s);
    EXPECT_EQ(r.status.services[0].state, service_state::failed);
    EXPECT_EQ(r.status.services[0].restarts, 2U);
}

TEST(Supervisor, NeverDoesNotRestartAFailure) {
    auto s = svc("never", {helper, "exit", "4"});
    s.restart = restart_policy::never;
    auto r = run_until_settled(s);
    EXPECT_EQ(r.status.services[0].state, service_state::failed);
    EXPECT_EQ(r.status.services[0].restarts, 0U);
    EXPECT_EQ(r.status.services[0].last_exit->code(), 4);
}

TEST(Supervisor, AStartFailureIsReportedAndCountsTowardTheLimit) {
    auto s = svc("missing", {"/nonexistent/drover-test-program"});
    s.intensity = {2, 10s};
    auto r = run_until_settled(s);
    const auto& st = r.status.services[0];
    EXPECT_EQ(st.state, service_state::failed);
    EXPECT_EQ(st.restarts, 2U);
    EXPECT_NE(st.last_error.find("restart limit"), std::string::npos);
}

TEST(Supervisor, CrashLoopDoesNotSpin) {
    // A service that dies at once, many times: the supervisor's CPU time stays small because
    // every restart waits for its backoff delay.
    auto s = svc("loop", {helper, "exit", "1"});
    s.backoff = {10ms, 40ms, 2.0, 0.5};
    s.intensity = {15, 60s};
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    auto r = run_until_settled(s, 10s);
    ::getrusage(RUSAGE_SELF, &after);
    EXPECT_EQ(r.status.services[0].restarts, 15U);
    auto cpu = [](const rusage& u) {
        return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    };
    // 15 restarts with >= 10..40 ms each between them: well over 0.3 s of wall time.
    EXPECT_GE(r.elapsed, 0.3);
    EXPECT_LT(cpu(after) - cpu(before), r.elapsed);  // not busy-waiting
}

// ---- stop --------------------------------------------------------------------------------

struct stop_result {
    supervisor_status after;
    double stop_seconds = 0;
    std::vector<pid_t> grandchildren;
    std::string cgroup;
};

stop_result start_then_stop(service_spec spec, std::size_t wait_pids = 0, std::string wait_line = {}) {
    auto [log, sink] = drover::test::capture_logger();
    return drover::test::run_on_loop([&, log = log, sink = sink](asio::any_io_executor ex) -> asio::awaitable<stop_result> {
        supervisor sup(ex, quiet(log));
        sup.add(spec);
        co_await sup.start();
        stop_result r;
        co_await sup.wait_until([](const supervisor_status& s) { return s.services[0].state == service_state::running; }, 5s);
        r.cgroup = sup.status().services[0].cgroup;
        if (wait_pids) r.grandchildren = co_await drover::test::logged_pids(*sink, spec.name, wait_pids, 5000ms);
        if (!wait_line.empty()) {
            const std::function<bool(const std::vector<std::string>&)> logged = [&](const std::vector<std::string>&) {
                auto lines = drover::test::service_lines(*sink, spec.name);
                return std::find(lines.begin(), lines.end(), wait_line) != lines.end();
            };
            (void)co_await drover::test::wait_for_lines(*sink, logged, 5000ms);
        }
        auto t0 = clock::now();
        co_await sup.stop();
        r.stop_seconds = seconds(clock::now() - t0);
        r.after = sup.status();
        co_return r;
    });
}

TEST(Supervisor, StopSendsTheStopSignal) {
    auto s = svc("sleeper", {helper, "sleep", "30"});
    s.stop_signal = SIGINT;
    auto r = start_then_stop(s);
    const auto& st = r.after.services[0];
    EXPECT_EQ(st.state, service_state::stopped);
    ASSERT_TRUE(st.last_exit.has_value());
    EXPECT_EQ(st.last_exit->signal(), SIGINT);
    EXPECT_LT(r.stop_seconds, 1.0);
}

TEST(Supervisor, StopEscalatesToSigkillAfterTheTimeout) {
    auto s = svc("stubborn", {helper, "ignore-term", "30"});
    s.stop_timeout = 300ms;
    auto r = start_then_stop(s, 0, "ready");
    const auto& st = r.after.services[0];
    ASSERT_TRUE(st.last_exit.has_value());
    EXPECT_EQ(st.last_exit->signal(), SIGKILL) << st.last_exit->str();
    EXPECT_GE(r.stop_seconds, 0.29);
    EXPECT_EQ(st.state, service_state::stopped);
}

TEST(Supervisor, StopKillsGrandchildrenThatDoubleForked) {
    auto s = svc("forker", {"/bin/sh", "-c", std::string(helper) + " spawn-orphans 3 30; exec sleep 30"});
    auto r = start_then_stop(s, 3);
    ASSERT_EQ(r.grandchildren.size(), 3U);
    auto left = drover::test::wait_gone(r.grandchildren, 1000ms);
    drover::test::kill_pids(left);
    EXPECT_TRUE(left.empty()) << left.size() << " grandchildren survived the stop";
    if (!r.cgroup.empty()) {
        EXPECT_FALSE(drover::test::exists(r.cgroup)) << r.cgroup;
    }
}

TEST(Supervisor, MainExitTakesItsLeftoversAlong) {
    // The main process exits at once; its double-forked children must not outlive the run.
    auto [log, sink] = drover::test::capture_logger();
    auto pids = drover::test::run_on_loop([&, log = log, sink = sink](asio::any_io_executor ex) -> asio::awaitable<std::vector<pid_t>> {
        supervisor sup(ex, quiet(log));
        if (!sup.cgroup_warning().empty() || sup.cgroup_roots().empty()) co_return std::vector<pid_t>{-1};
        auto s = svc("parent", {helper, "spawn-orphans", "2", "30"});
        s.restart = restart_policy::never;
        sup.add(s);
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& st) { return st.services[0].state == service_state::exited; }, 5s);
        auto p = co_await drover::test::logged_pids(*sink, "parent", 2, 2000ms);
        co_await sup.stop();
        co_return p;
    });
    if (pids == std::vector<pid_t>{-1}) GTEST_SKIP() << "no cgroups on this host";
    ASSERT_EQ(pids.size(), 2U);
    auto left = drover::test::wait_gone(pids, 1000ms);
    drover::test::kill_pids(left);
    EXPECT_TRUE(left.empty());
}

// ---- readiness and order ------------------------------------------------------------------

TEST(Supervisor, AServiceAfterANotifyServiceStartsOnlyOnceItIsReady) {
    auto [log, sink] = drover::test::capture_logger();
    struct seen {
        service_state b_while_a_starting = service_state::stopped;
        service_state a_when_b_started = service_state::stopped;
        double b_start = 0;
    };
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<seen> {
        supervisor sup(ex, quiet(log));
        auto a = svc("a", {"/bin/sh", "-c", "sleep 0.3; echo READY=1 >&$NOTIFY_FD; exec sleep 30"});
        a.ready = readiness::notify;
        auto b = svc("b", {helper, "sleep", "30"});
        b.after = {"a"};
        sup.add(b);  // added first: order comes from `after`, not from insertion
        sup.add(a);
        seen out;
        auto t0 = clock::now();
        co_await sup.start();
        // a runs but is not ready yet (0.3 s): b, after it, must still wait. (Without the
        // order b would have been started beside a by now.)
        co_await sup.wait_until([](const supervisor_status& s) { return s.find("a")->state == service_state::starting; }, 5s);
        out.b_while_a_starting = sup.status().find("b")->state;
        co_await sup.wait_until([](const supervisor_status& s) { return s.find("b")->pid != 0; }, 5s);
        out.b_start = seconds(clock::now() - t0);
        out.a_when_b_started = sup.status().find("a")->state;
        co_await sup.stop();
        co_return out;
    });
    EXPECT_EQ(r.b_while_a_starting, service_state::waiting);
    EXPECT_EQ(r.a_when_b_started, service_state::running);
    EXPECT_GE(r.b_start, 0.25);
}

TEST(Supervisor, DependencyCycleIsRefusedAndNothingStarts) {
    auto [log, sink] = drover::test::capture_logger();
    std::string error;
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        supervisor sup(ex, quiet(log));
        auto a = svc("a", {helper, "sleep", "30"});
        a.after = {"b"};
        auto b = svc("b", {helper, "sleep", "30"});
        b.after = {"a"};
        sup.add(a);
        sup.add(b);
        try {
            co_await sup.start();
        } catch (const std::invalid_argument& e) {
            error = e.what();
        }
        for (const auto& s : sup.status().services) EXPECT_EQ(s.pid, 0);
    });
    EXPECT_NE(error.find("cycle"), std::string::npos) << error;
}

// ---- reload ---------------------------------------------------------------------------------

TEST(Supervisor, ReloadStartsAddedStopsRemovedRestartsChangedKeepsTheRest) {
    auto [log, sink] = drover::test::capture_logger();
    auto make = [](std::string name, std::string fp) {
        auto s = svc(std::move(name), {helper, "sleep", "30"});
        s.fingerprint = std::move(fp);
        return s;
    };
    struct pids {
        pid_t keep0, keep1, change0, change1;
        bool removed_gone, added_running;
    };
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<pids> {
        supervisor sup(ex, quiet(log));
        sup.add(make("keep", "1"));
        sup.add(make("change", "1"));
        sup.add(make("remove", "1"));
        co_await sup.start();
        auto all_running = [](const supervisor_status& s) {
            for (const auto& x : s.services)
                if (x.state != service_state::running) return false;
            return true;
        };
        co_await sup.wait_until(all_running, 5s);
        pids p{};
        p.keep0 = sup.status().find("keep")->pid;
        p.change0 = sup.status().find("change")->pid;
        std::vector<service_spec> next;
        next.push_back(make("keep", "1"));
        next.push_back(make("change", "2"));
        next.push_back(make("add", "1"));
        co_await sup.reload(std::move(next));
        co_await sup.wait_until(all_running, 5s);
        auto st = sup.status();
        p.keep1 = st.find("keep")->pid;
        p.change1 = st.find("change")->pid;
        p.removed_gone = st.find("remove") == nullptr;
        p.added_running = st.find("add") && st.find("add")->state == service_state::running;
        co_await sup.stop();
        co_return p;
    });
    EXPECT_EQ(r.keep0, r.keep1);
    EXPECT_NE(r.change0, r.change1);
    EXPECT_TRUE(r.removed_gone);
    EXPECT_TRUE(r.added_running);
}

// ---- logging and state -------------------------------------------------------------------

TEST(Supervisor, OutputIsLoggedPerServiceInBoundedLines) {
    auto [log, sink] = drover::test::capture_logger();
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        auto o = quiet(log);
        o.max_line = 1000;
        supervisor sup(ex, o);
        auto s = svc("talker", {"/bin/sh", "-c", "echo hello; echo oops >&2; head -c 300000 /dev/zero | tr '\\0' x"});
        s.restart = restart_policy::never;
        sup.add(s);
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& st) { return st.services[0].state == service_state::exited; }, 5s);
        co_await sup.stop();
    });
    auto lines = drover::test::service_lines(*sink, "talker");
    EXPECT_NE(std::find(lines.begin(), lines.end(), "hello"), lines.end());
    EXPECT_NE(std::find(lines.begin(), lines.end(), "oops"), lines.end());
    std::size_t xs = 0, longest = 0;
    for (const auto& l : lines) {
        if (l.find_first_not_of('x') == std::string::npos) xs += l.size();
        longest = std::max(longest, l.size());
    }
    EXPECT_EQ(xs, 300000U);  // nothing lost
    EXPECT_LE(longest, 1000U);  // nothing longer than max_line
}

TEST(Supervisor, StateReadsAsValueAndJson) {
    auto [log, sink] = drover::test::capture_logger();
    auto j = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<nlohmann::json> {
        supervisor sup(ex, quiet(log));
        sup.add(svc("up", {helper, "sleep", "30"}));
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& s) { return s.services[0].state == service_state::running; }, 5s);
        auto st = sup.status();
        EXPECT_GT(st.services[0].pid, 0);
        EXPECT_TRUE(st.services[0].uptime.has_value());
        auto out = to_json(st);
        co_await sup.stop();
        co_return out;
    });
    ASSERT_EQ(j["services"].size(), 1U);
    EXPECT_EQ(j["services"][0]["name"], "up");
    EXPECT_EQ(j["services"][0]["state"], "running");
    EXPECT_GT(j["services"][0]["pid"].get<int>(), 0);
    EXPECT_TRUE(j["services"][0]["uptime_sec"].is_number());
    EXPECT_TRUE(j.contains("cgroup_mode"));
}

TEST(Supervisor, ManualStopStartAndRestart) {
    auto [log, sink] = drover::test::capture_logger();
    struct r_t {
        service_state after_stop, after_start;
        pid_t p0, p1, p2;
    };
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<r_t> {
        supervisor sup(ex, quiet(log));
        sup.add(svc("m", {helper, "sleep", "30"}));
        co_await sup.start();
        auto running = [](const supervisor_status& s) { return s.services[0].state == service_state::running; };
        co_await sup.wait_until(running, 5s);
        r_t out{};
        out.p0 = sup.status().services[0].pid;
        co_await sup.restart_service("m");
        co_await sup.wait_until(running, 5s);
        out.p1 = sup.status().services[0].pid;
        co_await sup.stop_service("m");
        out.after_stop = sup.status().services[0].state;
        co_await sup.start_service("m");
        co_await sup.wait_until(running, 5s);
        out.after_start = sup.status().services[0].state;
        out.p2 = sup.status().services[0].pid;
        co_await sup.stop();
        co_return out;
    });
    EXPECT_NE(r.p0, r.p1);
    EXPECT_EQ(r.after_stop, service_state::stopped);
    EXPECT_EQ(r.after_start, service_state::running);
    EXPECT_NE(r.p1, r.p2);
}

TEST(Supervisor, NoDescriptorOrZombieIsLeftAfterStop) {
    auto [log, sink] = drover::test::capture_logger();
    auto scenario = [&, log = log] {
        drover::test::run_on_loop([&, log](asio::any_io_executor ex) -> asio::awaitable<void> {
            supervisor sup(ex, quiet(log));
            auto a = svc("n", {"/bin/sh", "-c", "echo READY=1 >&3; echo out; echo err >&2; exec sleep 30"});
            a.ready = readiness::notify;
            sup.add(a);
            auto b = svc("crash", {helper, "exit", "1"});
            b.intensity = {2, 10s};
            sup.add(b);
            co_await sup.start();
            co_await sup.wait_until([](const supervisor_status& s) {
                return s.find("n")->state == service_state::running && s.find("crash")->state == service_state::failed;
            }, 5s);
            co_await sup.stop();
        });
    };
    scenario();  // the spawn layer opens its process-wide /dev/null once: count after that
    int fds_before = drover::test::open_fd_count();
    scenario();
    EXPECT_EQ(drover::test::open_fd_count(), fds_before);
    EXPECT_EQ(drover::test::zombie_children(), 0);
}

TEST(Supervisor, CgroupsAreRemovedWhenTheSupervisorGoes) {
    auto [log, sink] = drover::test::capture_logger();
    std::vector<std::string> roots;
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        supervisor sup(ex, quiet(log));
        roots = sup.cgroup_roots();
        sup.add(svc("x", {helper, "sleep", "30"}));
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& s) { return s.services[0].state == service_state::running; }, 5s);
        // No stop(): the destructor must still end the tree and remove every directory.
    });
    if (roots.empty()) GTEST_SKIP() << "no cgroups on this host";
    for (const auto& r : roots) EXPECT_FALSE(drover::test::exists(r)) << r;
}

}  // namespace
}  // namespace drover::supervise

namespace drover::supervise {
namespace {

// A service from `sandbox = true` runs behind the same walls as drover run --sandbox, seen
// from inside: no capabilities, the filter on, a read-only root, its own hostname and pids.
TEST(Supervisor, ASandboxedServiceRunsBehindTheWalls) {
    auto c = parse_config(R"([service.boxed]
exec = ["/bin/sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; hostname; echo $$; touch /etc/x 2>&1 | grep -c Read-only"]
restart = "no"
sandbox = true
)", "svc.toml");
    auto [log, sink] = drover::test::capture_logger();
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        supervisor sup(ex, quiet(log));
        sup.add(c.services.at(0));
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& st) { return st.services[0].state == service_state::exited; }, 5s);
        co_await sup.stop();
    });
    auto lines = drover::test::service_lines(*sink, "boxed");
    ASSERT_EQ(lines.size(), 7u);
    // The exit is logged as soon as it is seen, which may be before the readers log the last
    // lines of output (it was, under TSan): only the output's own order is fixed.
    auto exited = std::find(lines.begin(), lines.end(), "exited with code 0");
    ASSERT_NE(exited, lines.end());
    lines.erase(exited);
    std::vector<std::string> inside(lines.begin() + 1, lines.end());  // after "started"
    std::vector<std::string> want = {"CapEff:\t0000000000000000", "Seccomp:\t2", "sandbox", "1", "1"};
    EXPECT_EQ(inside, want);
}

// warm = 1: the restarts of a sandboxed service join sets made while it ran. No run finds
// what the run before it left in its /tmp (a set is used once), each is PID 1 of its own PID
// namespace, and the status counts the warm starts. (Not namespace inode numbers: the kernel
// hands a freed one out again, so runs that do not overlap may show the same.)
TEST(Supervisor, ASandboxedServiceWithWarmSetsRestartsIntoFreshNamespaces) {
    auto c = parse_config(R"([service.boxed]
exec = ["/bin/sh", "-c", "if [ -e /tmp/mark ]; then echo leaked; fi; echo x > /tmp/mark && echo pid=$$"]
restart = "always"
restart_sec = 0.2
restart_jitter = 0
start_limit_burst = 3
sandbox = true
warm = 1
)", "svc.toml");
    auto [log, sink] = drover::test::capture_logger();
    supervisor_status st = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<supervisor_status> {
        supervisor sup(ex, quiet(log));
        sup.add(c.services.at(0));
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& s) { return s.services[0].state == service_state::failed; }, 20s);
        supervisor_status out = sup.status();
        co_await sup.stop();
        co_return out;
    });
    std::vector<std::string> runs;
    for (const auto& l : drover::test::service_lines(*sink, "boxed"))
        if (l.find("pid=") != std::string::npos) runs.push_back(l);
    ASSERT_EQ(runs.size(), 4u) << "1 start + 3 restarts";
    for (const auto& r : runs) EXPECT_EQ(r, "pid=1");
    for (const auto& l : drover::test::service_lines(*sink, "boxed")) EXPECT_EQ(l.find("leaked"), std::string::npos);
    const service_status& s = st.services.at(0);
    if (s.warm_hits + s.warm_misses == 0) {
        // The spec could not be warm here: the warning says why, and the runs were cold.
        bool warned = false;
        for (const auto& l : drover::test::service_lines(*sink, "boxed")) warned |= l.find("warm: ") != std::string::npos;
        EXPECT_TRUE(warned);
        GTEST_SKIP() << "the sandboxed spec cannot be warm on this machine";
    }
    std::printf("starts: %llu warm, %llu cold\n", static_cast<unsigned long long>(s.warm_hits),
                static_cast<unsigned long long>(s.warm_misses));
    EXPECT_EQ(s.warm_hits + s.warm_misses, 4u);
    EXPECT_GE(s.warm_hits, 1u) << "restarts 200 ms apart should find the set made meanwhile";
    auto j = to_json(s);
    ASSERT_TRUE(j.contains("warm"));
    EXPECT_EQ(j["warm"]["hits"].get<std::uint64_t>(), s.warm_hits);
    // The failed service's ready sets ended with its run: no holder is left behind.
    int left = 0;
    for (int i = 0; i < 100 && (left = drover::test::children_of_this_process()) > 0; ++i)
        std::this_thread::sleep_for(50ms);
    EXPECT_EQ(left, 0) << "holders or jobs still alive after the service failed";
}

}  // namespace
}  // namespace drover::supervise

namespace drover::supervise {
namespace {

// A stop that comes while services are still being spawned reaches them as soon as they run:
// nothing is left waiting for a signal that was never sent.
TEST(Supervisor, AStopDuringStartupEndsEveryService) {
    auto [log, sink] = drover::test::capture_logger();
    auto states = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<supervisor_status> {
        supervisor sup(ex, quiet(log));
        for (int i = 0; i < 40; ++i) {
            auto s = svc("s" + std::to_string(i), {helper, "sleep", "30"});
            s.stop_timeout = 2s;
            sup.add(s);
        }
        co_await sup.start();  // runners are going; most are still spawning
        co_await sup.stop();
        co_return sup.status();
    });
    for (const auto& s : states.services) EXPECT_EQ(s.state, service_state::stopped) << s.name;
}

// Services of one level stop at once: ten that ignore SIGTERM take one stop timeout, not ten.
TEST(Supervisor, StopIsParallelWithinALevelAndOrderedAcrossLevels) {
    auto [log, sink] = drover::test::capture_logger();
    double seconds_taken = 0;
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        supervisor sup(ex, quiet(log));
        auto base = svc("base", {helper, "sleep", "30"});
        base.stop_timeout = 1s;
        sup.add(base);
        for (int i = 0; i < 10; ++i) {
            auto s = svc("stuck" + std::to_string(i), {helper, "ignore-term", "30"});
            s.stop_timeout = 1s;
            s.after = {"base"};
            sup.add(s);
        }
        co_await sup.start();
        // Each stuck service says "ready" once it ignores SIGTERM.
        auto ready = [&] {
            std::size_t n = 0;
            for (const auto& l : sink->lines()) n += l.rfind("[stuck", 0) == 0 && l.find("] ready") != std::string::npos;
            return n;
        };
        const std::function<bool(const std::vector<std::string>&)> all_ready = [&](const std::vector<std::string>&) {
            return ready() >= 10;
        };
        (void)co_await drover::test::wait_for_lines(*sink, all_ready, 10000ms);
        EXPECT_EQ(ready(), 10u);
        auto t0 = clock::now();
        co_await sup.stop();
        seconds_taken = std::chrono::duration<double>(clock::now() - t0).count();
    });
    // Serial would be 10 s; in levels it is the stuck ones' 1 s, then base's moment.
    EXPECT_LT(seconds_taken, 5.0);
    // base (level 0) stopped only after every stuck service (level 1) had ended.
    auto lines = sink->lines();
    std::size_t last_stuck = 0, base_end = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].rfind("[stuck", 0) == 0 && lines[i].find("killed by") != std::string::npos) last_stuck = i;
        if (lines[i].rfind("[base] killed by", 0) == 0) base_end = i;
    }
    EXPECT_GT(base_end, last_stuck);
}

}  // namespace
}  // namespace drover::supervise

namespace drover::supervise {
namespace {

// A burst of service starts with spawner threads: every service runs (its own pid, seen alive
// in /proc), some starts went to a spawner thread, and a stop leaves none of them.
TEST(Supervisor, ABurstOfStartsOnSpawnerThreadsRunsEveryServiceAndStopsThemAll) {
    auto [log, sink] = drover::test::capture_logger();
    auto before = spawn_thread_counters();
    constexpr int count = 24;
    std::vector<pid_t> pids = drover::test::run_on_loop(
        [&, log = log](asio::any_io_executor ex) -> asio::awaitable<std::vector<pid_t>> {
            supervisor_options o = quiet(log);
            o.spawn_threads = 3;
            supervisor sup(ex, o);
            for (int i = 0; i < count; ++i) sup.add(svc("s" + std::to_string(i), {helper, "sleep", "30"}));
            co_await sup.start();
            co_await sup.wait_until(
                [](const supervisor_status& s) {
                    return std::all_of(s.services.begin(), s.services.end(),
                                       [](const service_status& x) { return x.state == service_state::running; });
                },
                5s);
            std::vector<pid_t> seen;
            for (const service_status& s : sup.status().services)
                if (s.state == service_state::running && s.pid > 0 && ::kill(s.pid, 0) == 0) seen.push_back(s.pid);
            co_await sup.stop();
            co_return seen;
        });
    EXPECT_EQ(pids.size(), static_cast<std::size_t>(count));
    EXPECT_EQ(std::set<pid_t>(pids.begin(), pids.end()).size(), pids.size()) << "two services share a pid";
    EXPECT_GT(spawn_thread_counters().handed_off, before.handed_off) << "no start went to a spawner thread";
    auto left = drover::test::wait_gone(pids, 1000ms);
    drover::test::kill_pids(left);
    EXPECT_TRUE(left.empty()) << left.size() << " services outlived the stop";
}

}  // namespace
}  // namespace drover::supervise
