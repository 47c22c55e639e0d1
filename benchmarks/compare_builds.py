#!/usr/bin/env python3
"""Speed of one tree against another: the same benchmarks from two build folders, run in
alternating rounds (before, after, before, ...) so both see the same machine load, then per
workload the median of each side, its range, and after/before.

  benchmarks/compare_builds.py BEFORE_BUILD AFTER_BUILD [--rounds 5] [--only fit,data_parallel,matmul]

bench_fit: Meshflow's samples/s per workload (2 threads); bench_data_parallel: 2-rank samples/s
per model and batch (mpirun -np 2, 1 thread each); bench_matmul: GFLOP/s of meshflow per size
(1 thread, n up to 1024)."""
import argparse
import os
import re
import statistics
import subprocess


def run(cmd, env):
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def fit(build):
    text = run([f"{build}/benchmarks/bench_fit", "20"], {"OMP_NUM_THREADS": "2"})
    return {f"fit {m[1]}": float(m[2]) for m in re.finditer(r"^(\w+_b\d+)\s+([\d.]+)", text, re.M)}


def data_parallel(build):
    text = run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                f"{build}/benchmarks/bench_data_parallel"], {"OMP_NUM_THREADS": "1"})
    pattern = r"^(\w+)\s+global batch\s+(\d+): 1 rank\s+\d+ samples/s, 2 ranks\s+(\d+) samples/s"
    return {f"data_parallel {m[1]} b{m[2]}": float(m[3]) for m in re.finditer(pattern, text, re.M)}


def matmul(build):
    text = run([f"{build}/benchmarks/bench_matmul", "1024"], {"OMP_NUM_THREADS": "1"})
    square = text.split("batched")[0]
    return {f"matmul n={m[1]}": float(m[2]) for m in re.finditer(r"^\s+(\d+)\s+([\d.]+)\s+[\d.]+", square, re.M)}


BENCHES = {"fit": fit, "data_parallel": data_parallel, "matmul": matmul}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default=",".join(BENCHES))
    a = p.parse_args()
    samples = {"before": {}, "after": {}}
    for r in range(a.rounds):
        for side, build in (("before", a.before), ("after", a.after)):
            for name in a.only.split(","):
                for key, value in BENCHES[name](build).items():
                    samples[side].setdefault(key, []).append(value)
        print(f"round {r + 1} of {a.rounds} done", flush=True)
    print(f"{'workload':28} {'before (median, range)':>30} {'after (median, range)':>30} {'after/before':>13}")
    for key, before in samples["before"].items():
        after = samples["after"].get(key, [])
        if not after:
            continue
        mb, ma = statistics.median(before), statistics.median(after)
        print(f"{key:28} {mb:12.1f} ({min(before):.1f}-{max(before):.1f}) {ma:12.1f} ({min(after):.1f}-{max(after):.1f})"
              f" {ma / mb:12.3f}x")


if __name__ == "__main__":
    main()
