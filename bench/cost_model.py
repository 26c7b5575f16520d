#!/usr/bin/python3
"""Alpha-beta cost model of sparcol's collectives and the plain-MPI baselines, fitted to sparcol-bench runs.

  bench/cost_model.py [--out DIR] [--params D] [--density RHO] [--alpha links|fitted|SECONDS] RUN_DIR [...]

Each RUN_DIR holds sparcol-bench HDF5 files (bench-*.h5, layout docs/bench.md) measured on one network,
and optionally network.json ({"label", "kind", "rate_gbits", "lanes", "cores"}; bench/scaling_study.sh
writes it). Repeated runs of a point (same op, ranks, size, k) are reduced to their median.

The model (every term is what the implementation does, src/coll/*.cpp; times in seconds):

    T = alpha * R * c  +  beta * V * s

  R  sequential message rounds, including the call-fingerprint exchange F of sparcol's collectives
     (one direct round up to 16 ranks, Bruck's ceil(log2 P) rounds above). The direct all-reduce
     (and so RBGS) sends its first data round together with the fingerprint (F adds nothing); the
     direct sparse all-gather sends its blocks with the fingerprint but receives them only once the
     counts are known (counted as 2 rounds);
  V  payload bytes one rank sends.
  s = max(1, P / lanes), c = max(1, P / cores): contention. On a real cluster every rank has its own
     link and core (s = c = 1). Here the emulated network is one token bucket shared by all ranks
     (lanes = 1: V counts every rank's bytes), and shared memory and all CPU work share the cores.

  op                R (P ranks)                                   V                   S (payload)
  dense-ring        2 (direct: 4d <= 8 MiB, P <= 16)             2(P-1)/P * 4d       4d
                    or 2(P-1) + F (ring)
  rbgs              the same on the k-float block                 2(P-1)/P * 4k       4k
  sparse-allgather  2 (direct, P <= 16) or F + P-1 (ring)         (P-1) * 8k          8kP
  mpi-allreduce     2 ceil(log2 P) (recursive halving/doubling)   2(P-1)/P * 4d       4d
  mpi-allgatherv    P-1 (ring)                                    (P-1) * 8k          8kP

The all-reduces also add (P-1)/P * 4d bytes per rank. A separate gamma for that cannot be fitted
here: those bytes are proportional to V at every point measured (and contention scales both alike),
so beta absorbs the reduction (on the projected GPU clusters it is negligible beside the link).

alpha, beta >= 0 are fitted per (network, op) by least squares on log(time) (fit_log), over the points
with P >= 2 and a payload S (the data the collective delivers, as in docs/bench.md's algbw) of at
least 256 KiB: below that the time is a few scheduling delays of ranks sharing 2 cores, and the
token bucket's 256 KiB burst passes unthrottled. The fit is judged by each point's error at P <= 8
and S >= 1 MiB (the target is 25%).

Where the model applies. Each network is classed by what sets its times:
  link  an emulated network (kind "emulated", or "cluster" for real runs with one link per rank)
        whose fitted beta matches its rate: eta = beta * rate / 8 of the dense ops at most
        ETA_LINK_MAX (1.25). The link's bandwidth sets the time, which is what an alpha-beta model
        describes; the target is judged on these networks.
  host  shared memory, the unthrottled TCP loopback, and emulated rates the machine cannot fill:
        the cores and caches set the time (8 ranks on 2 cores, Open MPI switching algorithms and
        buffers with the message size), and repeated runs of one point differ by up to tens of
        percent. Their errors are reported with each point's run-to-run spread (max - min over
        the repeats, relative to the median), but not judged against the target.
The runs must be measured on a quiet machine: at load average 10-20 (other jobs on the 2 cores)
every network looked host-bound (errors up to 130% at 1-10 Gbit/s); quiet, the same model fits
1, 2.5 and 10 Gbit/s within a few percent.

Projection to a real cluster (s = c = 1) with links of 10, 100 and 400 Gbit/s, P up to 1024:
  beta  = eta * 8 / rate, where eta (protocol efficiency, >= 1: TCP/IP headers and framing) is the
          median over the link-bound networks' dense-op fits of beta times the emulated rate;
  alpha = per link class: 25 us (10 Gbit/s Ethernet, TCP), 5 us (100 Gbit/s) and 3 us (400 Gbit/s,
          RDMA). The alpha fitted here (0 to hundreds of us per round) is not a link's latency: at
          these sizes the bandwidth term dominates and what is left is ranks waiting to be scheduled
          on 2 shared cores, so the projection does not use it unless asked (--alpha fitted: the
          median of the positive fitted alphas on the emulated networks, else on all; or
          --alpha SECONDS for every link).
Time per step is the communication of one gradient of D parameters (--params, default 25.6M, the
size of ResNet-50) at density RHO (--density, default 0.01) for the compressed ops. The crossover
density rho* is where the sparse all-gather's time equals the dense ring all-reduce's: below it the
sparse all-gather wins. Bandwidth alone gives rho* = 1/P (8 rho d (P-1) = 2 (P-1)/P 4d); latency
terms move it.

Writes DIR/cost_model.md (tables), DIR/cost_model.json (parameters, errors, projections) and plots
DIR/cost_model_fit.png, DIR/cost_model_projection.png, DIR/cost_model_crossover.png. Exit status 0, or 2
for bad input (no usable data).
"""
import argparse
import glob
import json
import math
import os
import sys

