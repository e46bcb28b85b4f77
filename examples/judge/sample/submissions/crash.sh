#!/bin/sh
# Runtime error: prints the first sum, then divides by zero (sh exits with status 2).
read -r a b
echo $((a + b))
echo $((a / 0))
