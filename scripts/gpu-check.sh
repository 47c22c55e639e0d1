#!/usr/bin/env bash
# The GPU check, in one call on a machine with a GPU (see README, "On a GPU"):
#   bash scripts/gpu-check.sh [g1]
# configures and builds with CUDA (never apt-get: the GPU machine has no package registry; cmake
# and ninja may come from a Python virtual environment under /opt), runs the cuda-labelled tests
# and the GPU benchmarks, and prints a short table last. Logs go to $OUT (or build-gpu/logs).
# Stages: g1 = the CUDA backend (ops, allocator, training parity, bench_cuda).
#
# When device time is short, build here instead and carry the binaries:
#   cmake -S . -B build-carry -G Ninja -DMESHFLOW_WITH_DNNL=OFF -DCMAKE_CUDA_ARCHITECTURES=90
#   cmake --build build-carry --target cuda_test_cuda_ops cuda_test_cuda_allocator cuda_test_cuda_training bench_cuda
#   bash scripts/gpu-check.sh --bundle build-carry out/gpu-bundle    # copies them (and their .so) to out/gpu-bundle
# then on the device machine (carry out/gpu-bundle):  bash scripts/gpu-check.sh --prebuilt out/gpu-bundle g1
set -uo pipefail
if [ "${1:-}" = "--bundle" ]; then
  src="$2"; dst="$3"
  rm -rf "$dst"; mkdir -p "$dst"
  cp "$src"/tests/cuda_test_* "$src"/benchmarks/bench_cuda "$dst"/
  cp "$src"/core/libmeshflow_core.so "$src"/distributed/libmeshflow_distributed.so \
     "$src"/parallel/libmeshflow_parallel.so "$src"/models/libmeshflow_models.so "$dst"/
  strip --strip-unneeded "$dst"/*.so "$dst"/cuda_test_* "$dst"/bench_cuda 2>/dev/null
  du -sh "$dst"; exit 0
fi
prebuilt=""
if [ "${1:-}" = "--prebuilt" ]; then prebuilt="$2"; shift 2; fi
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
[ -n "$prebuilt" ] || command -v cmake >/dev/null || { echo "gpu-check: no cmake on PATH or under /opt"; exit 2; }
gen="Ninja"; command -v ninja >/dev/null || gen="Unix Makefiles"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2

case "$stage" in
  g1) targets=(cuda_test_cuda_ops cuda_test_cuda_allocator cuda_test_cuda_training bench_cuda) ;;
  *) echo "gpu-check: unknown stage '$stage' (known: g1)"; exit 2 ;;
esac

status=0
t_build=0
if [ -n "$prebuilt" ]; then
  prebuilt=$(cd "$prebuilt" && pwd)
  export LD_LIBRARY_PATH="$prebuilt:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
  missing=$(ldd "$prebuilt"/cuda_test_cuda_training "$prebuilt"/libmeshflow_core.so | grep 'not found' | sort -u)
  [ -n "$missing" ] && echo "gpu-check: libraries not found: $missing"
  test_dir="$prebuilt"; bench_dir="$prebuilt"
else
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
test_dir="$build/tests"; bench_dir="$build/benchmarks"
fi

rows=()
for t in "${targets[@]}"; do
  case "$t" in
    cuda_*)
      t0=$(date +%s)
      timeout 100 "$test_dir/$t" >"$logs/$t.log" 2>&1
      rc=$?
      case $rc in 0) r=passed ;; 77) r=skipped ;; *) r="FAILED (rc $rc)"; status=1 ;; esac
      rows+=("$(printf '%-28s %-14s %4ss  %s' "$t" "$r" "$(( $(date +%s) - t0 ))" \
               "$(grep -E '^\[  (PASSED|FAILED) ' "$logs/$t.log" | tr '\n' ' ' | cut -c1-60)")")
      if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then grep -E 'Failure|error|FAILED|Expected|Which is|op\(s\)|^  [a-z_0-9]+ \(' "$logs/$t.log" | head -60; fi
      ;;
    bench_*)
      timeout 70 "$bench_dir/$t" >"$logs/$t.log" 2>&1 || { echo "$t failed"; status=1; }
      cat "$logs/$t.log"
      ;;
  esac
done

echo
echo "== gpu-check $stage: build ${t_build}s, total $(( $(date +%s) - start ))s =="
for r in "${rows[@]}"; do echo "$r"; done
exit $status
