// Starting and talking to the floor helper: one request line out, one answer line back.
#include "bench/floor_client.hpp"
#include "bench/runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <vector>

extern char** environ;

namespace drover::bench {

namespace {

// The longest answer we accept: one line with an error text.
constexpr std::size_t max_answer = 4096;

bool parse_i64(std::string_view text, std::int64_t& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size() && out >= 0;
}

}  // namespace

std::string floor_helper_path() {
#ifdef DROVER_FLOOR_HELPER
    return find_bench_program("DROVER_FLOOR", DROVER_FLOOR_HELPER, "drover_floor");
#else
    return find_bench_program("DROVER_FLOOR", nullptr, "drover_floor");
#endif
}

floor_client::~floor_client() {
    if (fd_ >= 0) ::close(fd_);
    if (pid_ > 0) {
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

bool floor_client::start(const std::string& path, std::string& error) {
    return start_as({path, "--serve"}, "run 0", "err no such plan", "the floor helper", error);
}

bool floor_client::start_as(const std::vector<std::string>& args, const std::string& hello,
                            std::string_view expect, std::string_view what,
                            std::string& error) {
    const std::string& path = args.at(0);
    // One socket for both directions: a helper that died turns our send into EPIPE
    // (MSG_NOSIGNAL), not a SIGPIPE that would end drover bench.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        error = std::string("socketpair: ") + std::strerror(errno);
        return false;
    }
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    ::posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    std::vector<std::string> copies = args;
    std::vector<char*> argv;
    for (std::string& a : copies) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int err = ::posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(sv[1]);
    fd_ = sv[0];
    if (err != 0) {
        error = "starting " + path + ": " + std::strerror(err);
        return false;
    }
    pid_ = pid;
    // A first request proves it is the helper we expect and that it serves.
    std::string answer;
    if (!ask(hello, answer) || !answer.starts_with(expect)) {
        error = path + " " + (args.size() > 1 ? args[1] : "") + " did not answer as " +
                std::string(what) + (answer.empty() ? "" : ": " + answer);
        return false;
    }
    // Which thread asks, so the helper can wait for it to sleep before each spawn it times.
    // A helper from before "peer" answers err and serves on without waiting.
    if (!ask("peer " + std::to_string(::getpid()) + " " + std::to_string(::gettid()), answer)) {
        error = path + " stopped answering";
        return false;
    }
    return true;
}

void floor_client::settle() noexcept {
    if (pid_ > 0) floor_wait_asleep(pid_, pid_);
}

bool floor_client::send_line(const std::string& request) {
    if (pid_ <= 0) return false;
    std::string line = request + "\n";
    std::size_t off = 0;
    while (off < line.size()) {
        ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool floor_client::read_line(std::string& answer, std::int64_t give_up_ns) {
    answer.clear();
    for (;;) {
        if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
            answer = buffered_.substr(0, nl);
            buffered_.erase(0, nl + 1);
            return true;
        }
        if (buffered_.size() > max_answer) return false;
        if (give_up_ns >= 0) {
            const std::int64_t left = give_up_ns - floor_now_ns();
            if (left <= 0) return false;
            pollfd p{fd_, POLLIN, 0};
            int ready = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 60'000)));
            if (ready < 0 && errno != EINTR) return false;
            if (ready <= 0) continue;
        }
        char buf[512];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buffered_.append(buf, static_cast<std::size_t>(n));
    }
}

bool floor_client::ask(const std::string& request, std::string& answer) {
    answer.clear();
    return send_line(request) && read_line(answer);
}

int floor_client::define(std::uint64_t flags, floor_method& method, bool setup, bool exec,
                         const std::string& program, std::string& error) {
    const std::string ns = floor_namespace_names(flags);
    std::string request = "plan " + ns + " " + std::string(floor_method_name(method)) + " " +
                          (setup ? "setup" : "bare") + " " + (exec ? "exec " + program : "exit");
    std::string answer;
    if (!ask(request, answer)) {
        error = "the floor helper stopped answering";
        return -1;
    }
    if (!answer.starts_with("ok ")) {
        error = "the floor helper refused '" + request + "': " + answer;
        return -1;
    }
    std::string_view rest(answer);
    rest.remove_prefix(3);
    auto space = rest.find(' ');
    std::int64_t id = 0;
    if (space == std::string_view::npos || !parse_i64(rest.substr(0, space), id) || id > 1'000'000) {
        error = "the floor helper answered '" + answer + "'";
        return -1;
    }
    method = rest.substr(space + 1) == "fork" ? floor_method::fork : floor_method::vfork;
    return static_cast<int>(id);
}

floor_sample floor_client::run(int id) {
    floor_sample s;
    std::string answer;
    if (!ask("run " + std::to_string(id), answer)) {
        s.error = "the floor helper stopped answering";
        return s;
    }
    settle();
    if (answer.starts_with("fail ")) {
        s.error = answer.substr(5);
        return s;
    }
    std::string_view rest(answer);
    auto space = rest.find(' ', 3);
    if (!rest.starts_with("ok ") || space == std::string_view::npos ||
        !parse_i64(rest.substr(3, space - 3), s.total_ns) || !parse_i64(rest.substr(space + 1), s.clone_ns)) {
        s.error = "the floor helper answered '" + answer + "'";
        return s;
    }
    s.ok = true;
    return s;
}

bool floor_client::start_loop(int id, std::int64_t start_ns, std::int64_t end_ns, std::string& error) {
    if (send_line("loop " + std::to_string(id) + " " + std::to_string(start_ns) + " " + std::to_string(end_ns)))
        return true;
    error = "the floor helper stopped answering";
    return false;
}

floor_loop_result floor_client::finish_loop(std::int64_t give_up_ns) {
    floor_loop_result r;
    std::string answer;
    if (!read_line(answer, give_up_ns)) {
        r.error = "the floor helper did not answer its loop in time";
        return r;
    }
    if (!answer.starts_with("ok ")) {
        r.error = answer.starts_with("err ") ? answer.substr(4) : "the floor helper answered '" + answer + "'";
        return r;
    }
    // ok SPAWNS FAILURES FINISH_NS [FIRST_FAILURE]
    std::string_view rest(answer);
    rest.remove_prefix(3);
    std::int64_t numbers[3] = {};
    for (std::int64_t& n : numbers) {
        std::size_t space = std::min(rest.find(' '), rest.size());
        if (!parse_i64(rest.substr(0, space), n)) {
            r.error = "the floor helper answered '" + answer + "'";
            return r;
        }
        rest.remove_prefix(std::min(space + 1, rest.size()));
    }
    r.ok = true;
    r.spawns = static_cast<std::size_t>(numbers[0]);
    r.failures = static_cast<std::size_t>(numbers[1]);
    r.finish_ns = numbers[2];
    r.error = std::string(rest);
    return r;
}

}  // namespace drover::bench
