#!/usr/bin/env python3
"""Checks bench/cost_model.py as a user runs it: on sparcol-bench HDF5 files simulated on a network with a
known latency and link rate it must recover alpha and beta, predict every point, class the network, judge the 25%
target, and project; on bad input it must fail with exit status 2 and a message.

Usage: check_cost_model.py --script bench/cost_model.py --workdir DIR CASE
  CASE: recover (a link-bound emulated network and a noisy shared-memory one), miss (a link-bound
  network whose times break the law at one point: the target must be reported as not met), bad-input.
The data are generated here (layout docs/bench.md: one group per op with bytes, k, ranks, time_us) by a
round-by-round simulation of each collective on a network of known latency and link rate, with seeded
noise, written independently of the model's formulas (the script under test is only run, not imported).
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys

import h5py
import numpy as np

OPS = ["dense-ring", "rbgs", "sparse-allgather", "mpi-allreduce", "mpi-allgatherv"]
SIZES = [1 << 18, 1 << 20, 1 << 22, 1 << 24]  # bytes of the dense vector
DENSITIES = [0.01, 0.1]
RANKS = [1, 2, 4, 8]


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


# ------------------------------------------------------------------------------------------------
# An independent simulation of the network the model describes
# ------------------------------------------------------------------------------------------------
# The times are not computed with the formula under test (cost_model.terms / predict). Each collective
# is played message round by message round, as its algorithm in src/coll (and Open MPI's, for the
# baselines) sends them; a round ends when its last message is through. A round costs
#   * the software overhead: each rank spends `alpha` per round on one of the `cores` cores
#     (list-scheduled: ranks beyond the cores wait for one to be free);
#   * the transfer: every rank's message of the round goes through one of the `lanes` links (ranks
#     assigned to lanes in turn), each moving `rate` payload bytes per second (rate = 1 / beta);
#     the round's transfer time is that of the most loaded lane;
#   * noise: a factor drawn per round from the seeded RNG.
# The fit must find alpha and beta again from these times.

DIRECT_RANKS = 16          # RingAllreduce, SparseAllgather and the fingerprint: direct up to 16 ranks
DIRECT_BYTES = 8 << 20     # RingAllreduce: direct up to 8 MiB
FINGERPRINT_BYTES = 24     # the call fingerprint each rank sends to each peer


def ring_rounds(p, nbytes):
    """Per-round bytes each rank sends in sparcol's all-reduce of nbytes (RingAllreduce::run)."""
    chunk = nbytes / p
    if p <= DIRECT_RANKS and nbytes <= DIRECT_BYTES:
        # Direct: scatter a chunk to every peer (with the fingerprint), then gather the sums.
        return [(p - 1) * (chunk + FINGERPRINT_BYTES), (p - 1) * chunk]
    fingerprint = [FINGERPRINT_BYTES] * bruck_rounds(p)
    return fingerprint + [chunk] * (p - 1) + [chunk] * (p - 1)  # reduce-scatter, then all-gather


def bruck_rounds(p):
    rounds, reach = 0, 1
    while reach < p:
        rounds += 1
        reach *= 2
    return rounds


def op_rounds(op, p, dense_bytes, k):
    """The bytes one rank sends in each sequential round of one call."""
    if p <= 1:
        return []
    if op == "dense-ring":
        return ring_rounds(p, dense_bytes)
    if op == "rbgs":
        return ring_rounds(p, 4 * k)
    if op == "sparse-allgather":
        pairs = 8 * k
        if p <= DIRECT_RANKS:
            # Counts and blocks leave with the fingerprint; the receives are posted once the counts
            # are in: a second round that moves nothing.
            return [(p - 1) * (pairs + FINGERPRINT_BYTES), 0]
        return [FINGERPRINT_BYTES] * bruck_rounds(p) + [pairs] * (p - 1)  # forward one block a round
    if op == "mpi-allreduce":
        steps = bruck_rounds(p)  # recursive halving, then doubling (P a power of two here)
        halving = [dense_bytes / 2 ** (i + 1) for i in range(steps)]
        return halving + halving[::-1]
    if op == "mpi-allgatherv":
        return [8 * k] * (p - 1)
    raise ValueError(op)


