// systemd-compatible readiness: $NOTIFY_SOCKET datagrams with the sender checked by its
// credentials, STATUS=, WATCHDOG=1 with watchdog_sec, and timeout_start_sec.
#include <gtest/gtest.h>

#include <filesystem>

#include "drover/supervise/config.hpp"
#include "drover/supervise/json.hpp"
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;
using drover::test::quiet;
using drover::test::helper;

service_spec notify_svc(std::string name, std::vector<std::string> argv) {
    service_spec s;
    s.name = std::move(name);
    s.spawn.argv = std::move(argv);
    s.ready = readiness::notify;
    s.restart = restart_policy::never;
    s.stop_timeout = 1s;
    return s;
}

struct observed {
    service_state state = service_state::stopped;
    std::string status_text;
    std::string error;
    std::optional<exit_status> last_exit;
    bool settled = false;
};

// The main process sends STATUS= and READY=1 itself; a child of it sending READY=1 first is
// ignored under notify_access = "main" and accepted under "all".
observed child_then_main(bool access_all, std::vector<std::string>* log_lines) {
    auto [log, sink] = drover::test::capture_logger();
    return drover::test::run_on_loop([&, log = log, sink = sink](asio::any_io_executor ex) -> asio::awaitable<observed> {
        supervisor sup(ex, quiet(log));
        const std::string h = helper;
        // The child's message is sent before the main process execs; the child lives on for
        // 0.5 s, so that with notify_access = "all" it is still there to be found in the tree.
        auto s = notify_svc("web", {"/bin/sh", "-c", "'" + h + "' notify 'READY=1\\nSTATUS=child' 0.5; exec '" + h +
                                                         "' notify 'STATUS=main' 30"});
        s.notify_access_all = access_all;
        sup.add(s);
        co_await sup.start();
        observed o;
        const std::function<bool(const supervisor_status&)> has_main_status = [](const supervisor_status& st) {
            return st.find("web")->notify_status == "main";
        };
        o.settled = co_await sup.wait_until(has_main_status, 10s);
        o.state = sup.status().find("web")->state;
        o.status_text = sup.status().find("web")->notify_status;
        co_await sup.stop();
        *log_lines = drover::test::service_lines(*sink, "web");
        co_return o;
    });
}

TEST(NotifySocket, OnlyTheMainProcessIsHeardUnlessAccessIsAll) {
    std::vector<std::string> lines;
    observed main_only = child_then_main(false, &lines);
    ASSERT_TRUE(main_only.settled) << "STATUS=main never arrived";
    EXPECT_EQ(main_only.state, service_state::starting) << "the child's READY=1 was taken";
    EXPECT_EQ(main_only.status_text, "main");
    bool warned = false;
    for (const auto& l : lines) warned = warned || l.find("ignored") != std::string::npos;
    EXPECT_TRUE(warned) << "the refused message was not logged";

    observed all = child_then_main(true, &lines);
    ASSERT_TRUE(all.settled);
    EXPECT_EQ(all.state, service_state::running) << "with notify_access = all the child's READY=1 counts";
}

TEST(NotifySocket, ReadyAndStatusReachTheStatusAndJson) {
    auto [log, sink] = drover::test::capture_logger();
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<observed> {
        supervisor sup(ex, quiet(log));
        sup.add(notify_svc("db", {helper, "notify", "STATUS=accepting connections\\nREADY=1", "30"}));
        co_await sup.start();
        observed o;
        const std::function<bool(const supervisor_status&)> running = [](const supervisor_status& st) {
            return st.find("db")->state == service_state::running;
        };
        o.settled = co_await sup.wait_until(running, 10s);
        o.status_text = to_json(*sup.status().find("db"))["status_text"].get<std::string>();
        co_await sup.stop();
        co_return o;
    });
    EXPECT_TRUE(r.settled);
    EXPECT_EQ(r.status_text, "accepting connections");
}

