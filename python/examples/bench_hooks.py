#!/usr/bin/env python3
"""The cost of sparcol's DDP hooks against the bare sparcol collective on the same bucket sizes.

    mpirun -np 4 /usr/bin/python3 python/examples/bench_hooks.py [--density 0.01] [--iters 100]

The bucket sizes are those DDP gives train_fmnist.py's model after its bucket rebuild (recorded from
two iterations). For each bucket and hook, every rank times --iters calls of the hook on a fresh
gradient (the copy is outside the timing) and --iters runs of the collective alone on the same size:
dense: the direct all-reduce; topk: the sparse all-gather of k = density * n pairs; rbgs: the
all-reduce of one block of k values; sign: the all-gather of the n sign bits and one scale. The hook
adds the compression, the error-feedback update, the NaN verdict shared with the call fingerprint,
the aggregation and Python. Times: mean per call over the iterations, averaged over the ranks.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_fmnist  # noqa: E402  (puts the built package on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import sparcol  # noqa: E402
import sparcol.torch as st  # noqa: E402
from sparcol.torch import hooks  # noqa: E402


def bucket_sizes(comm):
    sizes = {}

    def record(state, bucket):
        sizes[bucket.index()] = bucket.buffer().numel()
        return hooks.dense_hook(state, bucket)

    torch.manual_seed(0)
    ddp = DDP(train_fmnist.Cnn())
    ddp.register_comm_hook(hooks.HookState(comm=comm), record)
    for _ in range(2):
        sizes.clear()
        ddp(torch.randn(4, 1, 28, 28)).sum().backward()
    return [sizes[i] for i in sorted(sizes)]


def mean_over_ranks(comm, value):
    box = np.array([value], np.float32)
    sparcol.dense_allreduce_sum(comm, box)
    return float(box[0]) / comm.size


def timed(comm, fn, iters, prepare=None):
    total = 0.0
    comm.barrier()
    for i in range(iters):
        if prepare is not None:
            prepare(i)
        t0 = time.perf_counter()
        fn(i)
        total += time.perf_counter() - t0
    return mean_over_ranks(comm, total / iters)


def main():
    p = argparse.ArgumentParser(description="sparcol hooks vs bare collectives")
    p.add_argument("--density", type=float, default=0.01)
    p.add_argument("--iters", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
    comm = st.init_process_group()
    K = comm.size
    sizes = bucket_sizes(comm)
    rng = np.random.default_rng(comm.rank)
    if comm.rank == 0:
        print(f"# bench_hooks: {K} ranks, density {args.density}, buckets {sizes}, {args.iters} calls each")
        print(f"{'bucket':>8} {'hook':>6} {'hook us':>10} {'bare us':>10} {'overhead us':>12} {'bytes sent':>11}")
    for index, n in enumerate(sizes):
        grads = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for _ in range(4)]
        work = torch.empty(n)
        k = sparcol.k_round(args.density, n)
        kb = sparcol.k_floor(args.density, n)
        for name in ("dense", "topk", "rbgs", "sign"):
            state = hooks.HookState(comm=comm, density=args.density, start_iter=1)
            hook = hooks.HOOKS[name]
            bucket = hooks.StandaloneBucket(index, work, True)
            hook(state, bucket)  # the dense first iteration; the state exists after it
            hook(state, bucket)
            before = state.bytes_sent
            t_hook = timed(comm, lambda i: hook(state, bucket), args.iters,
                           prepare=lambda i: work.copy_(grads[i % len(grads)]))
            sent = (state.bytes_sent - before) / args.iters
            data = work.numpy()
            if name == "dense":
                ring = sparcol.RingAllreduce(comm, n, algorithm="direct")
                bare = lambda i: ring.run(data, i)  # noqa: E731
            elif name == "topk":
                sg = sparcol.SparseAllgather(comm, n, expected_k=k)
                idx = np.sort(rng.choice(n, k, replace=False)).astype(np.uint32)
                val = rng.standard_normal(k).astype(np.float32)
                bare = lambda i: sg.run(idx, val, i)  # noqa: E731
            elif name == "rbgs":
                rb = sparcol.RbgsAllreduce(comm, n, kb)
                bare = lambda i: rb.run(data, 0, i)  # noqa: E731
            else:
                sa = sparcol.SignAllgather(comm, n)
                words = rng.integers(0, 2**32, sa.words, dtype=np.uint64).astype(np.uint32)
                bare = lambda i: sa.run(words, 0.5, i)  # noqa: E731
            t_bare = timed(comm, bare, args.iters, prepare=lambda i: work.copy_(grads[i % len(grads)]))
            if comm.rank == 0:
                print(f"{n:>8} {name:>6} {1e6 * t_hook:>10.0f} {1e6 * t_bare:>10.0f} {1e6 * (t_hook - t_bare):>12.0f} "
                      f"{sent:>11.0f}", flush=True)


if __name__ == "__main__":
    main()
