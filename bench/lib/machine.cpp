// The metadata of a run: which machine, kernel, cgroup mode and drover build produced it.
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "bench/runner.hpp"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace drover::bench {

namespace {

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos)
                return line.substr(line.find_first_not_of(' ', colon + 1));
        }
    }
    return "unknown";
}

bool is_cgroup2(const char* path) {
    struct statfs st {};
    return ::statfs(path, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

std::string cgroup_mode() {
    if (is_cgroup2("/sys/fs/cgroup")) return "v2";
    if (is_cgroup2("/sys/fs/cgroup/unified")) return "hybrid";
    return "v1";
}

}  // namespace

machine_info describe_machine() {
    machine_info m;
    char date[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    m.date = date;
    struct utsname u {};
    ::uname(&u);
    m.kernel = u.release;
    m.cpu_model = cpu_model();
    m.cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    m.cgroup_mode = cgroup_mode();
#ifdef DROVER_BENCH_VERSION
    m.drover_version = DROVER_BENCH_VERSION;
#else
    m.drover_version = "unknown";
#endif
#ifdef DROVER_BENCH_COMMIT
    m.drover_commit = DROVER_BENCH_COMMIT;
#else
    m.drover_commit = "unknown";
#endif
    return m;
}

}  // namespace drover::bench