// A service in a network namespace of its own cannot reach an abstract socket: it gets a path
// socket, which is gone once the service is.
TEST(NotifySocket, AServiceWithItsOwnNetworkGetsAPathSocket) {
    if (::geteuid() != 0) GTEST_SKIP() << "a network namespace without a user namespace needs root";
    auto [log, sink] = drover::test::capture_logger();
    std::string socket_path;
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<observed> {
        supervisor sup(ex, quiet(log));
        auto s = notify_svc("netd", {"/bin/sh", "-c", "echo \"$NOTIFY_SOCKET\"; exec '" + std::string(helper) +
                                                          "' notify READY=1 30"});
        s.spawn.namespaces.add(ns::net);
        sup.add(s);
        co_await sup.start();
        observed o;
        const std::function<bool(const supervisor_status&)> running = [](const supervisor_status& st) {
            return st.find("netd")->state == service_state::running;
        };
        o.settled = co_await sup.wait_until(running, 10s);
        co_await sup.stop();
        co_return o;
    });
    EXPECT_TRUE(r.settled);
    for (const auto& l : drover::test::service_lines(*sink, "netd"))
        if (!l.empty() && l[0] == '/') socket_path = l;
    ASSERT_FALSE(socket_path.empty()) << "no path socket was given";
    EXPECT_FALSE(std::filesystem::exists(socket_path)) << socket_path << " left behind";
}

TEST(NotifySocket, AMissedWatchdogKillsTheServiceWithSigabrt) {
    auto [log, sink] = drover::test::capture_logger();
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<observed> {
        supervisor sup(ex, quiet(log));
        // Pings every 50 ms for 1 s (the 300 ms watchdog holds), then stays silent.
        auto s = notify_svc("pinger", {helper, "notify-loop", "READY=1\\nWATCHDOG=1", "0.05", "1", "30"});
        s.watchdog = 300ms;
        sup.add(s);
        auto t0 = clock::now();
        co_await sup.start();
        observed o;
        const std::function<bool(const supervisor_status&)> failed = [](const supervisor_status& st) {
            return st.find("pinger")->state == service_state::failed;
        };
        o.settled = co_await sup.wait_until(failed, 15s);
        o.status_text = std::to_string(std::chrono::duration<double>(clock::now() - t0).count());
        const supervisor_status all = sup.status();  // a value: find() points into it
        const service_status* st = all.find("pinger");
        o.error = st->last_error;
        o.last_exit = st->last_exit;
        co_await sup.stop();
        co_return o;
    });
    ASSERT_TRUE(r.settled) << "the watchdog never fired";
    ASSERT_TRUE(r.last_exit.has_value());
    EXPECT_TRUE(r.last_exit->signaled() && r.last_exit->signal() == SIGABRT) << r.last_exit->str();
    std::string logged;
    for (const auto& l : drover::test::service_lines(*sink, "pinger")) logged += l + "\n";
    EXPECT_NE(r.error.find("watchdog"), std::string::npos) << r.error << "\n" << logged;
    // Not before the pings stopped: each WATCHDOG=1 moved the deadline.
    EXPECT_GE(std::stod(r.status_text), 1.0) << "killed while it was still pinging";
}

TEST(NotifySocket, AServiceNeverReadyFailsAtTimeoutStartSec) {
    auto [log, sink] = drover::test::capture_logger();
    auto r = drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<observed> {
        supervisor sup(ex, quiet(log));
        auto s = notify_svc("slow", {helper, "sleep", "30"});
        s.start_timeout = 300ms;
        sup.add(s);
        co_await sup.start();
        observed o;
        const std::function<bool(const supervisor_status&)> failed = [](const supervisor_status& st) {
            return st.find("slow")->state == service_state::failed;
        };
        o.settled = co_await sup.wait_until(failed, 15s);
        o.error = sup.status().find("slow")->last_error;
        o.last_exit = sup.status().find("slow")->last_exit;
        co_await sup.stop();
        co_return o;
    });
    ASSERT_TRUE(r.settled);
    EXPECT_NE(r.error.find("not ready within timeout_start_sec"), std::string::npos) << r.error;
    ASSERT_TRUE(r.last_exit.has_value());
    EXPECT_TRUE(r.last_exit->signaled() && r.last_exit->signal() == SIGTERM) << r.last_exit->str();
}

