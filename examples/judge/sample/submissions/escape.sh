#!/bin/sh
# Tries to get out, to cheat and to do harm, then answers correctly: it still gets only its
# ordinary verdict (AC). Each attempt reports to stderr (shown with JUDGE_DETAILS=1); if any
# of them worked, it answers "escaped" instead, so AC in the table means all were blocked.
# None may leave a trace on the host (tests/examples/judge_test.cpp checks the files).
worked=0
try() {  # try WHAT COMMAND...: runs COMMAND, reports whether it worked
    what=$1
    shift
    if "$@" 2>/dev/null; then
        echo "escape: $what: WORKED" >&2
        worked=$((worked + 1))
    else
        echo "escape: $what: blocked" >&2
    fi
}
try "write /etc" sh -c 'echo pwned > /etc/drover-judge-escape'
try "write the host's /var/tmp" sh -c 'echo pwned > /var/tmp/drover-judge-escape'
try "write the judge's files" sh -c 'echo pwned >> /tmp/judge/run-one.sh'
try "remount / read-write" mount -o remount,rw /
try "mount a tmpfs" mount -t tmpfs none /mnt
try "sysrq" sh -c 'echo b > /proc/sysrq-trigger'
try "lower a sysctl" sh -c 'echo 1 > /proc/sys/kernel/pid_max'
# pid 1 is the job's own init (run-one.sh), which ignores it; were it killed, so would we be.
try "SIGKILL pid 1" sh -c 'kill -9 1 && sleep 0.2 && ! kill -0 1'
try "SIGKILL every process it can see" kill -9 -1
try "see host processes" sh -c '[ "$(ls -d /proc/[0-9]* | wc -l)" -gt 10 ]'
# The expected outputs: the judge hides the host's problem directory under an empty tmpfs,
# which the job's mount table names; look there (and in every other tmpfs) for them.
read_answers() {
    for d in $(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "tmpfs") print $5; break } }' /proc/self/mountinfo); do
        for f in "$d"/tests/*.out "$d"/*.out; do
            [ -r "$f" ] && cat "$f" > /dev/null && return 0
        done
    done
    return 1
}
try "read the expected outputs" read_answers
# /tmp is the job's own tmpfs: this works, and the host's /tmp never sees it.
echo pwned > /tmp/drover-judge-escape
while read -r a b; do
    if [ "$worked" -eq 0 ]; then echo $((a + b)); else echo escaped; fi
done
