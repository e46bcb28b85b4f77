// The sandbox walls through the library, each seen from inside the child the way a user
// would look: the ids it runs as (and what the host sees), its capabilities, the root it
// was given, op by op, and the errors a wrong root gives.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "drover/spawn/id_pool.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "support.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;
using test::chomp;

// A scratch directory of the host's, removed at the end of the test (also on failure).
struct host_dir {
    std::string path;
    explicit host_dir(const char* tag, mode_t mode = 0755) {
        path = "/var/tmp/drover-walls-" + std::string(tag) + "-" + std::to_string(::getpid());
        fs::remove_all(path);
        fs::create_directories(path);
        ::chmod(path.c_str(), mode);
    }
    ~host_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string status_field(const std::string& status, const std::string& key) {
    std::istringstream in(status);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0) {
            std::string v = line.substr(key.size() + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    return {};
}

// A spec whose root is a tmpfs with the host's programs read-only, as bwrap users build one.
spawn_spec minimal_root(std::vector<std::string> argv) {
    spawn_spec s = test::piped(std::move(argv), {ns::user, ns::pid, ns::mnt});
    s.fs.enabled = true;
    s.fs.ops = {fs_op::ro_bind("/usr", "/usr"), fs_op::symlink("usr/bin", "/bin"),
                fs_op::symlink("usr/lib", "/lib"), fs_op::symlink("usr/lib64", "/lib64"),
                fs_op::proc("/proc"), fs_op::dev("/dev"), fs_op::tmpfs("/tmp")};
    return s;
}

TEST(Ids, AMappedUidIsTheHostUidTheJobRunsAs) {
    if (::geteuid() != 0) GTEST_SKIP() << "mapping another uid needs root";
    host_dir out("ids", 0777);
    std::string secret = out.path + "/root-only";
    std::ofstream(secret) << "x\n";
    ::chmod(secret.c_str(), 0644);  // root's, writable by root only
    spawn_spec s = test::piped({"/bin/sh", "-c",
                                "id -u; touch /mnt/made-inside; echo more >> /mnt/root-only && echo APPENDED"},
                               {ns::user, ns::mnt});
    s.uid_map = {{0, 1000, 1}};
    s.gid_map = {{0, 1000, 1}};
    s.binds = {{out.path, "/mnt", false}};
    auto r = test::run_spec(s);
    EXPECT_EQ(r.out, "0\n") << r.err;  // root inside...
    struct stat st{};
    ASSERT_EQ(::stat((out.path + "/made-inside").c_str(), &st), 0) << r.err;
    EXPECT_EQ(st.st_uid, 1000u);  // ...host uid 1000 outside
    EXPECT_EQ(st.st_gid, 1000u);
    EXPECT_EQ(r.out.find("APPENDED"), std::string::npos) << "host root's 0644 file was appended to";
}

TEST(Ids, RlimitNprocHoldsForAMappedRoot) {
    if (::geteuid() != 0) GTEST_SKIP() << "mapping another uid needs root";
    spawn_spec s = test::piped({"/bin/sh", "-c", "/bin/true & wait $! && echo FORKED"}, {ns::user});
    s.uid_map = {{0, 1000, 1}};
    s.gid_map = {{0, 1000, 1}};
    s.rlimits = {{RLIMIT_NPROC, 1, 1}};
    auto r = test::run_spec(s);
    EXPECT_EQ(r.out.find("FORKED"), std::string::npos) << "a second process started under RLIMIT_NPROC=1: " << r.err;
}

TEST(Ids, WithoutAUserNamespaceRootCanRunAsAnotherUserWithNoGroups) {
    if (::geteuid() != 0) GTEST_SKIP() << "switching ids needs root";
    spawn_spec s = test::piped({"/bin/sh", "-c", "id -u; id -g; id -G; grep CapEff /proc/self/status"});
    s.uid = 1000;
    s.gid = 1000;
    auto r = test::run_spec(s);
    EXPECT_EQ(r.out, "1000\n1000\n1000\nCapEff:\t0000000000000000\n") << r.err;
}

TEST(Ids, AutomaticIdsGiveConcurrentJobsDisjointHostRanges) {
    if (::geteuid() != 0) GTEST_SKIP() << "automatic ids need root";
    auto maps = test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
        spawn_spec s = test::piped({"/bin/sh", "-c", "cat /proc/self/uid_map; read x"}, {ns::user, ns::pid});
        s.ids = userns_ids::automatic;
        s.in = stdio::pipe();
        process a = co_await spawn(ex, s);
        process b = co_await spawn(ex, s);  // a is still alive: its range is taken
        EXPECT_EQ(id_pool::global().leased(), 2u);
        std::vector<std::string> out;
        for (process* p : {&a, &b}) {
            p->close_stdin();
            auto o = co_await p->read_all();
            co_await p->wait();
            out.push_back(o.out);
        }
        co_return out;
    });
    std::uint64_t inner[2], outer[2], count[2];
    for (int i = 0; i < 2; ++i) {
        std::istringstream(maps[static_cast<std::size_t>(i)]) >> inner[i] >> outer[i] >> count[i];
        EXPECT_EQ(inner[i], 0u);
        EXPECT_GE(outer[i], 65536u) << "a host range must not be the host's own users";
        EXPECT_GE(count[i], 1u);
    }
    EXPECT_TRUE(outer[0] + count[0] <= outer[1] || outer[1] + count[1] <= outer[0])
        << maps[0] << " overlaps " << maps[1];
    EXPECT_EQ(id_pool::global().leased(), 0u) << "a reaped job still holds its range";
}

