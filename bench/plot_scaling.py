#!/usr/bin/python3
"""Plots of a scaling study (bench/scaling_study.sh, slurm/scaling.sbatch).

  bench/plot_scaling.py [--out DIR] [--size BYTES] [--density RHO] RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds sparcol-bench HDF5 files (bench-*.h5) measured on one network (network.json names
it) and optionally sparcol-train traces (train-*.h5, docs/train.md). Repeated runs of a point are
reduced to their median. Writes into DIR:
  scaling_time.png      collective time against ranks, one panel per network (size --size, default the
                        largest size every network measured; compressed ops at --density, default 0.01)
  scaling_speedup.png   speedup over the dense all-reduce (MPI_Allreduce of the whole vector / time)
                        against ranks, for every compressed op and density
  scaling_train.png     (train traces) median wall-clock time per training step against ranks
  scaling_summary.md    the numbers behind the plots

  bench/plot_scaling.py --tta [--out DIR] [--reference METHOD] TRACE_OR_DIR [...]

Time-to-accuracy (bench/time_to_accuracy.sh): sparcol-train traces (files, or directories of
tta-<method>-r<R>.h5) of several methods on the same setup. The reference (default: the method
whose name starts with dmsgd) sets the target, the median over its runs of their final test
accuracy. For each run: training wall-clock time at each evaluation (the trace's eval/wall_time_s
minus the evaluations' own time so far, which every method pays alike), the first time its test
accuracy reaches the target, and its final accuracy. Writes DIR/time_to_accuracy.png (test accuracy
against training time) and DIR/time_to_accuracy.md (the table, medians over runs).
"""
import argparse
import glob
import json
import os
import re
import sys
from collections import defaultdict

import h5py
import numpy as np

OPS = ["dense-ring", "rbgs", "sparse-allgather", "mpi-allreduce", "mpi-allgatherv"]
COMPRESSED = ["rbgs", "sparse-allgather", "mpi-allgatherv"]
MIB = 1 << 20


def label_of(run_dir):
    path = os.path.join(run_dir, "network.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f).get("label", os.path.basename(os.path.normpath(run_dir)))
    return os.path.basename(os.path.normpath(run_dir))


def load_bench(run_dir):
    """{(op, p, bytes, density_rounded): (median time_us, median allreduce_us)}"""
    raw = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(run_dir, "bench-*.h5"))):
        try:
            with h5py.File(path, "r") as f:
                if int(f.attrs.get("total_wrong", -1)) != 0:
                    continue
                for op in OPS:
                    if op not in f:
                        continue
                    g = f[op]
                    for b, dens, p, t, ar in zip(g["bytes"], g["density"], g["ranks"], g["time_us"],
                                                 g["allreduce_us"]):
                        key = (op, int(p), int(b), 1.0 if op in ("dense-ring", "mpi-allreduce") else
                               float(f.attrs["density"]) or round(float(dens), 6))
                        raw[key].append((float(t), float(ar)))
        except OSError as e:
            print(f"plot_scaling: skipping unreadable {path}: {e}", file=sys.stderr)
    def median_ref(v):
        refs = [a for _, a in v if np.isfinite(a)]
        return float(np.median(refs)) if refs else float("nan")

    out = {k: (float(np.median([t for t, _ in v])), median_ref(v)) for k, v in raw.items()}
    # Runs with --no-xref time no whole-vector all-reduce beside the op: the reference is then the
    # mpi-allreduce row measured at the same P and size (in the dense runs).
    for (op, p, b, dn), (t, ar) in list(out.items()):
        if not np.isfinite(ar):
            dense = out.get(("mpi-allreduce", p, b, 1.0))
            out[(op, p, b, dn)] = (t, dense[0] if dense else float("nan"))
    return out


def step_times(path):
    """Median wall-clock seconds per training step from a sparcol-train trace, or None."""
    with h5py.File(path, "r") as f:
        if "train" not in f:
            return None
        g = f["train"]
        for name in ("time_step_s", "step_time_s"):
            if name in g and len(g[name]):
                return float(np.median(np.asarray(g[name])))
        for name in ("wall_time_s", "time_s", "wall_s"):
            if name in g and len(g[name]) > 1:
                w = np.asarray(g[name], dtype=float)
                steps = np.asarray(g["step"], dtype=float) if "step" in g else np.arange(len(w), dtype=float)
                dw, ds = np.diff(w), np.diff(steps)
                ok = ds > 0
                if np.any(ok):
                    return float(np.median(dw[ok] / ds[ok]))
    return None


