# Accepted (python3): reads each pair and prints the sum.
import sys

for line in sys.stdin:
    a, b = line.split()
    print(int(a) + int(b))
