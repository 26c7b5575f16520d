#!/usr/bin/env bash
# The GPU check in one go (docs/gpu.md, "One go on a GPU machine"): builds sparcol with CUDA for this
# machine's GPU, runs every gpu-labelled test with SPARCOL_REQUIRE_GPU=1, the kernel and collective
# benchmarks and a short training run on the CPU and the GPU with the same flags, and writes one
# summary (OUT/summary.md, OUT/summary.tsv) in which every part is PASS, FAIL or NOT RUN with the
# reason. Nothing is skipped silently. Without a GPU every GPU part is NOT RUN, and the parts that
# need none (the build, the tests' CPU-side checks, the CPU training run, the refusals of a missing
# GPU) still run and are checked.
#
# Usage: scripts/gpu-check.sh [--out DIR] [--build DIR] [--carry DIR] [--arch SM] [--jobs N]
#                             [--huge] [--require-gpu]
#   --out DIR      summary, logs and benchmark tables (default: gpu-check-out; $OUT when set)
#   --build DIR    build directory (default: /tmp/sparcol-gpu-build)
#   --carry DIR    what scripts/gpu-carry.sh prepared (Debian packages, Fashion-MNIST subset); used
#                  when the machine lacks the packages (default: .gpu-carry when present)
#   --arch SM      CUDA architecture, e.g. 90 (default: the GPU's compute capability; 90 without one)
#   --jobs N       build parallelism (default: nproc)
#   --use-carry    use --carry's packages even where the machine has its own (to prove the carry)
#   --huge         also run the > 2^31-element kernel cases (tens of GB, minutes)
#   --require-gpu  exit 1 when a GPU part could not run (default: exit 1 only on a FAIL)
# Exit status: 0 when nothing failed, 1 when a part failed (or, with --require-gpu, did not run),
# 2 for a bad flag.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/gpu-check-out}
build=/tmp/sparcol-gpu-build
carry=""
arch=""
jobs=$(nproc)
huge=0
use_carry=0
require_gpu=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --build) build=${2:?--build needs a directory}; shift 2 ;;
    --carry) carry=${2:?--carry needs a directory}; shift 2 ;;
    --arch) arch=${2:?--arch needs a number}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --huge) huge=1; shift ;;
    --use-carry) use_carry=1; shift ;;
    --require-gpu) require_gpu=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown flag '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in *[!0-9]*) echo "gpu-check: --arch must be a number such as 90, got '$arch'" >&2; exit 2 ;; esac
case "$jobs" in ''|*[!0-9]*|0) echo "gpu-check: --jobs must be a positive integer, got '$jobs'" >&2; exit 2 ;; esac
if [ -z "$carry" ] && [ -d "$root/.gpu-carry/debs" ]; then carry=$root/.gpu-carry; fi
if [ -n "$carry" ] && [ ! -d "$carry/debs" ]; then
  echo "gpu-check: --carry $carry has no debs/ (make it with scripts/gpu-carry.sh)" >&2; exit 2
fi

mkdir -p "$out"
: >"$out/summary.tsv"
t_start=$(date +%s)
failed=0
not_run_gpu=0
log() { echo "gpu-check [$(( $(date +%s) - t_start ))s] $*"; }
# record PART STATUS DETAIL: one summary row (STATUS: PASS, FAIL or NOT RUN)
record() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$out/summary.tsv"
  log "$1: $2 - $3"
  case "$2" in FAIL) failed=1 ;; "NOT RUN") [ "$have_gpu" = 1 ] || not_run_gpu=1 ;; esac
}
since() { echo $(( $(date +%s) - $1 )); }

# --- 1. The machine -------------------------------------------------------------------------------
have_gpu=0
gpu_name="none"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && [ -n "$(nvidia-smi -L 2>/dev/null)" ]; then
  have_gpu=1
  gpu_name=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader | head -1)
  if [ -z "$arch" ]; then
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
  fi
fi
no_gpu="no GPU on this machine (nvidia-smi lists none)"
[ -n "$arch" ] || arch=90
nvcc=/usr/local/cuda/bin/nvcc
command -v nvcc >/dev/null 2>&1 && nvcc=$(command -v nvcc)
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm), $(nproc) cores"
  echo "gpu: $gpu_name"
  echo "cuda architecture built: $arch"
  echo "nvcc: $("$nvcc" --version 2>/dev/null | tail -1)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$out/machine.txt"
cat "$out/machine.txt"
if [ -x "$nvcc" ]; then
  record machine PASS "GPU: $gpu_name; building for sm_$arch"
else
  record machine FAIL "no nvcc (looked on PATH and in /usr/local/cuda/bin)"
fi

