// drover_static_true: exits 0 at once. Linked -static so that execve has no dynamic loader
// or shared libraries to map: the exec-static workload measures execve itself.
#include <cstdint>
#include <cstring>
#include <ctime>
#include <unistd.h>

// With --stamp it first writes CLOCK_REALTIME in nanoseconds (8 bytes, native order) to
// stdout: the throughput bench reads it after the exit to measure exit→callback. REALTIME,
// because a time namespace offsets MONOTONIC and BOOTTIME but not it.
int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--stamp") == 0) {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        const std::int64_t ns = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
        if (write(1, &ns, sizeof ns) != sizeof ns) return 3;
    }
    return 0;
}
