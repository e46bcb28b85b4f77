// Example: spawn, read and wait with plain callbacks (no coroutine in this file), and a failed
// spawn seen as an error code that names the stage.
#include <asio/io_context.hpp>
#include <cstdio>
#include <memory>

#include "drover/drover.hpp"

// A program that is not there: no exception, an error code with the stage in it, and the
// full failure (with the path) in the spawn_failure the call was given (borrowed until the
// callback has run).
void spawn_missing(asio::io_context& io, drover::spawn_failure& failure) {
    drover::spawn_spec missing;
    missing.argv = {"/no/such/program"};
    drover::spawn(io.get_executor(), drover::prepared_spawn(missing), failure,
                  [&failure](std::error_code ec, drover::process) {
        std::printf("missing: stage %s, %s\n", std::string(drover::stage_id(drover::spawn_stage(ec))).c_str(),
                    ec.message().c_str());
        std::printf("missing: %s\n", failure.message().c_str());
    });
}

int main() {
    asio::io_context io;
    int result = 1;
    drover::spawn_failure failure;

    drover::spawn_spec spec;
    spec.argv = {"/bin/sh", "-c", "echo hello from a callback; exit 7"};
    spec.out = drover::stdio::pipe();

    // The process must outlive the operations on it: the callbacks share it.
    drover::spawn(io.get_executor(), spec, [&](std::error_code ec, drover::process p) {
        if (ec) {
            std::fprintf(stderr, "callback_spawn: %s\n", ec.message().c_str());
            return;
        }
        auto child = std::make_shared<drover::process>(std::move(p));
        child->read_all([&, child](std::error_code rec, drover::output said) {
            if (rec) {
                std::fprintf(stderr, "callback_spawn: reading: %s\n", rec.message().c_str());
                return;
            }
            std::printf("said: %s", said.out.c_str());
            child->wait([&, child](std::error_code wec, drover::exit_status st) {
                if (wec) {
                    std::fprintf(stderr, "callback_spawn: waiting: %s\n", wec.message().c_str());
                    return;
                }
                std::printf("status: %s\n", st.str().c_str());
                result = st == drover::exit_status::exited_with(7) ? 0 : 1;
                spawn_missing(io, failure);  // after this one, so that the output has an order
            });
        });
    });

    io.run();
    return result;
}
