#!/usr/bin/env bash
# A short tour of `drover run`: the same question asked outside and inside a sandbox.
set -u
drover=${DROVER:-./build/tools/drover}
show() { printf '\n$ %s\n' "$*"; "$@"; echo "(exit $?)"; }

echo "== outside: $(hostname), pid $$, uid $(id -u), net $(readlink /proc/self/ns/net)"
show "$drover" run -Upmuin -r --hostname box --timing -- /bin/sh -c \
  'echo "hostname: $(hostname)"; echo "my pid: $$"; echo "uid: $(id -u)"; cat /proc/self/uid_map;
   echo "processes:"; ps ax -o pid=,comm=; ip -o link show lo | cut -d" " -f2,3;
   echo "net: $(readlink /proc/self/ns/net)"'
show "$drover" run --map-user 109:"$(id -u)":1 --map-group 114:"$(id -g)":1 -- id
show "$drover" run -T --boottime 86400 -- cat /proc/uptime
show "$drover" run -Um --tmpfs /mnt -- /bin/sh -c 'touch /mnt/inside && ls /mnt'
echo "host /mnt/inside exists? $(test -e /mnt/inside && echo yes || echo no)"
show "$drover" run -- /no/such/program
show "$drover" run --hostname box -- true
