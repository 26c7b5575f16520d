#!/usr/bin/python3
"""Writes a small Fashion-MNIST-shaped data set (gzip IDX files) for sparcol-train's program tests.

  train_make_idx.py DIR [--train N] [--test M] [--corrupt KIND]

Images are 28x28: class c is a bright bar on rows 2c+4..2c+5 over Gaussian noise, so a model learns
it in a few steps. --corrupt damages the set the way the trainer's bad-input tests need:
  magic      train images with the labels' magic number
  truncated  train images cut short (the gzip stream is complete, the data is not)
  count      train labels one fewer than the images
  missing    no test labels file
  garbage    test images are not gzip and not IDX (random bytes)
  empty      train images are an empty file
  dims       train images are 32x32 (a consistent IDX file of the wrong dimensions)
"""
import argparse
import gzip
import os
import random
import struct
import sys


def images(n, rng):
    out = bytearray()
    labels = bytearray()
    for _ in range(n):
        c = rng.randrange(10)
        labels.append(c)
        img = [min(255, max(0, int(rng.gauss(40, 30)))) for _ in range(28 * 28)]
        for r in (2 * c + 4, 2 * c + 5):
            for col in range(4, 24):
                img[r * 28 + col] = 230
        out += bytes(img)
    return out, labels


def write(path, data):
    with gzip.open(path, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--train", type=int, default=512)
    ap.add_argument("--test", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corrupt", choices=["magic", "truncated", "count", "missing", "garbage", "empty", "dims"])
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    for split, n in (("train", a.train), ("t10k", a.test)):
        pix, lab = images(n, rng)
        img_magic, lab_count, side = 0x803, n, 28
        if split == "train" and a.corrupt == "magic":
            img_magic = 0x801
        if split == "train" and a.corrupt == "truncated":
            pix = pix[: len(pix) // 2]
        if split == "train" and a.corrupt == "count":
            lab_count = n - 1
            lab = lab[:-1]
        if split == "train" and a.corrupt == "dims":
            side = 32
            pix = bytes(n * side * side)
        write(os.path.join(a.dir, f"{split}-images-idx3-ubyte.gz"),
              struct.pack(">IIII", img_magic, n, side, side) + bytes(pix))
        if not (split == "t10k" and a.corrupt == "missing"):
            write(os.path.join(a.dir, f"{split}-labels-idx1-ubyte.gz"), struct.pack(">II", 0x801, lab_count) + bytes(lab))
    if a.corrupt == "empty":
        open(os.path.join(a.dir, "train-images-idx3-ubyte.gz"), "wb").close()
    if a.corrupt == "garbage":
        with open(os.path.join(a.dir, "t10k-images-idx3-ubyte.gz"), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(1000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
