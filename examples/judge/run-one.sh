#!/bin/sh
# run-one.sh SUBMISSION INPUT: the job judge.sh runs inside `drover parallel --sandbox`.
#
# Runs SUBMISSION (a .sh or .py file) with INPUT on its stdin; the submission's stdout and
# stderr are the job's. Exits with the submission's status (128+N if a signal N ended it).
# drover parallel hands the input line "SUBMISSION INPUT" over as one argument, so the
# arguments are split here (judge.sh's staged paths have no blanks).
#
# This script is PID 1 of the job's pid namespace, and the submission is its child: the
# submission keeps ordinary signal semantics (a PID 1 ignores signals it has no handler for,
# `kill -9 1` from inside included), and when this script exits, the kernel ends whatever the
# submission left behind. It compares nothing: the expected output never enters the sandbox.
set -f
set -- $*
if [ $# -ne 2 ]; then
    echo "usage: run-one.sh SUBMISSION INPUT" >&2
    exit 125
fi
submission=$1
input=$2
case $submission in
    *.sh) /bin/sh "$submission" < "$input" ;;
    *.py) /usr/bin/python3 -I -B "$submission" < "$input" ;;
    *) echo "run-one.sh: no interpreter for $submission" >&2; exit 125 ;;
esac
exit $?
