// Isolation as a user sees it from inside the child: /proc/self/ns, hostname, id maps, PID 1,
// /proc, mounts, loopback, clocks. Includes the seed talk's scenarios ("Namespaces.go").
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "support.hpp"

namespace drover {
namespace {

using test::chomp;
using test::sh;

std::map<std::string, std::string> parse_ns(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string type, link;
    while (in >> type >> link) out[type] = link;
    return out;
}

std::map<std::string, std::string> own_ns() {
    std::map<std::string, std::string> out;
    for (int i = 0; i < ns_count; ++i) {
        std::string t(ns_name(static_cast<ns>(i)));
        char buf[128];
        ssize_t n = ::readlink(("/proc/self/ns/" + t).c_str(), buf, sizeof buf);
        out[t] = std::string(buf, static_cast<std::size_t>(n > 0 ? n : 0));
    }
    return out;
}

void expect_exactly(namespace_set requested) {
    auto r = test::run_spec(test::piped({test::helper, "ns"}, requested));
    ASSERT_TRUE(r.status.success()) << requested.str() << ": " << r.status.str() << " " << r.err;
    auto inside = parse_ns(r.out);
    auto outside = own_ns();
    ASSERT_EQ(inside.size(), 8u) << r.out;
    for (int i = 0; i < ns_count; ++i) {
        auto n = static_cast<ns>(i);
        std::string t(ns_name(n));
        if (requested.has(n))
            EXPECT_NE(inside[t], outside[t]) << t << " should be new in " << requested.str();
        else
            EXPECT_EQ(inside[t], outside[t]) << t << " should be shared in " << requested.str();
    }
}

TEST(Isolation, EachSingleNamespaceIsNewAndOnlyThatOne) {
    expect_exactly({});
    for (int i = 0; i < ns_count; ++i) expect_exactly(namespace_set{static_cast<ns>(i)});
}

TEST(Isolation, CombinationsAreNewExactlyForTheRequestedSet) {
    expect_exactly({ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net});
    expect_exactly(namespace_set::all());
    expect_exactly({ns::user, ns::time});
    expect_exactly({ns::net, ns::cgroup, ns::ipc});
    // A deterministic sample of the remaining subsets.
    for (int bits = 3; bits < 256; bits += 37) expect_exactly(namespace_set::from_bits(static_cast<std::uint8_t>(bits)));
}

// Seed scenario: a new UTS namespace with its own hostname; the host's is untouched.
TEST(Isolation, HostnameInsideDiffersFromOutside) {
    char host[256] = {};
    ::gethostname(host, sizeof host);
    auto r = sh("hostname; cat /proc/sys/kernel/domainname", {ns::uts}, [](spawn_spec& s) {
        s.hostname = "box";
        s.domainname = "sandbox.test";
    });
    EXPECT_EQ(r.out, "box\nsandbox.test\n");
    char after[256] = {};
    ::gethostname(after, sizeof after);
    EXPECT_STREQ(host, after);
    EXPECT_STRNE(after, "box");
}

// Default map: the caller's uid/gid become 0 inside (like unshare --map-root-user).
TEST(Isolation, DefaultMapMakesCallerRootInside) {
    auto r = sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; cat /proc/self/setgroups",
                {ns::user});
    std::ostringstream want;
    want << "0\n0\n"
         << "         0 " << std::setw(10) << ::getuid() << "          1\n"
         << "         0 " << std::setw(10) << ::getgid() << "          1\n"
         << "deny\n";
    EXPECT_EQ(r.out, want.str());
}

// Seed scenario: inner uid 109 -> caller's uid, inner gid 114 -> caller's gid, size 1.
TEST(Isolation, SeedMap109And114) {
    auto r = sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map", {ns::user},
                [](spawn_spec& s) {
                    s.uid_map = {{109, ::getuid(), 1}};
                    s.gid_map = {{114, ::getgid(), 1}};
                });
    auto lines = r.out;
    std::ostringstream want;
    want << "109\n114\n"
         << "       109 " << std::setw(10) << ::getuid() << "          1\n"
         << "       114 " << std::setw(10) << ::getgid() << "          1\n";
    EXPECT_EQ(lines, want.str());
}

