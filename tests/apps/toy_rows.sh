#!/usr/bin/env bash
# One row per (method, k) for the methods that take a top-k, one row (k = d) for those without one:
# the decentralized and local-SGD methods run once whatever --k lists (they ignore it).
set -euo pipefail
toy=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$toy" --simulate 4 --method dpsgd,relaysgd,local-sgd,gmc --k 1,2 --csv "$dir/s.csv" --quiet
/usr/bin/python3 - "$dir/s.csv" <<'PY'
import csv, sys
rows = [(r["method"], r["k"]) for r in csv.DictReader(open(sys.argv[1]))]
want = [("dpsgd", "2"), ("relaysgd", "2"), ("local-sgd", "2"), ("gmc", "1"), ("gmc", "2")]
assert rows == want, f"rows {rows}, want {want}"
print("rows:", rows)
PY
