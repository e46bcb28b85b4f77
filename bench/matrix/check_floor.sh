#!/bin/bash
# check_floor.sh: drover bench's floor beside an independent raw probe, run side by side.
#
#   bench/matrix/check_floor.sh [BUILD_DIR] [N] [SEEDS] [ROUNDS]
#
# ROUNDS 0 skips the first part (the helper and the probe as separate runs).
# For each seed and each namespace set, ROUNDS pairs of `drover_floor --method vfork --bare`
# (the helper whose code drover bench times its floors with) and `drover_raw_probe` (none of
# drover's code: glibc clone(CLONE_VM|CLONE_VFORK|ns…) + execve + waitpid), N spawns
# each, alternating (which goes first follows the seed), pinned to one CPU. Per seed the ratio
# is median(floor p50) ÷ median(probe p50). Then, per seed, one `drover bench --probe` run of
# the same sets: its bare floor and the probe (`drover_raw_probe --serve`) are both timed
# inside that run, in one shuffled order with drover and the other floors, so the two meet
# the same machine state (a net namespace's deferred teardown, the caches drover's spawns
# leave). It passes when every ratio of both is within 10 % of 1 and each set's ratios spread
# by at most 5 % across the seeds (issue 11's independent check).
set -euo pipefail
build=${1:-build}
n=${2:-300}
seeds=${3:-3}
rounds=${4:-5}
for v in n seeds rounds; do
    [[ ${!v} =~ ^[0-9]{1,6}$ ]] || { echo "check_floor: $v must be a whole number (got '${!v}')" >&2; exit 2; }
done
(( n >= 1 && n <= 100000 && seeds >= 1 && seeds <= 20 && rounds <= 50 )) ||
    { echo "check_floor: N must be 1..100000, SEEDS 1..20 and ROUNDS 0..50 (got $n $seeds $rounds)" >&2; exit 2; }
floor=$build/bench/matrix/drover_floor
probe=$build/bench/matrix/drover_raw_probe
prog=$build/bench/matrix/drover_static_true
for f in "$floor" "$probe" "$prog"; do
    [[ -x $f ]] || { echo "check_floor: $f is missing: build the bench first" >&2; exit 2; }
done
cpu=$(( $(nproc) > 1 ? 1 : 0 ))
sets=(none user mnt net user,pid,mnt,uts,ipc,net)

p50() { sed -n 's/.* p50=\([0-9.]*\)us.*/\1/p'; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

declare -A ratio
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for seed in $(seq 1 "$seeds"); do
    (( rounds > 0 )) || break
    for ns in "${sets[@]}"; do
        fl=() pr=()
        for r in $(seq 1 "$rounds"); do
            if (( (seed + r) % 2 )); then
                fl+=("$(taskset -c $cpu "$floor" --method vfork --bare "$ns" "$n" "$prog" | p50)")
                pr+=("$(taskset -c $cpu "$probe" "$ns" "$n" "$prog" | p50)")
            else
                pr+=("$(taskset -c $cpu "$probe" "$ns" "$n" "$prog" | p50)")
                fl+=("$(taskset -c $cpu "$floor" --method vfork --bare "$ns" "$n" "$prog" | p50)")
            fi
        done
        f=$(printf '%s\n' "${fl[@]}" | median)
        p=$(printf '%s\n' "${pr[@]}" | median)
        ratio[$seed,$ns]=$(awk -v f="$f" -v p="$p" 'BEGIN {printf "%.3f", f / p}')
        printf 'seed %d  %-24s floor p50 %8.1f us  probe p50 %8.1f us  floor ÷ probe %s\n' \
            "$seed" "$ns" "$f" "$p" "${ratio[$seed,$ns]}"
    done
done
# Then drover bench itself: its bare floor against the probe, both timed inside one bench run.
drover=$build/tools/drover
declare -A bench_ratio
if [[ -x $drover ]]; then
    csv=$(mktemp)
    trap 'rm -f "$csv" "$csv.err"' EXIT
    ns_args=()
    for ns in "${sets[@]}"; do ns_args+=(--ns "$ns"); done
    for seed in $(seq 1 "$seeds"); do
        taskset -c $cpu "$drover" bench "${ns_args[@]}" -n "$n" --workload exec-static --seed "$seed" \
            --probe --csv "$csv" > /dev/null 2> "$csv.err" || { cat "$csv.err" >&2; exit 2; }
        for ns in "${sets[@]}"; do
            name=${ns//,/+}
            total() { awk -F, -v ns="$name" -v who="$1" '$1 == "matrix" && $2 == ns && $3 == who && $4 == "total" {print $6 / 1000}' "$csv"; }
            f=$(total bare_floor)
            p=$(total raw_probe)
            [[ -n $f && -n $p ]] || { echo "check_floor: no bare floor or probe row for $ns in drover bench's CSV" >&2; exit 2; }
            bench_ratio[$seed,$ns]=$(awk -v f="$f" -v p="$p" 'BEGIN {printf "%.3f", f / p}')
            printf 'seed %d  %-24s drover bench bare floor p50 %8.1f us  probe p50 (same run) %8.1f us  ÷ %s\n' \
                "$seed" "$ns" "$f" "$p" "${bench_ratio[$seed,$ns]}"
        done
    done
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fail=0
verdict_of() {
    printf '%s\n' "$@" | awk '
        {v[NR]=$1; if (NR==1 || $1<lo) lo=$1; if (NR==1 || $1>hi) hi=$1}
        END {
            bad = (lo < 0.90 || hi > 1.10) ? "OUTSIDE 10 %" : "";
            spread = hi / lo - 1;
            if (spread > 0.05) bad = bad (bad ? ", " : "") "SPREAD OVER 5 %";
            printf "%.1f %%%s%s", spread * 100, bad ? "  " : "", bad
        }'
}
# One table of ratios (an associative array by name, keyed "seed,set") with its verdicts.
report() {
    local title=$1
    local -n by=$2
    printf '\n%-24s %-26s %s\n' "namespaces" "$title" "spread"
    for ns in "${sets[@]}"; do
        vals=()
        for seed in $(seq 1 "$seeds"); do vals+=("${by[$seed,$ns]}"); done
        verdict=$(verdict_of "${vals[@]}")
        printf '%-24s %-26s %s\n' "$ns" "${vals[*]}" "$verdict"
        [[ $verdict == *OUTSIDE* || $verdict == *SPREAD* ]] && fail=1
    done
    return 0
}
[[ -x $drover ]] && report "bench floor ÷ probe by seed" bench_ratio
(( rounds > 0 )) && report "helper ÷ probe by seed" ratio
exit $fail
