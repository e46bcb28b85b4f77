// Syscall filters: policies from files (TOML, JSON) with located errors, compiled with
// libseccomp, installed last before execve, and seen to act from inside the child.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "drover/spawn/spawn_error.hpp"
#include "support.hpp"

namespace drover {
namespace {

std::string error_of(std::string_view text, std::string_view name = "policy.toml") {
    try {
        seccomp_policy::parse(text, name);
    } catch (const spec_error& e) {
        return e.what();
    }
    return {};
}

TEST(SeccompPolicy, ActionsParseAndPrint) {
    EXPECT_EQ(seccomp_action::parse("errno:ENOSYS"), seccomp_action::fail(ENOSYS));
    EXPECT_EQ(seccomp_action::parse("errno"), seccomp_action::fail(EPERM));
    EXPECT_EQ(seccomp_action::parse("errno:13"), seccomp_action::fail(EACCES));
    EXPECT_EQ(seccomp_action::parse("kill"), seccomp_action::kill());
    EXPECT_EQ(seccomp_action::parse("allow"), seccomp_action::allow());
    EXPECT_EQ(seccomp_action::parse("log")->what, seccomp_action::kind::log);
    for (const char* bad : {"", "deny", "errno:", "errno:EWHAT", "errno:0", "errno:99999", "errno:-1"})
        EXPECT_FALSE(seccomp_action::parse(bad)) << bad;
    EXPECT_EQ(seccomp_action::fail(ENOSYS).str(), "errno:ENOSYS");
}

TEST(SeccompPolicy, TomlAndJsonReadTheSamePolicy) {
    auto t = seccomp_policy::parse(R"(
default = "allow"
abis = "native"
[[rule]]
action = "errno:EACCES"
syscalls = ["mkdir", "mkdirat"]
[[rule]]
action = "kill"
syscalls = ["ioctl"]
args = [{index = 1, op = "masked_eq", value = "0x5412", mask = 4294967295}]
)", "p.toml");
    auto j = seccomp_policy::parse(R"({"default": "allow", "abis": "native", "rules": [
        {"action": "errno:EACCES", "syscalls": ["mkdir", "mkdirat"]},
        {"action": "kill", "syscalls": ["ioctl"], "args": [{"index": 1, "op": "masked_eq", "value": "0x5412", "mask": 4294967295}]}]})",
                                   "p.json");
    EXPECT_EQ(t, j);
    ASSERT_EQ(t.rules.size(), 2u);
    EXPECT_EQ(t.rules[1].args[0].value, 0x5412u);
    EXPECT_FALSE(t.all_abis);
}

TEST(SeccompPolicy, BaseDefaultStartsFromDroversRules) {
    auto p = seccomp_policy::parse("base = \"default\"\n[[rule]]\naction = \"errno\"\nsyscalls = [\"mkdir\"]\n", "p.toml");
    EXPECT_EQ(p.rules.size(), seccomp_policy::builtin_default().rules.size() + 1);
}

TEST(SeccompPolicy, ErrorsSayFileLineColumnAndField) {
    EXPECT_EQ(error_of("default = \"deny\"\n"),
              "policy.toml:1:11: default: expected allow, errno[:NAME], kill, kill-thread, log or trap, not \"deny\"");
    EXPECT_EQ(error_of("[[rule]]\nsyscalls = [\"mkdir\"]\n"), "policy.toml:1:1: rule[1]: missing field 'action'");
    EXPECT_EQ(error_of("[[rule]]\naction = \"kill\"\nsyscalls = [\"mkdir\"]\nargs = [{index = 9}]\n"),
              "policy.toml:4:18: rule[1].args.index: expected 0..5");
    EXPECT_EQ(error_of("[[rule]]\naction = \"kill\"\nsyscalls = [3]\n"), "policy.toml:3:13: rule[1].syscalls: expected a string");
    EXPECT_EQ(error_of("bogus = 1\n"), "policy.toml:1:9: bogus: unknown field (default, base, abis, [[rule]])");
    EXPECT_NE(error_of("default = \n"), "");  // a TOML syntax error, located by toml++
    EXPECT_EQ(error_of("{\"rules\": [{\"syscalls\": [\"x\"]}]}", "p.json"), "p.json:rules[0]: missing field 'action'");
    EXPECT_EQ(error_of("{\"default\": ", "p.json").rfind("p.json:byte ", 0), 0u);
}

// Found by tests/fuzz/seccomp_fuzz: a number beyond a double escaped as nlohmann's
// out_of_range instead of a spec_error.
TEST(SeccompPolicy, JsonNumberBeyondADoubleIsASpecError) {
    EXPECT_EQ(error_of("{\"default\": 1e400}", "p.json"), "p.json:number: out of range (beyond a double, such as 1e400)");
    EXPECT_EQ(error_of("{\"rules\": [{\"action\": \"kill\", \"syscalls\": [\"ptrace\"], \"args\": [{\"value\": -1e999}]}]}",
                       "p.json"),
              "p.json:number: out of range (beyond a double, such as 1e400)");
}

TEST(SeccompPolicy, UnknownSyscallsAreRefusedWhenCompiling) {
    seccomp_policy p;
    p.rules.push_back({{"no_such_call"}, seccomp_action::fail(EPERM), {}});
    try {
        seccomp_program::compile(p);
        FAIL() << "compiled an unknown syscall";
    } catch (const spec_error& e) {
        EXPECT_STREQ(e.what(), "seccomp: rule 1: unknown syscall 'no_such_call'");
    }
}

