// drover_floor: the raw floor as its own small process (no drover code, no Asio), to check
// that the floor measured inside `drover bench` is not slowed by drover's larger address space.
// Usage: drover_floor NAMESPACES COUNT [PROGRAM]   e.g. drover_floor user,pid,net 500 /bin/true
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/floor.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace {

bool parse_flags(std::string text, std::uint64_t& flags) {
    struct name_flag {
        const char* name;
        std::uint64_t flag;
    };
    static const name_flag table[] = {{"user", CLONE_NEWUSER},     {"pid", CLONE_NEWPID},
                                      {"mnt", CLONE_NEWNS},        {"uts", CLONE_NEWUTS},
                                      {"ipc", CLONE_NEWIPC},       {"net", CLONE_NEWNET},
                                      {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}};
    flags = 0;
    if (text == "none") return true;
    std::replace(text.begin(), text.end(), '+', ',');
    std::size_t begin = 0;
    while (begin <= text.size()) {
        std::size_t end = std::min(text.find(',', begin), text.size());
        std::string part = text.substr(begin, end - begin);
        bool found = false;
        for (const name_flag& nf : table)
            if (part == nf.name) {
                flags |= nf.flag;
                found = true;
            }
        if (!found) return false;
        begin = end + 1;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::uint64_t flags = 0;
    if (argc < 3 || !parse_flags(argv[1], flags) || std::atoi(argv[2]) <= 0) {
        std::fprintf(stderr, "usage: drover_floor NAMESPACES COUNT [PROGRAM]\n");
        return 2;
    }
    int count = std::atoi(argv[2]);
    std::vector<std::string> args;
    if (argc > 3) args.emplace_back(argv[3]);
    auto plan = drover::bench::floor_plan::for_flags(flags, argc > 3, args);
    std::vector<std::int64_t> samples;
    for (int i = 0; i < count; ++i) {
        auto s = drover::bench::floor_spawn(plan);
        if (!s.ok) {
            std::fprintf(stderr, "drover_floor: %s\n", s.error.c_str());
            return 1;
        }
        samples.push_back(s.total_ns);
    }
    std::sort(samples.begin(), samples.end());
    std::printf("%s n=%d p50=%.1fus p90=%.1fus max=%.1fus\n", argv[1], count,
                static_cast<double>(samples[samples.size() / 2]) / 1e3,
                static_cast<double>(samples[samples.size() * 9 / 10]) / 1e3,
                static_cast<double>(samples.back()) / 1e3);
    return 0;
}
