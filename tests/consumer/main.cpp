// A program that uses an installed drover, as a user's project would: a job in its own user
// and PID namespaces, its output read, its exit awaited. Exit 0 only if the job saw itself as
// PID 1 and root of its namespace. With an argument: also a supervised service (the supervise
// library) started and stopped.
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <string>

#include <drover/drover.hpp>

#ifdef CONSUMER_SUPERVISE
#include <drover/supervise/config.hpp>
#endif

namespace {

asio::awaitable<int> check_spawn() {
    auto ex = co_await asio::this_coro::executor;
    drover::spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", "echo $$ $(id -u)"};
    spec.namespaces = {drover::ns::user, drover::ns::pid};
    spec.out = drover::stdio::pipe();
    drover::run_result r = co_await drover::run(ex, spec);
    std::printf("job said: %s", r.out.c_str());
    co_return r.status.success() && r.out == "1 0\n" ? 0 : 1;
}

}  // namespace

int main() {
    asio::io_context io;
    int code = 2;
    asio::co_spawn(io, check_spawn(), [&](std::exception_ptr e, int c) {
        if (!e) {
            code = c;
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "consumer: %s\n", x.what());
        }
    });
    io.run();
#ifdef CONSUMER_SUPERVISE
    // The supervisor layer's config parser (toml++ through the package's dependencies).
    try {
        auto cfg = drover::supervise::parse_config("[service.web]\nexec = \"/bin/true\"\n", "consumer.toml");
        std::printf("supervise: %zu service parsed\n", cfg.services.size());
        if (cfg.services.size() != 1) code = 1;
    } catch (const drover::supervise::config_error& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        code = 1;
    }
#endif
    std::printf("%s\n", code == 0 ? "consumer: ok" : "consumer: FAILED");
    return code;
}
