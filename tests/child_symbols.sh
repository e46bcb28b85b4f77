#!/bin/sh
# The child between clone3 and execve (src/spawn/child.cpp, child_fs.cpp) calls no glibc wrapper
# that is a cancellation point: those write to the calling thread's TCB, which on the
# posix_spawn path is the parent thread's (src/spawn/child_sys.hpp makes the raw calls).
# Nor does it call a wrapper a sanitizer records a stack in (dup2, socket, sigaction,
# sigprocmask, prctl): recording can need memory that an RLIMIT_AS the child has already set refuses,
# and TSan then kills the child in setup.
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
        grep -E '^(read|write|open|open64|openat|openat64|close|pread|pread64|fcntl|fcntl64|nanosleep|usleep|sleep|waitpid|wait4|waitid|dup|dup2|dup3|socket|sigaction|sigprocmask|pthread_sigmask|ioctl|prctl)$')
  if [ -n "$bad" ]; then
    echo "$o calls wrappers it must not (cancellation points or sanitizer-recorded): $(echo $bad)"
    status=1
  fi
done
if [ "$found" -ne 2 ]; then
  echo "expected child.cpp.o and child_fs.cpp.o among the objects, found $found"
  exit 1
fi
[ "$status" -eq 0 ] && echo "child objects: raw system calls only"
exit $status
