#!/usr/bin/env bash
# slurm-explore.sh: run docs/slurm.md's Slurm job-array recipe for real, on a one-node Slurm
# cluster built on this machine from Debian's packages, for `bftsim explore --shard`, then
# merge the shards and write the report.
#
#   sudo scripts/slurm-explore.sh               # from the repository root, as root
#   sudo scripts/slurm-explore.sh --teardown    # the same, then stop slurmctld, slurmd, munged
#   sudo scripts/slurm-explore.sh --stop        # only stop the daemons
#
# Environment (all optional):
#   SHARDS=4        N: the array is 0-(N-1), task I runs `explore --shard I/N`
#   SEED=1          the master seed
#   RUNS=50         runs per shard (`explore --runs`)
#   OUT=out/slurm-explore   shard-I/, merged/ and logs/ go here (relative to the repository root)
#   BFTSIM=path     use this bftsim binary instead of `cargo build --release --bin bftsim`
#   TIMEOUT=900     seconds to wait for the array before cancelling it
#   SLURM_CONF_DIR=/etc/slurm   where slurm.conf is written (Debian's default)
#
# Meant for a fresh Debian 12 / Ubuntu machine or container on which nothing else uses Slurm:
# it overwrites slurm.conf. It works without systemd (it starts the daemons itself) and
# without cgroups (proctrack/linuxproc, task/none). Exit status: 0 when the merged
# exploration has no findings, 1 when it has some (the merge's verdict), 2 on any failure.
set -euo pipefail

die() { echo "slurm-explore: error: $*" >&2; exit 2; }
log() { echo "==> $*"; }

SHARDS=${SHARDS:-4}
SEED=${SEED:-1}
RUNS=${RUNS:-50}
OUT=${OUT:-out/slurm-explore}
TIMEOUT=${TIMEOUT:-900}
SLURM_CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
SPOOL=/var/spool
LOGDIR=/var/log/slurm

teardown=0
case "${1:-}" in
  "") ;;
  --teardown) teardown=1 ;;
  --stop) teardown=2 ;;
  -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (expected --teardown, --stop or nothing)" ;;
esac

