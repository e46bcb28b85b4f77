// What the warm-set tests share: the fully isolated spec, a blocking run that collects the
// job's stdout, and the "key value" lines the helper prints about its isolation.
#pragma once

#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "drover/spawn/launch.hpp"
#include "drover/spawn/warm.hpp"

namespace drover {
namespace {

bool can_run() {
    std::ifstream f("/proc/sys/user/max_user_namespaces");
    long max = 0;
    return ::geteuid() == 0 && (f >> max) && max > 0;
}

#define REQUIRE_WARM()                                                                 \
    do {                                                                               \
        if (!can_run()) GTEST_SKIP() << "needs root and user namespaces (warm sets)"; \
    } while (0)

// The full isolation of a sandboxed job, without a new root: every namespace drover can keep
// warm, the job's own PID namespace with /proc, lo up, a hostname and a leased id range.
spawn_spec isolated(std::vector<std::string> argv) {
    spawn_spec s;
    s.argv = std::move(argv);
    s.namespaces = namespace_set{ns::user, ns::pid, ns::mnt, ns::uts, ns::ipc, ns::net, ns::cgroup};
    s.ids = userns_ids::automatic;
    s.hostname = "warmjob";
    s.loopback_up = true;
    s.tmpfs.push_back({"/tmp", "size=1m"});
    s.out = stdio::pipe();
    return s;
}

struct run_result {
    bool ok = false;
    std::string failure;
    std::string out;
    exit_status status;
    bool warm = false;
};

run_result run(const prepared_spawn& p, warm_pool* pool) {
    run_result r;
    launched_child child;
    spawn_failure failure;
    launch_extras extras;
    extras.warm = pool;
    std::uint64_t hits = pool ? pool->stats().hits : 0;
    if (!launch(p, child, failure, extras) || !await_exec(p, child, failure)) {
        r.failure = failure.message();
        return r;
    }
    r.warm = pool && pool->stats().hits > hits;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(child.stdout_pipe.get(), buf, sizeof buf)) > 0) r.out.append(buf, static_cast<std::size_t>(n));
    r.status = wait_blocking(child);
    r.ok = true;
    return r;
}

std::map<std::string, std::string> keys(const std::string& out) {
    std::map<std::string, std::string> m;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        auto sp = line.find(' ');
        if (sp != std::string::npos) m[line.substr(0, sp)] = line.substr(sp + 1);
    }
    return m;
}

}  // namespace
}  // namespace drover