TEST(Isolation, MultiRangeMap) {
    if (::geteuid() != 0) GTEST_SKIP() << "multi-range maps need CAP_SETUID in the parent namespace";
    auto r = sh("cat /proc/self/uid_map; id -u; stat -c %u /proc/self/exe 2>/dev/null || true",
                {ns::user}, [](spawn_spec& s) {
                    s.uid_map = {{0, 0, 1}, {1000, 200000, 100}, {5000, 300000, 10}};
                    s.gid_map = {{0, 0, 1}, {1000, 200000, 100}};
                });
    std::istringstream in(r.out);
    std::vector<std::array<long, 3>> rows;
    for (int i = 0; i < 3; ++i) {
        std::array<long, 3> row{};
        in >> row[0] >> row[1] >> row[2];
        rows.push_back(row);
    }
    EXPECT_EQ(rows[0], (std::array<long, 3>{0, 0, 1}));
    EXPECT_EQ(rows[1], (std::array<long, 3>{1000, 200000, 100}));
    EXPECT_EQ(rows[2], (std::array<long, 3>{5000, 300000, 10}));
    long uid = -1;
    in >> uid;
    EXPECT_EQ(uid, 0);
}

// Seed scenario: the child is PID 1 of a new PID namespace, and a fresh /proc shows only it.
TEST(Isolation, Pid1AndProcShowsOnlyTheSandbox) {
    auto r = sh("echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; "
                "ps -e -o pid= | wc -l",
                {ns::user, ns::pid, ns::mnt});
    std::istringstream in(r.out);
    std::string pid1, pids, count;
    std::getline(in, pid1);
    std::getline(in, pids);
    std::getline(in, count);
    EXPECT_EQ(pid1, "1");
    // The shell (1), and the few helpers of the pipeline: all small pids of the new namespace.
    std::istringstream ps(pids);
    int p, seen = 0;
    while (ps >> p) {
        EXPECT_LT(p, 20) << pids;
        ++seen;
    }
    EXPECT_GE(seen, 1);
    EXPECT_LE(seen, 6) << pids;
    EXPECT_LE(std::stoi(count), 6);
}

TEST(Isolation, WithoutMountProcTheHostProcStays) {
    auto r = sh("echo $$; test -d /proc/1 && cat /proc/1/comm", {ns::user, ns::pid, ns::mnt},
                [](spawn_spec& s) { s.mount_proc = false; });
    std::ifstream host_comm("/proc/1/comm");
    std::string host_init;
    std::getline(host_comm, host_init);
    EXPECT_EQ(r.out, "1\n" + host_init + "\n");
}

// Seed scenario: / is made private first, so a mount made inside never shows on the host.
TEST(Isolation, MountInsideDoesNotAppearOnHost) {
    char dir[] = "/tmp/drover-mnt-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string target = dir;
    auto r = test::run_spec([&] {
        spawn_spec s = test::piped({"/bin/sh", "-c",
                                    "mount -t tmpfs none " + target + " && grep -c ' " + target +
                                        " ' /proc/self/mountinfo && findmnt -no PROPAGATION /"},
                                   {ns::user, ns::mnt});
        return s;
    }());
    std::ifstream mi("/proc/self/mountinfo");
    std::string all((std::istreambuf_iterator<char>(mi)), {});
    ::rmdir(dir);
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out, "1\nprivate\n");
    EXPECT_EQ(all.find(" " + target + " "), std::string::npos) << "mount leaked to the host";
}

