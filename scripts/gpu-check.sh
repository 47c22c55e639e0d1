#!/usr/bin/env bash
# The GPU check, in one call on a machine with a GPU (see README, "On a GPU"):
#   bash scripts/gpu-check.sh [g1]
# configures and builds with CUDA (never apt-get: the GPU machine has no package registry; cmake
# and ninja may come from a Python virtual environment under /opt), runs the cuda-labelled tests,
# the seed programs and Fashion-MNIST on cuda:0, the GPU benchmarks, and prints a short table
# last. Logs go to $OUT (or build-gpu/logs). Stages: g1 = the CUDA backend.
#
# Fashion-MNIST is read from data/fashion-mnist (an ignored folder: copy Debian's
# /usr/share/datasets/fashion-mnist there, it travels with the working tree); without it that
# row says "no data". PyTorch for the peer numbers: the first python3 under /opt that imports torch.
#
# When device time is short, build here instead and carry the binaries (3.5 MB of xz):
#   cmake -S . -B build-carry -G Ninja -DMESHFLOW_WITH_DNNL=OFF -DCMAKE_CUDA_ARCHITECTURES=90
#   bash scripts/gpu-check.sh --bundle build-carry out/gpu-bundle     # builds g1's targets, packs them
# then on the device machine (carry out/gpu-bundle.tar.xz and data/):
#   bash scripts/gpu-check.sh --prebuilt out/gpu-bundle.tar.xz g1
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seeds=(seed_multi_io_layer seed_shared_layers seed_multiple_losses seed_ensembling seed_attention_classifier
       seed_custom_layers seed_custom_models seed_multi_io_model seed_qa_model seed_model_as_function
       seed_residual_batchnorm seed_custom_callback)
tests=(cuda_test_cuda_ops cuda_test_cuda_allocator cuda_test_cuda_training)
programs=("${tests[@]}" "${seeds[@]}" fashion_mnist_keras bench_cuda bench_fit)

if [ "${1:-}" = "--bundle" ]; then
  src="$2"; dst="$3"
  cmake --build "$src" -j2 --target "${programs[@]}" || exit 1
  rm -rf "$dst"; mkdir -p "$dst"
  for p in "${programs[@]}"; do cp "$(find "$src" -name "$p" -type f -perm -u+x | head -1)" "$dst"/; done
  cp "$src"/core/libmeshflow_core.so "$src"/distributed/libmeshflow_distributed.so \
     "$src"/parallel/libmeshflow_parallel.so "$src"/models/libmeshflow_models.so "$dst"/
  strip --strip-unneeded "$dst"/* 2>/dev/null
  tar -C "$(dirname "$dst")" -cJf "$dst.tar.xz" "$(basename "$dst")"
  ls -la "$dst.tar.xz"; exit 0
fi
prebuilt=""
if [ "${1:-}" = "--prebuilt" ]; then prebuilt="$2"; shift 2; fi
stage="${1:-g1}"
[ "$stage" = g1 ] || { echo "gpu-check: unknown stage '$stage' (known: g1)"; exit 2; }
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
python=""
for p in /opt/*/bin/python3 /opt/*/*/bin/python3 /usr/bin/python3; do
  if [ -x "$p" ] && "$p" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then python="$p"; break; fi
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2

status=0
t_build=0
if [ -n "$prebuilt" ]; then
  if [[ "$prebuilt" == *.tar.xz ]]; then
    unpack=$(mktemp -d); tar -C "$unpack" -xJf "$prebuilt"; prebuilt=$(ls -d "$unpack"/*)
  fi
  bin=$(cd "$prebuilt" && pwd)
  export LD_LIBRARY_PATH="$bin:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
  missing=$(ldd "$bin"/cuda_test_cuda_training "$bin"/libmeshflow_core.so | grep 'not found' | sort -u)
  [ -n "$missing" ] && echo "gpu-check: libraries not found: $missing"
else
  command -v cmake >/dev/null || { echo "gpu-check: no cmake on PATH or under /opt"; exit 2; }
  gen="Ninja"; command -v ninja >/dev/null || gen="Unix Makefiles"
  if ! cmake -S . -B "$build" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DMESHFLOW_WITH_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES=90 >"$logs/configure.log" 2>&1; then
    tail -30 "$logs/configure.log"; echo "gpu-check: configure failed"; exit 1
  fi
  grep -A8 'Meshflow .* configuration' "$logs/configure.log"
  t_build0=$(date +%s)
  if ! cmake --build "$build" -j"$(nproc)" --target "${programs[@]}" >"$logs/build.log" 2>&1; then
    grep -E 'error|Error' "$logs/build.log" | head -40; echo "gpu-check: build failed"; exit 1
  fi
  t_build=$(( $(date +%s) - t_build0 ))
  mkdir -p "$build/bin"
  for p in "${programs[@]}"; do ln -sf "$(find "$root/$build" -name "$p" -type f -perm -u+x | head -1)" "$build/bin/$p"; done
  bin="$root/$build/bin"
fi

rows=()
# run NAME TIMEOUT CMD...: one table row; the log keeps the output, failures print their lines.
run() {
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s) rc r
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  case $rc in 0) r=passed ;; 77) r=skipped ;; 124) r="TIMEOUT"; status=1 ;; *) r="FAILED (rc $rc)"; status=1 ;; esac
  local detail
  detail=$(grep -E '^\[  (PASSED|FAILED) |test accuracy|loss: ' "$logs/$name.log" | tr '\n' ' ' | cut -c1-70)
  rows+=("$(printf '%-34s %-14s %4ss  %s' "$name" "$r" "$(( $(date +%s) - t0 ))" "$detail")")
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    grep -E 'Failure|error|FAILED|Expected|Which is|op\(s\)|^  [a-z_0-9]+ \(' "$logs/$name.log" | head -40
  fi
}

for t in "${tests[@]}"; do run "$t" 100 "$bin/$t"; done
for s in "${seeds[@]}"; do run "$s" 60 "$bin/$s" --device cuda:0; done
if [ -f data/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  run fashion_mnist_keras_cnn 150 "$bin/fashion_mnist_keras" --model cnn --epochs 3 --device cuda:0 \
      --data data/fashion-mnist --out "$logs/fashion_out"
else
  rows+=("fashion_mnist_keras_cnn            no data (data/fashion-mnist)")
fi
timeout 70 "$bin/bench_cuda" >"$logs/bench_cuda.log" 2>&1 || { echo "bench_cuda failed"; status=1; }
cat "$logs/bench_cuda.log"
timeout 150 "$bin/bench_fit" 40 --device cuda:0 --python "${python:-/usr/bin/python3}" >"$logs/bench_fit.log" 2>&1 \
  || { echo "bench_fit failed"; status=1; }
cat "$logs/bench_fit.log"

echo
echo "== gpu-check $stage: build ${t_build}s, total $(( $(date +%s) - start ))s, torch: ${python:-none} =="
for r in "${rows[@]}"; do echo "$r"; done
exit $status
