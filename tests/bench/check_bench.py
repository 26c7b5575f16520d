#!/usr/bin/env python3
"""Runs sparcol-bench as a user would (under mpirun) and checks what it prints, writes and returns.

Usage: check_bench.py --bench PATH --mpiexec PATH --workdir DIR --np N CASE

Each CASE is one CTest test (tests/suites/bench.cmake). A case fails with the command line, exit status
and full output, which includes the data seed the benchmark drew (header line "seed ..."), so a failing
check can be rerun with --seed.
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile

# A small sweep: 8 B .. 256 KiB in steps of 8x (6 sizes), every operation, exact checks.
SWEEP = ["-b", "8", "-e", "256K", "-f", "8", "-n", "3", "-w", "1", "-c", "1", "--op", "all"]
SWEEP_SIZES = [8, 64, 512, 4096, 32768, 262144]
OPS = ["dense-ring", "rbgs", "sparse-allgather", "mpi-allreduce", "mpi-allgatherv"]
ROW = re.compile(r"^\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+.*\s(\S+)\s*$")

# Exit statuses (docs/bench.md): wrong results, invalid arguments, I/O, mismatch across ranks.
EXIT_WRONG, EXIT_INVALID, EXIT_IO, EXIT_MISMATCH = 1, 2, 3, 6


class Failure(Exception):
    pass


class Runner:
    def __init__(self, args):
        self.bench = args.bench
        self.mpiexec = args.mpiexec
        self.np = args.np
        os.makedirs(args.workdir, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="run_", dir=args.workdir)
        self.last = ""

    def mpi(self, *bench_args, env=None):
        """All ranks get the same arguments."""
        return self.run([self.mpiexec, "-np", str(self.np), "--oversubscribe", self.bench, *bench_args], env)

    def mpmd(self, first, rest, env=None):
        """Rank 0 gets `first`, ranks 1.. get `rest` (Open MPI's MPMD syntax)."""
        cmd = [self.mpiexec, "--oversubscribe", "-np", "1", self.bench, *first, ":",
               "-np", str(self.np - 1), self.bench, *rest]
        return self.run(cmd, env)

    def run(self, cmd, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=100, env=full_env)
        self.last = (f"$ {' '.join(cmd)}\nexit status {p.returncode}\n--- stdout ---\n{p.stdout}"
                     f"--- stderr ---\n{p.stderr}")
        return p

    def expect(self, cond, what):
        if not cond:
            raise Failure(what)


def rows(stdout):
    """Table rows as (bytes, count, density, op, wrong) tuples."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("#"):
            continue
        m = ROW.match(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4), m.group(5)))
    return out


def check_clean_sweep(r, p, ranks, backend="mpi"):
    r.expect(p.returncode == 0, "exit status should be 0")
    r.expect(f"# ranks {ranks}, backend {backend}" in p.stdout, f"header should name {ranks} ranks and {backend}")
    table = rows(p.stdout)
    r.expect(len(table) == len(SWEEP_SIZES) * len(OPS),
             f"expected {len(SWEEP_SIZES) * len(OPS)} rows, got {len(table)}")
    for size in SWEEP_SIZES:
        r.expect(sorted(op for b, _, _, op, _ in table if b == size) == sorted(OPS), f"every op at size {size}")
    for b, count, _, op, wrong in table:
        r.expect(count == b // 4, f"count column of {op} at {b} bytes")
        r.expect(wrong == "0", f"{op} at {b} bytes reports #wrong {wrong}")
    r.expect("# total wrong: 0 (OK)" in p.stdout, "footer should report 0 wrong")


def check_error(r, p, status, *needles, ranks=None):
    """Exit `status`; every rank prints 'sparcol: rank R: error:' and the message contains the needles."""
    r.expect(p.returncode == status, f"exit status should be {status}")
    for rank in range(r.np if ranks is None else ranks):
        lines = [l for l in p.stderr.splitlines() if l.startswith(f"sparcol: rank {rank}: error:")]
        r.expect(lines, f"rank {rank} should print an error line")
    for n in needles:
        r.expect(n in p.stderr, f"the message should contain {n!r}")


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------

def case_sweep(r):
    check_clean_sweep(r, r.mpi(*SWEEP), r.np)


def case_nan(r):
    # NaN in inputs propagates: the check expects NaN at the injected places and exact sums elsewhere.
    p = r.mpi(*SWEEP, "--nan")
    check_clean_sweep(r, p, r.np)
    r.expect("NaN injected" in p.stdout, "header should say NaN was injected")


def case_nan_block_covers_middle(r):
    # A seed (found by CI) whose RBGS block covers d/2, where rank 0's dense input holds its NaN: the
    # NaN propagates there too, and the check must expect it.
    p = r.mpi(*SWEEP, "--nan", "--seed", "6926754775731663")
    check_clean_sweep(r, p, r.np)


def case_loopback(r):
    check_clean_sweep(r, r.run([r.bench, "--backend", "loopback", "--ranks", "5", *SWEEP]), 5, "loopback")


def case_corrupt(r):
    # The check is not vacuous: one spoiled element per result is counted, and the exit status says so.
    p = r.mpi(*SWEEP, env={"SPARCOL_BENCH_CORRUPT": "1"})
    n = len(SWEEP_SIZES) * len(OPS)
    r.expect(p.returncode == EXIT_WRONG, f"exit status should be {EXIT_WRONG}")
    table = rows(p.stdout)
    r.expect(len(table) == n and all(w == "1" for *_, w in table), "every row should count 1 wrong element")
    r.expect(f"# total wrong: {n} (FAILED)" in p.stdout, "footer should count every spoiled element")


def case_outputs(r):
    h5, csv_path, json_path = (os.path.join(r.tmp, f) for f in ("b.h5", "b.csv", "b.json"))
    p = r.mpi(*SWEEP, "--h5", h5, "--csv", csv_path, "--json", json_path)
    check_clean_sweep(r, p, r.np)
    import h5py  # python3-h5py is a declared dependency (scripts/setup.sh)

    with open(csv_path, newline="") as f:
        csv_rows = list(csv.DictReader(f))
    with open(json_path) as f:
        js = json.load(f)
    r.expect(len(csv_rows) == len(js["results"]) == len(SWEEP_SIZES) * len(OPS), "CSV and JSON hold every row")
    r.expect(js["ranks"] == r.np and js["backend"] == "mpi", "JSON setup")
    with h5py.File(h5, "r") as f:
        for attr, want in (("program", "sparcol-bench"), ("backend", "mpi"), ("ranks", r.np), ("iters", 3),
                           ("warmup", 1), ("check", 1), ("total_wrong", 0)):
            got = f.attrs[attr]
            got = got.decode() if isinstance(got, bytes) else got
            r.expect(got == want, f"file attribute {attr} = {got!r}, want {want!r}")
        for attr in ("version", "build", "mpi_library", "seed", "density", "min_bytes", "max_bytes",
                     "step_factor", "date"):
            r.expect(attr in f.attrs, f"file attribute {attr} missing")
        r.expect(sorted(f.keys()) == sorted(OPS), f"one group per op, got {sorted(f.keys())}")
        contract = ["bytes", "count", "density", "ranks", "time_us", "baseline_us", "algbw_gbs", "busbw_gbs",
                    "sent_bytes", "wrong"]
        for op in OPS:
            g = f[op]
            for name in contract:
                r.expect(name in g, f"{op}/{name} missing")
                r.expect(g[name].ndim == 1 and g[name].shape[0] == len(SWEEP_SIZES), f"{op}/{name} shape")
            r.expect(list(g["bytes"][:]) == SWEEP_SIZES, f"{op}/bytes = {list(g['bytes'][:])}")
            r.expect(list(g["count"][:]) == [s // 4 for s in SWEEP_SIZES], f"{op}/count")
            r.expect(all(x == r.np for x in g["ranks"][:]), f"{op}/ranks")
            r.expect(all(x == 0 for x in g["wrong"][:]), f"{op}/wrong")
            r.expect(all(0 < x <= 1 for x in g["density"][:]), f"{op}/density")
            r.expect(all(x > 0 for x in g["time_us"][:]) and all(x > 0 for x in g["baseline_us"][:]),
                     f"{op} times must be positive")
            if op.startswith("mpi-"):
                r.expect(list(g["baseline_us"][:]) == list(g["time_us"][:]), f"{op}: baseline_us equals time_us")
            # The same numbers as the CSV (printed with 6 significant digits).
            mine = [c for c in csv_rows if c["op"] == op]
            for i, c in enumerate(mine):
                t = g["time_us"][i]
                r.expect(abs(float(c["time_us"]) - t) <= 1e-5 * t, f"{op} time_us differs between CSV and HDF5")
                r.expect(int(c["sent_bytes"]) == g["sent_bytes"][i], f"{op} sent_bytes differs")


def case_no_xref(r):
    # --no-xref: no whole-vector all-reduce beside rbgs and the gathers; x-allred is N/A and the files say
    # "no value" (empty CSV cell, JSON null, NaN in HDF5); dense-ring and mpi-allreduce keep theirs.
    h5, csv_path, json_path = (os.path.join(r.tmp, f) for f in ("x.h5", "x.csv", "x.json"))
    p = r.mpi(*SWEEP, "--no-xref", "--h5", h5, "--csv", csv_path, "--json", json_path)
    check_clean_sweep(r, p, r.np)
    without = {"rbgs", "sparse-allgather", "mpi-allgatherv"}
    for line in p.stdout.splitlines():
        cols = line.split()
        if line.startswith("#") or len(cols) != 13 or cols[3] not in OPS:
            continue
        if cols[3] in without:
            r.expect(cols[10] == "N/A", f"{cols[3]} at {cols[0]} bytes: x-allred should be N/A, got {cols[10]}")
        else:
            # A ratio printed with two decimals: under load a slow row can print 0.00, still a value.
            r.expect(cols[10] != "N/A" and float(cols[10]) >= 0, f"{cols[3]} at {cols[0]} bytes: x-allred should be a ratio")
    with open(csv_path, newline="") as f:
        for c in csv.DictReader(f):
            r.expect((c["allreduce_us"] == "") == (c["op"] in without), f"CSV allreduce_us of {c['op']}: {c['allreduce_us']!r}")
    with open(json_path) as f:
        for row in json.load(f)["results"]:
            r.expect((row["allreduce_us"] is None) == (row["op"] in without), f"JSON allreduce_us of {row['op']}")
    import h5py
    import math

    with h5py.File(h5, "r") as f:
        for op in OPS:
            vals = list(f[op]["allreduce_us"][:])
            r.expect(all(math.isnan(v) for v in vals) if op in without else all(v > 0 for v in vals),
                     f"HDF5 {op}/allreduce_us = {vals}")
    # All ranks must agree on the flag: one rank without it is refused before anything is timed.
    p = r.mpmd(["-b", "8", "-e", "64", "--no-xref"], ["-b", "8", "-e", "64"])
    check_error(r, p, EXIT_MISMATCH, "--no-xref")


def case_help(r):
    p = r.mpi("--help")
    r.expect(p.returncode == 0, "--help exits 0")
    for flag in ("-b,--minbytes", "-e,--maxbytes", "-f,--stepfactor", "-n,--iters", "-w,--warmup_iters",
                 "-c,--check", "--op", "--density", "-k,--pairs", "--backend", "--ranks", "--seed", "--timeout",
                 "--no-check-collectives", "--nan", "--no-xref", "--csv", "--json", "--h5", "--version"):
        r.expect(flag in p.stdout, f"--help should explain {flag}")
    r.expect(p.stdout.count("sparcol-bench: times") == 1, "only rank 0 prints the help")


def case_version(r):
    p = r.mpi("--version")
    r.expect(p.returncode == 0 and re.search(r"sparcol-bench \d+\.\d+\.\d+", p.stdout), "--version prints it")


def case_unknown_flag(r):
    check_error(r, r.mpi("--foo"), EXIT_INVALID, "--foo")


def case_negative_size(r):
    check_error(r, r.mpi("-b", "-5"), EXIT_INVALID, "'-5' is negative")


def case_non_numeric_size(r):
    check_error(r, r.mpi("-b", "abc"), EXIT_INVALID, "'abc' is not a number")


def case_density_zero(r):
    check_error(r, r.mpi("--density", "0"), EXIT_INVALID, "--density must lie in (0, 1], got 0")


def case_density_above_one(r):
    check_error(r, r.mpi("--density", "1.5"), EXIT_INVALID, "--density must lie in (0, 1], got 1.5")


def case_k_above_d(r):
    check_error(r, r.mpi("-b", "8", "-e", "64", "-k", "5"), EXIT_INVALID, "-k 5 exceeds the vector length d = 2")


def case_neighbor(r):
    # The neighbour exchange on every topology that fits the rank count, checked exactly against what
    # every neighbour sent (and MPI_Neighbor_alltoallv's result on the same graph); a spoiled element
    # is counted; it needs --backend mpi.
    topologies = ["ring", "exponential", "complete", "chain", "binary-tree", "double-binary-tree"]
    if r.np in (4, 6, 8, 9):
        topologies.append("torus")
    for t in topologies:
        p = r.mpi("-b", "8", "-e", "4K", "-f", "8", "-n", "1", "-w", "0", "--op", "neighbor", "--topology", t)
        r.expect(p.returncode == 0, f"{t}: exit status should be 0")
        table = rows(p.stdout)
        r.expect(len(table) == 4 and all(op == "neighbor" and w == "0" for *_, op, w in table), f"{t}: rows {table}")
    check_error(r, r.mpi("--op", "neighbor", "--topology", "hypercube"), EXIT_INVALID, "unknown topology 'hypercube'")
    check_error(r, r.run([r.bench, "--backend", "loopback", "--ranks", "2", "--op", "neighbor"]), EXIT_INVALID,
                "--op neighbor needs --backend mpi", ranks=1)


def case_neighbor_torus_misfit(r):
    check_error(r, r.mpi("-b", "8", "-e", "8", "--op", "neighbor", "--topology", "torus"), EXIT_INVALID,
                f"topology torus does not fit {r.np} ranks")


def case_unknown_op(r):
    check_error(r, r.mpi("--op", "dense-ring,bogus"), EXIT_INVALID, "unknown --op 'bogus'")


def case_mismatched_sizes(r):
    p = r.mpmd(["-b", "8", "-e", "64"], ["-b", "16", "-e", "64"])
    check_error(r, p, EXIT_MISMATCH, "ranks disagree on their arguments: rank 0 has -b 8 but rank 1 has -b 16")


def case_mismatched_density(r):
    p = r.mpmd(["-b", "4K", "-e", "4K", "--density", "0.01"], ["-b", "4K", "-e", "4K", "--density", "0.02"])
    check_error(r, p, EXIT_MISMATCH, "rank 0 has --density 0.01 but rank 1 has --density 0.02")


def case_one_rank_rejects(r):
    p = r.mpmd(["-b", "8", "-e", "64"], ["-b", "abc", "-e", "64"])
    check_error(r, p, EXIT_INVALID, "'abc' is not a number", "rank 1 rejected its arguments")


def case_unwritable_output(r):
    path = os.path.join(r.tmp, "no-such-dir", "out.h5")
    check_error(r, r.mpi("-b", "8", "-e", "8", "--h5", path), EXIT_IO, "create file", "no-such-dir")


def case_loopback_under_mpirun(r):
    check_error(r, r.mpi("--backend", "loopback", "--ranks", "2"), EXIT_INVALID, "start it without mpirun")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--np", type=int, required=True)
    ap.add_argument("case")
    args = ap.parse_args()
    fn = globals().get("case_" + args.case.replace("-", "_"))
    if fn is None:
        print(f"unknown case {args.case}", file=sys.stderr)
        return 2
    r = Runner(args)
    try:
        fn(r)
    except Failure as e:
        print(f"FAILED: {e}\n{r.last}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as e:
        print(f"FAILED: no exit within {e.timeout} s (a hang): {e.cmd}", file=sys.stderr)
        return 1
    print(f"ok: {args.case} with {args.np} rank(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
