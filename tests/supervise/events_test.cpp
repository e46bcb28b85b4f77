// Supervisor events: an embedding program gets each output line, start, exit, restart and
// failure as a value through on_event, and nothing reaches the log when it does.
#include <gtest/gtest.h>

#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;
using drover::test::quiet;
using drover::test::svc;

// An event as kept by the test (the views of a supervisor_event live for the call only).
struct seen {
    std::string service;
    event_kind kind;
    event_severity severity;
    std::string message;
    pid_t pid;
    bool from_stderr;
    std::optional<exit_status> exit;
    std::chrono::nanoseconds delay;
    child_stage stage;
};

struct events_run {
    std::vector<seen> events;
    std::vector<std::string> logged;  // what reached the logger (nothing, with a handler)
    supervisor_status status;
};

// Runs `spec` until it has failed or exited, keeping every event.
events_run run_collecting(service_spec spec, bool throwing_handler = false) {
    auto [log, sink] = drover::test::capture_logger();
    events_run r;
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        supervisor_options o = quiet(log);
        o.on_event = [&r, throwing_handler](const supervisor_event& e) {
            r.events.push_back({std::string(e.service), e.kind, e.severity, std::string(e.message), e.pid,
                                e.from_stderr, e.exit, e.delay, e.stage});
            if (throwing_handler) throw std::runtime_error("the handler fails");
        };
        supervisor sup(ex, o);
        sup.add(spec);
        co_await sup.start();
        co_await sup.wait_until(
            [](const supervisor_status& s) {
                auto st = s.services[0].state;
                return st == service_state::failed || st == service_state::exited;
            },
            10s);
        r.status = sup.status();
        co_await sup.stop();
    });
    r.logged = sink->lines();
    return r;
}

std::vector<const seen*> of_kind(const events_run& r, event_kind k) {
    std::vector<const seen*> out;
    for (const auto& e : r.events)
        if (e.kind == k) out.push_back(&e);
    return out;
}

TEST(SupervisorEvents, ARunIsReportedAsValuesAndNotLogged) {
    auto s = svc("job", {"/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3"});
    s.restart = restart_policy::never;
    auto r = run_collecting(s);
    EXPECT_TRUE(r.logged.empty()) << r.logged.front();

    auto started = of_kind(r, event_kind::started);
    ASSERT_EQ(started.size(), 1u);
    EXPECT_EQ(started[0]->service, "job");
    EXPECT_GT(started[0]->pid, 0);
    EXPECT_EQ(started[0]->message, "started, pid " + std::to_string(started[0]->pid));

    auto out = of_kind(r, event_kind::output);
    ASSERT_EQ(out.size(), 2u);
    const seen* o = out[0]->from_stderr ? out[1] : out[0];
    const seen* e = out[0]->from_stderr ? out[0] : out[1];
    EXPECT_EQ(o->message, "to-out");
    EXPECT_FALSE(o->from_stderr);
    EXPECT_EQ(e->message, "to-err");
    EXPECT_TRUE(e->from_stderr);
    EXPECT_EQ(e->severity, event_severity::warning);

    auto exited = of_kind(r, event_kind::exited);
    ASSERT_EQ(exited.size(), 1u);
    ASSERT_TRUE(exited[0]->exit);
    EXPECT_EQ(exited[0]->exit->code(), 3);
    EXPECT_EQ(exited[0]->pid, started[0]->pid);
    EXPECT_EQ(exited[0]->severity, event_severity::warning);  // a failure, not a planned end
    // Output comes before the exit that ends it.
    auto pos = [&](const seen* p) { return p - r.events.data(); };
    EXPECT_LT(pos(out[1]), pos(exited[0]));
    EXPECT_EQ(r.status.services[0].state, service_state::failed);
}

TEST(SupervisorEvents, AFailedStartNamesItsStageAndStaysInTheStatus) {
    auto s = svc("missing", {"/no/such/program"});
    s.restart = restart_policy::never;
    auto r = run_collecting(s);
    EXPECT_TRUE(r.logged.empty());
    auto failed = of_kind(r, event_kind::start_failed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0]->severity, event_severity::error);
    EXPECT_NE(failed[0]->message.find("/no/such/program"), std::string::npos) << failed[0]->message;
    EXPECT_NE(failed[0]->stage, child_stage::none) << failed[0]->message;
    EXPECT_TRUE(of_kind(r, event_kind::started).empty());
    EXPECT_NE(r.status.services[0].last_error.find("/no/such/program"), std::string::npos);
}

