// drover bench's side of the floor helper (bench/matrix/floor_main.cpp): starts drover_floor
// --serve, defines plans, asks for one floor spawn at a time. The floor then runs in a small
// process of its own, not inside drover's heap and descriptor table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "bench/floor.hpp"

namespace drover::bench {

/// Where drover_floor is: $DROVER_FLOOR, the path the build recorded, beside the running
/// program, or ../libexec/drover. Empty if none is executable.
std::string floor_helper_path();

class floor_client {
public:
    floor_client() = default;
    floor_client(const floor_client&) = delete;
    floor_client& operator=(const floor_client&) = delete;
    /// Closes the helper's stdin (it exits) and reaps it.
    ~floor_client();

    /// Starts the helper at `path`; false with `error` set if it cannot be started or does
    /// not answer a first request.
    bool start(const std::string& path, std::string& error);
    /// The same for any helper that answers one line per request line on its stdin and stdout
    /// (drover_raw_probe --serve): `argv` is started, and `hello` must get an answer that
    /// starts with `expect`; else `error` says it did not answer as `what`.
    bool start_as(const std::vector<std::string>& argv, const std::string& hello,
                  std::string_view expect, std::string_view what, std::string& error);
    /// One request line out, one answer line back; false if the helper stopped answering.
    bool ask(const std::string& request, std::string& answer);
    [[nodiscard]] bool running() const noexcept { return pid_ > 0; }
    /// Waits (yielding) until the helper, having answered, is asleep again, so that it is
    /// not left runnable beside the next sample drover times (floor_wait_asleep).
    void settle() noexcept;

    /// Defines a plan in the helper; returns its id, or -1 with `error`. `method` is set to
    /// the method the helper will use (fork for a time namespace).
    int define(std::uint64_t clone_flags, floor_method& method, bool setup, bool exec,
               const std::string& program, std::string& error);
    /// One spawn of plan `id`, timed inside the helper.
    floor_sample run(int id);

    /// Sends a loop of plan `id` from `start_ns` to `end_ns` (CLOCK_MONOTONIC; see floor_loop)
    /// and returns at once, so that several helpers can be started before any is read; false
    /// with `error` if the helper cannot be reached. finish_loop() reads the answer.
    bool start_loop(int id, std::int64_t start_ns, std::int64_t end_ns, std::string& error);
    /// Waits for the answer to start_loop(), at most until `give_up_ns` (CLOCK_MONOTONIC).
    floor_loop_result finish_loop(std::int64_t give_up_ns);

private:
    bool send_line(const std::string& request);
    // One answer line; false if the helper closed, sent garbage or `give_up_ns` (-1: never)
    // passed first.
    bool read_line(std::string& answer, std::int64_t give_up_ns = -1);

    pid_t pid_ = -1;
    int fd_ = -1;  // our end of the helper's stdin and stdout
    std::string buffered_;
};

}  // namespace drover::bench
