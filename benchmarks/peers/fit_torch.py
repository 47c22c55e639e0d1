#!/usr/bin/env python3
"""PyTorch peer for bench_fit: the same models, batch sizes and optimizer, timed the same way.

Prints one line per workload: "<name> <samples per second> <microseconds per step>".
Run with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp so BLAS and torch share
one OpenMP pool (the default pthread OpenBLAS fights torch's threads).
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
device = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cpu")
torch.set_num_threads(threads)
torch.manual_seed(0)


class KerasMHA(nn.Module):
    """Keras's MultiHeadAttention: per-head projections of size key_dim (not dim / heads)."""

    def __init__(self, dim, heads, key_dim):
        super().__init__()
        self.h, self.k = heads, key_dim
        self.q = nn.Linear(dim, heads * key_dim)
        self.kk = nn.Linear(dim, heads * key_dim)
        self.v = nn.Linear(dim, heads * key_dim)
        self.o = nn.Linear(heads * key_dim, dim)

    def forward(self, x):
        b, t, _ = x.shape
        def split(y):
            return y.view(b, t, self.h, self.k).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.kk(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / self.k ** 0.5, dim=-1)
        return self.o((att @ v).transpose(1, 2).reshape(b, t, self.h * self.k))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10000, 64)
        self.mha = KerasMHA(64, 2, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, ids):
        x = self.emb(ids)
        return torch.sigmoid(self.out(self.mha(x).mean(dim=1)))


def mlp():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))


def tiny():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))


def bench(name, model, x, y, loss_fn, steps):
    model, x, y = model.to(device), x.to(device), y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            loss.item()  # Keras's train_on_batch reads the loss every step; so does this loop on a GPU
    for _ in range(5):
        step()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / steps)
    t = min(times)
    print(f"{name} {x.shape[0] / t:.1f} {t * 1e6:.1f}", flush=True)


bench("mlp_b128", mlp(), torch.rand(128, 784), torch.randint(0, 10, (128,)), F.cross_entropy, steps)
bench("mlp_b32", mlp(), torch.rand(32, 784), torch.randint(0, 10, (32,)), F.cross_entropy, steps)
bench("cnn_b64", cnn(), torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)), F.cross_entropy, max(steps // 2, 5))
bench("attention_b32", Attention(), torch.randint(0, 10000, (32, 128)), torch.randint(0, 2, (32, 1)).float(),
      F.binary_cross_entropy, max(steps // 2, 5))
bench("tiny_b32", tiny(), torch.rand(32, 4), torch.rand(32, 1), F.mse_loss, steps * 10)
