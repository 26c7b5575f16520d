// Per-element arithmetic shared by the CUDA kernels (kernels/*.cu) and their CPU twins
// (src/device/ops_cpu.cpp): the same inline functions run on both sides, so the CPU tests exercise
// the code the GPU runs, and results agree bit for bit wherever the order of operations is fixed.
//
// Bitwise agreement needs every product rounded before it is added: the helpers below use the
// explicitly rounded intrinsics on the device (__fmul_rn etc. are never fused into an FMA), and plain
// operators on the host, where sparcol compiles in ISO C++ mode (no -ffp-contract=fast). The CPU
// optimizers in src/optim are written with the same operators in the same order, so a fused kernel
// reproduces them exactly.
#pragma once

#include <cstdint>
#include <cstring>

#include "sparcol/core/payload.hpp"
#include "sparcol/core/types.hpp"

namespace sparcol::device {

// ---------------------------------------------------------------------------------------------
// Rounded arithmetic (no contraction into fused multiply-add)
// ---------------------------------------------------------------------------------------------
SPARCOL_HD inline float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
SPARCOL_HD inline float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
SPARCOL_HD inline float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
SPARCOL_HD inline float fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
SPARCOL_HD inline double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
SPARCOL_HD inline double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// ---------------------------------------------------------------------------------------------
// Magnitude keys (the order top-k uses; the same as compress::magnitude_key)
// ---------------------------------------------------------------------------------------------
// key(x) = the bit pattern of |x| as an unsigned integer, with every NaN mapped to kNanKey, one above
// +Inf: larger magnitude <=> larger key, -0 and +0 share key 0, NaN ranks above +Inf. Keys are < 2^31.
inline constexpr std::uint32_t kNanKey = 0x7f800001u;
// A key no element has (larger than kNanKey): "no tie key" in selection predicates.
inline constexpr std::uint32_t kNoKey = 0xffffffffu;

SPARCOL_HD inline std::uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
SPARCOL_HD inline float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}
SPARCOL_HD inline std::uint32_t magnitude_key(float x) {
  const std::uint32_t bits = float_bits(x) & 0x7fffffffu;
  return bits < kNanKey ? bits : kNanKey;
}
// The non-negative float with this key (kNanKey gives a NaN).
SPARCOL_HD inline float key_magnitude(std::uint32_t key) {
  return bits_float(key);
}

// ---------------------------------------------------------------------------------------------
// Optimizer updates (ALGORITHMS.md 2-8), one element at a time, in the operation order of the
// CPU optimizers in src/optim (see the comment of each).
// ---------------------------------------------------------------------------------------------

// The local gradient as the optimizers use it: coupled weight decay at the gradient point z, then
// DGC's local clipping factor. Each term is applied only when active, as the CPU code does (adding
// 0 * z would turn an infinite z into NaN, and -0 into +0).
//   g' = g + wd * z     (wd != 0; Optimizer::step)
//   g' = g' * scale     (scale != 1; Dgc::do_step clipping)
SPARCOL_HD inline float effective_gradient(float g, float z, float wd, float scale) {
  if (wd != 0.0f) g = fadd(g, fmul(wd, z));
  if (scale != 1.0f) g = fmul(g, scale);
  return g;
}

// Heavy-ball momentum without dampening: beta * m + g.
SPARCOL_HD inline float momentum(float beta, float m, float g) {
  return fadd(fmul(beta, m), g);
}

// GMC / GMC+ (gmc.cpp): v = u + (g + beta * m).
SPARCOL_HD inline float gmc_message(float u, float g, float beta, float m) {
  return fadd(u, fadd(g, fmul(beta, m)));
}

// DGC momentum correction (dgc.cpp). Plain: u = beta*u + g; v = v + u.
// Nesterov: u = beta*(u + g); v = v + (u + g).
struct DgcState {
  float u, v;
};
SPARCOL_HD inline DgcState dgc_accumulate(float u, float v, float g, float beta, bool nesterov) {
  if (nesterov) {
    const float un = fmul(beta, fadd(u, g));
    return {un, fadd(v, fadd(un, g))};
  }
  const float un = momentum(beta, u, g);
  return {un, fadd(v, un)};
}

// Error feedback with the learning rate inside (ef_sgd.cpp, def_a.cpp): p = e + eta * q where q is
// the momentum m (EF-SGDM, DEF-A) or the gradient (EF-SGD).
SPARCOL_HD inline float ef_message(float e, float eta, float q) {
  return fadd(e, fmul(eta, q));
}

// Model updates: x - eta * a (GMC, DGC, and with eta = 1 the EF family's x - a; eta = -1 adds, as
// CSER's reset x + a: x - (-1 * a) is x + a exactly); DGC's weight decay outside compression:
// x - eta * (a + wd * x) (dgc.cpp, wd_outside).
SPARCOL_HD inline float apply_update(float x, float a, float eta) {
  return fsub(x, fmul(eta, a));
}
SPARCOL_HD inline float apply_update_wd(float x, float a, float eta, float wd) {
  return fsub(x, fmul(eta, fadd(a, fmul(wd, x))));
}

// Gradient points: GMC+ z = x - (alpha*eta) * u, DEF-A z = x - alpha * e (detached, c > 0), CSER
// z = x + r.
SPARCOL_HD inline float detached_point(float x, float c, float d) {
  return fsub(x, fmul(c, d));
}
SPARCOL_HD inline float offset_point(float x, float r) {
  return fadd(x, r);
}

// ---------------------------------------------------------------------------------------------
// Deterministic reductions (sign scale ||v||_1, squared norm for DGC clipping)
// ---------------------------------------------------------------------------------------------
// The order is fixed by these constants, not by the launch: the vector is cut into tiles of
// kReduceTile elements; in tile t, thread `th` (of kReduceThreads) with warp w = th / 32 and lane
// l = th % 32 adds, in double and in this order, the terms of the elements
//   t * kReduceTile + w * kReduceWarpSpan + 32 * j + l,   j = 0 .. 31
// (coalesced on the GPU: a warp reads 32 consecutive elements per j). The kReduceThreads thread
// sums are combined by a pairwise tree (s[i] += s[i + h] for h = kReduceThreads/2, ..., 1), giving
// the tile's partial. The partials are combined the same way by one block of kReduceThreads:
// thread th adds partials th, th + kReduceThreads, ... in order, then the same tree. The CPU twin
// follows the same order, so GPU and CPU sums are bitwise equal.
inline constexpr int kReduceThreads = 256;
inline constexpr int kReduceWarpSpan = 32 * 32;  // elements one warp covers in a tile
inline constexpr std::uint64_t kReduceTile = static_cast<std::uint64_t>(kReduceThreads) * 32;  // 8192

SPARCOL_HD inline std::uint64_t reduce_element(std::uint64_t tile, int thread, int j) {
  return tile * kReduceTile + static_cast<std::uint64_t>(thread / 32) * kReduceWarpSpan +
         static_cast<std::uint64_t>(32 * j + thread % 32);
}
// The terms: |v| for the sign scale, v*v for the squared norm (both exact in double up to rounding
// of the square).
SPARCOL_HD inline double abs_term(float v) {
  const double d = static_cast<double>(v);
  return d < 0.0 ? -d : d;
}
SPARCOL_HD inline double square_term(float v) {
  const double d = static_cast<double>(v);
  return dmul(d, d);
}

}  // namespace sparcol::device
