// Example: run a command in a user+pid+mnt+uts+net sandbox from a coroutine and print what
// it said, how it ended and how long each spawn stage took.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <cstdio>

#include "drover/drover.hpp"

asio::awaitable<void> demo() {
    auto ex = co_await asio::this_coro::executor;
    drover::spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", "echo \"hello from $(hostname), pid $$\""};
    spec.namespaces = {drover::ns::user, drover::ns::pid, drover::ns::mnt, drover::ns::uts,
                       drover::ns::net};
    spec.hostname = "sandbox";
    spec.out = drover::stdio::pipe();

    drover::run_result r = co_await drover::run(ex, spec);
    std::printf("%s%s\n", r.out.c_str(), r.status.str().c_str());
    auto d = r.timings.durations();
    auto stages = d.as_array();
    for (std::size_t i = 0; i < stages.size(); ++i)
        std::printf("  %-8s %8.3f ms\n", std::string(drover::stage_durations::names[i]).c_str(),
                    static_cast<double>(stages[i]) / 1e6);
}

int main() {
    asio::io_context io;
    asio::co_spawn(io, demo(), [](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "example: %s\n", x.what());
        }
    });
    io.run();
}