# --- 2. Dependencies: the machine's own, else the carried Debian packages --------------------------
prefix=""
cmake_deps=()
data=/usr/share/datasets/fashion-mnist
need_carry=0
for f in /usr/include/hdf5/serial/hdf5.h /usr/include/CLI/CLI.hpp /usr/include/gtest/gtest.h \
         /usr/include/benchmark/benchmark.h; do
  [ -e "$f" ] || need_carry=1
done
command -v mpicxx >/dev/null 2>&1 || need_carry=1
if [ "$use_carry" = 1 ]; then
  [ -n "$carry" ] || { echo "gpu-check: --use-carry needs --carry DIR (or .gpu-carry)" >&2; exit 2; }
  need_carry=1
fi
if [ "$need_carry" = 1 ]; then
  if [ -z "$carry" ]; then
    record dependencies FAIL "the machine lacks Debian's MPI, HDF5, CLI11, GoogleTest or Google Benchmark and no --carry was given (scripts/gpu-carry.sh)"
  else
    t0=$(date +%s)
    prefix=/tmp/sparcol-prefix
    rm -rf "$prefix"; mkdir -p "$prefix"
    for f in "$carry"/debs/*.deb; do dpkg-deb -x "$f" "$prefix" || { record dependencies FAIL "could not unpack $f"; break; }; done
    lib=$prefix/usr/lib/x86_64-linux-gnu
    export PATH=$prefix/usr/bin:$PATH
    export LD_LIBRARY_PATH=$lib:$lib/openmpi/lib:$lib/openblas-pthread:$lib/pmix2/lib:$lib/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export OPAL_PREFIX=$prefix/usr PMIX_INSTALL_PREFIX=$lib/pmix2
    cmake_deps=(-DCMAKE_PREFIX_PATH="$prefix/usr"
                -DMPI_C_COMPILER="$prefix/usr/bin/mpicc.openmpi" -DMPI_CXX_COMPILER="$prefix/usr/bin/mpicxx.openmpi"
                -DMPIEXEC_EXECUTABLE="$prefix/usr/bin/mpiexec.openmpi"
                -DHDF5_C_COMPILER_EXECUTABLE="$prefix/no-h5cc"
                -DSPARCOL_OPENBLAS_LIBRARY="$lib/openblas-pthread/libopenblas.so"
                -DSPARCOL_OPENBLAS_INCLUDE_DIR="$prefix/usr/include/x86_64-linux-gnu/openblas-pthread")
    record dependencies PASS "$(ls "$carry"/debs/*.deb | wc -l) carried Debian packages unpacked into $prefix in $(since "$t0") s"
  fi
else
  record dependencies PASS "the machine's own packages"
fi
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ -n "$carry" ] && [ -d "$carry/fashion-mnist" ]; then
  data=$carry/fashion-mnist
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# NCCL: beside the toolkit, else from Python's NCCL package (which names the library libnccl.so.2).
nccl_args=()
if [ ! -e /usr/local/cuda/include/nccl.h ]; then
  nccl_dir=$(env -u LD_LIBRARY_PATH python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  if [ -n "$nccl_dir" ] && [ -e "$nccl_dir/include/nccl.h" ]; then
    nccl_lib=$(ls "$nccl_dir"/lib/libnccl.so* 2>/dev/null | head -1)
    nccl_args=(-DNCCL_INCLUDE_DIR="$nccl_dir/include" -DNCCL_LIBRARY="$nccl_lib")
    export LD_LIBRARY_PATH=$nccl_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
fi

# --- 3. Build with CUDA for this GPU ---------------------------------------------------------------
# The executables of every gpu-labelled test (ctest -L gpu), plus the trainer.
targets=(sparcol_gpu_tests sparcol_gpu_comm_tests sparcol_optim_tests sparcol_devpath_tests sparcol_fmad_ptx
         sparcol-bench-kernels sparcol-bench sparcol-train)
built=0
if [ "$failed" = 0 ]; then
  t0=$(date +%s)
  if cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPARCOL_ENABLE_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES="$arch" -DSPARCOL_BUILD_PYTHON=OFF "${cmake_deps[@]}" "${nccl_args[@]}" \
       >"$out/configure.log" 2>&1 &&
     cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$out/build.log" 2>&1; then
    built=1
    features=$(grep -E "^-- +\[.\] (CUDA|NCCL)" "$out/configure.log" | sed 's/^-- *//' | tr '\n' ' ')
    if grep -qE "^-- +\[x\] CUDA" "$out/configure.log"; then
      record build PASS "sm_$arch, ${#targets[@]} targets in $(since "$t0") s with $(cmake --version | head -1); $features"
    else
      built=0
      record build FAIL "CMake did not enable CUDA: $features(configure.log)"
    fi
  else
    record build FAIL "see configure.log and build.log ($(since "$t0") s)"
    tail -30 "$out/build.log" 2>/dev/null || tail -30 "$out/configure.log"
  fi
