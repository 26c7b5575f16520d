#!/usr/bin/python3
"""Runs one row of tests/apps/bad_input.table: a program given bad flags or bad input files.

  bad_input.py TABLE PROGRAM CASE --bin PROGRAM=PATH [--bin ...] --mpiexec MPIEXEC

The row's command must end with its expected exit status (< 128: no signal), print the documented
error line "sparcol: rank R: error: ..." (docs/errors.md) and match the row's regular expression on
stderr. It must not crash or trip a sanitizer, leave no core file, and change nothing in its scratch
directory: every file there (the inputs the row set up) keeps its size and modification time, and no
file appears (bad input is refused before any output is written). Prints "ok" or what is wrong and
exits 0 or 1.
"""
import argparse
import os
import re
import resource
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
# What a crash, a sanitizer or a launcher reporting a signal prints.
CRASH = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                   r"Segmentation fault|core dumped|exited on signal|terminate called|Aborted")
ERROR_LINE = re.compile(r"^sparcol: rank \d+: error: \S", re.MULTILINE)
# sparcol-train's flags of the run that makes {ckpt} (8 steps on 256 samples, checkpoints at 4 and 8).
TRAIN = "--data {data} --epochs 1 --batch 32 --progress-every 0 --quiet"


def read_row(table, program, case):
    with open(table) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = [c.strip() for c in line.rstrip("\n").split(" | ", 5)]
            if len(cols) != 6:
                sys.exit(f"{table}:{n}: expected 6 columns separated by ' | ', got {len(cols)}")
            if cols[0] == program and cols[1] == case:
                return {"ranks": int(cols[2]), "status": int(cols[3]), "args": cols[4], "stderr": cols[5]}
    sys.exit(f"{table}: no row {program} | {case}")


