#!/usr/bin/python3
"""Checks the traces of tests/apps/train_kill_random.sh, all trials in one process.

  train_kill_check.py WORK --trials N --steps-per-epoch S --eval-every E --checkpoint-every C
                      --total-steps T

WORK holds ref.h5 (the uninterrupted run) and trial-<i>/ for i = 1..N with
  killed.h5  the trace as the kill left it (absent when the kill came before rank 0 created it)
  latest     the checkpoint --resume takes (ckpt-<step>), or "none"
  t.h5       the trace after the resume (or the fresh start)
A killed trace must open and hold exactly the reference's rows of both groups up to some step n that
is a flush step (0, an evaluation, an epoch end, a checkpoint, the end) and at least the latest
checkpoint's step; its completed_steps attribute is n. The final trace must equal the reference in
every column but the timings (train_check_trace.py --compare). Prints the problems and exits 1, or
exits 0.
"""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_check_trace as tct  # noqa: E402


def columns(group, names):
    return {n: np.asarray(group[n]) for n in names}


def check_killed(path, ref, latest_step, flush_steps):
    bad = []
    with h5py.File(path, "r") as f:
        for group, cols in (("train", tct.TRAIN), ("eval", tct.EVAL)):
            lengths = {len(f[group][n]) for n in cols}
            if len(lengths) != 1:
                return [f"/{group} datasets differ in length: {sorted(lengths)} (a torn row)"]
        steps = np.asarray(f["train/step"])
        n = len(steps)
        if not np.array_equal(steps, np.arange(1, n + 1)):
            bad.append("/train/step is not 1, 2, ..., n")
        if n not in flush_steps:
            bad.append(f"it ends at step {n}, which is no flush step")
        if n < latest_step:
            bad.append(f"it ends at step {n}, before the latest checkpoint's step {latest_step}")
        if int(f.attrs["completed_steps"]) != n:
            bad.append(f"completed_steps is {f.attrs['completed_steps']}, the rows end at {n}")
        for group, cols in (("train", tct.TRAIN), ("eval", tct.EVAL)):
            rows = len(f[group]["step"])
            for name in cols:
                if tct.timing(name):
                    continue
                mine = np.asarray(f[group][name])
                theirs = np.asarray(ref[group][name])[:rows]
                if mine.tobytes() != theirs.tobytes():
                    bad.append(f"/{group}/{name} differs from the uninterrupted run's first {rows} rows")
        ref_evals = np.asarray(ref["eval/step"])
        if len(f["eval/step"]) != int(np.sum(ref_evals <= n)):
            bad.append(f"{len(f['eval/step'])} evaluations up to step {n}, the reference has {np.sum(ref_evals <= n)}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work")
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--steps-per-epoch", type=int, required=True)
    ap.add_argument("--eval-every", type=int, required=True)
    ap.add_argument("--checkpoint-every", type=int, required=True)
    ap.add_argument("--total-steps", type=int, required=True)
    a = ap.parse_args()
    flush_steps = {0, a.total_steps}
    for s in range(1, a.total_steps + 1):
        if s % a.eval_every == 0 or s % a.steps_per_epoch == 0 or s % a.checkpoint_every == 0:
            flush_steps.add(s)
    ref_path = os.path.join(a.work, "ref.h5")
    problems = []
    killed_lengths = []
    with h5py.File(ref_path, "r") as ref:
        if len(ref["train/step"]) != a.total_steps:
            problems.append(f"ref.h5 has {len(ref['train/step'])} rows, expected {a.total_steps}")
        for i in range(1, a.trials + 1):
            d = os.path.join(a.work, f"trial-{i}")
            with open(os.path.join(d, "latest")) as f:
                latest = f.read().strip()
            latest_step = 0 if latest == "none" else int(latest.split("-")[1])
            killed = os.path.join(d, "killed.h5")
            if os.path.exists(killed):
                try:
                    bad = check_killed(killed, ref, latest_step, flush_steps)
                    with h5py.File(killed, "r") as f:
                        killed_lengths.append(len(f["train/step"]))
                except (OSError, KeyError) as e:
                    bad = [f"does not open as a trace: {e}"]
                problems += [f"trial {i}: killed trace: {b}" for b in bad]
            elif latest != "none":
                problems.append(f"trial {i}: no trace, but checkpoint {latest} exists")
            args = argparse.Namespace(ranks=2, steps=a.total_steps, evals=None, min_accuracy=None, compare=ref_path)
            try:
                bad = tct.check(os.path.join(d, "t.h5"), args)
            except OSError as e:
                bad = [f"cannot read: {e}"]
            problems += [f"trial {i}: final trace: {b}" for b in bad]
    for p in problems:
        print(p)
    print(f"killed traces ended at steps {sorted(killed_lengths)}; final traces compared with the reference")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
