#!/usr/bin/env bash
# Starts and stops a private single-node Slurm cluster (munged, slurmctld, slurmd) kept in one directory, for tests.
#
#   slurm.sh start DIR   prints "export SLURM_CONF=DIR/slurm.conf" (also in DIR/env) once the node is idle
#   slurm.sh stop DIR    cancels the cluster's jobs, stops its daemons; DIR and its logs stay for the caller
#
# Nothing under /etc is read or written: the daemons and every client command find the cluster
# through SLURM_CONF (or -f), and the conf names the cluster's own munge socket (AuthInfo), so the
# system's munge key, socket and slurm.conf are never used. Each start picks its own TCP ports, so
# several clusters (parallel test runs, a system slurm) can coexist on one machine. Daemons are only
# signalled by the pids recorded in DIR, after checking that each is still that daemon run on DIR.
# Exit codes: 0 done, 1 failure (a one-line reason, then the daemon's last output, on stderr),
# 77 cannot run here (slurm or munge not installed, or not root), which ctest can count as a skip.
# DROVER_SLURM_CPUS=N declares N CPUs on the node (default: the machine's), to run more tasks at once.
set -u
export LC_ALL=C

die() { echo "slurm.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] && { [ "$1" = start ] || [ "$1" = stop ]; } || die "usage: slurm.sh start|stop DIR"
for b in munged munge slurmctld slurmd sbatch squeue sinfo scancel; do
  command -v "$b" >/dev/null 2>&1 || { echo "slurm.sh: $b is not installed (apt-get install slurm-wlm munge)" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "slurm.sh: must run as root (SlurmUser=root)" >&2; exit 77; }
[ "$1" = stop ] && [ ! -d "$2" ] && exit 0   # nothing was started there
dir=$(mkdir -p "$2" && cd "$2" && pwd -P) || die "cannot create $2"
case $dir in *[[:space:]]*) die "slurm.conf cannot hold a path with spaces: $dir" ;; esac
export SLURM_CONF=$dir/slurm.conf
daemons="slurmd slurmctld munged"   # each one's pid is in DIR/NAME.pid

# A test runner waits until nobody holds its pipes: close whatever descriptors the caller passed
# beyond 0-2 (255 is bash's own, the script), so that the daemons do not keep them open for ever.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ] && eval "exec $fd>&-" 2>/dev/null
done

# The recorded pid of daemon $1 if that process is alive and still ours, i.e. still that program
# with DIR in its arguments: the pid may have been reused since (a crashed daemon, a rebooted
# machine), and a stranger must never be signalled.
ours() {
  local pid argv
  pid=$(cat "$dir/$1.pid" 2>/dev/null) || return 1
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  argv=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  case $argv in "$1 "*"$dir/"* | */"$1 "*"$dir/"*) echo "$pid" ;; *) return 1 ;; esac
}

# Polls the shell condition $2 every 0.1 s for up to $1 seconds.
wait_for() {
  local i
  for i in $(seq $(($1 * 10))); do eval "$2" && return 0; sleep 0.1; done
  return 1
}

# SIGTERM to the named daemons at once (each takes 1-2 s to wind down), 10 s of grace, then SIGKILL.
terminate() {
  local d pid pids="" sig
  for d in "$@"; do pid=$(ours "$d") && pids="$pids $pid"; done
  [ -n "$pids" ] || return 0
  for sig in TERM KILL; do
    kill -"$sig" $pids 2>/dev/null
    wait_for 10 '! kill -0 $pids 2>/dev/null' && return 0   # kill -0 succeeds while any is alive
    echo "slurm.sh: still running 10 s after SIG$sig:$pids" >&2
  done
  return 1
}

# slurmstepd processes of this cluster: they hold its slurmd's log open, which tells them from
# those of another cluster (slurmstepd double-forks away from slurmd, and its name says nothing
# of its cluster). One find rather than a readlink per descriptor: forks cost 15 ms on this VM.
steps() {
  find /proc/[0-9]*/fd -lname "$dir/slurmd.log" 2>/dev/null | cut -d/ -f3 | sort -un |
    grep -vxF "$(ours slurmd || echo none)"
}

# The pids given and all their descendants, from the parent pids in /proc/*/stat (the command
# name, in parentheses, may hold spaces: the fields are counted after its closing one).
tree() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots=" $* " '
    { pid = $1; sub(/.*\) /, ""); parent[pid] = $2 }
    END { for (p in parent) { q = p; while (q + 0 > 1 && index(roots, " " q " ") == 0) q = parent[q]
                              if (q + 0 > 1) print p } }'
}

stop() {
  local ids pids left=0 d
  if ours slurmctld >/dev/null; then
    # Cancel every job (array jobs by their array id), then wait while slurmd delivers SIGTERM,
    # waits KillWait, sends SIGKILL and reports the end.
    ids=$(squeue -h -o %F 2>/dev/null | sort -u)
    [ -n "$ids" ] && scancel $ids 2>/dev/null
    wait_for 30 '[ -z "$(squeue -h -o %i 2>/dev/null)" ]' || echo "slurm.sh: jobs still listed 30 s after scancel" >&2
  fi
  # slurmstepd outlives its slurmd by design (a restarted slurmd reattaches to running steps), so
  # one left over (a job that would not end, a dead slurmctld) would run on with its job: after a
  # few seconds for those just finishing, kill it with its processes, and report it.
  wait_for 5 '[ -z "$(steps)" ]' || {
    pids=$(tree $(steps))
    echo "slurm.sh: job steps left running, killing them and their processes:" $pids >&2
    kill -KILL $pids 2>/dev/null
    left=1
  }
  terminate $daemons || left=1
  for d in $daemons; do ours "$d" >/dev/null && { echo "slurm.sh: $d is still running" >&2; left=1; }; done
  return $left
}