class Inputs:
    """Creates the inputs a row's placeholders name, once each, inside the scratch directory."""

    def __init__(self, tmp, bins, mpiexec):
        self.tmp, self.bins, self.mpiexec = tmp, bins, mpiexec
        self.made = {}

    def path(self, name):
        return os.path.join(self.tmp, name)

    def data(self, kind=None):
        key = "data" if kind is None else "data-" + kind
        if key not in self.made:
            cmd = [PYTHON, os.path.join(HERE, "train_make_idx.py"), self.path(key), "--train", "256", "--test", "64"]
            subprocess.run(cmd + (["--corrupt", kind] if kind else []), check=True)
            self.made[key] = self.path(key)
        return self.made[key]

    def ckpt(self, kind=None):
        if "ckpt" not in self.made:
            train = self.bins["sparcol-train"]
            args = self.expand_all(shlex.split(TRAIN))
            subprocess.run([train] + args + ["--checkpoint", self.path("ckpt"), "--checkpoint-every", "4"],
                           check=True, stdout=subprocess.DEVNULL)
            self.made["ckpt"] = self.path("ckpt")
        if kind is None:
            return self.made["ckpt"]
        # A copy of ckpt-8 (the latest) with rank-0.bin damaged; the copy keeps the name ckpt-8.
        dst = os.path.join(self.path("ckpt-" + kind), "ckpt-8")
        shutil.copytree(os.path.join(self.made["ckpt"], "ckpt-8"), dst)
        rank0 = os.path.join(dst, "rank-0.bin")
        with open(rank0, "rb") as f:
            good = f.read()
        if kind == "absent":
            os.remove(rank0)
            return dst
        damaged = {
            "empty": lambda b: b"",
            "truncated": lambda b: b[: len(b) // 2],
            "magic": lambda b: b"NOTACKPT" + b[8:],
            "flipped": lambda b: b[:1000] + bytes([b[1000] ^ 0x10]) + b[1001:],
            "dims": shorten_params,
        }[kind](good)
        with open(rank0, "wb") as f:
            f.write(damaged)
        return dst

    def expand(self, token):
        def one(m):
            name, _, kind = m.group(1).partition(":")
            if name == "tmp":
                return self.tmp
            if name == "missing":
                return self.path("missing")
            if name == "file":
                if not os.path.exists(self.path("file")):
                    with open(self.path("file"), "w") as f:
                        f.write("not a directory\n")
                return self.path("file")
            if name == "data":
                return self.data(kind or None)
            if name == "ckpt":
                return self.ckpt(kind or None)
            sys.exit(f"unknown placeholder {{{m.group(1)}}}")

        return re.sub(r"\{([a-z]+(?::[a-z]+)?)\}", one, token)

    def expand_all(self, tokens):
        return [self.expand(t) for t in tokens]


def shorten_params(b):
    """The rank file with its 'params' record one value short and both checksums recomputed: a file
    that is intact as a file but does not fit the model (wrong dimensions)."""
    header, payload = b[:32], b[32:]
    out, pos = bytearray(), 0
    while pos < len(payload):
        (n,) = struct.unpack_from("<I", payload, pos)
        name = payload[pos + 4: pos + 4 + n]
        kind = payload[pos + 4 + n]
        (count,) = struct.unpack_from("<Q", payload, pos + 5 + n)
        size = {1: 8, 2: 8, 3: 4 * count, 4: count}[kind]
        body = payload[pos + 13 + n: pos + 13 + n + size]
        if name == b"params":
            count, body = count - 1, body[:-4]
        out += struct.pack("<I", n) + name + bytes([kind]) + struct.pack("<Q", count) + body
        pos += 13 + n + size
    head = bytearray(header)
    struct.pack_into("<QI", head, 16, len(out), zlib.crc32(out))
    struct.pack_into("<I", head, 28, zlib.crc32(bytes(head[:28])))
    return bytes(head) + bytes(out)


def snapshot(top):
    files = {}
    for root, dirs, names in os.walk(top):
        for n in names + dirs:
            p = os.path.join(root, n)
            st = os.lstat(p)
            files[os.path.relpath(p, top)] = (st.st_size, st.st_mtime_ns) if n in names else "dir"
    return files


def allow_core_dumps():
    # A crash must leave evidence: a core file in the working directory (when the kernel writes cores
    # to files) shows up as a new file there.
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    want = 64 << 20 if hard == resource.RLIM_INFINITY else min(hard, 64 << 20)
    resource.setrlimit(resource.RLIMIT_CORE, (want, hard))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("table")
    ap.add_argument("program")
    ap.add_argument("case")
    ap.add_argument("--bin", action="append", default=[], help="PROGRAM=PATH")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--timeout", type=float, default=90)
    a = ap.parse_args()
    bins = dict(b.split("=", 1) for b in a.bin)
    row = read_row(a.table, a.program, a.case)
    if a.program not in bins:
        sys.exit(f"no --bin for {a.program}")

    tmp = tempfile.mkdtemp(prefix="sparcol-bad-input-")
    try:
        inputs = Inputs(tmp, bins, a.mpiexec)
        args = inputs.expand_all(shlex.split(row["args"].replace("{train}", TRAIN)))
        cmd = [bins[a.program]] + args
        if row["ranks"] > 1:
            cmd = [a.mpiexec, "-np", str(row["ranks"])] + cmd
        env = dict(os.environ)
        # Every rank exits by itself here; Open MPI need not wait 1 s before killing the others.
        env["OMPI_MCA_odls_base_sigkill_timeout"] = "0"
        # A case named *-no-gpu sees no GPU even on a GPU machine (the refusal of a missing device).
        if a.case.endswith("-no-gpu"):
            env["CUDA_VISIBLE_DEVICES"] = ""
        before = snapshot(tmp)
        print("$ " + " ".join(shlex.quote(c) for c in cmd))
        try:
            p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, errors="replace",
                               timeout=a.timeout, preexec_fn=allow_core_dumps)
        except subprocess.TimeoutExpired:
            print(f"FAILED: no exit within {a.timeout:.0f} s (a hang)")
            return 1
        after = snapshot(tmp)
        bad = []
        if p.returncode < 0 or p.returncode >= 128:
            bad.append(f"ended by a signal (status {p.returncode})")
        elif p.returncode != row["status"]:
            bad.append(f"exit status {p.returncode}, expected {row['status']}")
        if not ERROR_LINE.search(p.stderr):
            bad.append("no line 'sparcol: rank R: error: ...' on stderr")
        if not re.search(row["stderr"], p.stderr):
            bad.append(f"stderr does not match {row['stderr']!r}")
        if CRASH.search(p.stderr):
            bad.append("stderr reports a crash: " + CRASH.search(p.stderr).group(0))
        cores = [f for f in after if re.match(r"(.*/)?(v?core)(\.\d+)?$", f)]
        if cores:
            bad.append(f"core file(s): {cores}")
        created = sorted(set(after) - set(before))
        changed = sorted(f for f in before if f in after and before[f] != after[f])
        removed = sorted(set(before) - set(after))
        if created:
            bad.append(f"created {created} (bad input must be refused before anything is written)")
        if changed or removed:
            bad.append(f"changed {changed}, removed {removed} (inputs must stay as they were)")
        first = next((l for l in p.stderr.splitlines() if ERROR_LINE.match(l)), p.stderr.strip()[:200])
        if bad:
            print("stderr:\n" + p.stderr)
            for b in bad:
                print("FAILED: " + b)
            return 1
        print(f"ok (exit {p.returncode}): {first}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
