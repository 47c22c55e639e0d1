"""Runs the ONNX checker (full check: shapes and types inferred too) on exported models.

    /usr/bin/python3 check_onnx.py (DIR | MODEL.onnx ...)

Each model must pass onnx.checker.check_model(full_check=True) and carry Meshflow's metadata:
producer "meshflow", the Keras input and output names (which must be the graph's), and, for
functional and Sequential models, the config. Exits 77 (skipped) where python3-onnx is missing.
"""
import json
import os
import sys

try:
    import onnx
except ImportError as e:
    print(f"skipped: python3-onnx is not installed ({e})")
    sys.exit(77)


def check(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    problems = []
    if model.producer_name != "meshflow":
        problems.append(f"producer_name is {model.producer_name!r}")
    props = {p.key: p.value for p in model.metadata_props}
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if json.loads(props.get("meshflow_input_names", "null")) != inputs:
        problems.append(f"meshflow_input_names {props.get('meshflow_input_names')} != graph inputs {inputs}")
    if json.loads(props.get("meshflow_output_names", "null")) != outputs:
        problems.append(f"meshflow_output_names {props.get('meshflow_output_names')} != graph outputs {outputs}")
    if "meshflow_config" in props and json.loads(props["meshflow_config"]).get("config", {}).get("name") != model.graph.name:
        problems.append("meshflow_config does not describe the graph's model")
    for i in model.graph.input:
        dim0 = i.type.tensor_type.shape.dim[0]
        if dim0.dim_param != "batch":
            problems.append(f"input {i.name} has no dynamic batch dimension")
    return problems


def main():
    paths = []
    for arg in sys.argv[1:]:
        if os.path.isdir(arg):
            paths += sorted(os.path.join(arg, f) for f in os.listdir(arg) if f.endswith(".onnx"))
        else:
            paths.append(arg)
    if not paths:
        print("FAIL: no models to check")
        return 1
    failed = 0
    for p in paths:
        try:
            problems = check(p)
        except Exception as e:  # the checker's ValidationError and anything onnx.load raises
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            failed += 1
            print(f"FAIL {os.path.basename(p)}:\n  " + "\n  ".join(problems))
        else:
            print(f"ok   {os.path.basename(p)} (onnx {onnx.__version__}, opset {model_opset(p)})")
    print(f"{len(paths) - failed} of {len(paths)} models pass the ONNX checker")
    return 1 if failed else 0


def model_opset(path):
    return ",".join(str(o.version) for o in onnx.load(path).opset_import)


if __name__ == "__main__":
    sys.exit(main())
