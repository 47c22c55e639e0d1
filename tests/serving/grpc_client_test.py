#!/usr/bin/env python3
"""meshflow-serve's gRPC API from Python, as a stock TF Serving client talks to it.

The protos in serving/proto are compiled here with grpc_tools.protoc. Checks: one PredictRequest
serializes to bytes derived by hand from TF Serving's field numbers; Predict, Classify, Regress,
MultiInference and GetModelMetadata over gRPC answer what the REST API answers for the same rows
(the REST answers are checked against Model::predict by the C++ tests), with the same error texts;
GetModelStatus reports version 1 AVAILABLE; mistakes are INVALID_ARGUMENT / NOT_FOUND; a call's
deadline (the client's, or --request_timeout_ms) is answered DEADLINE_EXCEEDED in time and the
queued request is dropped without running the model (grpc_calls_test.py).
Exit code 0 on success, 1 on a failure, 77 (skipped) without python3-grpcio or grpc_tools.
"""
import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import grpc
    from grpc_tools import protoc
except ImportError as e:
    print(f"skipped: {e} (install python3-grpcio and python3-grpc-tools)")
    sys.exit(77)

PROTOS = ["tensorflow/core/framework/tensor.proto", "tensorflow/core/example/feature.proto",
          "tensorflow/core/example/example.proto", "tensorflow/core/protobuf/meta_graph.proto",
          "tensorflow_serving/apis/model.proto", "tensorflow_serving/apis/input.proto",
          "tensorflow_serving/apis/predict.proto", "tensorflow_serving/apis/classification.proto",
          "tensorflow_serving/apis/regression.proto", "tensorflow_serving/apis/inference.proto",
          "tensorflow_serving/apis/get_model_metadata.proto", "tensorflow_serving/apis/get_model_status.proto",
          "tensorflow_serving/apis/prediction_service.proto", "tensorflow_serving/apis/model_service.proto"]

