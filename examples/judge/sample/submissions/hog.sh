#!/bin/sh
# Memory limit: keeps 320 strings of 1 MiB each (awk), which the 256 MiB limit ends. Bounded:
# about 330 MiB at most even with no limit, after which it prints the right answer, so a limit
# that failed shows as AC. (One process: a `head -c 320M /dev/zero | tail -c 320M` pipeline
# sometimes spent ~2 s of system time reclaiming at a cgroup v1 limit before the OOM kill.)
awk 'BEGIN {
    s = "x"
    while (length(s) < 1048576) s = s s
    for (n = 1; n <= 320; n++) kept[n] = s n
}' || exit 1
while read -r a b; do
    echo $((a + b))
done
