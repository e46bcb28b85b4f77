// What `drover supervise` says as things happen: failures as warnings with the restart delay,
// a word once nothing runs any more, and a failure_action = "exit" stop not called a SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "drover/process/process.hpp"
#include "supervise_support.hpp"

namespace drover::supervise {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct temp_config {
    fs::path dir;
    explicit temp_config(const std::string& text) {
        char tmpl[] = "/tmp/drover-log-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
        dir = tmpl;
        std::ofstream(dir / "drover.toml") << text;
    }
    ~temp_config() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string file() const { return (dir / "drover.toml").string(); }
};

// Runs drover supervise until a line contains `until` (or 15 s), then SIGTERM; all its output.
std::string supervise_until(const temp_config& c, const std::string& until) {
    spawn_spec s;
    s.argv = {drover::test::cli, "supervise", c.file(), "--no-control"};
    s.out = stdio::pipe();
    return drover::test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<std::string> {
        process p = co_await spawn(ex, s);
        line_reader lines(*p.stdout_pipe());
        std::string all;
        bool seen = false;
        asio::steady_timer limit(ex, 15s);
        limit.async_wait([&](std::error_code ec) {
            if (!ec) (void)p.signal(SIGTERM);
        });
        while (auto l = co_await lines.next()) {
            all += *l + "\n";
            if (!seen && l->find(until) != std::string::npos) {
                seen = true;
                (void)p.signal(SIGTERM);
            }
        }
        limit.cancel();
        (void)co_await p.wait();
        co_return all;
    });
}

TEST(SuperviseLog, FailuresAreWarningsWithTheDelayAndIdlenessIsSaid) {
    temp_config c("[service.gone]\nexec = \"/nonexistent/prog\"\nrestart = \"no\"\n"
                  "[service.crash]\nexec = [\"/bin/sh\", \"-c\", \"exit 3\"]\nrestart_sec = 0.05\nstart_limit_burst = 2\n");
    std::string out = supervise_until(c, "no service is running");
    EXPECT_NE(out.find("error [gone] cannot start: execve /nonexistent/prog"), std::string::npos) << out;
    EXPECT_NE(out.find("warning [crash] exited with code 3"), std::string::npos) << out;
    EXPECT_NE(out.find("info [crash] restarting in "), std::string::npos) << out;
    EXPECT_NE(out.find("restart limit reached: more than 2 restarts in 10 s"), std::string::npos) << out;
    auto idle = out.find("warning no service is running or will restart");
    ASSERT_NE(idle, std::string::npos) << out;
    EXPECT_EQ(out.find("SIGTERM: stopping"), out.find("SIGTERM: stopping", idle)) << "a stop before the SIGTERM:\n" << out;
}

TEST(SuperviseLog, AFailureActionExitIsNotCalledASigterm) {
    temp_config c("[service.fatal]\nexec = [\"/bin/sh\", \"-c\", \"exit 1\"]\nrestart = \"no\"\nfailure_action = \"exit\"\n"
                  "[service.other]\nexec = \"sleep 30\"\n");
    std::string out = supervise_until(c, "stopping");
    EXPECT_NE(out.find("stopping: a service with failure_action = \"exit\" failed"), std::string::npos) << out;
    EXPECT_EQ(out.find("SIGTERM: stopping"), std::string::npos) << out;
}

}  // namespace
}  // namespace drover::supervise