TEST(Ids, AutomaticIdsNeedThePidNamespace) {
    spawn_spec s = test::piped({"/bin/true"}, {ns::user});
    s.ids = userns_ids::automatic;
    EXPECT_THROW(prepared_spawn{s}, spec_error);
}

TEST(Capabilities, OnlyTheKeptOnesRemainInEverySet) {
    spawn_spec s = test::piped({"/bin/sh", "-c", "cat /proc/self/status"}, {ns::user});
    s.capabilities = capability_set{}.add(13 /* NET_RAW */);
    auto r = test::run_spec(s);
    ASSERT_TRUE(r.status.success()) << r.err;
    for (const char* set : {"CapEff", "CapPrm", "CapBnd", "CapInh"})
        EXPECT_EQ(status_field(r.out, set), "0000000000002000") << set;
    EXPECT_EQ(status_field(r.out, "CapAmb"), "0000000000000000");  // root needs no ambient set
    EXPECT_EQ(status_field(r.out, "NoNewPrivs"), "1");
}

TEST(Capabilities, ANonRootJobKeepsItsCapabilitiesThroughExecInTheAmbientSet) {
    if (::geteuid() != 0) GTEST_SKIP() << "automatic ids need root";
    spawn_spec s = test::piped({"/bin/sh", "-c", "id -u; cat /proc/self/status"}, {ns::user, ns::pid});
    s.ids = userns_ids::automatic;
    s.uid = 1000;
    s.gid = 1000;
    s.capabilities = capability_set{}.add(10 /* NET_BIND_SERVICE */);
    auto r = test::run_spec(s);
    ASSERT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out.substr(0, 5), "1000\n");
    for (const char* set : {"CapEff", "CapPrm", "CapAmb", "CapBnd"})
        EXPECT_EQ(status_field(r.out, set), "0000000000000400") << set;
}

TEST(Capabilities, SwitchingToANonZeroUidWithoutAKeptSetLeavesNone) {
    if (::geteuid() != 0) GTEST_SKIP() << "automatic ids need root";
    spawn_spec s = test::piped({"/bin/sh", "-c", "cat /proc/self/status"}, {ns::user, ns::pid});
    s.ids = userns_ids::automatic;
    s.uid = 1000;
    auto r = test::run_spec(s);
    EXPECT_EQ(status_field(r.out, "CapEff"), "0000000000000000") << r.err;
    EXPECT_EQ(status_field(r.out, "CapPrm"), "0000000000000000");
}

TEST(Root, AMinimalRootShowsOnlyWhatItWasGiven) {
    auto r = test::run_spec(minimal_root({"/bin/sh", "-c", "ls /; ls /dev; readlink /bin; pwd"}));
    ASSERT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out,
              "bin\ndev\nlib\nlib64\nproc\ntmp\nusr\n"
              "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n"
              "usr/bin\n/\n");
}

