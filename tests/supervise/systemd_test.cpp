// drover supervise as a systemd Type=notify service: READY=1 once its services are started,
// WATCHDOG=1 while WATCHDOG_USEC asks for it, STOPPING=1 on SIGTERM, each from drover's own
// pid; and no service inherits drover's $NOTIFY_SOCKET.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "drover/process/process.hpp"
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct datagram {
    pid_t pid = 0;
    std::string text;
};

// The next datagram within `ms`, with the sender's pid.
std::optional<datagram> next_datagram(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return std::nullopt;
    char buf[4097];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf - 1};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &m, 0);
    if (n < 0) return std::nullopt;
    datagram d;
    d.text.assign(buf, static_cast<std::size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            ucred u;
            std::memcpy(&u, CMSG_DATA(c), sizeof u);
            d.pid = u.pid;
        }
    return d;
}

TEST(SystemdNotify, DroverSaysReadyPingsTheWatchdogAndSaysStopping) {
    char tmpl[] = "/tmp/drover-systemd-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const fs::path dir = tmpl;
    struct cleanup {
        fs::path d;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(d, ec);
        }
    } remove_dir{dir};
    // systemd's end of it: a datagram socket with the senders' credentials.
    sys::unique_fd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(sock);
    int on = 1;
    ASSERT_EQ(::setsockopt(sock.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    const std::string path = (dir / "notify").string();
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);

    std::ofstream(dir / "drover.toml") << "[service.plain]\nexec = [\"/bin/sh\", \"-c\", "
                                          "\"echo NOTIFY=${NOTIFY_SOCKET:-unset} WATCHDOG=${WATCHDOG_USEC:-unset}; exec sleep 30\"]\n";
    spawn_spec s;
    s.argv = {drover::test::cli, "supervise", (dir / "drover.toml").string(), "--socket", (dir / "ctl.sock").string()};
    s.env.set("NOTIFY_SOCKET", path);
    s.env.set("WATCHDOG_USEC", "200000");
    s.out = stdio::pipe();
    struct seen {
        pid_t drover = 0;
        std::vector<datagram> before_stop, after_stop;
        std::string log;
        int code = -1;
    };
    auto r = drover::test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<seen> {
        seen o;
        process p = co_await spawn(ex, s);
        o.drover = p.pid();
        // READY=1 first (watchdog pings may come before it), then pings for a second.
        auto until = std::chrono::steady_clock::now() + 10s;
        bool ready = false;
        while (!ready && std::chrono::steady_clock::now() < until) {
            auto d = next_datagram(sock.get(), 200);
            if (!d) continue;
            ready = d->text.find("READY=1") != std::string::npos;
            o.before_stop.push_back(*d);
        }
        auto second = std::chrono::steady_clock::now() + 1s;
        while (std::chrono::steady_clock::now() < second)
            if (auto d = next_datagram(sock.get(), 100)) o.before_stop.push_back(*d);
        (void)p.signal(SIGTERM);
        for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end;) {
            auto d = next_datagram(sock.get(), 200);
            if (!d) continue;
            o.after_stop.push_back(*d);
            if (d->text.find("STOPPING=1") != std::string::npos) break;
        }
        co_await read_to_end(*p.stdout_pipe(), o.log);
        o.code = (co_await p.wait()).code();
        co_return o;
    });
    EXPECT_EQ(r.code, 0) << r.log;
    int ready = 0, pings = 0, stopping = 0;
    for (const auto& d : r.before_stop) {
        EXPECT_EQ(d.pid, r.drover) << "sent by another process: " << d.text;
        ready += d.text.find("READY=1") != std::string::npos;
        pings += d.text == "WATCHDOG=1";
    }
    for (const auto& d : r.after_stop) stopping += d.text.find("STOPPING=1") != std::string::npos;
    EXPECT_EQ(ready, 1);
    EXPECT_GE(pings, 3) << "a 200 ms watchdog wants a ping every 100 ms (10 in the second watched)";
    EXPECT_EQ(stopping, 1);
    // The service got neither drover's socket nor its watchdog.
    EXPECT_NE(r.log.find("NOTIFY=unset WATCHDOG=unset"), std::string::npos) << r.log;
}

}  // namespace
}  // namespace drover::supervise
