#!/bin/sh
# The child between clone3 and execve (src/spawn/child.cpp, child_fs.cpp) calls no glibc wrapper
# that is a cancellation point: those write to the calling thread's TCB, which on the
# posix_spawn path is the parent thread's (src/spawn/child_sys.hpp makes the raw calls).
# $1: the core library's object files, separated by ';'.
found=0
status=0
for o in $(printf '%s' "$1" | tr ';' ' '); do
  case "$o" in
    */spawn/child.cpp.o | */spawn/child_fs.cpp.o) ;;
    *) continue ;;
  esac
  found=$((found + 1))
  bad=$(nm -u "$o" | awk '{print $NF}' | sed 's/@.*//' |
        grep -E '^(read|write|open|open64|openat|openat64|close|pread|pread64|fcntl|fcntl64|nanosleep|usleep|sleep|waitpid|wait4|waitid)$')
  if [ -n "$bad" ]; then
    echo "$o calls cancellation points: $(echo $bad)"
    status=1
  fi
done
if [ "$found" -ne 2 ]; then
  echo "expected child.cpp.o and child_fs.cpp.o among the objects, found $found"
  exit 1
fi
[ "$status" -eq 0 ] && echo "child objects: raw system calls only"
exit $status
