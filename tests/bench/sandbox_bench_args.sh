#!/bin/sh
# drover_bench_sandbox refuses bad numbers on its command line with one line naming the flag
# and exit status 2, before it measures anything. Usage: sandbox_bench_args.sh PATH_TO_BENCH
set -u
bench=$1
. "$(dirname "$0")/refused.sh"
refused -n 0
refused -n 12x
refused -n 99999999999999999999
refused --warmup -1
refused --seed -3
refused --seed 18446744073709551616
refused --cpu -2
refused --cpu 99999
echo "ok"