TEST(Isolation, ReadOnlyBindAndTmpfs) {
    char dir[] = "/tmp/drover-bind-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string target = dir;
    spawn_spec s = test::piped({"/bin/sh", "-c",
                                "touch " + target + "/x 2>/dev/null && echo writable || echo readonly; "
                                "touch /mnt/y && echo tmpfs-writable; test -x " + target + "/sh && echo bound"},
                               {ns::user, ns::mnt});
    s.binds = {{"/bin", target, true}};
    s.tmpfs = {{"/mnt", "size=1m"}};
    auto rr = test::run_spec(s);
    ::rmdir(dir);
    EXPECT_EQ(rr.out, "readonly\ntmpfs-writable\nbound\n") << rr.err;
    EXPECT_EQ(::access("/mnt/y", F_OK), -1) << "tmpfs write leaked to the host";
}

TEST(Isolation, LoopbackIsUpInANewNetNamespace) {
    auto ip = sh("ip -o link show lo; ip -o link | wc -l", {ns::user, ns::net});
    EXPECT_NE(ip.out.find("<LOOPBACK,UP,LOWER_UP>"), std::string::npos) << ip.out << ip.err;
    EXPECT_NE(ip.out.find("\n1\n"), std::string::npos) << "only lo exists: " << ip.out;
    auto down = sh("ip -o link show lo", {ns::user, ns::net},
                   [](spawn_spec& s) { s.loopback_up = false; });
    EXPECT_EQ(down.out.find(",UP"), std::string::npos) << down.out;
}

TEST(Isolation, IpcNamespaceHidesHostQueues) {
    auto r = sh("ipcmk -Q >/dev/null && ipcs -q | grep -c '^0x'", {ns::ipc});
    EXPECT_EQ(chomp(r.out), "1") << r.err;
}

TEST(Isolation, TimeNamespaceOffsetsShowInClocks) {
    timespec host_mono{}, host_boot{};
    ::clock_gettime(CLOCK_MONOTONIC, &host_mono);
    ::clock_gettime(CLOCK_BOOTTIME, &host_boot);
    spawn_spec s = test::piped({test::helper, "monotonic"}, {ns::time});
    s.monotonic_offset = std::chrono::hours(24 * 10);
    s.boottime_offset = std::chrono::hours(24 * 20);
    auto r = test::run_spec(s);
    long long mono = 0, boot = 0;
    std::istringstream(r.out) >> mono >> boot;
    EXPECT_NEAR(static_cast<double>(mono - host_mono.tv_sec), 864000.0, 5.0) << r.out << r.err;
    EXPECT_NEAR(static_cast<double>(boot - host_boot.tv_sec), 1728000.0, 5.0) << r.out;
    // The supervisor's own clocks and time namespace are untouched.
    timespec after{};
    ::clock_gettime(CLOCK_MONOTONIC, &after);
    EXPECT_LT(after.tv_sec - host_mono.tv_sec, 60);
    char a[64] = {}, b[64] = {};
    ASSERT_GT(::readlink("/proc/self/ns/time", a, sizeof a), 0);
    ASSERT_GT(::readlink("/proc/self/ns/time_for_children", b, sizeof b), 0);
    EXPECT_STREQ(a, b);
}

TEST(Isolation, NegativeTimeOffsetWithUserNamespace) {
    spawn_spec s = test::piped({test::helper, "monotonic"}, {ns::user, ns::time});
    timespec host{};
    ::clock_gettime(CLOCK_MONOTONIC, &host);
    if (host.tv_sec < 20) GTEST_SKIP() << "host uptime too short for a negative offset";
    s.monotonic_offset = -std::chrono::seconds(10);
    auto r = test::run_spec(s);
    long long mono = 0;
    std::istringstream(r.out) >> mono;
    EXPECT_NEAR(static_cast<double>(mono - host.tv_sec), -10.0, 5.0) << r.out << r.err;
}

TEST(Isolation, CgroupNamespaceRootsTheChildsCgroup) {
    auto r = sh("cat /proc/self/cgroup", {ns::cgroup});
    // Inside, every hierarchy shows the child's own cgroup as "/".
    std::istringstream in(r.out);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
        ++lines;
        EXPECT_TRUE(line.ends_with(":/")) << line;
    }
    EXPECT_GT(lines, 0);
}

}  // namespace
}  // namespace drover
