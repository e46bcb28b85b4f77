// spawn_spec values: namespace sets, id ranges, the environment and validation messages.
#include <gtest/gtest.h>

#include "drover/spawn/launch.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/spawn_spec.hpp"

extern char** environ;

namespace drover {
namespace {

TEST(NamespaceSet, PrintsInCanonicalOrder) {
    EXPECT_EQ((namespace_set{ns::net, ns::user, ns::pid}).str(), "user+pid+net");
    EXPECT_EQ(namespace_set{}.str(), "none");
    EXPECT_EQ(namespace_set::all().str(), "user+pid+mnt+uts+ipc+net+cgroup+time");
}

TEST(NamespaceSet, ParsesListsAndRejectsUnknownNames) {
    EXPECT_EQ(namespace_set::parse("user,pid"), (namespace_set{ns::user, ns::pid}));
    EXPECT_EQ(namespace_set::parse("mount+net"), (namespace_set{ns::mnt, ns::net}));
    EXPECT_EQ(namespace_set::parse("all"), namespace_set::all());
    std::string bad;
    EXPECT_FALSE(namespace_set::parse("user,bogus", &bad));
    EXPECT_EQ(bad, "bogus");
}

TEST(NamespaceSet, AllSubsetsRoundTripThroughText) {
    for (int bits = 0; bits < 256; ++bits) {
        auto s = namespace_set::from_bits(static_cast<std::uint8_t>(bits));
        EXPECT_EQ(namespace_set::parse(s.str()), s) << s.str();
    }
}

TEST(IdRange, ParsesInnerOuterCount) {
    EXPECT_EQ(parse_id_range("109:0:1"), (id_range{109, 0, 1}));
    EXPECT_EQ(parse_id_range("0:100000:65536"), (id_range{0, 100000, 65536}));
    EXPECT_EQ(parse_id_range("5:6"), (id_range{5, 6, 1}));
    EXPECT_FALSE(parse_id_range("5"));
    EXPECT_FALSE(parse_id_range("a:1:1"));
    EXPECT_FALSE(parse_id_range("1:2:3:4"));
    EXPECT_FALSE(parse_id_range("-1:0:1"));
}

TEST(Environment, SetUnsetAndClear) {
    environment env;
    env.set("DROVER_A", "1").set("DROVER_A", "2").unset("HOME");
    auto entries = env.materialize(environ);
    EXPECT_NE(std::find(entries.begin(), entries.end(), "DROVER_A=2"), entries.end());
    EXPECT_EQ(std::count_if(entries.begin(), entries.end(),
                            [](auto& e) { return e.starts_with("HOME="); }),
              0);
    EXPECT_EQ(env.lookup("DROVER_A", environ), "2");
    env.clear().set("ONLY", "x");
    EXPECT_EQ(env.materialize(environ), std::vector<std::string>{"ONLY=x"});
    EXPECT_FALSE(env.lookup("PATH", environ));
}

spawn_spec base() {
    spawn_spec s;
    s.argv = {"/bin/true"};
    return s;
}

TEST(Validate, AcceptsAPlainSpec) { EXPECT_EQ(validate(base()), ""); }

TEST(Validate, NamesTheFieldOfEachImpossibleSpec) {
    struct bad_case {
        void (*edit)(spawn_spec&);
        const char* message;
    };
    const bad_case cases[] = {
        {[](spawn_spec& s) { s.argv.clear(); }, "argv: empty, nothing to run"},
        {[](spawn_spec& s) { s.hostname = "box"; }, "hostname: needs the uts namespace"},
        {[](spawn_spec& s) { s.mount_proc = true; s.namespaces = {ns::mnt}; },
         "mount_proc: needs the pid namespace"},
        {[](spawn_spec& s) { s.mount_proc = true; s.namespaces = {ns::pid}; },
         "mount_proc: needs the mnt namespace"},
        {[](spawn_spec& s) { s.uid_map = {{0, 0, 1}}; }, "uid_map: needs the user namespace"},
        {[](spawn_spec& s) {
             s.namespaces = {ns::user};
             s.uid_map = {{0, 1000, 10}, {5, 2000, 1}};
         },
         "uid_map range 2 (5:2000:1): overlaps range 1 inside"},
        {[](spawn_spec& s) {
             s.namespaces = {ns::user};
             s.gid_map = {{0, 1000, 10}, {20, 1005, 1}};
         },
         "gid_map range 2 (20:1005:1): overlaps range 1 outside"},
        {[](spawn_spec& s) {
             s.namespaces = {ns::user};
             s.uid_map = {{0, 1000, 0}};
         },
         "uid_map range 1 (0:1000:0): count is 0"},
        {[](spawn_spec& s) { s.monotonic_offset = std::chrono::seconds(5); },
         "monotonic_offset: needs the time namespace"},
        {[](spawn_spec& s) { s.binds = {{"/tmp", "/mnt"}}; }, "binds[0]: needs the mnt namespace"},
        {[](spawn_spec& s) { s.pass_fds = {{1, 5}}; }, "pass_fds[0]: child_fd 1 is a stdio fd"},
        {[](spawn_spec& s) { s.out = stdio::from_fd(-3); }, "stdout: fd -3 is not a descriptor"},
        {[](spawn_spec& s) { s.namespaces = {ns::uts}; s.hostname = std::string(65, 'x'); },
         "hostname: longer than 64 bytes"},
    };
    for (const auto& c : cases) {
        spawn_spec s = base();
        c.edit(s);
        EXPECT_EQ(validate(s), c.message);
        try {
            prepared_spawn p(s);
            ADD_FAILURE() << "prepared an invalid spec: " << c.message;
        } catch (const spec_error& e) {
            EXPECT_EQ(std::string(e.what()), c.message);
        }
    }
}

TEST(ExitStatus, PrintsAndMapsToShellCodes) {
    EXPECT_EQ(exit_status::exited_with(3).str(), "exited with code 3");
    EXPECT_EQ(exit_status::killed_by(SIGKILL).str(), "killed by SIGKILL");
    EXPECT_EQ(exit_status::killed_by(SIGSEGV, true).str(), "killed by SIGSEGV (core dumped)");
    EXPECT_EQ(exit_status::killed_by(SIGTERM).shell_code(), 143);
    EXPECT_EQ(exit_status::exited_with(0).shell_code(), 0);
}

TEST(Timings, DurationsAreOrderedNonNegativeAndSumToTotal) {
    spawn_timings t;
    t.clone_start = 100;
    t.clone_end = 150;
    t.maps_written = 150;
    t.setup_done = 140;  // the child's clock read before the parent's clone3 returned
    t.exec_done = 300;
    t.exit_observed = 400;
    t.reaped = 410;
    stage_durations d = t.durations();
    for (auto v : d.as_array()) EXPECT_GE(v, 0);
    EXPECT_EQ(d.setup, 0);
    EXPECT_EQ(d.exec, 150);
    EXPECT_EQ(d.prepare, 0);  // launch_start not recorded: the timeline starts at clone3
    EXPECT_EQ(d.prepare + d.clone + d.id_maps + d.setup + d.exec + d.run + d.reap, d.total);
    EXPECT_EQ(d.total, 310);
    t.launch_start = 60;
    d = t.durations();
    EXPECT_EQ(d.prepare, 40);
    EXPECT_EQ(d.total, 350);
}

TEST(KernelAdvice, NamesTheSysctlOrLimit) {
    EXPECT_NE(kernel_advice(child_stage::clone, ENOSPC, {ns::net}).find("user.max_net_namespaces"),
              std::string::npos);
    EXPECT_NE(kernel_advice(child_stage::clone, EAGAIN, {}).find("RLIMIT_NPROC"), std::string::npos);
    EXPECT_NE(kernel_advice(child_stage::clone, EUSERS, {ns::user}).find("32"), std::string::npos);
    EXPECT_NE(kernel_advice(child_stage::clone, EINVAL, {ns::time}).find("CONFIG_TIME_NS"),
              std::string::npos);
    EXPECT_FALSE(kernel_advice(child_stage::clone, EPERM, {ns::user}).empty());
}

}  // namespace
}  // namespace drover

