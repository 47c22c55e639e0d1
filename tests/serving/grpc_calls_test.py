"""Classify, Regress, MultiInference, GetModelMetadata and deadlines over gRPC, each compared with
the REST API's answer (or error text) for the same rows. Imported by grpc_client_test.py once the
protos are compiled; every check_* takes the stub, the REST port and the check(cond, what) callback.

Models (tests/serving/save_test_model): 'm' x[4] -> softmax "probs"[3]; 'reg' x[4] -> "value" (one
number); 'sigmoid' x[4] -> one sigmoid unit "p" (both :classify and :regress apply).
"""
import json
import os
import re
import time
import urllib.error
import urllib.request

import grpc
from tensorflow.core.example import example_pb2  # noqa: F401 (registers tensorflow.Example)
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2, input_pb2,
                                     predict_pb2, regression_pb2)

ROWS = [[0.5, -1.0, 0.25, 2.0], [-0.75, 0.125, 1.5, -2.0], [0.0, 0.3, -0.6, 0.9]]
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def rest_call(port, path, body=None):
    """(HTTP status, parsed JSON) of a GET (body None) or POST."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def rest_text(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
        return r.read().decode()


def code_of(call):
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def examples_input(rows, name="x", kind="float"):
    inp = input_pb2.Input()
    for row in rows:
        f = inp.example_list.examples.add().features.feature[name]
        if kind == "float":
            f.float_list.value.extend(row)
        elif kind == "int":
            f.int64_list.value.extend(row)
        else:
            f.bytes_list.value.extend(b"%d" % v for v in row)
    return inp


def classify_req(model, inp):
    req = classification_pb2.ClassificationRequest()
    req.model_spec.name = model
    req.input.CopyFrom(inp)
    return req


def regress_req(model, inp):
    req = regression_pb2.RegressionRequest()
    req.model_spec.name = model
    req.input.CopyFrom(inp)
    return req


def classes_of(result):
    return [[(c.label, c.score) for c in cl.classes] for cl in result.classifications]


def same_classes(grpc_rows, rest_rows):
    """gRPC's float32 scores against REST's [[label, score], ...] rows."""
    if len(grpc_rows) != len(rest_rows):
        return False
    for g, r in zip(grpc_rows, rest_rows):
        if [c[0] for c in g] != [c[0] for c in r]:
            return False
        if any(abs(gs - rs) > 1e-6 for (_, gs), (_, rs) in zip(g, r)):
            return False
    return True


def check_classify_regress(stub, rest, check):
    # Classify equals REST :classify on the same rows; the scores are the softmax's (rows sum to 1).
    res = stub.Classify(classify_req("m", examples_input(ROWS)), timeout=20)
    got = classes_of(res.result)
    status, want = rest_call(rest, "/v1/models/m:classify", {"examples": [{"x": r} for r in ROWS]})
    check(status == 200 and same_classes(got, want["results"]), f"Classify {got} vs REST {want}")
    check(len(got) == 3 and all(len(r) == 3 and abs(sum(s for _, s in r) - 1) < 1e-5 for r in got),
          f"Classify rows are not probabilities: {got}")
    check(res.model_spec.name == "m" and res.model_spec.version.value == 1, f"Classify model_spec {res.model_spec}")
    # Integers as int64_list read as REST reads JSON integers for a float input.
    ints = [[1, -2, 0, 3], [0, 0, 1, 1]]
    got = classes_of(stub.Classify(classify_req("m", examples_input(ints, kind="int")), timeout=20).result)
    status, want = rest_call(rest, "/v1/models/m:classify", {"examples": [{"x": r} for r in ints]})
    check(status == 200 and same_classes(got, want["results"]), f"int64_list Classify {got} vs REST {want}")
    # A context's features join every example: two empty examples and x in the context give row 0 twice.
    inp = input_pb2.Input()
    ctx = inp.example_list_with_context
    ctx.examples.add()
    ctx.examples.add()
    ctx.context.features.feature["x"].float_list.value.extend(ROWS[0])
    got = classes_of(stub.Classify(classify_req("m", inp), timeout=20).result)
    status, want = rest_call(rest, "/v1/models/m:classify", {"examples": [{"x": ROWS[0]}, {"x": ROWS[0]}]})
    check(status == 200 and same_classes(got, want["results"]), f"context Classify {got} vs REST {want}")
    ctx.examples[0].features.feature["x"].float_list.value.extend(ROWS[1])
    code, details = code_of(lambda: stub.Classify(classify_req("m", inp), timeout=20))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "'x'" in details and "context" in details,
          f"feature in example and context: {code} {details}")

    # Regress equals REST :regress.
    res = stub.Regress(regress_req("reg", examples_input(ROWS)), timeout=20)
    got = [r.value for r in res.result.regressions]
    status, want = rest_call(rest, "/v1/models/reg:regress", {"examples": [{"x": r} for r in ROWS]})
    check(status == 200 and len(got) == 3 and all(abs(g - w) <= 1e-5 * (1 + abs(w)) for g, w in zip(got, want["results"])),
          f"Regress {got} vs REST {want}")
    check(len(set(got)) == 3, f"Regress gave equal values for different rows: {got}")
    check(res.model_spec.name == "reg" and res.model_spec.version.value == 1, f"Regress model_spec {res.model_spec}")

    # The same refusals as REST, word for word.
    for call, path, model in ((lambda: stub.Classify(classify_req("reg", examples_input(ROWS)), timeout=20),
                               "/v1/models/reg:classify", "reg"),
                              (lambda: stub.Regress(regress_req("m", examples_input(ROWS)), timeout=20),
                               "/v1/models/m:regress", "m")):
        code, details = code_of(call)
        status, body = rest_call(rest, path, {"examples": [{"x": r} for r in ROWS]})
        check(code == grpc.StatusCode.INVALID_ARGUMENT and status == 400 and details == body.get("error"),
              f"{model}: gRPC {code} '{details}' vs REST {status} {body}")
    bad = [
        (examples_input([[1.0, 2.0, 3.0]]), ["'x'", "3 values", "needs 4"]),
        (examples_input([ROWS[0]], name="y"), ["'y'", "not an input"]),
        (examples_input([[1, 2, 3, 4]], kind="bytes"), ["'x'", "bytes_list", "DT_FLOAT"]),
        (input_pb2.Input(), ["no examples"]),
    ]
    for inp, words in bad:
        code, details = code_of(lambda: stub.Classify(classify_req("m", inp), timeout=20))
        check(code == grpc.StatusCode.INVALID_ARGUMENT and all(w in details for w in words),
              f"bad Classify input: {code} '{details}', expected {words}")
    # REST refuses the same short row, naming the input.
    status, body = rest_call(rest, "/v1/models/m:classify", {"examples": [{"x": [1.0, 2.0, 3.0]}]})
    check(status == 400 and "'x'" in body.get("error", ""), f"REST short row: {status} {body}")
    code, _ = code_of(lambda: stub.Classify(classify_req("nope", examples_input(ROWS)), timeout=20))
    check(code == grpc.StatusCode.NOT_FOUND, f"Classify of an unknown model gave {code}")


def multi_req(tasks, rows=ROWS):
    req = inference_pb2.MultiInferenceRequest()
    for model, method in tasks:
        t = req.tasks.add()
        t.model_spec.name = model
        t.method_name = method
    req.input.CopyFrom(examples_input(rows))
    return req


def check_multi_inference(stub, rest, check):
    # One sigmoid unit: classify gives ("0", 1-p), ("1", p) and regress gives p, from one run.
    res = stub.MultiInference(multi_req([("sigmoid", CLASSIFY), ("sigmoid", REGRESS)]), timeout=20)
    check(len(res.results) == 2, f"MultiInference gave {len(res.results)} results")
    if len(res.results) == 2:
        got_c = classes_of(res.results[0].classification_result)
        got_r = [r.value for r in res.results[1].regression_result.regressions]
        _, want_c = rest_call(rest, "/v1/models/sigmoid:classify", {"examples": [{"x": r} for r in ROWS]})
        _, want_r = rest_call(rest, "/v1/models/sigmoid:regress", {"examples": [{"x": r} for r in ROWS]})
        check(same_classes(got_c, want_c["results"]), f"MultiInference classify {got_c} vs REST {want_c}")
        check(len(got_r) == 3 and all(abs(g - w) < 1e-6 for g, w in zip(got_r, want_r["results"])),
              f"MultiInference regress {got_r} vs REST {want_r}")
        check(all(abs(c[1][1] - p) < 1e-6 and c[1][0] == "1" for c, p in zip(got_c, got_r)),
              f"class '1' scores {got_c} are not the regression {got_r}")
        check(all(r.model_spec.name == "sigmoid" and r.model_spec.version.value == 1 for r in res.results),
              f"MultiInference model_specs {[r.model_spec for r in res.results]}")
    bad = [
        ([], ["no tasks"]),
        ([("sigmoid", CLASSIFY), ("m", CLASSIFY)], ["'m'", "same model"]),
        ([("sigmoid", "tensorflow/serving/predict")], ["method_name", "tensorflow/serving/predict"]),
        ([("sigmoid", REGRESS), ("sigmoid", REGRESS)], ["repeats task 0"]),
        ([("m", CLASSIFY), ("m", REGRESS)], ["cannot :regress"]),
    ]
    for tasks, words in bad:
        code, details = code_of(lambda: stub.MultiInference(multi_req(tasks), timeout=20))
        check(code == grpc.StatusCode.INVALID_ARGUMENT and all(w in details for w in words),
              f"MultiInference {tasks}: {code} '{details}', expected {words}")


def check_metadata(stub, rest, check):
    for model in ("m", "reg"):
        req = get_model_metadata_pb2.GetModelMetadataRequest()
        req.model_spec.name = model
        req.metadata_field.append("signature_def")
        res = stub.GetModelMetadata(req, timeout=20)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        check(res.metadata["signature_def"].Unpack(sigs), "metadata['signature_def'] is not a SignatureDefMap")
        got = sigs.signature_def["serving_default"]
        status, body = rest_call(rest, f"/v1/models/{model}/metadata")
        want = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
        check(status == 200 and got.method_name == want["method_name"] == "tensorflow/serving/predict",
              f"{model}: method_name {got.method_name} vs {want.get('method_name')}")
        for side in ("inputs", "outputs"):
            g, w = getattr(got, side), want[side]
            check(sorted(g.keys()) == sorted(w.keys()), f"{model} {side}: {list(g.keys())} vs {list(w.keys())}")
            for name, info in g.items():
                if name not in w:
                    continue
                check(tensor_pb2.DataType.Name(info.dtype) == w[name]["dtype"] and info.name == name,
                      f"{model} {side} {name}: {info.dtype} vs {w[name]['dtype']}")
                dims = [d.size for d in info.tensor_shape.dim]
                check(dims == [int(d["size"]) for d in w[name]["tensor_shape"]["dim"]] and dims[0] == -1,
                      f"{model} {side} {name}: dims {dims} vs {w[name]['tensor_shape']}")
        check(res.model_spec.name == model and res.model_spec.version.value == 1, f"metadata spec {res.model_spec}")
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "m"
    code, details = code_of(lambda: stub.GetModelMetadata(req, timeout=20))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "signature_def" in details, f"no metadata_field: {code} {details}")
    req.metadata_field.append("assets")
    code, details = code_of(lambda: stub.GetModelMetadata(req, timeout=20))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "'assets'" in details, f"metadata_field assets: {code} {details}")
    req.ClearField("metadata_field")
    req.metadata_field.append("signature_def")
    req.model_spec.name = "nope"
    code, _ = code_of(lambda: stub.GetModelMetadata(req, timeout=20))
    check(code == grpc.StatusCode.NOT_FOUND, f"metadata of an unknown model gave {code}")


def metric(text, name, labels):
    """The value of one Prometheus sample (0 when absent)."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def check_deadlines(serve, models, tmp, start_server, stop_server, check):
    """A server whose batches wait 6 s for company and whose calls may take 500 ms: a lone call is
    answered DEADLINE_EXCEEDED at its deadline (the server's or the client's), long before the
    batch would leave, and is then dropped from the queue without running the model. (With 3 s, a
    loaded machine once delivered the second call so late that the batch left within its deadline.)"""
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    batching = os.path.join(tmp, "slow_batching.txt")
    with open(batching, "w") as f:
        f.write("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 6000000 }\n"
                "max_enqueued_batches { value: 10 }\nnum_batch_threads { value: 1 }\n")
    log = open(os.path.join(tmp, "deadline_server.log"), "w")
    proc, rest, port = start_server(serve, ["--model_name=m", f"--model_base_path={models}", "--rest_api_port=0",
                                            "--port=0", "--enable_batching", f"--batching_parameters_file={batching}",
                                            "--request_timeout_ms=500"], log)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def predict_req(rows):
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "m"
            x = req.inputs["x"]
            x.dtype = tensor_pb2.DT_FLOAT
            x.tensor_shape.dim.add().size = len(rows)
            x.tensor_shape.dim.add().size = 4
            x.float_val.extend(v for r in rows for v in r)
            return req

        first = time.time()
        code, details = code_of(lambda: stub.Predict(predict_req(ROWS[:1]), timeout=20))
        took = time.time() - first
        check(code == grpc.StatusCode.DEADLINE_EXCEEDED and "request_timeout_ms=500" in details and 0.4 < took < 2.5,
              f"--request_timeout_ms=500 with a 6 s batch timeout: {code} '{details}' after {took:.2f} s")
        start = time.time()
        code, _ = code_of(lambda: stub.Classify(classify_req("m", examples_input(ROWS[:1])), timeout=0.3))
        took = time.time() - start
        check(code == grpc.StatusCode.DEADLINE_EXCEEDED and took < 2.5, f"client deadline 0.3 s: {code} after {took:.2f} s")
        # A full batch leaves at once, well within the deadline.
        res = stub.Predict(predict_req((ROWS * 3)[:8]), timeout=20)
        check(len(res.outputs["probs"].float_val) == 24, f"a full batch was not answered: {res}")
        # After the 6 s batch timeout the two abandoned calls have left the queue unrun: one batch ran.
        time.sleep(max(0.0, first + 6.8 - time.time()))
        text = rest_text(rest, "/monitoring/prometheus/metrics")
        check(metric(text, "meshflow_serving_requests_total", 'model="m",api="grpc_predict",status="504"') == 1 and
              metric(text, "meshflow_serving_requests_total", 'model="m",api="grpc_classify",status="504"') == 1,
              "the deadline answers were not counted as 504:\n" + text)
        check(metric(text, "meshflow_serving_batch_size_count", "") == 1,
              "expired requests ran anyway (batches: %s)" % metric(text, "meshflow_serving_batch_size_count", ""))
        channel.close()
    finally:
        rc = stop_server(proc)
        check(rc == 0, f"the deadline server exited with {rc} after SIGTERM")
        log.close()
