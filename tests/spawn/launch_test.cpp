// The synchronous spawn path: success, stage-named failures (real and injected), no leftovers.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "support.hpp"

namespace drover {
namespace {

using test::open_fd_count;
using test::zombie_children;

// Runs `spec` synchronously; returns the failure (stage none if it ran and exited 0).
spawn_failure try_launch(const spawn_spec& spec, exit_status* status = nullptr) {
    prepared_spawn p(spec);
    launched_child child;
    spawn_failure failure;
    if (!launch(p, child, failure) || !await_exec(p, child, failure)) return failure;
    exit_status st = wait_blocking(child);
    if (status) *status = st;
    return {};
}

TEST(Launch, RunsAndReapsWithOrderedTimestamps) {
    spawn_spec s;
    s.argv = {"true"};  // found through PATH
    prepared_spawn p(s);
    launched_child child = launch_sync(p);
    EXPECT_GT(child.pid, 0);
    exit_status st = wait_blocking(child);
    EXPECT_TRUE(st.success()) << st.str();
    const spawn_timings& t = child.timings;
    EXPECT_GT(t.clone_start, 0);
    EXPECT_LE(t.clone_start, t.clone_end);
    EXPECT_LE(t.clone_end, t.maps_written);
    EXPECT_GE(t.child_start, t.clone_start);
    EXPECT_GE(t.setup_done, t.child_start);
    EXPECT_GE(t.exec_done, t.setup_done);
    EXPECT_LE(t.exec_done, t.exit_observed);
    EXPECT_LE(t.exit_observed, t.reaped);
}

TEST(Launch, ExitWithoutExecMeasuresSetupAlone) {
    spawn_spec s;
    s.exec = false;
    s.namespaces = {ns::user, ns::uts};
    s.hostname = "nothing";
    exit_status st;
    spawn_failure f = try_launch(s, &st);
    EXPECT_EQ(f.stage, child_stage::none) << f.message();
    EXPECT_TRUE(st.success());
}

TEST(Launch, MissingProgramNamesExecveAndThePath) {
    int fds = open_fd_count();
    spawn_spec s;
    s.argv = {"/no/such/program"};
    spawn_failure f = try_launch(s);
    EXPECT_EQ(f.stage, child_stage::exec);
    EXPECT_EQ(f.code.value(), ENOENT);
    EXPECT_EQ(f.message(), "execve /no/such/program: No such file or directory");
    EXPECT_EQ(open_fd_count(), fds);
    EXPECT_EQ(zombie_children(), 0);
}

TEST(Launch, ProgramNotInPathSaysItSearched) {
    spawn_spec s;
    s.argv = {"drover-no-such-program"};
    spawn_failure f = try_launch(s);
    EXPECT_EQ(f.message(),
              "execve drover-no-such-program (searched PATH): No such file or directory");
}

TEST(Launch, NonExecutableFileIsPermissionDenied) {
    spawn_spec s;
    s.argv = {"/etc/passwd"};
    spawn_failure f = try_launch(s);
    EXPECT_EQ(f.stage, child_stage::exec);
    EXPECT_EQ(f.code.value(), EACCES);
    EXPECT_FALSE(f.advice.empty());
}

TEST(Launch, RealSetupFailuresNameTheirStage) {
    struct failing {
        void (*edit)(spawn_spec&);
        const char* message;
    };
    const failing cases[] = {
        {[](spawn_spec& s) { s.cwd = "/no/such/dir"; },
         "changing directory to /no/such/dir: No such file or directory"},
        {[](spawn_spec& s) {
             s.namespaces = {ns::user, ns::mnt};
             s.binds = {{"/no/such/src", "/mnt"}};
         },
         "bind-mounting /no/such/src on /mnt: No such file or directory"},
        {[](spawn_spec& s) {
             s.namespaces = {ns::user, ns::mnt};
             s.tmpfs = {{"/no/such/target", ""}};
         },
         "mounting tmpfs on /no/such/target: No such file or directory"},
        {[](spawn_spec& s) { s.rlimits = {{RLIMIT_NOFILE, 1ULL << 40, 1ULL << 40}}; },
         "setting rlimit RLIMIT_NOFILE: Operation not permitted"},
        {[](spawn_spec& s) { s.join_cgroups = {"/no/such/cgroup/cgroup.procs"}; },
         "moving the child into cgroup /no/such/cgroup/cgroup.procs: No such file or directory"},
    };
    for (const auto& c : cases) {
        int fds = open_fd_count();
        spawn_spec s;
        s.argv = {"/bin/true"};
        c.edit(s);
        spawn_failure f = try_launch(s);
        EXPECT_EQ(f.message(), c.message);
        EXPECT_EQ(open_fd_count(), fds) << c.message;
        EXPECT_EQ(zombie_children(), 0) << c.message;
    }
}

// A spec that passes through every child stage, so a failure can be injected at each.
spawn_spec everything() {
    spawn_spec s;
    s.argv = {"/bin/true"};
    s.namespaces = namespace_set::all();
    s.hostname = "box";
    s.domainname = "example";
    s.binds = {{"/bin", "/mnt", true}};
    s.tmpfs = {{"/tmp", "size=1m"}};
    s.monotonic_offset = std::chrono::seconds(100);
    s.rlimits = {{RLIMIT_CORE, 0, 0}};
    s.no_new_privs = true;
    s.new_session = true;
    s.cwd = "/";
    s.out = stdio::null();
    return s;
}

TEST(Launch, EverythingAtOnceSucceeds) {
    exit_status st;
    spawn_failure f = try_launch(everything(), &st);
    ASSERT_EQ(f.stage, child_stage::none) << f.message() << " " << f.advice;
    EXPECT_TRUE(st.success()) << st.str();
}

TEST(Launch, InjectedFailureAtEachStageIsNamedAndLeavesNothing) {
    // The first spawn with stdio::null() opens drover's one process-wide /dev/null: do it
    // before counting descriptors.
    ASSERT_EQ(try_launch(everything()).stage, child_stage::none);
    for (child_stage stage : child_stages) {
        int fds = open_fd_count();
        spawn_spec s = everything();
        s.inject_failure = stage;
        spawn_failure f = try_launch(s);
        EXPECT_EQ(f.stage, stage) << stage_id(stage) << ": " << f.message();
        EXPECT_EQ(f.code.value(), EPERM) << stage_id(stage);
        EXPECT_TRUE(f.message().starts_with(std::string(stage_action(stage))))
            << f.message();
        EXPECT_NE(f.message().find("Operation not permitted"), std::string::npos) << f.message();
        EXPECT_EQ(open_fd_count(), fds) << stage_id(stage);
        EXPECT_EQ(zombie_children(), 0) << stage_id(stage);
    }
}

TEST(Launch, SpawnErrorWhatIsOneLineWithAdvice) {
    spawn_failure f{child_stage::clone, std::error_code(ENOSPC, std::generic_category()),
                    "user+net", kernel_advice(child_stage::clone, ENOSPC, {ns::user, ns::net})};
    spawn_error e(f);
    std::string what = e.what();
    EXPECT_TRUE(what.starts_with("creating the process (clone3) with namespaces user+net: "
                                 "No space left on device ("))
        << what;
    EXPECT_NE(what.find("user.max_net_namespaces"), std::string::npos);
    EXPECT_EQ(what.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace drover