import h5py
import numpy as np

OPS = ["dense-ring", "rbgs", "sparse-allgather", "mpi-allreduce", "mpi-allgatherv"]
SPARCOL_OPS = {"dense-ring", "rbgs", "sparse-allgather"}
DIRECT_MAX_RANKS = 16  # RingAllreduce / SparseAllgather / fingerprint exchange: kDirectMaxRanks
DIRECT_MAX_BYTES = 8 << 20  # RingAllreduce::kDirectMaxBytes
MIB = 1 << 20
FIT_MIN_PAYLOAD = 256 << 10
JUDGE_MIN_PAYLOAD = MIB
JUDGE_MAX_RANKS = 8
PROJ_RATES_GBITS = [10, 100, 400]
# Per-round latency of each projected link class (a message's one-way software + wire latency):
# 10 Gbit/s Ethernet with TCP about 25 us, 100 and 400 Gbit/s RDMA fabrics (InfiniBand, RoCE) a few us.
PROJ_ALPHA_S = {10: 25e-6, 100: 5e-6, 400: 3e-6}
ETA_LINK_MAX = 1.25  # a network is link-bound when its dense ops' beta * rate / 8 is at most this
PROJ_RANKS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


def fingerprint_rounds(p):
    if p <= 1:
        return 0
    return 1 if p <= DIRECT_MAX_RANKS else math.ceil(math.log2(p))


def ring_allreduce_terms(p, nbytes):
    """(R, V) of RingAllreduce::run on nbytes of float32, fingerprint included."""
    if p <= 1:
        return 0.0, 0.0
    direct = p <= DIRECT_MAX_RANKS and nbytes <= DIRECT_MAX_BYTES
    # Direct: the fingerprint travels with the first data round (Agreement in coll/agree.hpp).
    rounds = 2 if direct else 2 * (p - 1) + fingerprint_rounds(p)
    return float(rounds), 2.0 * (p - 1) / p * nbytes


def terms(op, p, dense_bytes, k):
    """(R, V) of one call of `op` on P ranks, a dense vector of dense_bytes, k elements/pairs per rank."""
    if p <= 1:
        return 0.0, 0.0
    if op == "dense-ring":
        return ring_allreduce_terms(p, dense_bytes)
    if op == "rbgs":
        return ring_allreduce_terms(p, 4.0 * k)
    if op == "sparse-allgather":
        # Direct: blocks leave with the fingerprint, receives wait for the counts (2 rounds); ring: F + P-1.
        rounds = 2 if p <= DIRECT_MAX_RANKS else fingerprint_rounds(p) + p - 1
        return float(rounds), (p - 1) * 8.0 * k
    if op == "mpi-allreduce":
        return 2.0 * math.ceil(math.log2(p)), 2.0 * (p - 1) / p * dense_bytes
    if op == "mpi-allgatherv":
        return float(p - 1), (p - 1) * 8.0 * k
    raise ValueError(op)


