#!/bin/sh
# ensure_onnxruntime.sh CACHE_DIR: installs onnxruntime-node and onnxruntime-web from npm into
# CACHE_DIR (once; later runs reuse it). Exits 77 (ctest: skipped) when node or npm is missing or the
# registry cannot be reached, so a machine without them skips the ONNX Runtime tests visibly.
# The packages bundle their CPU binaries; --ignore-scripts skips onnxruntime-node's optional download
# of CUDA binaries from nuget.org.
set -u
cache="$1"
ORT_VERSION="${MESHFLOW_ORT_VERSION:-1.31.1}"
if ! command -v node >/dev/null 2>&1; then echo "skipped: node is not installed"; exit 77; fi
if ! command -v npm >/dev/null 2>&1; then echo "skipped: npm is not installed"; exit 77; fi
mkdir -p "$cache"
(
  flock 9
  if [ -f "$cache/node_modules/onnxruntime-node/package.json" ] && [ -f "$cache/node_modules/onnxruntime-web/package.json" ]; then
    exit 0
  fi
  echo "installing onnxruntime-node@$ORT_VERSION and onnxruntime-web@$ORT_VERSION into $cache"
  if ! timeout 300 npm install --prefix "$cache" --no-audit --no-fund --ignore-scripts --no-save \
      "onnxruntime-node@$ORT_VERSION" "onnxruntime-web@$ORT_VERSION" >"$cache/npm-install.log" 2>&1; then
    echo "skipped: npm could not install onnxruntime (see $cache/npm-install.log):"
    tail -n 5 "$cache/npm-install.log"
    rm -rf "$cache/node_modules"
    exit 77
  fi
) 9>"$cache.lock"
