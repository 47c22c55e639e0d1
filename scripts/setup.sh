#!/usr/bin/env bash
# Installs what Meshflow needs on a Debian machine; safe to run again (installs only what is missing).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git procps
  libopenblas-openmp-dev libopenblas0-openmp libdnnl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  openmpi-bin libopenmpi-dev
  slurmctld slurmd slurm-client munge stress-ng
  libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev libboost-dev libboost-system-dev nlohmann-json3-dev zlib1g-dev libyaml-cpp-dev
  python3-torch python3-numpy python3-sklearn
  dataset-fashion-mnist
  libgrpc++-dev protobuf-compiler-grpc python3-grpcio python3-grpc-tools wrk curl clang
  libeigen3-dev libpng-dev python3-pil
  libonnx-dev python3-onnx nodejs chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# npm ships inside some Node.js builds (NodeSource) and as its own package in Debian's; ask for it
# only where the command is missing, so the two never conflict.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
