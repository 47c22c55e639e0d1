#!/bin/sh
# cli_test.sh MESHFLOW_EXPORT FIXTURE_DIR NPM_CACHE TEST_SRC: meshflow-export on folders written by
# Model::save. Bad arguments must fail naming them; the exported models must pass the ONNX checker
# and give Model::predict's outputs (the fixtures' JSON) in ONNX Runtime. Exits 77 (skipped) when
# node, npm or onnxruntime-node are not available.
set -u
tool="$1"; fixtures="$2"; cache="$3"; src="$4"
out="$(dirname "$fixtures")/cli_out"  # not under the fixtures, which other tests read meanwhile
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*"; exit 1; }

msg=$("$tool" "$fixtures/saved/no_such_model" "$out/x.onnx" 2>&1) && fail "a missing folder was accepted"
echo "$msg" | grep -q "no_such_model" || fail "the error does not name the missing folder: $msg"
msg=$("$tool" "$fixtures/saved/fmnist_mlp" "$out/missing_folder/x.onnx" 2>&1) && fail "an unwritable path was accepted"
echo "$msg" | grep -q "missing_folder/x.onnx" || fail "the error does not name the output path: $msg"
msg=$("$tool" "$fixtures/saved/fmnist_mlp" "$out/x.onnx" --opset 9 2>&1) && fail "opset 9 was accepted"
echo "$msg" | grep -q "opset 9" || fail "the error does not name the opset: $msg"
[ -z "$(ls -A "$out")" ] || fail "failed exports left files: $(ls -A "$out")"
"$tool" >/dev/null 2>&1 && fail "no arguments was accepted"

for m in fmnist_mlp seed_residual_batchnorm; do
  "$tool" "$fixtures/saved/$m" "$out/$m.onnx" || fail "meshflow-export $m failed"
  cp "$fixtures/$m.json" "$out/$m.json"
done
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 "$src/check_onnx.py" "$out" || fail "the ONNX checker rejects meshflow-export's output"
  mkdir -p "$out/static"
  "$tool" "$fixtures/saved/fmnist_mlp" "$out/static/static7.onnx" --static-batch 7 --opset 13 || fail "--static-batch 7"
  /usr/bin/python3 -c "
import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
assert dims == [7, 28, 28, 1] and m.opset_import[0].version == 13, (dims, m.opset_import)
" "$out/static/static7.onnx" || fail "--static-batch 7 --opset 13 did not give a batch of 7 at opset 13"
fi
"$src/ensure_onnxruntime.sh" "$cache" || exit $?
node "$src/run_onnxruntime.js" "$cache/node_modules" "$out"
