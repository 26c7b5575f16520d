#!/usr/bin/env python3
"""Checks bench/cost_model.py as a user runs it: on sparcol-bench HDF5 files whose times follow a known
alpha-beta law it must recover alpha and beta, predict every point, class the network, judge the 25%
target, and project; on bad input it must fail with exit status 2 and a message.

Usage: check_cost_model.py --script bench/cost_model.py --workdir DIR CASE
  CASE: recover (a link-bound emulated network and a noisy shared-memory one), miss (a link-bound
  network whose times break the law at one point: the target must be reported as not met), bad-input.
The data are generated here (layout docs/bench.md: one group per op with bytes, k, ranks, time_us).
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


def load_model(script):
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    import cost_model  # noqa: E402  the script under test, imported for its terms only

    return cost_model


def write_net(cm, path, net, alpha, beta, noise, rng, repeats=3, spoil=None):
    """sparcol-bench files whose times are the model's (alpha, beta) times x (1 + uniform noise)."""
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
                            t = cm.predict(np.array([alpha, beta]), op, p, b, k, net)
                            if p == 1:
                                t = 1e-6  # one rank: nothing moves
                            t *= 1.0 + rng.uniform(-noise, noise)
                            if spoil and spoil == (op, p, b):
                                t *= 2.0
                            rows.append((b, k, p, t * 1e6))
                        g = f.create_group(op)
                        for i, name in enumerate(("bytes", "k", "ranks", "time_us")):
                            g.create_dataset(name, data=np.array([row[i] for row in rows]))


def run(script, *args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)


def case_recover(script, work):
    cm = load_model(script)
    rng = random.Random(7)
    link = {"label": "emu1g", "kind": "emulated", "rate_gbits": 1.0, "lanes": 1, "cores": 2}
    host = {"label": "shm", "kind": "shm", "rate_gbits": None, "lanes": 2, "cores": 2}
    alpha, beta = 50e-6, 8.0e-9 * 1.02  # 1 Gbit/s with 2% framing: eta 1.02
    write_net(cm, os.path.join(work, "emu1g"), link, alpha, beta, 0.02, rng)
    write_net(cm, os.path.join(work, "shm"), host, 20e-6, 0.4e-9, 0.6, rng)
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
    cm = load_model(script)
    rng = random.Random(11)
    link = {"label": "emu2g", "kind": "emulated", "rate_gbits": 2.5, "lanes": 1, "cores": 2}
    write_net(cm, os.path.join(work, "emu2g"), link, 0.0, 3.2e-9, 0.01, rng,
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
