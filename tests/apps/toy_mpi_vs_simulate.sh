#!/usr/bin/env bash
# sparcol-toy: a K-worker run under mpirun gives bitwise the same iterates as --simulate K, for every
# method, with gradient noise on (so the per-rank random streams are exercised too).
# Usage: toy_mpi_vs_simulate.sh TOY MPIEXEC K
set -euo pipefail
toy=$1 mpiexec=$2 k=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
common=(--method all --iterations 300 --noise 0.2 --quiet --seed 7)
[ "$k" -gt 2 ] && common+=(--setting 2 --k 3)
"$mpiexec" -np "$k" --oversubscribe "$toy" "${common[@]}" --h5 "$dir/mpi-{method}.h5"
"$toy" --simulate "$k" "${common[@]}" --h5 "$dir/sim-{method}.h5"
/usr/bin/python3 - "$dir" <<'PY'
import glob, os, sys
import h5py, numpy as np
d = sys.argv[1]
files = sorted(glob.glob(os.path.join(d, "mpi-*.h5")))
assert len(files) >= 17 and len(files) == len(glob.glob(os.path.join(d, "sim-*.h5"))), files  # every method
bad = 0
for f in files:
    g = f.replace("mpi-", "sim-")
    with h5py.File(f) as a, h5py.File(g) as b:
        for name in ("x", "distance", "elements_up", "elements_down"):
            if not np.array_equal(a[name][:], b[name][:]):
                print("differs:", os.path.basename(f), name); bad += 1
        assert a["x"].shape == (301, a.attrs["d"]), a["x"].shape
        assert np.isfinite(a["x"][:]).all()
print("compared", len(files), "runs;", bad, "differences")
sys.exit(1 if bad else 0)
PY
