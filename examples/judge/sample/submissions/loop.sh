#!/bin/sh
# Time limit: a busy loop that would stop by itself after 8 million rounds (about 12 s of CPU
# here), then print the right answer; the 2 s limit ends it first.
i=0
while [ "$i" -lt 8000000 ]; do
    i=$((i + 1))
done
while read -r a b; do
    echo $((a + b))
done