TEST(NotifySocket, ConfigFieldsAreReadAndChecked) {
    config c = parse_config("[service.a]\nexec = \"/bin/true\"\ntype = \"notify\"\nwatchdog_sec = 2.5\n"
                            "timeout_start_sec = 10\nnotify_access = \"all\"\n",
                            "t.toml");
    ASSERT_EQ(c.services.size(), 1u);
    EXPECT_EQ(c.services[0].watchdog, 2500ms);
    EXPECT_EQ(c.services[0].start_timeout, 10s);
    EXPECT_TRUE(c.services[0].notify_access_all);
    auto error_of = [](const std::string& text) {
        try {
            parse_config(text, "t.toml");
        } catch (const config_error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(error_of("[service.a]\nexec = \"x\"\ntype = \"notify\"\nnotify_access = \"some\"\n")
                  .find("t.toml:4:17: service.a.notify_access: expected \"main\" or \"all\""),
              std::string::npos);
    EXPECT_NE(error_of("[service.a]\nexec = \"x\"\nwatchdog_sec = 1\n").find("need type = \"notify\""), std::string::npos);
    EXPECT_NE(error_of("[service.a]\nexec = \"x\"\ntype = \"notify\"\nwatchdog_sec = -1\n").find("watchdog_sec"),
              std::string::npos);
}

// ---- what a service says, as events ----------------------------------------------------

// The events of one run of `s` until `until(status)` holds (or 15 s), kept as (kind, message).
struct notice_run {
    std::vector<std::pair<event_kind, std::string>> events;
    std::vector<pid_t> started;  // the pid of each run
    bool settled = false;
};

notice_run run_with_events(service_spec s, std::function<bool(const supervisor_status&)> until) {
    auto [log, sink] = drover::test::capture_logger();
    return drover::test::run_on_loop([&, log = log](asio::any_io_executor ex) -> asio::awaitable<notice_run> {
        notice_run r;
        supervisor_options o = quiet(log);
        o.on_event = [&r](const supervisor_event& e) {
            if (e.kind == event_kind::output) return;
            r.events.emplace_back(e.kind, std::string(e.message));
            if (e.kind == event_kind::started) r.started.push_back(e.pid);
        };
        supervisor sup(ex, o);
        sup.add(s);
        co_await sup.start();
        r.settled = co_await sup.wait_until(until, 15s);
        co_await sup.stop();
        co_return r;
    });
}

std::vector<std::string> messages_of(const notice_run& r, event_kind k) {
    std::vector<std::string> out;
    for (const auto& [kind, text] : r.events)
        if (kind == k) out.push_back(text);
    return out;
}

TEST(NotifySocket, StoppingReloadingAndMainpidReachTheCaller) {
    auto s = notify_svc("talker", {helper, "notify", "READY=1\nRELOADING=1\nSTOPPING=1\nMAINPID=4242\nSTATUS=said", "30"});
    const std::function<bool(const supervisor_status&)> said = [](const supervisor_status& st) {
        return st.find("talker")->notify_status == "said";
    };
    auto r = run_with_events(s, said);
    ASSERT_TRUE(r.settled) << "the service's messages never arrived";
    ASSERT_EQ(r.started.size(), 1u);
    EXPECT_EQ(messages_of(r, event_kind::ready), std::vector<std::string>{"ready"});
    EXPECT_EQ(messages_of(r, event_kind::notice),
              (std::vector<std::string>{"reloading", "stopping",
                                        "says its main pid is 4242 (drover follows pid " + std::to_string(r.started[0]) + ")"}));
}

TEST(NotifySocket, AMissedWatchdogRestartsAServiceThatRestarts) {
    // Pings every 50 ms for 0.3 s, then stays silent: each run is killed by the 300 ms
    // watchdog and, with restart = always, started again.
    auto s = notify_svc("pinger", {helper, "notify-loop", "READY=1\nWATCHDOG=1", "0.05", "0.3", "30"});
    s.watchdog = 300ms;
    s.restart = restart_policy::always;
    s.backoff = {20ms, 1s, 2.0, 0.0};
    s.intensity = {5, 60s};
    const std::function<bool(const supervisor_status&)> restarted = [](const supervisor_status& st) {
        return st.find("pinger")->restarts >= 1 && st.find("pinger")->state == service_state::running;
    };
    auto r = run_with_events(s, restarted);
    ASSERT_TRUE(r.settled) << "no restart after the watchdog fired";
    ASSERT_GE(r.started.size(), 2u);
    EXPECT_NE(r.started[0], r.started[1]);
    auto killed = messages_of(r, event_kind::killed);
    ASSERT_FALSE(killed.empty());
    EXPECT_NE(killed[0].find("watchdog: no WATCHDOG=1 within 0.3 s: killing it"), std::string::npos) << killed[0];
    // The run ended by SIGABRT, then the restart was announced, in that order.
    std::size_t exited = 0, restarting = 0;
    for (std::size_t i = 0; i < r.events.size(); ++i) {
        if (r.events[i].first == event_kind::exited && !exited) exited = i + 1;
        if (r.events[i].first == event_kind::restarting && !restarting) restarting = i + 1;
    }
    ASSERT_TRUE(exited && restarting);
    EXPECT_LT(exited, restarting);
    EXPECT_NE(r.events[exited - 1].second.find("SIGABRT"), std::string::npos) << r.events[exited - 1].second;
}

}  // namespace
}  // namespace drover::supervise
