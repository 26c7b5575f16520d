#!/usr/bin/python3
"""Plots sparcol-toy traces: 2-D trajectories (first two coordinates) and distance to the optimum.

Usage: plot_toy.py OUT.png TRACE.h5 [TRACE.h5 ...]
Each trace is one run written by `sparcol-toy --h5` (layout in docs/toy.md). Runs on Debian's
python3-h5py and python3-matplotlib, with no display (Agg backend).
"""
import sys

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def label(f):
    a = f.attrs
    return f"{a['method']} (k={a['k']}, RCC={a['rcc']:.3f})"


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, paths = argv[1], argv[2:]
    fig, (ax_traj, ax_dist) = plt.subplots(1, 2, figsize=(13, 5.5))
    for p in paths:
        with h5py.File(p, "r") as f:
            x = f["x"][:]
            dist = f["distance"][:]
            step = f["step"][:]
            a = f["a"][:]
            lab = label(f)
        if x.shape[1] >= 2:
            ax_traj.plot(x[:, 0], x[:, 1], lw=0.8, label=lab)
        ax_dist.semilogy(step, np.maximum(dist, 1e-12), lw=0.8, label=lab)
    ax_traj.plot([0], [0], "k*", ms=12, label="global optimum")
    if len(a) >= 2:
        ax_traj.plot([a[0], -a[0]], [a[1], -a[1]], "kx", ms=9, label="local optima (+a, -a)")
    ax_traj.set_xlabel("w[0]")
    ax_traj.set_ylabel("w[1]")
    ax_traj.set_title("trajectories (first two coordinates)")
    ax_traj.legend(fontsize=8)
    ax_dist.set_xlabel("iteration")
    ax_dist.set_ylabel("||w - w*||")
    ax_dist.set_title("distance to the global optimum")
    ax_dist.grid(True, which="both", alpha=0.3)
    ax_dist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
