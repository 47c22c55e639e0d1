#!/usr/bin/env bash
# Runs cluster_configs/slurm/*.sbatch on a one-node Slurm started here (slurm-local recipe); exit 77 = skipped.
#   slurm_test.sh MESHFLOW_RUN HELLO_DISTRIBUTED SOURCE_DIR
# MESHFLOW_SLURM_DEBUG=DIR: the daemons log at debug level, srun is verbose, and the logs and job
# outputs are copied to DIR before the temporary folder goes (for finding out why a job is slow).
#
# Note [Slurm test budget]: ctest SIGKILLs this script at its TIMEOUT (300 s), and SIGKILL skips the
# EXIT trap, which once left slurmctld, slurmd and munged running for good. So (1) the whole test
# has a budget of BUDGET_S, below that timeout: each sbatch gets what is left of it (at most
# JOB_CAP_S), a job that runs out is diagnosed (Slurm's view of it, the daemons' logs, its processes)
# and ends the test, and the trap always runs; (2) a watchdog in its own session (setsid, parent
# gone, so neither ctest's kill of the process tree nor of the process group reaches it) stops the
# daemons and removes the folder if this script vanishes without having done so; it exits once the
# folder is gone. Everything the test started carries SLURM_CONF=$D/slurm.conf in its environment
# (the daemons, slurmstepd, the jobs' processes), which is how both find them.
set -u
BUDGET_S=240        # the whole test, start to cleanup (ctest's TIMEOUT is 300)
JOB_CAP_S=150       # one sbatch --wait at most
RESERVE_S=25        # kept back for the diagnosis (5 s a command) and the cleanup (2-3 s)

# The processes whose environment has SLURM_CONF=$D/slurm.conf, but this script (pure bash: a
# helper process would carry it too; this script's own environment is the one it started with).
our_pids() {
  local p pid kv
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
    while IFS= read -r -d '' kv; do
      [ "$kv" = "SLURM_CONF=$D/slurm.conf" ] && { echo "$pid"; break; }
    done 2>/dev/null <"$p/environ"
  done
}

signal_ours() {  # signal, then PIDs to leave alone
  local sig=$1 pid
  shift
  for pid in $(our_pids); do
    [[ " $* " == *" $pid "* ]] || kill -s "$sig" "$pid" 2>/dev/null
  done
}

daemon_pids() {  # from their pid files
  local f
  for f in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
    [ -s "$f" ] && echo "$(<"$f")"
  done
}

# True while one of the processes exists and is not a zombie (pid 1 may reap them late).
any_alive() {
  local pid s
  for pid; do
    s=$(proc_id "$pid")
    [ -n "$s" ] && [ "${s#* }" != Z ] && return 0
  done
  return 1
}

# Stops the daemons (SIGTERM, SIGKILL after 2 s: slurmctld takes over 5 s to end on SIGTERM, and
# its state is thrown away) and SIGKILLs all else this test started (slurmstepd ignores SIGTERM,
# and the jobs are thrown away too).
stop_all() {
  local daemons
  daemons=$(daemon_pids)
  [ -n "$daemons" ] && kill -TERM $daemons 2>/dev/null
  signal_ours KILL $daemons
  for _ in $(seq 1 20); do
    any_alive $daemons || break
    sleep 0.1
  done
  [ -n "$daemons" ] && kill -KILL $daemons 2>/dev/null
  signal_ours KILL  # whatever started meanwhile (a step slurmd was launching)
}