# Start failed: say why, show the end of the daemon's stderr (with -D slurm copies its log there,
# and errors from before the log file is opened are only there), take down what was started.
fail() {
  echo "slurm.sh: $1" >&2
  [ -s "$dir/${2:-none}" ] && { echo "--- tail of $dir/$2:" >&2; tail -n 20 "$dir/$2" >&2; }
  stop >/dev/null 2>&1
  exit 1
}

# Two distinct TCP ports in no socket's use (from /proc: no tool needed), below the kernel's
# ephemeral range, where outgoing connections could take them before slurm binds them.
free_ports() {
  local used p picked=""
  used=" $(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | tr '\n' ' ') "
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    case $used in *" $(printf %04X "$p") "*) continue ;; esac
    [ "$p" = "$picked" ] && continue
    [ -n "$picked" ] && { echo "$picked $p"; return 0; }
    picked=$p
  done
  return 1
}

start() {
  local d ports hw host node=drovernode
  for d in $daemons; do ours "$d" >/dev/null && die "a cluster already runs in $dir ($d)"; done
  # What an earlier start left (state, spool, logs), so that the logs tell of this run only.
  for d in $daemons; do rm -f "$dir/$d.pid" "$dir/$d.run.pid" "$dir/$d.log" "$dir/$d.out"; done
  rm -rf "$dir/state" "$dir/spool" "$dir/munge.sock" "$dir/munge.sock.lock" "$dir/munge.key"
  mkdir -p "$dir/state" "$dir/spool" || die "cannot write in $dir"
  chmod 0755 "$dir"   # munged refuses a key or socket in a directory others may write to

  # munge: a key of its own (root's, 0400, as munged insists) and a socket of its own, so the
  # cluster neither needs nor trusts the system's munge. In the foreground munged logs to stderr.
  head -c 1024 /dev/urandom >"$dir/munge.key" && chmod 0400 "$dir/munge.key" || die "cannot write the munge key"
  setsid munged --foreground --force --socket="$dir/munge.sock" --key-file="$dir/munge.key" \
    --pid-file="$dir/munged.run.pid" --seed-file="$dir/munged.seed" </dev/null >"$dir/munged.log" 2>&1 &
  echo $! >"$dir/munged.pid"
  wait_for 10 'munge -n -S "$dir/munge.sock" 2>/dev/null | unmunge -S "$dir/munge.sock" >/dev/null 2>&1' ||
    fail "munged does not answer on $dir/munge.sock" munged.log

  ports=$(free_ports) || fail "no free TCP port found"
  # The node as slurmd sees it (-C: CPUs, sockets, cores, threads), or with the CPUs asked for,
  # under a fixed name given to slurmd with -N so that any hostname will do; the controller's
  # name must still be the hostname, which slurmctld checks.
  host=$(hostname -s)
  hw=$(slurmd -C | sed -n 's/^NodeName=[^ ]* \(CPUs=.*\) RealMemory=.*/\1/p')
  [ -n "${DROVER_SLURM_CPUS:-}" ] && hw="CPUs=$DROVER_SLURM_CPUS"
  [ -n "$hw" ] || fail "slurmd -C did not tell the node's CPUs"
  : >"$dir/plugstack.conf"   # no SPANK plugins (the default list is in /etc)
  cat >"$SLURM_CONF" <<EOF
# Written by tests/cluster/slurm.sh: a private single-node cluster, all of it under $dir.
ClusterName=drovertest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports% *}
SlurmdPort=${ports#* }
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.run.pid
SlurmdPidFile=$dir/slurmd.run.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
PlugStackConfig=$dir/plugstack.conf
MailProg=/bin/true
MpiDefault=none
# No cgroup at all (no cgroup.conf is read): processes are tracked through /proc, tasks not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# The declared CPUs hold even where the hardware has fewer (DROVER_SLURM_CPUS).
SlurmdParameters=config_overrides
MaxArraySize=100001
MaxJobCount=200000
# Pending jobs (array tasks waiting for a CPU) are tried within a second of one ending, not 3 s.
SchedulerParameters=batch_sched_delay=0
# Cancelling a job: SIGCONT and SIGTERM to all its processes, SIGKILL KillWait seconds later.
KillWait=5
ReturnToService=2
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

  # In the foreground (-D) behind setsid: the recorded pid is the daemon itself, in a session of
  # its own so that a Ctrl-C to the test does not reach it; its output goes to files, since a test
  # runner waits for its pipes to close. -c: no state recovered from an earlier run.
  setsid slurmctld -D -c -f "$SLURM_CONF" </dev/null >"$dir/slurmctld.out" 2>&1 &
  echo $! >"$dir/slurmctld.pid"
  wait_for 20 '! ours slurmctld >/dev/null || sinfo -h >/dev/null 2>&1' && ours slurmctld >/dev/null ||
    fail "slurmctld did not come up" slurmctld.out
  setsid slurmd -D -N "$node" -f "$SLURM_CONF" </dev/null >"$dir/slurmd.out" 2>&1 &
  echo $! >"$dir/slurmd.pid"
  wait_for 60 '! ours slurmd >/dev/null || [ "$(sinfo -h -n $node -o %T 2>/dev/null)" = idle ]' &&
    ours slurmd >/dev/null || fail "node $node is not idle: $(sinfo -h -n $node -o '%T %E' 2>&1)" slurmd.out
  echo "export SLURM_CONF=$SLURM_CONF" | tee "$dir/env"
}

"$1"
