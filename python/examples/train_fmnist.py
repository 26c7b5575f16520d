#!/usr/bin/env python3
"""A small CNN on Fashion-MNIST with sparcol from PyTorch (docs/python.md).

    mpirun -np 4 /usr/bin/python3 python/examples/train_fmnist.py --method gmc --density 0.01

Two ways to communicate:
  * default: sparcol.torch.DistributedOptimizer runs a sparcol method (--method, --compressor,
    --density) on the flat parameter vector; no DDP;
  * --ddp NAME: DistributedDataParallel over gloo with torch.optim.SGD (momentum), the gradients
    averaged by NAME: gloo (DDP's own all-reduce), powersgd (torch's PowerSGD hook, --powersgd-rank),
    or one of sparcol's hooks: dense, topk, rbgs, sign (--density).
Prints per epoch the test accuracy, the time per training step and the payload bytes this rank sent
per step (--json FILE writes the summary). The model is the native trainer's cnn (docs/models.md):
conv5x5(1->16) relu pool, conv5x5(16->32) relu pool, fc(1568->128) relu, fc(128->10); 215,370 parameters.
The data come from the Debian package dataset-fashion-mnist; each rank trains on its 1/K of the
training set (an i.i.d. partition drawn from --seed) and evaluates 1/K of the test set.
"""

import argparse
import gzip
import json
import os
import sys
import time


def _use_build_tree():
    """Puts the built package first on sys.path: $SPARCOL_BUILD_DIR/python, else build/python of the
    repository this file is in; an installed sparcol is used when neither holds one."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for build in (os.environ.get("SPARCOL_BUILD_DIR"), os.path.join(root, "build")):
        if build:
            d = os.path.join(build if os.path.isabs(build) else os.path.join(os.getcwd(), build), "python")
            if os.path.isfile(os.path.join(d, "sparcol", "__init__.py")):
                sys.path.insert(0, d)
                return


_use_build_tree()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    import sparcol  # noqa: E402
    import sparcol.torch as st  # noqa: E402
except ImportError as e:
    sys.exit(f"train_fmnist: sparcol's Python package is not importable ({e}); build it (README, docs/python.md) "
             "or set SPARCOL_BUILD_DIR to the build directory")

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--method", default="gmc", help="sparcol method (" + ", ".join(sparcol.method_names()) + ")")
    p.add_argument("--compressor", default="topk", help="sparcol compressor of the method")
    p.add_argument("--density", type=float, default=0.01, help="fraction of the gradient sent")
    p.add_argument("--ddp", default=None, choices=["gloo", "powersgd", "dense", "topk", "rbgs", "sign"],
                   help="train with DDP and this gradient averaging instead of a sparcol optimizer")
    p.add_argument("--powersgd-rank", type=int, default=2, help="matrix rank of torch's PowerSGD hook")
    p.add_argument("--start-iter", type=int, default=2, help="hooks: dense iterations before compression")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--data", default=DATA_DIR, help="directory with the four Fashion-MNIST .gz files")
    p.add_argument("--json", default=None, help="write the summary (rank 0) to this file")
    return p.parse_args()


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 8).astype(np.int64)
    x = (images.astype(np.float32) / np.float32(255) - np.float32(MEAN)) / np.float32(STD)
    return torch.from_numpy(x), torch.from_numpy(labels)


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = torch.nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = torch.nn.Linear(32 * 7 * 7, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class PowerSgdBytes:
    """Counts the payload of torch's PowerSGD hook: the bucket itself in its dense warm-up iterations,
    then the P and Q matrices it all-reduces (dist.all_reduce), each as a ring all-reduce sends them:
    2 (K - 1) / K of the tensor's bytes."""

    def __init__(self, size):
        import torch.distributed as dist
        self.factor = 2.0 * (size - 1) / size
        self.bytes = 0.0
        original = dist.all_reduce

        def counting_all_reduce(tensor, *args, **kwargs):
            self.bytes += self.factor * tensor.numel() * tensor.element_size()
            return original(tensor, *args, **kwargs)

        dist.all_reduce = counting_all_reduce

    def wrap(self, hook):
        def counted(state, bucket):
            if state.iter < state.start_powerSGD_iter:
                self.bytes += self.factor * bucket.buffer().numel() * bucket.buffer().element_size()
            return hook(state, bucket)
        return counted


