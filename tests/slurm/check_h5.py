#!/usr/bin/python3
"""Checks HDF5 outputs of jobs run through Slurm (tests/slurm/slurm_jobs_test.sh).

  check_h5.py bench FILE RANKS [OPS]   a complete sparcol-bench file (docs/bench.md layout): the
                                       given ranks, every row checked and right, every op present
  check_h5.py train FILE RANKS         a sparcol-train trace (docs/traces.md): world_size RANKS,
                                       groups train and eval, at least one evaluation, finite test
                                       accuracies in [0, 1]
Prints one line per problem and exits 1 if there is any.
"""
import math
import sys

import h5py
import numpy as np

ALL_OPS = ["dense-ring", "rbgs", "sparse-allgather", "mpi-allreduce", "mpi-allgatherv"]


def check_bench(path, ranks, ops):
    problems = []
    with h5py.File(path, "r") as f:
        if f.attrs.get("program") not in ("sparcol-bench", b"sparcol-bench"):
            problems.append(f"attribute program is {f.attrs.get('program')!r}")
        if int(f.attrs.get("ranks", -1)) != ranks:
            problems.append(f"attribute ranks is {f.attrs.get('ranks')}, expected {ranks}")
        if "total_wrong" not in f.attrs:
            problems.append("no total_wrong attribute: the sweep did not complete")
        elif int(f.attrs["total_wrong"]) != 0:
            problems.append(f"total_wrong is {int(f.attrs['total_wrong'])}")
        for op in ops:
            if op not in f:
                problems.append(f"group /{op} missing")
                continue
            g = f[op]
            n = len(g["bytes"])
            if n == 0:
                problems.append(f"/{op} has no rows")
            for name in ("time_us", "wrong", "ranks", "count"):
                if len(g[name]) != n:
                    problems.append(f"/{op}/{name} has {len(g[name])} rows, /{op}/bytes {n}")
            if np.any(np.asarray(g["wrong"]) != 0):
                problems.append(f"/{op}/wrong is not all 0: {list(g['wrong'])}")
            if np.any(np.asarray(g["ranks"]) != ranks):
                problems.append(f"/{op}/ranks is not all {ranks}")
            t = np.asarray(g["time_us"])
            if not np.all(np.isfinite(t) & (t > 0)):
                problems.append(f"/{op}/time_us has non-positive or non-finite times: {list(t)}")
    return problems


def check_train(path, ranks):
    problems = []
    with h5py.File(path, "r") as f:
        for group in ("train", "eval"):
            if group not in f:
                problems.append(f"group /{group} missing")
        if problems:
            return problems
        if int(f.attrs.get("world_size", -1)) != ranks:
            problems.append(f"attribute world_size is {f.attrs.get('world_size')}, expected {ranks}")
        ev = f["eval"]
        acc_name = "test_accuracy" if "test_accuracy" in ev else None
        if acc_name is None:
            problems.append(f"/eval has no accuracy dataset (has {list(ev)})")
        else:
            acc = np.asarray(ev[acc_name], dtype=float)
            if acc.size == 0:
                problems.append(f"/eval/{acc_name} is empty")
            elif not all(math.isfinite(a) and 0.0 <= a <= 1.0 for a in acc):
                problems.append(f"/eval/{acc_name} outside [0, 1]: {list(acc)}")
        if len(f["train"]) == 0:
            problems.append("/train holds no datasets")
    return problems


def main(argv):
    if len(argv) < 4 or argv[1] not in ("bench", "train"):
        print(__doc__)
        return 2
    kind, path, ranks = argv[1], argv[2], int(argv[3])
    try:
        if kind == "bench":
            ops = argv[4].split(",") if len(argv) > 4 and argv[4] != "all" else ALL_OPS
            problems = check_bench(path, ranks, ops)
        else:
            problems = check_train(path, ranks)
    except (OSError, KeyError) as e:
        problems = [f"cannot read: {e}"]
    for p in problems:
        print(f"{path}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
