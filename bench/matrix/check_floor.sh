#!/bin/bash
# check_floor.sh: drover bench's floor beside an independent raw probe, run side by side.
#
#   bench/matrix/check_floor.sh [BUILD_DIR] [N] [SEEDS] [ROUNDS]
#
# For each seed and each namespace set, ROUNDS pairs of `drover_floor --method vfork --bare`
# (the helper whose code drover bench times its floors with) and `drover_raw_probe` (none of
# drover's code: glibc clone(CLONE_VM|CLONE_VFORK|ns…) + execve + waitpid), N spawns
# each, alternating (which goes first follows the seed), pinned to one CPU. Per seed the ratio
# is median(floor p50) ÷ median(probe p50). Then, per seed, one `drover bench` run of the same
# sets (its bare floor timed inside a whole bench run, interleaved with drover and the other
# floors) followed by ROUNDS probe runs. It passes when every ratio of both is within 10 % of
# 1 and each set's ratios spread by at most 5 % across the seeds (issue 11's independent check).
set -euo pipefail
build=${1:-build}
n=${2:-300}
seeds=${3:-3}
rounds=${4:-5}
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
# Then drover bench itself: its bare floor (timed by the helper inside a whole bench run,
# interleaved with drover and the other floors) against the probe run right after it.
drover=$build/tools/drover
declare -A bench_ratio
if [[ -x $drover ]]; then
    csv=$(mktemp)
    trap 'rm -f "$csv"' EXIT
    ns_args=()
    for ns in "${sets[@]}"; do ns_args+=(--ns "$ns"); done
    for seed in $(seq 1 "$seeds"); do
        taskset -c $cpu "$drover" bench "${ns_args[@]}" -n "$n" --workload exec-static --seed "$seed" \
            --csv "$csv" > /dev/null
        for ns in "${sets[@]}"; do
            name=${ns//,/+}
            f=$(awk -F, -v ns="$name" '$1 == "matrix" && $2 == ns && $3 == "bare_floor" && $4 == "total" {print $6 / 1000}' "$csv")
            pr=()
            for r in $(seq 1 "$rounds"); do pr+=("$(taskset -c $cpu "$probe" "$ns" "$n" "$prog" | p50)"); done
            p=$(printf '%s\n' "${pr[@]}" | median)
            bench_ratio[$seed,$ns]=$(awk -v f="$f" -v p="$p" 'BEGIN {printf "%.3f", f / p}')
            printf 'seed %d  %-24s drover bench bare floor p50 %8.1f us  probe p50 %8.1f us  ÷ %s\n' \
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
report "helper ÷ probe by seed" ratio
exit $fail
