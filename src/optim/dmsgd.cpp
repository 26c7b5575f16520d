// DMSGD: dense momentum SGD (ALGORITHMS.md 2). The compressor of the configuration is ignored:
// these are the uncompressed baselines.
//   global: gbar = mean_k g_k;  m <- beta*m + gbar;  x <- x - eta*m
//   local:  m_k <- beta*m_k + g_k;  x <- x - eta*mean_k m_k
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

class Dmsgd final : public Optimizer {
 public:
  Dmsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, bool local)
      : Optimizer(b, l, c, dense_exchange(c.exchange)), local_(local), m_(n_), v_(n_) {}

  std::vector<StateBuffer> state() override { return {{"momentum", m_}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    if (local_) {
      for (std::uint64_t i = 0; i < n_; ++i) v_[i] = m_[i] = beta * m_[i] + g[i];
      const CommStats st = ex_.finish(v_, agg_);
      for (std::uint64_t i = 0; i < n_; ++i) x[i] -= eta * agg_[i];
      return st;
    }
    std::copy(g.begin(), g.end(), v_.begin());
    const CommStats st = ex_.finish(v_, agg_);
    for (std::uint64_t i = 0; i < n_; ++i) {
      m_[i] = beta * m_[i] + agg_[i];
      x[i] -= eta * m_[i];
    }
    return st;
  }

 private:
  bool local_;
  std::vector<float> m_;
  std::vector<float> v_;  // the message (a copy: the exchange leaves its residual, zero, in it)
};

}  // namespace

std::unique_ptr<Optimizer> make_dmsgd(comm::Backend& b, const Layout& l, const OptimConfig& c, bool local) {
  return std::make_unique<Dmsgd>(b, l, c, local);
}

}  // namespace sparcol::optim::detail
