#!/usr/bin/python3
"""Checks a sparcol-train trace against its contract (docs/traces.md), optionally against another.

  train_check_trace.py TRACE --ranks K [--steps N] [--evals M] [--min-accuracy A] [--compare OTHER]

--compare: every column of both groups except the timings must be bitwise equal (a resumed run
against the uninterrupted one). Prints what is wrong and exits 1, or prints "ok" and exits 0.
"""
import argparse
import sys

import h5py
import numpy as np

TRAIN = {
    "step": "int64", "epoch": "float64", "loss": "float64", "accuracy": "float64", "lr": "float64",
    "bytes_sent": "float64", "bytes_recv": "float64", "elements_up": "float64", "elements_down": "float64",
    "time_compute_s": "float64", "time_compress_s": "float64", "time_comm_s": "float64",
    "time_step_s": "float64", "wall_time_s": "float64", "skipped": "int64", "comm_rounds": "int64",
    "bytes_up": "float64", "bytes_down": "float64", "bytes_sent_down": "float64",
}
EVAL = {
    "step": "int64", "epoch": "float64", "train_loss": "float64", "train_accuracy": "float64",
    "test_loss": "float64", "test_accuracy": "float64", "time_eval_s": "float64", "wall_time_s": "float64",
    "test_accuracy_worst": "float64", "consensus_distance": "float64", "averaging_bytes_sent": "float64",
}
ATTRS = ["program", "version", "config", "model", "num_params", "optimizer", "compressor", "density", "alpha",
         "momentum", "weight_decay", "lr", "schedule", "epochs", "batch", "world_size", "partition", "seed",
         "steps_per_epoch", "total_steps", "completed_steps", "skipped_steps", "rcc", "wall_time_s", "dropit",
         "dropit_layers", "per_worker_models", "rounds_total", "bytes_sent_total", "bytes_recv_total"]


def timing(name):
    return name.startswith("time_") or name == "wall_time_s"


def check(path, a):
    bad = []
    with h5py.File(path, "r") as f:
        for name in ATTRS:
            if name not in f.attrs:
                bad.append(f"attribute {name} missing")
        if f.attrs.get("program") != "sparcol-train":
            bad.append(f"program is {f.attrs.get('program')!r}")
        if int(f.attrs.get("world_size", -1)) != a.ranks:
            bad.append(f"world_size is {f.attrs.get('world_size')}, expected {a.ranks}")
        for group, cols in (("train", TRAIN), ("eval", EVAL)):
            if group not in f:
                bad.append(f"group /{group} missing")
                continue
            g = f[group]
            lengths = set()
            for name, dtype in cols.items():
                if name not in g:
                    bad.append(f"/{group}/{name} missing")
                    continue
                d = g[name]
                if d.ndim != 1 or str(d.dtype) != dtype:
                    bad.append(f"/{group}/{name} is {d.dtype} with shape {d.shape}, expected 1-D {dtype}")
                lengths.add(len(d))
                v = np.asarray(d)
                if dtype == "float64" and not np.all(np.isfinite(v)):
                    bad.append(f"/{group}/{name} holds non-finite values")
                if name.endswith("accuracy") and not np.all((v >= 0) & (v <= 1)):
                    bad.append(f"/{group}/{name} outside [0, 1]")
                if (timing(name) or name.startswith(("bytes", "elements")) or name == "lr") and np.any(v < 0):
                    bad.append(f"/{group}/{name} has negative values")
            if len(lengths) > 1:
                bad.append(f"/{group} datasets differ in length: {sorted(lengths)}")
        if bad:
            return bad
        steps = np.asarray(f["train/step"])
        first = int(f.attrs["first_step"]) if "first_step" in f.attrs else 0
        if not np.array_equal(steps, np.arange(first + 1, first + 1 + len(steps))):
            bad.append("/train/step is not consecutive from first_step + 1")
        if a.steps is not None and len(steps) != a.steps:
            bad.append(f"/train has {len(steps)} rows, expected {a.steps}")
        if len(steps) and int(f.attrs["completed_steps"]) != int(steps[-1]):
            bad.append(f"completed_steps {f.attrs['completed_steps']} != last step {steps[-1]}")
        ev = np.asarray(f["eval/step"])
        if not set(ev.tolist()) <= set(steps.tolist()):
            bad.append("/eval/step holds steps that /train does not")
        if a.evals is not None and len(ev) != a.evals:
            bad.append(f"/eval has {len(ev)} rows, expected {a.evals}")
        acc = np.asarray(f["eval/test_accuracy"])
        if a.min_accuracy is not None and (len(acc) == 0 or acc[-1] < a.min_accuracy):
            bad.append(f"final test accuracy {acc[-1] if len(acc) else None} below {a.min_accuracy}")
        if np.any(np.diff(np.asarray(f["train/wall_time_s"])) < 0):
            bad.append("/train/wall_time_s decreases")
        if a.compare:
            with h5py.File(a.compare, "r") as o:
                for group, cols in (("train", TRAIN), ("eval", EVAL)):
                    for name in cols:
                        if timing(name):
                            continue
                        x, y = np.asarray(f[group][name]), np.asarray(o[group][name])
                        if x.shape != y.shape or x.tobytes() != y.tobytes():
                            bad.append(f"/{group}/{name} differs from {a.compare}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--evals", type=int)
    ap.add_argument("--min-accuracy", type=float)
    ap.add_argument("--compare")
    a = ap.parse_args()
    try:
        bad = check(a.trace, a)
    except OSError as e:
        bad = [f"cannot read: {e}"]
    for b in bad:
        print(f"{a.trace}: {b}")
    if not bad:
        print(f"{a.trace}: ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