TEST(SeccompPolicy, ProgramsFromBytesMustBeWholeInstructions) {
    EXPECT_THROW(seccomp_program::from_bytes(""), spec_error);
    EXPECT_THROW(seccomp_program::from_bytes("1234567"), spec_error);
    EXPECT_THROW(seccomp_program::from_bytes(std::string(8 * 4097, '\0')), spec_error);
    auto def = seccomp_program::compile(seccomp_policy::builtin_default());
    auto copy = seccomp_program::from_bytes(def->bytes());
    EXPECT_EQ(copy->instructions(), def->instructions());
}

// allows() runs the compiled program as the kernel would: the answers follow the policy, for
// a deny list, an allow list and a rule on an argument.
TEST(SeccompPolicy, AProgramSaysWhichCallsItLetsThrough) {
    auto def = seccomp_program::compile(seccomp_policy::builtin_default());
    for (long nr : {SYS_read, SYS_write, SYS_execve, SYS_recvmsg, SYS_exit_group}) EXPECT_TRUE(def->allows(static_cast<int>(nr))) << nr;
    for (long nr : {SYS_ptrace, SYS_keyctl, SYS_bpf, SYS_mount, SYS_setns}) EXPECT_FALSE(def->allows(static_cast<int>(nr))) << nr;

    seccomp_policy only;
    only.default_action = seccomp_action::kill();
    only.rules.push_back({{"read", "exit_group"}, seccomp_action::allow(), {}});
    auto allow_list = seccomp_program::compile(only);
    EXPECT_TRUE(allow_list->allows(SYS_read));
    EXPECT_TRUE(allow_list->allows(SYS_exit_group));
    EXPECT_FALSE(allow_list->allows(SYS_write));
    EXPECT_FALSE(allow_list->allows(SYS_recvmsg));

    seccomp_policy on_arg;
    on_arg.rules.push_back({{"fcntl"}, seccomp_action::fail(EPERM), {{1, seccomp_arg::op::eq, 5, ~0ULL}}});
    auto by_arg = seccomp_program::compile(on_arg);
    EXPECT_TRUE(by_arg->allows(SYS_fcntl, 0));
    EXPECT_FALSE(by_arg->allows(SYS_fcntl, 5));

    // An instruction seccomp programs do not use: not followed, so not allowed.
    const std::uint64_t odd = 0x0000000000000084;  // BPF_ALU | BPF_NEG
    EXPECT_FALSE(seccomp_program::from_bytes(std::string(reinterpret_cast<const char*>(&odd), 8))->allows(SYS_read));
}

TEST(Seccomp, AnErrnoRuleFailsThatCallInsideOnly) {
    seccomp_policy p;
    p.rules.push_back({{"mkdir", "mkdirat"}, seccomp_action::fail(EACCES), {}});
    spawn_spec s = test::piped({"/bin/sh", "-c", "mkdir /no-such-parent/x 2>&1 | grep -c 'Permission denied'"});
    s.seccomp = seccomp_program::compile(p);
    auto in = test::run_spec(s);
    EXPECT_EQ(in.out, "1\n") << in.err;
}

TEST(Seccomp, AKillRuleEndsTheProcessWithSigsys) {
    seccomp_policy p;
    p.rules.push_back({{"uname"}, seccomp_action::kill(), {}});
    spawn_spec s = test::piped({"/bin/uname"});
    s.seccomp = seccomp_program::compile(p);
    auto r = test::run_spec(s);
    EXPECT_EQ(r.status.signal(), SIGSYS) << r.status.str();
}

TEST(Seccomp, AProgramFromADescriptorIsInstalledAsIs) {
    seccomp_policy p;
    p.rules.push_back({{"mkdir", "mkdirat"}, seccomp_action::fail(EROFS), {}});
    auto compiled = seccomp_program::compile(p);
    int fd = ::memfd_create("drover-bpf", MFD_CLOEXEC);
    ASSERT_EQ(::write(fd, compiled->bytes().data(), compiled->bytes().size()),
              static_cast<ssize_t>(compiled->bytes().size()));
    ::lseek(fd, 0, SEEK_SET);
    auto read = seccomp_program::read_fd(fd);
    ::close(fd);
    spawn_spec s = test::piped({"/bin/sh", "-c", "mkdir /no-such-parent/x 2>&1 | grep -c 'Read-only'"});
    s.seccomp = read;
    EXPECT_EQ(test::run_spec(s).out, "1\n");
}

TEST(Seccomp, TheFilterIsOnOnBothClonePaths) {
    spawn_spec s = test::piped({"/bin/sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"}, {ns::user});
    s.seccomp = seccomp_program::compile(seccomp_policy::builtin_default());
    auto vfork = test::run_spec(s);
    force_clone_method(clone_method::fork);
    auto fork = test::run_spec(s);
    force_clone_method(std::nullopt);
    EXPECT_EQ(vfork.out, "NoNewPrivs:\t1\nSeccomp:\t2\n");
    EXPECT_EQ(fork.out, vfork.out);
}

}  // namespace
}  // namespace drover
