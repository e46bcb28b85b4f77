#!/bin/sh
# Runs the scale benchmarks on both Asio backends back to back: BUILD_DIR [benchmark flags].
dir=${1:?usage: compare_backends.sh BUILD_DIR [flags]}
shift
# The other backend's program is not part of the default build (a second copy of the core).
alt=drover_bench_scale_epoll
grep -q '^DROVER_WITH_URING:BOOL=OFF' "$dir/CMakeCache.txt" 2>/dev/null && alt=drover_bench_scale_uring
cmake --build "$dir" --target "$alt" || echo "compare_backends.sh: $alt could not be built: one backend only" >&2
status=0
for exe in "$dir"/bench/scale/drover_bench_scale "$dir"/bench/scale/drover_bench_scale_epoll \
           "$dir"/bench/scale/drover_bench_scale_uring; do
    if [ -x "$exe" ]; then
        "$exe" "$@" || status=1
    fi
done
exit $status
