#!/usr/bin/env bash
# Installs the Debian packages sparcol needs (idempotent: quiet and fast when they are there).
# Usage: scripts/setup.sh [extra-package ...]      (run as root on Debian 12)
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libcli11-dev libgtest-dev libbenchmark-dev
  libopenblas-dev zlib1g-dev
  dataset-fashion-mnist
  python3 python3-h5py python3-matplotlib python3-numpy
  python3-torch pybind11-dev python3-pybind11
  clang libclang-rt-14-dev
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "sparcol setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
  exit 1
fi
echo "sparcol setup: installing ${#missing[@]} Debian package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "sparcol setup: done"
