// Test support: run a coroutine to completion on a fresh io_context; fd and zombie counts.
#pragma once

#include <dirent.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace drover::test {

inline constexpr const char* helper = DROVER_TEST_HELPER;
/// The static child of the mass tests: `blocker CODE [TEXT]` (see tests/helper/blocker.c).
inline constexpr const char* blocker = DROVER_TEST_BLOCKER;
inline constexpr const char* cli = DROVER_CLI;
/// The sandbox attacker (see tests/helper/escape.c).
inline constexpr const char* escape = DROVER_TEST_ESCAPE;
/// Where tests leave reports for people (the build directory).
inline constexpr const char* report_dir = DROVER_TEST_REPORT_DIR;

/// Runs `make(executor)` (a function returning asio::awaitable<T>) on a new io_context and
/// returns its result, rethrowing its exception.
template <class F>
auto run_on_loop(F&& make) {
    asio::io_context io;
    using awaitable_t = decltype(make(io.get_executor()));
    using T = typename awaitable_t::value_type;
    std::exception_ptr error;
    if constexpr (std::is_void_v<T>) {
        asio::co_spawn(io, make(io.get_executor()), [&](std::exception_ptr e) { error = e; });
        io.run();
        if (error) std::rethrow_exception(error);
    } else {
        std::optional<T> result;
        asio::co_spawn(io, make(io.get_executor()), [&](std::exception_ptr e, T v) {
            error = e;
            if (!e) result.emplace(std::move(v));
        });
        io.run();
        if (error) std::rethrow_exception(error);
        return std::move(*result);
    }
}

/// Number of open descriptors of this process.
inline int open_fd_count() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;  // the directory's own descriptor
}

/// Number of children of this process: zombies only, or in any state.
inline int children_of_this_process(bool zombies_only = false) {
    int n = 0;
    std::string self = std::to_string(::getpid());
    DIR* d = ::opendir("/proc");
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
        std::string line;
        std::getline(stat, line);
        auto close = line.rfind(')');
        if (close == std::string::npos || close + 4 > line.size()) continue;
        char state = line[close + 2];
        std::string rest = line.substr(close + 4);
        std::string ppid = rest.substr(0, rest.find(' '));
        if ((!zombies_only || state == 'Z') && ppid == self) ++n;
    }
    ::closedir(d);
    return n;
}

/// Number of zombie children of this process.
inline int zombie_children() { return children_of_this_process(true); }

}  // namespace drover::test

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>

#include "drover/process/process.hpp"

namespace drover::test {

/// Lets the loop run (the work being awaited is on it) until `ready()` holds.
template <class Ready>
asio::awaitable<void> poll_until(Ready ready) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (!ready()) {
        t.expires_after(std::chrono::milliseconds(1));
        co_await t.async_wait(asio::use_awaitable);
    }
}

/// A spec that runs `argv` with stdout and stderr piped.
inline spawn_spec piped(std::vector<std::string> argv, namespace_set n = {}) {
    spawn_spec s;
    s.argv = std::move(argv);
    s.namespaces = n;
    s.out = stdio::pipe();
    s.err = stdio::pipe();
    return s;
}

/// Runs `spec` to its end on a fresh loop.
inline run_result run_spec(spawn_spec spec, std::string input = {}) {
    return run_on_loop([&](asio::any_io_executor ex) { return drover::run(ex, spec, input); });
}

/// Runs `sh -c script` with piped output; returns stdout (stderr is kept in the result).
inline run_result sh(const std::string& script, namespace_set n = {},
                     void (*tweak)(spawn_spec&) = nullptr) {
    spawn_spec s = piped({"/bin/sh", "-c", script}, n);
    if (tweak) tweak(s);
    return run_spec(std::move(s));
}

/// Whether uid/gid 65534 (through setpriv from util-linux) can run `path`: a checkout under a
/// directory others may not enter (/root, say) keeps the unprivileged tests from running.
inline bool nobody_can_run(const std::string& path) {
    if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0) return false;
    spawn_spec s;
    s.argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sh", "-c",
              "test -x \"$1\"", "sh", path};
    s.out = stdio::null();
    s.err = stdio::null();
    try {
        return run_spec(std::move(s)).status.success();
    } catch (...) {
        return false;
    }
}

/// The reason to give when nobody_can_run() is false.
inline std::string nobody_skip_reason(const std::string& path) {
    return "needs root, setpriv(1) and a build uid 65534 can run (" + path + ")";
}

/// Trims one trailing newline.
/// A directory of its own under $TMPDIR, removed with everything in it at the end of scope.
struct temp_dir {
    std::filesystem::path path;
    explicit temp_dir(const std::string& prefix = "drover-test") {
        std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl);
        path = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

inline std::string chomp(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

}  // namespace drover::test

#include <ostream>

#include "drover/process/exit_waiter.hpp"
#include "drover/spawn/launch.hpp"

namespace drover {

// How GoogleTest prints test parameters (in test names and failures): by name, not as bytes.
inline void PrintTo(clone_method m, std::ostream* os) { *os << clone_method_name(m); }
inline void PrintTo(exit_wait_method m, std::ostream* os) { *os << exit_wait_method_name(m); }

}  // namespace drover