def simulate(op, p, dense_bytes, k, net, alpha, beta, noise, rng):
    lanes = net.get("lanes") or p
    cores = net.get("cores") or p
    total = 0.0
    for sent in op_rounds(op, p, dense_bytes, k):
        core_busy = [0.0] * cores
        for _ in range(p):
            core_busy[core_busy.index(min(core_busy))] += alpha
        lane_bytes = [0.0] * lanes
        for r in range(p):
            lane_bytes[r % lanes] += sent
        total += (max(core_busy) + max(lane_bytes) * beta) * (1.0 + rng.uniform(-noise, noise))
    return total


def write_net(path, net, alpha, beta, noise, rng, repeats=3, spoil=None):
    """sparcol-bench files of the simulated network `net` with (alpha, beta) and per-round noise."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "network.json"), "w") as f:
        json.dump(net, f)
    for r in range(repeats):
        for p in RANKS:
            for tag, ops, dens in (("dense", ["dense-ring", "mpi-allreduce"], [1.0]),
                                   *((f"d{d}", ["rbgs", "sparse-allgather", "mpi-allgatherv"], [d]) for d in DENSITIES)):
                with h5py.File(os.path.join(path, f"bench-p{p}-{tag}-r{r + 1}.h5"), "w") as f:
                    f.attrs["total_wrong"] = 0
                    for op in ops:
                        rows = []
                        for b in SIZES:
                            k = b // 4 if op in ("dense-ring", "mpi-allreduce") else max(1, int(dens[0] * b / 4))
                            t = simulate(op, p, b, k, net, alpha, beta, noise, rng)
                            if p == 1:
                                t = 1e-6  # one rank: nothing moves
                            if spoil and spoil == (op, p, b):
                                t *= 2.0
                            rows.append((b, k, p, t * 1e6))
                        g = f.create_group(op)
                        for i, name in enumerate(("bytes", "k", "ranks", "time_us")):
                            g.create_dataset(name, data=np.array([row[i] for row in rows]))


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)


def case_recover(script, work):
    rng = random.Random(7)
    link = {"label": "emu1g", "kind": "emulated", "rate_gbits": 1.0, "lanes": 1, "cores": 2}
    host = {"label": "shm", "kind": "shm", "rate_gbits": None, "lanes": 2, "cores": 2}
    alpha, beta = 50e-6, 8.0e-9 * 1.02  # 1 Gbit/s with 2% framing: eta 1.02
    write_net(os.path.join(work, "emu1g"), link, alpha, beta, 0.02, rng)
    write_net(os.path.join(work, "shm"), host, 20e-6, 0.4e-9, 0.6, rng)
    out = os.path.join(work, "analysis")
    p = run(script, "--out", out, "--no-plots", os.path.join(work, "emu1g"), os.path.join(work, "shm"))
    expect(p.returncode == 0, f"exit status {p.returncode}: {p.stderr}")
    with open(os.path.join(out, "cost_model.json")) as f:
        doc = json.load(f)
    nets = {n["label"]: n for n in doc["networks"]}
    expect(nets["emu1g"]["domain"] == "link", f"emu1g domain {nets['emu1g']['domain']}")
    expect(nets["shm"]["domain"] == "host", f"shm domain {nets['shm']['domain']}")
    expect(abs(nets["emu1g"]["eta"] - 1.02) < 0.03, f"eta {nets['emu1g']['eta']} (want 1.02)")
    for op in OPS:
        fit = nets["emu1g"]["fits"][op]
        expect(abs(fit["beta_s_per_byte"] / beta - 1) < 0.03, f"{op}: beta {fit['beta_s_per_byte']} (want {beta})")
        expect(fit["max_abs_error"] < 0.05, f"{op}: max error {fit['max_abs_error']} on 2% noise")
        expect(fit["judged"] > 0, f"{op}: no judged points")
        # The host network's link rate is found too, through 60% noise per round (alpha is not: at
        # these sizes it is a few percent of any time, within the noise).
        host_beta = nets["shm"]["fits"][op]["beta_s_per_byte"]
        expect(abs(host_beta / 0.4e-9 - 1) < 0.15, f"{op}: shm beta {host_beta} (want 0.4e-9)")
    t = doc["target"]
    expect(t["met"] is True and t["link_max_error"] < 0.05, f"target verdict {t}")
    expect(t["host_max_error"] is not None, "the host network's error is reported")
    md = open(os.path.join(out, "cost_model.md")).read()
    expect("target 25%: **met**" in md, "cost_model.md states the verdict")
    expect("| shm | host |" in md and "| emu1g | link |" in md, "cost_model.md classes both networks")
    # Projection at 400 Gbit/s links (alpha 3 us per round), P = 1024, d = 25.6M floats, worked out by
    # hand: beta = eta 8 / rate; the dense ring takes 2(P-1) rounds plus the fingerprint's log2 P and
    # moves 2 (P-1)/P 4d bytes; the ring all-gather takes log2 P + P-1 rounds and (P-1) 8 rho d bytes.
    # Bandwidth alone puts the crossover at 1/P; the dense ring's extra P-1 rounds move it up.
    rows = doc["projection"]["rows"]
    r = next(x for x in rows if x["rate_gbits"] == 400 and x["p"] == 1024)
    P, d, a = 1024, doc["projection"]["params"], 3e-6
    b = doc["projection"]["eta"] * 8 / 400e9
    dense = a * (2 * (P - 1) + 10) + b * 2 * (P - 1) / P * 4 * d
    rho = (dense - a * (10 + P - 1)) / (b * (P - 1) * 8 * d)
    expect(abs(r["dense-ring"] / dense - 1) < 1e-6, f"dense-ring {r['dense-ring']} s, by hand {dense} s")
    expect(abs(r["crossover_density"] / rho - 1) < 1e-6, f"crossover {r['crossover_density']}, by hand {rho}")
    expect(1.0 / P < rho < 2.0 / P, f"crossover {rho} should lie a little above 1/P")


def case_miss(script, work):
    rng = random.Random(11)
    link = {"label": "emu2g", "kind": "emulated", "rate_gbits": 2.5, "lanes": 1, "cores": 2}
    write_net(os.path.join(work, "emu2g"), link, 0.0, 3.2e-9, 0.01, rng,
              spoil=("sparse-allgather", 4, 1 << 24))
    out = os.path.join(work, "analysis")
    p = run(script, "--out", out, "--no-plots", os.path.join(work, "emu2g"))
    expect(p.returncode == 0, f"exit status {p.returncode}: {p.stderr}")
    with open(os.path.join(out, "cost_model.json")) as f:
        doc = json.load(f)
    t = doc["target"]
    expect(t["met"] is False and t["link_max_error"] > 0.25, f"one point twice as slow must miss: {t}")
    expect("sparse-allgather, P = 4" in p.stdout and "not met" in p.stdout, f"stdout names the worst point: {p.stdout}")


def case_bad_input(script, work):
    p = run(script, "--out", os.path.join(work, "a"), os.path.join(work, "does-not-exist"))
    expect(p.returncode == 2 and "is not a directory" in p.stderr, f"missing dir: {p.returncode} {p.stderr}")
    empty = os.path.join(work, "empty")
    os.makedirs(empty, exist_ok=True)
    p = run(script, "--out", os.path.join(work, "a"), empty)
    expect(p.returncode == 2 and "no sparcol-bench results" in p.stderr, f"empty dir: {p.returncode} {p.stderr}")
    p = run(script, "--density", "0", empty)
    expect(p.returncode == 2 and "--density" in p.stderr, f"--density 0: {p.returncode} {p.stderr}")
    p = run(script, "--alpha", "soon", empty)
    expect(p.returncode == 2 and "--alpha" in p.stderr, f"--alpha soon: {p.returncode} {p.stderr}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("case", choices=["recover", "miss", "bad-input"])
    args = ap.parse_args()
    work = os.path.join(args.workdir, args.case)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        {"recover": case_recover, "miss": case_miss, "bad-input": case_bad_input}[args.case](args.script, work)
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(f"{args.case}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