namespace drover {
namespace {

// Front ends reword validate()'s messages by their field; every shape it writes must parse.
TEST(SpecField, ReadsTheFieldOfEachMessageShape) {
    auto f = field_of("hostname: needs the uts namespace");
    EXPECT_EQ(f.name, "hostname");
    EXPECT_FALSE(f.index);
    EXPECT_EQ(f.rest, "needs the uts namespace");
    f = field_of("fs.ops[12] (tmpfs): target must be an absolute path");
    EXPECT_EQ(f.name, "fs.ops");
    EXPECT_EQ(f.index, 12U);
    EXPECT_EQ(f.rest, "target must be an absolute path");
    f = field_of("uid_map range 2 (0:1001:1): overlaps range 1 inside");
    EXPECT_EQ(f.name, "uid_map");
    EXPECT_EQ(f.index, 1U);
    EXPECT_EQ(f.rest, "overlaps range 1 inside");
    // Not a field: the whole message is the rest.
    for (const char* m : {"", "Hostname: x", "binds[x]: y", "uid_map range 0 (1:1:1): z", "fs.ops[1] (tmpfs: z", "argv"}) {
        f = field_of(m);
        EXPECT_TRUE(f.name.empty()) << m;
        EXPECT_EQ(f.rest, m);
    }
    // And every message validate() gives for these specs has its field.
    spawn_spec s;
    s.argv = {"true"};
    s.hostname = "h";
    EXPECT_EQ(field_of(validate(s)).name, "hostname");
    s = {};
    s.argv = {"true"};
    s.namespaces.add(ns::mnt);
    s.fs.enabled = true;
    s.fs.ops.push_back(fs_op::tmpfs("rel", ""));
    EXPECT_EQ(field_of(validate(s)).name, "fs.ops");
    s = {};
    s.argv = {"true"};
    s.namespaces.add(ns::user);
    s.uid_map = {{0, 1000, 1}, {0, 1001, 1}};
    EXPECT_EQ(field_of(validate(s)).index, 1U);
}

}  // namespace
}  // namespace drover
