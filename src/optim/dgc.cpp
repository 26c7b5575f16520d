// DGC (ALGORITHMS.md 4): momentum correction, local gradient clipping, optional momentum factor
// masking and density warm-up; the learning rate is applied outside, to the aggregate.
//   [clip g_k to norm G/sqrt(K)]
//   u_k <- beta*u_k + g_k;  v_k <- v_k + u_k        (Nesterov: u <- beta*(u + g); v <- v + u + g)
//   s_k = C(v_k), mask M_k;  v_k <- v_k (1 - M_k);  [mfm: u_k <- u_k (1 - M_k)]
//   x <- x - eta * mean_k s_k                         (wd_outside: x <- x - eta*(mean s + wd*x))
#include <algorithm>
#include <cmath>

#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

class Dgc final : public Optimizer {
 public:
  Dgc(comm::Backend& b, const Layout& l, const OptimConfig& c, bool mfm)
      : Optimizer(b, l, c, c.exchange), mfm_(mfm), target_density_(c.exchange.compressor.density), u_(n_), v_(n_) {
    if (config_.clip_norm > 0 || config_.nesterov) g_.resize(n_);
  }

  std::vector<StateBuffer> state() override { return {{"momentum", u_}, {"velocity", v_}}; }

 protected:
  void before_step(double epoch) override {
    const int w = config_.warmup_epochs;
    if (w <= 0) return;
    // DGC code: coeff = rho^(1/(W+1)); density in epoch e < W is max(coeff^(e+1), rho).
    const double rho = target_density_;
    const auto e = static_cast<int>(std::floor(epoch));
    const double d = e < w ? std::max(std::pow(std::pow(rho, 1.0 / (w + 1)), e + 1), rho) : rho;
    if (d != ex_.density()) ex_.set_density(d);
  }

  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    std::span<const float> gg = g;
    if (config_.clip_norm > 0) {
      // Local clipping to G / sqrt(K): every worker uses the global threshold scaled by K^(-1/2).
      double norm2 = 0;
      for (float v : g) norm2 += static_cast<double>(v) * v;
      const double limit = config_.clip_norm / std::sqrt(static_cast<double>(backend_.size()));
      const double norm = std::sqrt(norm2);
      const float scale = norm > limit ? static_cast<float>(limit / norm) : 1.0f;
      for (std::uint64_t i = 0; i < n_; ++i) g_[i] = g[i] * scale;
      gg = g_;
    }
    if (config_.nesterov) {
      for (std::uint64_t i = 0; i < n_; ++i) {
        u_[i] = beta * (u_[i] + gg[i]);
        v_[i] += u_[i] + gg[i];
      }
    } else {
      for (std::uint64_t i = 0; i < n_; ++i) {
        u_[i] = beta * u_[i] + gg[i];
        v_[i] += u_[i];
      }
    }
    const CommStats st = ex_.finish(v_, agg_);  // v_ <- v_ (1 - M)
    if (mfm_) ex_.zero_sent(u_);
    if (config_.wd_outside && config_.weight_decay != 0) {
      const auto wd = static_cast<float>(config_.weight_decay);
      for (std::uint64_t i = 0; i < n_; ++i) x[i] -= eta * (agg_[i] + wd * x[i]);
    } else {
      for (std::uint64_t i = 0; i < n_; ++i) x[i] -= eta * agg_[i];
    }
    return st;
  }

 private:
  bool mfm_;
  double target_density_;
  std::vector<float> u_, v_, g_;
};

}  // namespace

std::unique_ptr<Optimizer> make_dgc(comm::Backend& b, const Layout& l, const OptimConfig& c, bool mfm) {
  return std::make_unique<Dgc>(b, l, c, mfm);
}

}  // namespace sparcol::optim::detail
