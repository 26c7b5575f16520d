#!/usr/bin/env python3
"""Times torch.topk on the GPU: the reference for sparcol's exact top-k kernel (docs/gpu.md).

Same data and sizes as sparcol-bench-kernels: float32 vectors of 2^b .. 2^e elements (default 2^28
only), signed values over many binades, k = round(density * n) by magnitude (torch.topk of |v|, as
sparcol selects by |v|). Reports the median of -n timed runs after -w warm-up runs (CUDA events),
for sorted=True (torch's default) and sorted=False, and the top-k of |v| including the abs().

Without torch or without a GPU it prints "skipped: ..." and exits 0.
Usage: python3 bench/torch_topk.py [-b 28] [-e 28] [-n 20] [-w 5] [--density 0.01] [--device 0] [--csv]
"""
import argparse
import sys


def make(torch, n, device):
    # Signed values over 24 binades, as the kernel benchmark's fill: (1 + u) * 2^(e - 12).
    g = torch.Generator(device=device)
    g.manual_seed(n)
    mant = 1.0 + torch.rand(n, generator=g, device=device)
    expo = torch.randint(-12, 12, (n,), generator=g, device=device).float()
    sign = torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0)
    return sign * torch.ldexp(mant, expo)


def median_us(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(1000.0 * start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-b", type=int, default=28, help="log2 of the smallest size")
    p.add_argument("-e", type=int, default=28, help="log2 of the largest size")
    p.add_argument("-n", type=int, default=20, help="timed runs (median reported)")
    p.add_argument("-w", type=int, default=5, help="warm-up runs")
    p.add_argument("--density", type=float, default=0.01)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--csv", action="store_true")
    a = p.parse_args()
    if not (0 < a.density <= 1) or a.b > a.e or a.b < 0 or a.e > 31 or a.n < 1 or a.w < 0:
        print("sparcol: rank 0: error: bad arguments (see --help)", file=sys.stderr)
        return 2
    try:
        import torch
    except ImportError:
        print("# torch_topk: skipped: PyTorch is not installed")
        return 0
    if not torch.cuda.is_available():
        print("# torch_topk: skipped: no CUDA device")
        return 0
    if a.device >= torch.cuda.device_count():
        print(f"sparcol: rank 0: error: device {a.device} does not exist: this machine has "
              f"{torch.cuda.device_count()} CUDA device(s)", file=sys.stderr)
        return 2
    device = torch.device("cuda", a.device)
    torch.cuda.set_device(device)
    print(f"# torch_topk: torch {torch.__version__}, {torch.cuda.get_device_name(device)}, "
          f"density {a.density}, median of {a.n} after {a.w} warm-up")
    if a.csv:
        print("kernel,n,k,time_us")
    else:
        print(f"{'# kernel':<34} {'n':>12} {'k':>10} {'time(us)':>11}")
    for log2 in range(a.b, a.e + 1):
        n = 1 << log2
        k = max(1, min(n, int(a.density * n + 0.5)))
        v = make(torch, n, device)
        mag = v.abs()
        rows = [
            ("torch.topk(|v|, sorted=True)", lambda: torch.topk(mag, k, sorted=True)),
            ("torch.topk(|v|, sorted=False)", lambda: torch.topk(mag, k, sorted=False)),
            ("abs + torch.topk(sorted=False)", lambda: torch.topk(v.abs(), k, sorted=False)),
        ]
        for name, fn in rows:
            us = median_us(torch, fn, a.w, a.n)
            if a.csv:
                print(f"{name},{n},{k},{us:.2f}")
            else:
                print(f"{name:<34} {n:>12} {k:>10} {us:>11.2f}")
        del v, mag
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