def build(args, model, comm):
    """The optimizer, the model to call, and a function giving this rank's bytes sent so far."""
    if args.ddp is None:
        opt = st.DistributedOptimizer(model.parameters(), method=args.method, compressor=args.compressor,
                                      density=args.density, lr=args.lr, momentum=args.momentum,
                                      weight_decay=args.weight_decay, comm=comm)
        return opt, model, lambda: opt.bytes_sent
    from torch.nn.parallel import DistributedDataParallel as DDP
    st.init_process_group(comm)
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    n = sum(p.numel() for p in model.parameters())
    steps = [0]
    if args.ddp == "gloo":
        # DDP's own all-reduce (gloo's ring): 2 (K - 1) / K of the gradient's bytes per step.
        per_step = 2.0 * (comm.size - 1) / comm.size * 4 * n
        return opt, ddp, lambda: per_step * steps[0], steps
    if args.ddp == "powersgd":
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
        counter = PowerSgdBytes(comm.size)
        state = powersgd.PowerSGDState(process_group=None, matrix_approximation_rank=args.powersgd_rank,
                                       start_powerSGD_iter=max(2, args.start_iter), random_seed=args.seed)
        ddp.register_comm_hook(state, counter.wrap(powersgd.powerSGD_hook))
        return opt, ddp, lambda: counter.bytes
    state = st.hooks.register(ddp, args.ddp, comm=comm, density=args.density, start_iter=args.start_iter,
                              seed=args.seed)
    return opt, ddp, lambda: state.bytes_sent


def evaluate(model, x, y, comm):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            correct += int((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum())
    model.train()
    box = np.array([correct, len(x)], np.float32)  # counts below 2^24 are exact in float32
    sparcol.dense_allreduce_sum(comm, box)
    return 100.0 * box[0] / box[1]


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    comm = sparcol.world()
    K, rank = comm.size, comm.rank
    torch.manual_seed(args.seed)  # the same initial model on every rank
    model = Cnn()
    n_params = sum(p.numel() for p in model.parameters())

    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "test")
    order = np.random.default_rng(args.seed).permutation(len(x_train))
    mine = order[rank::K][: len(x_train) // K]
    x_train, y_train = x_train[mine], y_train[mine]
    x_test, y_test = x_test[rank::K], y_test[rank::K]
    steps_per_epoch = len(x_train) // args.batch_size

    built = build(args, model, comm)
    opt, net, bytes_sent = built[0], built[1], built[2]
    gloo_steps = built[3] if len(built) > 3 else None
    what = (f"DDP + {args.ddp}" + (f" (rank {args.powersgd_rank})" if args.ddp == "powersgd" else "") +
            (f" (density {args.density})" if args.ddp in ("topk", "rbgs") else "")
            if args.ddp else f"sparcol {args.method}, {args.compressor} {args.density}")
    if rank == 0:
        print(f"# train_fmnist: {K} ranks, {what}; cnn {n_params} parameters; batch {args.batch_size}/rank, "
              f"lr {args.lr}, momentum {args.momentum}; {steps_per_epoch} steps/epoch; {args.threads} thread(s)/rank",
              flush=True)

    step, step_times, summary, bytes_at_5 = 0, [], {}, 0.0
    done = False
    for epoch in range(args.epochs):
        perm = torch.from_numpy(np.random.default_rng(args.seed * 1000 + epoch * K + rank).permutation(len(x_train)))
        loss_sum, t_epoch = 0.0, time.perf_counter()
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            step_times.append(time.perf_counter() - t0)
            loss_sum += float(loss)
            step += 1
            if gloo_steps is not None:
                gloo_steps[0] = step
            if step == 5:  # past the hooks' dense warm-up: the steady state starts here
                bytes_at_5 = bytes_sent()
            if args.max_steps and step >= args.max_steps:
                done = True
                break
        steps_done = b + 1
        with opt.model_parameters() if hasattr(opt, "model_parameters") else _nothing():
            acc = evaluate(model, x_test, y_test, comm)
        warm = step_times[5:] or step_times
        summary = {
            "ranks": K, "config": what, "epoch": epoch + 1, "steps": step, "loss": loss_sum / steps_done,
            "test_accuracy": acc, "time_per_step_ms": 1e3 * float(np.mean(warm)),
            "median_step_ms": 1e3 * float(np.median(warm)), "bytes_sent_per_step": bytes_sent() / step,
            "steady_bytes_per_step": (bytes_sent() - bytes_at_5) / (step - 5) if step > 5 else bytes_sent() / step,
            "epoch_time_s": time.perf_counter() - t_epoch, "parameters": n_params,
        }
        if rank == 0:
            print(f"epoch {epoch + 1}: loss {summary['loss']:.4f}  test accuracy {acc:.2f}%  "
                  f"time/step {summary['time_per_step_ms']:.1f} ms (median {summary['median_step_ms']:.1f})  "
                  f"sent/step {summary['steady_bytes_per_step']:.0f} B (rank 0, after step 5)  epoch {summary['epoch_time_s']:.1f} s",
                  flush=True)
        if done:
            break
    if rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    try:
        main()
    except (ValueError, TypeError, sparcol.Error) as e:  # bad flags: one line per rank, as the programs do
        rank = sparcol.world().rank if sparcol.mpi_initialized_here() else 0
        print(f"train_fmnist: rank {rank}: error: {e}", file=sys.stderr)
        # The programs' exit statuses (docs/errors.md): 2 for a bad argument, else the error's own.
        sys.exit(e.exit_code if isinstance(e, sparcol.Error) else 2)