def payload(op, p, dense_bytes, k):
    """S: the bytes the collective delivers (docs/bench.md), the size its error is judged at."""
    if op in ("dense-ring", "mpi-allreduce"):
        return dense_bytes
    if op == "rbgs":
        return 4 * k
    return 8 * k * p


def contention(p, net):
    lanes = net.get("lanes") or 0
    cores = net.get("cores") or 0
    s = max(1.0, p / lanes) if lanes else 1.0
    c = max(1.0, p / cores) if cores else 1.0
    return s, c


def features(op, p, dense_bytes, k, net):
    r, v = terms(op, p, dense_bytes, k)
    s, cpu = contention(p, net)
    return np.array([r * cpu, v * s])


def predict(params, op, p, dense_bytes, k, net):
    return float(np.dot(features(op, p, dense_bytes, k, net), params))


def fit_log(x, t):
    """(alpha, beta) >= 0 minimising sum (log(x @ w) - log t)^2.

    Errors in log space: the runs' noise is multiplicative (a loaded core makes a run 1.5x slower
    whatever its size), and an occasional point far off (a vector that fits the cache) pulls a
    relative or absolute least-squares fit much further than it pulls this one. Two unknowns: a
    search over a log grid of each (and 0), refined twice around the best pair.
    """
    logt = np.log(t)

    def cost(alphas, betas):
        pred = alphas[:, None, None] * x[None, None, :, 0] + betas[None, :, None] * x[None, None, :, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.sum((np.log(pred) - logt) ** 2, axis=2)
        c[~np.isfinite(c)] = np.inf
        return c

    alphas = np.concatenate([[0.0], np.logspace(-8, 0, 161)])
    betas = np.concatenate([[0.0], np.logspace(-13, -5, 161)])
    for _ in range(3):
        c = cost(alphas, betas)
        i, j = np.unravel_index(np.argmin(c), c.shape)
        a, b = alphas[i], betas[j]
        alphas = np.concatenate([[0.0], a * np.logspace(-0.1, 0.1, 81)]) if a > 0 else alphas
        betas = np.concatenate([[0.0], b * np.logspace(-0.1, 0.1, 81)]) if b > 0 else betas
    return np.array([a, b])


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def load_network(run_dir):
    path = os.path.join(run_dir, "network.json")
    net = {"label": os.path.basename(os.path.normpath(run_dir)), "kind": "unknown", "rate_gbits": None,
           "lanes": None, "cores": None}
    if os.path.exists(path):
        with open(path) as f:
            net.update(json.load(f))
    return net


def load_points(run_dir):
    """{(op, p, bytes, k): [time_s, ...]} over every bench-*.h5 in run_dir."""
    pts = {}
    files = sorted(glob.glob(os.path.join(run_dir, "bench-*.h5")))
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                if int(f.attrs.get("total_wrong", -1)) != 0:
                    print(f"cost_model: skipping {path}: incomplete or wrong results", file=sys.stderr)
                    continue
                for op in OPS:
                    if op not in f:
                        continue
                    g = f[op]
                    for b, k, p, t in zip(g["bytes"], g["k"], g["ranks"], g["time_us"]):
                        pts.setdefault((op, int(p), int(b), int(k)), []).append(float(t) * 1e-6)
        except OSError as e:
            print(f"cost_model: skipping unreadable {path}: {e}", file=sys.stderr)
    return pts, len(files)


def density_of(op, b, k):
    return 1.0 if op in ("dense-ring", "mpi-allreduce") else k / (b / 4.0)


# ------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------


def analyse(run_dirs):
    nets = []
    for d in run_dirs:
        net = load_network(d)
        pts, nfiles = load_points(d)
        if not pts:
            print(f"cost_model: no usable sparcol-bench results in {d}", file=sys.stderr)
            continue
        net["dir"] = d
        net["files"] = nfiles
        net["points"] = {key: float(np.median(v)) for key, v in pts.items()}
        net["repeats"] = {key: len(v) for key, v in pts.items()}
        net["spread"] = {key: (max(v) - min(v)) / float(np.median(v)) for key, v in pts.items()}
        net["fits"] = {}
        for op in OPS:
            rows = [(key, t) for key, t in net["points"].items() if key[0] == op and key[1] >= 2]
            if not rows:
                continue
            fit_rows = [(key, t) for key, t in rows if payload(*key) >= FIT_MIN_PAYLOAD]
            if len(fit_rows) < 2:
                fit_rows = rows
            x = np.array([features(op, p, b, k, net) for (_, p, b, k), _ in fit_rows])
            t = np.array([t for _, t in fit_rows])
            w = fit_log(x, t)
            errs = []
            for (o, p, b, k), tm in rows:
                pred = predict(w, o, p, b, k, net)
                s_bytes = payload(o, p, b, k)
                errs.append({"p": p, "bytes": b, "k": k, "density": density_of(o, b, k), "payload": s_bytes,
                             "measured_s": tm, "predicted_s": pred, "error": pred / tm - 1.0,
                             "repeats": net["repeats"][(o, p, b, k)], "spread": net["spread"][(o, p, b, k)],
                             "judged": p <= JUDGE_MAX_RANKS and s_bytes >= JUDGE_MIN_PAYLOAD})
            judged = [e for e in errs if e["judged"]]
            net["fits"][op] = {
                "alpha_s": w[0], "beta_s_per_byte": w[1], "points": errs, "fitted_on": len(fit_rows),
                "max_abs_error": max((abs(e["error"]) for e in judged), default=float("nan")),
                "median_abs_error": float(np.median([abs(e["error"]) for e in judged])) if judged else float("nan"),
                "judged": len(judged),
            }
        classify(net)
        nets.append(net)
    return nets


def classify(net):
    """Sets net["eta"] (emulated and cluster networks: beta * rate / 8 of the dense ops, median) and
    net["domain"]: "link" where the link's rate sets the times, else "host" (see the docstring)."""
    net["eta"] = None
    rate = net.get("rate_gbits")
    if net.get("kind") in ("emulated", "cluster") and rate:
        etas = [f["beta_s_per_byte"] * rate * 1e9 / 8.0 for op, f in net["fits"].items()
                if op in ("dense-ring", "mpi-allreduce") and f["beta_s_per_byte"] > 0]
        if etas:
            net["eta"] = float(np.median(etas))
    net["domain"] = "link" if net["eta"] is not None and net["eta"] <= ETA_LINK_MAX else "host"


def projection_params(nets):
    """alpha and eta for the projection, from the fits; with where each came from."""
    emulated = [n for n in nets if n.get("kind") in ("emulated", "cluster") and n.get("rate_gbits")]
    # eta from the networks whose rate sets the times (on the others beta measures the host).
    binding = [n for n in emulated if n["domain"] == "link"]
    etas = []
    for n in binding:
        rate_bytes = n["rate_gbits"] * 1e9 / 8.0
        for op, f in n["fits"].items():
            if f["beta_s_per_byte"] > 0 and op in ("dense-ring", "mpi-allreduce"):
                etas.append(f["beta_s_per_byte"] * rate_bytes)
    eta = float(np.median(etas)) if etas else 1.0
    alpha, alpha_from = 20e-6, "no fit: 20 us assumed"
    for group, what in ((emulated, "emulated networks"),
                        (nets, "all networks")):
        alphas = [f["alpha_s"] for n in group for f in n["fits"].values() if f["alpha_s"] > 0]
        if alphas:
            alpha = float(np.median(alphas))
            alpha_from = f"median of {len(alphas)} op fits on {what}"
            break
    src = {
        "eta_from": (f"median of {len(etas)} dense-op fits on the link-bound networks "
                     f"({', '.join(n['label'] for n in binding)})"
                     if etas else "no link-bound network: eta = 1"),
        "alpha_from": alpha_from,
    }
    return alpha, eta, src


def project(alpha_of, eta, params_d, rho):
    """alpha_of(rate_gbits) -> seconds per round."""
    net = {"lanes": None, "cores": None}
    d_bytes = 4.0 * params_d
    k = max(1, int(rho * params_d))
    rows = []
    for rate in PROJ_RATES_GBITS:
        beta = eta * 8.0 / (rate * 1e9)
        alpha = alpha_of(rate)
        for p in PROJ_RANKS:
            row = {"rate_gbits": rate, "p": p, "alpha_s": alpha}
            for op in OPS:
                kk = params_d if op in ("dense-ring", "mpi-allreduce") else k
                row[op] = predict(np.array([alpha, beta]), op, p, d_bytes, kk, net)
            # rho*: T_sag(rho) = alpha R + beta (p-1) 8 rho d is linear in rho (R does not depend on rho).
            r_sag, _ = terms("sparse-allgather", p, d_bytes, 1)
            t_dense = row["dense-ring"]
            slope = beta * (p - 1) * 8.0 * params_d
            row["crossover_density"] = max(0.0, (t_dense - alpha * r_sag) / slope)
            rows.append(row)
    return rows


def measured_crossovers(nets):
    """Densities where the measured sparse all-gather time meets MPI_Allreduce of the whole vector
    (log-log interpolation between measured densities), per network, P and size."""
    out = []
    for n in nets:
        pts = n["points"]
        combos = sorted({(p, b) for (op, p, b, k) in pts if op == "sparse-allgather" and p >= 2})
        for p, b in combos:
            dense = pts.get(("mpi-allreduce", p, b, b // 4))
            if dense is None:
                continue
            sag = sorted((k / (b / 4.0), t) for (op, pp, bb, k), t in pts.items()
                         if op == "sparse-allgather" and pp == p and bb == b)
            cross = None
            for (r0, t0), (r1, t1) in zip(sag, sag[1:]):
                if (t0 - dense) * (t1 - dense) <= 0 and t0 != t1:
                    f = (math.log(dense) - math.log(t0)) / (math.log(t1) - math.log(t0))
                    cross = math.exp(math.log(r0) + f * (math.log(r1) - math.log(r0)))
                    break
            if cross is None and sag:
                cross = f"> {sag[-1][0]:.3g}" if sag[-1][1] < dense else f"< {sag[0][0]:.3g}"
            out.append({"net": n["label"], "p": p, "bytes": b, "crossover": cross})
    return out


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------


def fmt_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def fmt_bytes(b):
    return f"{b / MIB:g} MiB" if b >= MIB else f"{b / 1024:g} KiB"


def target_summary(nets):
    """The verdict on the 25% target: judged on the link-bound networks' points (P <= 8, S >= 1 MiB)."""
    def worst(domain):
        errs = [(abs(e["error"]), n["label"], op, e) for n in nets if n["domain"] == domain
                for op, f in n["fits"].items() for e in f["points"] if e["judged"]]
        return max(errs, key=lambda x: x[0]) if errs else None

    link, host = worst("link"), worst("host")
    out = {"link_max_error": link[0] if link else None, "host_max_error": host[0] if host else None,
           "target": 0.25, "met": bool(link and link[0] <= 0.25)}
    lines = []
    if link:
        lines.append(f"Largest error on the link-bound networks: **{100 * link[0]:.1f}%** ({link[1]}, {link[2]}, "
                     f"P = {link[3]['p']}, payload {fmt_bytes(link[3]['payload'])}); target 25%: "
                     f"**{'met' if out['met'] else 'not met'}**.")
    else:
        lines.append("No link-bound network among the inputs: the 25% target is not judged.")
    if host:
        lines.append(f"Largest error on the host-bound networks (reported, not judged): {100 * host[0]:.1f}% "
                     f"({host[1]}, {host[2]}, P = {host[3]['p']}, payload {fmt_bytes(host[3]['payload'])}; "
                     f"that point's runs spread {100 * host[3]['spread']:.0f}%).")
    out["text"] = "\n".join(lines)
    return out


def write_markdown(path, nets, proj, alpha, eta, src, params_d, rho, crossings):
    L = []
    L.append("# Cost model: fit and projection\n")
    L.append("Generated by `bench/cost_model.py` (model and method in its docstring). Times are medians over "
             "repeated runs of sparcol-bench medians (each the slowest rank's time).\n")
    L.append("## Fitted parameters\n")
    L.append("| network | op | alpha (us/round) | beta (ns/byte) | fitted on | judged points | max error | median error |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for n in nets:
        for op, f in n["fits"].items():
            L.append(f"| {n['label']} | {op} | {f['alpha_s'] * 1e6:.2f} | {f['beta_s_per_byte'] * 1e9:.4f} | "
                     f"{f['fitted_on']} | {f['judged']} | {100 * f['max_abs_error']:.1f}% | "
                     f"{100 * f['median_abs_error']:.1f}% |")
    L.append("\n## Error per network\n")
    L.append("Points with P <= 8 and payload S >= 1 MiB. Domain: `link` where the emulated link's rate sets the "
             "times (eta = fitted beta x rate / 8 of the dense ops <= " f"{ETA_LINK_MAX:g}" "), `host` where the cores "
             "and caches do (see the docstring). Spread: a point's (max - min) / median over its repeated runs.\n")
    L.append("| network | domain | eta | points | max error | median error | within 25% | median spread | max spread |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in nets:
        pts = [e for f in n["fits"].values() for e in f["points"] if e["judged"]]
        if not pts:
            continue
        errs = [abs(e["error"]) for e in pts]
        spreads = [e["spread"] for e in pts]
        eta_s = f"{n['eta']:.3f}" if n.get("eta") is not None else "-"
        L.append(f"| {n['label']} | {n['domain']} | {eta_s} | {len(errs)} | {100 * max(errs):.1f}% | "
                 f"{100 * np.median(errs):.1f}% | {sum(1 for e in errs if e <= 0.25)} | {100 * np.median(spreads):.1f}% | "
                 f"{100 * max(spreads):.1f}% |")
    summary = target_summary(nets)
    L.append("")
    L.append(summary["text"])
    L.append("\n## Every point with P >= 2 (judged ones in bold)\n")
    L.append("| network | op | P | vector | density | payload S | runs | spread | measured | model | error |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in nets:
        for op, f in n["fits"].items():
            for e in sorted(f["points"], key=lambda e: (e["p"], e["bytes"], e["density"])):
                err = f"{100 * e['error']:+.1f}%"
                L.append(f"| {n['label']} | {op} | {e['p']} | {fmt_bytes(e['bytes'])} | {e['density']:.3g} | "
                         f"{fmt_bytes(e['payload'])} | {e['repeats']} | {100 * e['spread']:.0f}% | "
                         f"{fmt_time(e['measured_s'])} | "
                         f"{fmt_time(e['predicted_s'])} | {'**' + err + '**' if e['judged'] else err} |")
    L.append("\n## Projection to a cluster (one link and core per rank)\n")
    L.append(f"Gradient of {params_d / 1e6:g}M float32 parameters ({fmt_bytes(4 * params_d)}), compressed ops at "
             f"density {rho:g}. Parameters: eta = {eta:.3f} ({src['eta_from']}), so beta = {eta:.3f} * 8 / rate; "
             f"alpha = {src['alpha_used']}. "
             "Communication only, per step.\n")
    L.append("| link | P | dense-ring | mpi-allreduce | rbgs | sparse-allgather | mpi-allgatherv | rho* (sparse wins below) | 1/P |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in proj:
        L.append(f"| {r['rate_gbits']} Gbit/s | {r['p']} | {fmt_time(r['dense-ring'])} | {fmt_time(r['mpi-allreduce'])} | "
                 f"{fmt_time(r['rbgs'])} | {fmt_time(r['sparse-allgather'])} | {fmt_time(r['mpi-allgatherv'])} | "
                 f"{r['crossover_density']:.4g} | {1.0 / r['p']:.4g} |")
    if crossings:
        L.append("\n## Measured crossover (sparse all-gather vs MPI_Allreduce of the whole vector)\n")
        L.append("Density where the measured times meet (log-log interpolation between the measured densities).\n")
        L.append("| network | P | size | crossover density | 1/P |")
        L.append("|---|---:|---:|---:|---:|")
        for c in crossings:
            v = c["crossover"]
            v = f"{v:.3g}" if isinstance(v, float) else v
            L.append(f"| {c['net']} | {c['p']} | {fmt_bytes(c['bytes'])} | {v} | {1.0 / c['p']:.3g} |")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def plot(out_dir, nets, proj, params_d, rho):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Fit quality: predicted against measured, every point with P >= 2.
    # Judged points (P <= 8, payload >= 1 MiB) filled, the rest (latency-bound, not judged) hollow;
    # colour: network, marker: op.
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.5, 6))
    markers = dict(zip(OPS, "osD^v"))
    for i, n in enumerate(nets):
        for op, f in n["fits"].items():
            for judged in (False, True):
                pts = [e for e in f["points"] if e["judged"] == judged]
                if not pts:
                    continue
                m = np.array([e["measured_s"] for e in pts])
                pr = np.array([e["predicted_s"] for e in pts])
                ax.scatter(m, pr, marker=markers[op], s=20 if judged else 14, alpha=0.85 if judged else 0.5,
                           facecolors=f"C{i}" if judged else "none", edgecolors=f"C{i}", linewidths=0.8)
    lo = min((e["measured_s"] for n in nets for f in n["fits"].values() for e in f["points"]), default=1e-6)
    hi = max((e["measured_s"] for n in nets for f in n["fits"].values() for e in f["points"]), default=1.0)
    xs = np.array([lo / 2, hi * 2])
    ax.plot(xs, xs, "k-", lw=0.8)
    ax.fill_between(xs, xs * 0.75, xs * 1.25, color="0.85")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("model (s)")
    ax.set_title("alpha-beta model against sparcol-bench (P = 2..8)")
    handles = [Line2D([], [], ls="", marker="o", color=f"C{i}", label=f"{n['label']} ({n.get('domain', '?')})")
               for i, n in enumerate(nets)]
    handles += [Line2D([], [], ls="", marker=markers[op], color="0.3", label=op) for op in OPS]
    handles += [Line2D([], [], ls="", marker="o", mfc="none", color="0.3", label="payload < 1 MiB (not judged)"),
                Line2D([], [], lw=6, color="0.85", label="+-25%")]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "cost_model_fit.png"), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(PROJ_RATES_GBITS), figsize=(13, 4.2), sharey=True)
    for ax, rate in zip(axes, PROJ_RATES_GBITS):
        rows = [r for r in proj if r["rate_gbits"] == rate]
        ps = [r["p"] for r in rows]
        for op in OPS:
            ax.plot(ps, [r[op] for r in rows], marker=markers[op], ms=4, label=op)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{rate} Gbit/s links")
        ax.set_xlabel("ranks P")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("communication time per step (s)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Projected time per step: {params_d / 1e6:g}M parameters, density {rho:g}")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "cost_model_projection.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for rate in PROJ_RATES_GBITS:
        rows = [r for r in proj if r["rate_gbits"] == rate]
        ax.plot([r["p"] for r in rows], [max(r["crossover_density"], 1e-9) for r in rows], marker="o", ms=4,
                label=f"model, {rate} Gbit/s")
    ps = np.array(PROJ_RANKS, dtype=float)
    ax.plot(ps, 1.0 / ps, "k--", label="1/P (bandwidth only)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("ranks P")
    ax.set_ylabel("crossover density rho*")
    ax.set_title("Sparse all-gather beats the dense ring all-reduce below rho*")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "cost_model_crossover.png"), dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dirs", nargs="+", help="directories of sparcol-bench HDF5 files, one per network")
    ap.add_argument("--out", default="results/analysis", help="output directory")
    ap.add_argument("--params", type=float, default=25.6e6, help="parameters per gradient for the projection")
    ap.add_argument("--density", type=float, default=0.01, help="density of the compressed ops in the projection")
    ap.add_argument("--alpha", default="links",
                    help="projection latency per round: 'links' (per link class), 'fitted', or seconds")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    if args.alpha not in ("links", "fitted"):
        try:
            fixed_alpha = float(args.alpha)
            if not fixed_alpha >= 0:
                raise ValueError
        except ValueError:
            print("cost_model: error: --alpha must be 'links', 'fitted' or a number of seconds >= 0", file=sys.stderr)
            return 2
    if not 0 < args.density <= 1:
        print("cost_model: error: --density must be in (0, 1]", file=sys.stderr)
        return 2
    if args.params < 1:
        print("cost_model: error: --params must be >= 1", file=sys.stderr)
        return 2
    for d in args.run_dirs:
        if not os.path.isdir(d):
            print(f"cost_model: error: {d} is not a directory", file=sys.stderr)
            return 2
    nets = analyse(args.run_dirs)
    if not nets or not any(n["fits"] for n in nets):
        print("cost_model: error: no sparcol-bench results with 2 or more ranks to fit", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    fitted_alpha, eta, src = projection_params(nets)
    if args.alpha == "links":
        alpha_of = PROJ_ALPHA_S.__getitem__
        src["alpha_used"] = ("per link class: " + ", ".join(f"{r} Gbit/s {a * 1e6:g} us" for r, a in PROJ_ALPHA_S.items())
                             + f" (the fitted alpha, {fitted_alpha * 1e6:.0f} us from {src['alpha_from']}, is this "
                             "machine's scheduling, not a link's latency)")
    elif args.alpha == "fitted":
        alpha_of = lambda rate: fitted_alpha  # noqa: E731
        src["alpha_used"] = f"{fitted_alpha * 1e6:.1f} us per round, fitted ({src['alpha_from']})"
    else:
        alpha_of = lambda rate: fixed_alpha  # noqa: E731
        src["alpha_used"] = f"{fixed_alpha * 1e6:g} us per round (--alpha)"
    proj = project(alpha_of, eta, int(args.params), args.density)
    alpha = fitted_alpha
    crossings = measured_crossovers(nets)
    write_markdown(os.path.join(args.out, "cost_model.md"), nets, proj, alpha, eta, src, args.params,
                   args.density, crossings)
    doc = {
        "networks": [{k: v for k, v in n.items() if k not in ("points", "repeats", "spread")} for n in nets],
        "target": {k: v for k, v in target_summary(nets).items() if k != "text"},
        "projection": {"fitted_alpha_s": alpha, "eta": eta, "sources": src,
                       "params": args.params, "density": args.density, "rows": proj},
        "measured_crossovers": crossings,
    }
    with open(os.path.join(args.out, "cost_model.json"), "w") as f:
        json.dump(doc, f, indent=1, default=float)
    if not args.no_plots:
        plot(args.out, nets, proj, args.params, args.density)
    for n in nets:
        for op, f in n["fits"].items():
            print(f"{n['label']:>8} {op:<17} alpha {f['alpha_s'] * 1e6:9.2f} us  beta {f['beta_s_per_byte'] * 1e9:8.4f} "
                  f"ns/B  max err {100 * f['max_abs_error']:5.1f}%  median {100 * f['median_abs_error']:5.1f}% "
                  f"({f['judged']} judged points)")
    print(target_summary(nets)["text"].replace("**", ""))
    print(f"wrote {args.out}/cost_model.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
