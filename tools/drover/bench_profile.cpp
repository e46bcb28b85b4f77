// perf under drover bench: record this process with events off, enable them through perf's
// control pipe once it is attached, disable them when the measurement ends.
#include "bench_profile.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include "drover/sys/path.hpp"

extern char** environ;

namespace drover::cli {

namespace {

// perf's answer to a control command; it can take a while to attach to every thread.
constexpr int ack_timeout_ms = 30'000;

// Runs argv with stdout (and stderr, if `with_err`) captured, up to `limit` bytes.
bool capture(const std::vector<std::string>& args, std::string& out, std::size_t limit) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    ::posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    std::vector<char*> argv;
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int err = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    if (err != 0) {
        ::close(p[0]);
        return false;
    }
    char buf[8192];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && out.size() < limit) out.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

std::string find_perf() { return sys::find_in_path("perf"); }

perf_session::~perf_session() {
    if (ctl_ >= 0) ::close(ctl_);
    if (ack_ >= 0) ::close(ack_);
    if (pid_ > 0) {
        ::kill(pid_, SIGINT);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

bool perf_session::start(const std::string& perf, const std::string& output, std::string& error) {
    int ctl[2], ack[2];
    if (::pipe2(ctl, O_CLOEXEC) != 0 || ::pipe2(ack, O_CLOEXEC) != 0) {
        error = std::string("pipe2: ") + std::strerror(errno);
        return false;
    }
    // perf sees its ends as descriptors 3 and 4 (dup2 clears close-on-exec there).
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, ctl[0], 3);
    ::posix_spawn_file_actions_adddup2(&fa, ack[1], 4);
    ::posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::vector<std::string> args = {perf, "record", "-q", "-g", "-F", "4999", "-D", "-1",
                                     "--control", "fd:3,4", "-o", output, "-p", std::to_string(::getpid())};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int err = ::posix_spawn(&pid_, perf.c_str(), &fa, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(ctl[0]);
    ::close(ack[1]);
    ctl_ = ctl[1];
    ack_ = ack[0];
    if (err != 0) {
        pid_ = -1;
        error = "starting " + perf + ": " + std::strerror(err);
        return false;
    }
    return command("enable", error);
}

bool perf_session::command(const char* what, std::string& error) {
    std::string line = std::string(what) + "\n";
    if (::write(ctl_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        error = "perf stopped before '" + std::string(what) + "' (is kernel.perf_event_paranoid too high?)";
        return false;
    }
    pollfd pfd{ack_, POLLIN, 0};
    int r;
    do r = ::poll(&pfd, 1, ack_timeout_ms);
    while (r < 0 && errno == EINTR);
    char buf[16] = {};
    if (r <= 0 || ::read(ack_, buf, sizeof buf - 1) <= 0 || std::strncmp(buf, "ack", 3) != 0) {
        error = "perf did not acknowledge '" + std::string(what) +
                "' (it may lack permission: see kernel.perf_event_paranoid)";
        return false;
    }
    return true;
}

bool perf_session::stop(std::string& error) {
    if (pid_ <= 0) return false;
    bool ok = command("disable", error);
    ::kill(pid_, SIGINT);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
        !(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT)) {
        error = "perf record ended with status " + std::to_string(status);
        ok = false;
    }
    return ok;
}

std::string perf_summary(const std::string& perf, const std::string& data, const std::string& comm,
                         std::string& error) {
    std::string out;
    if (!capture({perf, "report", "-i", data, "--stdio", "--no-children", "--comms", comm, "--sort",
                  "dso,symbol", "--percent-limit", "1", "-g", "none"},
                 out, 1 << 20)) {
        error = "perf report -i " + data + " failed";
        return {};
    }
    // Keep the table: perf's header comments and blank lines go.
    std::istringstream in(out);
    std::ostringstream kept;
    std::string line;
    int lines = 0;
    while (std::getline(in, line) && lines < 30) {
        if (line.empty() || line[0] == '#') continue;
        // perf pads its columns to the terminal's width and fills unused ones with '-'.
        while (!line.empty() && (line.back() == ' ' || line.back() == '-')) line.pop_back();
        kept << "  " << line << "\n";
        ++lines;
    }
    return kept.str();
}

}  // namespace drover::cli
