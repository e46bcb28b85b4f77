#!/usr/bin/env bash
# judge_throughput.sh: judge-style throughput — N tiny sandboxed jobs through `drover parallel
# --sandbox` versus the same jobs through bwrap with the same walls under an xargs -P fan-out
# (GNU parallel's shape: one shell per job), jobs/s side by side.
#
#   bench/sandbox/judge_throughput.sh [-n JOBS] [-j PARALLEL] [--rounds R] [--build DIR]
#                                     [--workload sh|static] [--no-reference] [--json FILE]
#
# Each round runs every fan-out once, the order reversed every other round (drover first, then
# bwrap first), and waits before each run until the CPUs are idle again: a net namespace is torn
# down by a kernel worker after its last process is gone, so 1000 of them leave work behind that
# would otherwise land on whichever fan-out runs next. Reported per fan-out: jobs/s of its best
# round (another tenant of the machine can only slow a run down, never speed it up) and over
# all rounds (every job over every second); the headline ratio is between best rounds.
#
# Needs a build with DROVER_BUILD_BENCH (drover, drover_bench_sandbox and its static helper)
# and bwrap in PATH. Installs nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$here/../.." && pwd)/build
jobs=1000
par=2
workload=sh
reference=1
rounds=3
json=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) jobs=$2; shift 2 ;;
        -j) par=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --workload) workload=$2; shift 2 ;;
        --no-reference) reference=0; shift ;;
        --json) json=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "judge_throughput.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

drover=$build/tools/drover
bench=$build/bench/sandbox/drover_bench_sandbox
helper=$build/bench/sandbox/drover_bench_sandbox_true
bwrap=$(command -v bwrap || true)
for f in "$drover" "$bench" "$helper"; do
    [ -x "$f" ] || { echo "judge_throughput.sh: $f missing: build with DROVER_BUILD_BENCH=ON" >&2; exit 1; }
done
[ -n "$bwrap" ] || { echo "judge_throughput.sh: bwrap not in PATH" >&2; exit 1; }

tmp=$(mktemp -d /tmp/drover-judge-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# drover's default seccomp policy compiled to BPF, the program drover's own sandbox installs.
"$bench" --write-bpf "$tmp/filter.bpf"

# The job: print its input (checked below), or the static helper (nothing to check).
case "$workload" in
    sh) job=(/bin/sh -c 'echo $1' _) ;;
    static) job=("$helper") ;;
    *) echo "judge_throughput.sh: --workload sh|static" >&2; exit 2 ;;
esac
walls=(--unshare-all --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --new-session
       --die-with-parent --cap-drop ALL)

now() { date +%s.%N; }

run_drover() {  # $1: jobs, $2: output file
    seq "$1" | "$drover" parallel --sandbox --timeout 2 --memory-max 256M -j "$par" --json --no-progress \
        -- "${job[@]}" {} >"$2" || true
}
# bwrap reads --seccomp FD to EOF from where the descriptor stands, so every bwrap needs a
# descriptor of its own: a shell per job opens the file (GNU parallel runs each job through a
# shell as well).
run_bwrap() {
    local script="exec \"\$0\" ${walls[*]} --seccomp 9 -- \"\$@\" 9<'$tmp/filter.bpf'"
    seq "$1" | xargs -P "$par" -n 1 sh -c "$script" "$bwrap" "${job[@]}" >"$2" 2>"$2.err" || true
}
# Reference: bwrap started directly by xargs, without --seccomp and without the shell.
run_bwrap_plain() {
    seq "$1" | xargs -P "$par" -n 1 "$bwrap" "${walls[@]}" -- "${job[@]}" >"$2" 2>"$2.err" || true
}

# Jobs that succeeded: drover from its JSON lines, bwrap from the output lines.
count_drover() { grep -c '"ok":true' "$1" || true; }
count_lines() {
    if [ "$workload" = sh ]; then sort -un "$1" | awk -v n="$jobs" '$1>=1 && $1<=n' | wc -l
    else echo "n/a"; fi
}

# Waits (at most 60 s) until a 1-second window finds the CPUs at least 95 % idle.
settle() {
    local i a b
    for i in $(seq 60); do
        a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
        awk -v i1="${a[4]}" -v i2="${b[4]}" -v t1="$(IFS=+; echo "$((${a[*]:1}))")" \
            -v t2="$(IFS=+; echo "$((${b[*]:1}))")" 'BEGIN{exit !((i2-i1)/(t2-t1) >= 0.95)}' && return 0
    done
    echo "judge_throughput.sh: the CPUs did not settle within 60 s; measuring anyway" >&2
}