else
  record build "NOT RUN" "an earlier part failed"
fi
bin=$build/bin
# The MPI launcher the build found (the carried one with --carry), as the tests use it.
mpiexec_bin=$(sed -n 's/^MPIEXEC_EXECUTABLE:FILEPATH=//p' "$build/CMakeCache.txt" 2>/dev/null)
[ -n "$mpiexec_bin" ] || mpiexec_bin=mpiexec

# --- 4. Every gpu-labelled test --------------------------------------------------------------------
if [ "$built" = 1 ]; then
  t0=$(date +%s)
  exclude=()
  if [ "$huge" = 0 ]; then exclude=(-E 'Huge'); fi
  if [ "$have_gpu" = 1 ]; then
    SPARCOL_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu "${exclude[@]}" --output-on-failure \
      --timeout 600 >"$out/gpu-tests.log" 2>&1
    rc=$?
  else
    ctest --test-dir "$build" -L gpu "${exclude[@]}" --output-on-failure --timeout 600 >"$out/gpu-tests.log" 2>&1
    rc=$?
  fi
  counts=$(grep -E "tests passed|tests failed" "$out/gpu-tests.log" | tail -1)
  skipped=$(grep -c "\*\*\*Skipped\|Not Run" "$out/gpu-tests.log" || true)
  failed_tests=$(grep -cE "\*\*\*Failed|\(Failed\)|\*\*\*Timeout|\*\*\*Exception" "$out/gpu-tests.log" || true)
  if [ "$have_gpu" = 1 ]; then
    if [ "$rc" = 0 ]; then record gpu-tests PASS "SPARCOL_REQUIRE_GPU=1: $counts; $skipped capacity skip(s) ($(since "$t0") s)"
    else record gpu-tests FAIL "SPARCOL_REQUIRE_GPU=1: $counts ($(since "$t0") s; gpu-tests.log)"; fi
  else
    if [ "$failed_tests" = 0 ] && [ "$rc" = 0 ]; then
      record gpu-tests "NOT RUN" "$no_gpu: $skipped test(s) reported skipped, never passed; the rest are CPU-side checks of the GPU code (refusals, twins), which passed: $counts ($(since "$t0") s)"
    else
      record gpu-tests FAIL "without a GPU a gpu test must skip or pass its CPU-side checks: $counts (gpu-tests.log)"
    fi
  fi
  if [ "$huge" = 0 ]; then
    huge_list=$(ctest --test-dir "$build" -N -L gpu -R 'Huge' 2>/dev/null | grep -c "Test *#" || true)
    record gpu-tests-huge "NOT RUN" "$huge_list > 2^31-element case(s) left out to keep the run short (--huge runs them: tens of GB, minutes)"
  fi
else
  record gpu-tests "NOT RUN" "the build failed"
fi

# --- 5. Kernel benchmarks --------------------------------------------------------------------------
if [ "$built" = 1 ]; then
  t0=$(date +%s)
  "$bin/sparcol-bench-kernels" -b 20 -e 28 -n 10 -w 2 >"$out/bench_kernels.txt" 2>&1
  rc=$?
  if [ "$have_gpu" = 1 ]; then
    if [ "$rc" = 0 ] && grep -qF "# copy bandwidth" "$out/bench_kernels.txt"; then
      record bench-kernels PASS "2^20..2^28 elements, table in bench_kernels.txt ($(since "$t0") s)"
    else
      record bench-kernels FAIL "exit $rc (bench_kernels.txt)"
    fi
    t0=$(date +%s)
    if env -u LD_LIBRARY_PATH python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
      if env -u LD_LIBRARY_PATH python3 "$root/bench/torch_topk.py" -b 20 -e 28 >"$out/torch_topk.txt" 2>&1; then
        record torch-topk PASS "torch.topk 2^20..2^28 at 1 % in torch_topk.txt ($(since "$t0") s)"
      else
        record torch-topk FAIL "bench/torch_topk.py failed (torch_topk.txt)"
      fi
    else
      record torch-topk "NOT RUN" "python3 has no PyTorch with CUDA here"
    fi
  else
    if [ "$rc" = 0 ] && grep -qF "skipped: no CUDA device" "$out/bench_kernels.txt"; then
      record bench-kernels "NOT RUN" "$no_gpu (the program said so and exited 0)"
    else
      record bench-kernels FAIL "without a GPU it must say 'skipped: no CUDA device' and exit 0; exit $rc"
    fi
    record torch-topk "NOT RUN" "$no_gpu"
  fi
else
  record bench-kernels "NOT RUN" "the build failed"
  record torch-topk "NOT RUN" "the build failed"
