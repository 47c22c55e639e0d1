#!/usr/bin/env bash
# The GPU check, in one call on a machine with a GPU (see README, "On a GPU"):
#   bash scripts/gpu-check.sh [g1]
# configures and builds with CUDA (never apt-get: the GPU machine has no package registry; cmake
# and ninja may come from a Python virtual environment under /opt), runs the cuda-labelled tests
# and the GPU benchmarks, and prints a short table last. Logs go to $OUT (or build-gpu/logs).
# Stages: g1 = the CUDA backend (ops, allocator, training parity, bench_cuda).
set -uo pipefail
stage="${1:-g1}"
cd "$(dirname "$0")/.."
root=$(pwd)
build="${MESHFLOW_GPU_BUILD:-build-gpu}"
logs="${OUT:-$build/logs}"
mkdir -p "$logs"
start=$(date +%s)

# cmake/ninja: PATH first, else the first virtual environment under /opt that has them.
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
  for d in /opt/*/bin /opt/*/*/bin; do
    if [ -x "$d/cmake" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
command -v cmake >/dev/null || { echo "gpu-check: no cmake on PATH or under /opt"; exit 2; }
gen="Ninja"; command -v ninja >/dev/null || gen="Unix Makefiles"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2

case "$stage" in
  g1) targets=(cuda_test_cuda_ops cuda_test_cuda_allocator cuda_test_cuda_training bench_cuda) ;;
  *) echo "gpu-check: unknown stage '$stage' (known: g1)"; exit 2 ;;
esac

status=0
if ! cmake -S . -B "$build" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DMESHFLOW_WITH_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 >"$logs/configure.log" 2>&1; then
  tail -30 "$logs/configure.log"; echo "gpu-check: configure failed"; exit 1
fi
grep -A8 'Meshflow .* configuration' "$logs/configure.log"
t_build0=$(date +%s)
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$logs/build.log" 2>&1; then
  grep -E 'error|Error' "$logs/build.log" | head -40; echo "gpu-check: build failed"; exit 1
fi
t_build=$(( $(date +%s) - t_build0 ))

rows=()
for t in "${targets[@]}"; do
  case "$t" in
    cuda_*)
      t0=$(date +%s)
      if timeout 300 "$build/tests/$t" >"$logs/$t.log" 2>&1; then r=passed; else r="FAILED (rc $?)"; status=1; fi
      rows+=("$(printf '%-28s %-14s %4ss  %s' "$t" "$r" "$(( $(date +%s) - t0 ))" \
               "$(grep -E '^\[  (PASSED|FAILED) ' "$logs/$t.log" | tr '\n' ' ' | cut -c1-60)")")
      if [ "$r" != passed ]; then grep -E 'Failure|error|FAILED|Expected|Which is|op\(s\)|^  [a-z_0-9]+ \(' "$logs/$t.log" | head -60; fi
      ;;
    bench_*)
      timeout 240 "$build/benchmarks/$t" >"$logs/$t.log" 2>&1 || { echo "$t failed"; status=1; }
      cat "$logs/$t.log"
      ;;
  esac
done

echo
echo "== gpu-check $stage: build ${t_build}s, total $(( $(date +%s) - start ))s =="
for r in "${rows[@]}"; do echo "$r"; done
exit $status