def load_train(run_dir):
    """{(method, p): median step time (s)} over train-p<P>-<opt>-<comp>[-r<R>].h5."""
    raw = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(run_dir, "train-*.h5"))):
        m = re.match(r"train-p(\d+)-(.+?)(?:-r\d+)?\.h5$", os.path.basename(path))
        if not m:
            continue
        try:
            t = step_times(path)
        except OSError as e:
            print(f"plot_scaling: skipping unreadable {path}: {e}", file=sys.stderr)
            continue
        if t is not None:
            raw[(m.group(2), int(m.group(1)))].append(t)
    return {k: float(np.median(v)) for k, v in raw.items()}


def load_tta_run(path):
    """(method, times_s, accuracies, final accuracy, attrs) of one trace: training time at each evaluation."""
    with h5py.File(path, "r") as f:
        ev = f["eval"]
        wall = np.asarray(ev["wall_time_s"], dtype=float)
        acc = np.asarray(ev["test_accuracy"], dtype=float)
        spent = np.cumsum(np.asarray(ev["time_eval_s"], dtype=float)) if "time_eval_s" in ev else 0.0
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    m = re.match(r"tta-(.+?)(?:-r\d+)?\.h5$", os.path.basename(path))
    if m:
        method = m.group(1)
    else:
        method = f"{attrs.get('optimizer', '?')}-{attrs.get('compressor', '?')}"
    # An evaluation's own time is in wall_time_s of that evaluation and every later one.
    return method, wall - spent, acc, attrs


def first_reach(times, acc, target):
    hit = np.nonzero(acc >= target - 1e-12)[0]
    return float(times[hit[0]]) if hit.size else None