fi

# --- 6. Collectives on device buffers: NCCL and MPI staging, every result checked ------------------
# sparcol-bench checks every result (-c 1) and ends with "# total wrong: N (OK|FAILED)".
if [ "$built" = 1 ]; then
  ngpu=1
  [ "$have_gpu" = 1 ] && ngpu=$(nvidia-smi -L | wc -l)
  for backend in nccl mpi; do
    t0=$(date +%s)
    np=$ngpu
    [ "$backend" = mpi ] && np=2
    log_file=$out/bench_${backend}.txt
    "$mpiexec_bin" -np "$np" "$bin/sparcol-bench" --backend "$backend" --device cuda -b 4K -e 256M -n 10 -w 2 -c 1 \
      --op all >"$log_file" 2>&1
    rc=$?
    if [ "$have_gpu" = 1 ]; then
      if [ "$rc" = 0 ] && grep -q "^# total wrong: 0 " "$log_file"; then
        record "bench-$backend" PASS "$np rank(s), 4K..256M, every operation, 0 wrong ($(since "$t0") s)"
      else
        record "bench-$backend" FAIL "exit $rc, $(grep "^# total wrong" "$log_file" | head -1) ($log_file)"
      fi
    else
      if [ "$rc" = 9 ] && grep -q "no CUDA device" "$log_file"; then
        record "bench-$backend" "NOT RUN" "$no_gpu (sparcol-bench refused --device cuda with exit 9, as documented)"
      else
        record "bench-$backend" FAIL "without a GPU --device cuda must exit 9 naming the missing device; exit $rc"
      fi
    fi
  done
else
  record bench-nccl "NOT RUN" "the build failed"
  record bench-mpi "NOT RUN" "the build failed"
fi

# --- 7. A short training run on the CPU and on the GPU, the same flags -----------------------------
train_flags=(--model mlp --optimizer gmc --density 0.01 --epochs 1 --train-samples 10000 --test-samples 10000
             --batch 32 --lr 0.1 --seed 1 --data "$data" --progress-every 0)
acc_of() { grep -oE "^done: .*test accuracy [0-9.]+%" "$1" | grep -oE "[0-9.]+%$"; }
if [ "$built" = 1 ]; then
  t0=$(date +%s)
  "$mpiexec_bin" -np 2 "$bin/sparcol-train" "${train_flags[@]}" --device cpu >"$out/train_cpu.txt" 2>&1
  rc=$?
  cpu_acc=$(acc_of "$out/train_cpu.txt")
  if [ "$rc" = 0 ]; then record train-cpu PASS "2 ranks, MLP, GMC 1 %, 1 epoch of 10000 samples: test accuracy ${cpu_acc:-?} ($(since "$t0") s)"
  else record train-cpu FAIL "exit $rc (train_cpu.txt)"; fi
  t0=$(date +%s)
  "$mpiexec_bin" -np 2 "$bin/sparcol-train" "${train_flags[@]}" --device cuda >"$out/train_gpu.txt" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    gpu_acc=$(acc_of "$out/train_gpu.txt")
    diff=$(awk -v a="${gpu_acc%\%}" -v b="${cpu_acc%\%}" 'BEGIN { d = a - b; printf "%+.2f", d }')
    record train-gpu PASS "the same flags on the GPU: test accuracy ${gpu_acc:-?} against ${cpu_acc:-?} on the CPU ($diff points; issue 18 asks within 0.3 on full runs) ($(since "$t0") s)"
  elif [ "$rc" = 9 ]; then
    why=$(grep -o "error: .*" "$out/train_gpu.txt" | head -1)
    record train-gpu "NOT RUN" "sparcol-train refused --device cuda with exit 9: ${why#error: }"
  else
    record train-gpu FAIL "exit $rc (train_gpu.txt)"
  fi
else
  record train-cpu "NOT RUN" "the build failed"
  record train-gpu "NOT RUN" "the build failed"
fi

# --- Summary ----------------------------------------------------------------------------------------
total=$(since "$t_start")
{
  echo "# sparcol GPU check: $(date -u +%Y-%m-%dT%H:%M:%SZ), $total s"
  echo
  sed 's/^/    /' "$out/machine.txt"
  echo
  echo "| part | status | detail |"
  echo "|---|---|---|"
  awk -F '\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$out/summary.tsv"
} >"$out/summary.md"
cat "$out/summary.md"
if [ "$failed" = 1 ]; then exit 1; fi
if [ "$require_gpu" = 1 ] && [ "$not_run_gpu" = 1 ]; then
  echo "gpu-check: --require-gpu: GPU parts did not run ($no_gpu)" >&2
  exit 1
fi
exit 0
