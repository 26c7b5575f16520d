// EF-SGD and EF-SGDM (ALGORITHMS.md 3): error feedback with the learning rate inside the error
// (parameter units).
//   q_k = g_k, or with momentum m_k <- beta*m_k + g_k, q_k = m_k
//   p_k = e_k + eta*q_k;  c_k = C(p_k);  e_k <- p_k - c_k;  x <- x - mean_k c_k
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

class EfSgd final : public Optimizer {
 public:
  EfSgd(comm::Backend& b, const Layout& l, const OptimConfig& c, bool momentum)
      : Optimizer(b, l, c, c.exchange), momentum_(momentum), e_(n_), m_(momentum ? n_ : 0) {}

  std::vector<StateBuffer> state() override {
    if (momentum_) return {{"error", e_}, {"momentum", m_}};
    return {{"error", e_}};
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    if (momentum_) {
      for (std::uint64_t i = 0; i < n_; ++i) {
        m_[i] = beta * m_[i] + g[i];
        e_[i] += eta * m_[i];
      }
    } else {
      for (std::uint64_t i = 0; i < n_; ++i) e_[i] += eta * g[i];
    }
    const CommStats st = ex_.finish(e_, agg_);  // e_ held p_k; now p_k - C(p_k)
    for (std::uint64_t i = 0; i < n_; ++i) x[i] -= agg_[i];
    return st;
  }

 private:
  bool momentum_;
  std::vector<float> e_, m_;
};

}  // namespace

std::unique_ptr<Optimizer> make_ef_sgd(comm::Backend& b, const Layout& l, const OptimConfig& c, bool momentum) {
  return std::make_unique<EfSgd>(b, l, c, momentum);
}

}  // namespace sparcol::optim::detail