TEST(Root, ReadOnlyBindsAreReadOnlyAllTheWayDown) {
    auto r = test::sh(
        "touch /usr/x 2>&1 | grep -c 'Read-only'; mount -o remount,rw /usr 2>/dev/null && echo REMOUNTED; "
        "touch /dev/shm/x 2>&1 | grep -c 'Read-only'",
        {ns::user, ns::pid, ns::mnt}, [](spawn_spec& s) {
            s.fs.enabled = true;
            s.fs.ops = {fs_op::ro_bind("/", "/"), fs_op::proc("/proc")};
        });
    // /dev/shm is a mount of its own below /: it is read-only too.
    EXPECT_EQ(r.out, "1\n1\n") << r.err;
}

TEST(Root, OpsDoWhatTheySayInOrder) {
    host_dir rw("rw");
    int fd = ::memfd_create("drover-test-file", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "from a descriptor\n", 18), 18);
    spawn_spec s = minimal_root({"/bin/sh", "-c",
                                 "echo written > /rw/new; cat /etc/note; stat -c %a /etc/note; "
                                 "stat -c %a /made/deep/dir; readlink /link; "
                                 "touch /frozen/x 2>&1 | grep -c Read-only; "
                                 "grep -c devpts /proc/self/mounts; echo data > /dev/null && echo null-ok; "
                                 "head -c 4 /dev/urandom | wc -c; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                                 "sh -c 'echo 1 > /proc/sys/kernel/domainname' 2>&1 | grep -c Read-only"});
    s.namespaces.add(ns::uts);
    s.fs.ops.push_back(fs_op::bind(rw.path, "/rw"));
    s.fs.ops.push_back(fs_op::file(fd, "/etc/note"));
    fs_op d = fs_op::dir("/made/deep/dir");
    d.mode = 0700;
    s.fs.ops.push_back(d);
    s.fs.ops.push_back(fs_op::symlink("/made/deep", "/link"));
    s.fs.ops.push_back(fs_op::tmpfs("/frozen"));
    s.fs.ops.push_back(fs_op::remount_ro("/frozen"));
    fs_op missing = fs_op::ro_bind("/no/such/source", "/opt");
    missing.optional = true;
    s.fs.ops.push_back(missing);
    auto r = test::run_spec(s);
    ::close(fd);
    ASSERT_TRUE(r.status.success()) << r.err;
    EXPECT_EQ(r.out,
              "from a descriptor\n644\n700\n/made/deep\n1\n1\nnull-ok\n4\n/bin/sh -c " + s.argv[2] + " \n1\n");
    std::ifstream in(rw.path + "/new");
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "written");  // a read-write bind writes through to the host
}

TEST(Root, APreparedRootAndItsCopyOnWriteOverlay) {
    host_dir root("rootfs");
    for (const char* d : {"bin", "dev", "proc", "tmp", "etc"}) fs::create_directories(root.path + "/" + d);
    fs::copy_file(test::blocker, root.path + "/bin/blocker");
    std::ofstream(root.path + "/etc/motd") << "prepared\n";
    spawn_spec s = test::piped({"/bin/blocker", "7", "inside"}, {ns::user, ns::pid, ns::mnt});
    s.fs.enabled = true;
    s.fs.root_dir = root.path;
    s.fs.read_only = true;
    auto r = test::run_spec(s);
    EXPECT_EQ(r.status, exit_status::exited_with(7)) << r.err;
    EXPECT_EQ(r.out, "inside\n");

    // Overlay: the job writes where the prepared root has a file; the host's copy is untouched.
    s.fs.read_only = false;
    s.fs.overlay = true;
    s.fs.ops = {fs_op::file(::open((root.path + "/etc/motd").c_str(), O_RDONLY | O_CLOEXEC), "/etc/motd2")};
    s.argv = {"/bin/blocker", "0", "ok"};
    r = test::run_spec(s);
    ::close(s.fs.ops[0].fd);
    EXPECT_TRUE(r.status.success()) << r.err;
    EXPECT_FALSE(fs::exists(root.path + "/etc/motd2")) << "an overlay write reached the lower layer";
}

