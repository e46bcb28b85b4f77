#!/bin/sh
# Accepted: reads each pair and prints the sum.
while read -r a b; do
    echo $((a + b))
done