TEST(SupervisorEvents, RestartsCarryTheirDelayUntilTheLimitFailsTheService) {
    auto s = svc("crash", {"/bin/false"});
    s.restart = restart_policy::always;
    s.backoff = {20ms, 1s, 2.0, 0.0};
    s.intensity = {2, 10s};
    auto r = run_collecting(s);
    auto restarting = of_kind(r, event_kind::restarting);
    ASSERT_EQ(restarting.size(), 2u);
    EXPECT_EQ(restarting[0]->delay, 20ms);
    EXPECT_EQ(restarting[1]->delay, 40ms);
    EXPECT_EQ(restarting[0]->message, "restarting in 0.02 s");
    auto failed = of_kind(r, event_kind::failed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_NE(failed[0]->message.find("restart limit reached"), std::string::npos) << failed[0]->message;
    EXPECT_EQ(of_kind(r, event_kind::started).size(), 3u);
    EXPECT_EQ(of_kind(r, event_kind::exited).size(), 3u);
}

TEST(SupervisorEvents, AThrowingHandlerLosesOnlyItsEvent) {
    auto s = svc("job", {"/bin/sh", "-c", "echo a; echo b; exit 0"});
    s.restart = restart_policy::never;
    auto r = run_collecting(s, true);
    // Every event was still delivered, and the service ran to its end as if nothing happened.
    EXPECT_EQ(of_kind(r, event_kind::output).size(), 2u);
    ASSERT_EQ(of_kind(r, event_kind::exited).size(), 1u);
    EXPECT_EQ(r.status.services[0].state, service_state::exited);
    EXPECT_TRUE(r.status.services[0].last_error.empty()) << r.status.services[0].last_error;
}

TEST(SupervisorEvents, WithoutAHandlerEventsAreLoggedAsBefore) {
    auto [log, sink] = drover::test::capture_logger();
    drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<void> {
        supervisor sup(ex, quiet(log));
        auto s = svc("job", {"/bin/sh", "-c", "echo hello"});
        s.restart = restart_policy::never;
        sup.add(s);
        co_await sup.start();
        co_await sup.wait_until([](const supervisor_status& st) { return st.services[0].state == service_state::exited; }, 10s);
        co_await sup.stop();
    });
    auto lines = drover::test::service_lines(*sink, "job");
    EXPECT_NE(std::find(lines.begin(), lines.end(), "hello"), lines.end());
    EXPECT_NE(std::find(lines.begin(), lines.end(), "exited with code 0"), lines.end());
}

TEST(SupervisorEvents, TheHandlerOfAttachedServersOutlivesTheSupervisor) {
    std::vector<std::string> got;
    std::function<void(const supervisor_event&)> handler;
    {
        asio::io_context io;
        supervisor_options o;
        o.use_cgroups = false;
        o.on_event = [&got](const supervisor_event& e) { got.push_back(std::string(e.message)); };
        supervisor sup(io.get_executor(), o);
        handler = sup.event_handler();
    }
    supervisor_event e;
    e.kind = event_kind::error;
    e.message = "metrics 127.0.0.1:9: no longer accepting: out of memory";
    handler(e);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], e.message);

    // The default handler writes an event about drover itself without a "[service]" prefix.
    auto [log, sink] = drover::test::capture_logger();
    log_event(*log, e);
    e.service = "web";
    e.message = "ready";
    log_event(*log, e);
    EXPECT_EQ(sink->lines(), (std::vector<std::string>{"metrics 127.0.0.1:9: no longer accepting: out of memory", "[web] ready"}));
}

TEST(SupervisorEvents, KindsHaveNames) {
    EXPECT_EQ(to_string(event_kind::start_failed), "start_failed");
    EXPECT_EQ(to_string(event_kind::output), "output");
    EXPECT_EQ(to_string(event_kind::removed), "removed");
}

}  // namespace
}  // namespace drover::supervise
