// Internal to src/device and kernels/: one functor per elementwise operation, shared by the CUDA
// kernel (kernels/launch.cuh, elementwise_kernel) and the CPU twin (src/device/ops_cpu.cpp).
//
// Each functor splits the work on element i into load(i), which reads every input of the element,
// and store(i, in), which computes and writes. The GPU kernel loads several elements before it
// stores any (memory-level parallelism without relying on the compiler to prove that the output
// does not alias the next inputs); the twin calls store(i, load(i)) in a loop. Both run this code,
// so a test of the twin tests the arithmetic the GPU does.
//
// Contract of every functor: element i's store writes only positions that no other element's load
// or store touches (element i itself, or its own slot of a packed block), so elements may run in any
// order and in parallel.
#pragma once

#include <cstdint>

#include "sparcol/device/elementwise.hpp"
#include "sparcol/device/ops.hpp"

namespace sparcol::device::detail {

// g' at element i (effective_gradient): z is read only when weight decay is on.
struct GradIn {
  float g, z;
};
SPARCOL_HD inline GradIn load_gradient(const GradientInput& g, std::uint64_t i) {
  return {g.g[i], g.wd != 0.0f ? g.z[i] : 0.0f};
}
SPARCOL_HD inline float gradient_value(const GradientInput& g, const GradIn& in) {
  return effective_gradient(in.g, in.z, g.wd, g.scale);
}

// The message value to keep at element i after an optional RBGS block extraction: inside the block
// the value goes to its packed slot and the message keeps exactly 0 (Exchange: v <- v - C(v)).
SPARCOL_HD inline float extract(float value, const Block& b, float* send, std::uint64_t i) {
  if (b.length != 0 && b.contains(i)) {
    send[b.position(i)] = value;
    return 0.0f;
  }
  return value;
}

struct Empty {};

// ---------------------------------------------------------------------------------------------
// Copies and RBGS blocks
// ---------------------------------------------------------------------------------------------
struct CopyOp {
  float* dst;
  const float* src;
  using In = float;
  SPARCOL_HD In load(std::uint64_t i) const { return src[i]; }
  SPARCOL_HD void store(std::uint64_t i, In x) const { dst[i] = x; }
};

// Over packed positions p < b.length.
struct RbgsPackOp {
  const float* v;
  Block b;
  float* packed;
  using In = float;
  SPARCOL_HD In load(std::uint64_t p) const { return v[b.element(p)]; }
  SPARCOL_HD void store(std::uint64_t p, In x) const { packed[p] = x; }
};

// Over packed positions p < b.length: pack, then zero the source element.
struct RbgsExtractOp {
  float* v;
  Block b;
  float* packed;
  using In = float;
  SPARCOL_HD In load(std::uint64_t p) const { return v[b.element(p)]; }
  SPARCOL_HD void store(std::uint64_t p, In x) const {
    packed[p] = x;
    v[b.element(p)] = 0.0f;
  }
};

// Over packed positions p < b.length (elements outside the block untouched).
struct RbgsUnpackOp {
  const float* packed;
  Block b;
  float divisor;
  float* out;
  using In = float;
  SPARCOL_HD In load(std::uint64_t p) const { return packed[p]; }
  SPARCOL_HD void store(std::uint64_t p, In x) const { out[b.element(p)] = fdiv(x, divisor); }
};

// Over all elements i < n: the block's mean values, 0 elsewhere.
struct RbgsUnpackFillOp {
  const float* packed;
  Block b;
  float divisor;
  float* out;
  struct In {
    bool inside;
    float x;
  };
  SPARCOL_HD In load(std::uint64_t i) const {
    const bool inside = b.length != 0 && b.contains(i);
    return {inside, inside ? packed[b.position(i)] : 0.0f};
  }
  SPARCOL_HD void store(std::uint64_t i, In in) const { out[i] = in.inside ? fdiv(in.x, divisor) : 0.0f; }
};

// ---------------------------------------------------------------------------------------------
// Sign decoding (over elements j < n; bits in SignLayout, core/payload.hpp)
// ---------------------------------------------------------------------------------------------

struct SignMeanOp {
  const std::uint32_t* words;
  const float* scales;
  int ranks;
  std::uint64_t words_per_rank;
  float* out;
  using In = Empty;
  SPARCOL_HD In load(std::uint64_t) const { return {}; }
  SPARCOL_HD void store(std::uint64_t j, In) const {
    float acc = 0.0f;
    for (int r = 0; r < ranks; ++r) {
      const float s = scales[r];
      acc = fadd(acc, SignLayout::is_set(words + static_cast<std::uint64_t>(r) * words_per_rank, j) ? s : -s);
    }
    out[j] = fdiv(acc, static_cast<float>(ranks));
  }
};

struct SignMajorityOp {
  const std::uint32_t* words;
  const float* scales;
  int ranks;
  std::uint64_t words_per_rank;
  float* out;
  using In = Empty;
  SPARCOL_HD In load(std::uint64_t) const { return {}; }
  SPARCOL_HD void store(std::uint64_t j, In) const {
    float mean_scale = 0.0f;
    int votes = 0;
    for (int r = 0; r < ranks; ++r) {
      mean_scale = fadd(mean_scale, scales[r]);
      votes += SignLayout::is_set(words + static_cast<std::uint64_t>(r) * words_per_rank, j) ? 1 : -1;
    }
    mean_scale = fdiv(mean_scale, static_cast<float>(ranks));
    out[j] = votes >= 0 ? mean_scale : -mean_scale;
  }
};

// ---------------------------------------------------------------------------------------------
// Sparse messages (over pair positions j < count)
// ---------------------------------------------------------------------------------------------
struct ScatterZeroOp {
  float* v;
  std::uint64_t n;
  const Index* idx;
  using In = Index;
  SPARCOL_HD In load(std::uint64_t j) const { return idx[j]; }
  // Indices are distinct in a compressor's message, so no two elements write the same place; a
  // repeated index would only write 0 twice.
  SPARCOL_HD void store(std::uint64_t, In i) const {
    if (i < n) v[i] = 0.0f;
  }
};

// The same with the count in device memory (a sampled top-k's result): pairs j >= *count are skipped.
struct ScatterZeroCountedOp {
  float* v;
  std::uint64_t n;
  const Index* idx;
  const std::uint64_t* count;
  struct In {
    bool live;
    Index i;
  };
  SPARCOL_HD In load(std::uint64_t j) const {
    const bool live = j < *count;
    return {live, live ? idx[j] : Index{0}};
  }
  SPARCOL_HD void store(std::uint64_t, In in) const {
    if (in.live && in.i < n) v[in.i] = 0.0f;
  }
};

// top-k with k = n: every index, in order (over i < n).
struct IotaCopyOp {
  const float* v;
  Index* idx;
  float* val;
  using In = float;
  SPARCOL_HD In load(std::uint64_t i) const { return v[i]; }
  SPARCOL_HD void store(std::uint64_t i, In x) const {
    idx[i] = static_cast<Index>(i);
    val[i] = x;
  }
};

// The DGC sample's keys (over sample positions j < m).
struct SampleKeysOp {
  const float* v;
  std::uint64_t offset, stride;
  std::uint32_t* keys;
  using In = float;
  SPARCOL_HD In load(std::uint64_t j) const { return v[offset + j * stride]; }
  SPARCOL_HD void store(std::uint64_t j, In x) const { keys[j] = magnitude_key(x); }
};

// ---------------------------------------------------------------------------------------------
// Optimizer updates (over elements i < n; formulas in elementwise.hpp)
// ---------------------------------------------------------------------------------------------
struct DetachedPointOp {
  float* z;
  const float* x;
  const float* d;
  float c;
  struct In {
    float x, d;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {x[i], d[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const { z[i] = detached_point(in.x, c, in.d); }
};

struct OffsetPointOp {
  float* z;
  const float* x;
  const float* r;
  struct In {
    float x, r;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {x[i], r[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const { z[i] = offset_point(in.x, in.r); }
};

struct GmcAccumulateOp {
  float* u;
  const float* m;
  GradientInput g;
  float beta;
  Block send;
  float* send_values;
  struct In {
    float u, m;
    GradIn g;
  };
  // m == nullptr: m is +0 everywhere (gmc_accumulate_sparse's dense pass).
  SPARCOL_HD In load(std::uint64_t i) const {
    return {u[i], m != nullptr ? m[i] : 0.0f, load_gradient(g, i)};
  }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const float v = gmc_message(in.u, gradient_value(g, in.g), beta, in.m);
    u[i] = extract(v, send, send_values, i);
  }
};

// Over support positions j < count (distinct indices): the GMC message at element idx[j] with the
// true m, saved for GmcRestoreOp (gmc_accumulate_sparse, pass 1).
struct GmcSupportSaveOp {
  const float* u;
  const float* m;
  GradientInput g;
  float beta;
  const Index* idx;
  float* save;
  struct In {
    float u, m;
    GradIn g;
  };
  SPARCOL_HD In load(std::uint64_t j) const {
    const Index i = idx[j];
    return {u[i], m[i], load_gradient(g, i)};
  }
  SPARCOL_HD void store(std::uint64_t j, In in) const {
    save[j] = gmc_message(in.u, gradient_value(g, in.g), beta, in.m);
  }
};

// Over support positions j < count (distinct indices): v[idx[j]] <- values[j].
struct ScatterValuesOp {
  float* v;
  const Index* idx;
  const float* values;
  struct In {
    Index i;
    float value;
  };
  SPARCOL_HD In load(std::uint64_t j) const { return {idx[j], values[j]}; }
  SPARCOL_HD void store(std::uint64_t, In in) const { v[in.i] = in.value; }
};

struct DgcAccumulateOp {
  float* u;
  float* v;
  GradientInput g;
  float beta;
  bool nesterov;
  bool mask_momentum;
  Block send;
  float* send_values;
  struct In {
    float u, v;
    GradIn g;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {u[i], v[i], load_gradient(g, i)}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const DgcState s = dgc_accumulate(in.u, in.v, gradient_value(g, in.g), beta, nesterov);
    const bool sent = send.length != 0 && send.contains(i);
    v[i] = extract(s.v, send, send_values, i);
    u[i] = mask_momentum && sent ? 0.0f : s.u;  // momentum factor masking (dgc-mfm)
  }
};

// EF-SGDM / DEF-A with m; EF-SGD with m == nullptr.
struct EfAccumulateOp {
  float* e;
  float* m;
  GradientInput g;
  float beta;
  float eta;
  Block send;
  float* send_values;
  struct In {
    float e, m;
    GradIn g;
  };
  SPARCOL_HD In load(std::uint64_t i) const {
    return {e[i], m != nullptr ? m[i] : 0.0f, load_gradient(g, i)};
  }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    float q = gradient_value(g, in.g);
    if (m != nullptr) {
      q = momentum(beta, in.m, q);
      m[i] = q;
    }
    e[i] = extract(ef_message(in.e, eta, q), send, send_values, i);
  }
};

// CSER with C1 = zero or a block: the residual of delta inside the block is exactly 0, so r loses
// delta outside it and 0 inside (cser.cpp: r -= delta after the exchange zeroed the sent part).
struct CserAccumulateOp {
  float* m;
  float* r;
  GradientInput g;
  float beta;
  float eta;
  Block send;
  float* send_values;
  struct In {
    float m, r;
    GradIn g;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {m[i], r[i], load_gradient(g, i)}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const float mn = momentum(beta, in.m, gradient_value(g, in.g));
    m[i] = mn;
    const float residual = extract(fmul(eta, mn), send, send_values, i);
    r[i] = fsub(in.r, residual);
  }
};

struct CserMomentumOp {
  float* m;
  float* delta;
  GradientInput g;
  float beta;
  float eta;
  struct In {
    float m;
    GradIn g;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {m[i], load_gradient(g, i)}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const float mn = momentum(beta, in.m, gradient_value(g, in.g));
    m[i] = mn;
    delta[i] = fmul(eta, mn);
  }
};

struct CserApplyOp {
  float* x;
  float* r;
  const float* a;
  const float* delta;
  struct In {
    float x, r, a, d;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {x[i], r[i], a[i], delta[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    x[i] = fsub(in.x, in.a);
    r[i] = fsub(in.r, in.d);
  }
};

struct DmsgdLocalOp {
  float* m;
  float* v;
  GradientInput g;
  float beta;
  struct In {
    float m;
    GradIn g;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {m[i], load_gradient(g, i)}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const float mn = momentum(beta, in.m, gradient_value(g, in.g));
    m[i] = mn;
    v[i] = mn;
  }
};

struct DmsgdApplyOp {
  float* m;
  float* x;
  const float* a;
  float beta;
  float eta;
  struct In {
    float m, x, a;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {m[i], x[i], a[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const float mn = momentum(beta, in.m, in.a);
    m[i] = mn;
    x[i] = apply_update(in.x, mn, eta);
  }
};

struct ApplyUpdateOp {
  float* x;
  const float* a;
  float eta;
  float wd;
  struct In {
    float x, a;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {x[i], a[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    x[i] = wd != 0.0f ? apply_update_wd(in.x, in.a, eta, wd) : apply_update(in.x, in.a, eta);
  }
};

// Over support positions j < count (distinct indices): apply_update at element idx[j] only. Where
// a is +0 the dense update leaves x unchanged (x - eta * +0 is x for every x and every eta >= 0), so
// this is the dense update, bit for bit, when a is +0 outside the support.
struct SparseApplyUpdateOp {
  float* x;
  const float* a;
  const Index* idx;
  float eta;
  struct In {
    Index i;
    float x, a;
  };
  SPARCOL_HD In load(std::uint64_t j) const {
    const Index i = idx[j];
    return {i, x[i], a[i]};
  }
  SPARCOL_HD void store(std::uint64_t, In in) const { x[in.i] = apply_update(in.x, in.a, eta); }
};

// ---------------------------------------------------------------------------------------------
// PowerSGD's small products and updates (ALGORITHMS.md 10.3; kernels/lowrank.cu)
// ---------------------------------------------------------------------------------------------
// Each output element is one sum in double, its terms added in a fixed order by one thread (the
// kernels give each thread whole output elements), so the GPU and the CPU twin agree bit for bit.
// Matrices are row-major: A is n x m, B and Q are m x r, P is n x r.

// out[i r + c] = (float) sum_{j < m, ascending} (double) A[i m + j] * B[j r + c]   (P = A B)
struct LowrankMultiplyOp {
  const float* a;
  const float* b;
  float* out;
  std::uint64_t m, r;
  using In = float;
  SPARCOL_HD In load(std::uint64_t t) const {
    const std::uint64_t i = t / r, c = t % r;
    const float* row = a + i * m;
    double acc = 0.0;
    for (std::uint64_t j = 0; j < m; ++j)
      acc = dadd(acc, dmul(static_cast<double>(row[j]), static_cast<double>(b[j * r + c])));
    return static_cast<float>(acc);
  }
  SPARCOL_HD void store(std::uint64_t t, In v) const { out[t] = v; }
};

// out[j r + c] = (float) sum_{i < n, ascending} (double) A[i m + j] * P[i r + c]   (Q = A^T P)
struct LowrankMultiplyTOp {
  const float* a;
  const float* p;
  float* out;
  std::uint64_t n, m, r;
  using In = float;
  SPARCOL_HD In load(std::uint64_t t) const {
    const std::uint64_t j = t / r, c = t % r;
    double acc = 0.0;
    for (std::uint64_t i = 0; i < n; ++i)
      acc = dadd(acc, dmul(static_cast<double>(a[i * m + j]), static_cast<double>(p[i * r + c])));
    return static_cast<float>(acc);
  }
  SPARCOL_HD void store(std::uint64_t t, In v) const { out[t] = v; }
};

// out[i m + j] = (float) sum_{c < r, ascending} (double) P[i r + c] * Q[j r + c]   (P Q^T)
struct LowrankOuterOp {
  const float* p;
  const float* q;
  float* out;
  std::uint64_t m, r;
  using In = float;
  SPARCOL_HD In load(std::uint64_t t) const {
    const std::uint64_t i = t / m, j = t % m;
    double acc = 0.0;
    for (std::uint64_t c = 0; c < r; ++c)
      acc = dadd(acc, dmul(static_cast<double>(p[i * r + c]), static_cast<double>(q[j * r + c])));
    return static_cast<float>(acc);
  }
  SPARCOL_HD void store(std::uint64_t t, In v) const { out[t] = v; }
};

// sum_{i < n, ascending} (double) P[i r + c1] * P[i r + c2]: the Gram-Schmidt's norms and dots.
SPARCOL_HD inline double column_dot(const float* p, std::uint64_t n, std::uint64_t r, std::uint64_t c1,
                                    std::uint64_t c2) {
  double acc = 0.0;
  for (std::uint64_t i = 0; i < n; ++i)
    acc = dadd(acc, dmul(static_cast<double>(p[i * r + c1]), static_cast<double>(p[i * r + c2])));
  return acc;
}

// dst = a + b, dst = a - b, dst = src / divisor (dst may be a, b or src: each element is read before
// it is written).
struct AddVectorsOp {
  float* dst;
  const float* a;
  const float* b;
  using In = float;
  SPARCOL_HD In load(std::uint64_t i) const { return fadd(a[i], b[i]); }
  SPARCOL_HD void store(std::uint64_t i, In v) const { dst[i] = v; }
};
struct SubVectorsOp {
  float* dst;
  const float* a;
  const float* b;
  using In = float;
  SPARCOL_HD In load(std::uint64_t i) const { return fsub(a[i], b[i]); }
  SPARCOL_HD void store(std::uint64_t i, In v) const { dst[i] = v; }
};
struct DivideOp {
  float* dst;
  const float* src;
  float divisor;
  using In = float;
  SPARCOL_HD In load(std::uint64_t i) const { return fdiv(src[i], divisor); }
  SPARCOL_HD void store(std::uint64_t i, In v) const { dst[i] = v; }
};

// The PowerSGD paper's momentum (10.3 step 6): a' = a (+ wd x), m <- lambda m + a', x <- x - eta (a' + m).
struct PowerSgdApplyOp {
  float* m;
  float* x;
  const float* a;
  float lambda, eta, wd;
  struct In {
    float m, x, a;
  };
  SPARCOL_HD In load(std::uint64_t i) const { return {m[i], x[i], a[i]}; }
  SPARCOL_HD void store(std::uint64_t i, In in) const {
    const float ag = wd != 0.0f ? fadd(in.a, fmul(wd, in.x)) : in.a;
    const float mm = fadd(fmul(lambda, in.m), ag);
    m[i] = mm;
    x[i] = fsub(in.x, fmul(eta, fadd(ag, mm)));
  }
};

// ---------------------------------------------------------------------------------------------
// Radix select on the 31-bit magnitude keys (top-k): three digits, most significant first
// ---------------------------------------------------------------------------------------------
// Digit d covers key bits [radix_shift(d), radix_shift(d) + radix_bits(d)): 30..20, 19..9, 8..0.
// After digit d the k-th largest key K is known down to bit radix_shift(d); after the third, exactly.
inline constexpr int kRadixDigits = 3;
inline constexpr int kRadixBuckets = 2048;  // 2^11, the widest digit
SPARCOL_HD constexpr int radix_shift(int d) {
  return d == 0 ? 20 : (d == 1 ? 9 : 0);
}
SPARCOL_HD constexpr int radix_bits(int d) {
  return d == 2 ? 9 : 11;
}
// Whether a key shares the digits chosen so far (prefix = K >> radix_shift(d - 1)); every key does
// at digit 0.
SPARCOL_HD inline bool radix_in_prefix(std::uint32_t key, int d, std::uint32_t prefix) {
  return d == 0 || (key >> radix_shift(d - 1)) == prefix;
}
SPARCOL_HD inline std::uint32_t radix_bucket(std::uint32_t key, int d) {
  return (key >> radix_shift(d)) & ((1u << radix_bits(d)) - 1u);
}

}  // namespace sparcol::device::detail
