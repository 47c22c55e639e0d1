#!/usr/bin/env bash
# A rank stopped (SIGSTOP) or killed (SIGKILL) mid-fit: the others name it after the collective
# timeout (2 s), then return from main, and the job must end by itself within seconds (Note
# [Ending a failed job]): mpirun exits, no process of the run is left (a stopped one included),
# and the run leaves nothing in /dev/shm. `kill` runs with the documented
# --mca orte_abort_on_non_zero_status 0, under which mpirun used to stay alive.
# With TIMEOUT_MS (120000) the collective timeout is far away and the heartbeat must find the rank.
# With meshflow-run as MPIEXEC its summary must also name rank 1 as the culprit.
# Arguments after TIMEOUT_MS go to the program (--pipeline 1: the ranks are pipeline stages).
# usage: failed_rank.sh MPIEXEC PROGRAM RANKS stop|kill [TIMEOUT_MS [PROGRAM ARGS...]]
set -uo pipefail
mpiexec=$1 program=$2 ranks=$3 mode=$4 timeout_ms=${5:-2000}
shift $(( $# < 5 ? $# : 5 ))
more=("$@")
extra=()
[ "$mode" = kill ] && extra=(--mca orte_abort_on_non_zero_status 0)
fail() { echo "FAIL: $*"; exit 1; }
# This run's processes carry a tag in their environment (mpirun's local ranks inherit it), so a run
# of the same program beside this one (another test, another engineer) is neither blamed nor killed.
export MESHFLOW_FAILED_RANK_TAG="$$.$RANDOM.$(date +%s%N)"
ours() {  # PIDs of this run's program processes
  local p
  for p in $(pgrep -f "$program $mode"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "MESHFLOW_FAILED_RANK_TAG=$MESHFLOW_FAILED_RANK_TAG" && echo $p
  done
}
kill_ours() { local p; for p in $(ours); do kill -KILL $p 2>/dev/null; done; }
shm_before=$(ls /dev/shm 2>/dev/null | sort)
start=$(date +%s%3N)
launcher=0
if [ "$(basename "$mpiexec")" = meshflow-run ]; then
  launcher=1
  out=$(OMP_NUM_THREADS=1 timeout -k 5 60 "$mpiexec" -np "$ranks" -- "$program" "$mode" --timeout-ms "$timeout_ms" "${more[@]}" 2>&1)
else
  out=$(OMP_NUM_THREADS=1 timeout -k 5 60 "$mpiexec" --allow-run-as-root --oversubscribe "${extra[@]}" -np "$ranks" \
        "$program" "$mode" --timeout-ms "$timeout_ms" "${more[@]}" 2>&1)
fi
rc=$?
ms=$(( $(date +%s%3N) - start ))
elapsed="$((ms / 1000)).$(printf %03d $((ms % 1000)))"
echo "$out"
echo "mpirun exited with $rc after ${elapsed} s"
[ "$rc" -ne 124 ] && [ "$rc" -ne 137 -o "$mode" = kill ] || { kill_ours; fail "mpirun did not end within 60 s"; }
grep -q "PASS on rank 0" <<<"$out" || fail "rank 0 did not name the stopped rank"
! grep -q "^FAIL" <<<"$out" || fail "a rank reported a failure"
if [ "$launcher" = 1 ]; then
  grep -q "job failed .*rank 1 on host .* is the culprit.*ended because of it" <<<"$out" ||
    fail "meshflow-run's summary does not name rank 1 as the culprit"
fi
(( ms < 15000 )) || fail "the job took ${elapsed} s to end (collective timeout ${timeout_ms} ms)"
sleep 1
if [ -n "$(ours)" ]; then
  kill_ours
  fail "processes of the run are still alive"
fi
# A new segment still mapped by a live process belongs to a job running beside this one.
left=""
for f in $(comm -13 <(echo "$shm_before") <(ls /dev/shm 2>/dev/null | sort) | grep -E "vader|ompi|sm_segment"); do
  [ -e "/dev/shm/$f" ] || continue
  grep -qsF "/dev/shm/$f" /proc/[0-9]*/maps || left="$left $f"
done
[ -z "$left" ] || fail "left in /dev/shm:$left"
echo "PASS: the job ended ${elapsed} s after start, nothing left behind"
