#!/usr/bin/python3
"""Plots sparcol-train traces: loss and accuracy against steps and against bytes sent, and time per step.

Usage: plot_train.py OUT.png TRACE.h5 [TRACE.h5 ...] [--labels A,B,...] [--title TEXT]

Each trace is one run written by `sparcol-train --trace` (layout in docs/traces.md); several traces are
drawn over each other for comparison. Panels:
  training loss (minibatch, mean over ranks, smoothed) against step and against MB sent per rank;
  test accuracy (every evaluation) against step and against MB sent per rank;
  mean time per step split into compute, compression, communication and the rest (one bar per run);
  a summary: final test accuracy, RCC, steps, ranks.
Runs on Debian's python3-h5py and python3-matplotlib, with no display (Agg backend).
"""
import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def smooth(v, steps):
    """Moving average over about 2% of the run (at least 1 step), aligned to the window's end."""
    w = max(1, len(v) // 50)
    if w == 1 or len(v) < 2 * w:
        return steps, v
    c = np.cumsum(np.insert(v, 0, 0.0))
    return steps[w - 1:], (c[w:] - c[:-w]) / w


def load(path):
    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
        tr = {k: np.asarray(f["train"][k]) for k in f["train"]}
        ev = {k: np.asarray(f["eval"][k]) for k in f["eval"]}
    return a, tr, ev


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def default_label(a):
    model, opt, comp = text(a.get("model", "?")), text(a.get("optimizer", "?")), text(a.get("compressor", "none"))
    if comp == "none":
        return f"{model}: {opt} (dense)"
    return f"{model}: {opt}, {comp} {float(a.get('density', 0)):g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--labels", help="comma-separated labels, one per trace (default: optimizer and compressor)")
    ap.add_argument("--title")
    args = ap.parse_args()
    labels = args.labels.split(",") if args.labels else None
    if labels and len(labels) != len(args.traces):
        print("plot_train.py: --labels needs one label per trace", file=sys.stderr)
        return 2

    fig, axes = plt.subplots(2, 3, figsize=(17, 9))
    (ax_loss, ax_loss_b, ax_time), (ax_acc, ax_acc_b, ax_sum) = axes
    bars, rows = [], []
    for i, path in enumerate(args.traces):
        try:
            a, tr, ev = load(path)
        except (OSError, KeyError) as e:
            print(f"plot_train.py: cannot read {path}: {e}", file=sys.stderr)
            return 1
        lab = labels[i] if labels else default_label(a)
        color = f"C{i % 10}"
        steps = tr["step"].astype(float)
        mb = np.cumsum(tr["bytes_sent"]) / 1e6  # MB sent per rank, cumulative
        s, l = smooth(tr["loss"], steps)
        _, lb = smooth(tr["loss"], mb)
        ax_loss.plot(s, l, color=color, lw=1, label=lab)
        ax_loss_b.plot(mb[len(mb) - len(lb):], lb, color=color, lw=1, label=lab)
        if len(ev["step"]):
            # Cumulative bytes at each evaluation: the train row of the same step.
            idx = np.clip(np.searchsorted(tr["step"], ev["step"]), 0, max(0, len(mb) - 1))
            ev_mb = mb[idx] if len(mb) else np.zeros(len(idx))
            ax_acc.plot(ev["step"], 100 * ev["test_accuracy"], "o-", color=color, ms=3, label=lab)
            ax_acc_b.plot(ev_mb, 100 * ev["test_accuracy"], "o-", color=color, ms=3, label=lab)
        n = max(1, len(steps))
        compute = float(np.sum(tr["time_compute_s"])) / n
        compress = float(np.sum(tr["time_compress_s"])) / n
        comm = float(np.sum(tr["time_comm_s"])) / n
        other = max(0.0, float(np.sum(tr["time_step_s"])) / n - compute - compress - comm)
        bars.append((lab, compute, compress, comm, other))
        final = f"{100 * ev['test_accuracy'][-1]:.2f}%" if len(ev["step"]) else "-"
        rows.append([lab, final, f"{100 * float(a.get('rcc', 0)):.3f}%", str(int(steps[-1]) if len(steps) else 0),
                     str(a.get("world_size", "?"))])

    ax_loss.set(xlabel="step", ylabel="training loss (smoothed)", yscale="log", title="loss against steps")
    ax_loss_b.set(xlabel="MB sent per rank", ylabel="training loss (smoothed)", yscale="log",
                  title="loss against communication")
    ax_acc.set(xlabel="step", ylabel="test accuracy (%)", title="accuracy against steps")
    ax_acc_b.set(xlabel="MB sent per rank", ylabel="test accuracy (%)", title="accuracy against communication")
    for ax in (ax_loss_b, ax_acc_b):
        ax.set_xscale("log")
    for ax in (ax_loss, ax_loss_b, ax_acc, ax_acc_b):
        ax.grid(True, alpha=0.3)
    ax_acc.legend(fontsize=8)

    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    for j, (part, color) in enumerate((("compute", "C0"), ("compress", "C1"), ("communication", "C2"),
                                       ("other", "C7"))):
        v = np.array([1e3 * b[1 + j] for b in bars])
        ax_time.bar(x, v, bottom=bottom, color=color, label=part)
        bottom += v
    ax_time.set_xticks(x)
    ax_time.set_xticklabels([b[0] for b in bars], rotation=20, ha="right", fontsize=8)
    ax_time.set(ylabel="ms per step (mean over ranks)", title="time per step")
    ax_time.legend(fontsize=8)

    ax_sum.axis("off")
    table = ax_sum.table(cellText=rows, colLabels=["run", "test acc", "RCC", "steps", "ranks"], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.4)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
