// `drover init` tests: orphans reaped inside a PID namespace (with a control run without
// init), signals forwarded to the child, the child's status passed on.
#include <gtest/gtest.h>
#include <poll.h>

#include "drover/process/process.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/sys/syscalls.hpp"
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;

// Leaves three orphans that exit after 1 s (when the shell has become perl, which never reaps),
// then counts the zombies in the namespace 1.5 s in: none if an init reaps them.
std::string orphans_then_count() {
    return std::string(drover::test::helper) +
           " spawn-orphans 3 1 >/dev/null; exec perl -e 'select(undef, undef, undef, 1.5); my $z = 0; "
           "for my $f (glob \"/proc/[0-9]*/stat\") { open(my $h, \"<\", $f) or next; my $l = <$h>; "
           "$z++ if $l =~ /\\) Z /; } print \"zombies $z\\n\"'";
}

struct ns_run {
    bool skipped = false;
    std::string why;
    run_result r;
};

ns_run run_in_pid_ns(bool with_init) {
    spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", orphans_then_count()};
    spec.namespaces = {ns::pid, ns::mnt};
    spec.out = stdio::pipe();
    if (with_init) spec.init_program = drover::test::cli;
    ns_run out;
    try {
        out.r = drover::test::run_on_loop([&](asio::any_io_executor ex) { return run(ex, spec); });
    } catch (const spawn_error& e) {
        out.skipped = true;
        out.why = std::string("cannot create a pid namespace here: ") + e.what();
    }
    return out;
}

TEST(Init, ReapsOrphansAsPid1) {
    auto with = run_in_pid_ns(true);
    if (with.skipped) GTEST_SKIP() << with.why;
    EXPECT_EQ(with.r.out, "zombies 0\n");
    EXPECT_TRUE(with.r.status.success()) << with.r.status.str();
}

TEST(Init, ControlWithoutInitOrphansStayZombies) {
    // Shows that the test above can fail: PID 1 that does not reap leaves the three zombies.
    auto without = run_in_pid_ns(false);
    if (without.skipped) GTEST_SKIP() << without.why;
    EXPECT_EQ(without.r.out, "zombies 3\n");
}

run_result run_under_init(std::string script) {
    spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", std::move(script)};
    spec.init_program = drover::test::cli;
    spec.out = stdio::pipe();
    return drover::test::run_on_loop([&](asio::any_io_executor ex) { return run(ex, spec); });
}

TEST(Init, PassesOnTheExitCode) {
    EXPECT_EQ(run_under_init("exit 3").status, exit_status::exited_with(3));
}

TEST(Init, ReportsAKilledChildAs128PlusSignal) {
    EXPECT_EQ(run_under_init("kill -9 $$").status, exit_status::exited_with(137));
}

TEST(Init, ACommandThatCannotRunGives127) {
    EXPECT_EQ(run_under_init("exec /nonexistent/drover-test").status.code(), 127);
}

TEST(Init, ForwardsSignalsToTheChild) {
    spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", "trap 'echo got USR1; exit 7' USR1; echo ready; while :; do sleep 0.05; done"};
    spec.init_program = drover::test::cli;
    spec.out = stdio::pipe();
    struct res {
        std::vector<std::string> lines;
        exit_status st;
    };
    auto r = drover::test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<res> {
        process p = co_await spawn(ex, spec);
        line_reader lines(*p.stdout_pipe());
        res out;
        auto first = co_await lines.next();
        if (first) out.lines.push_back(*first);
        p.signal(SIGUSR1);  // to init, which must pass it on
        while (auto l = co_await lines.next()) out.lines.push_back(*l);
        out.st = co_await p.wait();
        co_return out;
    });
    ASSERT_GE(r.lines.size(), 2U);
    EXPECT_EQ(r.lines[0], "ready");
    EXPECT_EQ(r.lines[1], "got USR1");
    EXPECT_EQ(r.st, exit_status::exited_with(7));
}

}  // namespace
}  // namespace drover::supervise

namespace drover::supervise {
namespace {

// Outside a pid namespace nothing but init itself ties the command to it: a SIGKILLed init
// must take the command along (the parent-death signal).
TEST(Init, ASigkilledInitOutsideAPidNamespaceTakesTheCommandAlong) {
    spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", "echo $$; exec sleep 30"};
    spec.init_program = drover::test::cli;
    spec.out = stdio::pipe();
    sys::unique_fd command;  // a pidfd of the command, taken while init still holds it
    drover::test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<void> {
        process p = co_await spawn(ex, spec);
        line_reader lines(*p.stdout_pipe());
        auto first = co_await lines.next();  // the command's pid: it runs
        if (first) {
            if (auto fd = sys::pidfd_open(static_cast<pid_t>(std::stol(*first)))) command = std::move(*fd);
        }
        p.signal(SIGKILL);  // init, not the command
        co_await p.wait();
    });
    ASSERT_TRUE(command) << "the command never ran";
    // Its pidfd turns readable when it exits: the kernel sends it the parent-death signal as
    // init exits. A second is plenty; the test is bounded either way.
    pollfd pfd{command.get(), POLLIN, 0};
    bool gone = ::poll(&pfd, 1, 1000) == 1;
    EXPECT_TRUE(gone) << "the command outlived its init";
    if (!gone) sys::pidfd_send_signal(command.get(), SIGKILL);
}

}  // namespace
}  // namespace drover::supervise
