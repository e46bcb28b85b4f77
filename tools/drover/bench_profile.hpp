// `drover bench --profile FILE`: perf records drover's own process (and its children until
// they exec) while the benchmark runs, then the report names where drover's share goes.
#pragma once

#include <string>
#include <sys/types.h>

namespace drover::cli {

/// Where perf is on PATH, or "" if it is not installed.
std::string find_perf();

/// A running `perf record -p <this process>`, started with events disabled and enabled
/// through its control descriptors, so nothing before start() returns is in the profile.
class perf_session {
public:
    perf_session() = default;
    perf_session(const perf_session&) = delete;
    perf_session& operator=(const perf_session&) = delete;
    /// Stops perf if it still runs (SIGINT, then reaps it).
    ~perf_session();

    /// Starts perf at `perf` writing `output`; false with `error` (perf's refusal, e.g.
    /// kernel.perf_event_paranoid) if recording did not begin.
    bool start(const std::string& perf, const std::string& output, std::string& error);
    /// Disables the events and lets perf write its file; false with `error` if it failed.
    bool stop(std::string& error);

private:
    bool command(const char* what, std::string& error);

    pid_t pid_ = -1;
    int ctl_ = -1;  // we write "enable"/"disable"
    int ack_ = -1;  // perf answers "ack"
};

/// The top of `perf report` for the process named `comm` (drover), by shared object and
/// symbol, children excluded: where drover's own time went. Empty with `error` set on failure.
std::string perf_summary(const std::string& perf, const std::string& data, const std::string& comm,
                         std::string& error);

}  // namespace drover::cli
