#!/bin/sh
# judge.sh PROBLEM_DIR SUBMISSION...: judges untrusted scripts (.sh, and .py when
# /usr/bin/python3 exists) on every test PROBLEM_DIR/tests/NAME.in (expected: NAME.out), each
# run in `drover parallel --sandbox` with limits, and prints a verdict table:
#   AC accepted, WA wrong answer, TLE time limit, MLE memory limit, RE runtime error,
#   OLE output limit, JE judge error (the job could not start), -- not judged.
#
# Environment: DROVER (default: build/tools/drover of this repository), JUDGE_TIMEOUT (2),
# JUDGE_MEMORY (256M), JUDGE_PIDS (64), JUDGE_CPU_TIME (none), JUDGE_MAX_OUTPUT (1M),
# JUDGE_JOBS (drover's default: one per CPU), JUDGE_HIDE (more host directories to hide from
# the submissions, blank-separated), JUDGE_DETAILS=1 (one line per run after the table, with
# the submission's stderr).
#
# Exit status: 0 judged (whatever the verdicts), 1 some run could not be judged (JE), 2 usage.
#
# Only POSIX tools (sh, awk, sed, grep, cp, mktemp) read drover's JSON lines. Outputs are
# compared here, outside the sandbox: the expected outputs never enter it, and the problem
# directory is hidden under an empty tmpfs inside, so a submission cannot read the answers.
# Comparison: line by line, trailing blanks (space, tab, CR) of each line and trailing empty
# lines ignored; text outputs only (drover's JSON replaces invalid UTF-8).
set -u
umask 077

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
drover=${DROVER:-$repo/build/tools/drover}
timeout=${JUDGE_TIMEOUT:-2}
memory=${JUDGE_MEMORY:-256M}
pids=${JUDGE_PIDS:-64}
max_output=${JUDGE_MAX_OUTPUT:-1M}
python=/usr/bin/python3

die() { echo "judge: $*" >&2; exit 2; }

[ $# -ge 2 ] || die "usage: judge.sh PROBLEM_DIR SUBMISSION..."
[ -x "$drover" ] || die "no drover at $drover (build the repository, or set DROVER)"
problem=$1
shift
[ -d "$problem/tests" ] || die "$problem/tests: not a directory"
problem_real=$(cd "$problem" && pwd -P) || exit 2
tests_real=$(cd "$problem/tests" && pwd -P) || exit 2
[ "$problem_real" != / ] || die "the problem directory cannot be /"

# Everything the run needs lives in one private directory, removed on every way out:
#   box/      bound read-only at /tmp/judge in every job: run-one.sh, sub/S.EXT, in/T.in
#   tests     T, name, expected output (host path)   subs  S, name, file or "-", why not
#   jobs      drover's input lines                   results  drover's JSON lines
stage=$(mktemp -d "${TMPDIR:-/tmp}/drover-judge.XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$stage"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$stage/box" "$stage/box/sub" "$stage/box/in" || exit 2
cp "$here/run-one.sh" "$stage/box/run-one.sh" || exit 2
: > "$stage/tests"
: > "$stage/subs"
: > "$stage/jobs"

t=0
for f in "$problem"/tests/*.in; do
    [ -f "$f" ] || continue
    name=${f##*/}
    name=${name%.in}
    expected=$tests_real/$name.out
    if [ ! -f "$expected" ]; then
        echo "judge: $name: no $name.out, test skipped" >&2
        continue
    fi
    t=$((t + 1))
    cp "$f" "$stage/box/in/$t.in" || exit 2
    printf '%s\t%s\t%s\n' "$t" "$name" "$expected" >> "$stage/tests"
done
[ "$t" -gt 0 ] || die "$problem/tests: no NAME.in with its NAME.out"

s=0
for f in "$@"; do
    s=$((s + 1))
    name=${f##*/}
    why=
    case $f in
        *.sh) ext=sh ;;
        *.py) ext=py; [ -x "$python" ] || why="no $python" ;;
        *) ext=; why="not .sh or .py" ;;
    esac
    if [ -z "$why" ] && { [ ! -f "$f" ] || [ ! -r "$f" ]; }; then why="cannot read it"; fi
    if [ -n "$why" ]; then
        echo "judge: $name: not judged: $why" >&2
        printf '%s\t%s\t-\t%s\n' "$s" "$name" "$why" >> "$stage/subs"
        continue
    fi
    cp "$f" "$stage/box/sub/$s.$ext" || exit 2
    printf '%s\t%s\t%s\t\n' "$s" "$name" "$s.$ext" >> "$stage/subs"
    i=1
    while [ "$i" -le "$t" ]; do
        echo "/tmp/judge/sub/$s.$ext /tmp/judge/in/$i.in" >> "$stage/jobs"
        i=$((i + 1))
    done