# PredictRequest{model_spec{name:"m" version{value:1}} inputs{"x": TensorProto{dtype:DT_FLOAT
# tensor_shape{dim{size:1} dim{size:2}} float_val:[1.0, 2.0]}}}, field by field:
GOLDEN = bytes([
    0x0A, 0x07,                    # 1 model_spec, 7 bytes
    0x0A, 0x01, 0x6D,              #   1 name "m"
    0x12, 0x02, 0x08, 0x01,        #   2 version: Int64Value{1 value: 1}
    0x12, 0x1B,                    # 2 inputs (map entry), 27 bytes
    0x0A, 0x01, 0x78,              #   1 key "x"
    0x12, 0x16,                    #   2 value: TensorProto, 22 bytes
    0x08, 0x01,                    #     1 dtype DT_FLOAT
    0x12, 0x08,                    #     2 tensor_shape, 8 bytes
    0x12, 0x02, 0x08, 0x01,        #       2 dim{1 size: 1}
    0x12, 0x02, 0x08, 0x02,        #       2 dim{1 size: 2}
    0x2A, 0x08,                    #     5 float_val, packed, 8 bytes
    0x00, 0x00, 0x80, 0x3F,        #       1.0f little-endian
    0x00, 0x00, 0x00, 0x40,        #       2.0f
])

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def start_server(serve, args, log):
    proc = subprocess.Popen([serve] + args, stdout=subprocess.PIPE, stderr=log, text=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.time() + 30
    while time.time() < deadline:
        if not sel.select(timeout=0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("listening"):
            parts = dict(p.split("=") for p in line.split()[1:])
            return proc, int(parts["rest"]), int(parts["grpc"])
    stop_server(proc)
    raise RuntimeError("meshflow-serve printed no 'listening' line within 30 s")


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", required=True)
    ap.add_argument("--save-model", required=True)
    ap.add_argument("--protos", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshflow_grpc_") as tmp:
        gen = os.path.join(tmp, "gen")
        os.makedirs(gen)
        rc = protoc.main(["protoc", f"-I{a.protos}", f"--python_out={gen}", f"--grpc_python_out={gen}"] + PROTOS)
        if rc != 0:
            print("FAIL: protoc could not compile serving/proto")
            return 1
        sys.path.insert(0, gen)
        from tensorflow.core.framework import tensor_pb2
        from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                             prediction_service_pb2_grpc)
        import grpc_calls_test as calls

        # Golden bytes: what any TF Serving client sends for this request.
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "m"
        req.model_spec.version.value = 1
        t = req.inputs["x"]
        t.dtype = tensor_pb2.DT_FLOAT
        t.tensor_shape.dim.add().size = 1
        t.tensor_shape.dim.add().size = 2
        t.float_val.extend([1.0, 2.0])
        check(req.SerializeToString(deterministic=True) == GOLDEN,
              "PredictRequest bytes differ from TF Serving's: " + req.SerializeToString(deterministic=True).hex())
        check(predict_pb2.PredictRequest.FromString(GOLDEN) == req, "golden bytes do not parse back")

        models = os.path.join(tmp, "models")
        subprocess.run([a.save_model, models], check=True)
        for kind in ("reg", "sigmoid"):
            subprocess.run([a.save_model, os.path.join(tmp, kind), kind], check=True)
        log = open(os.path.join(tmp, "server.log"), "w")
        config = os.path.join(tmp, "models.config")
        with open(config, "w") as f:
            f.write("model_config_list { config { name: 'm' base_path: '%s' "
                    "version_labels { key: 'stable' value: 1 } }\n" % models)
            for kind in ("reg", "sigmoid"):
                f.write("  config { name: '%s' base_path: '%s' }\n" % (kind, os.path.join(tmp, kind)))
            f.write("}\n")
        proc, rest, port = start_server(a.serve, [f"--model_config_file={config}", "--rest_api_port=0", "--port=0"], log)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=20)
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            status = model_service_pb2_grpc.ModelServiceStub(channel)

            rows = [[0.5, -1.0, 0.25, 2.0], [-0.75, 0.125, 1.5, -2.0], [0.0, 0.3, -0.6, 0.9]]
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "m"
            x = req.inputs["x"]
            x.dtype = tensor_pb2.DT_FLOAT
            for d in (3, 4):
                x.tensor_shape.dim.add().size = d
            x.float_val.extend(v for r in rows for v in r)
            res = predict.Predict(req, timeout=20)
            out = res.outputs["probs"]
            check([d.size for d in out.tensor_shape.dim] == [3, 3], f"output shape {out.tensor_shape}")
            check(res.model_spec.version.value == 1, f"answered by version {res.model_spec.version.value}")
            body = json.dumps({"instances": rows}).encode()
            rest_req = urllib.request.Request(f"http://127.0.0.1:{rest}/v1/models/m:predict", data=body, method="POST")
            with urllib.request.urlopen(rest_req, timeout=20) as r:
                rest_preds = json.load(r)["predictions"]
            grpc_preds = [list(out.float_val[i * 3:(i + 1) * 3]) for i in range(3)]
            for g, r in zip(grpc_preds, rest_preds):
                for gv, rv in zip(g, r):
                    check(abs(gv - rv) <= 1e-6, f"gRPC {g} vs REST {r}")
            # Probabilities of a softmax: each row sums to one (the model really ran).
            for g in grpc_preds:
                check(abs(sum(g) - 1.0) < 1e-5, f"row {g} does not sum to 1")

            # The same rows as tensor_content bytes.
            import struct
            req2 = predict_pb2.PredictRequest()
            req2.CopyFrom(req)
            del req2.inputs["x"].float_val[:]
            req2.inputs["x"].tensor_content = struct.pack("<12f", *[v for r in rows for v in r])
            res2 = predict.Predict(req2, timeout=20)
            check(list(res2.outputs["probs"].float_val) == list(out.float_val), "tensor_content answer differs")

            st = status.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
                model_spec={"name": "m"}), timeout=20)
            check(len(st.model_version_status) == 1 and st.model_version_status[0].version == 1
                  and st.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE,
                  f"status {st}")

            def code_of(call):
                try:
                    call()
                except grpc.RpcError as e:
                    return e.code(), e.details()
                return grpc.StatusCode.OK, ""

            bad = predict_pb2.PredictRequest()
            bad.CopyFrom(req)
            bad.model_spec.name = "nope"
            code, _ = code_of(lambda: predict.Predict(bad, timeout=20))
            check(code == grpc.StatusCode.NOT_FOUND, f"unknown model gave {code}")
            bad.CopyFrom(req)
            bad.inputs["x"].tensor_shape.dim[1].size = 6
            code, details = code_of(lambda: predict.Predict(bad, timeout=20))
            check(code == grpc.StatusCode.INVALID_ARGUMENT, f"wrong shape gave {code}")
            bad.CopyFrom(req)
            bad.inputs["x"].tensor_shape.dim[0].size = 4  # 16 values wanted, 12 given
            code, details = code_of(lambda: predict.Predict(bad, timeout=20))
            check(code == grpc.StatusCode.INVALID_ARGUMENT and "float_val" in details, f"count mismatch: {code} {details}")
            bad.CopyFrom(req)
            bad.inputs["x"].dtype = tensor_pb2.DT_INT64
            code, details = code_of(lambda: predict.Predict(bad, timeout=20))
            check(code == grpc.StatusCode.INVALID_ARGUMENT and "DT_FLOAT" in details, f"wrong dtype: {code} {details}")
            # Labels from the config file pick versions, as ModelSpec.version_label says.
            by_label = predict_pb2.PredictRequest()
            by_label.CopyFrom(req)
            by_label.model_spec.version_label = "stable"
            res3 = predict.Predict(by_label, timeout=20)
            check(res3.model_spec.version.value == 1 and list(res3.outputs["probs"].float_val) == list(out.float_val),
                  f"label 'stable' answered by version {res3.model_spec.version.value}")
            by_label.model_spec.version_label = "canary"
            code, details = code_of(lambda: predict.Predict(by_label, timeout=20))
            check(code == grpc.StatusCode.NOT_FOUND and "canary" in details, f"unknown label: {code} {details}")
            bad.CopyFrom(req)
            bad.model_spec.version.value = 5
            code, _ = code_of(lambda: predict.Predict(bad, timeout=20))
            check(code == grpc.StatusCode.NOT_FOUND, f"unknown version gave {code}")
            calls.check_classify_regress(predict, rest, check)
            calls.check_multi_inference(predict, rest, check)
            calls.check_metadata(predict, rest, check)
            channel.close()
        finally:
            rc = stop_server(proc)
            check(rc == 0, f"meshflow-serve exited with {rc} after SIGTERM")
            log.close()
            if failures:
                print(open(os.path.join(tmp, "server.log")).read())
        calls.check_deadlines(a.serve, models, tmp, start_server, stop_server, check)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("PASS: gRPC Predict, Classify, Regress, MultiInference, GetModelMetadata equal REST; golden PredictRequest "
          "bytes, GetModelStatus, error codes, deadlines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
