// `drover run` as a user runs it: exit codes, usage errors that start nothing, stage-named
// failures with advice, signal forwarding, --timing, and an interactive shell on a terminal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "drover/process/asio.hpp"
#include "support.hpp"

namespace drover {
namespace {

using test::cli;
using test::helper;

run_result drover_run(std::vector<std::string> args, std::string input = {}) {
    std::vector<std::string> argv = {cli, "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    spawn_spec s = test::piped(argv);
    s.in = stdio::pipe();
    return test::run_spec(s, std::move(input));
}

TEST(Run, ExitCodeIsTheChildsOr128PlusSignal) {
    EXPECT_EQ(drover_run({"--", "/bin/sh", "-c", "exit 7"}).status.code(), 7);
    EXPECT_EQ(drover_run({"-Um", "--", "/bin/sh", "-c", "kill -9 $$"}).status.code(), 128 + 9);
    EXPECT_EQ(drover_run({"-U", "--", helper, "signal", "15"}).status.code(), 128 + 15);
}

// A repeatable option takes one value per use: the word after its value is the command, with or
// without `--` (a list option would take `/bin/echo ok` as two more mounts).
TEST(Run, ARepeatableOptionDoesNotSwallowTheCommand) {
    auto dashed = drover_run({"-Um", "--tmpfs", "/tmp", "--", "/bin/sh", "-c", "echo ok"});
    EXPECT_EQ(dashed.status.code(), 0) << dashed.err;
    EXPECT_EQ(dashed.out, "ok\n") << dashed.err;
    auto bare = drover_run({"-Um", "--tmpfs", "/tmp", "/bin/echo", "ok"});
    EXPECT_EQ(bare.status.code(), 0) << bare.err;
    EXPECT_EQ(bare.out, "ok\n") << bare.err;
    // Repeated, each use its own value, and the command still last.
    auto twice = drover_run({"--setenv", "A=1", "--setenv", "B=2", "/bin/sh", "-c", "echo $A$B"});
    EXPECT_EQ(twice.status.code(), 0) << twice.err;
    EXPECT_EQ(twice.out, "12\n") << twice.err;
}

TEST(Run, ShowsIsolationFromInside) {
    auto r = drover_run({"-Upmuin", "-r", "--hostname", "box", "--", "/bin/sh", "-c",
                         "hostname; echo $$; id -u; ps ax -o comm="});
    EXPECT_EQ(r.out, "box\n1\n0\nsh\nps\n") << r.err;
}

TEST(Run, SeedMapFlags) {
    auto r = drover_run({"--map-user=109:" + std::to_string(::getuid()) + ":1",
                         "--map-group=114:" + std::to_string(::getgid()) + ":1", "--", "id"});
    EXPECT_TRUE(r.out.starts_with("uid=109 gid=114")) << r.out << r.err;
}

TEST(Run, ImpossibleSpecsExitTwoWithOneLineAndStartNothing) {
    const std::string marker = "/tmp/drover-run-test-marker-" + std::to_string(::getpid());
    struct bad {
        std::vector<std::string> flags;
        std::string message;
    };
    const bad cases[] = {
        {{"--mount-proc"}, "drover: run: --mount-proc: needs the pid namespace (add -p)\n"},
        {{"--hostname=box"}, "drover: run: --hostname: needs the uts namespace (add -u)\n"},
        {{"--proc", "/p"}, "drover: run: --proc /p: needs the pid namespace (add -p)\n"},
        {{"--map-user=x:0:1"}, "drover: run: --map-user: 'x:0:1' is not INNER:OUTER:COUNT\n"},
        {{"--map-user=0:0:10", "--map-user=5:100:1"},
         "drover: run: --map-user 5:100:1: overlaps --map-user 0:0:10 inside\n"},
        {{"--monotonic=5"}, "drover: run: --monotonic: needs the time namespace (add -T)\n"},
        {{"--rlimit=bogus=1"},
         "drover: run: --rlimit: 'bogus=1' is not NAME=SOFT[:HARD] with a known NAME\n"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = c.flags;
        args.insert(args.end(), {"--", "/bin/touch", marker});
        auto r = drover_run(args);
        EXPECT_EQ(r.status.code(), 2) << c.message;
        EXPECT_EQ(r.err, c.message);
        EXPECT_FALSE(std::filesystem::exists(marker)) << "spawned despite: " << c.message;
    }
    auto unknown = drover_run({"--bogus-flag", "--", "/bin/touch", marker});
    EXPECT_EQ(unknown.status.code(), 2);
    EXPECT_TRUE(unknown.err.starts_with("drover: ")) << unknown.err;
    EXPECT_EQ(std::count(unknown.err.begin(), unknown.err.end(), '\n'), 1) << unknown.err;
    EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(Run, MissingProgramIs127WithTheStage) {
    auto r = drover_run({"--", "/no/such/program"});
    EXPECT_EQ(r.status.code(), 127);
    EXPECT_EQ(r.err, "drover: execve /no/such/program: No such file or directory\n");
    auto noexec = drover_run({"--", "/etc/passwd"});
    EXPECT_EQ(noexec.status.code(), 126);
}

// A real kernel refusal, contained: inside a user namespace of our own the per-namespace
// limit user.max_net_namespaces is set to 0, then an inner drover asks for a net namespace.
TEST(Run, KernelRefusalComesWithAdvice) {
    std::string script = "echo 0 > /proc/sys/user/max_net_namespaces && exec " + std::string(cli) +
                         " run -n -- /bin/true";
    auto r = drover_run({"-U", "-r", "--", "/bin/sh", "-c", script});
    EXPECT_EQ(r.status.code(), 125);
    EXPECT_EQ(r.err,
              "drover: creating the process (clone3) with namespaces net: No space left on device "
              "(a namespace limit is reached: see sysctl user.max_net_namespaces, or the nesting "
              "limit of 32 user/pid namespaces)\n");
}

TEST(Run, TimingPrintsEveryStage) {
    auto r = drover_run({"--timing", "-U", "--", "/bin/true"});
    EXPECT_EQ(r.status.code(), 0);
    // The same stages, named the same, as drover bench reports.
    for (const char* stage : {" prepare=", " clone=", " id_maps=", " setup=", " exec=", " run=", " reap=", " total="})
        EXPECT_NE(r.err.find(stage), std::string::npos) << stage << " in " << r.err;
}

TEST(Run, ForwardsSignalsToTheChild) {
    auto st = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<exit_status> {
        spawn_spec s = test::piped({cli, "run", "--", "/bin/sh", "-c", "echo ready; exec sleep 30"});
        process p = co_await spawn(ex, s);
        line_reader lines(*p.stdout_pipe());
        auto first = co_await lines.next();  // the child runs, so drover's handlers are set
        EXPECT_EQ(first, "ready");
        p.signal(SIGTERM);  // to drover; it must pass it on and report the child's death
        co_return co_await p.wait();
    });
    EXPECT_EQ(st, exit_status::exited_with(128 + SIGTERM)) << st.str();
}

// As PID 1 of its own PID namespace, a job without a handler is spared SIGTERM by the kernel;
// drover would wait for ever (`timeout 20 drover run -p …` never ended). It is killed instead,
// as an ordinary process would have died of the signal; one that handles it keeps it.
TEST(Run, ASignalThatWouldEndTheJobEndsItAsPidOne) {
    auto killed = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<exit_status> {
        spawn_spec s = test::piped({cli, "run", "-U", "-p", "--", "/bin/sh", "-c", "echo ready; read x"});
        s.in = stdio::pipe();  // kept open: `read` waits until the job ends
        process p = co_await spawn(ex, s);
        line_reader lines(*p.stdout_pipe());
        auto first = co_await lines.next();
        EXPECT_EQ(first, "ready");
        p.signal(SIGTERM);
        co_return co_await p.wait();
    });
    EXPECT_EQ(killed, exit_status::exited_with(128 + SIGKILL)) << killed.str();
    auto handled = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<exit_status> {
        spawn_spec s = test::piped({cli, "run", "-U", "-p", "--", "/bin/sh", "-c",
                                    "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done"});
        process p = co_await spawn(ex, s);
        line_reader lines(*p.stdout_pipe());
        auto first = co_await lines.next();
        EXPECT_EQ(first, "ready");
        p.signal(SIGTERM);
        auto said = co_await lines.next();
        EXPECT_EQ(said, "got TERM");
        co_return co_await p.wait();
    });
    EXPECT_EQ(handled, exit_status::exited_with(7)) << handled.str();
}

// With --init the command runs under drover init as PID 1: it is not PID 1 itself, and a
// signal that would end an ordinary process ends it (init passes it on) rather than being
// spared by the kernel and turned into SIGKILL by drover.
TEST(Run, InitIsPidOneAndPassesSignalsOn) {
    auto r = test::run_spec(test::piped({cli, "run", "-U", "-p", "-m", "--init", "--", "/bin/sh", "-c",
                                         "echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline; echo"}));
    EXPECT_EQ(r.status, exit_status::exited_with(0)) << r.err;
    EXPECT_NE(r.out.find("pid=2\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" init -- /bin/sh -c "), std::string::npos) << r.out;

    auto st = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<exit_status> {
        spawn_spec s = test::piped({cli, "run", "-U", "-p", "--init", "--", "/bin/sh", "-c", "echo ready; exec sleep 30"});
        process p = co_await spawn(ex, s);
        line_reader lines(*p.stdout_pipe());
        auto first = co_await lines.next();
        EXPECT_EQ(first, "ready");
        p.signal(SIGTERM);
        co_return co_await p.wait();
    });
    // sleep ended by the SIGTERM itself (128 + 15), not killed (137) as a bare PID 1 is.
    EXPECT_EQ(st, exit_status::exited_with(128 + SIGTERM)) << st.str();
}

// ^C typed on a terminal reaches the foreground job; under --init it ends a command that has
// no handler for it (a bare PID 1 would ignore it).
TEST(Run, InitEndsTheCommandOnCtrlCAtATerminal) {
    if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script(1) from util-linux is missing";
    auto st = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<exit_status> {
        std::string cmd = std::string(cli) + " run -U -p --init -- /bin/sh -c 'echo rea''dy; exec sleep 30'";
        spawn_spec s = test::piped({"/usr/bin/script", "-qec", cmd, "/dev/null"});
        s.in = stdio::pipe();
        process p = co_await spawn(ex, s);
        line_reader lines(*p.stdout_pipe());
        while (auto l = co_await lines.next())
            if (l->find("ready") != std::string::npos) break;
        co_await p.write_stdin("\x03");
        co_return co_await p.wait();
    });
    EXPECT_EQ(st, exit_status::exited_with(128 + SIGINT)) << st.str();
}

// The seed's interactive session: a shell on a terminal (script(1) gives it a pty), typed at.
TEST(Run, InteractiveShellOnATerminal) {
    if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script(1) from util-linux is missing";
    std::string cmd = std::string(cli) + " run -Upmu -r --hostname box -- /bin/sh";
    auto r = test::run_spec(
        [&] {
            spawn_spec s = test::piped({"/usr/bin/script", "-qec", cmd, "/dev/null"});
            s.in = stdio::pipe();
            return s;
        }(),
        "hostname\necho pid=$$\necho BEGIN; ps ax -o comm=; echo END\nexit 3\n");
    EXPECT_NE(r.out.find("box"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pid=1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("BEGIN\r\nsh\r\nps\r\nEND"), std::string::npos)
        << "ps sees only sh and itself: " << r.out;
    EXPECT_EQ(r.out.find("Cannot set tty process group"), std::string::npos) << r.out;
    EXPECT_EQ(r.status.code(), 3) << r.out;
}

}  // namespace
}  // namespace drover