def tta(args, plt):
    paths = []
    for x in args.run_dirs:
        if os.path.isdir(x):
            paths += sorted(glob.glob(os.path.join(x, "tta-*.h5")))
        elif os.path.isfile(x):
            paths.append(x)
        else:
            print(f"plot_scaling: error: {x} is neither a trace nor a directory", file=sys.stderr)
            return 2
    runs = defaultdict(list)
    for p in paths:
        try:
            method, t, acc, attrs = load_tta_run(p)
        except (OSError, KeyError) as e:
            print(f"plot_scaling: skipping {p}: {e}", file=sys.stderr)
            continue
        if len(acc) == 0:
            print(f"plot_scaling: skipping {p}: no evaluation", file=sys.stderr)
            continue
        runs[method].append((t, acc, attrs, p))
    if not runs:
        print("plot_scaling: error: no training traces with evaluations", file=sys.stderr)
        return 2
    ref = args.reference or next((m for m in sorted(runs) if m.startswith("dmsgd")), None)
    if ref not in runs:
        print(f"plot_scaling: error: reference method '{ref}' has no trace (have: {', '.join(sorted(runs))})",
              file=sys.stderr)
        return 2
    target = float(np.median([acc[-1] for _, acc, _, _ in runs[ref]]))
    ref_time = float(np.median([first_reach(t, acc, target) or t[-1] for t, acc, _, _ in runs[ref]]))
    os.makedirs(args.out, exist_ok=True)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    order = [ref] + [m for m in sorted(runs) if m != ref]
    rows = []
    for i, m in enumerate(order):
        reach, finals, totals = [], [], []
        for j, (t, acc, attrs, p) in enumerate(runs[m]):
            ax.plot(t, 100 * acc, "-o", color=f"C{i}", ms=3, alpha=0.9 if j == 0 else 0.5,
                    label=m if j == 0 else None)
            reach.append(first_reach(t, acc, target))
            finals.append(acc[-1])
            totals.append(t[-1])
        hit = [r for r in reach if r is not None]
        rows.append({"method": m, "runs": len(reach), "reached": len(hit),
                     "time_to_target_s": float(np.median(hit)) if len(hit) == len(reach) else None,
                     "times": reach, "final_accuracy": float(np.median(finals)),
                     "best_accuracy": float(np.median([max(a) for _, a, _, _ in runs[m]])),
                     "train_time_s": float(np.median(totals))})
    ax.axhline(100 * target, color="k", lw=0.8, ls="--", label=f"target {100 * target:.2f}% ({ref} final)")
    ax.set_xlabel("training wall-clock time (s, evaluations excluded)")
    ax.set_ylabel("test accuracy (%)")
    lo = min(100 * min(acc) for v in runs.values() for _, acc, _, _ in v)
    ax.set_ylim(max(lo - 1, 100 * target - 15), 100 * max(max(acc) for v in runs.values() for _, acc, _, _ in v) + 0.5)
    a0 = runs[ref][0][2]
    ax.set_title(f"{a0.get('model', '?')}, {a0.get('world_size', '?')} ranks x batch {a0.get('batch', '?')}"
                 + (f", {args.network}" if args.network else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "time_to_accuracy.png"), dpi=120)
    plt.close(fig)

    L = ["# Time to accuracy\n",
         f"Target: {100 * target:.2f}% test accuracy, the final accuracy of {ref} (median over {len(runs[ref])} run(s)). "
         "Times are training wall-clock seconds (the evaluations' own time removed), medians over runs.\n",
         "| method | runs | final accuracy | best accuracy | training time | time to target | vs reference |",
         "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["time_to_target_s"] is not None:
            tt = f"{r['time_to_target_s']:.1f} s"
            ratio = f"{r['time_to_target_s'] / ref_time:.2f}x" if ref_time > 0 else "-"
        else:
            short = 100 * (target - r["best_accuracy"])
            tt = (f"not reached in {r['reached']} of {r['runs']} runs" if r["reached"] else "not reached") + \
                 (f" (best {100 * r['best_accuracy']:.2f}%, {short:.2f} points short)" if r["reached"] == 0 else "")
            ratio = "-"
        L.append(f"| {r['method']} | {r['runs']} | {100 * r['final_accuracy']:.2f}% | {100 * r['best_accuracy']:.2f}% | "
                 f"{r['train_time_s']:.1f} s | {tt} | {ratio} |")
    with open(os.path.join(args.out, "time_to_accuracy.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(args.out, "time_to_accuracy.json"), "w") as f:
        json.dump({"reference": ref, "target": target, "reference_time_s": ref_time, "rows": rows}, f, indent=1)
    print("\n".join(L))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--out", default="results/analysis")
    ap.add_argument("--size", default=None, help="dense vector bytes for the time plot (e.g. 16M)")
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--tta", action="store_true", help="time-to-accuracy of training traces (see above)")
    ap.add_argument("--reference", default=None, help="--tta: the method whose final accuracy is the target")
    ap.add_argument("--network", default="", help="--tta: network label for the plot title")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if args.tta:
        return tta(args, plt)

    runs = []
    for d in args.run_dirs:
        if not os.path.isdir(d):
            print(f"plot_scaling: error: {d} is not a directory", file=sys.stderr)
            return 2
        bench = load_bench(d)
        train = load_train(d)
        if bench or train:
            runs.append((label_of(d), bench, train))
    if not runs:
        print("plot_scaling: error: no sparcol-bench results or training traces found", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    summary = ["# Scaling study: the numbers behind the plots\n"]

    with_bench = [r for r in runs if r[1]]
    if with_bench:
        if args.size:
            mult = {"K": 1024, "M": MIB, "G": 1 << 30}
            s = args.size.upper()
            size = int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)
        else:
            common = set.intersection(*[{b for (_, _, b, _) in r[1]} for r in with_bench])
            size = max(common) if common else max(b for r in with_bench for (_, _, b, _) in r[1])

        def dens_match(op, dens):
            return op in ("dense-ring", "mpi-allreduce") or abs(dens - args.density) <= 1e-3 * args.density

        fig, axes = plt.subplots(1, len(with_bench), figsize=(4.5 * len(with_bench), 4), squeeze=False)
        summary.append(f"## Collective time (median, us) at {size / MIB:g} MiB, compressed ops at density "
                       f"{args.density:g}\n")
        summary.append("| network | op | " + " | ".join(f"P={p}" for p in sorted({k[1] for r in with_bench for k in r[1]})) + " |")
        all_p = sorted({k[1] for r in with_bench for k in r[1]})
        summary.append("|---|---|" + "---:|" * len(all_p))
        for ax, (label, bench, _) in zip(axes[0], with_bench):
            for op in OPS:
                pts = sorted((p, v[0]) for (o, p, b, dn), v in bench.items() if o == op and b == size and dens_match(o, dn))
                if not pts:
                    continue
                ax.plot([p for p, _ in pts], [t * 1e-3 for _, t in pts], marker="o", ms=4, label=op)
                by_p = dict(pts)
                summary.append(f"| {label} | {op} | " + " | ".join(f"{by_p[p]:.1f}" if p in by_p else "-" for p in all_p) + " |")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("ranks P")
            ax.set_title(f"{label}: {size / MIB:g} MiB, density {args.density:g}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("time per call (ms)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "scaling_time.png"), dpi=120)
        plt.close(fig)

        fig, axes = plt.subplots(1, len(with_bench), figsize=(4.5 * len(with_bench), 4), squeeze=False)
        summary.append(f"\n## Speedup over MPI_Allreduce of the whole vector at {size / MIB:g} MiB\n")
        summary.append("| network | op | density | " + " | ".join(f"P={p}" for p in all_p) + " |")
        summary.append("|---|---|---:|" + "---:|" * len(all_p))
        for ax, (label, bench, _) in zip(axes[0], with_bench):
            densities = sorted({dn for (o, _, _, dn) in bench if o in COMPRESSED})
            for i, op in enumerate(["dense-ring"] + COMPRESSED):
                for j, dn in enumerate(densities if op in COMPRESSED else [1.0]):
                    pts = sorted((p, v[1] / v[0]) for (o, p, b, d), v in bench.items()
                                 if o == op and b == size and d == dn and p >= 2 and v[0] > 0
                                 and np.isfinite(v[1]))
                    if not pts:
                        continue
                    style = ["-", "--", ":", "-."][j % 4]
                    ax.plot([p for p, _ in pts], [s for _, s in pts], style, color=f"C{i}", marker="o", ms=3,
                            label=op if op == "dense-ring" else f"{op} {dn:g}")
                    by_p = dict(pts)
                    summary.append(f"| {label} | {op} | {dn:g} | " +
                                   " | ".join(f"{by_p[p]:.2f}" if p in by_p else "-" for p in all_p) + " |")
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("ranks P")
            ax.set_title(f"{label}: speedup over dense, {size / MIB:g} MiB")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("MPI_Allreduce(whole vector) time / op time")
        axes[0][0].legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "scaling_speedup.png"), dpi=120)
        plt.close(fig)

    with_train = [r for r in runs if r[2]]
    if with_train:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        summary.append("\n## Training: median wall-clock time per step (ms)\n")
        summary.append("| network | method | P | time per step | speedup over dense |")
        summary.append("|---|---|---:|---:|---:|")
        for i, (label, _, train) in enumerate(with_train):
            methods = sorted({m for m, _ in train})
            dense = next((m for m in methods if m.startswith("dmsgd")), None)
            for j, m in enumerate(methods):
                pts = sorted((p, t) for (mm, p), t in train.items() if mm == m)
                ax.plot([p for p, _ in pts], [t * 1e3 for _, t in pts], ["-", "--", ":", "-."][j % 4],
                        color=f"C{i}", marker="o", ms=4, label=f"{label} {m}")
                for p, t in pts:
                    base = train.get((dense, p)) if dense else None
                    summary.append(f"| {label} | {m} | {p} | {t * 1e3:.1f} | {base / t:.2f} |" if base else
                                   f"| {label} | {m} | {p} | {t * 1e3:.1f} | - |")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("ranks P")
        ax.set_ylabel("time per training step (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "scaling_train.png"), dpi=120)
        plt.close(fig)

    with open(os.path.join(args.out, "scaling_summary.md"), "w") as f:
        f.write("\n".join(summary) + "\n")
    print(f"wrote plots and {args.out}/scaling_summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
