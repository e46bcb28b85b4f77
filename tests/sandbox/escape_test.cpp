// The escape suite: an attacker inside `drover run --sandbox` (as root and as an unprivileged
// user, on both clone paths) tries to write host files, remount, mount, see and signal host
// processes, write kernel tunables, load modules, use keyctl/bpf/userfaultfd/perf/io_uring,
// make user namespaces, inject terminal input, open host devices, raise capabilities, reach
// the host's network and outlive the job. Every attempt must fail. The same attacker runs
// under bubblewrap (`bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc`) in the same
// test for comparison; the table of both goes to the test log and sandbox-escape-report.md.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <asio/steady_timer.hpp>

#include "drover/sys/syscalls.hpp"
#include "support.hpp"

namespace drover {
namespace {

namespace fs = std::filesystem;

constexpr uid_t nobody = 65534;

bool have(const char* path) { return ::access(path, X_OK) == 0; }

std::string bwrap_path() {
    for (const char* p : {"/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"})
        if (have(p)) return p;
    return {};
}

// Prefix that runs a command as an unprivileged user (setpriv from util-linux).
std::vector<std::string> as_nobody() {
    return {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
}

struct attempt_line {
    std::string verdict;
    std::string detail;
};
using attempt_table = std::map<std::string, attempt_line>;

attempt_table parse_attempts(const std::string& out) {
    attempt_table t;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        auto a = line.find('\t');
        auto b = line.find('\t', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        t[line.substr(0, a)] = {line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    }
    return t;
}

// What the attacker needs from the host: a process to find and signal, a world-writable
// directory outside the sandbox's binds, a TCP listener on the host's loopback, a terminal.
class host_targets {
public:
    host_targets() {
        // The victim: a helper process whose command line carries the marker.
        victim_ = std::make_unique<launched_child>(launch_sync(prepared_spawn(
            [] {
                spawn_spec s;
                s.argv = {test::helper, "sleep", "600", "drover-escape-victim"};
                s.out = stdio::null();
                return s;
            }())));
        dir_ = "/var/tmp/drover-escape-" + std::to_string(::getpid());
        fs::create_directories(dir_);
        ::chmod(dir_.c_str(), 0777);
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(listener_, 8);
        socklen_t len = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master_ >= 0 && ::grantpt(master_) == 0 && ::unlockpt(master_) == 0)
            slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY | O_CLOEXEC);
    }
    ~host_targets() {
        sys::pidfd_send_signal(victim_->pidfd.get(), SIGKILL);
        wait_blocking(*victim_);
        std::error_code ec;
        fs::remove_all(dir_, ec);
        ::close(listener_);
        if (slave_ >= 0) ::close(slave_);
        if (master_ >= 0) ::close(master_);
    }
    [[nodiscard]] std::vector<std::string> args() const {
        return {"--victim", std::to_string(victim_->pid), "--host-dir", dir_, "--port", std::to_string(port_)};
    }
    [[nodiscard]] int tty() const { return slave_; }
    [[nodiscard]] const std::string& dir() const { return dir_; }

private:
    std::unique_ptr<launched_child> victim_;
    std::string dir_;
    int listener_ = -1;
    int port_ = 0;
    int master_ = -1;
    int slave_ = -1;
};

struct column {
    std::string name;
    std::vector<std::string> argv;            // the sandbox command; the attacker follows
    std::vector<std::pair<std::string, std::string>> env;
    bool drover = false;                     // the columns every attempt must fail in
};

attempt_table run_column(const column& c, const host_targets& host, std::string* raw) {
    spawn_spec s = test::piped(c.argv);
    s.argv.push_back(test::escape);
    for (auto& a : host.args()) s.argv.push_back(a);
    for (auto& [k, v] : c.env) s.env.set(k, v);
    if (host.tty() >= 0) s.in = stdio::from_fd(host.tty());
    auto r = test::run_spec(std::move(s));
    *raw = r.out + r.err + "(" + r.status.str() + ")";
    return parse_attempts(r.out);
}

// Attempts that may be "n/a" (the kernel here lacks the feature, so there is nothing to judge).
const std::set<std::string> may_be_na = {"i386_keyctl", "x32_keyctl", "tiocsti"};

TEST(Escape, EveryAttemptFailsInsideTheSandboxAsRootAndAsAUserBesideBwrap) {
    if (::geteuid() != 0) GTEST_SKIP() << "the suite runs drover as root and, through setpriv, as uid 65534";
    host_targets host;
    std::string drover = test::cli;
    std::vector<column> cols = {
        {"drover root", {drover, "run", "--sandbox", "--"}, {}, true},
        {"drover root own-ids vfork", {drover, "run", "--sandbox", "--userns", "own", "--"}, {}, true},
        // The vm path: the child sets up in drover's memory while drover goes on.
        {"drover root own-ids vm", {drover, "run", "--sandbox", "--userns", "own", "--"}, {{"DROVER_CLONE", "vm"}}, true},
    };
    bool users = test::nobody_can_run(drover) && test::nobody_can_run(test::escape);
    if (!users) std::cout << "unprivileged columns left out: " << test::nobody_skip_reason(drover) << '\n';
    if (users) {
        auto user = as_nobody();
        user.insert(user.end(), {drover, "run", "--sandbox", "--"});
        cols.push_back({"drover user vfork", user, {}, true});
        cols.push_back({"drover user fork", user, {{"DROVER_CLONE", "fork"}}, true});
    }
    std::string bwrap = bwrap_path();
    std::vector<std::string> bwrap_argv = {bwrap, "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--"};
    if (!bwrap.empty()) {
        cols.push_back({"bwrap root", bwrap_argv, {}, false});
        if (users) {
            auto user = as_nobody();
            user.insert(user.end(), bwrap_argv.begin(), bwrap_argv.end());
            cols.push_back({"bwrap user", user, {}, false});
        }
    }
    if (have("/usr/bin/firejail"))
        cols.push_back({"firejail root", {"/usr/bin/firejail", "--quiet", "--noprofile", "--private", "--net=none", "--"}, {}, false});

    std::vector<attempt_table> results;
    std::set<std::string> names;
    for (const column& c : cols) {
        std::string raw;
        results.push_back(run_column(c, host, &raw));
        for (auto& [n, _] : results.back()) names.insert(n);
        if (c.drover) {
            ASSERT_GE(results.back().size(), 40u) << c.name << " ran too few attempts: " << raw;
        }
    }
    // The report: one row per attempt, one column per sandbox.
    std::ostringstream md;
    md << "| attempt |";
    for (const column& c : cols) md << ' ' << c.name << " |";
    md << "\n|---|";
    for (std::size_t i = 0; i < cols.size(); ++i) md << "---|";
    md << '\n';
    for (const std::string& n : names) {
        md << "| " << n << " |";
        for (const attempt_table& t : results) {
            auto it = t.find(n);
            md << ' ' << (it == t.end() ? "missing" : it->second.verdict) << " |";
        }
        md << '\n';
    }
    std::cout << md.str();
    std::ofstream(std::string(test::report_dir) + "/sandbox-escape-report.md") << md.str();

    for (std::size_t i = 0; i < cols.size(); ++i) {
        if (!cols[i].drover) continue;
        for (const std::string& n : names) {
            auto it = results[i].find(n);
            ASSERT_NE(it, results[i].end()) << cols[i].name << ": attempt " << n << " did not run";
            if (may_be_na.count(n) && it->second.verdict == "n/a") continue;
            EXPECT_EQ(it->second.verdict, "blocked") << cols[i].name << ": " << n << ": " << it->second.detail;
        }
    }
    // Nothing the attacker tried reached the host's files.
    EXPECT_FALSE(fs::exists(host.dir() + "/escaped"));
    EXPECT_FALSE(fs::exists("/etc/drover-escape-probe"));
    EXPECT_FALSE(fs::exists("/usr/drover-escape-probe"));
}

// Pids of processes whose command line contains `mark`.
// A process's command line, or "" if it is gone or going: reading /proc/PID/cmdline of an
// exiting process fails with ESRCH, which a std::ifstream turns into an exception.
std::string cmdline_of(const std::string& pid) {
    sys::unique_fd fd(::open(("/proc/" + pid + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    std::string cmd;
    char buf[4096];
    ssize_t n;
    while (cmd.size() < (1 << 16) && (n = ::read(fd.get(), buf, sizeof buf)) > 0) cmd.append(buf, static_cast<std::size_t>(n));
    return cmd;
}

std::vector<pid_t> with_mark(const std::string& mark) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        if (cmdline_of(name).find(mark) != std::string::npos) out.push_back(std::stoi(name));
    }
    return out;
}

// drover's children (of every thread: a pool's refill thread makes the holders), each with a
// pidfd taken now, so that they can be watched after drover is gone whatever they exec.
std::vector<std::pair<pid_t, sys::unique_fd>> children_of(pid_t pid) {
    std::vector<std::pair<pid_t, sys::unique_fd>> out;
    std::error_code ec;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::ifstream in(it->path() / "children");
        for (pid_t child; in >> child;)
            if (auto fd = sys::pidfd_open(child)) out.emplace_back(child, std::move(*fd));
    }
    return out;
}

// Starts drover with `argv` (and `input` on its stdin), waits until at least `marked`
// processes other than drover carry `mark` in their command line (the job and its
// double-forked grandchild) and drover has at least `children` children, kills drover by its
// pidfd, and returns what still carries the mark, or is one of those children, a second later.
std::vector<pid_t> survivors_after_sigkill(std::vector<std::string> argv, const std::string& input,
                                           const std::string& mark, std::size_t marked, std::size_t children = 0) {
    return test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<std::vector<pid_t>> {
        spawn_spec s = test::piped(argv);
        s.in = stdio::pipe();
        process p = co_await spawn(ex, s);
        // Whatever happens below, drover is killed: a test that threw would otherwise leave
        // the loop waiting to reap a drover that waits for its job for a minute.
        struct kill_on_exit {
            process& p;
            ~kill_on_exit() { p.signal(SIGKILL); }
        } guard{p};
        co_await p.write_stdin(input);
        p.close_stdin();
        auto others = [&] {
            auto all = with_mark(mark);
            std::erase(all, p.pid());
            return all;
        };
        // Counted until two looks in a row agree: the double fork's middle process carries
        // the mark for a moment too, and a single look can catch it before the grandchild.
        std::size_t seen = 0;
        std::vector<std::pair<pid_t, sys::unique_fd>> kids;
        for (int i = 0, stable = 0; i < 500 && stable < 2; ++i) {
            seen = others().size();
            kids = children_of(p.pid());
            stable = seen >= marked && kids.size() >= children ? stable + 1 : 0;
            if (stable == 2) break;
            asio::steady_timer t(ex, std::chrono::milliseconds(20));
            co_await t.async_wait(asio::use_awaitable);
        }
        EXPECT_GE(seen, marked) << "the job and its grandchild never started";
        EXPECT_GE(kids.size(), children) << "drover's children (holders, jobs) never all started";
        p.signal(SIGKILL);
        co_await p.wait();
        // The kernel kills a pid namespace, and the guardian a cgroup, right away; allow a
        // second for either before calling it a survivor.
        std::vector<pid_t> left;
        for (int i = 0; i < 50; ++i) {
            left = with_mark(mark);
            for (auto& [pid, fd] : kids) {
                // Alive: its pidfd is not readable yet, and it still has memory (a holder whose
                // exit waits for its PID namespace's last zombie to be reaped has none: it is
                // ending, as with_mark counts it too).
                pollfd pfd{fd.get(), POLLIN, 0};
                if (::poll(&pfd, 1, 0) == 0 && !cmdline_of(std::to_string(pid)).empty() &&
                    std::find(left.begin(), left.end(), pid) == left.end())
                    left.push_back(pid);
            }
            if (left.empty()) break;
            asio::steady_timer t(ex, std::chrono::milliseconds(20));
            co_await t.async_wait(asio::use_awaitable);
        }
        for (pid_t pid : left)  // the test cleans up after itself, by pidfd
            if (auto fd = sys::pidfd_open(pid)) sys::pidfd_send_signal(fd->get(), SIGKILL);
        co_return left;
    });
}

TEST(Escape, NothingOutlivesASigkilledDroverRun) {
    std::string mark = "drover-outlive-" + std::to_string(::getpid()) + "-run";
    auto left = survivors_after_sigkill({test::cli, "run", "--sandbox", "--", test::escape, "--outlive", "60", mark},
                                        "", mark, 2);
    EXPECT_TRUE(left.empty()) << left.size() << " processes of the job outlived drover run --sandbox";
}

TEST(Escape, NothingOutlivesASigkilledDroverParallelWithoutAPidNamespace) {
    if (::geteuid() != 0) GTEST_SKIP() << "the guardian needs drover's own cgroup subtree (root)";
    std::string mark = "drover-outlive-" + std::to_string(::getpid()) + "-parallel";
    // No -p: only drover's cgroup subtree and its guardian hold the double-forked grandchild.
    auto left = survivors_after_sigkill(
        {test::cli, "parallel", "--no-progress", "--", test::escape, "--outlive", "60", mark + "-{}"}, "1\n", mark, 2);
    EXPECT_TRUE(left.empty()) << left.size() << " processes of the job outlived drover parallel";
}

TEST(Escape, NothingOutlivesASigkilledDroverParallelWithWarmSets) {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox's leased ids need root";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "TSan cannot follow drover's raw clone3 fork from the pool's refill thread while the loop "
                    "thread runs (tests/spawn/warm_test.cpp); the other builds run this";
#endif
    std::string mark = "drover-outlive-" + std::to_string(::getpid()) + "-warm";
    // The job and its grandchild carry the mark; the holders wait in drover_ready_stub (or, in
    // builds without the posix_spawn path, as forks of drover), children of drover like the
    // job: four ready sets and the one in use, and the job. EOF on their hold pipes ends the
    // holders, and each holder's end ends its PID namespace with the job below it.
    auto left = survivors_after_sigkill({test::cli, "parallel", "--no-progress", "--warm", "4", "--sandbox", "--",
                                         test::escape, "--outlive", "60", mark + "-{}"},
                                        "1\n", mark, 2, 5);
    std::string who;
    for (pid_t pid : left) who += " " + std::to_string(pid);
    EXPECT_TRUE(left.empty()) << left.size() << " holders or job processes outlived drover parallel --warm:" << who;
}

}  // namespace
}  // namespace drover