TEST(Root, TheCallersDirectoryIsKeptWhereItExistsElseSlash) {
    auto in_host_view = test::sh("pwd", {ns::user, ns::mnt}, [](spawn_spec& s) {
        s.fs.enabled = true;
        s.fs.ops = {fs_op::ro_bind("/", "/")};
    });
    EXPECT_EQ(chomp(in_host_view.out), fs::current_path().string()) << in_host_view.err;
    auto r = test::run_spec(minimal_root({"/bin/sh", "-c", "pwd"}));
    EXPECT_EQ(r.out, "/\n") << r.err;
}

TEST(Root, SourcesAreTakenWithTheCallersAccessAndTheJobsPermissionsStillHold) {
    if (::geteuid() != 0) GTEST_SKIP() << "automatic ids need root";
    host_dir priv("private", 0700);  // root's alone
    std::ofstream(priv.path + "/secret") << "s\n";
    spawn_spec s = test::piped({"/bin/sh", "-c", "ls /private 2>&1 | grep -c 'Permission denied'"}, {ns::user, ns::pid, ns::mnt});
    s.ids = userns_ids::automatic;
    s.fs.enabled = true;
    s.fs.ops = {fs_op::ro_bind("/", "/"), fs_op::tmpfs("/tmp"), fs_op::ro_bind(priv.path, "/tmp/private"),
                fs_op::symlink("/tmp/private", "/tmp/link")};
    s.argv[2] = "ls /tmp/private 2>&1 | grep -c 'Permission denied'";
    auto r = test::run_spec(s);  // the bind is made (root may reach its own directory)...
    EXPECT_EQ(r.out, "1\n") << r.err;  // ...and the job, with host ids of its own, still may not read it
}

TEST(Root, AMissingSourceNamesTheOpAndWhatToDo) {
    spawn_spec s = minimal_root({"/bin/true"});
    s.fs.ops.push_back(fs_op::ro_bind("/no/such/source", "/opt"));
    int fds = test::open_fd_count();
    try {
        test::run_spec(s);
        FAIL() << "spawned with a missing bind source";
    } catch (const spawn_error& e) {
        EXPECT_EQ(e.stage(), child_stage::filesystem);
        EXPECT_NE(std::string(e.what()).find("ro-bind /no/such/source /opt"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("-try"), std::string::npos) << e.what();
    }
    EXPECT_EQ(test::open_fd_count(), fds);
    EXPECT_EQ(test::zombie_children(), 0);
}

TEST(Root, TargetsThatClimbOutAreRefusedBeforeAnythingStarts) {
    spawn_spec s = minimal_root({"/bin/true"});
    s.fs.ops.push_back(fs_op::tmpfs("/tmp/../../oldroot/etc"));
    EXPECT_THROW(prepared_spawn{s}, spec_error);
    spawn_spec t = test::piped({"/bin/true"});
    t.fs.enabled = true;  // no mount namespace
    EXPECT_NE(validate(t).find("mnt"), std::string::npos);
}

TEST(Root, BothClonePathsBuildTheSameRoot) {
    spawn_spec s = minimal_root({"/bin/sh", "-c", "ls /"});
    s.ids = userns_ids::own;
    auto vfork = test::run_spec(s);
    force_clone_method(clone_method::fork);
    auto fork = test::run_spec(s);
    force_clone_method(std::nullopt);
    EXPECT_EQ(vfork.out, fork.out);
    EXPECT_EQ(fork.out, "bin\ndev\nlib\nlib64\nproc\ntmp\nusr\n") << fork.err;
}

TEST(Preset, MakeSandboxedTurnsOnEveryWall) {
    auto r = test::sh("id -u; hostname; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
                      "touch /usr/x 2>&1 | grep -c Read-only; grep -c : /proc/net/dev; set -- /proc/[0-9]*; echo $#",
                      {}, [](spawn_spec& s) { make_sandboxed(s); });
    EXPECT_EQ(r.out, "0\nsandbox\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\n"
                     "Seccomp:\t2\n1\n1\n1\n") << r.err;  // /proc: the shell alone (its earlier commands reaped)
}

}  // namespace
}  // namespace drover
