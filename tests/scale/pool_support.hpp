// Shared by the job_pool tests: a helper job, a pool run to its end, RLIMIT_NOFILE restored.
#pragma once

#include <sys/resource.h>

#include <string>
#include <vector>

#include "drover/process/pool.hpp"
#include "support.hpp"

namespace drover {

inline prepared_spawn helper_job(const std::string& mode, const std::string& arg, bool pipes = true) {
    spawn_spec s;
    s.argv.push_back(test::helper);
    s.argv.push_back(mode);
    s.argv.push_back(arg);
    s.in = stdio::null();
    if (pipes) {
        s.out = stdio::pipe();
        s.err = stdio::pipe();
    }
    return prepared_spawn(std::move(s));
}

inline std::vector<job_result> run_pool(std::vector<prepared_spawn> jobs, pool_options o,
                                 pool_stats* stats = nullptr) {
    return test::run_on_loop([&](asio::any_io_executor ex) -> asio::awaitable<std::vector<job_result>> {
        job_pool pool(ex, o);
        for (auto& j : jobs) pool.submit(j, "job");
        pool.close();
        std::vector<job_result> results(jobs.size());
        co_await pool.run([&](job_result r) { results[r.index] = std::move(r); });
        if (stats) *stats = pool.stats();
        co_return results;
    });
}

// Restores RLIMIT_NOFILE when the test ends, also on failure.
struct nofile_guard {
    rlimit saved{};
    nofile_guard() { ::getrlimit(RLIMIT_NOFILE, &saved); }
    ~nofile_guard() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

}  // namespace drover
