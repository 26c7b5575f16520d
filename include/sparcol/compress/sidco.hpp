// "sidco": threshold sparsification with SIDCo's exponential model (ALGORITHMS.md 1.5).
//
// Picks theta so that about ratio*n entries have |v_j| > theta, without sorting, by modelling |v| as
// exponential, then sends every j with |v_j| > theta (indices ascending, kind kSparse; nnz varies from
// call to call and is not padded). ratio = density, or ctx.k / n when ctx.k != 0.
//   single stage (stages = 1, or ratio >= first_ratio): theta = -mean(|v|) * ln(ratio);
//   multi-stage: theta = -mean(|v|) * ln(r1), q = (ratio/r1)^(1/(S-1)), then S-1 times: over the
//   exceedances E = {|v_j| > theta}: m = min(E), mu = mean(E) - m, theta = m - mu * ln(q)
//   (stopping early if E is empty).
// Statistics are taken in double over the finite entries only, and theta is rounded to float (and
// capped at the largest finite float): the selection is exactly {j : |v_j| > theta} for that float
// theta, plus every non-finite entry (Inf and NaN are always sent, never hidden in a residual).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "sparcol/compress/compressor.hpp"

namespace sparcol::compress {

// The threshold described above. ratio in (0, 1], stages >= 1, first_ratio in (0, 1).
float sidco_threshold(std::span<const float> v, double ratio, int stages, double first_ratio);

class SidcoCompressor final : public Compressor {
 public:
  SidcoCompressor(double density, int stages, double first_ratio)
      : density_(density), stages_(stages), first_ratio_(first_ratio) {}
  std::string name() const override { return "sidco"; }
  Aggregation aggregation() const override { return Aggregation::kSparse; }
  std::uint64_t target_k(std::uint64_t n) const override { return k_round(density_, n); }
  void compress(std::span<const float> v, const Context& ctx, Message& out) override;
  float last_threshold() const { return last_threshold_; }

 private:
  double density_;
  int stages_;
  double first_ratio_;
  float last_threshold_ = 0.0f;
};

}  // namespace sparcol::compress
