// Spawns from a spawner's own descriptor table (spawn_table::own and ::automatic): what the
// spawner's table holds (looked at in /proc, as a user would), every descriptor the child was
// given arrives right, nothing leaks in either table, id maps on the posix_spawn path, a loop
// destroyed or a spawn cancelled while away.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "drover/process/process.hpp"
#include "drover/process/spawn_threads.hpp"
#include "support.hpp"

// Under ThreadSanitizer no spawn uses an own table (own_table.cpp says why).
#if defined(__SANITIZE_THREAD__)
#define SKIP_WITHOUT_OWN_TABLES() \
    GTEST_SKIP() << "under ThreadSanitizer spawns never use an own table"
#else
#define SKIP_WITHOUT_OWN_TABLES() (void)0
#endif

namespace drover {
namespace {

using namespace std::chrono_literals;
using test::children_of_this_process;
using test::helper;
using test::poll_until;

struct table_for_test {
    explicit table_for_test(spawn_table t) { set_spawn_table(t); }
    ~table_for_test() { set_spawn_table(spawn_table::automatic); }
};

// Descriptors the caller holds open for one test (a large table), closed however it ends.
struct many_fds {
    std::vector<int> fds;
    explicit many_fds(int n) {
        for (int i = 0; i < n; ++i) fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
    ~many_fds() {
        for (int fd : fds) ::close(fd);
    }
};

// The smallest descriptor table among this process's threads, as /proc shows it.
int smallest_thread_table() {
    int least = 1 << 30;
    for (auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        std::error_code ec;
        int n = 0;
        for (auto it = std::filesystem::directory_iterator(t.path() / "fd", ec);
             !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
            ++n;
        if (!ec) least = std::min(least, n);
    }
    return least;
}

// The caller's descriptors of the kinds a spawn makes and hands over (pipes, sockets,
// pidfds): what a leak would leave. (Others come and go with the loops and the background
// reaper, on their own schedule.)
int own_fd_count() {
    int n = 0;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        std::string link = std::filesystem::read_symlink(e.path(), ec).string();
        if (link.starts_with("pipe:") || link.starts_with("socket:") ||
            link == "anon_inode:[pidfd]")
            ++n;
    }
    return n;
}

// What the caller's table holds, for a failure's message.
std::string fd_list() {
    std::string out;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        out += e.path().filename().string() + "->" +
               std::filesystem::read_symlink(e.path(), ec).string() + " ";
    }
    return out;
}

// One spawn and its wait: makes the spawner (whose socket end stays in the caller's table for
// good) before a test counts the caller's descriptors, and tells automatic the table's size.
void spawn_once() {
    test::run_on_loop([](asio::any_io_executor ex) -> asio::awaitable<int> {
        spawn_spec s;
        s.argv = {helper, "exit", "0"};
        process p = co_await spawn(ex, s);
        co_await p.wait();
        co_return 0;
    });
}


// 120 children, each with its stdin, stdout and stderr piped and a pipe of the caller's passed
// as its fd 3, spawned while the caller holds 3,000 descriptors: each gets what was meant for
// it, sees only 0-3, and the spawner's table (seen in /proc/self/task) stays small.
TEST(OwnTable, EveryDescriptorArrivesAndTheSpawnersTableStaysSmall) {
    SKIP_WITHOUT_OWN_TABLES();
    table_for_test table(spawn_table::own);
    many_fds hold(3000);
    spawn_once();
    const int before = own_fd_count();
    auto before_stats = spawn_thread_counters();
    struct result {
        std::string out, err, passed, fds;
        int code = -1;
    };
    constexpr int n = 120;
    int smallest = 0;
    auto results =
        test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<std::vector<result>> {
            std::vector<result> rs(n);
            for (int i = 0; i < n; ++i) {
                int side[2];
                EXPECT_EQ(::pipe2(side, O_CLOEXEC), 0);
                spawn_spec s =
                    test::piped({"/bin/sh", "-c",
                                 "read line; echo \"$line-out\"; echo \"e" + std::to_string(i) +
                                     "\" >&2; echo p" + std::to_string(i) +
                                     " >&3; ls /proc/self/fd; exit " + std::to_string(i % 7)});
                s.in = stdio::pipe();
                s.pass_fds.push_back({3, side[1]});
                process p = co_await spawn(ex, s);
                ::close(side[1]);
                if (i == n / 2) smallest = smallest_thread_table();
                std::string line = std::to_string(i) + "\n";
                co_await p.write_stdin(line);
                p.close_stdin();
                auto o = co_await p.read_all();
                exit_status st = co_await p.wait();
                char buf[64];
                ssize_t got = ::read(side[0], buf, sizeof buf);
                ::close(side[0]);
                auto& r = rs[static_cast<std::size_t>(i)];
                std::istringstream lines(o.out);
                std::getline(lines, r.out);
                std::string rest, f;
                while (std::getline(lines, f)) rest += f + " ";
                r.fds = rest;
                r.err = o.err;
                r.passed = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : "";
                r.code = st.exited() ? st.code() : -1;
            }
            co_return rs;
        });
    for (int i = 0; i < n; ++i) {
        const auto& r = results[static_cast<std::size_t>(i)];
        EXPECT_EQ(r.out, std::to_string(i) + "-out") << i;
        EXPECT_EQ(r.err, "e" + std::to_string(i) + "\n") << i;
        EXPECT_EQ(r.passed, "p" + std::to_string(i) + "\n") << i;
        EXPECT_EQ(r.code, i % 7) << i;
        // ls opens one of its own (the directory it reads) after 0-3.
        EXPECT_EQ(r.fds.rfind("0 1 2 3 ", 0), 0u) << i << ": " << r.fds;
    }
    auto after_stats = spawn_thread_counters();
    EXPECT_GE(after_stats.own_table - before_stats.own_table, static_cast<std::size_t>(n));
    // The spawner: 0-2, its socket, its pidfd, and nothing of the caller's 3,000.
    EXPECT_LE(smallest, 16) << "no thread of this process has a small descriptor table";
    EXPECT_EQ(own_fd_count(), before) << "descriptors left in the caller's table: " << fd_list();
    EXPECT_EQ(children_of_this_process(), 0);
}

// automatic: below the threshold spawns use the process's table; once the caller holds more,
// they move to a spawner's own.
TEST(OwnTable, AutomaticMovesOnlyOnceTheTableIsLarge) {
    SKIP_WITHOUT_OWN_TABLES();
    table_for_test table(spawn_table::automatic);
    auto spawn_some = [](int count) {
        test::run_on_loop([count](asio::any_io_executor ex) -> asio::awaitable<int> {
            for (int i = 0; i < count; ++i) {
                spawn_spec s;
                s.argv = {helper, "exit", "0"};
                process p = co_await spawn(ex, s);
                co_await p.wait();
            }
            co_return 0;
        });
    };
    ASSERT_LT(own_fd_count(), spawn_table_threshold / 2)
        << "the test process already holds many descriptors";
    spawn_once();  // a table left large by an earlier test is noticed here
    auto a = spawn_thread_counters();
    spawn_some(5);
    auto b = spawn_thread_counters();
    EXPECT_EQ(b.own_table, a.own_table) << "a small table moved to a spawner";
    {
        many_fds hold(spawn_table_threshold + 200);
        spawn_some(5);
        auto c = spawn_thread_counters();
        // The first spawn sees how large the table has grown; the rest move.
        EXPECT_GE(c.own_table - b.own_table, 4u);
    }
    spawn_some(3);  // the table is small again: the first of these notices
    auto d = spawn_thread_counters();
    spawn_some(5);
    EXPECT_EQ(spawn_thread_counters().own_table, d.own_table)
        << "spawns stayed on a spawner after the table shrank";
}

// A user namespace with leased host ids: the maps are written by the spawner's own writer
// (the posix_spawn path) and the child sees them; the lease ends with the child.
TEST(OwnTable, LeasedIdsAndMapsFromASpawnersTable) {
    SKIP_WITHOUT_OWN_TABLES();
    if (::geteuid() != 0) GTEST_SKIP() << "automatic ids need root";
    table_for_test table(spawn_table::own);
    auto maps = test::run_on_loop(
        [](asio::any_io_executor ex) -> asio::awaitable<std::vector<std::string>> {
            std::vector<std::string> out;
            for (int i = 0; i < 20; ++i) {
                spawn_spec s = test::piped({"/bin/sh", "-c", "cat /proc/self/uid_map; id -u"},
                                           {ns::user, ns::pid});
                s.ids = userns_ids::automatic;
                process p = co_await spawn(ex, s);
                auto o = co_await p.read_all();
                co_await p.wait();
                out.push_back(o.out);
            }
            co_return out;
        });
    for (const auto& m : maps) {
        std::uint64_t inner = 1, outer = 0, count = 0;
        std::string uid;
        std::istringstream in(m);
        in >> inner >> outer >> count >> uid;
        EXPECT_EQ(inner, 0u) << m;
        EXPECT_GE(outer, 65536u) << m;
        EXPECT_EQ(uid, "0") << m;
    }
    EXPECT_EQ(id_pool::global().leased(), 0u) << "a reaped job still holds its range";
}

// Loops destroyed while their spawns are on a spawner with its own table: the destruction waits
// for them, takes their descriptors back and ends their children; nothing is left.
TEST(OwnTable, ALoopDestroyedWithLaunchesAwayLeavesNoChild) {
    SKIP_WITHOUT_OWN_TABLES();
    table_for_test table(spawn_table::own);
    auto round = [] {
        auto before = spawn_thread_counters();
        asio::io_context io;
        for (int i = 0; i < 6; ++i)
            asio::co_spawn(
                io,
                [&io]() -> asio::awaitable<void> {
                    spawn_spec s;
                    s.argv = {"/bin/sleep", "0.3"};
                    s.out = stdio::pipe();
                    process p = co_await spawn(io.get_executor(), s);
                    co_await p.wait();
                },
                asio::detached);
        // Run until the spawns are on their way, then leave at once.
        while (spawn_thread_counters().own_table == before.own_table && io.run_one() > 0) {
        }
    };
    auto settle = [] {
        for (int i = 0; i < 200 && children_of_this_process() > 0; ++i)
            std::this_thread::sleep_for(20ms);
    };
    round();  // first what lives for good: the spawner's socket end
    settle();
    const int before_fds = own_fd_count();
    for (int i = 0; i < 20; ++i) round();
    settle();
    EXPECT_EQ(children_of_this_process(), 0);
    EXPECT_EQ(own_fd_count(), before_fds)
        << "descriptors left in the caller's table: " << fd_list();
}

// Cancelled while away: operation_aborted, and the child (its descriptors taken back first)
// is killed and reaped.
TEST(OwnTable, ASpawnCancelledWhileAwayEndsItsChild) {
    SKIP_WITHOUT_OWN_TABLES();
    table_for_test table(spawn_table::own);
    spawn_once();
    const int before_fds = own_fd_count();
    int aborted = 0, spawned = 0;
    {
        asio::io_context io;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                for (int i = 0; i < 20; ++i) {
                    asio::cancellation_signal cancel;
                    bool done = false;
                    spawn_spec s;
                    s.argv = {"/bin/sleep", "30"};
                    s.out = stdio::pipe();
                    spawn(ex, s,
                          asio::bind_cancellation_slot(
                              cancel.slot(), [&](std::error_code ec, process p) {
                                  done = true;
                                  if (ec == asio::error::operation_aborted) ++aborted;
                                  if (!ec) {
                                      ++spawned;  // the cancel came too late: end it here
                                      (void)p.signal(SIGKILL);
                                  }
                              }));
                    cancel.emit(asio::cancellation_type::terminal);
                    co_await poll_until([&] { return done; });
                }
            },
            asio::detached);
        io.run();
    }
    EXPECT_EQ(aborted + spawned, 20);
    EXPECT_GT(aborted, 0) << "no spawn was cancelled while away";
    for (int i = 0; i < 200 && children_of_this_process() > 0; ++i)
        std::this_thread::sleep_for(20ms);
    EXPECT_EQ(children_of_this_process(), 0);
    EXPECT_EQ(own_fd_count(), before_fds)
        << "descriptors left in the caller's table: " << fd_list();
}

