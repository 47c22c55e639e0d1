#!/usr/bin/env bash
# Builds Meshflow with a sanitizer in a folder of its own and runs the tests under it. Not part of
# .ci/run (a build and a run take about an hour on 2 cores); run it before a release or after
# touching threads, buffers or the communicators.
#
#   bash scripts/sanitize.sh address     # ASan + UBSan (+ LeakSanitizer): every test
#   bash scripts/sanitize.sh undefined   # UBSan alone: every test
#   bash scripts/sanitize.sh thread      # TSan: the tests that run threads or ranks
#   bash scripts/sanitize.sh address -R pipeline    # extra arguments go to ctest
#
# CPU only (nvcc's host code is not instrumented; the CUDA tests skip themselves anyway). A report
# fails its test. Suppressions live in tests/sanitize/*.supp, each with its reason; none covers
# Meshflow's own code. See docs/testing.md.
set -euo pipefail
kind=${1:?usage: scripts/sanitize.sh address|undefined|thread [ctest arguments]}
shift
cd "$(dirname "$0")/.."
root=$PWD
supp=$root/tests/sanitize
case "$kind" in
  address)
    flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    dir=build-asan
    labels=()
    ;;
  undefined)
    flags="-fsanitize=undefined -fno-sanitize-recover=undefined"
    dir=build-ubsan
    labels=()
    ;;
  thread)
    flags="-fsanitize=thread"
    dir=build-tsan
    # Threads and ranks: the strategies, the communicators, the launcher, saving (staged folders).
    labels=(-L "parallel|distributed|launcher|saving|mpi")
    ;;
  *)
    echo "scripts/sanitize.sh: unknown sanitizer '$kind' (address, undefined or thread)" >&2
    exit 2
    ;;
esac
flags="$flags -fno-omit-frame-pointer -g"

cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMESHFLOW_WITH_CUDA=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags"
cmake --build "$dir" -j"${MESHFLOW_JOBS:-2}"

# halt_on_error: the first report ends the program with a non-zero status, so its test fails.
# verify_asan_link_order=0: the no-op dlclose below is preloaded ahead of the ASan runtime.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:detect_odr_violation=1:verify_asan_link_order=0"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
# OpenMP's pool synchronizes in libgomp, which TSan cannot see into: every parallel loop would be
# reported as a race. TSan runs with one OpenMP thread and checks Meshflow's own threads (replica
# threads, the communicators' progress threads, the heartbeat, the launcher).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp"
if [ "$kind" = thread ]; then export OMP_NUM_THREADS=1; fi
# Open MPI's own processes inherit the options; its internal leaks are suppressed in lsan.supp.
# A no-op dlclose keeps its plugins mapped, so those leaks are named (and matched) at exit.
if [ "$kind" = address ]; then
  cc -shared -fPIC -O2 "$supp/no_dlclose.c" -o "$dir/libno_dlclose.so"
  export LD_PRELOAD="$PWD/$dir/libno_dlclose.so"
fi
cd "$dir"
ctest --output-on-failure -j1 --timeout 1800 "${labels[@]}" "$@"
