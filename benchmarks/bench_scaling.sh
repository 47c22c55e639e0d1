#!/usr/bin/env bash
# The scaling sweep: bench_scaling on 1 rank, then on each further rank count under mpirun (bound to
# the loopback interface), and one table at the end. Each N-rank run fits its own link to an
# all-reduce sweep; the compute, update and rest of a step come from one rank: by default rank 0
# trains alone in rounds alternating with the N-rank ones (it follows a shared machine's load);
# with CALIBRATE=one-rank the separate 1-rank run's numbers (each step's compute too) are passed on.
#   benchmarks/bench_scaling.sh [RANKS ...] [-- bench_scaling flags]     (default ranks: 1 2)
#   benchmarks/bench_scaling.sh 1 2 4 8 16 -- --model cnn --steps 20
# Environment: BENCH_SCALING (the program; default build/benchmarks/bench_scaling), MPIRUN
# (default mpirun), OMP_NUM_THREADS (default 1 per rank), CALIBRATE (alternate or one-rank;
# docs/cost_model.md compares them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
program="${BENCH_SCALING:-$here/../build/benchmarks/bench_scaling}"
mpirun="${MPIRUN:-mpirun}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

ranks=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case "$1" in
    ''|*[!0-9]*|0) echo "bench_scaling.sh: a rank count must be a positive integer, got '$1'" >&2; exit 2 ;;
  esac
  ranks+=("$1")
  shift
done
[ $# -gt 0 ] && shift  # the "--"
flags=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(1 2)
[ -x "$program" ] || { echo "bench_scaling.sh: no program at $program (build the bench_scaling target)" >&2; exit 2; }
weak=1
for ((i = 0; i < ${#flags[@]}; i++)); do
  [ "${flags[$i]}" = "--mode" ] && [ "${flags[$((i + 1))]:-}" = "strong" ] && weak=0
done

run() {  # run N [extra flags]: prints the program's output, returns it in $out
  local n=$1
  shift
  out="$("$mpirun" --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
         -np "$n" "$program" "${flags[@]}" "$@")"
  printf '%s\n' "$out"
}
field() {  # field NAME LINE
  printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

lines=()
# The 1-rank run first; it alone prints the cost model's predictions for the zoo models.
run 1
one="$(printf '%s\n' "$out" | grep '^scaling ')"
lines+=("$one")
calibrate="${CALIBRATE:-alternate}"
[ "$calibrate" = alternate ] || [ "$calibrate" = one-rank ] \
  || { echo "bench_scaling.sh: CALIBRATE must be alternate or one-rank, got '$calibrate'" >&2; exit 2; }
calibration=()
[ "$calibrate" = alternate ] || calibration=(--base-step-ms "$(field step_ms "$one")")
if [ "$calibrate" = one-rank ] && [ $weak = 1 ]; then  # the same rows per rank: its compute is the calibration
  calibration+=(--base-compute-ms "$(field compute_ms "$one")" --base-update-ms "$(field update_ms "$one")"
                --base-other-ms "$(field other_ms "$one")")
  samples="$(printf '%s\n' "$out" | grep '^scaling_samples ' || true)"
  [ -z "$samples" ] || calibration+=(--base-compute-samples-ms "$(field compute_ms "$samples")")
fi
for n in "${ranks[@]}"; do
  [ "$n" = 1 ] && continue
  run "$n" --no-zoo "${calibration[@]}"
  lines+=("$(printf '%s\n' "$out" | grep '^scaling ')")
done

echo
echo "ranks  step ms  compute ms  comm ms  update ms  other ms  predicted ms  measured/predicted  efficiency  busbw GB/s  suggested bucket KiB  load"
for l in "${lines[@]}"; do
  printf '%5s %8s %11s %8s %10s %9s %13s %19s %11s %11s %21s %5s\n' "$(field ranks "$l")" "$(field step_ms "$l")" \
    "$(field compute_ms "$l")" "$(field comm_ms "$l")" "$(field update_ms "$l")" "$(field other_ms "$l")" \
    "$(field predicted_ms "$l")" "$(field ratio "$l")" "$(field efficiency "$l")" "$(field busbw_gbs "$l")" \
    "$(field suggested_bucket_kib "$l")" "$(field load "$l")"
done
