#!/bin/sh
# drover_bench_scale's heap section runs and prints one row per method and namespace set with
# a rate for each heap size and a ratio; bad numbers on its command line are refused with a
# one-line error naming the flag. Usage: scale_heap_smoke.sh PATH_TO_drover_bench_scale
set -u
bench=$1
. "$(dirname "$0")/refused.sh"

out=$("$bench" --quick --only heap 2>&1) || fail "exit $?: $out"
echo "$out"
rows=$(echo "$out" | grep -cE '^(vfork|fork) +(none|6) +128 +[1-9][0-9]* +[1-9][0-9]* +[1-9][0-9]* +[0-9]+\.[0-9]+x$')
[ "$rows" -eq 4 ] || fail "expected 4 rows with three non-zero rates and a ratio, found $rows"

refused --heap 0
refused --heap 99999999999999999999
refused --heap 12x
refused --live -5
refused --only nope
echo "ok"
