#!/usr/bin/env bash
# sparcol-train as a user runs it: 2 ranks, MLP, GMC with top-k, on the first 1024 Fashion-MNIST training
# images. Checks the exit status, the progress and evaluation lines, the trace's layout (h5py) and a
# learning outcome, and renders the trace with bench/plot_train.py.
# Usage: train_e2e.sh SPARCOL_TRAIN MPIEXEC.  Exit 77 (skipped) without Fashion-MNIST or h5py.
set -uo pipefail
bin=$1
mpiexec=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data=/usr/share/datasets/fashion-mnist
py=/usr/bin/python3
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ ! -e "$data/train-images-idx3-ubyte" ]; then
  echo "skipped: Fashion-MNIST is not installed in $data (Debian package dataset-fashion-mnist)"
  exit 77
fi
if ! "$py" -c "import h5py, numpy, matplotlib" 2>/dev/null; then
  echo "skipped: $py lacks h5py, numpy or matplotlib"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; [ -f "$work/out.txt" ] && cat "$work/out.txt"; exit 1; }

# 1024 / (2 ranks x 32) = 16 steps per epoch, 2 epochs, an evaluation per epoch.
"$mpiexec" -np 2 "$bin" --model mlp --optimizer gmc --compressor topk --density 0.02 --epochs 2 --batch 32 \
  --train-samples 1024 --test-samples 500 --progress-every 8 --trace "$work/trace.h5" >"$work/out.txt" 2>&1 ||
  fail "sparcol-train exited with status $?"
grep -Eq '^step 8/32 epoch 0\.50 loss [0-9.]+ acc [0-9.]+% [0-9]+ samples/s ETA ' "$work/out.txt" || fail "no progress line"
grep -Eq '^eval step 16 epoch 1\.00 train_loss [0-9.]+ train_acc [0-9.]+% test_loss [0-9.]+ test_acc [0-9.]+%' \
  "$work/out.txt" || fail "no evaluation line"
grep -Eq '^done: step 32/32, .*, RCC [0-9]+\.[0-9]{4}%, ' "$work/out.txt" || fail "no summary line with the RCC"
"$py" "$here/train_check_trace.py" "$work/trace.h5" --ranks 2 --steps 32 --evals 2 --min-accuracy 0.6 || fail "trace"
"$py" "$root/bench/plot_train.py" "$work/plot.png" "$work/trace.h5" || fail "plot_train.py"
[ "$(head -c 4 "$work/plot.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "plot_train.py wrote no PNG"
# A decentralized method has no all-reduce: the summary names the bytes a step instead of an RCC of 0.
# On a ring of 2 each rank has one neighbour and sends it the MLP's 235,146 floats a step.
"$mpiexec" -np 2 "$bin" --model mlp --optimizer dpsgd --topology ring --epochs 1 --batch 32 \
  --train-samples 512 --test-samples 200 --progress-every 0 >"$work/dec.txt" 2>&1 ||
  { cat "$work/dec.txt"; fail "sparcol-train --optimizer dpsgd exited with status $?"; }
grep -q '^done: step 8/8, .*, RCC n/a (no all-reduce; rank 0 sent 940584 B a step), ' "$work/dec.txt" ||
  { cat "$work/dec.txt"; fail "the dpsgd summary should say RCC n/a with the bytes a step"; }
echo "ok: $(grep '^done:' "$work/out.txt")"
