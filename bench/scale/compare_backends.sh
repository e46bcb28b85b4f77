#!/bin/sh
# Runs the scale benchmarks on both Asio backends back to back: BUILD_DIR [benchmark flags].
dir=${1:?usage: compare_backends.sh BUILD_DIR [flags]}
shift
# The other backend's program is not part of the default build (a second copy of the core).
for t in drover_bench_scale_epoll drover_bench_scale_uring; do
    cmake --build "$dir" --target "$t" >/dev/null 2>&1 || true
done
status=0
for exe in "$dir"/bench/scale/drover_bench_scale "$dir"/bench/scale/drover_bench_scale_epoll \
           "$dir"/bench/scale/drover_bench_scale_uring; do
    if [ -x "$exe" ]; then
        "$exe" "$@" || status=1
    fi
done
exit $status
