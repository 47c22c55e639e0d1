#!/usr/bin/env python3
"""PyTorch peer for bench_gpt: the same GPT (pre-norm blocks, causal attention, exact GELU MLP of
4 x width, tied output head), the same batch and AdamW, timed the same way (median step after
warm-up steps).

  gpt_torch.py THREADS STEPS VOCAB CONTEXT LAYERS HEADS WIDTH BATCH

Prints "torch <tokens per second> <milliseconds per step>". Run with
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (one OpenMP pool for BLAS and torch).
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

threads, steps, vocab, context, layers, heads, width, batch = map(int, sys.argv[1:9])
torch.set_num_threads(threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        split = lambda y: y.view(b, t, heads, c // heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        s = (q @ k.transpose(-1, -2)) / (c // heads) ** 0.5
        s = s.masked_fill(~self.mask[:t, :t], float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(a)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block() for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, ids):
        h = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            h = b(h)
        return self.ln(h) @ self.tok.weight.t()


model = Gpt()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, vocab, (batch, context))
y = torch.randint(0, vocab, (batch, context))


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
    loss.backward()
    opt.step()


for _ in range(3):
    step()
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
s = statistics.median(times)
print(f"torch {batch * context / s:.1f} {s * 1e3:.3f}")