// A caller on a thread that unshared its own table: pidfd_getfd would copy from the process's
// table (other files under the same numbers), so its spawns stay on its thread, and the
// descriptor it names is the one it meant.
TEST(OwnTable, ACallerWithATableOfItsOwnSpawnsOnItsOwnThread) {
    SKIP_WITHOUT_OWN_TABLES();
    table_for_test table(spawn_table::own);
    std::string out;
    std::size_t moved = 1;
    std::thread t([&] {
        if (::unshare(CLONE_FILES) != 0) return;
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return;
        auto before = spawn_thread_counters().own_table;
        spawn_spec s;
        s.argv = {"/bin/sh", "-c", "echo mine >&3"};
        s.pass_fds.push_back({3, p[1]});
        test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<int> {
            process c = co_await spawn(ex, s);
            co_await c.wait();
            co_return 0;
        });
        ::close(p[1]);
        char buf[32];
        ssize_t n = ::read(p[0], buf, sizeof buf);
        if (n > 0) out.assign(buf, static_cast<std::size_t>(n));
        ::close(p[0]);
        moved = spawn_thread_counters().own_table - before;
    });
    t.join();
    EXPECT_EQ(out, "mine\n");
    EXPECT_EQ(moved, 0u);
}

TEST(OwnTable, ParsesItsSettingAndRefusesOthers) {
    spawn_table t = spawn_table::shared;
    const char* why = nullptr;
    EXPECT_TRUE(parse_spawn_table("own", t, &why));
    EXPECT_EQ(t, spawn_table::own);
    EXPECT_TRUE(parse_spawn_table("auto", t, &why));
    EXPECT_EQ(t, spawn_table::automatic);
    EXPECT_TRUE(parse_spawn_table("shared", t, &why));
    EXPECT_EQ(t, spawn_table::shared);
    for (const char* bad : {"", "Own", "own ", "1", "automatic"}) {
        why = nullptr;
        EXPECT_FALSE(parse_spawn_table(bad, t, &why)) << bad;
        EXPECT_NE(why, nullptr) << bad;
    }
}

}  // namespace
}  // namespace drover