declare -A secs ok best per_round
measure() {  # $1: name, $2: runner, $3: counter
    local t0 t1
    settle
    t0=$(now)
    "$2" "$jobs" "$tmp/$1.out"
    t1=$(now)
    local s n
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
    n=$("$3" "$tmp/$1.out")
    secs[$1]=$(awk -v a="${secs[$1]:-0}" -v b="$s" 'BEGIN{printf "%.3f", a+b}')
    ok[$1]=$(awk -v a="${ok[$1]:-0}" -v b="$n" 'BEGIN{print (b=="n/a") ? "n/a" : a+b}')
    local r
    r=$(awk -v n="$jobs" -v s="$s" 'BEGIN{printf "%.1f", n/s}')
    best[$1]=$(awk -v a="${best[$1]:-0}" -v b="$r" 'BEGIN{print (b > a) ? b : a}')
    per_round[$1]="${per_round[$1]:+${per_round[$1]}, }$r"
    printf '  round %d: %-7s %7.3f s  %6.1f jobs/s  ok %s\n' "$round" "$1" "$s" "$r" "$n" >&2
    [ "$1" = drover ] && cp "$tmp/$1.out" "$tmp/drover.round$round.out"
    return 0
}
rate() { awk -v n="$((jobs * rounds))" -v s="${secs[$1]}" 'BEGIN{printf "%.1f", n/s}'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run_drover 20 "$tmp/warm.drover"  # warm-up: page cache, the first cgroups
run_bwrap 20 "$tmp/warm.bwrap"
names=(drover bwrap)
[ "$reference" = 1 ] && names+=(plain)
for round in $(seq "$rounds"); do
    order=("${names[@]}")
    if [ $((round % 2)) = 0 ]; then order=(); for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[i]}"); done; fi
    for name in "${order[@]}"; do
        case $name in
            drover) measure drover run_drover count_drover ;;
            bwrap) measure bwrap run_bwrap count_lines ;;
            plain) measure plain run_bwrap_plain count_lines ;;
        esac
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
rate_drover=$(rate drover); rate_bwrap=$(rate bwrap)
best_drover=${best[drover]}; best_bwrap=${best[bwrap]}
secs_drover=${secs[drover]}; secs_bwrap=${secs[bwrap]}; ok_drover=${ok[drover]}; ok_bwrap=${ok[bwrap]}
if [ "$reference" = 1 ]; then rate_plain=$(rate plain); secs_plain=${secs[plain]}; ok_plain=${ok[plain]}; best_plain=${best[plain]}; fi

ratio=$(awk -v a="$best_drover" -v b="$best_bwrap" 'BEGIN{printf "%.2f", a/b}')
ratio_all=$(awk -v a="$rate_drover" -v b="$rate_bwrap" 'BEGIN{printf "%.2f", a/b}')
echo "judge throughput — $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $(uname -r), $(nproc) CPUs"
echo "$jobs jobs x $rounds rounds, -j $par, workload: ${job[*]} N; load average before $load_before, after $load_after"
row() { printf '%-62s %11s %10s %6s  %s\n' "$@"; }
row "fan-out" "best jobs/s" "all jobs/s" "ok" "per round (jobs/s)"
row "drover parallel --sandbox --timeout 2 --memory-max 256M" "$best_drover" "$rate_drover" "$ok_drover" "${per_round[drover]}"
row "xargs -P $par: sh -c 'exec bwrap <walls> --seccomp 9 9<bpf'" "$best_bwrap" "$rate_bwrap" "$ok_bwrap" "${per_round[bwrap]}"
if [ "$reference" = 1 ]; then
    row "xargs -P $par: bwrap <walls> (no seccomp, no shell; reference)" "$best_plain" "$rate_plain" "$ok_plain" "${per_round[plain]}"
fi
echo "drover jobs/s / bwrap jobs/s: ${ratio}x (best rounds), ${ratio_all}x (all rounds)"

# Where drover's jobs spent their time (medians over the JSON lines), if python3 is here.
summary=""
if command -v python3 >/dev/null; then
    summary=$(python3 - "$tmp"/drover.round*.out <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
def med(xs): return statistics.median(xs) if xs else 0.0
stages = ["clone", "id_maps", "setup", "exec", "run", "reap"]
out = {s: med([r["spawn_ms"][s] for r in rows if "spawn_ms" in r]) for s in stages}
out["duration"] = med([r["duration_ms"] for r in rows])
out["verdicts"] = {}
for r in rows: out["verdicts"][r["verdict"]] = out["verdicts"].get(r["verdict"], 0) + 1
print(json.dumps(out))
EOF
)
    echo "drover per-job medians (ms): $summary"
fi

if [ -n "$json" ]; then
    fan() {  # name
        printf '{"best_jobs_per_s": %s, "all_rounds_jobs_per_s": %s, "seconds": %s, "ok": "%s", "per_round_jobs_per_s": [%s]}' \
            "${best[$1]}" "$(rate "$1")" "${secs[$1]}" "${ok[$1]}" "${per_round[$1]}"
    }
    cat >"$json" <<EOF
{"benchmark": "judge_throughput", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "kernel": "$(uname -r)",
 "nproc": $(nproc), "jobs": $jobs, "rounds": $rounds, "parallel": $par, "workload": "$workload",
 "loadavg_before": "$load_before", "loadavg_after": "$load_after",
 "drover": $(fan drover), "drover_per_job_medians_ms": ${summary:-null},
 "bwrap": $(fan bwrap),
 "bwrap_reference": $([ "$reference" = 1 ] && fan plain || echo null),
 "ratio_drover_over_bwrap_best": $ratio, "ratio_drover_over_bwrap_all": $ratio_all}
EOF
fi
