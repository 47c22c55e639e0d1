# PyTorch peer for bench_data_parallel: the same MLP and CNN, SGD, the same global batches, trained
# by 1 process alone and by N processes under DistributedDataParallel (gloo on 127.0.0.1), 1 thread
# each; prints samples/s and the ratio like the Meshflow benchmark.
#   OMP_NUM_THREADS=1 /usr/bin/python3 benchmarks/peers/ddp_torch.py --ranks 2
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def mlp():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))


CASES = [("mlp", mlp, (784,), 128, 40), ("mlp", mlp, (784,), 512, 10), ("cnn", cnn, (1, 28, 28), 64, 16)]


def epoch_rate(model, x, y, batch, rank, ranks, repeats=3):
    """Best samples/s over `repeats` epochs (after a warm-up epoch); each rank takes its share of a batch."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    share = batch // ranks

    def epoch():
        for b in range(0, x.shape[0], batch):
            xb = x[b + rank * share:b + (rank + 1) * share]
            yb = y[b + rank * share:b + (rank + 1) * share]
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()

    epoch()
    best = 0.0
    for _ in range(repeats):
        if ranks > 1:
            dist.barrier()
        t0 = time.perf_counter()
        epoch()
        best = max(best, x.shape[0] / (time.perf_counter() - t0))
    return best


def worker(rank, ranks, results):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = "29533"
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    for name, build, sample, batch, steps in CASES:
        g = torch.Generator().manual_seed(3)
        x = torch.rand((batch * steps,) + sample, generator=g)
        y = (torch.rand(batch * steps, generator=g) * 10).long()
        model = nn.parallel.DistributedDataParallel(build())
        rate = epoch_rate(model, x, y, batch, rank, ranks)
        if rank == 0:
            results[f"{name}{batch}"] = rate
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    alone = {}
    for name, build, sample, batch, steps in CASES:
        g = torch.Generator().manual_seed(3)
        x = torch.rand((batch * steps,) + sample, generator=g)
        y = (torch.rand(batch * steps, generator=g) * 10).long()
        alone[f"{name}{batch}"] = epoch_rate(build(), x, y, batch, 0, 1)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(args.ranks, results), nprocs=args.ranks, join=True)
        together = dict(results)
    print(f"torch {torch.__version__} DDP (gloo, 127.0.0.1), {args.ranks} ranks, 1 thread each")
    for name, _, _, batch, _ in CASES:
        key = f"{name}{batch}"
        print(f"{name:<4} global batch {batch:3d}: 1 rank {alone[key]:8.0f} samples/s, {args.ranks} ranks "
              f"{together[key]:8.0f} samples/s, ratio {together[key] / alone[key]:.2f}x")


if __name__ == "__main__":
    main()
