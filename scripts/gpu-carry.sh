#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that has CUDA, CMake, a compiler and
# Python but no Debian archive (docs/gpu.md, "One go on a GPU machine"). Run it on a Debian 12 machine
# that has the archive; it writes DIR (default: .gpu-carry in the repository, ignored by git):
#   DIR/debs/*.deb        the Debian packages sparcol builds and runs with, downloaded, not installed
#                         (gpu-check.sh unpacks them into a prefix of its own, never into /)
#   DIR/fashion-mnist/    the Fashion-MNIST test set and the first --train N training samples (IDX, gzip)
#   DIR/MANIFEST          what is there, with sizes and checksums
# Usage: scripts/gpu-carry.sh [DIR] [--train N]      (N default 10000; the whole tree must stay under
#                                                    the 64 MiB a device call carries)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.gpu-carry"
train=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --train) train=${2:?--train needs a number}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "gpu-carry: unknown flag $1" >&2; exit 2 ;;
    *) dir=$1; shift ;;
  esac
done
case "$train" in ''|*[!0-9]*) echo "gpu-carry: --train must be a positive integer, got '$train'" >&2; exit 2 ;; esac

# The packages: the libraries sparcol's binaries and Open MPI's launcher load (ldd of the built
# programs and of Open MPI's components, mapped to packages with dpkg -S), plus the headers and
# CMake packages the build finds. Left out on purpose: the C and C++ runtimes (libc6, libstdc++6,
# libgcc-s1, libatomic1) and the base libraries a GPU image has in a newer, compatible version
# (libssl3, libzstd1, libudev1, GnuTLS, Kerberos): loading Debian 12's older copies there would
# replace the image's own.
packages=(
  # Open MPI 4.1 and what its launcher and transports load
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libhwloc15
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 ibverbs-providers
  librdmacm1 libpsm2-2 libpsm-infinipath1 libnl-3-200 libnl-route-3-200 libnuma1 libmunge2 libltdl7
  libgfortran5 libquadmath0
  # HDF5 (serial) and its compression and transfer libraries
  libhdf5-103-1 libhdf5-dev libaec0 libsz2 libcurl4 libldap-2.5-0 libsasl2-2 libnghttp2-14 libpsl5
  librtmp1 libssh2-1
  # header-only and static build dependencies
  libcli11-dev libgtest-dev googletest libbenchmark1debian libbenchmark-dev zlib1g-dev
  # OpenBLAS (the pthread variant, as scripts/setup.sh installs)
  libopenblas0-pthread libopenblas-pthread-dev libopenblas-dev
)

mkdir -p "$dir/debs" "$dir/fashion-mnist"
rm -f "$dir"/debs/*.deb
(cd "$dir/debs" && apt-get download -q "${packages[@]}" >/dev/null 2>&1) || {
  echo "gpu-carry: apt-get download failed (run 'apt-get update' first; the Debian archive must be reachable)" >&2
  exit 1
}

# Fashion-MNIST: the whole test set, and the first N training samples rewritten with N in the header.
/usr/bin/python3 - "$dir/fashion-mnist" "$train" <<'EOF'
import gzip, shutil, struct, sys
src = "/usr/share/datasets/fashion-mnist"
out, n = sys.argv[1], int(sys.argv[2])
for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    shutil.copyfile(f"{src}/{name}", f"{out}/{name}")
for name, dims in (("train-images-idx3-ubyte.gz", 3), ("train-labels-idx1-ubyte.gz", 1)):
    with gzip.open(f"{src}/{name}", "rb") as f:
        raw = f.read()
    header = 4 * (1 + dims)
    magic, count = struct.unpack(">II", raw[:8])
    if n > count:
        sys.exit(f"gpu-carry: --train {n} is more than the {count} training samples")
    per = 1
    for d in range(1, dims):
        per *= struct.unpack(">I", raw[4 + 4 * d:8 + 4 * d])[0]
    body = raw[header:header + n * per]
    with gzip.open(f"{out}/{name}", "wb", compresslevel=9) as f:
        f.write(struct.pack(">II", magic, n) + raw[8:header] + body)
EOF

{
  echo "# sparcol gpu-carry: $(date -u +%Y-%m-%dT%H:%M:%SZ), training samples: $train"
  (cd "$dir" && find debs fashion-mnist -type f | sort | xargs sha256sum)
} >"$dir/MANIFEST"
echo "gpu-carry: $(ls "$dir"/debs/*.deb | wc -l) packages and Fashion-MNIST ($train training samples) in $dir: $(du -sh "$dir" | cut -f1)"
