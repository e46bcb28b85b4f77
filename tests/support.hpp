// Test support: run a coroutine to completion on a fresh io_context; fd and zombie counts.
#pragma once

#include <dirent.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <exception>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

namespace drover::test {

inline constexpr const char* helper = DROVER_TEST_HELPER;
inline constexpr const char* cli = DROVER_CLI;

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

/// Number of zombie children of this process.
inline int zombie_children() {
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
        if (state == 'Z' && ppid == self) ++n;
    }
    ::closedir(d);
    return n;
}

}  // namespace drover::test
