#!/bin/sh
# Runs the scale benchmarks on both Asio backends back to back: BUILD_DIR [benchmark flags].
dir=${1:?usage: compare_backends.sh BUILD_DIR [flags]}
shift
status=0
for exe in "$dir"/bench/scale/drover_bench_scale "$dir"/bench/scale/drover_bench_scale_epoll \
           "$dir"/bench/scale/drover_bench_scale_uring; do
    if [ -x "$exe" ]; then
        "$exe" "$@" || status=1
    fi
done
exit $status