done
# The jobs run under ids that own nothing here (as root: a range of host ids of their own),
# and they take the bind's source themselves: they may pass through the stage (not list it)
# and read the box, nothing else of it.
chmod 711 "$stage" && chmod -R a+rX "$stage/box" || exit 2

# Host directories the submissions must not read, each under an empty 4 KiB tmpfs: the
# problem (its answers), its tests if they live elsewhere, your home, and JUDGE_HIDE. One
# inside another is hidden with it (a mount point cannot be made in the empty tmpfs); the
# host's /tmp is hidden by the sandbox's own.
hide_list=
hide() {
    case $1 in
        /) die "cannot hide /" ;;
        /tmp | /tmp/*) return 0 ;;
        *:*) die "$1: a directory to hide cannot have ':' in its name" ;;
    esac
    hide_list="$hide_list
$1"
}
hide "$problem_real"
hide "$tests_real"
if [ -n "${HOME:-}" ] && [ -d "$HOME" ]; then
    home_real=$(cd "$HOME" && pwd -P) && hide "$home_real"
fi
for d in ${JUDGE_HIDE:-}; do
    [ -d "$d" ] || die "JUDGE_HIDE: $d: not a directory"
    hide "$(cd "$d" && pwd -P)"
done
set --
set -f
old_ifs=$IFS
IFS='
'
for d in $hide_list; do
    inside=
    for o in $hide_list; do
        case $d in "$o"/*) inside=1 ;; esac
    done
    case "
$*
" in *"
$d:size=4k,mode=0555
"*) inside=1 ;; esac
    [ -n "$inside" ] || set -- "$@" --tmpfs "$d:size=4k,mode=0555"
done
IFS=$old_ifs
set +f
[ -n "${JUDGE_JOBS:-}" ] && set -- "$@" -j "$JUDGE_JOBS"
[ -n "${JUDGE_CPU_TIME:-}" ] && set -- "$@" --cpu-time "$JUDGE_CPU_TIME"

rc=0
if [ -s "$stage/jobs" ]; then
    "$drover" parallel --sandbox --json --no-progress \
        --timeout "$timeout" --memory-max "$memory" --pids-max "$pids" \
        --max-output "$max_output" --on-max-output kill \
        --ro-bind "$stage/box:/tmp/judge" "$@" \
        --clearenv --setenv PATH=/usr/local/bin:/usr/bin:/bin --setenv HOME=/tmp \
        --setenv LC_ALL=C.UTF-8 --chdir /tmp \
        -- /bin/sh /tmp/judge/run-one.sh {} \
        < "$stage/jobs" > "$stage/results" 2> "$stage/drover.err"
    rc=$?
else
    : > "$stage/results"
    : > "$stage/drover.err"
fi
# drover's status counts failed jobs (wrong answers are failures too); 125 and up: drover
# itself failed, was stopped, or was given bad usage (255).
if [ "$rc" -ge 125 ]; then
    cat "$stage/drover.err" >&2
    echo "judge: drover parallel failed (status $rc)" >&2
    exit 1
fi

# One line per run: S T CELL, then details (drover's verdict, wall ms, peak bytes, status,
# the submission's stderr). Decoding: inside a JSON string, \\ and \" become the bytes \001
# and \002, after which the line splits on '"' into strings (even fields) and the rest (odd
# fields). The expected output is encoded the same way instead of the output being decoded,
# so that a hostile output costs linear time.
awk -F '\t' -v memory="$memory" -v tests="$stage/tests" '
function bytes(s,   n, u) {
    n = s + 0
    u = toupper(s); gsub(/[^KMGT]/, "", u)
    if (u == "K") n *= 1024; else if (u == "M") n *= 1048576
    else if (u == "G") n *= 1073741824; else if (u == "T") n *= 1099511627776
    return n
}
function parse(line,   parts, n, i, depth, seg, key, rest) {
    split("", F)
    gsub(/\\\\/, BS, line)
    gsub(/\\"/, QU, line)
    n = split(line, parts, "\"")
    depth = 0
    for (i = 1; i <= n; i++) {
        if (i % 2 == 1) {
            seg = parts[i]
            depth += gsub(/[{]/, "{", seg) - gsub(/[}]/, "}", seg)
            continue
        }
        if (depth != 1 || i == n || parts[i + 1] !~ /^[ \t]*:/) continue
        key = parts[i]
        rest = parts[i + 1]
        sub(/^[ \t]*:[ \t]*/, "", rest)
        if (rest == "" && i + 2 <= n) {
            F[key] = parts[i + 2]
            i += 2
        } else {
            sub(/[ \t]*[,}].*$/, "", rest)
            F[key] = rest
            seg = parts[i + 1]
            depth += gsub(/[{]/, "{", seg) - gsub(/[}]/, "}", seg)
            i += 1
        }
    }
}
# A JSON string (as parse leaves it) as lines: tabs and CRs decoded, trailing blanks and
# empty lines dropped; the number of lines.
function out_lines(s, L,   n, i) {
    n = split(s, L, /\\n/)
    for (i = 1; i <= n; i++) {
        if (index(L[i], "\\")) { gsub(/\\t/, "\t", L[i]); gsub(/\\r/, "\r", L[i]) }
        sub(/[ \t\r]+$/, "", L[i])
    }
    while (n > 0 && L[n] == "") n--
    return n
}
# The expected output of test t, encoded as a JSON string would be, into E[t, i].
function load(t,   file, line, n, i, c, out, parts, m, j) {
    file = EXPECTED[t]
    n = 0
    while ((getline line < file) > 0) {
        if (line ~ CTRL) {  # rare: a character at a time
            out = ""
            m = length(line)
            for (j = 1; j <= m; j++) {
                c = substr(line, j, 1)
                if (c == "\\") out = out BS
                else if (c == "\"") out = out QU
                else if (c ~ CTRL) out = out (c == BSP ? "\\b" : c == FF ? "\\f" : sprintf("\\u%04x", ORD[c]))
                else out = out c
            }
            line = out
        } else {
            gsub(/\\/, BS, line)
            gsub(/"/, QU, line)
        }
        sub(/[ \t\r]+$/, "", line)
        E[t, ++n] = line
    }
    close(file)
    while (n > 0 && E[t, n] == "") n--
    EN[t] = n
    LOADED[t] = 1
}
function same(t, s,   L, n, i) {
    if (!(t in LOADED)) load(t)
    n = out_lines(s, L)
    if (n != EN[t]) return 0
    for (i = 1; i <= n; i++) if ((L[i] "") != (E[t, i] "")) return 0  # as strings: "3.0" is not "3"
    return 1
}
# The placeholders back to \ and ".
function plain(s,   P, m, j, out) {
    m = split(s, P, BS); out = P[1]; for (j = 2; j <= m; j++) out = out "\\" P[j]
    m = split(out, P, QU); out = P[1]; for (j = 2; j <= m; j++) out = out "\"" P[j]
    return out
}
# The first lines of a JSON string, for people.
function show(s,   L, n, i, out, m, line, P, j, k) {
    n = split(s, L, /\\n/)
    out = ""
    for (i = 1; i <= n && i <= 12; i++) {
        line = substr(L[i], 1, 160)
        gsub(/\\t/, "\t", line)
        line = plain(line)
        if (line != "" || i < n) out = out "      | " line "\n"
    }
    if (n > 12) out = out "      | ...\n"
    return out
}
BEGIN {
    BS = sprintf("%c", 1); QU = sprintf("%c", 2); BSP = sprintf("%c", 8); FF = sprintf("%c", 12)
    for (i = 1; i < 32; i++) if (i != 9 && i != 10 && i != 13) { ORD[sprintf("%c", i)] = i; cls = cls sprintf("%c", i) }
    CTRL = "[" cls "]"
    limit = bytes(memory)
    while ((getline line < tests) > 0) { split(line, f, "\t"); EXPECTED[f[1]] = f[3] }
    close(tests)
}
{
    parse($0)
    n = split(F["input"], w, " ")
    s = w[1]; sub(/^.*\//, "", s); sub(/\..*$/, "", s)
    t = w[2]; sub(/^.*\//, "", t); sub(/\..*$/, "", t)
    v = F["verdict"]
    if (v == "ok") cell = (F["stdout_truncated"] == "true" ? "OLE" : same(t, F["stdout"]) ? "AC" : "WA")
    else if (v == "timeout" || v == "cpu-time") {
        # At its memory limit when the time ran out: the kernel was reclaiming, not running it.
        cell = (F["usage_source"] == "cgroup" && limit > 0 && F["peak_memory_bytes"] + 0 >= limit) ? "MLE" : "TLE"
    }
    else if (v == "memory") cell = "MLE"
    else if (v == "output") cell = "OLE"
    else if (v == "exit" || v == "signal" || v == "pids") {
        cell = "RE"
        # Without a cgroup the memory limit is RLIMIT_AS: a failed allocation is the job s own
        # failure and there is no peak to look at, so a failed run that says it ran out of
        # memory is taken for MLE.
        if (F["usage_source"] != "cgroup" && limit > 0 && F["stderr"] ~ /out of memory|[Cc]annot allocate memory|MemoryError|bad_alloc/) cell = "MLE"
    } else cell = "JE"
    status = plain(F["status"])
    printf "%s %s %s %s %s %s %s\n", s, t, cell, v, F["wall_ms"], F["peak_memory_bytes"], status
    err = show(F["stderr"])
    if (err != "") printf "%s", err
}' "$stage/results" > "$stage/verdicts" || { echo "judge: reading drover's results failed" >&2; exit 1; }

# The table: a row per submission, a column per test, then a summary.
awk -F '\t' -v subs="$stage/subs" -v verdicts="$stage/verdicts" -v details="${JUDGE_DETAILS:-}" '
BEGIN {
    while ((getline line < verdicts) > 0) {
        if (line ~ /^      \| /) { if (last != "") ERR[last] = ERR[last] line "\n"; continue }
        split(line, f, " ")
        CELL[f[1], f[2]] = f[3]
        last = f[1] SUBSEP f[2]
        d = line; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", d); DETAIL[last] = d
    }
}
NR == FNR { T++; TNAME[T] = $2; next }
{ S++; SNAME[S] = $2; SWHY[S] = $4 }
END {
    w = length("submission")
    for (s = 1; s <= S; s++) if (length(SNAME[s]) > w) w = length(SNAME[s])
    line = sprintf("%-" w "s", "submission")
    for (t = 1; t <= T; t++) { cw[t] = length(TNAME[t]) < 3 ? 3 : length(TNAME[t]); line = line sprintf("  %-" cw[t] "s", TNAME[t]) }
    print line "  result"
    judge_error = 0
    for (s = 1; s <= S; s++) {
        line = sprintf("%-" w "s", SNAME[s])
        passed = 0
        for (t = 1; t <= T; t++) {
            c = SWHY[s] != "" ? "--" : ((s, t) in CELL) ? CELL[s, t] : "JE"
            if (c == "AC") passed++
            if (c == "JE") judge_error = 1
            if (c != "--") count[c]++
            line = line sprintf("  %-" cw[t] "s", c)
        }
        result = SWHY[s] != "" ? "not judged (" SWHY[s] ")" : passed == T ? "accepted" : passed "/" T " passed"
        print line "  " result
    }
    print ""
    summary = ""
    split("AC WA TLE MLE RE OLE JE", order, " ")
    for (i = 1; i <= 7; i++) if (order[i] in count) summary = summary (summary == "" ? "" : ", ") count[order[i]] " " order[i]
    judged = 0
    for (s = 1; s <= S; s++) if (SWHY[s] == "") judged++
    accepted = 0
    for (s = 1; s <= S; s++) {
        ok = SWHY[s] == ""
        for (t = 1; t <= T && ok; t++) if (CELL[s, t] != "AC") ok = 0
        accepted += ok
    }
    printf "%d submissions judged on %d tests (%s runs): %s; %d accepted\n", judged, T, judged * T, summary == "" ? "nothing run" : summary, accepted
    if (details != "" && details != "0") {
        print ""
        for (s = 1; s <= S; s++) for (t = 1; t <= T; t++) if ((s, t) in CELL) {
            printf "%s %s: %s\n", SNAME[s], TNAME[t], DETAIL[s, t]
            printf "%s", ERR[s, t]
        }
    }
    exit judge_error
}' "$stage/tests" "$stage/subs"
status=$?
if [ "$status" -ne 0 ] && [ -s "$stage/drover.err" ]; then
    cat "$stage/drover.err" >&2
fi
exit "$status"
