// Example: several children on one io_context run by main's thread alone — no coroutines, no
// threads; each child's start and exit composed as deferred operations.
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <list>
#include <map>

#include "drover/drover.hpp"

int main() {
    asio::io_context io;
    std::list<drover::process> children;  // stable addresses while their waits are pending
    std::map<int, drover::exit_status> ended;  // child number -> status
    int failures = 0;

    for (int i = 1; i <= 4; ++i) {
        drover::spawn_spec spec;
        spec.argv = {"/bin/sh", "-c", "exit " + std::to_string(i * 10)};
        // Nothing starts here: a deferred operation runs when it is given a handler.
        auto start = drover::spawn(io.get_executor(), spec, asio::experimental::deferred);
        std::move(start)([&, i](std::error_code ec, drover::process p) {
            if (ec) {
                std::fprintf(stderr, "no_threads: child %d: %s\n", i, ec.message().c_str());
                ++failures;
                return;
            }
            drover::process& child = children.emplace_back(std::move(p));
            child.wait(asio::experimental::deferred)([&, i](std::error_code wec, drover::exit_status st) {
                if (wec) {
                    std::fprintf(stderr, "no_threads: child %d: %s\n", i, wec.message().c_str());
                    ++failures;
                    return;
                }
                ended[i] = st;
            });
        });
    }

    io.run();  // returns when every child has been started, has exited and has been reaped
    for (const auto& [i, st] : ended) std::printf("child %d: %s\n", i, st.str().c_str());
    std::printf("%zu children, %d failures\n", ended.size(), failures);
    return ended.size() == 4 && failures == 0 ? 0 : 1;
}
