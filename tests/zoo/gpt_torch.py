#!/usr/bin/env python3
"""PyTorch reference for tests/zoo/test_gpt.cpp: the same GPT-2-style decoder written with torch ops
from the weights Meshflow wrote (float64), run on the same ids; writes logits, loss and every
weight's gradient.

  gpt_torch.py IN.safetensors OUT.safetensors HEADS LAYERS EPSILON

Weights are named as Meshflow names them (embeddings/token_embeddings, block_0/self_attention/query/kernel,
block_0/intermediate/kernel, final_norm/gamma, ...).
Keras's MultiHeadAttention keeps q/k/v kernels as [width, heads, head_dim] and the output kernel as
[heads, head_dim, width]; the block is pre-norm with an exact-GELU MLP of 4 x width."""
import json
import struct
import sys

import numpy as np
import torch


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = {"F64": np.float64, "F32": np.float32, "I64": np.int64}[v["dtype"]]
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"]).copy())
    return out


def write(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        b = t.detach().contiguous().numpy().astype(np.float64).tobytes()
        header[k] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    src, dst, heads, layers, eps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    t = read(src)
    ids, targets = t.pop("ids"), t.pop("targets")
    w = {k: v.clone().requires_grad_(True) for k, v in t.items()}
    tok, pos = w["embeddings/token_embeddings"], w["embeddings/position_embeddings"]
    B, T = ids.shape
    h = tok[ids] + pos[:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(layers):
        p = lambda name: w[f"block_{i}/{name}"]
        x = torch.nn.functional.layer_norm(h, (h.shape[-1],), p("attention_norm/gamma"), p("attention_norm/beta"), eps)

        def project(kind):
            k, b = p(f"self_attention/{kind}/kernel"), p(f"self_attention/{kind}/bias")
            return torch.einsum("btc,chd->bhtd", x, k) + b[None, :, None, :]

        q, k, v = project("query"), project("key"), project("value")
        s = torch.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(q.shape[-1])
        s = s.masked_fill(~mask, float("-inf"))
        a = torch.einsum("bhts,bhsd->bhtd", torch.softmax(s, -1), v)
        o = torch.einsum("bhtd,hdc->btc", a, p("self_attention/attention_output/kernel")) + p("self_attention/attention_output/bias")
        h = h + o
        x = torch.nn.functional.layer_norm(h, (h.shape[-1],), p("feedforward_norm/gamma"), p("feedforward_norm/beta"), eps)
        f = torch.nn.functional.gelu(x @ p("intermediate/kernel") + p("intermediate/bias")) @ p("output/kernel") + p("output/bias")
        h = h + f
    h = torch.nn.functional.layer_norm(h, (h.shape[-1],), w["final_norm/gamma"], w["final_norm/beta"], eps)
    logits = h @ tok.t()
    loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
    loss.backward()
    out = {"logits": logits, "loss": loss.reshape(1)}
    for k, v in w.items():
        out["grad/" + k] = v.grad
    write(dst, out)


if __name__ == "__main__":
    main()