[[ $SHARDS =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive integer, not '$SHARDS'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer, not '$SEED'"
[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages and starts the Slurm daemons"

# Stop what this script starts, by the PIDs in the daemons' pid files (nothing else).
stop_daemons() {
  local pidfile pid
  for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    if [[ -s $pidfile ]] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
      log "stopping $(cat /proc/"$pid"/comm 2>/dev/null || echo "pid $pid") (pid $pid)"
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
  done
}
if [[ $teardown -eq 2 ]]; then stop_daemons; exit 0; fi

[[ -f Cargo.toml && -d sim ]] || die "run from the repository root (no Cargo.toml and sim/ here)"
ROOT=$(pwd)

# ---------------------------------------------------------------------------------------
# 1. Slurm and munge: install, configure, start, wait for an idle node.
# ---------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's postinst scripts try to start the services; without systemd that fails
  # harmlessly (policy-rc.d is not needed: invoke-rc.d just reports it cannot).
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
log "$(slurmctld -V), $(munged -V 2>&1 | awk '{print $1; exit}')"

# munge: one key shared by every node (here: one node). The package's postinst usually
# creates it; create it if not. munged must run as the munge user and own its directories.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# slurm.conf for one node that is both controller and compute node. The node name must be
# what `hostname -s` says (slurmd finds its own entry by it); NodeAddr/SlurmctldHost point
# at 127.0.0.1 only if the name does not resolve.
HOST=$(hostname -s)
ADDR=$HOST
getent hosts "$HOST" >/dev/null || ADDR=127.0.0.1
CPUS=$(nproc)
# A node whose RealMemory exceeds what slurmd measures is drained as invalid: declare 90%.
MEM=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
# select/cons_tres exists since Slurm 19.05; fall back to select/linear on older ones.
SELECT=select/cons_tres
PLUGINDIR=$(dirname "$(find /usr/lib -name select_cons_tres.so -print -quit 2>/dev/null)" 2>/dev/null || true)
if [[ -z $PLUGINDIR || $PLUGINDIR == . ]]; then SELECT=select/linear; fi

install -d -m 0755 "$SLURM_CONF_DIR" "$LOGDIR" "$SPOOL/slurmctld" "$SPOOL/slurmd"
conf=$SLURM_CONF_DIR/slurm.conf
# Daemons and commands (sbatch, squeue, scontrol, sinfo) read this file, wherever it is.
export SLURM_CONF=$conf
new=$(mktemp)
cat >"$new" <<EOF
# Written by scripts/slurm-explore.sh: a one-node cluster (controller and compute node on
# $HOST) with no cgroups, no accounting database and no systemd.
ClusterName=bftsim
SlurmctldHost=$HOST($ADDR)
# The daemons run as root: no slurm user, spool directories or key permissions to arrange.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No mail program in a container; the default (/bin/mail) is missing and logged as an error.
MailProg=/bin/true
# No cgroups: processes are tracked through /proc and tasks are not confined. This works in
# containers where the cgroup file system is read-only or absent.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=$SELECT
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# Keep finished jobs in slurmctld's memory for an hour, so "scontrol show job" still
# reports every array task's state and exit code when the array is done.
MinJobAge=3600
NodeName=$HOST NodeAddr=$ADDR CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# cgroup.conf is read only by the cgroup plugins; leave one that selects none of them.
[[ -f $SLURM_CONF_DIR/cgroup.conf ]] || echo "CgroupPlugin=autodetect" >"$SLURM_CONF_DIR/cgroup.conf"

# Restart the daemons when the configuration changed (or they are not running).
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! cmp -s "$new" "$conf" || ! running /run/slurmctld.pid || ! running /run/slurmd.pid; then
  if [[ -f $conf ]] && ! cmp -s "$new" "$conf"; then cp "$conf" "$conf.bak.$(date +%s)"; fi
  mv "$new" "$conf"
  chmod 0644 "$conf"
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if running "$pidfile"; then kill "$(cat "$pidfile")"; sleep 1; fi
  done
  log "starting slurmctld and slurmd (node $HOST, $CPUS CPUs, ${MEM} MB, $SELECT)"
  # Not systemctl: systemd is usually not PID 1 in a container. Both daemonize themselves.
  # -c: start from a clean state (no jobs left over from an earlier run of this script).
  slurmctld -c || die "slurmctld did not start: $(tail -n 5 $LOGDIR/slurmctld.log 2>/dev/null)"
  slurmd || die "slurmd did not start: $(tail -n 5 $LOGDIR/slurmd.log 2>/dev/null)"
else
  rm -f "$new"
  log "slurmctld and slurmd already running with this configuration"
fi

log "waiting for node $HOST to be idle"
state=
for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null || true)
  [[ $state == idle ]] && break
  # A node left down/drained by an earlier configuration is returned to service.
  if [[ $state == down* || $state == drain* ]]; then
    scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true
  fi
  sleep 1
done
[[ $state == idle ]] || die "node $HOST is '${state:-not known}', not idle: $(sinfo -N -l 2>&1 | tail -n 3; tail -n 5 $LOGDIR/slurmd.log $LOGDIR/slurmctld.log 2>/dev/null)"
sinfo

# ---------------------------------------------------------------------------------------
# 2. bftsim: the given binary or a release build.
# ---------------------------------------------------------------------------------------
if [[ -n ${BFTSIM:-} ]]; then
  [[ -x $BFTSIM ]] || die "BFTSIM=$BFTSIM is not an executable"
  BIN=$(readlink -f "$BFTSIM")
else
  command -v cargo >/dev/null || die "no cargo on PATH: install Rust or set BFTSIM=/path/to/bftsim"
  log "cargo build --release --bin bftsim"
  cargo build --release --bin bftsim
  BIN=$ROOT/target/release/bftsim
fi
log "bftsim: $BIN"

# ---------------------------------------------------------------------------------------
# 3. The job array: one `bftsim explore --shard I/N` per task.
# ---------------------------------------------------------------------------------------
# Results of an earlier run would make merge see stale shards: start from an empty OUT
# (but never remove / or the repository itself).
case "$(readlink -m "$OUT")" in
  /|"$ROOT"|"$(readlink -m "$ROOT/..")") die "OUT=$OUT would remove $(readlink -m "$OUT")" ;;
esac
rm -rf "$OUT"
mkdir -p "$OUT/logs"
OUT=$(readlink -f "$OUT")
batch=$OUT/explore.sbatch
last=$((SHARDS - 1))
# docs/slurm.md's recipe with `explore` for `run`. Explore exits 0 (nothing found), 1 (findings:
# a result, not a failure) or 2 (error): the task records the code in logs/ and fails
# (so Slurm marks it FAILED) only on 2 or more.
cat >"$batch" <<EOF
#!/bin/bash
#SBATCH --job-name=bftsim-explore
#SBATCH --array=0-$last
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=$OUT/logs/%x-%A_%a.out
set -u
[ "\$SLURM_ARRAY_TASK_COUNT" = "$SHARDS" ] || { echo "array has \$SLURM_ARRAY_TASK_COUNT tasks, not $SHARDS" >&2; exit 2; }
echo "task \$SLURM_ARRAY_TASK_ID/\$SLURM_ARRAY_TASK_COUNT of job \$SLURM_ARRAY_JOB_ID on \$(hostname -s)"
'$BIN' explore --seed $SEED --runs $RUNS \\
  --shard "\$SLURM_ARRAY_TASK_ID/$SHARDS" \\
  --out "$OUT/shard-\$SLURM_ARRAY_TASK_ID" --quiet --jobs 1
rc=\$?
echo "\$rc" > "$OUT/logs/task-\$SLURM_ARRAY_TASK_ID.rc"
echo "bftsim explore exited \$rc"
if [ "\$rc" -ge 2 ]; then exit "\$rc"; fi
exit 0
EOF

log "sbatch --array=0-$last: seed $SEED, $RUNS runs per shard, $SHARDS shards"
start=$(date +%s)
jobid=$(cd "$ROOT" && sbatch --parsable "$batch")
jobid=${jobid%%;*}
log "submitted array job $jobid"

# Poll until no task of the array is pending or running (or TIMEOUT passes).
while :; do
  left=$(squeue -h -j "$jobid" -o '%i %T' 2>/dev/null || true)
  [[ -z $left ]] && break
  if (( $(date +%s) - start > TIMEOUT )); then
    scancel "$jobid" || true
    die "array job $jobid not done after ${TIMEOUT}s; cancelled. Still queued: $left"
  fi
  echo "   $(date -u +%T) $(echo "$left" | awk '{n[$2]++} END {for (s in n) printf "%s=%d ", s, n[s]}')"
  sleep 5
done
elapsed=$(( $(date +%s) - start ))
log "array job $jobid done in ${elapsed}s"

# Every task's final state and exit code from slurmctld (kept by MinJobAge), then the
# explore exit code the task recorded.
failed=0
declare -A explore_rc
printf '   %-12s %-10s %-9s %s\n' task state exitcode explore
for ((i = 0; i < SHARDS; i++)); do
  info=$(scontrol -o show job "${jobid}_$i" 2>/dev/null || true)
  st=$(sed -n 's/.*JobState=\([^ ]*\).*/\1/p' <<<"$info")
  ec=$(sed -n 's/.* ExitCode=\([^ ]*\).*/\1/p' <<<"$info")
  rcfile=$OUT/logs/task-$i.rc
  rc=$(cat "$rcfile" 2>/dev/null || echo missing)
  explore_rc[$i]=$rc
  printf '   %-12s %-10s %-9s %s\n' "${jobid}_$i" "${st:-?}" "${ec:-?}" "$rc"
  if [[ ${st:-} != COMPLETED || ! $rc =~ ^[01]$ || ! -f $OUT/shard-$i/explore.json ]]; then
    failed=1
    echo "   task $i failed; its log:" >&2
    tail -n 20 "$OUT"/logs/*_"$i".out >&2 2>/dev/null || true
  fi
done
[[ $failed -eq 0 ]] || die "some array tasks failed (logs in $OUT/logs)"

# ---------------------------------------------------------------------------------------
# 4. Merge (exit 1 = findings: the verdict, not an error) and report.
# ---------------------------------------------------------------------------------------
log "bftsim merge $OUT/shard-* --out $OUT/merged"
set +e
"$BIN" merge "$OUT"/shard-* --out "$OUT/merged"
verdict=$?
set -e
[[ $verdict -le 1 ]] || die "bftsim merge failed with exit code $verdict"

log "bftsim report $OUT/merged"
report=skipped
if "$BIN" report "$OUT/merged"; then
  report=$OUT/merged/report.html
else
  echo "   bftsim report cannot read this exploration directory; report skipped" >&2
fi

findings=$(find "$OUT/merged/findings" -name '*.toml' 2>/dev/null | wc -l)
total=$(grep -c . "$OUT/merged/runs.jsonl" 2>/dev/null || echo 0)
log "summary"
cat <<EOF
   cluster   one node $HOST ($CPUS CPUs), $(slurmctld -V)
   job       array $jobid, $SHARDS tasks, done in ${elapsed}s; explore exit codes: $(for ((i = 0; i < SHARDS; i++)); do printf '%s ' "${explore_rc[$i]}"; done)
   explore   master seed $SEED, $RUNS runs per shard, $total runs merged
   findings  $findings (merge exit $verdict: $([[ $verdict -eq 0 ]] && echo "nothing found" || echo "findings"))
   output    $OUT/merged (runs.jsonl, explore.json, findings/)
   report    $report
   logs      $OUT/logs
EOF

if [[ $teardown -eq 1 ]]; then stop_daemons; fi
exit "$verdict"