# "start time state" of a process, empty when there is none.
proc_id() {
  local s
  read -r s 2>/dev/null <"/proc/$1/stat" || return 0
  s=${s##*) }
  set -- $s
  echo "${20} $1"
}

if [ "${1:-}" = --watchdog ]; then  # --watchdog D PID "START_TIME STATE"
  D=$2 pid=$3 started=${4% *}
  while [ -d "$D" ]; do
    now=$(proc_id "$pid")
    if [ "${now% *}" != "$started" ] || [ "${now#* }" = Z ]; then  # gone (a zombie until ctest reaps it)
      stop_all
      rm -rf "$D"
      exit 0
    fi
    sleep 1
  done
  exit 0
fi

RUN=$1 HELLO=$2 SRC=$3
BUILD=$(dirname "$(dirname "$RUN")")
DEBUG_DIR=${MESHFLOW_SLURM_DEBUG:-}
skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAIL: $*"; status=1; }
status=0

[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root here"
for tool in munged slurmctld slurmd sbatch sinfo squeue scontrol setsid stdbuf; do
  command -v $tool >/dev/null || skip "$tool is not installed (scripts/setup.sh installs slurmctld slurmd slurm-client munge)"
done
command -v mpirun >/dev/null || skip "mpirun is not installed (the batch scripts run an MPI program)"
[ -x "$RUN" ] && [ -x "$HELLO" ] || { echo "FAIL: build meshflow-run and hello_distributed first"; exit 1; }
[ "$HELLO" = "$BUILD/examples/hello_distributed" ] || { echo "FAIL: expected $BUILD/examples/hello_distributed"; exit 1; }

D=$(mktemp -d /tmp/meshflow-slurm-XXXXXX)
mkdir -p $D/munge $D/state $D/spool $D/log $D/jobs $D/tmp
chmod 711 $D/munge

# Started before SLURM_CONF is exported, so signal_ours leaves it alone; no open descriptor of
# ctest's (which would keep ctest waiting for the output to end).
( setsid "$BASH" "${BASH_SOURCE[0]}" --watchdog "$D" $$ "$(proc_id $$)" </dev/null >/dev/null 2>&1 & )

cleanup() {
  trap - EXIT INT TERM HUP
  stop_all
  if [ -n "$DEBUG_DIR" ]; then
    mkdir -p "$DEBUG_DIR" && cp -r $D/log $D/jobs $D/slurm.conf "$DEBUG_DIR"/ 2>/dev/null
    echo "slurm: logs and job outputs copied to $DEBUG_DIR"
  fi
  rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Two free ports next to each other (several of these tests may run at once).
port_free() { ! (ss -ltn 2>/dev/null | awk '{print $4}' | grep -q ":$1\$"); }
for _ in $(seq 1 20); do
  PORT=$((20000 + RANDOM % 20000))
  port_free $PORT && port_free $((PORT + 1)) && break
done

dd if=/dev/urandom of=$D/munge/munge.key bs=1024 count=1 2>/dev/null
chmod 400 $D/munge/munge.key
H=$(hostname -s)
MEM=$(( $(free -m | awk '/Mem:/{print $2}') * 9 / 10 ))
LEVEL=info
[ -n "$DEBUG_DIR" ] && LEVEL=debug
# Note [One Slurm per test run]: srun --mpi=pmix makes TmpFS/spmix_appdir_<uid>_<job>.<step> and
# names the PMIx namespace slurm.pmix.<job>.<step>. With TmpFS=/tmp and job ids from 1 in every
# run, two runs at once (or one beside a killed run's leftovers) collide: the second step fails
# with "Cannot create directory /tmp/spmix_appdir_0_1.0: File exists" (5 of 6 concurrent pairs
# here). So TmpFS is this run's folder and job ids start at PORT * 1000.
# MinJobAge=16: sbatch --wait polls 2 s after submitting, then every min(4 x the last, 32 s) while
# that is below MinJobAge / 2, so the default 300 makes it look at 2, 10, 42, 74 s: a job of 11 s
# took 42. With 16 it looks every 8 s, and a finished job's record stays at least 16 s for it.
cat > $D/slurm.conf <<CONF
ClusterName=meshflowtest
FirstJobId=$((PORT * 1000))
TmpFS=$D/tmp
MinJobAge=16
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=$LEVEL
SlurmdDebug=$LEVEL
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$D/slurm.conf

timeout 20 munged --force --socket=$D/munge/munge.socket --key-file=$D/munge/munge.key \
  --log-file=$D/log/munged.log --pid-file=$D/munge/munged.pid --seed-file=$D/munge/munged.seed \
  || skip "munged did not start: $(tail -3 $D/log/munged.log 2>/dev/null)"
timeout 20 slurmctld -i || skip "slurmctld did not start: $(tail -3 $D/log/slurmctld.log 2>/dev/null)"
timeout 20 slurmd || skip "slurmd did not start: $(tail -3 $D/log/slurmd.log 2>/dev/null)"
up_by=$((SECONDS + 30))  # up to 30 s for the node to come up
while [ $SECONDS -lt $up_by ]; do
  [ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ] && break
  sleep 0.5
done
[ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ] ||
  skip "the Slurm node did not become idle: $(tail -3 $D/log/slurmd.log 2>/dev/null)"
echo "slurm: up on $H, ports $PORT and $((PORT + 1)), after ${SECONDS} s"

tenths_since() {  # EPOCHREALTIME value -> "12.3" seconds since then
  local t0=${1/[.,]/} t1=${EPOCHREALTIME/[.,]/} d
  d=$(( (10#$t1 - 10#$t0) / 100000 ))
  echo "$((d / 10)).$((d % 10))"
}

# What Slurm and the job's processes were doing, for a job that ran out of time or failed.
diagnose() {  # name, job id (may be empty)
  local name=$1 id=$2
  echo "=== $name: Slurm's view after ${SECONDS} s of the test"
  echo "--- squeue; squeue -s (steps)"
  timeout 5 squeue -l; timeout 5 squeue -s
  echo "--- scontrol show job ${id:-(all)}"
  timeout 5 scontrol show job $id
  echo "--- sinfo -N -l; sinfo -R"
  timeout 5 sinfo -N -l; timeout 5 sinfo -R
  echo "--- the daemons' and the jobs' processes (state, elapsed, cpu time, wait channel)"
  local pids f
  pids=$(our_pids | paste -sd,)
  [ -n "$pids" ] && ps -o pid,ppid,stat,etime,time,wchan:24,args -p "$pids"
  for f in slurmctld.log slurmd.log; do
    echo "--- last 30 lines of $f"
    tail -n 30 $D/log/$f 2>/dev/null
  done
  echo "--- last 30 lines of the job's output"
  tail -n 30 "$D/jobs/$name.out" 2>/dev/null
  echo "=== end of $name's diagnosis"
}

# Runs one batch job from the source root with the build's binaries within what is left of the
# budget; prints its output and time, sets JOB_ID and returns sbatch's exit code. A job that runs
# out of time is diagnosed and ends the test.
submit() {  # name, then sbatch arguments
  local name=$1; shift
  local left=$((BUDGET_S - SECONDS - RESERVE_S))
  [ $left -gt $JOB_CAP_S ] && left=$JOB_CAP_S
  if [ $left -lt 10 ]; then
    echo "FAIL: $name: only ${left} s of the test's ${BUDGET_S} s budget left; not submitted"
    exit 1
  fi
  local t0=$EPOCHREALTIME
  # --export=ALL exactly: any other value (even ALL,NAME=V) sets SLURM_GET_USER_ENV, and slurmd then
  # runs root's login shell (su -) before every batch job, 1-3 s under load here, up to 120 s.
  # --parsable prints the id at submission (not with --quiet); stdbuf line-buffers it, or a file
  # would get it only when sbatch exits, which a killed one never does.
  (cd "$SRC" && export MESHFLOW_BUILD="$BUILD" && { [ -z "$DEBUG_DIR" ] || export SLURM_DEBUG=2; } &&
   exec timeout -k 5 $left stdbuf -oL sbatch --wait --parsable --export=ALL \
     --output="$D/jobs/$name.out" "$@" >"$D/jobs/$name.id") &
  wait $!
  local code=$?
  local ran=""
  JOB_ID=$(cut -d';' -f1 "$D/jobs/$name.id" 2>/dev/null)
  # Slurm's own RunTime: sbatch --wait looks at the job 2, 10, 18, ... s after submitting it.
  [ -n "$JOB_ID" ] && ran=$(timeout 5 scontrol show job -o "$JOB_ID" 2>/dev/null | grep -o 'RunTime=[^ ]*')
  echo "--- $name: sbatch exit code $code in $(tenths_since $t0) s (job ${JOB_ID:-?}, ${ran:-RunTime unknown}, limit $left s)"
  cat "$D/jobs/$name.out" 2>/dev/null
  if [ $code -eq 124 ] || [ $code -eq 137 ]; then
    diagnose $name "$JOB_ID"
    echo "FAIL: $name: sbatch --wait ran out of its $left s (the test's budget is ${BUDGET_S} s); stopping here"
    exit 1
  fi
  return $code
}

expect_in() {  # name, text
  grep -qF -- "$2" "$D/jobs/$1.out" 2>/dev/null || fail "$1: output lacks '$2'"
}

for launcher in srun mpirun; do
  name=train_$launcher before=$status
  submit $name cluster_configs/slurm/$name.sbatch || fail "$name exited non-zero"
  expect_in $name "rank 0 of 2"
  expect_in $name "rank 1 of 2"
  expect_in $name "all_reduce over 2 ranks: sum of 1..2 = 3 (expected 3)"
  expect_in $name "meshflow-run: job succeeded: 2 ranks on "
  expect_in $name " via $launcher, attempt 1, exit code 0"
  if [ $launcher = srun ]; then expect_in $name "launched by slurm"; else expect_in $name "launched by openmpi"; fi
  [ $status -eq $before ] || diagnose $name "$JOB_ID"
done

# A failing job: rank 1 throws; the job fails and the summary names rank 1 and this host.
before=$status
submit fail_srun --ntasks=2 --time=5 --wrap "exec $RUN -np 2 -- $HELLO --fail-rank 1"
[ $? -ne 0 ] || fail "fail_srun: the job should fail"
expect_in fail_srun "first failure rank 1 on host $(hostname)"
expect_in fail_srun "rank 1 fails on purpose (--fail-rank)"
[ $status -eq $before ] || diagnose fail_srun "$JOB_ID"

[ $status -eq 0 ] && echo "slurm: both batch scripts ran; failures are named (${SECONDS} s)"
exit $status
